"""What an invitation may be, and who may not be invited: limits, refusals, the blocklist match.

Pure; the service (`gateway.visitors.service`) applies them. The lead time, retention and card pool
defaults here are overridden by the `[visitors]` config keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from gateway.core import errors as core_errors
from gateway.core.errors import Refused
from gateway.people import rules as people
from gateway.store.models import VisitorBlock

MINUTE_MS = 60_000
DAY_MS = 24 * 60 * MINUTE_MS
LEAD_MS = 15 * MINUTE_MS  # the credential works this long before the window starts
RETENTION_MS = 180 * DAY_MS  # personal data is anonymised this long after the window ended
MAX_WINDOW_MS = 7 * DAY_MS  # the longest window an invitation may have
MAX_AHEAD_MS = 366 * DAY_MS  # how far ahead a window may start
CARD_POOL = (60000, 65535)  # temporary cards "<number>" (any facility), inclusive; H10301 numbers go to 65535
HOUSEKEEPING_S = 2.0  # how often the gateway runs `housekeeping`
ANONYMISED = "anonymised"
ANONYMISE_BATCH = 500
CREDENTIAL_KINDS = ("qr", "pin", "card")
# The dates an invitation window may name at all (a typo such as year 20260 is refused, not stored).
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2199, 12, 31, tzinfo=UTC)
AUDIT_TYPE = "visitor_invitation"
_PERSONAL = ("name", "phone", "company")


class VisitorError(Refused):
    """A visitor request turned down (the API answers it like any service refusal)."""


class BadWindow(VisitorError):
    pass


class NotFound(VisitorError, core_errors.NotFound):
    pass


class Blocklisted(VisitorError, core_errors.Conflict):
    pass


class NoCredentialLeft(VisitorError, core_errors.Conflict):
    pass


def normal_name(name: str | None) -> str:
    return " ".join((name or "").split()).casefold()


def normal_phone(phone: str | None) -> str:
    """Digits only: "+86 138-0000-0000" and "+8613800000000" are the same phone."""
    return re.sub(r"[^0-9]", "", phone or "")


def check_phone(value: str) -> str:
    """A phone as typed (free text up to 40 characters) that has digits; ValueError says why not."""
    value = people.check_text(value.strip(), 40)
    if not normal_phone(value):
        raise ValueError("a phone number has digits")
    return value


def blocklist_match(entries: Iterable[VisitorBlock], name: str, phone: str | None) -> VisitorBlock | None:
    """The first entry whose name (case-insensitive) or phone (digits) is the visitor's."""
    name_key, phone_key = normal_name(name), normal_phone(phone)
    for entry in entries:
        if entry.name and name_key and normal_name(entry.name) == name_key:
            return entry
        if entry.phone and phone_key and normal_phone(entry.phone) == phone_key:
            return entry
    return None


def check_window(start_ms: int, end_ms: int, now: int) -> None:
    if end_ms <= start_ms:
        raise BadWindow("window: end must be after start")
    if end_ms - start_ms > MAX_WINDOW_MS:
        raise BadWindow(f"window: at most {MAX_WINDOW_MS // DAY_MS} days long")
    if end_ms <= now:
        raise BadWindow("window: it has already ended")
    if start_ms - now > MAX_AHEAD_MS:
        raise BadWindow(f"window: starts more than {MAX_AHEAD_MS // DAY_MS} days ahead")


def scrubbed(view: dict[str, Any] | None) -> dict[str, Any] | None:
    if view is None:
        return None
    view = dict(view)
    for key in _PERSONAL:
        if key in view:
            view[key] = ANONYMISED if key == "name" else None
    return view
