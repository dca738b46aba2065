"""NMEA 0183 sentences: the checksum and the fields of RMC, GGA and VTG, one sentence at a time.

The reader in `gateway.devices.nmea` frames the lines and merges these sentences into fixes.
Missing trailing fields and empty fields are unknown (None), never zero.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import reduce
from operator import xor
from typing import final

KNOT_KMH = 1.852

_TIME = re.compile(r"([01][0-9]|2[0-3])([0-5][0-9])([0-5][0-9])(?:\.([0-9]{1,6}))?", re.ASCII)
_DATE = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{2})", re.ASCII)
_LAT = re.compile(r"([0-9]{1,2})([0-5][0-9](?:\.[0-9]{0,12})?)", re.ASCII)
_LON = re.compile(r"([0-9]{1,3})([0-5][0-9](?:\.[0-9]{0,12})?)", re.ASCII)
_UNSIGNED = re.compile(r"[0-9]{1,9}(?:\.[0-9]{0,9})?|\.[0-9]{1,9}", re.ASCII)
_SIGNED = re.compile(r"-?(?:[0-9]{1,9}(?:\.[0-9]{0,9})?|\.[0-9]{1,9})", re.ASCII)
HEX2 = re.compile(rb"[0-9A-Fa-f]{2}")


class BadField(Exception):
    """One unreadable field; the sentence becomes a bad_sentence reject."""


def checksum(body: bytes) -> int:
    """XOR of the bytes between `$` and `*`."""
    return reduce(xor, body, 0)


# --- fields --------------------------------------------------------------------------


def _time_of_day_ms(text: str) -> int | None:
    if not text:
        return None
    m = _TIME.fullmatch(text)
    if m is None:
        raise BadField(f"time {text[:20]!r} is not hhmmss(.ss)")
    hh, mm, ss, frac = m.groups()
    ms = int((frac or "").ljust(3, "0")[:3])
    return ((int(hh) * 60 + int(mm)) * 60 + int(ss)) * 1000 + ms


def _date(text: str) -> date | None:
    if not text:
        return None
    m = _DATE.fullmatch(text)
    if m is None:
        raise BadField(f"date {text[:20]!r} is not ddmmyy")
    dd, mm, yy = (int(g) for g in m.groups())
    try:
        return date(2000 + yy, mm, dd)
    except ValueError:
        raise BadField(f"date {text!r} does not exist") from None


def _angle(text: str, hemisphere: str, pattern: re.Pattern, limit: int, signs: str) -> float | None:
    """ddmm.mmmm / dddmm.mmmm plus hemisphere to signed degrees; empty is unknown."""
    if not text:
        return None
    m = pattern.fullmatch(text)
    if m is None:
        raise BadField(f"coordinate {text[:20]!r} is not (d)ddmm.mmmm")
    degrees = int(m.group(1)) + float(m.group(2)) / 60.0
    if degrees > limit:
        raise BadField(f"coordinate {text!r} is beyond {limit} degrees")
    if hemisphere == signs[0]:
        return degrees + 0.0
    if hemisphere == signs[1]:
        return -degrees + 0.0  # + 0.0 turns -0.0 into 0.0: same key whatever the hemisphere
    raise BadField(f"hemisphere {hemisphere[:5]!r} is not {signs[0]} or {signs[1]}")


def _position(fields: list[str], at: int) -> tuple[float, float] | None:
    lat = _angle(fields[at], fields[at + 1], _LAT, 90, "NS")
    lon = _angle(fields[at + 2], fields[at + 3], _LON, 180, "EW")
    if (lat is None) != (lon is None):
        raise BadField("latitude or longitude is missing")
    return None if lat is None or lon is None else (lat, lon)


def _number(text: str, name: str, signed: bool = False, high: float | None = None) -> float | None:
    if not text:
        return None
    if (_SIGNED if signed else _UNSIGNED).fullmatch(text) is None:
        raise BadField(f"{name} {text[:20]!r} is not a decimal number")
    value = float(text)
    if high is not None and value > high:
        raise BadField(f"{name} {text!r} is above {high:g}")
    return value


def _integer(text: str, name: str, digits: int) -> int | None:
    if not text:
        return None
    if not (len(text) <= digits and text.isascii() and text.isdigit()):
        raise BadField(f"{name} {text[:20]!r} is not a number of at most {digits} digits")
    return int(text)


# --- sentences -----------------------------------------------------------------------


# Final: the reader tells the sentences apart with the cheap `type(s) is`, which narrows only final classes.
@final
@dataclass(slots=True, frozen=True)
class Rmc:
    time_ms: int | None
    has_fix: bool
    position: tuple[float, float] | None
    speed_knots: float | None
    course: float | None
    date: date | None
    estimated: bool


@final
@dataclass(slots=True, frozen=True)
class Gga:
    time_ms: int | None
    has_fix: bool
    position: tuple[float, float] | None
    sats: int | None
    hdop: float | None
    alt: float | None
    estimated: bool


@final
@dataclass(slots=True, frozen=True)
class Vtg:  # no time of its own: it joins the epoch of the sentence before it
    course: float | None
    speed_kmh: float | None


def _padded(fields: list[str], count: int) -> list[str]:
    # A sentence that stops early leaves its missing fields unknown.
    return fields + [""] * (count - len(fields)) if len(fields) < count else fields


def _rmc(fields: list[str]) -> Rmc:
    f = _padded(fields, 14)
    status, mode = f[2], f[12]
    if status not in ("A", "V"):
        raise BadField(f"status {status[:5]!r} is not A or V")
    has_fix = status == "A" and mode != "N"
    position = _position(f, 3)
    if has_fix and position is None:
        raise BadField("status A without a position")
    return Rmc(
        time_ms=_time_of_day_ms(f[1]),
        has_fix=has_fix,
        position=position,
        speed_knots=_number(f[7], "speed"),
        course=_number(f[8], "course", high=360.0),
        date=_date(f[9]),
        estimated=mode == "E",
    )


def _gga(fields: list[str]) -> Gga:
    f = _padded(fields, 15)
    quality = _integer(f[6], "fix quality", 1)
    has_fix = bool(quality)  # 0 is no fix; empty is no claim of a fix either
    position = _position(f, 2)
    if has_fix and position is None:
        raise BadField(f"fix quality {quality} without a position")
    return Gga(
        time_ms=_time_of_day_ms(f[1]),
        has_fix=has_fix,
        position=position,
        sats=_integer(f[7], "satellites", 2),
        hdop=_number(f[8], "HDOP"),
        alt=_number(f[9], "altitude", signed=True),
        estimated=quality == 6,
    )


def _vtg(fields: list[str]) -> Vtg:
    f = _padded(fields, 10)
    course = _number(f[1], "course", high=360.0)
    knots = _number(f[5], "speed")
    kmh = _number(f[7], "speed")
    if f[9] == "N":  # the receiver says these values are not valid
        return Vtg(None, None)
    if kmh is None and knots is not None:
        kmh = knots * KNOT_KMH
    return Vtg(course, kmh)


PARSERS: dict[str, Callable[[list[str]], Rmc | Gga | Vtg]] = {"RMC": _rmc, "GGA": _gga, "VTG": _vtg}
