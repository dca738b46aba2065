"""The fleet's own rows as the API answers them and the audit log keeps them.

The records a device sends (fixes) and the trips computed from them are in
`gateway.store.shapes`, shared with the uplink.
"""

from __future__ import annotations

from typing import Any

from gateway.core.timeutil import iso_utc
from gateway.store.models import Booking, Geofence, GeofenceEventRow, Vehicle
from gateway.vehicles.trips import Stop


def vehicle_view(v: Vehicle) -> dict[str, Any]:
    return {
        "id": v.id,
        "plate": v.plate,
        "device_id": v.device_id,
        "driver": v.driver,
        "name": v.name,
        "created_at": iso_utc(v.created_at),
        "updated_at": iso_utc(v.updated_at),
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


def geofence_view(g: Geofence) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, **g.shape}


def geofence_event_view(e: GeofenceEventRow) -> dict[str, Any]:
    return {
        "id": str(e.id),
        "vehicle_id": e.vehicle_id,
        "fence_id": e.fence_id,
        "kind": e.kind,
        "time": iso_utc(e.time),
        "lat": e.lat,
        "lon": e.lon,
    }


def stop_view(s: Stop) -> dict[str, Any]:
    return {
        "start": iso_utc(s.start_ms),
        "end": iso_utc(s.end_ms),
        "lat": s.lat,
        "lon": s.lon,
        "duration_s": round(s.duration_s),
        "complete": s.complete,
    }
