"""Normalised events -> table rows, and topic -> codec routing."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from gateway.devices import attlog, mqtt_device, mqtt_json
from gateway.devices.base import Decoded
from gateway.events import AccessEvent, CommandResult, DeviceStatus, Event, Fix, Punch
from gateway.registry import DeviceInfo
from gateway.timeutil import to_epoch_ms

# (payload, device, time received) -> Decoded
Decoder = Callable[[bytes, DeviceInfo, datetime], Decoded]

DECODERS: dict[str, Decoder] = {
    "events": lambda p, d, now: mqtt_json.decode(p, d.id, d.tz),
    "attlog": lambda p, d, now: attlog.decode(p, d.id, d.tz),
    "status": lambda p, d, now: mqtt_device.decode_status(p, d.id, now),
    "commands/result": lambda p, d, now: mqtt_device.decode_command_result(p, d.id, now),
}


def route_topic(topic: str) -> tuple[str | None, str | None]:
    """devices/{id}/{channel} -> (device id, channel); anything else -> (None, None)."""
    parts = topic.split("/", 2)
    if len(parts) == 3 and parts[0] == "devices" and parts[1] and parts[2] in DECODERS:
        return parts[1], parts[2]
    return None, None


# The record tables, by the event type they hold.
KIND = {Punch: "punch", AccessEvent: "access", Fix: "fix", DeviceStatus: "status", CommandResult: "command_result"}


def to_row(event: Event, raw_ref: str, stored_at: int) -> dict[str, Any]:
    if type(event) is Punch:
        return {
            "key": event.key, "device_id": event.device_id, "user": event.user, "person_id": None,
            "time": to_epoch_ms(event.time), "utc_offset_min": event.utc_offset_min,
            "direction": event.direction, "verify": event.verify, "status_code": event.status_code,
            "verify_code": event.verify_code, "workcode": event.workcode, "seq": event.seq,
            "source": event.source, "raw_ref": raw_ref, "stored_at": stored_at,
        }  # fmt: skip
    if type(event) is AccessEvent:
        return {
            "key": event.key, "device_id": event.device_id, "door": event.door,
            "time": to_epoch_ms(event.time), "utc_offset_min": event.utc_offset_min,
            "credential_kind": event.credential_kind, "credential_value": event.credential_value,
            "credential_bits": event.credential_bits, "person_id": None, "visitor_id": None,
            # The controller decided at the door; we record its decision.
            "decision": event.result, "reason": event.result if event.result == "granted" else "denied_by_controller",
            "direction": event.direction, "source": event.source, "raw_ref": raw_ref, "stored_at": stored_at,
        }  # fmt: skip
    if type(event) is Fix:
        return {
            "key": event.key, "device_id": event.device_id, "vehicle_id": None,
            "time": to_epoch_ms(event.time), "utc_offset_min": event.utc_offset_min,
            "lat": event.lat, "lon": event.lon, "speed_kmh": event.speed_kmh, "heading": event.heading,
            "alt": event.alt, "sats": event.sats, "ignition": event.ignition, "valid": event.valid,
            "flags": list(event.flags), "odometer_km": event.odometer_km, "source": event.source,
            "raw_ref": raw_ref, "stored_at": stored_at,
        }  # fmt: skip
    if type(event) is DeviceStatus:
        return {
            "key": event.key, "device_id": event.device_id, "time": to_epoch_ms(event.time),
            "online": event.online, "detail": event.detail, "raw_ref": raw_ref, "stored_at": stored_at,
        }  # fmt: skip
    if type(event) is CommandResult:
        return {
            "key": event.key, "device_id": event.device_id, "command_id": event.command_id, "ok": event.ok,
            "detail": event.detail, "time": to_epoch_ms(event.time) if event.time else stored_at,
            "raw_ref": raw_ref,
        }  # fmt: skip
    raise TypeError(f"not an event: {event!r}")
