"""JSON events on MQTT `devices/{id}/events`: one object or an array of them.

`type` picks punch | access | fix (see CONTRACT.md, "MQTT"). A payload that is
wrong as a whole raises DecodeError; a bad element of an array becomes one
reject and the other elements are kept.

This is the hot path, so element checks use `type(x) is ...`: orjson only ever
produces exact dict/list/str/int/float/bool/None, and `type(True) is int` is
False, which keeps booleans out of numeric fields for free. A JSON `null` in a
field counts as the field being absent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import tzinfo
from typing import Literal, overload

import orjson

from gateway.core.events import AccessEvent, Event, Fix, Punch, idempotency_key
from gateway.core.timeutil import parse_device_time, to_epoch_ms
from gateway.devices.base import Decoded, parse_json
from gateway.devices.errors import DecodeError

SOURCE = "mqtt-json"

VERIFY_KINDS = frozenset({"fingerprint", "card", "face", "password", "palm"})
DIRECTIONS = frozenset({"in", "out", "unknown"})
CREDENTIAL_KINDS = frozenset({"card", "pin", "qr"})
# "pending": the controller asks the gateway to decide (and waits for open_door or deny_access).
RESULTS = frozenset({"granted", "denied", "pending"})
# Stored as a signed 64-bit column; orjson hands out ints up to 2**64 - 1.
_MAX_SEQ = 2**63 - 1


class _Reject(Exception):
    """One element's failure; becomes a DecodeError with the element as raw."""

    __slots__ = ("reason", "detail")

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail


def _missing(name: str) -> _Reject:
    return _Reject("missing_field", f"missing field {name!r}")


def _bad(name: str, value: object, expected: str) -> _Reject:
    return _Reject("bad_value", f"{name} must be {expected}, got {_describe(value)}")


def _describe(value: object) -> str:
    if type(value) is str:
        return repr(value[:40])
    if type(value) is int or type(value) is float:
        return repr(value)  # at most ~24 characters from orjson
    return type(value).__name__


def _time(obj: dict, tz: tzinfo) -> tuple:
    value = obj.get("time")
    if value is None:
        raise _missing("time")
    try:
        utc, offset = parse_device_time(value, tz)
    except (ValueError, OverflowError) as exc:
        # TimeError is a ValueError; an offset pushing year 9999 past the end
        # of datetime's range surfaces as OverflowError.
        raise _Reject("bad_time", str(exc)) from None
    return utc, offset


def _direction(obj: dict) -> str:
    value = obj.get("direction")
    if value is None:
        return "unknown"
    if type(value) is str and value in DIRECTIONS:
        return value
    raise _bad("direction", value, "in, out or unknown")


# A required number is never None (it raises missing_field instead).
@overload
def _number(obj: dict, name: str, low: float | None, high: float | None, required: Literal[True]) -> float: ...
@overload
def _number(obj: dict, name: str, low: float | None, high: float | None, required: bool) -> float | None: ...


def _number(obj: dict, name: str, low: float | None, high: float | None, required: bool) -> float | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise _missing(name)
        return None
    kind = type(value)
    if kind is not float and kind is not int:
        raise _bad(name, value, "a number")
    # Written so NaN and infinities fail the range test too.
    if low is not None and not (low <= value <= high):
        raise _Reject("out_of_range", f"{name} {_describe(value)} is outside {low:g}..{high:g}")
    if low is None and not math.isfinite(value):
        raise _Reject("out_of_range", f"{name} {_describe(value)} is not finite")
    return float(value)


def _identifier(value: object, name: str, max_len: int) -> str:
    """A required id-like field: a non-empty string (an integer is taken as its digits)."""
    if type(value) is int:
        value = str(value)
    elif value is None or value == "":
        raise _missing(name)
    elif type(value) is not str:
        raise _bad(name, value, "a string or an integer")
    if len(value) > max_len:
        raise _Reject("out_of_range", f"{name} is longer than {max_len} characters")
    return value


def _punch(obj: dict, device_id: str, tz: tzinfo) -> Punch:
    user = _identifier(obj.get("user"), "user", 64)

    verify = obj.get("verify")
    if verify is None:
        verify = "other:"
    elif type(verify) is str:
        if verify not in VERIFY_KINDS:
            verify = "other:" + verify
    else:
        raise _bad("verify", verify, "a string")

    direction = _direction(obj)

    seq = obj.get("seq")
    if seq is not None:
        if type(seq) is not int:
            raise _bad("seq", seq, "an integer")
        if not (0 <= seq <= _MAX_SEQ):
            raise _Reject("out_of_range", f"seq {_describe(seq)} is outside 0..{_MAX_SEQ}")

    utc, offset = _time(obj, tz)
    key = idempotency_key("punch", device_id, user, to_epoch_ms(utc), direction, seq)
    return Punch(
        device_id=device_id,
        user=user,
        time=utc,
        utc_offset_min=offset,
        direction=direction,
        verify=verify,
        source=SOURCE,
        seq=seq,
        key=key,
    )


