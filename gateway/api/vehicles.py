"""Vehicles: the fleet, their fixes, trips (JSON, GPX, GeoJSON), bookings and geofences."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from gateway.api.deps import (
    Actor,
    Page,
    allow,
    engine,
    page,
    paginated,
    query_time,
    read_records,
    services,
    within,
)
from gateway.auth import audit
from gateway.core.timeutil import iso_local, iso_utc, now_ms
from gateway.services import Services
from gateway.store.models import Booking, Device, FixRecord, Geofence, TripRow, Vehicle
from gateway.vehicles import export
from gateway.vehicles.bookings import Booking as BookingSpan
from gateway.vehicles.bookings import match_bookings
from gateway.vehicles.service import fence_of, trip_view
from gateway.vehicles.trips import Point, Trip, trips_from_fixes

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


def shape(v: Vehicle) -> dict[str, Any]:
    return {
        "id": v.id,
        "plate": v.plate,
        "device_id": v.device_id,
        "driver": v.driver,
        "name": v.name,
        "created_at": iso_utc(v.created_at),
        "updated_at": iso_utc(v.updated_at),
    }


def fix_view(f: FixRecord) -> dict[str, Any]:
    return {
        "id": str(f.id),
        "device_id": f.device_id,
        "vehicle_id": f.vehicle_id,
        "time": iso_utc(f.time),
        "local_time": iso_local(f.time, f.utc_offset_min),
        "lat": f.lat,
        "lon": f.lon,
        "speed_kmh": f.speed_kmh,
        "heading": f.heading,
        "alt": f.alt,
        "sats": f.sats,
        "hdop": f.hdop,
        "ignition": f.ignition,
        "valid": f.valid,
        "flags": list(f.flags),
        "odometer_km": f.odometer_km,
        "source": f.source,
    }


def booking_view(b: Booking, status: str | None = None) -> dict[str, Any]:
    return {
        "id": str(b.id),
        "vehicle_id": b.vehicle_id,
        "person": b.person,
        "start": iso_utc(b.start_time),
        "end": iso_utc(b.end_time),
        "purpose": b.purpose,
        "status": status,
    }


def _vehicle(session: Session, vehicle_id: str) -> Vehicle:
    vehicle = session.get(Vehicle, vehicle_id)
    if vehicle is None:
        raise HTTPException(404, f"no vehicle {vehicle_id!r}")
    return vehicle


def _check_device(session: Session, device_id: str | None, vehicle_id: str) -> None:
    if device_id is None:
        return
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(422, f"device_id: no device {device_id!r}")
    if device.kind != "gps":
        raise HTTPException(422, f"device_id: {device_id!r} is a {device.kind} device, not gps")
    other = session.execute(select(Vehicle.id).where(Vehicle.device_id == device_id, Vehicle.id != vehicle_id)).first()
    if other is not None:
        raise HTTPException(409, f"device {device_id!r} is already in vehicle {other[0]!r}")


def _linked(svc: Services, session: Session, vehicle: Vehicle) -> None:
    """After the commit: the device's fixes carry the vehicle, earlier unlinked ones too, and trips are redone."""
    svc.registry.link_vehicle(vehicle.id, vehicle.device_id)
    if vehicle.device_id is not None:
        f = FixRecord.__table__.c
        session.execute(
            FixRecord.__table__.update()
            .where(f.device_id == vehicle.device_id, f.vehicle_id.is_(None))
            .values(vehicle_id=vehicle.id)
        )
        session.commit()
        svc.vehicles.mark(vehicle.id, 0)


@router.post("/vehicles", status_code=201)
def create_vehicle(body: VehicleIn, actor: Actor = Depends(changes_fleet), svc: Services = Depends(services)) -> dict:
    with Session(svc.engine) as session:
        if session.get(Vehicle, body.id) is not None:
            raise HTTPException(409, f"vehicle {body.id!r} already exists")
        _check_device(session, body.device_id, body.id)
        now = now_ms()
        vehicle = Vehicle(**body.model_dump(), created_at=now, updated_at=now)
        session.add(vehicle)
        audit.record(session, actor.name, "create", "vehicle", vehicle.id, None, shape(vehicle))
        try:
            session.commit()
        except IntegrityError:
            raise HTTPException(409, "the vehicle or its device is taken") from None
        session.refresh(vehicle)
        _linked(svc, session, vehicle)
        return shape(vehicle)


