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

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from gateway.core.events import Fix, idempotency_key
from gateway.core.timeutil import offset_minutes, to_epoch_ms
from gateway.devices.base import Decoded
from gateway.devices.errors import DecodeError
from gateway.devices.nmea_sentences import HEX2, KNOT_KMH, PARSERS, BadField, Gga, Rmc, Vtg, checksum

SOURCE = "nmea"
MAX_LINE = 200  # NMEA allows 82 characters; high-precision receivers go a little past it
# How long the date of the last good RMC may be lent to epochs without one.
BORROW_LIMIT = timedelta(hours=12)

__all__ = ["MAX_LINE", "SOURCE", "NmeaReader", "checksum"]


# --- assembly ------------------------------------------------------------------------


@dataclass(slots=True)
class _Epoch:
    time_ms: int
    rmc: Rmc | None = None
    gga: Gga | None = None
    vtg: Vtg | None = None


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
            self._finish(self._epoch, out)
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
            except BadField as exc:
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
        if HEX2.fullmatch(given) is None:
            raise DecodeError("bad_checksum", f"checksum field {given[:8]!r} is not two hex digits", raw)
        computed = checksum(body)
        if computed != int(given, 16):
            raise DecodeError("bad_checksum", f"checksum is {computed:02X}, sentence says {given.decode()}", raw)
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError as exc:
            raise BadField(f"non-ASCII byte at {exc.start + 1}") from None
        fields = text.split(",")
        address = fields[0]
        parser = PARSERS.get(address[2:]) if len(address) == 5 else None
        if parser is not None:
            self._take(parser(fields), out)

    def _take(self, sentence: Rmc | Gga | Vtg, out: Decoded) -> None:
        epoch = self._epoch
        if type(sentence) is Vtg:
            if epoch is not None and epoch.vtg is None:
                epoch.vtg = sentence
            return
        if sentence.time_ms is None:
            return  # a receiver that has not even the time yet: nothing to place
        if epoch is not None and epoch.time_ms != sentence.time_ms:
            self._finish(epoch, out)  # a new time: the previous epoch is complete
            epoch = None
        if epoch is None:
            if sentence.time_ms == self._last_emitted_ms:
                return  # late sentence of an epoch already emitted
            epoch = self._epoch = _Epoch(sentence.time_ms)
        if type(sentence) is Rmc:
            epoch.rmc = epoch.rmc or sentence  # the first talker's copy wins
        else:
            epoch.gga = epoch.gga or sentence
        if epoch.rmc is not None and epoch.gga is not None:
            self._finish(epoch, out)

    def _finish(self, epoch: _Epoch, out: Decoded) -> None:
        """Emit `epoch`, the one being assembled."""
        self._epoch = None
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
