"""Loads the engine's inputs from the database, and turns shift rows into Shift rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select
from sqlmodel import Session

from gateway.attendance.rules import DayRecord, Leave, Punch, Schedule, Shift, compute_days
from gateway.store.models import Device, Holiday, LeaveDay, Person, PunchRecord, ShiftAssignment, ShiftRow

RULE_FIELDS = (
    "early_margin_min",
    "late_margin_min",
    "late_grace_min",
    "early_exit_grace_min",
    "absent_below_hours",
    "half_day_below_hours",
    "hours_mode",
    "pairing",
)


def shift_from_row(row: ShiftRow) -> Shift:
    return Shift(
        id=row.id,
        name=row.name,
        start=time.fromisoformat(row.start),
        end=time.fromisoformat(row.end),
        workdays=frozenset(row.workdays),
        **{k: v for k, v in row.rules.items() if k in RULE_FIELDS},
    )


def _ms(day: date, tz: ZoneInfo) -> int:
    return int(datetime.combine(day, time(), tz).astimezone(UTC).timestamp() * 1000)


def load_schedule(session: Session, tz: ZoneInfo, person: str | None = None) -> tuple[Schedule, dict[str, Person]]:
    people = {p.id: p for p in session.execute(select(Person)).scalars() if person is None or p.id == person}
    shifts = {row.id: shift_from_row(row) for row in session.execute(select(ShiftRow)).scalars()}
    by_person: dict[str, str] = {}
    by_department: dict[str, str] = {}
    for a in session.execute(select(ShiftAssignment)).scalars():
        (by_person if a.target_type == "person" else by_department)[a.target_id] = a.shift_id
    assignment: dict[str, str] = {}
    for pid, p in people.items():
        shift_id = by_person.get(pid) or by_department.get(p.department)
        if shift_id is not None and shift_id in shifts:
            assignment[pid] = shift_id
    holidays = frozenset(date.fromisoformat(h.date) for h in session.execute(select(Holiday)).scalars())
    leaves = tuple(
        Leave(row.person_id, date.fromisoformat(row.date))
        for row in session.execute(select(LeaveDay)).scalars()
        if row.person_id in people
    )
    return Schedule(shifts=shifts, assignment=assignment, tz=tz, holidays=holidays, leaves=leaves), people


def daily_records(
    engine: Engine, site_timezone: str, date_from: date, date_to: date, person: str | None = None
) -> tuple[list[DayRecord], dict[str, Person]]:
    """The daily records of [date_from, date_to], computed from what is stored now.

    Recomputed on every call, so a late punch changes its day the next time it
    is asked for. A day is final once every attendance device has reported
    past its shift (the device's newest punch or any sign of life).
    """
    tz = ZoneInfo(site_timezone)
    with Session(engine) as session:
        schedule, people = load_schedule(session, tz, person)
        # A margin either side: night shifts and early arrivals reach into the neighbouring days.
        start, end = _ms(date_from - timedelta(days=2), tz), _ms(date_to + timedelta(days=3), tz)
        t = PunchRecord.__table__.c
        query = select(t.id, t.person_id, t.time, t.direction, t.device_id).where(
            t.time >= start, t.time < end, t.person_id.is_not(None)
        )
        if person is not None:
            query = query.where(t.person_id == person)
        punches = [Punch(str(r.id), r.person_id, r.time, r.direction, r.device_id) for r in session.execute(query)]
        d = Device.__table__.c
        feeders = session.execute(select(d.id, d.last_seen).where(d.kind == "attendance")).all()
        newest = dict(session.execute(select(t.device_id, func.max(t.time)).group_by(t.device_id)).all())
    watermarks = {d: max(last_seen or 0, newest.get(d) or 0) for d, last_seen in feeders}
    records = compute_days(punches, schedule, date_from, date_to, watermarks, [d for d, _ in feeders])
    return records, people


def record_dict(r: DayRecord, people: dict[str, Person], tz: ZoneInfo) -> dict[str, Any]:
    from gateway.core.timeutil import iso_utc

    def local(ms: int | None) -> str | None:
        return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="seconds") if ms is not None else None

    person = people.get(r.person_id)
    return {
        "person_id": r.person_id,
        "name": person.name if person else None,
        "department": person.department if person else None,
        "date": r.date.isoformat(),
        "shift_id": r.shift_id,
        "status": r.status,
        "late": r.late,
        "early_exit": r.early_exit,
        "first_in": iso_utc(r.first_in) if r.first_in is not None else None,
        "last_out": iso_utc(r.last_out) if r.last_out is not None else None,
        "first_in_local": local(r.first_in),
        "last_out_local": local(r.last_out),
        "worked_minutes": r.worked_minutes,
        "late_minutes": r.late_minutes,
        "early_exit_minutes": r.early_exit_minutes,
        "punch_ids": list(r.punch_ids),
        "final": r.final,
        "state": "final" if r.final else "provisional",
    }
