"""Vehicles (today's track on a coordinate grid, trips) and the uplink (sinks, parked records, retry).

Both services are optional on the gateway object and duck-typed:

- `services.vehicles.overview() -> list[dict]` with "id", "plate", "device_id", "driver" and
  "last_fix": {"time_ms", "lat", "lon", "speed_kmh"} or None;
  `services.vehicles.track(vehicle_id, since_ms, until_ms) -> dict` with "points": [[time_ms, lat, lon], ...]
  and "trips": [{"id", "start_ms", "end_ms", "distance_km", "booking_id", "flags": [...]}, ...];
  KeyError for an unknown vehicle.
- `services.uplink.status() -> list[dict]` with "sink", "backlog", "delivered", "parked", "failed",
  "last_error", "rate"; `services.uplink.parked(limit) -> list[dict]` with "id", "sink", "record_type",
  "reason", "time_ms"; `services.uplink.retry(parked_id: int) -> bool`.

Where a service is missing (None), its pages say it is not configured yet.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from gateway.dashboard import queries, track
from gateway.dashboard.auth import Posted, Viewer, allowed, posted_by, services
from gateway.dashboard.web import PAGE_HEADERS, Refused, page_router, render, site_zone
from gateway.services import Services

router = page_router()
PARKED_SHOWN = 100


@router.get("/dashboard/vehicles")
def vehicles_page(
    request: Request, viewer: Viewer = Depends(allowed("read_vehicles")), svc: Services = Depends(services)
) -> Response:
    vehicles = getattr(svc, "vehicles", None)
    rows = vehicles.overview() if vehicles is not None else []
    return render(
        request,
        viewer,
        "vehicles.html",
        title="Vehicles",
        configured=vehicles is not None,
        vehicles=sorted(rows, key=lambda v: (str(v.get("plate") or ""), str(v.get("id")))),
    )


def _day(text: str | None, viewer: Viewer) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Refused(400, "day: give it as YYYY-MM-DD.", viewer) from None


@router.get("/dashboard/vehicles/{vehicle_id}")
def vehicle_page(
    request: Request,
    vehicle_id: Annotated[str, Path(max_length=64)],
    day: Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD; default today")] = None,
    viewer: Viewer = Depends(allowed("read_vehicles")),
    svc: Services = Depends(services),
) -> Response:
    vehicles = getattr(svc, "vehicles", None)
    if vehicles is None:
        return render(request, viewer, "vehicles.html", title="Vehicles", configured=False, vehicles=[])
    zone = site_zone(request)
    shown_day = _day(day, viewer) or datetime.now(zone).date()
    since, until = queries.day_bounds(zone, shown_day)
    try:
        answer = vehicles.track(vehicle_id, since, until)
    except KeyError:
        raise Refused(404, f"There is no vehicle {vehicle_id!r}.", viewer) from None
    vehicle = next((v for v in vehicles.overview() if str(v.get("id")) == vehicle_id), {"id": vehicle_id})
    points = answer.get("points") or []
    return render(
        request,
        viewer,
        "vehicle.html",
        title=f"Vehicle {vehicle.get('plate') or vehicle_id}",
        vehicle=vehicle,
        day=shown_day.isoformat(),
        drawing=track.draw(points),
        points=track.usable_points(points),
        trips=answer.get("trips") or [],
    )


@router.get("/dashboard/uplink")
def uplink_page(
    request: Request, viewer: Viewer = Depends(allowed("read_uplink")), svc: Services = Depends(services)
) -> Response:
    uplink = getattr(svc, "uplink", None)
    show_parked = uplink is not None and viewer.can("read_parked")  # parked records carry personal data
    return render(
        request,
        viewer,
        "uplink.html",
        title="Uplink",
        configured=uplink is not None,
        sinks=uplink.status() if uplink is not None else [],
        show_parked=show_parked,
        parked=uplink.parked(PARKED_SHOWN) if show_parked and uplink is not None else [],
        shown=PARKED_SHOWN,
    )


@router.post("/dashboard/uplink/parked/{parked_id}/retry")
def retry_parked(
    parked_id: Annotated[str, Path(max_length=18)],
    posted: Posted = Depends(posted_by("retry_uplink")),
    svc: Services = Depends(services),
) -> Response:
    uplink = getattr(svc, "uplink", None)
    if not parked_id.isascii() or not parked_id.isdigit():
        raise Refused(404, f"There is no parked record {parked_id!r}.", posted.viewer)
    if uplink is None:
        raise Refused(409, "The uplink is not configured yet.", posted.viewer)
    if uplink.retry(int(parked_id)):
        posted.viewer.flash("ok", f"Parked record {parked_id} is queued for delivery again.")
    else:
        posted.viewer.flash("error", f"Parked record {parked_id} was not retried (already retried or gone).")
    return RedirectResponse("/dashboard/uplink", status_code=303, headers=PAGE_HEADERS)
