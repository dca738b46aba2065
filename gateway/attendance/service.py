"""Attendance rules as a service: shifts, their assignments, holidays and leave, each change audited.

Holidays are also the doors' business (a `holidays_closed` schedule keeps its doors shut on one),
so a holiday added here reaches them through `on_holidays_changed` once it is committed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from gateway.attendance.store import daily_records, record_dict, shift_from_row
from gateway.auth import audit
from gateway.core.errors import Conflict, Invalid, NotFound
from gateway.store.models import Holiday, LeaveDay, ShiftAssignment, ShiftRow

SHIFT_COLUMNS = ("id", "name", "start", "end", "workdays")  # the rest of a shift's fields are its rules


def shift_view(row: ShiftRow) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "start": row.start, "end": row.end, "workdays": row.workdays, **row.rules}


class Attendance:
    def __init__(self, engine: Engine, site_timezone: str, on_holidays_changed: Callable[[], None]) -> None:
        self.engine = engine
        self.site_timezone = site_timezone
        self.on_holidays_changed = on_holidays_changed

    # -- shifts ---------------------------------------------------------------

    def create_shift(self, actor: str, fields: dict[str, Any]) -> dict[str, Any]:
        """`fields`: the shift's columns and rules; the engine's own checks apply before it is stored."""
        rules = {k: v for k, v in fields.items() if k not in SHIFT_COLUMNS}
        row = ShiftRow(
            id=fields["id"],
            name=fields["name"],
            start=fields["start"],
            end=fields["end"],
            rules=rules,
            workdays=sorted(set(fields["workdays"])),
            updated_at=0,
        )
        try:  # e.g. the half-day threshold not below the absent one
            shift_from_row(row)
        except ValueError as exc:
            raise Invalid(f"shift: {exc}") from None
        with Session(self.engine) as session:
            if session.get(ShiftRow, row.id) is not None:
                raise Conflict(f"shift {row.id!r} already exists")
            audit.record(session, actor, "create", "shift", row.id, None, shift_view(row))
            session.add(row)
            session.commit()
            return shift_view(row)

    def shifts(self) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            return [shift_view(r) for r in session.execute(select(ShiftRow).order_by(ShiftRow.id)).scalars()]

    def delete_shift(self, actor: str, shift_id: str) -> None:
        with Session(self.engine) as session:
            row = session.get(ShiftRow, shift_id)
            if row is None:
                raise NotFound(f"no shift {shift_id!r}")
            if session.execute(select(ShiftAssignment).where(col(ShiftAssignment.shift_id) == shift_id)).first():
                raise Conflict(f"shift {shift_id!r} is still assigned; remove its assignments first")
            audit.record(session, actor, "delete", "shift", shift_id, shift_view(row), None)
            session.delete(row)
            session.commit()

    def assign(self, actor: str, target_type: str, target_id: str, shift_id: str) -> dict[str, Any]:
        """A person's or a department's shift, replacing its earlier one."""
        after = {"target_type": target_type, "target_id": target_id, "shift_id": shift_id}
        with Session(self.engine) as session:
            if session.get(ShiftRow, shift_id) is None:
                raise Invalid(f"shift_id: no shift {shift_id!r}")
            row = session.execute(
                select(ShiftAssignment).where(
                    col(ShiftAssignment.target_type) == target_type, col(ShiftAssignment.target_id) == target_id
                )
            ).scalar_one_or_none() or ShiftAssignment(target_type=target_type, target_id=target_id, shift_id="")
            before = after | {"shift_id": row.shift_id} if row.shift_id else None
            row.shift_id = shift_id
            audit.record(session, actor, "assign", "shift_assignment", f"{target_type}:{target_id}", before, after)
            session.add(row)
            session.commit()
        return after

    def assignments(self) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            rows = session.execute(select(ShiftAssignment).order_by(col(ShiftAssignment.id))).scalars()
            return [{"target_type": r.target_type, "target_id": r.target_id, "shift_id": r.shift_id} for r in rows]

    # -- the calendar -----------------------------------------------------------

    def add_holiday(self, actor: str, day: date, name: str) -> dict[str, Any]:
        """Stored (or renamed), then the doors know it before this returns."""
        answer = {"date": day.isoformat(), "name": name}
        with Session(self.engine) as session:
            session.merge(Holiday(date=day.isoformat(), name=name))
            audit.record(session, actor, "create", "holiday", day.isoformat(), None, answer)
            session.commit()
        self.on_holidays_changed()
        return answer

    def holidays(self) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            rows = session.execute(select(Holiday).order_by(Holiday.date)).scalars()
            return [{"date": h.date, "name": h.name} for h in rows]

    def add_leave(self, actor: str, person_id: str, day: date, kind: str) -> dict[str, Any]:
        answer = {"person_id": person_id, "date": day.isoformat(), "kind": kind}
        with Session(self.engine) as session:
            session.merge(LeaveDay(person_id=person_id, date=day.isoformat(), kind=kind))
            audit.record(session, actor, "create", "leave", f"{person_id}:{day}", None, answer)
            session.commit()
        return answer

    # -- the records ------------------------------------------------------------

    def day_records(self, first: date, last: date, person: str | None = None) -> list[dict[str, Any]]:
        """One record per person and day, first..last inclusive, in (person, date) order."""
        records, people = daily_records(self.engine, self.site_timezone, first, last, person)
        zone = ZoneInfo(self.site_timezone)
        return [record_dict(r, people, zone) for r in records]
