"""The invite form checked as the API checks an invitation, ready for `Visitors.invite`.

The field rules are the people module's (names, free text, ids) and the visitors
service's (phone digits, credential kinds); the service checks the window, the
host and the blocklist itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.core.timeutil import TimeError, to_epoch_ms
from gateway.people import rules as people
from gateway.visitors.rules import CREDENTIAL_KINDS, EARLIEST, LATEST, check_phone

LOCAL_INPUT = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> sends
MAX_DOORS = 100
_HOST = re.compile(people.ID_PATTERN)
_DOOR = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class InviteProblem(ValueError):
    pass


def _field(name: str, value: str, check: Callable[[str], str]) -> str:
    try:
        return check(value)
    except ValueError as exc:
        raise InviteProblem(f"{name}: {exc}") from None


def _window_ms(name: str, value: str, zone: ZoneInfo) -> int:
    try:
        moment = datetime.strptime(value, LOCAL_INPUT).replace(tzinfo=zone)
    except ValueError:
        raise InviteProblem(f"{name}: a date and time, YYYY-MM-DDTHH:MM") from None
    try:
        if not EARLIEST <= moment <= LATEST:
            raise InviteProblem(f"window.{name}: outside 2000..2199")
        return to_epoch_ms(moment)
    except (OverflowError, TimeError):
        raise InviteProblem(f"window.{name}: out of range") from None


def invitation(values: dict[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    """The form's values as `Visitors.invite` keyword arguments; InviteProblem names the first bad field."""
    more = [d.strip() for d in values["more_doors"].split(",") if d.strip()]
    doors = list(dict.fromkeys([*values["doors"], *more]))
    if not doors:
        raise InviteProblem("doors: choose at least one door")
    if len(doors) > MAX_DOORS or not all(_DOOR.match(d) for d in doors):
        raise InviteProblem(f"doors: at most {MAX_DOORS} door ids of letters, digits, . _ -")
    if not _HOST.match(values["host"]):
        raise InviteProblem("host: choose the person the visitor comes to see")
    kind = values["credential"] or "qr"
    if kind not in CREDENTIAL_KINDS:
        raise InviteProblem(f"credential: one of {', '.join(CREDENTIAL_KINDS)}")
    company = _field("company", values["company"], lambda v: people.check_text(v, 200).strip())
    return {
        "name": _field("name", values["name"], lambda v: people.check_name(v).strip()),
        "phone": _field("phone", values["phone"], check_phone) if values["phone"] else None,
        "company": company or None,
        "host": values["host"],
        "doors": doors,
        "kind": kind,
        "start_ms": _window_ms("start", values["start"], zone),
        "end_ms": _window_ms("end", values["end"], zone),
    }
