"""Stored records as JSON: the one shape the REST API answers with and the platform receives.

Pure functions from a stored row (an ORM object or a selected row with the same
column names) to a dict. The API and the uplink both build their records here,
so a change to a record's JSON is made once, on purpose, for both; neither side
imports the other.
"""

from __future__ import annotations

import base64
from typing import Any, Protocol

from gateway.core.timeutil import iso_local, iso_utc


class _Presence(Protocol):
    checked_in_at: int | None
    checked_out_at: int | None


def _iso(ms: int | None) -> str | None:
    return iso_utc(ms) if ms is not None else None


def punch(r: Any) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "device_id": r.device_id,
        "user": r.user,
        "person_id": r.person_id,
        "time": iso_utc(r.time),
        "local_time": iso_local(r.time, r.utc_offset_min),
        "direction": r.direction,
        "verify": r.verify,
        "source": r.source,
        "status_code": r.status_code,
        "verify_code": r.verify_code,
        "workcode": r.workcode,
        "seq": r.seq,
    }


def access(r: Any) -> dict[str, Any]:
    """A door event with its decision and reason."""
    return {
        "id": str(r.id),
        "device_id": r.device_id,
        "door": r.door,
        "time": iso_utc(r.time),
        "local_time": iso_local(r.time, r.utc_offset_min),
        "credential": {
            "kind": r.credential_kind,
            "value": r.credential_value,
            "bits": r.credential_bits,
            "format": r.credential_format,
            "facility": r.facility,
            "number": r.number,
        },
        "person_id": r.person_id,
        "visitor_id": r.visitor_id,
        "decision": r.decision,
        "reason": r.reason,
        "direction": r.direction,
        "source": r.source,
    }


def dead_letter(r: Any) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "time": iso_utc(r.time),
        "source": r.source,
        "device_id": r.device_id,
        "topic": r.topic,
        "reason": r.reason,
        "detail": r.detail,
        "size": r.size,
        "raw_b64": base64.b64encode(r.raw).decode(),
    }


def fix(f: Any) -> dict[str, Any]:
    """A GPS fix; `valid` and `flags` say why the trip filters set one aside."""
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


def trip(t: Any) -> dict[str, Any]:
    return {
        "id": str(t.id),
        "vehicle_id": t.vehicle_id,
        "start": iso_utc(t.start_time),
        "end": iso_utc(t.end_time),
        "start_lat": t.start_lat,
        "start_lon": t.start_lon,
        "end_lat": t.end_lat,
        "end_lon": t.end_lon,
        "distance_km": round(t.distance_km, 3),
        "distance_source": t.distance_source,
        "max_speed_kmh": t.max_speed_kmh,
        "avg_speed_kmh": t.avg_speed_kmh,
        "point_count": t.point_count,
        "booking_id": str(t.booking_id) if t.booking_id is not None else None,
        "flags": list(t.flags),
        "complete": "ongoing" not in t.flags,
    }


def on_site(v: _Presence) -> bool:
    return v.checked_in_at is not None and v.checked_out_at is None


def visit(v: Any, host_name: str | None) -> dict[str, Any]:
    """A visit as the roll call lists it (and the platform gets it when the visit ends)."""
    return {
        "id": str(v.id),
        "visitor_name": v.name,
        "company": v.company,
        "host": v.host_person_id,
        "host_name": host_name,
        "window": {"start": iso_utc(v.window_start), "end": iso_utc(v.window_end)},
        "checked_in_at": _iso(v.checked_in_at),
        "checked_out_at": _iso(v.checked_out_at),
        "checkout_reason": v.checkout_reason,
        "on_site": on_site(v),
        "anonymised": v.anonymised_at is not None,
    }
