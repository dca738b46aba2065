"""ZKTeco ATTLOG text: one punch a line, TAB separated.

Fields as terminals send them: PIN, "YYYY-MM-DD HH:MM:SS" (device local time),
status, verify, workcode, reserved... Old firmware sends 6-7 fields, newer up
to 10; four are enough for a punch and fields past the workcode are ignored.
Used for MQTT `devices/{id}/attlog`, the ADMS push body and serial lines.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, tzinfo

from gateway.core.events import Punch, idempotency_key
from gateway.core.timeutil import localize, offset_minutes, to_epoch_ms
from gateway.devices.base import Decoded
from gateway.devices.errors import DecodeError

# One convention among several firmware families; map per device model when known.
DEFAULT_VERIFY_MAP: Mapping[int, str] = {0: "password", 1: "fingerprint", 2: "card", 15: "face", 25: "palm"}

# 0 check-in, 1 check-out, 2 break-out, 3 break-in, 4 overtime-in, 5 overtime-out.
STATUS_DIRECTION: Mapping[int, str] = {0: "in", 1: "out", 2: "out", 3: "in", 4: "in", 5: "out"}

# ASCII digits only: int() would also take other scripts' digits, signs and spaces.
_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
# Bounded so int() never meets a many-thousand-digit string.
_CODE = re.compile(r"[0-9]{1,9}")


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail


def _code(name: str, text: str) -> int:
    if _CODE.fullmatch(text) is None:
        raise _Reject("bad_value", f"{name} {text[:20]!r} is not a non-negative integer")
    return int(text)


def _line(
    line: str, device_id: str, tz: tzinfo, source: str, verify_map: Mapping[int, str], not_after: datetime | None
) -> Punch:
    fields = line.split("\t")
    if len(fields) < 4:
        raise _Reject("bad_line", f"{len(fields)} field(s), need at least 4")
    pin = fields[0].strip()
    if not pin:
        raise _Reject("missing_field", "empty PIN")
    if len(pin) > 64:
        raise _Reject("bad_value", "PIN is longer than 64 characters")

    text = fields[1]
    m = _TIME.fullmatch(text)
    if m is None:
        raise _Reject("bad_time", f"time {text[:30]!r} is not YYYY-MM-DD HH:MM:SS")
    try:
        year, month, day, hour, minute, second = map(int, m.groups())
        naive = datetime(year, month, day, hour, minute, second)
        utc = localize(naive, tz)
    except (ValueError, OverflowError) as exc:  # TimeError is a ValueError
        raise _Reject("bad_time", f"time {text!r}: {exc}") from None
    if not_after is not None and utc > not_after:
        raise _Reject(
            "future_time", f"time {text!r} is later than {not_after:%Y-%m-%d %H:%M} UTC: the terminal's clock is wrong"
        )

    status = _code("status", fields[2].strip())
    verify_code = _code("verify", fields[3].strip())
    workcode = fields[4].strip() if len(fields) > 4 else ""

    verify = verify_map.get(verify_code)
    if verify is None:
        verify = f"other:{verify_code}"
    ms = to_epoch_ms(utc)
    return Punch(
        device_id=device_id,
        user=pin,
        time=utc,
        utc_offset_min=offset_minutes(utc, tz),
        direction=STATUS_DIRECTION.get(status, "unknown"),
        verify=verify,
        source=source,
        status_code=status,
        verify_code=verify_code,
        workcode=workcode or None,
        key=idempotency_key("punch", device_id, pin, ms, status),
    )


def decode(
    payload: bytes,
    device_id: str,
    tz: tzinfo,
    source: str = "attlog",
    verify_map: Mapping[int, str] | None = None,
    not_after: datetime | None = None,
) -> Decoded:
    """Decode an ATTLOG batch; one reject per bad line, the good lines kept.

    `not_after` (UTC): lines dated later are rejected as `future_time`, as a
    terminal with a wrong clock sends them (the caller picks the bound: the
    codec has no clock).

    Raises DecodeError only when the whole payload is unusable: not UTF-8
    (`bad_utf8`) or without a single non-blank line (`empty`).
    """
    try:
        raw = bytes(payload)
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("bad_utf8", f"invalid UTF-8 at byte {exc.start}", raw) from None
    except Exception:  # not bytes-like
        raise DecodeError("bad_utf8", f"payload is a {type(payload).__name__}, not bytes", b"") from None
    if text.startswith("\ufeff"):
        text = text[1:]

    vmap = DEFAULT_VERIFY_MAP if verify_map is None else verify_map
    out = Decoded()
    seen_line = False
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if not line.strip():
            continue
        seen_line = True
        try:
            out.events.append(_line(line, device_id, tz, source, vmap, not_after))
        except _Reject as rej:
            out.rejects.append(DecodeError(rej.reason, rej.detail, line.encode()))
        except Exception as exc:  # a bug here must not take the pipeline down
            detail = f"unexpected {type(exc).__name__}: {exc}"[:200]
            out.rejects.append(DecodeError("bad_value", detail, line.encode()))
    if not seen_line:
        raise DecodeError("empty", "no ATTLOG lines in payload", raw)
    return out


def encode_line(pin: object, local_time: datetime, status: int, verify: int, workcode: object = "0") -> str:
    """One 6-field ATTLOG line (no line end), as a terminal sends it.

    `local_time` is the terminal's wall clock; a tzinfo on it is ignored.
    """
    t = local_time
    stamp = f"{t.year:04d}-{t.month:02d}-{t.day:02d} {t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    return f"{pin}\t{stamp}\t{status}\t{verify}\t{workcode}\t0"
