"""Read-only record lists: punches and dead letters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Engine, select

from gateway.api.deps import (
    Page,
    engine,
    page,
    paginated,
    read_deadletters,
    read_records,
    within,
)
from gateway.store import shapes
from gateway.store.models import DeadLetter, PunchRecord

router = APIRouter(prefix="/api/v1")


@router.get("/attendance/punches", tags=["attendance"], dependencies=[Depends(read_records)])
def list_punches(
    p: Page = Depends(page),
    eng: Engine = Depends(engine),
    person: Annotated[str | None, Query(max_length=64)] = None,
    device_id: Annotated[str | None, Query(max_length=64)] = None,
    user: Annotated[str | None, Query(max_length=64, description="the id the device knows the person by")] = None,
    unmapped: Annotated[bool | None, Query(description="true: only punches that resolve to no person")] = None,
    since: Annotated[str | None, Query(max_length=64, description="RFC 3339, inclusive")] = None,
    until: Annotated[str | None, Query(max_length=64, description="RFC 3339, exclusive")] = None,
) -> dict[str, Any]:
    table = PunchRecord.__table__
    t = table.c
    query = select(table).where(t.id > p.after_id).order_by(t.id).limit(p.limit + 1)
    if person is not None:
        query = query.where(t.person_id == person)
    if device_id is not None:
        query = query.where(t.device_id == device_id)
    if user is not None:
        query = query.where(t.user == user)
    if unmapped is not None:
        query = query.where(t.person_id.is_(None) if unmapped else t.person_id.is_not(None))
    query = within(query, t.time, since, until)
    with eng.connect() as conn:
        rows = conn.execute(query).all()
    return paginated(rows, p.limit, shapes.punch)


@router.get("/deadletters", tags=["dead letters"], dependencies=[Depends(read_deadletters)])
def list_deadletters(
    p: Page = Depends(page),
    eng: Engine = Depends(engine),
    reason: Annotated[str | None, Query(max_length=64)] = None,
    device_id: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    table = DeadLetter.__table__
    t = table.c
    query = select(table).where(t.id > p.after_id).order_by(t.id).limit(p.limit + 1)
    if reason is not None:
        query = query.where(t.reason == reason)
    if device_id is not None:
        query = query.where(t.device_id == device_id)
    with eng.connect() as conn:
        rows = conn.execute(query).all()
    return paginated(rows, p.limit, shapes.dead_letter)
