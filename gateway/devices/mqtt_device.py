"""The device's own MQTT housekeeping: retained status / will, and command results."""

from __future__ import annotations

from datetime import datetime

import orjson

from gateway.core.events import CommandResult, DeviceStatus, idempotency_key
from gateway.core.timeutil import to_epoch_ms
from gateway.devices.base import Decoded
from gateway.devices.errors import DecodeError

_STATUS_WORDS = {b"online": True, b"offline": False}


def _json_object(payload: bytes) -> dict:
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("bad_utf8", "payload is not UTF-8", payload) from None
        raise DecodeError("bad_json", "payload is not JSON", payload) from None
    if not isinstance(value, dict):
        raise DecodeError("bad_shape", "expected a JSON object", payload)
    return value


def decode_status(payload: bytes, device_id: str, received: datetime) -> Decoded:
    """`online` / `offline` (the will), or a JSON object such as
    {"online": true, "firmware": "1.2.3", "battery": 87}."""
    word = payload.strip().lower()
    key = idempotency_key("status", device_id, payload, to_epoch_ms(received) // 1000)
    if word in _STATUS_WORDS:
        return Decoded([DeviceStatus(device_id, received, _STATUS_WORDS[word], {}, key)])
    obj = _json_object(payload)
    online = obj.get("online", True)
    if not isinstance(online, bool):
        raise DecodeError("bad_value", "online must be true or false", payload)
    firmware = obj.get("firmware")
    if firmware is not None and not isinstance(firmware, str):
        raise DecodeError("bad_value", "firmware must be a string", payload)
    return Decoded([DeviceStatus(device_id, received, online, obj, key)])


def decode_command_result(payload: bytes, device_id: str, received: datetime) -> Decoded:
    """{"id": "...", "ok": true, "detail": "..."} on devices/{id}/commands/result."""
    obj = _json_object(payload)
    command_id, ok, detail = obj.get("id"), obj.get("ok"), obj.get("detail", "")
    if not isinstance(command_id, str) or not command_id:
        raise DecodeError("missing_field", "id (the command's id) is required", payload)
    if not isinstance(ok, bool):
        raise DecodeError("bad_value", "ok must be true or false", payload)
    if not isinstance(detail, str):
        detail = orjson.dumps(detail).decode()
    key = idempotency_key("command_result", device_id, command_id)
    return Decoded([CommandResult(device_id, command_id[:64], ok, detail[:2000], received, key)])
