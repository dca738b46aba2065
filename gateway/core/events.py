"""The normalised events every codec produces and the pipeline stores.

Times are timezone-aware UTC datetimes; `utc_offset_min` keeps the device's own
offset at that instant so the local wall time can be shown again.  Each event
carries an idempotency `key` derived only from what the device sent, so a
resend is recognised whoever resends it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DIRECTIONS = ("in", "out", "unknown")


def idempotency_key(*parts: object) -> bytes:
    """A 128-bit digest of the parts that identify one thing a device sent."""
    text = "\x1f".join([p if type(p) is str else ("" if p is None else str(p)) for p in parts])
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


@dataclass(slots=True)
class Punch:
    device_id: str
    user: str
    time: datetime
    utc_offset_min: int
    direction: str = "unknown"
    verify: str = "other:"
    source: str = "mqtt-json"
    status_code: int | None = None
    verify_code: int | None = None
    workcode: str | None = None
    seq: int | None = None
    key: bytes = b""


@dataclass(slots=True)
class AccessEvent:
    device_id: str
    door: str
    time: datetime
    utc_offset_min: int
    credential_kind: str
    credential_value: str
    credential_bits: int | None = None
    result: str = "granted"
    direction: str = "unknown"
    source: str = "mqtt-json"
    key: bytes = b""
    # Set when the gateway itself decided (OSDP readers); a door controller's own decision has none.
    reason: str | None = None
    person_id: str | None = None
    visitor_id: str | None = None
    credential_format: str | None = None
    facility: int | None = None
    number: int | None = None


@dataclass(slots=True)
class Fix:
    device_id: str
    time: datetime
    utc_offset_min: int
    lat: float
    lon: float
    speed_kmh: float | None = None
    heading: float | None = None
    alt: float | None = None
    sats: int | None = None
    hdop: float | None = None
    ignition: bool | None = None
    valid: bool = True
    flags: list[str] = field(default_factory=list)
    odometer_km: float | None = None
    source: str = "mqtt-json"
    key: bytes = b""


@dataclass(slots=True)
class DeviceStatus:
    device_id: str
    time: datetime
    online: bool | None
    detail: dict[str, Any] = field(default_factory=dict)
    key: bytes = b""


@dataclass(slots=True)
class CommandResult:
    device_id: str
    command_id: str
    ok: bool
    detail: str = ""
    time: datetime | None = None
    key: bytes = b""


Event = Punch | AccessEvent | Fix | DeviceStatus | CommandResult
