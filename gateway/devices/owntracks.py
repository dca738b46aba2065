"""OwnTracks on MQTT: phones and trackers publishing JSON to `owntracks/<user>/<device>`.

Only `_type: "location"` carries a position; it becomes one Fix. Phones also
send transition, waypoint(s), lwt, card, status, cmd, steps... routinely, so
any other `_type` yields an empty Decoded, not an error. The exception is
`encrypted`: a phone with payload encryption on sends all its locations that
way, and ignoring them would lose them silently, so it is rejected as
`encrypted` (the dead letter tells the operator to switch encryption off).

Fields used: lat, lon, tst (epoch seconds, required); vel (km/h), cog
(degrees), alt (m), acc (m) optional. A JSON null counts as absent. A negative
vel or cog is a phone saying "unknown" (iOS reports -1 when it has no
course), so it becomes None rather than a rejected location. Fields this
codec does not use (batt, tid, t, conn, ...) are not checked: a strange
battery value must not lose a position.

Reasons: bad_utf8, bad_json, bad_shape (not an object), missing_field,
bad_value (wrong type), out_of_range, encrypted.
"""

from __future__ import annotations

import math
from datetime import UTC, tzinfo
from typing import Literal, TypeVar, overload

from gateway.core.events import Fix, idempotency_key
from gateway.core.timeutil import TimeError, from_epoch_ms, offset_minutes
from gateway.devices.base import Decoded, parse_json
from gateway.devices.errors import DecodeError

SOURCE = "owntracks"
UTC = UTC
# Beyond this the phone has only a cell-tower guess; the fix is kept but flagged.
LOW_ACCURACY_M = 500.0

_Number = TypeVar("_Number", float, float | None)


def _describe(value: object) -> str:
    if type(value) is str:
        return repr(value[:40])
    if type(value) is int or type(value) is float:
        return repr(value)
    return type(value).__name__


# A required number is never None (it raises missing_field instead).
@overload
def _number(obj: dict, name: str, payload: bytes, required: Literal[True]) -> float: ...
@overload
def _number(obj: dict, name: str, payload: bytes, required: bool = False) -> float | None: ...


def _number(obj: dict, name: str, payload: bytes, required: bool = False) -> float | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise DecodeError("missing_field", f"missing field {name!r}", payload)
        return None
    # orjson yields exact types; `type(True) is int` is False, which keeps booleans out.
    if type(value) is not int and type(value) is not float:
        raise DecodeError("bad_value", f"{name} must be a number, got {_describe(value)}", payload)
    if type(value) is float and not math.isfinite(value):
        raise DecodeError("out_of_range", f"{name} {_describe(value)} is not finite", payload)
    return float(value)


def _within(value: _Number, name: str, low: float, high: float, payload: bytes) -> _Number:
    if value is not None and not (low <= value <= high):
        raise DecodeError("out_of_range", f"{name} {value!r} is outside {low:g}..{high:g}", payload)
    return value


def _unknown_if_negative(value: float | None) -> float | None:
    return None if value is not None and value < 0 else value


def decode(payload: bytes, device_id: str, tz: tzinfo = UTC) -> Decoded:
    """One OwnTracks message; raises DecodeError for a message that is not usable as a whole."""
    payload, data = parse_json(payload)
    if type(data) is not dict:
        raise DecodeError("bad_shape", f"payload is a JSON {type(data).__name__}, not an object", payload)

    kind = data.get("_type")
    if kind is None:
        raise DecodeError("missing_field", "missing field '_type'", payload)
    if type(kind) is not str:
        raise DecodeError("bad_value", f"_type must be a string, got {_describe(kind)}", payload)
    if kind == "encrypted":
        raise DecodeError("encrypted", "payload is encrypted; turn encryption off in the OwnTracks app", payload)
    if kind != "location":
        return Decoded()

    lat = _within(_number(data, "lat", payload, required=True), "lat", -90, 90, payload)
    lon = _within(_number(data, "lon", payload, required=True), "lon", -180, 180, payload)
    tst = data.get("tst")
    if tst is None:
        raise DecodeError("missing_field", "missing field 'tst'", payload)
    if type(tst) is not int:
        raise DecodeError("bad_value", f"tst must be integer epoch seconds, got {_describe(tst)}", payload)
    try:
        when = from_epoch_ms(tst * 1000)
    except TimeError as exc:
        raise DecodeError("out_of_range", f"tst {tst}: {exc}", payload) from None
    speed = _within(_unknown_if_negative(_number(data, "vel", payload)), "vel", 0, 2000, payload)
    heading = _within(_unknown_if_negative(_number(data, "cog", payload)), "cog", 0, 360, payload)
    alt = _number(data, "alt", payload)
    accuracy = _number(data, "acc", payload)

    flags = []
    if lat == 0 and lon == 0:
        flags.append("zero_position")
    if accuracy is not None and accuracy > LOW_ACCURACY_M:
        flags.append("low_accuracy")
    lat, lon = lat + 0.0, lon + 0.0  # -0.0 and 0.0 are one place and must give one key
    fix = Fix(
        device_id=device_id,
        time=when,
        utc_offset_min=offset_minutes(when, tz),
        lat=lat,
        lon=lon,
        speed_kmh=speed,
        heading=heading,
        alt=alt,
        valid="zero_position" not in flags,
        flags=flags,
        source=SOURCE,
        key=idempotency_key("fix", device_id, tst * 1000, lat, lon),
    )
    return Decoded(events=[fix])