@router.get("/vehicles", dependencies=[Depends(read_records)])
def list_vehicles(p: Page = Depends(page), eng: Any = Depends(engine)) -> dict[str, Any]:
    with Session(eng) as session:
        query = select(Vehicle).order_by(Vehicle.id).limit(p.limit + 1)
        if p.after is not None:
            query = query.where(Vehicle.id > p.after)
        return paginated(list(session.execute(query).scalars()), p.limit, shape)


@router.get("/vehicles/{vehicle_id}", dependencies=[Depends(read_records)])
def get_vehicle(vehicle_id: VehicleId, eng: Any = Depends(engine)) -> dict[str, Any]:
    with Session(eng) as session:
        return shape(_vehicle(session, vehicle_id))


@router.patch("/vehicles/{vehicle_id}")
def patch_vehicle(
    vehicle_id: VehicleId, body: VehiclePatch, actor: Actor = Depends(changes_fleet), svc: Services = Depends(services)
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    for name in ("plate", "name"):
        if name in changes and changes[name] is None:
            raise HTTPException(422, f"{name}: may not be null")
    with Session(svc.engine) as session:
        vehicle = _vehicle(session, vehicle_id)
        if "device_id" in changes:
            _check_device(session, changes["device_id"], vehicle_id)
        before = shape(vehicle)
        for name, value in changes.items():
            setattr(vehicle, name, value)
        vehicle.updated_at = now_ms()
        audit.record(session, actor.name, "update", "vehicle", vehicle_id, before, shape(vehicle))
        session.add(vehicle)
        session.commit()
        session.refresh(vehicle)
        _linked(svc, session, vehicle)
        return shape(vehicle)


@router.delete("/vehicles/{vehicle_id}", status_code=204)
def delete_vehicle(
    vehicle_id: VehicleId, actor: Actor = Depends(changes_fleet), svc: Services = Depends(services)
) -> Response:
    with Session(svc.engine) as session:
        vehicle = _vehicle(session, vehicle_id)
        audit.record(session, actor.name, "delete", "vehicle", vehicle_id, shape(vehicle), None)
        session.delete(vehicle)
        session.commit()
    svc.registry.link_vehicle(vehicle_id, None)
    return Response(status_code=204)


@router.get("/vehicles/{vehicle_id}/fixes", dependencies=[Depends(read_records)])
def vehicle_fixes(
    vehicle_id: VehicleId,
    p: Page = Depends(page),
    eng: Any = Depends(engine),
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    """Every fix the vehicle's device sent, oldest first, including those the trip filters set aside:
    `valid` and `flags` say why a fix is not used."""
    with Session(eng) as session:
        _vehicle(session, vehicle_id)
        query = within(select(FixRecord).where(FixRecord.vehicle_id == vehicle_id), FixRecord.time, since, until)
        query = query.where(FixRecord.id > p.after_id).order_by(FixRecord.id).limit(p.limit + 1)
        return paginated(list(session.execute(query).scalars()), p.limit, fix_view)


def _trips(session: Session, vehicle_id: str, since: str | None, until: str | None, limit: int) -> list[TripRow]:
    _vehicle(session, vehicle_id)
    query = within(select(TripRow).where(TripRow.vehicle_id == vehicle_id), TripRow.start_time, since, until)
    return list(session.execute(query.order_by(TripRow.start_time).limit(limit)).scalars())


@router.get("/vehicles/{vehicle_id}/trips", dependencies=[Depends(read_records)])
def vehicle_trips(
    vehicle_id: VehicleId,
    p: Page = Depends(page),
    eng: Any = Depends(engine),
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    """Trips, oldest first; `flags` has `no_booking` for a trip no booking covers, `ongoing` while under way."""
    with Session(eng) as session:
        _vehicle(session, vehicle_id)
        query = within(select(TripRow).where(TripRow.vehicle_id == vehicle_id), TripRow.start_time, since, until)
        query = query.where(TripRow.id > p.after_id).order_by(TripRow.id).limit(p.limit + 1)
        return paginated(list(session.execute(query).scalars()), p.limit, trip_view)


STOPS_SPAN_MS = 31 * 86_400_000


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
    with Session(svc.engine) as session:
        _vehicle(session, vehicle_id)
        f = FixRecord.__table__.c
        rows = session.execute(
            select(f.id, f.time, f.lat, f.lon, f.speed_kmh, f.odometer_km, f.valid)
            .where(f.vehicle_id == vehicle_id, f.time >= start, f.time < end)
            .order_by(f.time, f.id)
        ).all()
    points = [Point(r.time, r.lat, r.lon, r.speed_kmh, r.odometer_km, r.valid, (), r.id) for r in rows]
    stops = trips_from_fixes(points, svc.vehicles.settings, now_ms()).stops
    return {
        "items": [
            {
                "start": iso_utc(s.start_ms),
                "end": iso_utc(s.end_ms),
                "lat": s.lat,
                "lon": s.lon,
                "duration_s": round(s.duration_s),
                "complete": s.complete,
            }
            for s in stops
        ],
        "next": None,
    }


def _tracks(session: Session, vehicle_id: str, since: str | None, until: str | None) -> tuple[list[Trip], list[Point]]:
    """Stored trips with their fixes, in the shape the exporters take."""
    trips, points = [], []
    for row in _trips(session, vehicle_id, since, until, 1000):
        fixes = session.execute(
            select(FixRecord.time, FixRecord.lat, FixRecord.lon)
            .where(
                FixRecord.vehicle_id == vehicle_id,
                FixRecord.time >= row.start_time,
                FixRecord.time <= row.end_time,
                FixRecord.valid.is_(True),
            )
            .order_by(FixRecord.time)
        ).all()
        first = len(points)
        points += [Point(f.time, f.lat, f.lon) for f in fixes]
        trips.append(
            Trip(
                row.start_time,
                row.end_time,
                row.start_lat,
                row.start_lon,
                row.end_lat,
                row.end_lon,
                row.distance_km,
                row.distance_source,
                row.max_speed_kmh or 0.0,
                row.avg_speed_kmh or 0.0,
                row.point_count,
                first,
                max(first, len(points) - 1),
                complete="ongoing" not in row.flags,
                booking_id=str(row.booking_id) if row.booking_id else None,
                flags=tuple(row.flags),
            )
        )
    return trips, points


@router.get(
    "/vehicles/{vehicle_id}/trips.gpx",
    dependencies=[Depends(read_records)],
    responses={200: {"content": {"application/gpx+xml": {}}}},
)
def vehicle_trips_gpx(
    vehicle_id: VehicleId,
    eng: Any = Depends(engine),
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    with Session(eng) as session:
        trips, points = _tracks(session, vehicle_id, since, until)
    return Response(export.trips_to_gpx(trips, points, name=vehicle_id), media_type="application/gpx+xml")


@router.get(
    "/vehicles/{vehicle_id}/trips.geojson",
    dependencies=[Depends(read_records)],
    responses={200: {"content": {"application/geo+json": {}}}},
)
def vehicle_trips_geojson(
    vehicle_id: VehicleId,
    eng: Any = Depends(engine),
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    with Session(eng) as session:
        trips, points = _tracks(session, vehicle_id, since, until)
    return Response(export.trips_to_geojson(trips, points), media_type="application/geo+json")


@router.post("/vehicles/{vehicle_id}/bookings", status_code=201)
def create_booking(
    vehicle_id: VehicleId, body: BookingIn, actor: Actor = Depends(books), svc: Services = Depends(services)
) -> dict[str, Any]:
    with Session(svc.engine) as session:
        _vehicle(session, vehicle_id)
        booking = Booking(
            vehicle_id=vehicle_id,
            person=body.person,
            start_time=int(body.start.timestamp() * 1000),
            end_time=int(body.end.timestamp() * 1000),
            purpose=body.purpose,
            created_at=now_ms(),
            created_by=actor.name[:100],
        )
        session.add(booking)
        session.flush()
        audit.record(session, actor.name, "create", "booking", str(booking.id), None, booking_view(booking))
        session.commit()
        session.refresh(booking)
    svc.vehicles.mark(vehicle_id, booking.start_time)  # the trips it covers lose their no_booking flag
    return booking_view(booking, "pending")


@router.get("/vehicles/{vehicle_id}/bookings", dependencies=[Depends(read_records)])
def list_bookings(
    vehicle_id: VehicleId,
    p: Page = Depends(page),
    eng: Any = Depends(engine),
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    """Bookings with `status`: `used` (a trip overlaps it), `no_trip` (ended without one) or `pending`."""
    with Session(eng) as session:
        _vehicle(session, vehicle_id)
        query = within(select(Booking).where(Booking.vehicle_id == vehicle_id), Booking.start_time, since, until)
        rows = list(
            session.execute(query.where(Booking.id > p.after_id).order_by(Booking.id).limit(p.limit + 1)).scalars()
        )
        if not rows:
            return {"items": [], "next": None}
        start, end = min(b.start_time for b in rows), max(b.end_time for b in rows)
        trips = (
            session.execute(
                select(TripRow).where(
                    TripRow.vehicle_id == vehicle_id, TripRow.end_time >= start, TripRow.start_time <= end
                )
            )
            .scalars()
            .all()
        )
        spans = [Trip(t.start_time, t.end_time, 0, 0, 0, 0, 0, "gps", 0, 0, 0, 0, 0) for t in trips]
        _, checks = match_bookings(
            spans, [BookingSpan(str(b.id), vehicle_id, b.person, b.start_time, b.end_time) for b in rows], now_ms()
        )
        status = {c.booking_id: c.status for c in checks}
        return paginated(rows, p.limit, lambda b: booking_view(b, status.get(str(b.id))))


@router.post("/geofences", status_code=201)
def create_geofence(body: GeofenceIn, actor: Actor = Depends(changes_fleet), svc: Services = Depends(services)) -> dict:
    geometry = (
        {"circle": body.circle.model_dump()} if body.circle else {"polygon": [list(p) for p in body.polygon or []]}
    )
    row = Geofence(id=body.id, name=body.name, shape=geometry, dwell_s=int(svc.settings.vehicles.geofence_dwell_s))
    try:
        fence_of(row)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    with Session(svc.engine) as session:
        if session.get(Geofence, body.id) is not None:
            raise HTTPException(409, f"geofence {body.id!r} already exists")
        session.add(row)
        audit.record(session, actor.name, "create", "geofence", row.id, None, {"name": row.name, **geometry})
        session.commit()
        vehicles = list(session.execute(select(Vehicle.id)).scalars())
    for vehicle_id in vehicles:
        svc.vehicles.mark(vehicle_id, now_ms() - 7 * 86400_000)
    return {"id": body.id, "name": body.name, **geometry}


@router.get("/geofences", dependencies=[Depends(read_records)])
def list_geofences(p: Page = Depends(page), eng: Any = Depends(engine)) -> dict[str, Any]:
    with Session(eng) as session:
        query = select(Geofence).order_by(Geofence.id).limit(p.limit + 1)
        if p.after is not None:
            query = query.where(Geofence.id > p.after)
        rows = list(session.execute(query).scalars())
        return paginated(rows, p.limit, lambda g: {"id": g.id, "name": g.name, **g.shape})


@router.get("/vehicles/{vehicle_id}/geofence-events", dependencies=[Depends(read_records)])
def geofence_events(
    vehicle_id: VehicleId,
    p: Page = Depends(page),
    eng: Any = Depends(engine),
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    """Car-park in and out: a fence entered or left once the vehicle stayed on the new side for the dwell time."""
    from gateway.store.models import GeofenceEventRow as Row

    with Session(eng) as session:
        _vehicle(session, vehicle_id)
        query = within(select(Row).where(Row.vehicle_id == vehicle_id), Row.time, since, until)
        rows = list(session.execute(query.where(Row.id > p.after_id).order_by(Row.id).limit(p.limit + 1)).scalars())
        return paginated(
            rows,
            p.limit,
            lambda e: {
                "id": str(e.id),
                "vehicle_id": e.vehicle_id,
                "fence_id": e.fence_id,
                "kind": e.kind,
                "time": iso_utc(e.time),
                "lat": e.lat,
                "lon": e.lon,
            },
        )
