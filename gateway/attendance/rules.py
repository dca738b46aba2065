"""Daily attendance reconciliation: the data types and :func:`compute_days`.

Pure: no I/O, no clock, no database. The full contract (types, units, rules, choices)
is documented in the package docstring, :mod:`gateway.attendance`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Collection, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from operator import attrgetter
from typing import Literal

from .pairing import dedupe, evaluate

PRESENT, LATE, EARLY_EXIT, HALF_DAY = "present", "late", "early_exit", "half_day"
ABSENT, MISSING_PUNCH, HOLIDAY, LEAVE = "absent", "missing_punch", "holiday", "leave"
#: Every value DayRecord.status can take.
STATUSES = (PRESENT, LATE, EARLY_EXIT, HALF_DAY, ABSENT, MISSING_PUNCH, HOLIDAY, LEAVE)

Direction = Literal["in", "out", "unknown"]
HoursMode = Literal["first_last", "pairs"]
Pairing = Literal["alternate", "device"]

_MIN = 60_000  # ms in a minute
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_DAY = timedelta(days=1)
_WEEKDAYS = frozenset(range(5))


@dataclass(frozen=True, slots=True)
class Shift:
    id: str
    name: str
    start: time
    end: time  # end <= start: crosses midnight (end == start: a 24 h shift)
    early_margin_min: int = 60
    late_margin_min: int = 60
    late_grace_min: int = 5
    early_exit_grace_min: int = 5
    absent_below_hours: float = 2.0
    half_day_below_hours: float = 4.0
    hours_mode: HoursMode = "first_last"
    pairing: Pairing = "alternate"
    workdays: frozenset[int] = _WEEKDAYS  # 0 = Monday .. 6 = Sunday

    def __post_init__(self) -> None:
        # Shifts are few and long-lived: validate here so the hot loop need not.
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError(f"shift {self.id!r}: start/end are wall-clock times, give them no tzinfo")
        for name in ("early_margin_min", "late_margin_min", "late_grace_min", "early_exit_grace_min"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"shift {self.id!r}: {name} must be an int >= 0")
        if not 0 <= self.absent_below_hours <= self.half_day_below_hours:
            raise ValueError(f"shift {self.id!r}: need 0 <= absent_below_hours <= half_day_below_hours")
        if self.hours_mode not in ("first_last", "pairs"):
            raise ValueError(f"shift {self.id!r}: hours_mode must be 'first_last' or 'pairs'")
        if self.pairing not in ("alternate", "device"):
            raise ValueError(f"shift {self.id!r}: pairing must be 'alternate' or 'device'")
        if not isinstance(self.workdays, frozenset) or not self.workdays <= frozenset(range(7)):
            raise ValueError(f"shift {self.id!r}: workdays must be a frozenset of 0..6")


@dataclass(frozen=True, slots=True)
class Punch:
    id: str
    person_id: str
    time: int  # UTC epoch milliseconds
    direction: Direction
    device_id: str


@dataclass(frozen=True, slots=True)
class Leave:
    person_id: str
    date: date


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    shifts: Mapping[str, Shift]
    assignment: Mapping[str, str]  # person_id -> shift id
    tz: tzinfo  # the site's zone; shift times are wall-clock times in it
    holidays: AbstractSet[date] = frozenset()
    leaves: Collection[Leave] = ()
    # Optional per-day override: (person_id, date) -> shift id, or None for "off that day".
    roster: Mapping[tuple[str, date], str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DayRecord:
    person_id: str
    date: date
    shift_id: str
    status: str  # one of STATUSES
    late: bool
    early_exit: bool
    first_in: int | None
    last_out: int | None
    worked_minutes: int
    late_minutes: int
    early_exit_minutes: int
    punch_ids: tuple[str, ...]
    final: bool


def _utc_ms(day: date, wall: time, tz: tzinfo) -> int:
    # fold=0: a wall time skipped by DST maps forward (02:30 -> 03:30 EDT), a repeated
    # one is taken at its first occurrence.
    return (datetime.combine(day, wall, tzinfo=tz) - _EPOCH) // _ONE_MS


def shift_bounds(shift: Shift, day: date, tz: tzinfo) -> tuple[int, int]:
    """The shift's start and end on ``day`` as UTC ms (end on the next day if it crosses midnight)."""
    end_day = day + _DAY if shift.end <= shift.start else day
    return _utc_ms(day, shift.start, tz), _utc_ms(end_day, shift.end, tz)


