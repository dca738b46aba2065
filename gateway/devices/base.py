from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.core.events import Event
from gateway.devices.errors import DecodeError


@dataclass(slots=True)
class Decoded:
    """What a codec made of one input: the events, and the parts it rejected.

    A payload that is wrong as a whole raises DecodeError instead; a payload
    with some bad elements (one bad object in an array, one bad ATTLOG line)
    yields the good events here and one DecodeError per bad element.
    """

    events: list[Event] = field(default_factory=list)
    rejects: list[DecodeError] = field(default_factory=list)


def parse_json(payload: object) -> tuple[bytes, Any]:
    """(the payload as bytes, its JSON value); DecodeError bad_shape / bad_utf8 / bad_json otherwise."""
    if type(payload) is not bytes:
        if not isinstance(payload, (bytearray, memoryview)):
            raise DecodeError("bad_shape", f"payload is a {type(payload).__name__}, not bytes", b"")
        payload = bytes(payload)
    try:
        return payload, orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError as uexc:
            raise DecodeError("bad_utf8", f"invalid UTF-8 at byte {uexc.start}", payload) from None
        raise DecodeError("bad_json", str(exc)[:200], payload) from None
