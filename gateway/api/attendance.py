"""Attendance rules (shifts, assignments, holidays, leave) and the daily records computed from them."""

from __future__ import annotations

from datetime import date, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlmodel import Session

from gateway.api.deps import Actor, Page, admin_only, encode_cursor, engine, page, read_records, services
from gateway.attendance import report
from gateway.attendance.rules import Shift
from gateway.attendance.store import daily_records, record_dict
from gateway.auth import audit
from gateway.services import Services
from gateway.store.models import Holiday, LeaveDay, ShiftAssignment, ShiftRow

router = APIRouter(prefix="/api/v1/attendance", tags=["attendance"])
Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9._@-]{1,64}$")]
HHMM = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="local wall-clock HH:MM")]
MAX_DAYS = 366
EARLIEST, LATEST = date(2000, 1, 1), date(2199, 12, 31)  # the range device times are accepted in


class ShiftBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Id
    name: str = Field(min_length=1, max_length=200)
    start: HHMM
    end: HHMM = Field(description="not after start = the shift crosses midnight and counts on its start day")
    early_margin_min: int = Field(60, ge=0, le=720)
    late_margin_min: int = Field(60, ge=0, le=720)
    late_grace_min: int = Field(5, ge=0, le=240)
    early_exit_grace_min: int = Field(5, ge=0, le=240)
    absent_below_hours: float = Field(2.0, ge=0, le=24)
    half_day_below_hours: float = Field(4.0, ge=0, le=24)
    hours_mode: Literal["first_last", "pairs"] = "first_last"
    pairing: Literal["alternate", "device"] = "alternate"
    workdays: list[Annotated[int, Field(ge=0, le=6)]] = Field([0, 1, 2, 3, 4], description="0 = Monday")


class AssignmentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target_type: Literal["person", "department"]
    target_id: str = Field(min_length=1, max_length=100)
    shift_id: Id


class HolidayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: Annotated[date, Field(ge=date(2000, 1, 1), le=date(2199, 12, 31))]
    name: str = Field("", max_length=200)


class LeaveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person_id: Id
    date: Annotated[date, Field(ge=date(2000, 1, 1), le=date(2199, 12, 31))]
    kind: str = Field("leave", max_length=32)


def shape_shift(row: ShiftRow) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "start": row.start, "end": row.end, "workdays": row.workdays, **row.rules}


@router.post("/shifts", status_code=201)
def create_shift(body: ShiftBody, actor: Actor = Depends(admin_only), eng: Any = Depends(engine)) -> dict[str, Any]:
    fields = body.model_dump()
    rules = {k: fields[k] for k in fields if k not in ("id", "name", "start", "end", "workdays")}
    try:  # the engine's own checks (e.g. half-day threshold not below the absent one)
        Shift(
            id=body.id,
            name=body.name,
            start=time.fromisoformat(body.start),
            end=time.fromisoformat(body.end),
            workdays=frozenset(body.workdays),
            **rules,
        )
    except ValueError as exc:
        raise HTTPException(422, f"shift: {exc}") from None
    row = ShiftRow(
        id=body.id,
        name=body.name,
        start=body.start,
        end=body.end,
        rules=rules,
        workdays=sorted(set(body.workdays)),
        updated_at=0,
    )
    with Session(eng) as session:
        if session.get(ShiftRow, body.id) is not None:
            raise HTTPException(409, f"shift {body.id!r} already exists")
        audit.record(session, actor.name, "create", "shift", body.id, None, shape_shift(row))
        session.add(row)
        session.commit()
        return shape_shift(row)


@router.get("/shifts", dependencies=[Depends(read_records)])
def list_shifts(eng: Any = Depends(engine)) -> dict[str, Any]:
    with Session(eng) as session:
        return {
            "items": [shape_shift(r) for r in session.execute(select(ShiftRow).order_by(ShiftRow.id)).scalars()],
            "next": None,
        }


@router.delete("/shifts/{shift_id}", status_code=204)
def delete_shift(
    shift_id: Annotated[str, Path(max_length=64)], actor: Actor = Depends(admin_only), eng: Any = Depends(engine)
) -> Response:
    with Session(eng) as session:
        row = session.get(ShiftRow, shift_id)
        if row is None:
            raise HTTPException(404, f"no shift {shift_id!r}")
        if session.execute(select(ShiftAssignment).where(ShiftAssignment.shift_id == shift_id)).first():
            raise HTTPException(409, f"shift {shift_id!r} is still assigned; remove its assignments first")
        audit.record(session, actor.name, "delete", "shift", shift_id, shape_shift(row), None)
        session.delete(row)
        session.commit()
    return Response(status_code=204)


