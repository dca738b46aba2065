"""Door decisions the gateway made itself (OSDP readers), as they go through the pipeline.

The access service decides in memory and acts at once; the decision then
travels as this small JSON record so it is journaled and stored like any
other input. `encode` and `decode` are the two ends.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

import orjson

from gateway.core.events import AccessEvent, idempotency_key
from gateway.core.timeutil import TimeError, from_epoch_ms, offset_minutes
from gateway.devices.base import Decoded
from gateway.devices.errors import DecodeError

SOURCE = "osdp"


def encode(
    door: str,
    time_ms: int,
    credential: dict[str, Any],
    decision: str,
    reason: str,
    person_id: str | None,
    visitor_id: str | None,
    direction: str,
) -> bytes:
    return orjson.dumps(
        {
            "door": door,
            "time": time_ms,
            "credential": credential,
            "decision": decision,
            "reason": reason,
            "person_id": person_id,
            "visitor_id": visitor_id,
            "direction": direction,
        }
    )


def decode(payload: bytes, device_id: str, tz: tzinfo) -> Decoded:
    try:
        record = orjson.loads(payload)
        credential = record["credential"]
        utc = from_epoch_ms(record["time"])
        event = AccessEvent(
            device_id=device_id,
            door=str(record["door"]),
            time=utc,
            utc_offset_min=offset_minutes(utc, tz),
            credential_kind=str(credential["kind"]),
            credential_value=str(credential["value"])[:128],
            credential_bits=credential.get("bits"),
            credential_format=credential.get("format"),
            facility=credential.get("facility"),
            number=credential.get("number"),
            result=str(record["decision"]),
            reason=str(record["reason"]),
            person_id=record.get("person_id"),
            visitor_id=record.get("visitor_id"),
            direction=str(record.get("direction", "in")),
            source=SOURCE,
            key=idempotency_key("access", device_id, record["time"], credential["value"], record["decision"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, TimeError) as exc:
        raise DecodeError("bad_record", f"not a door decision record: {exc}", payload) from None
    return Decoded([event])
