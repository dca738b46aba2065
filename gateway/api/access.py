"""Door events with their decision and reason."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Engine, select

from gateway.api.deps import (
    Actor,
    Page,
    admin_only,
    engine,
    page,
    paginated,
    read_records,
    services,
    within,
)
from gateway.services import Services
from gateway.store import shapes
from gateway.store.models import AccessRecord

router = APIRouter(prefix="/api/v1/access", tags=["access"])


@router.get("/events", dependencies=[Depends(read_records)])
def list_access_events(
    p: Page = Depends(page),
    eng: Engine = Depends(engine),
    door: Annotated[str | None, Query(max_length=64)] = None,
    device_id: Annotated[str | None, Query(max_length=64)] = None,
    decision: Annotated[str | None, Query(pattern="^(granted|denied)$")] = None,
    since: Annotated[str | None, Query(max_length=64, description="RFC 3339, inclusive")] = None,
    until: Annotated[str | None, Query(max_length=64, description="RFC 3339, exclusive")] = None,
) -> dict[str, Any]:
    table = AccessRecord.__table__
    t = table.c
    query = select(table).where(t.id > p.after_id).order_by(t.id).limit(p.limit + 1)
    for column, value in ((t.door, door), (t.device_id, device_id), (t.decision, decision)):
        if value is not None:
            query = query.where(column == value)
    query = within(query, t.time, since, until)
    with eng.connect() as conn:
        rows = conn.execute(query).all()
    return paginated(rows, p.limit, shapes.access)


HHMM = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ScheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    name: str = Field("", max_length=200)
    windows: dict[str, list[tuple[HHMM, HHMM]]] = Field(
        description='weekday ("mon".."sun") -> [["08:00", "19:00"], ...] local time; an end not after its start '
        "runs past midnight"
    )
    holidays_closed: bool = True

    @field_validator("windows")
    @classmethod
    def _weekdays(cls, windows: dict[str, list[tuple[str, str]]]) -> dict[str, list[tuple[str, str]]]:
        unknown = sorted(set(windows) - set(WEEKDAYS))
        if unknown:
            raise ValueError(f"unknown weekday {unknown[0]!r}; use {', '.join(WEEKDAYS)}")
        return windows


@router.post("/schedules", status_code=201)
def create_schedule(
    body: ScheduleBody, actor: Actor = Depends(admin_only), svc: Services = Depends(services)
) -> dict[str, Any]:
    windows = {day: [list(w) for w in spans] for day, spans in body.windows.items()}
    return svc.schedules.create(actor.name, body.id, body.name, windows, body.holidays_closed)


@router.get("/schedules", dependencies=[Depends(read_records)])
def list_schedules(svc: Services = Depends(services)) -> dict[str, Any]:
    return {"items": svc.schedules.all(), "next": None}


@router.delete("/schedules/{schedule_id}", status_code=204)
def delete_schedule(
    schedule_id: Annotated[str, Path(max_length=64)],
    actor: Actor = Depends(admin_only),
    svc: Services = Depends(services),
) -> Response:
    svc.schedules.delete(actor.name, schedule_id)
    return Response(status_code=204)
