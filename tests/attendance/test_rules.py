"""Attendance rules: hand-checked days, then properties over random punches.

Expected numbers are written out and worked by hand in the comments; the helpers below
only build inputs. Dates: 2026-03-02 is a Monday. Asia/Shanghai is UTC+8 all year.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.attendance import (
    STATUSES,
    DayRecord,
    Leave,
    Punch,
    Schedule,
    Shift,
    compute_days,
)

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
MON, TUE, WED = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)
DAY = Shift("day", "Day", time(8), time(17))


def at(stamp: str, tz=SH) -> int:
    """'2026-03-02 08:00[:ss[.fff]]' local wall time -> UTC epoch ms (input building only)."""
    dt = datetime.fromisoformat(stamp).replace(tzinfo=tz)
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def punches(*items: tuple[str, str], person: str = "p1", tz=SH) -> list[Punch]:
    """('HH:MM' on MON or a full 'YYYY-MM-DD HH:MM', direction) -> punches a, b, c, ..."""
    out = []
    for k, (when, direction) in enumerate(items):
        stamp = when if " " in when else f"2026-03-02 {when}"
        out.append(Punch(chr(ord("a") + k), person, at(stamp, tz), direction, "dev1"))
    return out


def sched(shift: Shift = DAY, tz=SH, **kw) -> Schedule:
    return Schedule(shifts={shift.id: shift}, assignment={"p1": shift.id}, tz=tz, **kw)


def one_day(ps, shift: Shift = DAY, day: date = MON, **kw) -> DayRecord:
    [rec] = compute_days(ps, sched(shift, **kw), day, day)
    return rec


def summary(r: DayRecord) -> tuple:
    return (r.status, r.late, r.early_exit, r.worked_minutes, r.late_minutes, r.early_exit_minutes, r.punch_ids)


# --- single days ------------------------------------------------------------------


def test_on_time():
    r = one_day(punches(("07:58", "in"), ("17:02", "out")))
    # 07:58 -> 17:02 = 9 h 04 min = 544 min
    assert summary(r) == ("present", False, False, 544, 0, 0, ("a", "b"))
    assert (r.person_id, r.date, r.shift_id, r.final) == ("p1", MON, "day", True)
    assert (r.first_in, r.last_out) == (at("2026-03-02 07:58"), at("2026-03-02 17:02"))


def test_late_within_grace_is_present():
    r = one_day(punches(("08:04:59", "in"), ("17:00", "out")))
    # 4 min 59 s after 08:00 is inside the 5 min grace; 08:04:59 -> 17:00 = 8 h 55 min 01 s -> 535
    assert summary(r) == ("present", False, False, 535, 0, 0, ("a", "b"))


def test_late_beyond_grace():
    r = one_day(punches(("08:12:30", "in"), ("17:00", "out")))
    # 12 min 30 s late, counted from 08:00 and rounded up -> 13; 8 h 47 min 30 s worked -> 527
    assert summary(r) == ("late", True, False, 527, 13, 0, ("a", "b"))


def test_early_exit():
    r = one_day(punches(("08:00", "in"), ("16:40", "out")))
    # 16:40 is 20 min before 17:00 (grace 5); 08:00 -> 16:40 = 520 min
    assert summary(r) == ("early_exit", False, True, 520, 0, 20, ("a", "b"))


def test_late_and_early_exit_status_is_late_with_both_flags():
    r = one_day(punches(("08:30", "in"), ("16:00", "out")))
    # 30 min late, 60 min early, 08:30 -> 16:00 = 450 min (>= 4 h): late outranks early_exit
    assert summary(r) == ("late", True, True, 450, 30, 60, ("a", "b"))


def test_half_day():
    r = one_day(punches(("08:00", "in"), ("11:30", "out")))
    # 210 min < 4 h = 240 -> half_day; left 5 h 30 min = 330 min before 17:00
    assert summary(r) == ("half_day", False, True, 210, 0, 330, ("a", "b"))


def test_absent_without_punches():
    r = one_day([])
    assert summary(r) == ("absent", False, False, 0, 0, 0, ())
    assert (r.first_in, r.last_out) == (None, None)


def test_absent_with_too_few_hours():
    r = one_day(punches(("08:00", "in"), ("09:30", "out")))
    # 90 min < 2 h = 120 -> absent; 17:00 - 09:30 = 450 min early
    assert summary(r) == ("absent", False, True, 90, 0, 450, ("a", "b"))


def test_single_punch_is_missing_punch_not_present():
    r = one_day(punches(("08:01", "in")))
    assert summary(r) == ("missing_punch", False, False, 0, 0, 0, ("a",))
    assert (r.first_in, r.last_out) == (at("2026-03-02 08:01"), None)


def test_device_pairing_without_an_out_is_missing_punch():
    device = Shift("day", "Day", time(8), time(17), pairing="device")
    r = one_day(punches(("08:00", "in"), ("17:00", "in")), device)
    # two "in" and no "out": no span to measure
    assert summary(r) == ("missing_punch", False, False, 0, 0, 0, ("a", "b"))


def test_night_shift_counts_on_its_start_day():
    night = Shift("night", "Night", time(22), time(6))
    ps = punches(("2026-03-02 21:50", "in"), ("2026-03-03 06:05", "out"))
    # asked for Monday only: the Tuesday 06:05 punch is outside the range but inside
    # Monday's window (21:00 Mon .. 07:00 Tue). 21:50 -> 06:05 = 8 h 15 min = 495 min
    [r] = compute_days(ps, sched(night), MON, MON)
    assert (r.date, *summary(r)) == (MON, "present", False, False, 495, 0, 0, ("a", "b"))
    mon, tue = compute_days(ps, sched(night), MON, TUE)
    assert mon == r
    assert (tue.date, tue.status, tue.punch_ids) == (TUE, "absent", ())


def test_overlapping_margins_of_two_shifts_split_at_midpoint():
    night = Shift("night", "Night", time(22), time(6))
    early = Shift("early", "Early", time(6, 30), time(14, 30))
    s = Schedule(
        shifts={"night": night, "early": early}, assignment={"p1": "night"}, roster={("p1", TUE): "early"}, tz=SH
    )
    ps = punches(
        ("2026-03-02 21:58", "in"), ("2026-03-03 06:05", "out"), ("2026-03-03 06:25", "in"), ("2026-03-03 14:35", "out")
    )
    # Monday night window 21:00 Mon .. 07:00 Tue; Tuesday early window 05:30 .. 15:30 Tue.
    # Overlap 05:30 .. 07:00, midpoint 06:15: 06:05 -> Monday, 06:25 -> Tuesday.
    mon, tue = compute_days(ps, s, MON, TUE)
    # Mon 21:58 -> 06:05 = 8 h 07 min = 487; Tue 06:25 -> 14:35 = 8 h 10 min = 490
    assert (mon.shift_id, *summary(mon)) == ("night", "present", False, False, 487, 0, 0, ("a", "b"))
    assert (tue.shift_id, *summary(tue)) == ("early", "present", False, False, 490, 0, 0, ("c", "d"))


def test_24h_shift_overlap_midpoint_goes_to_later_day():
    guard = Shift("guard", "24h", time(8), time(8), workdays=frozenset(range(7)))
    ps = punches(
        ("2026-03-02 08:02", "in"), ("2026-03-03 07:58", "out"), ("2026-03-03 08:00", "in"), ("2026-03-04 07:57", "out")
    )
    # Each window (07:00 .. 09:00 next day) overlaps the next one on 07:00 .. 09:00; the
    # midpoint 08:00 sharp goes to the later day, so every day effectively runs 08:00 .. 08:00
    # (a 07:55 punch on Monday would be Sunday's out).
    mon, tue = compute_days(ps, sched(guard), MON, TUE)
    # Mon 08:02 -> Tue 07:58 = 23 h 56 min = 1436; Tue 08:00 -> Wed 07:57 = 23 h 57 min = 1437
    assert summary(mon) == ("present", False, False, 1436, 0, 0, ("a", "b"))
    assert summary(tue) == ("present", False, False, 1437, 0, 0, ("c", "d"))


def test_holiday_lists_punches_but_marks_nothing():
    r = one_day(punches(("09:00", "in"), ("12:00", "out")), holidays={MON})
    # would be late and half_day on a workday; 09:00 -> 12:00 = 180 min kept for overtime
    assert summary(r) == ("holiday", False, False, 180, 0, 0, ("a", "b"))


def test_holiday_on_a_weekend_still_gets_a_record():
    sat, sun = date(2026, 3, 7), date(2026, 3, 8)
    recs = compute_days([], sched(holidays={sat}), sat, sun)
    assert [(r.date, r.status) for r in recs] == [(sat, "holiday")]  # Sunday: not scheduled


def test_leave():
    r = one_day([], leaves=[Leave("p1", MON)])
    assert summary(r) == ("leave", False, False, 0, 0, 0, ())


def test_duplicate_punches_count_once():
    ps = punches(("08:00:00.100", "in"), ("08:00:00.900", "in"), ("17:00:00.000", "out"), ("17:00:00.400", "out"))
    r = one_day(ps, Shift("day", "Day", time(8), time(17), hours_mode="pairs"))
    # b and d repeat a and c within the same second: pairs = (a, c) = 08:00:00.1 -> 17:00 = 539.99 min
    # -> 539 (rounded down). Counted twice it would be (a, b) + (c, d) ~ 0 min -> absent.
    assert summary(r) == ("present", False, False, 539, 0, 0, ("a", "c"))


def test_alternate_and_device_pairing_differ_on_the_same_punches():
    ps = punches(("07:55", "out"), ("12:00", "out"), ("13:00", "in"), ("17:05", "out"))
    alt = one_day(ps, Shift("day", "Day", time(8), time(17), pairing="alternate"))
    dev = one_day(ps, Shift("day", "Day", time(8), time(17), pairing="device"))
    # alternate ignores directions: 07:55 -> 17:05 = 9 h 10 min = 550
    assert summary(alt) == ("present", False, False, 550, 0, 0, ("a", "b", "c", "d"))
    # device: first "in" is 13:00 (5 h = 300 min late), last "out" 17:05 -> 245 min (>= 240)
    assert summary(dev) == ("late", True, False, 245, 300, 0, ("a", "b", "c", "d"))
    assert dev.first_in == at("2026-03-02 13:00")


def test_pairs_versus_first_last_hours():
    ps = punches(("08:00", "in"), ("12:00", "out"), ("13:00", "in"), ("17:00", "out"))
    span = one_day(ps, Shift("day", "Day", time(8), time(17), hours_mode="first_last"))
    pairs = one_day(ps, Shift("day", "Day", time(8), time(17), hours_mode="pairs"))
    assert span.worked_minutes == 540  # 08:00 -> 17:00, lunch included
    assert pairs.worked_minutes == 480  # 4 h + 4 h
    assert span.status == pairs.status == "present"


def test_pairs_with_an_odd_trailing_punch():
    ps = punches(("08:00", "in"), ("12:00", "out"), ("13:00", "in"))
    r = one_day(ps, Shift("day", "Day", time(8), time(17), hours_mode="pairs"))
    # only (08:00, 12:00) pairs: 240 min; last out 12:00 is 300 min before 17:00
    assert summary(r) == ("early_exit", False, True, 240, 0, 300, ("a", "b", "c"))
    assert r.last_out == at("2026-03-02 12:00")


def test_provisional_until_the_slow_terminal_passes_shift_end_plus_margin():
    ps = punches(("08:00", "in"), ("17:00", "out"))
    devices = ("front", "slow")

    # final from 17:00 + 60 min = 18:00 Shanghai on every feeding device
    def final(marks):
        [r] = compute_days(ps, sched(), MON, MON, watermarks=marks, feeding_devices=devices)
        return r.final

    front = at("2026-03-02 20:00")
    assert final({"front": front, "slow": at("2026-03-02 17:59:59.999")}) is False
    assert final({"front": front}) is False  # slow never reported
    assert final({"front": front, "slow": at("2026-03-02 18:00")}) is True
    assert compute_days(ps, sched(), MON, MON)[0].final is True  # no feeding devices given


def utc(stamp: str) -> int:
    return at(stamp, UTC)


def test_dst_spring_forward_night_shift():
    # 2026-03-08: New York clocks jump 02:00 EST -> 03:00 EDT.
    night = Shift("night", "Night", time(22), time(6), workdays=frozenset(range(7)))
    ps = [
        Punch("a", "p1", utc("2026-03-08 03:00"), "in", "d"),  # Sat 22:00 EST (UTC-5)
        Punch("b", "p1", utc("2026-03-08 10:00"), "out", "d"),
    ]  # Sun 06:00 EDT (UTC-4)
    [r] = compute_days(ps, sched(night, tz=NY), date(2026, 3, 7), date(2026, 3, 7))
    # 8 h on the wall clock, 7 h elapsed = 420 min; out exactly at the shift end: not early
    assert summary(r) == ("present", False, False, 420, 0, 0, ("a", "b"))


def test_dst_spring_forward_day_shift():
    early = Shift("e", "Early", time(1), time(9), workdays=frozenset(range(7)))
    ps = [
        Punch("a", "p1", utc("2026-03-08 06:00"), "in", "d"),  # 01:00 EST
        Punch("b", "p1", utc("2026-03-08 13:00"), "out", "d"),
    ]  # 09:00 EDT
    [r] = compute_days(ps, sched(early, tz=NY), date(2026, 3, 8), date(2026, 3, 8))
    assert summary(r) == ("present", False, False, 420, 0, 0, ("a", "b"))


def test_dst_fall_back_night_shift():
    # 2026-11-01: 02:00 EDT -> 01:00 EST, the night lasts 9 h.
    night = Shift("night", "Night", time(22), time(6), workdays=frozenset(range(7)))
    ps = [
        Punch("a", "p1", utc("2026-11-01 02:00"), "in", "d"),  # Sat 22:00 EDT
        Punch("b", "p1", utc("2026-11-01 11:00"), "out", "d"),
    ]  # Sun 06:00 EST
    [r] = compute_days(ps, sched(night, tz=NY), date(2026, 10, 31), date(2026, 10, 31))
    assert summary(r) == ("present", False, False, 540, 0, 0, ("a", "b"))


def test_records_ordered_by_person_then_date_and_unknown_people_ignored():
    s = Schedule(shifts={"day": DAY}, assignment={"zed": "day", "amy": "day"}, tz=SH)
    ps = punches(("08:00", "in"), person="stranger")
    recs = compute_days(ps, s, MON, TUE)
    assert [(r.person_id, r.date) for r in recs] == [("amy", MON), ("amy", TUE), ("zed", MON), ("zed", TUE)]
    assert all(r.punch_ids == () for r in recs)


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        Shift("x", "X", time(8), time(17), hours_mode="sum")
    with pytest.raises(ValueError):
        compute_days([], Schedule(shifts={}, assignment={"p1": "nope"}, tz=SH), MON, MON)
    with pytest.raises(ValueError):
        compute_days([], sched(), TUE, MON)


# --- properties -----------------------------------------------------------------------

ZONES = [ZoneInfo(z) for z in ("UTC", "Asia/Shanghai", "America/New_York", "Europe/London", "Australia/Lord_Howe")]
# Around DST changes in the zones above, and a quiet week.
STARTS = [date(2026, 3, 6), date(2026, 3, 27), date(2026, 4, 3), date(2026, 10, 2), date(2026, 10, 30), MON]


@st.composite
def shifts(draw, sid: str) -> Shift:
    return Shift(
        sid,
        sid,
        time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 15, 30, 45]))),
        time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 30]))),
        early_margin_min=draw(st.integers(0, 600)),
        late_margin_min=draw(st.integers(0, 600)),
        late_grace_min=draw(st.integers(0, 30)),
        early_exit_grace_min=draw(st.integers(0, 30)),
        hours_mode=draw(st.sampled_from(["first_last", "pairs"])),
        pairing=draw(st.sampled_from(["alternate", "device"])),
        workdays=frozenset(draw(st.sets(st.integers(0, 6)))),
    )


@st.composite
def scenarios(draw, with_roster: bool):
    tz = draw(st.sampled_from(ZONES))
    d0 = draw(st.sampled_from(STARTS)) + timedelta(days=draw(st.integers(0, 3)))
    ndays = draw(st.integers(1, 5))
    days = [d0 + timedelta(days=k) for k in range(ndays)]
    a, b = draw(shifts("A")), draw(shifts("B"))
    people = ["p1", "p2", "p3"]
    roster = {}
    if with_roster:
        for pid in people:
            for d in days:
                choice = draw(st.sampled_from([None, "A", "B", "skip"]))
                if choice != "skip":
                    roster[(pid, d)] = choice
    base = (datetime.combine(d0 - timedelta(days=2), time(), UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        milliseconds=1
    )
    span = (ndays + 4) * 86_400_000
    raw = draw(
        st.lists(
            st.tuples(st.sampled_from(people), st.integers(0, span), st.sampled_from(["in", "out", "unknown"])),
            max_size=60,
        )
    )
    # a few exact repeats, as re-sent packs produce
    raw += draw(st.lists(st.sampled_from(raw), max_size=5)) if raw else []
    ps = [Punch(f"k{i}", pid, base + off, d, "dev") for i, (pid, off, d) in enumerate(raw)]
    on_leave = draw(st.lists(st.tuples(st.sampled_from(people), st.sampled_from(days)), max_size=3))
    schedule = Schedule(
        shifts={"A": a, "B": b},
        assignment={"p1": "A", "p2": "B", "p3": "A"},
        tz=tz,
        holidays=set(draw(st.lists(st.sampled_from(days), max_size=2))),
        leaves=[Leave(pid, d) for pid, d in on_leave],
        roster=roster,
    )
    return ps, schedule, days


@settings(max_examples=300, deadline=None)
@given(scenarios(with_roster=True))
def test_random_punches_never_crash_and_no_punch_is_used_twice(case):
    ps, schedule, days = case
    recs = compute_days(ps, schedule, days[0], days[-1])
    by_id = {p.id: p for p in ps}
    owner = {p.id: p.person_id for p in ps}
    used = [pid for r in recs for pid in r.punch_ids]
    assert len(used) == len(set(used))
    assert [(r.person_id, r.date) for r in recs] == sorted((r.person_id, r.date) for r in recs)
    assert len({(r.person_id, r.date) for r in recs}) == len(recs)
    for r in recs:
        assert days[0] <= r.date <= days[-1]
        assert r.status in STATUSES
        assert r.worked_minutes >= 0 and r.late_minutes >= 0 and r.early_exit_minutes >= 0
        assert all(owner[i] == r.person_id for i in r.punch_ids)
        shift = schedule.shifts[r.shift_id]
        assert r.late == (r.late_minutes > shift.late_grace_min)
        assert r.early_exit == (r.early_exit_minutes > shift.early_exit_grace_min)
        if len(r.punch_ids) == 1 and r.status not in ("holiday", "leave"):
            assert r.status == "missing_punch"
        # every punch lies in the day's untrimmed window, localized here independently
        start = datetime.combine(r.date, shift.start, tzinfo=schedule.tz)
        end_day = r.date + timedelta(days=1) if shift.end <= shift.start else r.date
        end = datetime.combine(end_day, shift.end, tzinfo=schedule.tz)
        lo = start.timestamp() * 1000 - shift.early_margin_min * 60_000
        hi = end.timestamp() * 1000 + shift.late_margin_min * 60_000
        mine = [by_id[i] for i in r.punch_ids]
        assert all(lo <= p.time <= hi for p in mine)
        assert [p.time for p in mine] == sorted(p.time for p in mine)
        # no two kept punches are duplicates (same second, same direction)
        keys = [(p.time // 1000, p.direction) for p in mine]
        assert len(keys) == len(set(keys))


@settings(max_examples=200, deadline=None)
@given(scenarios(with_roster=False))
def test_a_day_does_not_depend_on_the_range_it_is_asked_in(case):
    ps, schedule, days = case
    whole = compute_days(ps, schedule, days[0], days[-1])
    by_day = [r for d in days for r in compute_days(ps, schedule, d, d)]
    assert sorted(whole, key=lambda r: (r.person_id, r.date)) == sorted(by_day, key=lambda r: (r.person_id, r.date))