@router.put("/assignments")
def assign(body: AssignmentBody, actor: Actor = Depends(admin_only), eng: Any = Depends(engine)) -> dict[str, Any]:
    """Assign a shift to a person or a department (replacing its earlier one)."""
    with Session(eng) as session:
        if session.get(ShiftRow, body.shift_id) is None:
            raise HTTPException(422, f"shift_id: no shift {body.shift_id!r}")
        row = session.execute(
            select(ShiftAssignment).where(
                ShiftAssignment.target_type == body.target_type, ShiftAssignment.target_id == body.target_id
            )
        ).scalar_one_or_none() or ShiftAssignment(target_type=body.target_type, target_id=body.target_id, shift_id="")
        before = body.model_dump() | {"shift_id": row.shift_id} if row.shift_id else None
        row.shift_id = body.shift_id
        audit.record(
            session,
            actor.name,
            "assign",
            "shift_assignment",
            f"{body.target_type}:{body.target_id}",
            before,
            body.model_dump(),
        )
        session.add(row)
        session.commit()
        return body.model_dump()


@router.get("/assignments", dependencies=[Depends(read_records)])
def list_assignments(eng: Any = Depends(engine)) -> dict[str, Any]:
    with Session(eng) as session:
        rows = session.execute(select(ShiftAssignment).order_by(ShiftAssignment.id)).scalars()
        return {
            "items": [{"target_type": r.target_type, "target_id": r.target_id, "shift_id": r.shift_id} for r in rows],
            "next": None,
        }


@router.post("/holidays", status_code=201)
def add_holiday(body: HolidayBody, actor: Actor = Depends(admin_only), eng: Any = Depends(engine)) -> dict[str, Any]:
    with Session(eng) as session:
        session.merge(Holiday(date=body.date.isoformat(), name=body.name))
        audit.record(
            session, actor.name, "create", "holiday", body.date.isoformat(), None, body.model_dump(mode="json")
        )
        session.commit()
    return body.model_dump(mode="json")


@router.get("/holidays", dependencies=[Depends(read_records)])
def list_holidays(eng: Any = Depends(engine)) -> dict[str, Any]:
    with Session(eng) as session:
        rows = session.execute(select(Holiday).order_by(Holiday.date)).scalars()
        return {"items": [{"date": h.date, "name": h.name} for h in rows], "next": None}


@router.post("/leaves", status_code=201)
def add_leave(body: LeaveBody, actor: Actor = Depends(admin_only), eng: Any = Depends(engine)) -> dict[str, Any]:
    with Session(eng) as session:
        session.merge(LeaveDay(person_id=body.person_id, date=body.date.isoformat(), kind=body.kind))
        audit.record(
            session, actor.name, "create", "leave", f"{body.person_id}:{body.date}", None, body.model_dump(mode="json")
        )
        session.commit()
    return body.model_dump(mode="json")


@router.get("/days", dependencies=[Depends(read_records)])
def days(
    date_from: Annotated[date, Query(alias="from", description="first day, the site's calendar")],
    date_to: Annotated[date, Query(alias="to", description="last day, inclusive")],
    svc: Services = Depends(services),
    person: Annotated[str | None, Query(max_length=64)] = None,
    format: Annotated[Literal["json", "csv"], Query(description="csv: every record of the range at once")] = "json",
    p: Page = Depends(page),
) -> Any:
    for name, day in (("from", date_from), ("to", date_to)):
        if not EARLIEST <= day <= LATEST:
            raise HTTPException(422, f"{name}: outside {EARLIEST}..{LATEST}")
    if date_to < date_from:
        raise HTTPException(422, "to: before from")
    if (date_to - date_from).days >= MAX_DAYS:
        raise HTTPException(422, f"to: at most {MAX_DAYS} days per request")
    zone = svc.settings.site.timezone
    records, people = daily_records(svc.engine, zone, date_from, date_to, person)
    items = [record_dict(r, people, ZoneInfo(zone)) for r in records]
    if format == "csv":
        return Response(report.to_csv(items), media_type="text/csv")
    # Records are computed in (person, date) order; the cursor is the position after the last one given.
    start = int(p.after) if p.after is not None and p.after.isdigit() else 0
    end = start + p.limit
    return {"items": items[start:end], "next": encode_cursor(end) if end < len(items) else None}
