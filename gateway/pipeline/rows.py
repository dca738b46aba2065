"""Normalised events -> table rows, and topic -> channel routing.

Each record kind has a row type: a NamedTuple in the table's column order. The
writer inserts the tuples as they are (cheapest per row); commit listeners read
the same rows by field name.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from gateway.core.events import AccessEvent, CommandResult, DeviceStatus, Fix, Punch
from gateway.core.timeutil import to_epoch_ms
from gateway.devices.families import CHANNELS, OWN_TOPICS


def route(topic: str, device_id: str | None) -> tuple[str | None, str | None]:
    """(device id, channel) of an input; channel None when no decoder takes it.

    MQTT topics carry the device: devices/{id}/{channel}, or a family's own
    topics ("owntracks/{user}/{device}": the device is found by that key).
    Other transports set the device id and use the channel as the topic.
    """
    if device_id is not None:
        return device_id, topic if topic in CHANNELS else None
    root, _, rest = topic.partition("/")
    own = OWN_TOPICS.get(root)
    if own is not None:
        parts = rest.split("/")
        return ("/".join(parts), root) if len(parts) == len(own.wire_key) and all(parts) else (None, None)
    parts = topic.split("/", 2)
    if len(parts) == 3 and parts[0] == "devices" and parts[1] and parts[2] in CHANNELS:
        return parts[1], parts[2]
    return None, None


class PunchRow(NamedTuple):
    key: bytes
    device_id: str
    user: str
    person_id: str | None  # the person the device user resolved to
    time: int
    utc_offset_min: int
    direction: str
    verify: str
    status_code: int | None
    verify_code: int | None
    workcode: str | None
    seq: int | None
    source: str
    raw_ref: str
    stored_at: int


class AccessRow(NamedTuple):
    key: bytes
    device_id: str
    door: str
    time: int
    utc_offset_min: int
    credential_kind: str
    credential_value: str
    credential_bits: int | None
    credential_format: str | None
    facility: int | None
    number: int | None
    person_id: str | None
    visitor_id: str | None
    decision: str
    reason: str
    direction: str
    source: str
    raw_ref: str
    stored_at: int


class FixRow(NamedTuple):
    key: bytes
    device_id: str
    vehicle_id: str | None  # the vehicle the device is in
    time: int
    utc_offset_min: int
    lat: float
    lon: float
    speed_kmh: float | None
    heading: float | None
    alt: float | None
    sats: int | None
    hdop: float | None
    ignition: bool | None
    valid: bool
    flags: str  # JSON list
    odometer_km: float | None
    source: str
    raw_ref: str
    stored_at: int


class StatusRow(NamedTuple):
    key: bytes
    device_id: str
    time: int
    online: bool | None
    detail: str  # JSON object
    raw_ref: str
    stored_at: int


class CommandResultRow(NamedTuple):
    key: bytes
    device_id: str
    command_id: str
    ok: bool
    detail: str
    time: int
    raw_ref: str


Row = PunchRow | AccessRow | FixRow | StatusRow | CommandResultRow

# The record tables by kind, and the columns the writer fills (the row types' fields).
TABLE = {
    "punch": "punch",
    "access": "access_event",
    "fix": "fix",
    "status": "device_status",
    "command_result": "command_result",
}
ROW_TYPES: dict[str, type[Row]] = {
    "punch": PunchRow,
    "access": AccessRow,
    "fix": FixRow,
    "status": StatusRow,
    "command_result": CommandResultRow,
}
COLUMNS: dict[str, tuple[str, ...]] = {kind: row._fields for kind, row in ROW_TYPES.items()}


def punch_row(event: Punch, raw_ref: str, stored_at: int, person_id: str | None) -> PunchRow:
    return PunchRow(
        event.key,
        event.device_id,
        event.user,
        person_id,
        to_epoch_ms(event.time),
        event.utc_offset_min,
        event.direction,
        event.verify,
        event.status_code,
        event.verify_code,
        event.workcode,
        event.seq,
        event.source,
        raw_ref,
        stored_at,
    )


def access_row(event: AccessEvent, raw_ref: str, stored_at: int) -> AccessRow:
    # Without a reason a door controller decided at the door; we record its decision.
    reason = event.reason or ("granted" if event.result == "granted" else "denied_by_controller")
    return AccessRow(
        event.key,
        event.device_id,
        event.door,
        to_epoch_ms(event.time),
        event.utc_offset_min,
        event.credential_kind,
        event.credential_value,
        event.credential_bits,
        event.credential_format,
        event.facility,
        event.number,
        event.person_id,
        event.visitor_id,
        event.result,
        reason,
        event.direction,
        event.source,
        raw_ref,
        stored_at,
    )


def fix_row(event: Fix, raw_ref: str, stored_at: int, vehicle_id: str | None) -> FixRow:
    return FixRow(
        event.key,
        event.device_id,
        vehicle_id,
        to_epoch_ms(event.time),
        event.utc_offset_min,
        event.lat,
        event.lon,
        event.speed_kmh,
        event.heading,
        event.alt,
        event.sats,
        event.hdop,
        event.ignition,
        event.valid,
        orjson.dumps(event.flags).decode(),
        event.odometer_km,
        event.source,
        raw_ref,
        stored_at,
    )


def status_row(event: DeviceStatus, raw_ref: str, stored_at: int) -> StatusRow:
    return StatusRow(
        event.key,
        event.device_id,
        to_epoch_ms(event.time),
        event.online,
        orjson.dumps(event.detail).decode(),
        raw_ref,
        stored_at,
    )


def command_result_row(event: CommandResult, raw_ref: str, stored_at: int) -> CommandResultRow:
    time = to_epoch_ms(event.time) if event.time else stored_at
    return CommandResultRow(event.key, event.device_id, event.command_id, event.ok, event.detail, time, raw_ref)