@dataclass(slots=True)
class _Window:
    """One scheduled day of one shift; lo..hi (inclusive, UTC ms) is where its punches may fall."""

    day: date
    shift: Shift
    start: int
    end: int
    lo: int
    hi: int
    emit: bool  # False for the padding days just outside the range (used only for trimming)


def _trim(windows: list[_Window]) -> list[_Window]:
    """Make the windows (ascending by day) disjoint so no punch can belong to two days.

    Overlapping neighbours are split at the middle of the overlap, the later day keeping
    the midpoint itself: neither shift is favoured. A final clamp covers odd rosters
    whose windows reach past the next day (a window may end up empty, lo > hi).
    """
    for a, b in zip(windows, windows[1:]):
        if a.hi >= b.lo:
            mid = (a.hi + b.lo) // 2
            a.hi, b.lo = mid - 1, mid
    prev_hi = None
    for w in windows:
        if prev_hi is not None and w.lo <= prev_hi:
            w.lo = prev_hi + 1
        if w.lo <= w.hi:
            prev_hi = w.hi
    return windows


class _Calendar:
    """Windows for the requested range, built once per shift (or per rostered person)."""

    def __init__(self, schedule: Schedule, date_from: date, date_to: date) -> None:
        self.schedule = schedule
        self.holidays = frozenset(schedule.holidays)
        # One day of padding each side: the trim of the first/last day must see its
        # neighbour so a day's result does not depend on the range it was asked in.
        n = (date_to - date_from).days + 3
        first = date_from - _DAY
        self.days = [first + timedelta(days=k) for k in range(n)]
        self.date_from, self.date_to = date_from, date_to
        self._bounds: dict[tuple[str, date], tuple[int, int]] = {}
        self._by_shift: dict[str, list[_Window]] = {}

    def _window(self, shift: Shift, day: date) -> _Window:
        key = (shift.id, day)
        bounds = self._bounds.get(key)
        if bounds is None:
            bounds = self._bounds[key] = shift_bounds(shift, day, self.schedule.tz)
        start, end = bounds
        return _Window(
            day,
            shift,
            start,
            end,
            start - shift.early_margin_min * _MIN,
            end + shift.late_margin_min * _MIN,
            self.date_from <= day <= self.date_to,
        )

    def _scheduled(self, shift: Shift, day: date) -> bool:
        return day.weekday() in shift.workdays or day in self.holidays

    def _shift(self, shift_id: str) -> Shift:
        try:
            return self.schedule.shifts[shift_id]
        except KeyError:
            raise ValueError(f"unknown shift id {shift_id!r}") from None

    def for_shift(self, shift_id: str) -> list[_Window]:
        windows = self._by_shift.get(shift_id)
        if windows is None:
            shift = self._shift(shift_id)
            windows = _trim([self._window(shift, d) for d in self.days if self._scheduled(shift, d)])
            self._by_shift[shift_id] = windows
        return windows

    def for_rostered(self, base_id: str | None, overrides: Mapping[date, str | None]) -> list[_Window]:
        base = self._shift(base_id) if base_id is not None else None
        windows = []
        for d in self.days:
            if d in overrides:
                sid = overrides[d]
                if sid is not None:  # an explicit roster entry is a scheduled day
                    windows.append(self._window(self._shift(sid), d))
            elif base is not None and self._scheduled(base, d):
                windows.append(self._window(base, d))
        return _trim(windows)


