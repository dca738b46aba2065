"""Vehicles: the fleet, their fixes, trips (JSON, GPX, GeoJSON), bookings and geofences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from gateway.api.deps import Actor, Page, allow, page, paginated, query_time, read_records, services
from gateway.core.timeutil import now_ms
from gateway.services import Services
from gateway.store import shapes
from gateway.vehicles import export
from gateway.vehicles.views import booking_view, geofence_event_view, geofence_view, stop_view, vehicle_view

router = APIRouter(prefix="/api/v1", tags=["vehicles"])
VehicleId = Annotated[str, Path(max_length=64)]
ID = r"^[A-Za-z0-9._-]{1,64}$"
changes_fleet = allow()  # admin
books = allow("operator")


class VehicleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=ID)
    plate: str = Field(min_length=1, max_length=32)
    device_id: str | None = Field(None, max_length=64, description="the GPS device in it (kind gps)")
    driver: str | None = Field(None, max_length=100, description="a person id or a name")
    name: str = Field("", max_length=200)


class VehiclePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plate: str | None = Field(None, min_length=1, max_length=32)
    device_id: str | None = Field(None, max_length=64)
    driver: str | None = Field(None, max_length=100)
    name: str | None = Field(None, max_length=200)


class BookingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person: str = Field(min_length=1, max_length=100, description="who booked the vehicle")
    start: AwareDatetime
    end: AwareDatetime
    purpose: str = Field("", max_length=500)

    @model_validator(mode="after")
    def _order(self) -> BookingIn:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if (self.end - self.start).total_seconds() > 31 * 86400:
            raise ValueError("a booking is at most 31 days long")
        return self


class Circle(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_m: float = Field(gt=0, le=100_000)


class GeofenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=ID)
    name: str = Field("", max_length=200)
    circle: Circle | None = None
    polygon: list[tuple[Annotated[float, Field(ge=-90, le=90)], Annotated[float, Field(ge=-180, le=180)]]] | None = (
        Field(None, min_length=3, max_length=500, description="[[lat, lon], ...], not closed")
    )

    @model_validator(mode="after")
    def _one_shape(self) -> GeofenceIn:
        if (self.circle is None) == (self.polygon is None):
            raise ValueError("give exactly one of circle or polygon")
        return self


Since = Annotated[str | None, Query(max_length=40)]
Until = Annotated[str | None, Query(max_length=40)]
STOPS_SPAN_MS = 31 * 86_400_000


@dataclass(frozen=True)
class VehicleSpan:
    """One vehicle's records from `since` to `until` (RFC 3339; either may be absent)."""

    vehicle_id: str
    start: int | None
    end: int | None


def vehicle_span(vehicle_id: VehicleId, since: Since = None, until: Until = None) -> VehicleSpan:
    return VehicleSpan(vehicle_id, query_time("since", since), query_time("until", until))


@router.post("/vehicles", status_code=201)
def create_vehicle(body: VehicleIn, actor: Actor = Depends(changes_fleet), svc: Services = Depends(services)) -> dict:
    return svc.fleet.create_vehicle(actor.name, body.model_dump())


@router.get("/vehicles", dependencies=[Depends(read_records)])
def list_vehicles(p: Page = Depends(page), svc: Services = Depends(services)) -> dict[str, Any]:
    return paginated(svc.fleet.list_vehicles(p.after, p.limit + 1), p.limit, vehicle_view)


@router.get("/vehicles/{vehicle_id}", dependencies=[Depends(read_records)])
def get_vehicle(vehicle_id: VehicleId, svc: Services = Depends(services)) -> dict[str, Any]:
    return vehicle_view(svc.fleet.vehicle(vehicle_id))


@router.patch("/vehicles/{vehicle_id}")
def patch_vehicle(
    vehicle_id: VehicleId, body: VehiclePatch, actor: Actor = Depends(changes_fleet), svc: Services = Depends(services)
) -> dict[str, Any]:
    return svc.fleet.update_vehicle(actor.name, vehicle_id, body.model_dump(exclude_unset=True))


@router.delete("/vehicles/{vehicle_id}", status_code=204)
def delete_vehicle(
    vehicle_id: VehicleId, actor: Actor = Depends(changes_fleet), svc: Services = Depends(services)
) -> Response:
    svc.fleet.delete_vehicle(actor.name, vehicle_id)
    return Response(status_code=204)


