"""A batch of inputs: decoded, written in one transaction, then handed to the commit listeners.

After the commit a listener reads what was stored as typed rows (`punches`,
`access`, `fixes`, `statuses`, `command_results`), which devices were heard
from (`seen`, `reported`) and the door requests to answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gateway.core.events import AccessEvent
from gateway.pipeline.queue import Inbound
from gateway.pipeline.rows import AccessRow, CommandResultRow, FixRow, PunchRow, Row, StatusRow

DEAD_RAW_LIMIT = 64 * 1024  # what a dead letter keeps of an oversized input


class Reported(NamedTuple):
    """The newest status a device reported in a batch."""

    online: bool | None
    firmware: str | None


@dataclass
class Batch:
    """One batch, decoded and ready to write; after its commit, what commit listeners read.

    The records are typed rows (`punches`, `access`, `fixes`, `statuses`, `command_results`), as stored.
    """

    now_ms: int
    segments: dict[str, int] = field(default_factory=dict)  # transport -> journal segment id
    journal: dict[str, list[tuple[str, bytes]]] = field(default_factory=lambda: defaultdict(list))
    punches: list[PunchRow] = field(default_factory=list)
    access: list[AccessRow] = field(default_factory=list)
    fixes: list[FixRow] = field(default_factory=list)
    statuses: list[StatusRow] = field(default_factory=list)
    command_results: list[CommandResultRow] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[str, list[int]] = field(default_factory=dict)  # device -> [events, errors]
    reported: dict[str, Reported] = field(default_factory=dict)  # device -> the newest status it reported
    items: list[Inbound] = field(default_factory=list)
    door_requests: list[AccessEvent] = field(default_factory=list)  # decided here; answered after the commit

    def records(self) -> dict[str, Sequence[Row]]:
        """Record kind (see rows.TABLE) -> its rows."""
        return {
            "punch": self.punches,
            "access": self.access,
            "fix": self.fixes,
            "status": self.statuses,
            "command_result": self.command_results,
        }

    def dead_letter(self, item: Inbound, device_id: str | None, reason: str, detail: str, raw: bytes) -> None:
        self.dead.append(
            {
                "time": self.now_ms,
                "source": item.transport,
                "device_id": device_id,
                "topic": item.topic[:256],
                "reason": reason,
                "detail": detail[:1000],
                "size": len(raw),
                "raw": raw[:DEAD_RAW_LIMIT],
            }
        )
        if device_id is not None and device_id in self.seen:
            self.seen[device_id][1] += 1