def _classify(person_id: str, w: _Window, punches: Sequence[Punch], special: str | None, final: bool) -> DayRecord:
    shift = w.shift
    ids = tuple(p.id for p in punches)
    first_in, last_out, worked_ms = evaluate(punches, shift.pairing, shift.hours_mode)
    worked = worked_ms // _MIN if worked_ms is not None else 0
    late = early = False
    late_min = early_min = 0
    if special is not None:  # holiday / leave: punches listed, nothing marked
        status = special
    elif not punches:
        status = ABSENT
    elif worked_ms is None or first_in is None or last_out is None:  # a worked span always has both ends
        status = MISSING_PUNCH  # needs a correction before anything else can be judged
    else:
        # Whole minutes, rounded up, so that late <=> late_minutes > grace (same for early).
        if first_in > w.start + shift.late_grace_min * _MIN:
            late, late_min = True, -((w.start - first_in) // _MIN)
        if last_out < w.end - shift.early_exit_grace_min * _MIN:
            early, early_min = True, -((last_out - w.end) // _MIN)
        if worked < shift.absent_below_hours * 60:
            status = ABSENT
        elif worked < shift.half_day_below_hours * 60:
            status = HALF_DAY
        elif late:
            status = LATE
        elif early:
            status = EARLY_EXIT
        else:
            status = PRESENT
    return DayRecord(
        person_id, w.day, shift.id, status, late, early, first_in, last_out, worked, late_min, early_min, ids, final
    )


_SORT_KEY = attrgetter("time", "id")


def compute_days(
    punches: Iterable[Punch],
    schedule: Schedule,
    date_from: date,
    date_to: date,
    watermarks: Mapping[str, int] = {},
    feeding_devices: Sequence[str] = (),
) -> list[DayRecord]:
    """One DayRecord per person and scheduled day in [date_from, date_to], ordered by (person_id, date).

    Cost: O(P log P) for the sort plus O(people x days); punches are grouped by person
    once and each person's days are walked with a moving index.
    """
    if date_from > date_to:
        raise ValueError("date_from is after date_to")
    for key, shift in schedule.shifts.items():
        if key != shift.id:  # records carry Shift.id; a mismatch would be a silent mix-up
            raise ValueError(f"schedule.shifts[{key!r}] holds shift {shift.id!r}")
    roster: dict[str, dict[date, str | None]] = {}
    for (pid, day), sid in schedule.roster.items():
        roster.setdefault(pid, {})[day] = sid
    people = sorted(set(schedule.assignment) | set(roster))
    wanted = set(people)

    by_person: dict[str, list[Punch]] = {}
    for p in punches:
        pid = p.person_id
        if pid in wanted:
            group = by_person.get(pid)
            if group is None:
                by_person[pid] = [p]
            else:
                group.append(p)

    # A day is final once the slowest feeding device has synced past it.
    if feeding_devices:
        marks = [mark for d in feeding_devices if (mark := watermarks.get(d)) is not None]
        synced = min(marks) if len(marks) == len(feeding_devices) else None
    else:
        synced = None
    cal = _Calendar(schedule, date_from, date_to)
    holidays = cal.holidays
    leaves = {(lv.person_id, lv.date) for lv in schedule.leaves}

    out: list[DayRecord] = []
    for pid in people:
        if pid in roster:
            windows = cal.for_rostered(schedule.assignment.get(pid), roster[pid])
        else:
            windows = cal.for_shift(schedule.assignment[pid])
        mine = by_person.get(pid)
        if mine:
            mine.sort(key=_SORT_KEY)
            mine = dedupe(mine)
        else:
            mine = []
        times = [p.time for p in mine]
        i = 0
        for w in windows:
            if w.lo > w.hi:
                day_punches: Sequence[Punch] = ()
            else:
                i = bisect_left(times, w.lo, i)
                j = bisect_right(times, w.hi, i)
                day_punches, i = mine[i:j], j
            if not w.emit:
                continue
            special = HOLIDAY if w.day in holidays else LEAVE if (pid, w.day) in leaves else None
            if not feeding_devices:
                final = True
            else:
                final = synced is not None and synced >= w.end + w.shift.late_margin_min * _MIN
            out.append(_classify(pid, w, day_punches, special, final))
    return out
