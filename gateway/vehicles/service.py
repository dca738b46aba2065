"""Vehicles in the store: trips, stops, geofence events and booking flags recomputed from their fixes.

The store writer tells `on_commit` which vehicles got fixes and from when; a
housekeeping job (`recompute_dirty`) then recomputes each of them from a little
before the earliest new fix, so a batch uploaded after a tunnel lands in the
right place and the trips around it are redone. Finished trips go to the outbox.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, Engine, Row, and_, bindparam, delete, func, insert, select, update

from gateway.core import timeutil
from gateway.pipeline.batch import Batch
from gateway.store import shapes
from gateway.store.models import Booking as BookingRow
from gateway.store.models import FixRecord, Geofence, GeofenceEventRow, TripRow, Vehicle
from gateway.uplink.outbox import Outbox
from gateway.vehicles.bookings import Booking, match_bookings
from gateway.vehicles.fixes import Point, TripSettings, filter_points
from gateway.vehicles.geofence import CircleFence, PolygonFence, geofence_events
from gateway.vehicles.trips import Trip, detect

log = logging.getLogger(__name__)

LOOKBACK_MS = 7 * 24 * 3600 * 1000  # a late fix redoes at most this much history
LEAD_MS = 15 * 60 * 1000  # fixes loaded before the anchor, so the vehicle's state there is known


class FenceRow(Protocol):
    """A stored geofence: the table row, or a Core row selected from its table."""

    @property
    def id(self) -> str: ...

    @property
    def shape(self) -> dict[str, Any]: ...


def fence_of(row: FenceRow) -> CircleFence | PolygonFence:
    shape = row.shape
    if "circle" in shape:
        c = shape["circle"]
        return CircleFence(row.id, float(c["lat"]), float(c["lon"]), float(c["radius_m"]))
    return PolygonFence(row.id, tuple((float(lat), float(lon)) for lat, lon in shape["polygon"]))


class Vehicles:
    def __init__(
        self, engine: Engine, settings: TripSettings, outbox: Outbox | None = None, dwell_s: float = 60.0
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.outbox = outbox
        self.dwell_s = dwell_s
        self._dirty: dict[str, int] = {}  # vehicle -> earliest new fix time
        self._lock = threading.Lock()

    # -- after each store batch ------------------------------------------------

    def on_commit(self, batch: Batch) -> None:
        if not batch.fixes:
            return
        with self._lock:
            for fix in batch.fixes:
                if fix.vehicle_id is not None:
                    earliest = self._dirty.get(fix.vehicle_id)
                    if earliest is None or fix.time < earliest:
                        self._dirty[fix.vehicle_id] = fix.time

    def mark(self, vehicle_id: str, since_ms: int = 0) -> None:
        with self._lock:
            self._dirty[vehicle_id] = min(since_ms, self._dirty.get(vehicle_id, since_ms))

    def recompute_dirty(self) -> int:
        with self._lock:
            dirty, self._dirty = self._dirty, {}
        for vehicle_id, since in dirty.items():
            try:
                self.recompute(vehicle_id, since)
            except Exception:
                log.exception("recomputing trips of %s failed; will retry", vehicle_id)
                self.mark(vehicle_id, since)
        return len(dirty)

    # -- recomputation -----------------------------------------------------------

    def recompute(self, vehicle_id: str, changed_from: int, now_ms: int | None = None) -> list[Trip]:
        now = timeutil.now_ms() if now_ms is None else now_ms
        t = TripRow.__table__.c
        with self.engine.begin() as conn:
            # From the start of the trip that may include the change (the trips before it stand).
            anchor = conn.execute(
                select(func.max(t.start_time)).where(t.vehicle_id == vehicle_id, t.start_time <= changed_from)
            ).scalar()
            anchor = max(anchor if anchor is not None else 0, changed_from - LOOKBACK_MS)
            f = FixRecord.__table__.c
            fixes = conn.execute(
                select(f.id, f.time, f.lat, f.lon, f.speed_kmh, f.odometer_km, f.valid, f.flags)
                .where(f.vehicle_id == vehicle_id, f.time >= anchor - LEAD_MS)
                .order_by(f.time, f.id)
            ).all()
            points = [Point(r.time, r.lat, r.lon, r.speed_kmh, r.odometer_km, r.valid, (), r.id) for r in fixes]
            kept, rejected = filter_points(points, self.settings, now)
            trips, _stops = detect(kept, self.settings)
            trips = [trip for trip in trips if trip.start_ms >= anchor]
            bookings = self._bookings(conn, vehicle_id, anchor)
            trips, _checks = match_bookings(trips, bookings, now, vehicle_id)
            self._mark_rejected(conn, fixes, rejected)
            conn.execute(delete(TripRow).where(t.vehicle_id == vehicle_id, t.start_time >= anchor))
            if trips:
                conn.execute(insert(TripRow), [self._row(vehicle_id, trip, now) for trip in trips])
            self._fence_events(conn, vehicle_id, kept, anchor)
            self._enqueue_finished(conn, vehicle_id, anchor)
        return trips

    def _row(self, vehicle_id: str, trip: Trip, now: int) -> dict[str, Any]:
        flags = list(trip.flags) + ([] if trip.complete else ["ongoing"])
        return {
            "vehicle_id": vehicle_id,
            "start_time": trip.start_ms,
            "end_time": trip.end_ms,
            "start_lat": trip.start_lat,
            "start_lon": trip.start_lon,
            "end_lat": trip.end_lat,
            "end_lon": trip.end_lon,
            "distance_km": trip.distance_km,
            "distance_source": trip.distance_source,
            "max_speed_kmh": trip.max_speed_kmh,
            "avg_speed_kmh": trip.avg_speed_kmh,
            "point_count": trip.point_count,
            "booking_id": int(trip.booking_id) if trip.booking_id else None,
            "flags": flags,
            "computed_at": now,
        }

    def _bookings(self, conn: Connection, vehicle_id: str, since: int) -> list[Booking]:
        b = BookingRow.__table__.c
        rows = conn.execute(select(BookingRow.__table__).where(b.vehicle_id == vehicle_id, b.end_time >= since)).all()
        return [Booking(str(r.id), r.vehicle_id, r.person, r.start_time, r.end_time, r.purpose) for r in rows]

    def _mark_rejected(
        self, conn: Connection, fixes: Sequence[Row[*tuple[Any, ...]]], rejected: list[tuple[Point, str]]
    ) -> None:
        """A fix the trip filters set aside says why in its flags (the fixes list shows every fix)."""
        flags_of = {r.id: list(r.flags or ()) for r in fixes}
        changes = []
        for point, reason in rejected:
            flags = flags_of.get(point.id)
            if flags is not None and reason not in flags:
                changes.append({"fix_id": point.id, "new_flags": orjson.dumps([*flags, reason]).decode()})
        if changes:
            f = FixRecord.__table__.c
            conn.execute(
                update(FixRecord.__table__).where(f.id == bindparam("fix_id")).values(flags=bindparam("new_flags")),
                changes,
            )

    def _fence_events(self, conn: Connection, vehicle_id: str, kept: list[Point], anchor: int) -> None:
        fences = [fence_of(row) for row in conn.execute(select(Geofence.__table__)).all()]
        g = GeofenceEventRow.__table__.c
        conn.execute(delete(GeofenceEventRow).where(g.vehicle_id == vehicle_id, g.time >= anchor))
        if not fences:
            return
        inside = set()
        for fence in fences:  # where the vehicle was at the anchor: its last event before it
            last = conn.execute(
                select(g.kind)
                .where(g.vehicle_id == vehicle_id, g.fence_id == fence.id, g.time < anchor)
                .order_by(g.time.desc())
                .limit(1)
            ).scalar()
            if last == "enter":
                inside.add(fence.id)
        events = geofence_events([p for p in kept if p.time_ms >= anchor], fences, self.dwell_s, inside)
        if events:
            conn.execute(
                insert(GeofenceEventRow),
                [
                    {
                        "vehicle_id": vehicle_id,
                        "fence_id": e.fence_id,
                        "kind": e.kind,
                        "time": e.time_ms,
                        "lat": e.lat,
                        "lon": e.lon,
                    }
                    for e in events
                ],
            )

    def _enqueue_finished(self, conn: Connection, vehicle_id: str, anchor: int) -> None:
        if self.outbox is None or not self.outbox.wants("trip"):
            return
        t = TripRow.__table__.c
        rows = conn.execute(select(TripRow.__table__).where(t.vehicle_id == vehicle_id, t.start_time >= anchor)).all()
        finished = [r for r in rows if "ongoing" not in r.flags]
        self.outbox.enqueue(
            conn, "trip", [(f"{vehicle_id}:{trip.start_time}", vehicle_id, shapes.trip(trip)) for trip in finished]
        )

    # -- reads for the API and the dashboard ------------------------------------------

    def overview(self) -> list[dict[str, Any]]:
        f = FixRecord.__table__.c
        with self.engine.connect() as conn:
            vehicles = conn.execute(select(Vehicle.__table__).order_by(Vehicle.id)).all()
            out = []
            for v in vehicles:
                last = conn.execute(
                    select(f.time, f.lat, f.lon, f.speed_kmh)
                    .where(f.vehicle_id == v.id, f.valid.is_(True))
                    .order_by(f.time.desc())
                    .limit(1)
                ).first()
                out.append(
                    {
                        "id": v.id,
                        "plate": v.plate,
                        "device_id": v.device_id,
                        "driver": v.driver,
                        "last_fix": {
                            "time_ms": last.time,
                            "lat": last.lat,
                            "lon": last.lon,
                            "speed_kmh": last.speed_kmh,
                        }
                        if last
                        else None,
                    }
                )
        return out

    def track(self, vehicle_id: str, since_ms: int, until_ms: int) -> dict[str, Any]:
        f, t, v = FixRecord.__table__.c, TripRow.__table__.c, Vehicle.__table__.c
        with self.engine.connect() as conn:
            if conn.execute(select(v.id).where(v.id == vehicle_id)).first() is None:
                raise KeyError(vehicle_id)
            fixes = conn.execute(
                select(f.time, f.lat, f.lon)
                .where(
                    f.vehicle_id == vehicle_id,
                    f.time >= since_ms,
                    f.time < until_ms,
                    f.valid.is_(True),
                )
                .order_by(f.time)
            ).all()
            trips = conn.execute(
                select(TripRow.__table__)
                .where(and_(t.vehicle_id == vehicle_id, t.end_time >= since_ms, t.start_time < until_ms))
                .order_by(t.start_time)
            ).all()
        return {
            "points": [[r.time, r.lat, r.lon] for r in fixes],
            "trips": [
                {
                    "id": str(r.id),
                    "start_ms": r.start_time,
                    "end_ms": r.end_time,
                    "distance_km": r.distance_km,
                    "booking_id": r.booking_id,
                    "flags": list(r.flags),
                }
                for r in trips
            ],
        }
