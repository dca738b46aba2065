"""Daily attendance reconciliation: raw punches in, one record per person and day out.

The engine is pure (no I/O, no clock, no database): callers load the inputs, call
:func:`compute_days` and store or render the result. It is safe to call again with the
same inputs (same output) and with overlapping ranges: a day's record does not depend on
the range it was asked in (as long as no shift window reaches past the neighbouring day,
which holds for any single shift whose two margins add up to less than 23 h).

Units
-----
* Instants are ``int`` UTC epoch **milliseconds** (``Punch.time``, ``first_in``,
  ``last_out``, watermarks).
* Days are ``datetime.date`` in the site's local calendar; shift times are naive
  ``datetime.time`` wall-clock times in ``Schedule.tz`` (a ``zoneinfo.ZoneInfo``).
* All types are frozen dataclasses with slots.

Types
-----
``Shift(id, name, start, end, early_margin_min=60, late_margin_min=60, late_grace_min=5,
early_exit_grace_min=5, absent_below_hours=2.0, half_day_below_hours=4.0,
hours_mode="first_last", pairing="alternate", workdays=frozenset({0,1,2,3,4}))``
    ``end <= start`` means the shift crosses midnight (``end == start`` is a 24 h shift);
    it counts on the day it starts. ``hours_mode``: ``"first_last"`` or ``"pairs"``.
    ``pairing``: ``"alternate"`` or ``"device"``. ``workdays``: 0 = Monday .. 6 = Sunday.
    Validated on construction (``ValueError``).
``Punch(id, person_id, time, direction, device_id)``
    ``direction`` is ``"in"``, ``"out"`` or ``"unknown"`` (anything else counts as unknown).
``Leave(person_id, date)``
    A whole day of leave.
``Schedule(*, shifts, assignment, tz, holidays=frozenset(), leaves=(), roster={})``
    Keyword-only. ``shifts``: shift id -> Shift. ``assignment``: person_id -> shift id
    (resolve departments to persons before calling). ``holidays``: set of dates (for
    everyone). ``leaves``: collection of Leave. ``roster`` (optional extension for rotating
    shifts): ``(person_id, date) -> shift id`` overrides the assignment that day, ``None``
    means off that day; a person may appear only in the roster.
``DayRecord(person_id, date, shift_id, status, late, early_exit, first_in, last_out,
worked_minutes, late_minutes, early_exit_minutes, punch_ids, final)``
    ``status`` is one of :data:`STATUSES` (see below). ``late`` / ``early_exit`` are flags
    that can be set whatever the status. ``first_in`` / ``last_out``: UTC ms or None.
    ``punch_ids``: the day's punches in time order after de-duplication (in device mode
    including unknown-direction punches that took no part in pairing); a punch id is in
    at most one record. ``final``: see Finality.

Function
--------
``compute_days(punches, schedule, date_from, date_to, watermarks={}, feeding_devices=())
-> list[DayRecord]``
    One record per person (in ``assignment`` or ``roster``) per scheduled day in
    ``[date_from, date_to]``, ordered by ``(person_id, date)``. ``punches`` may hold anyone
    and any time: punches of unknown persons and outside every window are ignored, but a
    punch after ``date_to`` that falls in the window of a day in range (a night shift) is
    used. Raises ``ValueError`` for an unknown shift id, a ``shifts`` key that is not its
    ``Shift.id``, or ``date_from > date_to``.
    Cost: one sort of the punches plus O(people x days).
``shift_bounds(shift, day, tz) -> (start_ms, end_ms)``
    The shift's start and end on ``day`` as UTC instants (what late/early are measured
    against), handy for reports.

Rules
-----
* Scheduled day: the shift's weekday is in ``workdays``, or the date is a holiday (a
  holiday record is written even on a weekend), or the roster names a shift for it.
  Unscheduled days get no record; their punches are not attributed (no ``day_off``
  status, so ``status`` stays within the set the API exposes).
* Window: a punch belongs to a day when it falls in ``[start - early_margin, end +
  late_margin]``, wall times localized in ``tz`` (a wall time skipped by DST maps forward,
  a repeated one takes its first occurrence). Durations are real elapsed time, so an
  8 h wall-clock night shift over the spring-forward night is 7 h long.
* Overlap: when neighbouring days' windows overlap, the overlap is split at its midpoint;
  a punch exactly on the midpoint goes to the later day.
* Duplicates: punches of one person in the same second with the same direction are one
  punch (the earliest is kept; the others appear in no record).
* Pairing ``"alternate"``: sorted punches are in, out, in, out... (direction ignored).
  ``first_in`` is the first punch. ``"first_last"`` hours run from the first to the last
  punch (middle punches do not matter). ``"pairs"`` sums (1st, 2nd), (3rd, 4th)...;
  an odd last punch has no partner, is not counted and ``last_out`` is the last pair's out.
* Pairing ``"device"``: ``first_in`` = first "in", ``last_out`` = last "out"; a pair is an
  "in" whose next in/out punch is an "out" (a repeated "in" restarts the pair), unknown
  directions are skipped. No "in", no "out", or last out before first in: missing punch.
* Minutes: ``worked_minutes`` is rounded down; ``late_minutes`` (first in - start) and
  ``early_exit_minutes`` (end - last out) are rounded up to whole minutes and are 0 unless
  the flag is set, so ``late`` <=> ``late_minutes > late_grace_min`` (same for early exit).
  Worked time is not clipped to the shift (early arrival and overtime count).

Status (one per record)
-----------------------
1. ``holiday`` if the date is a holiday, else ``leave`` if the person is on leave: the
   punches, ``first_in``, ``last_out`` and ``worked_minutes`` are filled in (for overtime
   reports) but nothing is marked: flags False, late/early minutes 0.
2. ``absent``: no punches in the window.
3. ``missing_punch``: punches but no complete in/out (e.g. exactly one punch). Flags stay
   False and worked 0: the day needs a correction before it can be judged.
4. Otherwise flags are computed and, by precedence: ``absent`` (worked < absent_below_hours),
   ``half_day`` (< half_day_below_hours), ``late``, ``early_exit``, ``present``.

Finality
--------
A record is ``final`` when every device in ``feeding_devices`` has a watermark (its newest
punch or heartbeat time, UTC ms, in ``watermarks``) ``>=`` the day's shift end + late
margin (untrimmed); a feeding device with no watermark keeps the day provisional. With
``feeding_devices`` empty every record is final: pass the devices that feed the site
whenever the range can include today or recent days.
"""

from .rules import (
    ABSENT,
    EARLY_EXIT,
    HALF_DAY,
    HOLIDAY,
    LATE,
    LEAVE,
    MISSING_PUNCH,
    PRESENT,
    STATUSES,
    DayRecord,
    Leave,
    Punch,
    Schedule,
    Shift,
    compute_days,
    shift_bounds,
)

__all__ = [
    "Shift",
    "Punch",
    "Leave",
    "Schedule",
    "DayRecord",
    "compute_days",
    "shift_bounds",
    "STATUSES",
    "PRESENT",
    "LATE",
    "EARLY_EXIT",
    "HALF_DAY",
    "ABSENT",
    "MISSING_PUNCH",
    "HOLIDAY",
    "LEAVE",
]
