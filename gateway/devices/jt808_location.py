"""JT/T 808 location reports: 0x0200 (one fix) and 0x0704 (a batch of them) as Fix events.

Sans-IO like the framing in `jt808`. Locations with status bit 1 clear or at
0/0 come out `valid=False` with the flag "unfixed" / "zero_position"; a
non-zero alarm word adds "alarm:<8 hex digits>"; a blind-area batch (0x0704
type 1) adds "blind_area"; a frame let through despite a bad checksum or
length keeps "bad_checksum" / "bad_length" on its fixes.
"""

from __future__ import annotations

import struct
from datetime import datetime, tzinfo

from gateway.core.events import Fix, idempotency_key
from gateway.core.timeutil import localize, offset_minutes, to_epoch_ms
from gateway.devices.base import Decoded
from gateway.devices.errors import DecodeError
from gateway.devices.jt808 import BATCH_LOCATION, SOURCE, Frame, bcd_digits

# Location status bits
_ACC_ON, _POSITIONED, _SOUTH, _WEST = 1, 2, 4, 8
_LOCATION_FIXED = struct.Struct(">IIIIHHH6s")  # 28 bytes before the additional items


def decode(frame: Frame, device_id: str, tz: tzinfo) -> Decoded:
    """A 0x0200 or 0x0704 frame's fixes; a frame with a bad checksum or length (let through by the
    site's policy) has its fixes flagged."""
    flags = (["bad_checksum"] if not frame.checksum_ok else []) + (["bad_length"] if not frame.length_ok else [])
    if frame.msg_id == BATCH_LOCATION:
        return parse_batch(frame.body, device_id, tz, flags)
    return Decoded([parse_location(frame.body, device_id, tz, flags)])


def _bcd_time(data: bytes, tz: tzinfo, body: bytes) -> datetime:
    digits = bcd_digits(data)
    if digits is None:
        raise DecodeError("bad_time", f"time {data.hex()} is not BCD", body)
    try:
        d = digits  # YYMMDDhhmmss
        naive = datetime(2000 + int(d[0:2]), int(d[2:4]), int(d[4:6]), int(d[6:8]), int(d[8:10]), int(d[10:12]))
        return localize(naive, tz)
    except (ValueError, OverflowError) as exc:  # TimeError is a ValueError
        raise DecodeError("bad_time", f"time {digits}: {exc}", body) from None


def parse_location(body: bytes, device_id: str, tz: tzinfo, flags: list[str] | tuple[str, ...] = ()) -> Fix:
    """0x0200 (also each item of 0x0704) as a Fix; `flags` from the caller are kept on it."""
    body = bytes(body)
    if len(body) < _LOCATION_FIXED.size:
        raise DecodeError("bad_body", f"location of {len(body)} bytes is too short", body)
    alarm, status, lat_raw, lon_raw, alt, speed, direction, stamp = _LOCATION_FIXED.unpack_from(body, 0)
    if lat_raw > 90_000_000 or lon_raw > 180_000_000:
        raise DecodeError("out_of_range", f"position {lat_raw}, {lon_raw} (1e-6 degrees) is off the globe", body)
    utc = _bcd_time(stamp, tz, body)
    # "and lat_raw" keeps 0 from turning into -0.0, which would change the key.
    lat = -lat_raw / 1e6 if status & _SOUTH and lat_raw else lat_raw / 1e6
    lon = -lon_raw / 1e6 if status & _WEST and lon_raw else lon_raw / 1e6
    out_flags = list(flags)
    valid = True
    if not status & _POSITIONED:
        valid = False
        out_flags.append("unfixed")
    if lat_raw == 0 and lon_raw == 0:
        valid = False
        out_flags.append("zero_position")
    if alarm:
        out_flags.append(f"alarm:{alarm:08x}")
    heading: float | None = float(direction)
    if direction > 359:
        heading = None
        out_flags.append("bad_heading")

    odometer = sats = None
    pos = _LOCATION_FIXED.size
    while pos < len(body):
        if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
            out_flags.append("truncated_extra")
            break
        item_id, size = body[pos], body[pos + 1]
        value = body[pos + 2 : pos + 2 + size]
        pos += 2 + size
        if item_id == 0x01:
            if size == 4:
                odometer = int.from_bytes(value, "big") / 10
            else:
                out_flags.append("bad_extra:01")
        elif item_id == 0x31:
            if size == 1:
                sats = value[0]
            else:
                out_flags.append("bad_extra:31")
        # fuel (0x02), recorder speed (0x03), signal (0x30), vendor items (0xE0-0xFF)
        # and the rest have no place on a Fix.

    ms = to_epoch_ms(utc)
    return Fix(
        device_id=device_id,
        time=utc,
        utc_offset_min=offset_minutes(utc, tz),
        lat=lat,
        lon=lon,
        speed_kmh=speed / 10,
        heading=heading,
        alt=float(alt),
        sats=sats,
        ignition=bool(status & _ACC_ON),
        valid=valid,
        flags=out_flags,
        odometer_km=odometer,
        source=SOURCE,
        key=idempotency_key("fix", device_id, ms, lat, lon),
    )


def parse_batch(body: bytes, device_id: str, tz: tzinfo, flags: list[str] | tuple[str, ...] = ()) -> Decoded:
    """0x0704: each item a location; a bad item is a reject and the others still decode."""
    body = bytes(body)
    if len(body) < 3:
        raise DecodeError("bad_body", f"batch of {len(body)} bytes is too short", body)
    count, kind = struct.unpack_from(">HB", body, 0)
    item_flags = list(flags) + (["blind_area"] if kind == 1 else [])
    out = Decoded()
    pos = 3
    for index in range(count):
        if pos + 2 > len(body):
            missing = count - index
            out.rejects.append(DecodeError("truncated", f"{missing} of {count} items missing", body[pos:]))
            break
        (size,) = struct.unpack_from(">H", body, pos)
        item = body[pos + 2 : pos + 2 + size]
        pos += 2 + size
        if len(item) < size:
            out.rejects.append(DecodeError("truncated", f"item {index}: {len(item)} of {size} bytes", item))
            break
        try:
            out.events.append(parse_location(item, device_id, tz, item_flags))
        except DecodeError as exc:
            out.rejects.append(DecodeError(exc.reason, f"item {index}: {exc.detail}", item))
        except Exception as exc:  # a bug here must not take the other items down
            detail = f"unexpected {type(exc).__name__}: {exc}"[:200]
            out.rejects.append(DecodeError("bad_value", detail, item))
    else:
        if pos < len(body):
            out.rejects.append(DecodeError("bad_body", f"{len(body) - pos} bytes after the last item", body[pos:]))
    return out
