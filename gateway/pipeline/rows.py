"""Normalised events -> table rows, and topic -> codec routing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import orjson

from gateway.core.events import AccessEvent, CommandResult, DeviceStatus, Event, Fix, Punch
from gateway.core.timeutil import to_epoch_ms
from gateway.devices import (
    access_log,
    attlog,
    card_lines,
    jt808,
    jt808_location,
    mqtt_device,
    mqtt_json,
    nmea,
    owntracks,
)
from gateway.devices.base import Decoded
from gateway.management.registry import DeviceInfo

# (payload, device, time received) -> Decoded
Decoder = Callable[[bytes, DeviceInfo, datetime], Decoded]
# Terminals dated more than this ahead of the gateway have a wrong clock (ZKTeco's own server does the same).
FUTURE_LIMIT = timedelta(days=1)

DECODERS: dict[str, Decoder] = {
    # MQTT: devices/{id}/{channel}
    "events": lambda p, d, now: mqtt_json.decode(p, d.id, d.tz),
    "attlog": lambda p, d, now: attlog.decode(p, d.id, d.tz, not_after=now + FUTURE_LIMIT),
    "status": lambda p, d, now: mqtt_device.decode_status(p, d.id, now),
    "commands/result": lambda p, d, now: mqtt_device.decode_command_result(p, d.id, now),
    # Other transports name the channel themselves and set the device id.
    "iclock/ATTLOG": lambda p, d, now: attlog.decode(p, d.id, d.tz, "zk-adms", not_after=now + FUTURE_LIMIT),
    "iclock/OPERLOG": lambda p, d, now: Decoded(),  # user and enrolment lines: kept in the journal only
    "serial/attlog": lambda p, d, now: attlog.decode(p, d.id, d.tz, not_after=now + FUTURE_LIMIT),
    "serial/card-lines": lambda p, d, now: card_lines.decode(p, d.id, d.tz, now),
    "access/decided": lambda p, d, now: access_log.decode(p, d.id, d.tz),
    # The JT/T 808 session hands its fixes over decoded; this decodes only a frame submitted without them.
    "jt808/location": lambda p, d, now: jt808_location.decode(jt808.parse_frame(p), d.id, d.tz),
    "owntracks": lambda p, d, now: owntracks.decode(p, d.id, d.tz),
    "serial/nmea": lambda p, d, now: _nmea_reader(d).feed(p, now),
}

# A GPS receiver's fix spans several sentences (RMC, GGA, VTG): one reader per device keeps the epoch
# being assembled. Only the store writer's thread decodes, so this needs no lock.
_NMEA_READERS: dict[str, nmea.NmeaReader] = {}


def _nmea_reader(device: DeviceInfo) -> nmea.NmeaReader:
    reader = _NMEA_READERS.get(device.id)
    if reader is None:
        reader = _NMEA_READERS[device.id] = nmea.NmeaReader(device.id, tz=device.tz)
    return reader


def route(topic: str, device_id: str | None) -> tuple[str | None, str | None]:
    """(device id, channel) of an input; channel None when no decoder takes it.

    MQTT topics carry the device: devices/{id}/{channel}. Other transports
    set the device id and use the channel as the topic.
    """
    if device_id is not None:
        return device_id, topic if topic in DECODERS else None
    if topic.startswith("owntracks/"):  # owntracks/{user}/{device}: the device is found by that pair
        parts = topic.split("/")
        return ("/".join(parts[1:]), "owntracks") if len(parts) == 3 and parts[1] and parts[2] else (None, None)
    parts = topic.split("/", 2)
    if len(parts) == 3 and parts[0] == "devices" and parts[1] and parts[2] in DECODERS:
        return parts[1], parts[2]
    return None, None


# The record tables, by the event type they hold, and the columns the writer fills.
KIND = {Punch: "punch", AccessEvent: "access", Fix: "fix", DeviceStatus: "status", CommandResult: "command_result"}
TABLE = {
    "punch": "punch",
    "access": "access_event",
    "fix": "fix",
    "status": "device_status",
    "command_result": "command_result",
}
COLUMNS = {
    "punch": (
        "key",
        "device_id",
        "user",
        "person_id",
        "time",
        "utc_offset_min",
        "direction",
        "verify",
        "status_code",
        "verify_code",
        "workcode",
        "seq",
        "source",
        "raw_ref",
        "stored_at",
    ),
    "access": (
        "key",
        "device_id",
        "door",
        "time",
        "utc_offset_min",
        "credential_kind",
        "credential_value",
        "credential_bits",
        "credential_format",
        "facility",
        "number",
        "person_id",
        "visitor_id",
        "decision",
        "reason",
        "direction",
        "source",
        "raw_ref",
        "stored_at",
    ),
    "fix": (
        "key",
        "device_id",
        "vehicle_id",
        "time",
        "utc_offset_min",
        "lat",
        "lon",
        "speed_kmh",
        "heading",
        "alt",
        "sats",
        "hdop",
        "ignition",
        "valid",
        "flags",
        "odometer_km",
        "source",
        "raw_ref",
        "stored_at",
    ),
    "status": ("key", "device_id", "time", "online", "detail", "raw_ref", "stored_at"),
    "command_result": ("key", "device_id", "command_id", "ok", "detail", "time", "raw_ref"),
}


def to_row(event: Event, raw_ref: str, stored_at: int, owner: str | None = None) -> tuple[Any, ...]:
    """The event as a tuple in COLUMNS order (the writer inserts tuples: cheapest per row).

    `owner`: the person a punch resolved to, the vehicle a fix's device is in.
    """
    t = type(event)
    if t is Punch:
        return (
            event.key,
            event.device_id,
            event.user,
            owner,
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
    if t is AccessEvent:
        # Without a reason a door controller decided at the door; we record its decision.
        reason = event.reason or ("granted" if event.result == "granted" else "denied_by_controller")
        return (
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
    if t is Fix:
        return (
            event.key,
            event.device_id,
            owner,
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
    if t is DeviceStatus:
        return (
            event.key,
            event.device_id,
            to_epoch_ms(event.time),
            event.online,
            orjson.dumps(event.detail).decode(),
            raw_ref,
            stored_at,
        )
    if t is CommandResult:
        time = to_epoch_ms(event.time) if event.time else stored_at
        return (event.key, event.device_id, event.command_id, event.ok, event.detail, time, raw_ref)
    raise TypeError(f"not an event: {event!r}")
