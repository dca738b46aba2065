from __future__ import annotations

from dataclasses import dataclass, field

from gateway.devices.errors import DecodeError
from gateway.events import Event


@dataclass(slots=True)
class Decoded:
    """What a codec made of one input: the events, and the parts it rejected.

    A payload that is wrong as a whole raises DecodeError instead; a payload
    with some bad elements (one bad object in an array, one bad ATTLOG line)
    yields the good events here and one DecodeError per bad element.
    """

    events: list[Event] = field(default_factory=list)
    rejects: list[DecodeError] = field(default_factory=list)
