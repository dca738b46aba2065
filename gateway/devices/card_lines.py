"""Card readers that print one card a line on a serial port (attendance by badge).

A line is the card number, decimal or `0x` hex, optionally followed by a TAB
and the reader's local time `YYYY-MM-DD HH:MM:SS`; without a time the punch
takes the time the line arrived. The card number is the punch's `user`: it
resolves to the person holding that card.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo

from gateway.core.events import Punch, idempotency_key
from gateway.core.timeutil import TimeError, localize, offset_minutes, to_epoch_ms
from gateway.devices.base import Decoded
from gateway.devices.errors import DecodeError

_CARD = re.compile(r"(?:0[xX][0-9A-Fa-f]{1,16}|[0-9]{1,20})")
_TIME = "%Y-%m-%d %H:%M:%S"


def _card_number(text: str) -> str:
    if _CARD.fullmatch(text) is None:
        raise ValueError(f"card {text[:30]!r} is not a decimal or 0x-hex number")
    return str(int(text, 16)) if text[:2] in ("0x", "0X") else str(int(text))


def decode(payload: bytes, device_id: str, tz: tzinfo, received: datetime) -> Decoded:
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DecodeError("bad_utf8", f"non-ASCII byte at {exc.start}", payload) from None
    out = Decoded()
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        card_text, _, time_text = line.partition("\t")
        try:
            card = _card_number(card_text.strip())
        except ValueError as exc:
            out.rejects.append(DecodeError("bad_value", str(exc), line.encode()))
            continue
        try:
            utc = localize(datetime.strptime(time_text.strip(), _TIME), tz) if time_text else received
        except (ValueError, TimeError) as exc:
            out.rejects.append(DecodeError("bad_time", str(exc)[:200], line.encode()))
            continue
        out.events.append(
            Punch(
                device_id=device_id,
                user=card,
                time=utc,
                utc_offset_min=offset_minutes(utc, tz),
                verify="card",
                source="card-lines",
                key=idempotency_key("punch", device_id, card, to_epoch_ms(utc)),
            )
        )
    if not out.events and not out.rejects:
        raise DecodeError("empty", "no card lines in payload", payload)
    return out