@router.get("/vehicles/{vehicle_id}/fixes", dependencies=[Depends(read_records)])
def vehicle_fixes(
    span: VehicleSpan = Depends(vehicle_span), p: Page = Depends(page), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Every fix the vehicle's device sent, oldest first, including those the trip filters set aside:
    `valid` and `flags` say why a fix is not used."""
    rows = svc.fleet.fixes(span.vehicle_id, span.start, span.end, p.after_id, p.limit + 1)
    return paginated(rows, p.limit, shapes.fix)


@router.get("/vehicles/{vehicle_id}/trips", dependencies=[Depends(read_records)])
def vehicle_trips(
    span: VehicleSpan = Depends(vehicle_span), p: Page = Depends(page), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Trips, oldest first; `flags` has `no_booking` for a trip no booking covers, `ongoing` while under way."""
    rows = svc.fleet.trips(span.vehicle_id, span.start, span.end, p.after_id, p.limit + 1)
    return paginated(rows, p.limit, shapes.trip)


@router.get("/vehicles/{vehicle_id}/stops", dependencies=[Depends(read_records)])
def vehicle_stops(
    vehicle_id: VehicleId,
    svc: Services = Depends(services),
    since: Annotated[str | None, Query(max_length=40, description="default: 7 days before until")] = None,
    until: Annotated[str | None, Query(max_length=40, description="default: now")] = None,
) -> dict[str, Any]:
    """Where the vehicle stood still, and how long, cut from its fixes by the same rules as trips
    (at most 31 days per call)."""
    end = query_time("until", until) or now_ms()
    start = query_time("since", since) or end - 7 * 86_400_000
    if not 0 <= end - start <= STOPS_SPAN_MS:
        raise HTTPException(422, "since/until: at most 31 days, since before until")
    stops = svc.fleet.stops(vehicle_id, start, end)
    return {"items": [stop_view(s) for s in stops], "next": None}


@router.get(
    "/vehicles/{vehicle_id}/trips.gpx",
    dependencies=[Depends(read_records)],
    responses={200: {"content": {"application/gpx+xml": {}}}},
)
def vehicle_trips_gpx(span: VehicleSpan = Depends(vehicle_span), svc: Services = Depends(services)) -> Response:
    trips, points = svc.fleet.tracks(span.vehicle_id, span.start, span.end)
    return Response(export.trips_to_gpx(trips, points, name=span.vehicle_id), media_type="application/gpx+xml")


@router.get(
    "/vehicles/{vehicle_id}/trips.geojson",
    dependencies=[Depends(read_records)],
    responses={200: {"content": {"application/geo+json": {}}}},
)
def vehicle_trips_geojson(span: VehicleSpan = Depends(vehicle_span), svc: Services = Depends(services)) -> Response:
    trips, points = svc.fleet.tracks(span.vehicle_id, span.start, span.end)
    return Response(export.trips_to_geojson(trips, points), media_type="application/geo+json")


@router.post("/vehicles/{vehicle_id}/bookings", status_code=201)
def create_booking(
    vehicle_id: VehicleId, body: BookingIn, actor: Actor = Depends(books), svc: Services = Depends(services)
) -> dict[str, Any]:
    start, end = int(body.start.timestamp() * 1000), int(body.end.timestamp() * 1000)
    return svc.fleet.create_booking(actor.name, vehicle_id, body.person, start, end, body.purpose)


@router.get("/vehicles/{vehicle_id}/bookings", dependencies=[Depends(read_records)])
def list_bookings(
    span: VehicleSpan = Depends(vehicle_span), p: Page = Depends(page), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Bookings with `status`: `used` (a trip overlaps it), `no_trip` (ended without one) or `pending`."""
    rows = svc.fleet.bookings(span.vehicle_id, span.start, span.end, p.after_id, p.limit + 1)
    return paginated(rows, p.limit, lambda row: booking_view(*row), key=lambda row: row[0].id)


@router.post("/geofences", status_code=201)
def create_geofence(body: GeofenceIn, actor: Actor = Depends(changes_fleet), svc: Services = Depends(services)) -> dict:
    geometry = (
        {"circle": body.circle.model_dump()} if body.circle else {"polygon": [list(p) for p in body.polygon or []]}
    )
    svc.fleet.create_geofence(actor.name, body.id, body.name, geometry)
    return {"id": body.id, "name": body.name, **geometry}


@router.get("/geofences", dependencies=[Depends(read_records)])
def list_geofences(p: Page = Depends(page), svc: Services = Depends(services)) -> dict[str, Any]:
    return paginated(svc.fleet.list_geofences(p.after, p.limit + 1), p.limit, geofence_view)


@router.get("/vehicles/{vehicle_id}/geofence-events", dependencies=[Depends(read_records)])
def geofence_events(
    span: VehicleSpan = Depends(vehicle_span), p: Page = Depends(page), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Car-park in and out: a fence entered or left once the vehicle stayed on the new side for the dwell time."""
    rows = svc.fleet.geofence_events(span.vehicle_id, span.start, span.end, p.after_id, p.limit + 1)
    return paginated(rows, p.limit, geofence_event_view)
