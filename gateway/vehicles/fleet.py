"""The fleet as it is provisioned and read: vehicles, bookings, geofences, and the stored fixes and trips.

Every change is one transaction with its audit entry; after it, the registry
learns which device is in which vehicle and the trips it touches are marked for
recomputation (`Vehicles.mark`). Reads answer stored rows; the API shapes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine, Select, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from gateway.auth import audit
from gateway.core import errors as core_errors
from gateway.core.errors import Refused
from gateway.core.timeutil import now_ms
from gateway.store.models import Booking, Device, FixRecord, Geofence, GeofenceEventRow, TripRow, Vehicle
from gateway.vehicles.bookings import Booking as BookingSpan
from gateway.vehicles.bookings import match_bookings
from gateway.vehicles.fixes import Point
from gateway.vehicles.service import Vehicles, fence_of
from gateway.vehicles.trips import Stop, Trip, trips_from_fixes
from gateway.vehicles.views import booking_view, vehicle_view

GEOFENCE_REDO_MS = 7 * 86_400_000  # a new geofence redoes this much of every vehicle's history
EXPORT_TRIPS = 1000  # the most trips one GPX or GeoJSON export holds

Row = TypeVar("Row")
Query = TypeVar("Query", bound=Select[Any])


class FleetError(Refused):
    """A fleet request turned down (the API answers it like any service refusal)."""


class NotFound(FleetError, core_errors.NotFound):
    pass


class Conflict(FleetError, core_errors.Conflict):
    pass


def _within(query: Query, column: Any, since: int | None, until: int | None) -> Query:
    """`query` limited to since <= column < until (either may be None)."""
    if since is not None:
        query = query.where(column >= since)
    if until is not None:
        query = query.where(column < until)
    return query


class Fleet:
    def __init__(self, engine: Engine, vehicles: Vehicles, link_vehicle: Callable[[str, str | None], None]) -> None:
        self.engine = engine
        self.vehicles = vehicles  # recomputes trips; marked after a change that moves them
        self.link_vehicle = link_vehicle  # tells the device registry which vehicle a device is in

    # -- vehicles ------------------------------------------------------------------

    def create_vehicle(self, actor: str, fields: dict[str, Any]) -> dict[str, Any]:
        with Session(self.engine) as session:
            if session.get(Vehicle, fields["id"]) is not None:
                raise Conflict(f"vehicle {fields['id']!r} already exists")
            _check_device(session, fields.get("device_id"), fields["id"])
            now = now_ms()
            vehicle = Vehicle(**fields, created_at=now, updated_at=now)
            session.add(vehicle)
            audit.record(session, actor, "create", "vehicle", vehicle.id, None, vehicle_view(vehicle))
            try:
                session.commit()
            except IntegrityError:
                raise Conflict("the vehicle or its device is taken") from None
            session.refresh(vehicle)
            self._linked(session, vehicle)
            return vehicle_view(vehicle)

    def update_vehicle(self, actor: str, vehicle_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        for name in ("plate", "name"):
            if name in changes and changes[name] is None:
                raise FleetError(f"{name}: may not be null")
        with Session(self.engine) as session:
            vehicle = _vehicle(session, vehicle_id)
            if "device_id" in changes:
                _check_device(session, changes["device_id"], vehicle_id)
            before = vehicle_view(vehicle)
            for name, value in changes.items():
                setattr(vehicle, name, value)
            vehicle.updated_at = now_ms()
            audit.record(session, actor, "update", "vehicle", vehicle_id, before, vehicle_view(vehicle))
            session.add(vehicle)
            session.commit()
            session.refresh(vehicle)
            self._linked(session, vehicle)
            return vehicle_view(vehicle)

    def delete_vehicle(self, actor: str, vehicle_id: str) -> None:
        with Session(self.engine) as session:
            vehicle = _vehicle(session, vehicle_id)
            audit.record(session, actor, "delete", "vehicle", vehicle_id, vehicle_view(vehicle), None)
            session.delete(vehicle)
            session.commit()
        self.link_vehicle(vehicle_id, None)

    def _linked(self, session: Session, vehicle: Vehicle) -> None:
        """After the commit: the device's fixes carry the vehicle, earlier unlinked ones too, and trips are redone."""
        self.link_vehicle(vehicle.id, vehicle.device_id)
        if vehicle.device_id is not None:
            f = FixRecord.__table__.c
            session.execute(
                FixRecord.__table__.update()
                .where(f.device_id == vehicle.device_id, f.vehicle_id.is_(None))
                .values(vehicle_id=vehicle.id)
            )
            session.commit()
            self.vehicles.mark(vehicle.id, 0)

    def vehicle(self, vehicle_id: str) -> Vehicle:
        with Session(self.engine) as session:
            return _vehicle(session, vehicle_id)

    def list_vehicles(self, after: str | None, limit: int) -> list[Vehicle]:
        """Up to `limit` vehicles by id, after the id `after`."""
        query = select(Vehicle).order_by(Vehicle.id).limit(limit)
        if after is not None:
            query = query.where(col(Vehicle.id) > after)
        return self._rows(query)

    # -- what its device sent, and what was made of it ------------------------------------

    def fixes(
        self, vehicle_id: str, since: int | None, until: int | None, after_id: int, limit: int
    ) -> list[FixRecord]:
        fix_id = col(FixRecord.id)
        query = _within(select(FixRecord).where(col(FixRecord.vehicle_id) == vehicle_id), FixRecord.time, since, until)
        return self._rows(query.where(fix_id > after_id).order_by(fix_id).limit(limit), vehicle_id)

    def trips(self, vehicle_id: str, since: int | None, until: int | None, after_id: int, limit: int) -> list[TripRow]:
        trip_id = col(TripRow.id)
        query = _within(select(TripRow).where(col(TripRow.vehicle_id) == vehicle_id), TripRow.start_time, since, until)
        return self._rows(query.where(trip_id > after_id).order_by(trip_id).limit(limit), vehicle_id)

    def geofence_events(
        self, vehicle_id: str, since: int | None, until: int | None, after_id: int, limit: int
    ) -> list[GeofenceEventRow]:
        row, row_id = GeofenceEventRow, col(GeofenceEventRow.id)
        query = _within(select(row).where(col(row.vehicle_id) == vehicle_id), row.time, since, until)
        return self._rows(query.where(row_id > after_id).order_by(row_id).limit(limit), vehicle_id)

    def stops(self, vehicle_id: str, start: int, end: int) -> list[Stop]:
        """Where the vehicle stood still in [start, end), cut from its fixes by the same rules as trips."""
        with Session(self.engine) as session:
            _vehicle(session, vehicle_id)
            f = FixRecord.__table__.c
            rows = session.execute(
                select(f.id, f.time, f.lat, f.lon, f.speed_kmh, f.odometer_km, f.valid)
                .where(f.vehicle_id == vehicle_id, f.time >= start, f.time < end)
                .order_by(f.time, f.id)
            ).all()
        points = [Point(r.time, r.lat, r.lon, r.speed_kmh, r.odometer_km, r.valid, (), r.id) for r in rows]
        return trips_from_fixes(points, self.vehicles.settings, now_ms()).stops

    def tracks(self, vehicle_id: str, since: int | None, until: int | None) -> tuple[list[Trip], list[Point]]:
        """Stored trips with their fixes, in the shape the GPX and GeoJSON exporters take."""
        trips: list[Trip] = []
        points: list[Point] = []
        with Session(self.engine) as session:
            _vehicle(session, vehicle_id)
            t = TripRow
            query = _within(select(t).where(col(t.vehicle_id) == vehicle_id), t.start_time, since, until)
            for row in session.execute(query.order_by(col(t.start_time)).limit(EXPORT_TRIPS)).scalars():
                fix_time = col(FixRecord.time)
                fixes = session.execute(
                    select(fix_time, col(FixRecord.lat), col(FixRecord.lon))
                    .where(
                        col(FixRecord.vehicle_id) == vehicle_id,
                        fix_time >= row.start_time,
                        fix_time <= row.end_time,
                        col(FixRecord.valid).is_(True),
                    )
                    .order_by(fix_time)
                ).all()
                first = len(points)
                points += [Point(f.time, f.lat, f.lon) for f in fixes]
                trips.append(_stored_trip(row, first, max(first, len(points) - 1)))
        return trips, points

    # -- bookings ----------------------------------------------------------------------

    def create_booking(
        self, actor: str, vehicle_id: str, person: str, start: int, end: int, purpose: str
    ) -> dict[str, Any]:
        with Session(self.engine) as session:
            _vehicle(session, vehicle_id)
            booking = Booking(
                vehicle_id=vehicle_id,
                person=person,
                start_time=start,
                end_time=end,
                purpose=purpose,
                created_at=now_ms(),
                created_by=actor[:100],
            )
            session.add(booking)
            session.flush()
            audit.record(session, actor, "create", "booking", str(booking.id), None, booking_view(booking))
            session.commit()
            session.refresh(booking)
            answer = booking_view(booking, "pending")
        self.vehicles.mark(vehicle_id, start)  # the trips it covers lose their no_booking flag
        return answer

    def bookings(
        self, vehicle_id: str, since: int | None, until: int | None, after_id: int, limit: int
    ) -> list[tuple[Booking, str | None]]:
        """Bookings with their status: `used` (a trip overlaps it), `no_trip` (ended without one) or `pending`."""
        with Session(self.engine) as session:
            _vehicle(session, vehicle_id)
            booking_id = col(Booking.id)
            query = _within(
                select(Booking).where(col(Booking.vehicle_id) == vehicle_id), Booking.start_time, since, until
            )
            rows = list(session.execute(query.where(booking_id > after_id).order_by(booking_id).limit(limit)).scalars())
            if not rows:
                return []
            start, end = min(b.start_time for b in rows), max(b.end_time for b in rows)
            trips = (
                session.execute(
                    select(TripRow).where(
                        col(TripRow.vehicle_id) == vehicle_id,
                        col(TripRow.end_time) >= start,
                        col(TripRow.start_time) <= end,
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
        return [(b, status.get(str(b.id))) for b in rows]

    # -- geofences ---------------------------------------------------------------------

    def create_geofence(self, actor: str, fence_id: str, name: str, geometry: dict[str, Any]) -> None:
        """A circle or polygon fence; every vehicle's recent history is redone against it."""
        row = Geofence(id=fence_id, name=name, shape=geometry, dwell_s=int(self.vehicles.dwell_s))
        try:
            fence_of(row)
        except ValueError as exc:
            raise FleetError(str(exc)) from None
        with Session(self.engine) as session:
            if session.get(Geofence, fence_id) is not None:
                raise Conflict(f"geofence {fence_id!r} already exists")
            session.add(row)
            audit.record(session, actor, "create", "geofence", fence_id, None, {"name": name, **geometry})
            session.commit()
            vehicles = list(session.execute(select(col(Vehicle.id))).scalars())
        for vehicle_id in vehicles:
            self.vehicles.mark(vehicle_id, now_ms() - GEOFENCE_REDO_MS)

    def list_geofences(self, after: str | None, limit: int) -> list[Geofence]:
        query = select(Geofence).order_by(Geofence.id).limit(limit)
        if after is not None:
            query = query.where(col(Geofence.id) > after)
        return self._rows(query)

    def _rows(self, query: Select[Row], vehicle_id: str | None = None) -> list[Row]:
        """The rows a query selects (of the vehicle, which must exist, when given)."""
        with Session(self.engine) as session:
            if vehicle_id is not None:
                _vehicle(session, vehicle_id)
            return list(session.execute(query).scalars())


def _vehicle(session: Session, vehicle_id: str) -> Vehicle:
    vehicle = session.get(Vehicle, vehicle_id)
    if vehicle is None:
        raise NotFound(f"no vehicle {vehicle_id!r}")
    return vehicle


def _check_device(session: Session, device_id: str | None, vehicle_id: str) -> None:
    if device_id is None:
        return
    device = session.get(Device, device_id)
    if device is None:
        raise FleetError(f"device_id: no device {device_id!r}")
    if device.kind != "gps":
        raise FleetError(f"device_id: {device_id!r} is a {device.kind} device, not gps")
    other = session.execute(
        select(col(Vehicle.id)).where(col(Vehicle.device_id) == device_id, col(Vehicle.id) != vehicle_id)
    ).first()
    if other is not None:
        raise Conflict(f"device {device_id!r} is already in vehicle {other[0]!r}")


def _stored_trip(row: TripRow, first: int, last: int) -> Trip:
    return Trip(
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
        last,
        complete="ongoing" not in row.flags,
        booking_id=str(row.booking_id) if row.booking_id else None,
        flags=tuple(row.flags),
    )
