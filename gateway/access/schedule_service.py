"""Door schedules as a service: create, list, remove, each change audited and at the doors before it answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session

from gateway.access.schedules import schedule_from_row
from gateway.auth import audit
from gateway.core.errors import Conflict, Invalid, NotFound
from gateway.store.models import AccessSchedule


def schedule_view(row: AccessSchedule) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "windows": row.windows, "holidays_closed": row.holidays_closed}


class Schedules:
    def __init__(self, engine: Engine, reload_doors: Callable[[], None]) -> None:
        self.engine = engine
        self.reload_doors = reload_doors  # the doors decide from memory: they learn a change from this

    def create(
        self, actor: str, schedule_id: str, name: str, windows: dict[str, list[list[str]]], holidays_closed: bool
    ) -> dict[str, Any]:
        """`windows`: weekday name -> [[start, end], ...] as "HH:MM", parsed as the doors parse them."""
        try:
            schedule_from_row({"id": schedule_id, "windows": windows, "holidays_closed": holidays_closed})
        except (ValueError, TypeError) as exc:
            raise Invalid(f"windows: {exc}") from None
        row = AccessSchedule(id=schedule_id, name=name, windows=windows, holidays_closed=holidays_closed)
        with Session(self.engine) as session:
            if session.get(AccessSchedule, schedule_id) is not None:
                raise Conflict(f"schedule {schedule_id!r} already exists")
            audit.record(session, actor, "create", "access_schedule", schedule_id, None, schedule_view(row))
            session.add(row)
            session.commit()
            answer = schedule_view(row)
        self.reload_doors()
        return answer

    def all(self) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            rows = session.execute(select(AccessSchedule).order_by(AccessSchedule.id)).scalars()
            return [schedule_view(r) for r in rows]

    def delete(self, actor: str, schedule_id: str) -> None:
        with Session(self.engine) as session:
            row = session.get(AccessSchedule, schedule_id)
            if row is None:
                raise NotFound(f"no schedule {schedule_id!r}")
            audit.record(session, actor, "delete", "access_schedule", schedule_id, schedule_view(row), None)
            session.delete(row)
            session.commit()
        self.reload_doors()  # holders on this schedule are now outside it at every door: fail closed
