"""Attendance rules (shifts, assignments, holidays, leave) and the daily records computed from them."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import Actor, Page, admin_only, encode_cursor, page, read_records, services
from gateway.attendance import report
from gateway.services import Services

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


@router.post("/shifts", status_code=201)
def create_shift(
    body: ShiftBody, actor: Actor = Depends(admin_only), svc: Services = Depends(services)
) -> dict[str, Any]:
    return svc.attendance.create_shift(actor.name, body.model_dump())


@router.get("/shifts", dependencies=[Depends(read_records)])
def list_shifts(svc: Services = Depends(services)) -> dict[str, Any]:
    return {"items": svc.attendance.shifts(), "next": None}


@router.delete("/shifts/{shift_id}", status_code=204)
def delete_shift(
    shift_id: Annotated[str, Path(max_length=64)], actor: Actor = Depends(admin_only), svc: Services = Depends(services)
) -> Response:
    svc.attendance.delete_shift(actor.name, shift_id)
    return Response(status_code=204)


@router.put("/assignments")
def assign(
    body: AssignmentBody, actor: Actor = Depends(admin_only), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Assign a shift to a person or a department (replacing its earlier one)."""
    return svc.attendance.assign(actor.name, body.target_type, body.target_id, body.shift_id)


@router.get("/assignments", dependencies=[Depends(read_records)])
def list_assignments(svc: Services = Depends(services)) -> dict[str, Any]:
    return {"items": svc.attendance.assignments(), "next": None}


@router.post("/holidays", status_code=201)
def add_holiday(
    body: HolidayBody, actor: Actor = Depends(admin_only), svc: Services = Depends(services)
) -> dict[str, Any]:
    """A holiday counts in the daily records and closes the doors of `holidays_closed` schedules at once."""
    return svc.attendance.add_holiday(actor.name, body.date, body.name)


@router.get("/holidays", dependencies=[Depends(read_records)])
def list_holidays(svc: Services = Depends(services)) -> dict[str, Any]:
    return {"items": svc.attendance.holidays(), "next": None}


@router.post("/leaves", status_code=201)
def add_leave(body: LeaveBody, actor: Actor = Depends(admin_only), svc: Services = Depends(services)) -> dict[str, Any]:
    return svc.attendance.add_leave(actor.name, body.person_id, body.date, body.kind)


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
    items = svc.attendance.day_records(date_from, date_to, person)
    if format == "csv":
        return Response(report.to_csv(items), media_type="text/csv")
    # Records are computed in (person, date) order; the cursor is the position after the last one given.
    start = p.after_id
    end = start + p.limit
    return {"items": items[start:end], "next": encode_cursor(end) if end < len(items) else None}
