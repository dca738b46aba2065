"""Attendance today, a person's month, and visitors (expected, on site, the invitation form)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from gateway.core.errors import NotFound
from gateway.dashboard import attendance_view, queries
from gateway.dashboard.auth import Posted, Viewer, allowed, posted_by, services
from gateway.dashboard.invitation import LOCAL_INPUT, InviteProblem, invitation
from gateway.dashboard.web import PAGE_HEADERS, Refused, page_router, render, site_zone
from gateway.services import Services
from gateway.visitors.service import VisitorError

router = page_router()
INVITE_FIELDS = ("name", "phone", "company", "host", "start", "end", "credential", "more_doors")
DEFAULT_VISIT = timedelta(hours=2)


@router.get("/dashboard/attendance")
def attendance_today(
    request: Request, viewer: Viewer = Depends(allowed("read_records")), svc: Services = Depends(services)
) -> Response:
    zone = site_zone(request)
    today = datetime.now(zone).date()
    rows = svc.attendance.day_records(today, today)
    return render(
        request,
        viewer,
        "attendance.html",
        title="Attendance today",
        day=today.isoformat(),
        rows=rows,
        summary=attendance_view.today_summary(rows),
        clock=attendance_view.clock,
    )


@router.get("/dashboard/attendance/{person_id}")
def person_month(
    request: Request,
    person_id: Annotated[str, Path(max_length=64)],
    month: Annotated[str | None, Query(max_length=7)] = None,
    viewer: Viewer = Depends(allowed("read_records")),
    svc: Services = Depends(services),
) -> Response:
    zone = site_zone(request)
    year_month = attendance_view.parse_month(month, datetime.now(zone).date())
    if year_month is None:
        raise Refused(400, "month: give it as YYYY-MM (2000-01 to 2199-12).", viewer)
    try:
        person = svc.people.get(person_id)
    except NotFound:
        raise Refused(404, f"There is no person {person_id!r}.", viewer) from None
    name, department = person["name"], person["department"]
    first, last = attendance_view.month_bounds(*year_month)
    rows = svc.attendance.day_records(first, last, person_id)
    before, after = attendance_view.month_neighbours(*year_month)
    return render(
        request,
        viewer,
        "person_month.html",
        title=f"{name}: {first:%B %Y}",
        person_id=person_id,
        name=name,
        department=department,
        month_label=f"{first:%B %Y}",
        previous=before,
        following=after,
        weeks=attendance_view.month_grid(*year_month, rows),
        clock=attendance_view.clock,
        totals=Counter(r["status"] for r in rows),
        columns=attendance_view.STATUS_COLUMNS,
    )


def default_invite(zone: ZoneInfo) -> dict[str, Any]:
    """A visit starting this minute, two hours long: today's visit is the common case."""
    start = datetime.now(zone).replace(second=0, microsecond=0)
    return {
        "name": "",
        "phone": "",
        "company": "",
        "host": "",
        "credential": "qr",
        "more_doors": "",
        "doors": [],
        "start": start.strftime(LOCAL_INPUT),
        "end": (start + DEFAULT_VISIT).strftime(LOCAL_INPUT),
    }


def _visitors_page(
    request: Request,
    viewer: Viewer,
    svc: Services,
    status: int = 200,
    values: dict[str, Any] | None = None,
    error: str | None = None,
) -> Response:
    zone = site_zone(request)
    start, end = queries.day_bounds(zone)
    may_invite = viewer.can("invite_visitors")
    choices = queries.invite_choices(svc.engine) if may_invite else {"hosts": [], "doors": []}
    return render(
        request,
        viewer,
        "visitors.html",
        status=status,
        title="Visitors",
        **queries.visitors_today(svc.engine, start, end),
        may_invite=may_invite,
        choices=choices,
        values=values or default_invite(zone),
        error=error,
        printed_at=datetime.now(zone),
    )


@router.get("/dashboard/visitors")
def visitors_page(
    request: Request, viewer: Viewer = Depends(allowed("read_records")), svc: Services = Depends(services)
) -> Response:
    return _visitors_page(request, viewer, svc)


@router.post("/dashboard/visitors/invite")
def invite(
    request: Request, posted: Posted = Depends(posted_by("invite_visitors")), svc: Services = Depends(services)
) -> Response:
    viewer, form = posted.viewer, posted.form
    values: dict[str, Any] = {name: form.get(name).strip() for name in INVITE_FIELDS}
    values["doors"] = [d.strip() for d in form.getlist("doors") if d.strip()]
    try:  # the API's checks of an invitation, then the service: same audit, same doors
        answer = svc.visitors.invite(viewer.actor.name, **invitation(values, site_zone(request)))
    except InviteProblem as problem:
        return _visitors_page(request, viewer, svc, 422, values, str(problem))
    except VisitorError as refused:
        return _visitors_page(request, viewer, svc, refused.status, values, refused.message)
    credential = answer["credential"]
    viewer.flash(
        "ok", f"Invited {answer['name']}. Their {credential['kind']} credential, shown this once: {credential['value']}"
    )
    return RedirectResponse("/dashboard/visitors", status_code=303, headers=PAGE_HEADERS)
