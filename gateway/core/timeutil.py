"""The one place device times are parsed: every codec goes through here."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone, tzinfo

UTC = UTC
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Device clocks before this are unset (the RTC lost power), not real history.
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def check_zone(value: str) -> str:
    """An IANA zone name, or ValueError naming it (empty passes: "use the default")."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if value:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
    return value


class TimeError(ValueError):
    """A device time that cannot be understood or is out of range."""


def _check_range(dt: datetime) -> datetime:
    if not (_EARLIEST <= dt < _LATEST):
        raise TimeError(f"time {dt.isoformat()} is outside 2000..2200")
    return dt


def from_epoch_ms(value: int) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TimeError("epoch time must be an integer of milliseconds")
    if not (0 <= value < 7_258_118_400_000):
        raise TimeError(f"epoch milliseconds {value} out of range")
    return _check_range(_EPOCH + timedelta(milliseconds=value))


def localize(naive: datetime, tz: tzinfo) -> datetime:
    """Attach the device's zone to a wall-clock time and convert to UTC."""
    try:
        return _check_range(naive.replace(tzinfo=tz).astimezone(UTC))
    except OverflowError:
        raise TimeError(f"time {naive.isoformat()} is out of range") from None


def parse_device_time(value: object, tz: tzinfo) -> tuple[datetime, int]:
    """RFC 3339 with offset, RFC 3339 without offset (device local) or epoch ms.

    Returns the UTC time and the offset in minutes the device had at that instant.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        utc = from_epoch_ms(value)
        return utc, offset_minutes(utc, tz)
    if not isinstance(value, str):
        raise TimeError("time must be an RFC 3339 string or epoch milliseconds")
    text = value.strip()
    if len(text) < 19 or text[10] not in "Tt ":
        raise TimeError(f"not an RFC 3339 date-time: {value[:40]!r}")
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise TimeError(f"not an RFC 3339 date-time: {value[:40]!r}") from None
    if dt.tzinfo is None:
        utc = localize(dt, tz)
        return utc, offset_minutes(utc, tz)
    offset = dt.utcoffset()
    try:
        utc = _check_range(dt.astimezone(UTC))
    except OverflowError:
        raise TimeError(f"time {value[:40]!r} is out of range") from None
    return utc, int(offset.total_seconds() // 60) if offset is not None else 0


def offset_minutes(utc: datetime, tz: tzinfo) -> int:
    offset = utc.astimezone(tz).utcoffset()
    return int(offset.total_seconds() // 60) if offset is not None else 0


_MS = timedelta(milliseconds=1)


def to_epoch_ms(dt: datetime) -> int:
    return (dt - _EPOCH) // _MS


def epoch_ms_to_utc(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def iso_utc(ms: int) -> str:
    """The API's time form: UTC with a Z."""
    dt = epoch_ms_to_utc(ms)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if ms % 1000:
        text += f".{ms % 1000:03d}"
    return text + "Z"


def iso_local(ms: int, offset_min: int) -> str:
    tz = timezone(timedelta(minutes=offset_min))
    dt = epoch_ms_to_utc(ms).astimezone(tz)
    return dt.isoformat(timespec="milliseconds" if ms % 1000 else "seconds")


def parse_query_time(value: str) -> int:
    """An RFC 3339 query parameter to epoch ms; a time without offset is UTC."""
    text = value.strip()
    if text[-1:] in "zZ":
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return to_epoch_ms(dt)


def now_ms() -> int:
    """The one clock reading the store keeps: UTC epoch milliseconds."""
    return int(time.time() * 1000)
