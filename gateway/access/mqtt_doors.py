"""MQTT door controllers that ask the gateway to decide.

A controller publishes its read as an access event with `"result": "pending"`
on `devices/{id}/events`. The store writer decides it from the same snapshot
the OSDP readers use and stores the decided record; once that is committed the
controller gets its answer as a command on `devices/{id}/commands`:
`open_door` (granted) or `deny_access` (denied), both with `{"door", "reason"}`.
A request that reaches the gateway long after it was made (a resend after a
reconnect) is decided and recorded, but no door is opened for it any more.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.core.timeutil import now_ms, to_epoch_ms

if TYPE_CHECKING:
    from gateway.management.commands import Commands
    from gateway.pipeline.batch import Batch

log = logging.getLogger(__name__)

STALE_MS = 30_000  # nobody is still standing at the door
ANSWER_TIMEOUT_S = 10


def answer_requests(commands: Commands, batch: Batch) -> None:
    """Store-writer hook: send each committed door request its decision."""
    now = now_ms()
    for event in batch.door_requests:
        if now - to_epoch_ms(event.time) > STALE_MS:
            log.info(
                "door request from %s at %s is %d s old: recorded, not answered",
                event.device_id,
                event.door,
                (now - to_epoch_ms(event.time)) // 1000,
            )
            continue
        name = "open_door" if event.result == "granted" else "deny_access"
        commands.submit(event.device_id, name, {"door": event.door, "reason": event.reason}, ANSWER_TIMEOUT_S, "access")
