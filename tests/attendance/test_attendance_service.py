"""The attendance service: the engine's checks before a shift is stored, the doors told of a holiday after commit."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlmodel import Session

from gateway.attendance.service import Attendance
from gateway.core.errors import Conflict, Invalid, NotFound
from gateway.store.models import AuditEntry, Holiday

DAY = {"id": "day", "name": "Day", "start": "09:00", "end": "18:00", "workdays": [0, 1, 2, 3, 4]}


@pytest.fixture
def attendance(engine):
    told: list[list[str]] = []

    def holidays_changed() -> None:  # what the doors would read at that moment
        with Session(engine) as session:
            told.append([h.date for h in session.execute(select(Holiday)).scalars()])

    return Attendance(engine, "Asia/Shanghai", holidays_changed), told


def test_a_holiday_is_committed_before_the_doors_are_told(attendance):
    service, told = attendance
    assert service.add_holiday("admin", date(2026, 10, 1), "National Day") == {
        "date": "2026-10-01",
        "name": "National Day",
    }
    assert told == [["2026-10-01"]]
    assert service.holidays() == [{"date": "2026-10-01", "name": "National Day"}]


def test_shifts_are_checked_by_the_engine_and_kept_while_assigned(attendance):
    service, _ = attendance
    with pytest.raises(Invalid, match="^shift: "):
        service.create_shift("admin", {**DAY, "absent_below_hours": 5.0, "half_day_below_hours": 4.0})
    service.create_shift("admin", DAY)
    with pytest.raises(Conflict):
        service.create_shift("admin", DAY)
    with pytest.raises(Invalid, match="no shift 'night'"):
        service.assign("admin", "person", "E1", "night")
    service.assign("admin", "department", "Sales", "day")
    with pytest.raises(Conflict, match="still assigned"):
        service.delete_shift("admin", "day")
    with pytest.raises(NotFound):
        service.delete_shift("admin", "night")
    with Session(service.engine) as session:
        actions = [(a.action, a.target_type) for a in session.execute(select(AuditEntry)).scalars()]
    assert actions == [("create", "shift"), ("assign", "shift_assignment")]
