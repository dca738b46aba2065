"""The door decision: may this credential open this door now?

Pure and fast: `decide` does a dict lookup or two and, for scheduled holders,
one local-time conversion; no I/O, no clock (the caller passes `now_ms`), no
locks. The data is immutable, so the service rebuilds an `AccessData` with
`build()` when people, visitors or schedules change and swaps the reference;
a decision in flight keeps the snapshot it started with.

Denial reasons, checked in this order (the first that applies wins):
bad_parity, unknown_credential, revoked, not_yet_valid, expired,
door_not_allowed, outside_schedule, anti_passback; otherwise granted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from gateway.access.schedules import Schedule, schedule_from_row
from gateway.core.timeutil import parse_device_time, to_epoch_ms

ALL = "*"  # a holder's doors: every door
ALWAYS = "always"  # a holder's schedule: no time restriction


@dataclass(frozen=True, slots=True)
class Credential:
    kind: str  # "card" | "pin" | "qr"
    value: str  # card: the raw hex; pin: the digits; qr: the payload
    facility: int | None = None
    number: int | None = None
    parity_ok: bool = True

    @classmethod
    def from_card(cls, card: Any) -> Credential:
        """From a decoded `gateway.devices.wiegand.Card` (parity already checked by decoding)."""
        return cls("card", card.raw_hex, card.facility, card.number)


@dataclass(frozen=True, slots=True)
class Holder:
    """A person or a visitor as the doors see them."""

    person_id: str | None = None
    visitor_id: str | None = None
    doors: frozenset[str] | str = frozenset()  # or ALL
    schedule_id: str = ALWAYS
    valid_from: int | None = None  # UTC ms, inclusive
    valid_until: int | None = None  # UTC ms, exclusive
    revoked: bool = False

    def __post_init__(self) -> None:
        if (self.person_id is None) == (self.visitor_id is None):
            raise ValueError("a holder is either a person or a visitor")
        doors = self.doors
        if isinstance(doors, str):
            # A bare string other than "*" would otherwise be read as a set of characters.
            if doors != ALL:
                raise ValueError(f"doors must be {ALL!r} or a set of door ids, got {doors!r}")
        elif not isinstance(doors, frozenset):
            object.__setattr__(self, "doors", frozenset(doors))

    @property
    def key(self) -> str:
        """Stable id for per-holder state kept by the caller (anti-passback direction)."""
        return f"person:{self.person_id}" if self.person_id is not None else f"visitor:{self.visitor_id}"


@dataclass(frozen=True, slots=True)
class AccessData:
    """One immutable snapshot of who may open what. Credential maps point straight at holders."""

    cards: Mapping[str, Holder] = field(default_factory=dict)  # "<facility>:<number>" and "<number>"
    pins: Mapping[str, Holder] = field(default_factory=dict)
    qr: Mapping[str, Holder] = field(default_factory=dict)
    holders: Mapping[str, Holder] = field(default_factory=dict)  # by Holder.key
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()  # site-local dates
    tz: tzinfo = UTC  # the site's zone; schedules and holidays are in it
    anti_passback: frozenset[tuple[str, str]] = frozenset()  # (entry door, exit door) pairs
    problems: tuple[str, ...] = ()  # rows build() left out, for the caller to log
    _apb_doors: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_apb_doors", frozenset(d for pair in self.anti_passback for d in pair))


@dataclass(frozen=True, slots=True)
class Decision:
    decision: str  # "granted" | "denied"
    reason: str  # "granted" or the denial reason
    person_id: str | None = None
    visitor_id: str | None = None

    @property
    def granted(self) -> bool:
        return self.decision == "granted"


_BAD_PARITY = Decision("denied", "bad_parity")
_UNKNOWN = Decision("denied", "unknown_credential")


def find_holder(credential: Credential, data: AccessData) -> Holder | None:
    """Who holds the credential; a card matches "<facility>:<number>" before "<number>"."""
    kind = credential.kind
    if kind == "card":
        number = credential.number
        if number is None:  # a card seen only as a value, not decoded
            return data.cards.get(card_key(credential.value))
        if credential.facility is not None:
            holder = data.cards.get(f"{credential.facility}:{number}")
            if holder is not None:
                return holder
        return data.cards.get(str(number))
    if kind == "pin":
        return data.pins.get(credential.value)
    if kind == "qr":
        return data.qr.get(credential.value)
    return None


def decide(
    credential: Credential,
    door: str,
    now_ms: int,
    data: AccessData,
    last_direction: str | None = None,
    door_direction: str = "in",
) -> Decision:
    """Grant or deny. `last_direction` is the holder's last passage direction
    through an anti-passback door ("in"/"out", None if never); the caller keeps
    that state, keyed by `find_holder(...).key`."""
    if not credential.parity_ok:
        return _BAD_PARITY
    holder = find_holder(credential, data)
    if holder is None:
        return _UNKNOWN
    reason = _reason(holder, door, now_ms, data, last_direction, door_direction)
    return Decision("granted" if reason == "granted" else "denied", reason, holder.person_id, holder.visitor_id)


def _reason(
    holder: Holder, door: str, now_ms: int, data: AccessData, last_direction: str | None, door_direction: str
) -> str:
    if holder.revoked:
        return "revoked"
    if holder.valid_from is not None and now_ms < holder.valid_from:
        return "not_yet_valid"
    if holder.valid_until is not None and now_ms >= holder.valid_until:
        return "expired"
    doors = holder.doors
    if doors != ALL and door not in doors:
        return "door_not_allowed"  # also every door for a holder with no access at all
    if holder.schedule_id != ALWAYS and not _schedule_open(holder.schedule_id, now_ms, data):
        return "outside_schedule"
    if last_direction is not None and last_direction == door_direction and door in data._apb_doors:
        return "anti_passback"  # the same way twice: the card was passed back or someone tailgated
    return "granted"


def _schedule_open(schedule_id: str, now_ms: int, data: AccessData) -> bool:
    schedule = data.schedules.get(schedule_id)
    if schedule is None:
        return False  # a schedule that is gone opens nothing: fail closed
    local = datetime.fromtimestamp(now_ms // 1000, data.tz)
    # A holiday closes the whole local day, including the tail of last night's window.
    if schedule.holidays_closed and local.date() in data.holidays:
        return False
    return schedule.open_at(local.weekday(), local.hour * 60 + local.minute)


# --- building the snapshot from API-shaped rows ---------------------------------


def card_key(text: object) -> str:
    """A card string in the form the index uses: "010:01093" -> "10:1093", " 1093" -> "1093".

    Anything else (a raw hex value, say) is kept as written, stripped.
    """
    text = str(text).strip()
    facility, sep, number = text.partition(":")
    if sep and facility.isdigit() and number.isdigit():
        return f"{int(facility)}:{int(number)}"
    if not sep and text.isdigit():
        return str(int(text))
    return text


def _doors(value: str | Iterable[object] | None) -> frozenset[str] | str:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return ALL if value == ALL else frozenset({value})
    doors = frozenset(str(d) for d in value)
    return ALL if ALL in doors else doors


def _ms(value: object, tz: tzinfo) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        # Database rows carry UTC; a naive one is UTC by that convention.
        return to_epoch_ms(value if value.tzinfo is not None else value.replace(tzinfo=UTC))
    utc, _ = parse_device_time(value, tz)  # epoch ms or RFC 3339 (no offset = site local)
    return to_epoch_ms(utc)


def _zone(tz: tzinfo | str) -> tzinfo:
    if isinstance(tz, str):
        from zoneinfo import ZoneInfo

        return ZoneInfo(tz)
    return tz


def _holiday(value: date | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value).strip())


# A row read into its holder and the holder's (kind, key) credentials.
_Made = tuple[Holder, list[tuple[str, str]]]


class _Index:
    """Credential maps under construction. A credential claimed by two holders is
    dropped (and reported) rather than given to whichever row came first."""

    def __init__(self) -> None:
        self.maps: dict[str, dict[str, Holder]] = {"card": {}, "pin": {}, "qr": {}}
        self.clashes: set[tuple[str, str]] = set()
        self.problems: list[str] = []

    def add(self, kind: str, key: str, holder: Holder) -> None:
        table = self.maps[kind]
        other = table.get(key)
        if other is None:
            if (kind, key) not in self.clashes:
                table[key] = holder
        elif other.key != holder.key:
            del table[key]
            self.clashes.add((kind, key))
            self.problems.append(f"{kind} {key!r} is held by {other.key} and {holder.key}; nobody gets it")


def build(
    people: Iterable[Mapping[str, Any]],
    visitors: Iterable[Mapping[str, Any]] = (),
    schedules: Iterable[Schedule | Mapping[str, Any]] = (),
    holidays: Iterable[date | str] = (),
    tz: tzinfo | str = UTC,
    anti_passback: Iterable[tuple[str, str]] = (),
) -> AccessData:
    """An AccessData from rows shaped like the API's records.

    person:   {"id", "cards": ["10:1093", "1093"], "access": {"doors": [...] or ["*"], "schedule": "always" or id}}
              (optional "pins", "valid_from", "valid_until", "revoked")
    visitor:  {"id", "credential": {"kind": "card"|"pin"|"qr", "value"}, "doors", "valid_from", "valid_until",
               "revoked"} (optional "schedule", default "always")
    schedule: {"id", "windows": {weekday (0-6 or "mon".."sun"): [[start, end], ...]}, "holidays_closed"}
              with start/end as minutes or "HH:MM" (a Schedule is taken as is)

    A row that cannot be read is left out, so its holder is unknown at every
    door (fail closed), and described in `problems`; one bad row must not keep
    everybody else's changes from reaching the doors.
    """
    zone = _zone(tz)
    index = _Index()
    holders: dict[str, Holder] = {}

    def add_holder(what: str, row: Mapping[str, Any], make: Callable[[Mapping[str, Any]], _Made]) -> None:
        try:
            holder, creds = make(row)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            index.problems.append(f"{what} {row.get('id') if isinstance(row, Mapping) else row!r}: {exc!r}")
            return
        holders[holder.key] = holder
        for kind, key in creds:
            index.add(kind, key, holder)

    def person(row: Mapping[str, Any]) -> _Made:
        access = row.get("access") or {}  # no access: no doors, denied everywhere
        holder = Holder(
            person_id=str(row["id"]),
            doors=_doors(access.get("doors")),
            schedule_id=str(access.get("schedule") or ALWAYS),
            valid_from=_ms(row.get("valid_from"), zone),
            valid_until=_ms(row.get("valid_until"), zone),
            revoked=bool(row.get("revoked", False)),
        )
        creds = [("card", card_key(c)) for c in row.get("cards") or ()]
        creds += [("pin", str(p).strip()) for p in row.get("pins") or ()]
        return holder, creds

    def visitor(row: Mapping[str, Any]) -> _Made:
        holder = Holder(
            visitor_id=str(row["id"]),
            doors=_doors(row.get("doors")),
            schedule_id=str(row.get("schedule") or ALWAYS),
            valid_from=_ms(row.get("valid_from"), zone),
            valid_until=_ms(row.get("valid_until"), zone),
            revoked=bool(row.get("revoked", False)),
        )
        cred = row.get("credential")
        if not cred or cred.get("value") in (None, ""):
            return holder, []
        kind = cred.get("kind")
        if kind not in ("card", "pin", "qr"):
            raise ValueError(f"credential kind must be card, pin or qr, got {kind!r}")
        value = card_key(cred["value"]) if kind == "card" else str(cred["value"]).strip()
        return holder, [(kind, value)]

    for row in people:
        add_holder("person", row, person)
    for row in visitors:
        add_holder("visitor", row, visitor)

    schedule_map: dict[str, Schedule] = {}
    for schedule_row in schedules:
        try:
            s = schedule_from_row(schedule_row)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # Its holders find no schedule and are denied outside "always": fail closed.
            described = schedule_row.get("id") if isinstance(schedule_row, Mapping) else schedule_row
            index.problems.append(f"schedule {described!r}: {exc!r}")
            continue
        schedule_map[s.id] = s

    return AccessData(
        cards=index.maps["card"],
        pins=index.maps["pin"],
        qr=index.maps["qr"],
        holders=holders,
        schedules=schedule_map,
        holidays=frozenset(_holiday(h) for h in holidays),
        tz=zone,
        anti_passback=frozenset((str(a), str(b)) for a, b in anti_passback),
        problems=tuple(index.problems),
    )