def _access(obj: dict, device_id: str, tz: tzinfo) -> AccessEvent:
    door = obj.get("door")
    if door is None or door == "":
        raise _missing("door")
    if type(door) is not str:
        raise _bad("door", door, "a string")
    if len(door) > 64:
        raise _Reject("out_of_range", "door is longer than 64 characters")

    cred = obj.get("credential")
    if cred is None:
        raise _missing("credential")
    if type(cred) is not dict:
        raise _bad("credential", cred, "an object")
    kind = cred.get("kind")
    if kind is None:
        raise _missing("credential.kind")
    if type(kind) is not str or kind not in CREDENTIAL_KINDS:
        raise _bad("credential.kind", kind, "card, pin or qr")
    value = _identifier(cred.get("value"), "credential.value", 128)
    bits = cred.get("bits")
    if bits is not None:
        if type(bits) is not int:
            raise _bad("credential.bits", bits, "an integer")
        if not (1 <= bits <= 256):
            raise _Reject("out_of_range", f"credential.bits {_describe(bits)} is outside 1..256")

    result = obj.get("result")
    if result is None:
        raise _missing("result")
    if type(result) is not str or result not in RESULTS:
        raise _bad("result", result, "granted, denied or pending")

    direction = _direction(obj)
    utc, offset = _time(obj, tz)
    key = idempotency_key("access", device_id, door, to_epoch_ms(utc), kind, value, result)
    return AccessEvent(
        device_id=device_id,
        door=door,
        time=utc,
        utc_offset_min=offset,
        credential_kind=kind,
        credential_value=value,
        credential_bits=bits,
        result=result,
        direction=direction,
        source=SOURCE,
        key=key,
    )


def _fix(obj: dict, device_id: str, tz: tzinfo) -> Fix:
    lat = _number(obj, "lat", -90, 90, True)
    lon = _number(obj, "lon", -180, 180, True)
    speed = _number(obj, "speed_kmh", 0, 1000, False)
    heading = _number(obj, "heading", 0, 360, False)
    alt = _number(obj, "alt", None, None, False)

    sats = obj.get("sats")
    if sats is not None:
        if type(sats) is not int:
            raise _bad("sats", sats, "an integer")
        if not (0 <= sats <= 99):
            raise _Reject("out_of_range", f"sats {_describe(sats)} is outside 0..99")

    ignition = obj.get("ignition")
    if ignition is not None and type(ignition) is not bool:
        raise _bad("ignition", ignition, "true or false")

    utc, offset = _time(obj, tz)
    ms = to_epoch_ms(utc)
    fix = Fix(
        device_id=device_id,
        time=utc,
        utc_offset_min=offset,
        lat=lat,
        lon=lon,
        speed_kmh=speed,
        heading=heading,
        alt=alt,
        sats=sats,
        ignition=ignition,
        source=SOURCE,
        key=idempotency_key("fix", device_id, ms, lat, lon),
    )
    if lat == 0 and lon == 0:
        fix.valid = False
        fix.flags = ["zero_position"]
    return fix


_DECODERS: dict[str, Callable[[dict, str, tzinfo], Event]] = {"punch": _punch, "access": _access, "fix": _fix}


def _raw(element: object, payload: bytes) -> bytes:
    try:
        return orjson.dumps(element)
    except Exception:  # nesting deeper than orjson.dumps allows
        return payload


def decode(payload: bytes, device_id: str, tz: tzinfo) -> Decoded:
    """Decode one message; raises DecodeError only for a payload wrong as a whole."""
    payload, data = parse_json(payload)
    elements: Sequence[object]
    if type(data) is dict:
        elements = (data,)
    elif type(data) is list:
        if not data:
            raise DecodeError("bad_shape", "empty array", payload)
        elements = data
    else:
        raise DecodeError("bad_shape", f"payload is a JSON {type(data).__name__}, not an object or array", payload)

    out = Decoded()
    events = out.events
    rejects = out.rejects
    decoders = _DECODERS
    for index, obj in enumerate(elements):
        try:
            if type(obj) is not dict:
                raise _Reject("bad_shape", f"element {index} is a {type(obj).__name__}, not an object")
            kind = obj.get("type")
            fn = decoders.get(kind) if type(kind) is str else None
            if fn is None:
                if kind is None:
                    raise _missing("type")
                raise _Reject("unknown_type", f"unknown type {_describe(kind)}")
            events.append(fn(obj, device_id, tz))
        except _Reject as rej:
            rejects.append(DecodeError(rej.reason, rej.detail, _raw(obj, payload)))
        except Exception as exc:  # a bug here must not take the pipeline down
            rejects.append(
                DecodeError("bad_value", f"unexpected {type(exc).__name__}: {exc}"[:200], _raw(obj, payload))
            )
    return out
