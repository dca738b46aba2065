"""NMEA 0183 from a GNSS receiver on a serial line: RMC, GGA and VTG merged into one fix per epoch.

Sans-IO and stateful: one `NmeaReader` per serial line. `feed` takes whatever
bytes the port had waiting (any chunking) and returns the fixes completed so
far; `flush` hands out the epoch still being assembled (call it when the line
goes quiet or closes, or the last epoch would wait for the next sentence).

Framing. A line ends at LF or CR. A sentence starts at `$`; bytes before the
first `$` of a line are line noise (a port opened mid-sentence starts with
some) and are ignored, and a line holding several `$` is split at each one,
so a sentence cut off by a glitch cannot swallow the next. A line longer than
`max_line` bytes is rejected once as `line_too_long` and only what follows its
last `$` is kept, so garbage without line ends never grows memory.

Rejects (in `Decoded.rejects`, the sentence is dropped):
  missing_checksum  no `*hh`: every receiver since NMEA 2.0 sends one, and on a
                    serial line it is the only guard against line noise
  bad_checksum      `*hh` malformed or not the XOR of the bytes between `$` and `*`
  bad_sentence      a field that cannot be read, or a fix claimed without a position
  line_too_long     no line end within `max_line` bytes
Any talker is accepted (GP, GN, BD, GB, GL, GA, ...); sentence types other
than RMC, GGA and VTG (GSV, GSA, TXT, proprietary) are ignored silently.

Epochs and emission. An epoch is one UTC time of day; RMC and GGA carry it,
VTG has none and joins the epoch of the sentence before it. The epoch is
emitted as one Fix as soon as it has both an RMC and a GGA, otherwise when a
sentence with another time arrives, or at `flush()`. Sentences arriving for
an epoch already emitted are ignored (a late VTG, a second talker's copy).
Missing trailing fields and empty fields are unknown (None), never zero.

Dates. RMC carries ddmmyy (read as 2000-2099); its date is trusted only with
status A. An epoch without a trusted RMC date borrows the date of the last
trusted RMC (moving to the next day across midnight), if that RMC arrived at
most 12 hours earlier by the gateway's clock; otherwise the epoch is dropped,
as there is no telling which day it belongs to.

No fix. RMC status V (or mode N), a GGA quality of 0 or empty: the epoch has
no fix. Without a position nothing is emitted (the receiver knows nothing);
with one, the Fix is emitted with valid=False and flag "no_fix" so the store
shows where the receiver lost it. A position of exactly 0/0 is valid=False
with flag "zero_position"; dead reckoning (RMC mode E, GGA quality 6) adds
flag "estimated".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import reduce
from operator import xor

from gateway.core.events import Fix, idempotency_key
from gateway.core.timeutil import offset_minutes, to_epoch_ms
from gateway.devices.base import Decoded
from gateway.devices.errors import DecodeError

SOURCE = "nmea"
MAX_LINE = 200  # NMEA allows 82 characters; high-precision receivers go a little past it
KNOT_KMH = 1.852
# How long the date of the last good RMC may be lent to epochs without one.
BORROW_LIMIT = timedelta(hours=12)

_TIME = re.compile(r"([01][0-9]|2[0-3])([0-5][0-9])([0-5][0-9])(?:\.([0-9]{1,6}))?", re.ASCII)
_DATE = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{2})", re.ASCII)
_LAT = re.compile(r"([0-9]{1,2})([0-5][0-9](?:\.[0-9]{0,12})?)", re.ASCII)
_LON = re.compile(r"([0-9]{1,3})([0-5][0-9](?:\.[0-9]{0,12})?)", re.ASCII)
_UNSIGNED = re.compile(r"[0-9]{1,9}(?:\.[0-9]{0,9})?|\.[0-9]{1,9}", re.ASCII)
_SIGNED = re.compile(r"-?(?:[0-9]{1,9}(?:\.[0-9]{0,9})?|\.[0-9]{1,9})", re.ASCII)
_HEX2 = re.compile(rb"[0-9A-Fa-f]{2}")


class _Bad(Exception):
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
        raise _Bad(f"time {text[:20]!r} is not hhmmss(.ss)")
    hh, mm, ss, frac = m.groups()
    ms = int((frac or "").ljust(3, "0")[:3])
    return ((int(hh) * 60 + int(mm)) * 60 + int(ss)) * 1000 + ms


def _date(text: str) -> date | None:
    if not text:
        return None
    m = _DATE.fullmatch(text)
    if m is None:
        raise _Bad(f"date {text[:20]!r} is not ddmmyy")
    dd, mm, yy = (int(g) for g in m.groups())
    try:
        return date(2000 + yy, mm, dd)
    except ValueError:
        raise _Bad(f"date {text!r} does not exist") from None


def _angle(text: str, hemisphere: str, pattern: re.Pattern, limit: int, signs: str) -> float | None:
    """ddmm.mmmm / dddmm.mmmm plus hemisphere to signed degrees; empty is unknown."""
    if not text:
        return None
    m = pattern.fullmatch(text)
    if m is None:
        raise _Bad(f"coordinate {text[:20]!r} is not (d)ddmm.mmmm")
    degrees = int(m.group(1)) + float(m.group(2)) / 60.0
    if degrees > limit:
        raise _Bad(f"coordinate {text!r} is beyond {limit} degrees")
    if hemisphere == signs[0]:
        return degrees + 0.0
    if hemisphere == signs[1]:
        return -degrees + 0.0  # + 0.0 turns -0.0 into 0.0: same key whatever the hemisphere
    raise _Bad(f"hemisphere {hemisphere[:5]!r} is not {signs[0]} or {signs[1]}")


def _position(fields: list[str], at: int) -> tuple[float, float] | None:
    lat = _angle(fields[at], fields[at + 1], _LAT, 90, "NS")
    lon = _angle(fields[at + 2], fields[at + 3], _LON, 180, "EW")
    if (lat is None) != (lon is None):
        raise _Bad("latitude or longitude is missing")
    return None if lat is None else (lat, lon)


def _number(text: str, name: str, signed: bool = False, high: float | None = None) -> float | None:
    if not text:
        return None
    if (_SIGNED if signed else _UNSIGNED).fullmatch(text) is None:
        raise _Bad(f"{name} {text[:20]!r} is not a decimal number")
    value = float(text)
    if high is not None and value > high:
        raise _Bad(f"{name} {text!r} is above {high:g}")
    return value


def _integer(text: str, name: str, digits: int) -> int | None:
    if not text:
        return None
    if not (len(text) <= digits and text.isascii() and text.isdigit()):
        raise _Bad(f"{name} {text[:20]!r} is not a number of at most {digits} digits")
    return int(text)


# --- sentences -----------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class _Rmc:
    time_ms: int | None
    has_fix: bool
    position: tuple[float, float] | None
    speed_knots: float | None
    course: float | None
    date: date | None
    estimated: bool


@dataclass(slots=True, frozen=True)
class _Gga:
    time_ms: int | None
    has_fix: bool
    position: tuple[float, float] | None
    sats: int | None
    hdop: float | None
    alt: float | None
    estimated: bool


@dataclass(slots=True, frozen=True)
class _Vtg:  # no time of its own: it joins the epoch of the sentence before it
    course: float | None
    speed_kmh: float | None


def _padded(fields: list[str], count: int) -> list[str]:
    # A sentence that stops early leaves its missing fields unknown.
    return fields + [""] * (count - len(fields)) if len(fields) < count else fields


def _rmc(fields: list[str]) -> _Rmc:
    f = _padded(fields, 14)
    status, mode = f[2], f[12]
    if status not in ("A", "V"):
        raise _Bad(f"status {status[:5]!r} is not A or V")
    has_fix = status == "A" and mode != "N"
    position = _position(f, 3)
    if has_fix and position is None:
        raise _Bad("status A without a position")
    return _Rmc(
        time_ms=_time_of_day_ms(f[1]),
        has_fix=has_fix,
        position=position,
        speed_knots=_number(f[7], "speed"),
        course=_number(f[8], "course", high=360.0),
        date=_date(f[9]),
        estimated=mode == "E",
    )


def _gga(fields: list[str]) -> _Gga:
    f = _padded(fields, 15)
    quality = _integer(f[6], "fix quality", 1)
    has_fix = bool(quality)  # 0 is no fix; empty is no claim of a fix either
    position = _position(f, 2)
    if has_fix and position is None:
        raise _Bad(f"fix quality {quality} without a position")
    return _Gga(
        time_ms=_time_of_day_ms(f[1]),
        has_fix=has_fix,
        position=position,
        sats=_integer(f[7], "satellites", 2),
        hdop=_number(f[8], "HDOP"),
        alt=_number(f[9], "altitude", signed=True),
        estimated=quality == 6,
    )


def _vtg(fields: list[str]) -> _Vtg:
    f = _padded(fields, 10)
    course = _number(f[1], "course", high=360.0)
    knots = _number(f[5], "speed")
    kmh = _number(f[7], "speed")
    if f[9] == "N":  # the receiver says these values are not valid
        return _Vtg(None, None)
    if kmh is None and knots is not None:
        kmh = knots * KNOT_KMH
    return _Vtg(course, kmh)


_PARSERS = {"RMC": _rmc, "GGA": _gga, "VTG": _vtg}


# --- assembly ------------------------------------------------------------------------


@dataclass(slots=True)
class _Epoch:
    time_ms: int
    rmc: _Rmc | None = None
    gga: _Gga | None = None
    vtg: _Vtg | None = None


class NmeaReader:
    """Turns one serial line's NMEA byte stream into Fix events (see the module docstring)."""

    def __init__(self, device_id: str, *, tz: tzinfo = UTC, max_line: int = MAX_LINE) -> None:
        self.device_id = device_id
        self.tz = tz  # only for utc_offset_min: NMEA times are UTC
        self.max_line = max_line
        self._buffer = b""
        self._overflowing = False
        self._epoch: _Epoch | None = None
        self._last_emitted_ms: int | None = None
        self._trusted: tuple[datetime, datetime] | None = None  # (last good RMC time, received then)
        self._received = datetime.min.replace(tzinfo=UTC)  # set by every feed

    @property
    def buffered_bytes(self) -> int:
        """Bytes of an unfinished line held for the next feed (never much more than max_line)."""
        return len(self._buffer)

    def feed(self, data: bytes, received: datetime) -> Decoded:
        """Take the next chunk from the port; `received` is when it arrived (aware datetime)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError("bad_shape", f"data is a {type(data).__name__}, not bytes", b"")
        self._received = received
        out = Decoded()
        *lines, rest = (self._buffer + bytes(data).replace(b"\r", b"\n")).split(b"\n")
        for line in lines:
            self._line(self._bounded(line, out), out)
            self._overflowing = False  # a line end closes the overlong line
        self._buffer = self._bounded(rest, out)
        return out

    def flush(self) -> Decoded:
        """Emit the epoch still being assembled; a partial line stays buffered."""
        out = Decoded()
        if self._epoch is not None:
            self._finish(out)
        return out

    # --- lines and sentences ---

    def _bounded(self, line: bytes, out: Decoded) -> bytes:
        """An overlong line reported once and cut to the sentence that may start at its last `$`."""
        if len(line) <= self.max_line:
            return line
        if not self._overflowing:
            out.rejects.append(
                DecodeError("line_too_long", f"no line end within {self.max_line} bytes", line[: self.max_line])
            )
            self._overflowing = True
        start = line.rfind(b"$")
        return line[start:] if start >= 0 and len(line) - start <= self.max_line else b""

    def _line(self, line: bytes, out: Decoded) -> None:
        for piece in line.split(b"$")[1:]:  # what precedes the first `$` is noise
            raw = b"$" + piece.rstrip(b" \t")
            try:
                self._sentence(raw, out)
            except _Bad as exc:
                out.rejects.append(DecodeError("bad_sentence", str(exc), raw))
            except DecodeError as exc:
                out.rejects.append(exc)
            except Exception as exc:  # a bug here must not take the serial line down
                out.rejects.append(DecodeError("bad_sentence", f"unexpected {type(exc).__name__}: {exc}"[:200], raw))

    def _sentence(self, raw: bytes, out: Decoded) -> None:
        star = raw.find(b"*")
        if star < 0:
            raise DecodeError("missing_checksum", "sentence has no *hh checksum", raw)
        body, given = raw[1:star], raw[star + 1 :]
        if _HEX2.fullmatch(given) is None:
            raise DecodeError("bad_checksum", f"checksum field {given[:8]!r} is not two hex digits", raw)
        computed = checksum(body)
        if computed != int(given, 16):
            raise DecodeError("bad_checksum", f"checksum is {computed:02X}, sentence says {given.decode()}", raw)
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError as exc:
            raise _Bad(f"non-ASCII byte at {exc.start + 1}") from None
        fields = text.split(",")
        address = fields[0]
        parser = _PARSERS.get(address[2:]) if len(address) == 5 else None
        if parser is not None:
            self._take(parser(fields), out)

    def _take(self, sentence: _Rmc | _Gga | _Vtg, out: Decoded) -> None:
        epoch = self._epoch
        if type(sentence) is _Vtg:
            if epoch is not None and epoch.vtg is None:
                epoch.vtg = sentence
            return
        if sentence.time_ms is None:
            return  # a receiver that has not even the time yet: nothing to place
        if epoch is not None and epoch.time_ms != sentence.time_ms:
            self._finish(out)  # a new time: the previous epoch is complete
            epoch = None
        if epoch is None:
            if sentence.time_ms == self._last_emitted_ms:
                return  # late sentence of an epoch already emitted
            epoch = self._epoch = _Epoch(sentence.time_ms)
        if type(sentence) is _Rmc:
            epoch.rmc = epoch.rmc or sentence  # the first talker's copy wins
        else:
            epoch.gga = epoch.gga or sentence
        if epoch.rmc is not None and epoch.gga is not None:
            self._finish(out)

    def _finish(self, out: Decoded) -> None:
        epoch, self._epoch = self._epoch, None
        self._last_emitted_ms = epoch.time_ms
        fix = self._fix(epoch)
        if fix is not None:
            out.events.append(fix)

    # --- one epoch to one Fix ---

    def _when(self, epoch: _Epoch) -> datetime | None:
        rmc = epoch.rmc
        offset = timedelta(milliseconds=epoch.time_ms)
        if rmc is not None and rmc.has_fix and rmc.date is not None:
            when = datetime(rmc.date.year, rmc.date.month, rmc.date.day, tzinfo=UTC) + offset
            self._trusted = (when, self._received)
            return when
        if self._trusted is None or abs(self._received - self._trusted[1]) > BORROW_LIMIT:
            return None  # no recent trusted date to borrow: no telling which day it is
        trusted = self._trusted[0]
        when = datetime(trusted.year, trusted.month, trusted.day, tzinfo=UTC) + offset
        if when < trusted - timedelta(hours=12):
            when += timedelta(days=1)  # the time of day wrapped past midnight
        return when

    def _fix(self, epoch: _Epoch) -> Fix | None:
        rmc, gga, vtg = epoch.rmc, epoch.gga, epoch.vtg
        no_fix = (rmc is not None and not rmc.has_fix) or (gga is not None and not gga.has_fix)
        position = (rmc.position if rmc is not None else None) or (gga.position if gga is not None else None)
        if position is None:
            return None  # a no-fix epoch that knows no position: nothing to record
        when = self._when(epoch)
        if when is None:
            return None
        speed = heading = None
        if rmc is not None:
            speed = None if rmc.speed_knots is None else rmc.speed_knots * KNOT_KMH
            heading = rmc.course
        if vtg is not None:
            speed = vtg.speed_kmh if speed is None else speed
            heading = vtg.course if heading is None else heading
        lat, lon = position
        zero = lat == 0 and lon == 0
        estimated = (rmc is not None and rmc.estimated) or (gga is not None and gga.estimated)
        flags = [name for name, on in (("no_fix", no_fix), ("zero_position", zero), ("estimated", estimated)) if on]
        return Fix(
            device_id=self.device_id,
            time=when,
            utc_offset_min=offset_minutes(when, self.tz),
            lat=lat,
            lon=lon,
            speed_kmh=speed,
            heading=heading,
            alt=gga.alt if gga else None,
            sats=gga.sats if gga else None,
            hdop=gga.hdop if gga else None,
            valid=not (no_fix or zero),
            flags=flags,
            source=SOURCE,
            key=idempotency_key("fix", self.device_id, to_epoch_ms(when), lat, lon),
        )
