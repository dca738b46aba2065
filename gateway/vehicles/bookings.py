"""Bookings matched to a vehicle's trips: who had the car, and which bookings went unused.

Pure, like :mod:`gateway.vehicles.trips`; the rules are in :func:`match_bookings`.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from .trips import Trip

__all__ = ["BOOKING_STATUSES", "Booking", "BookingCheck", "match_bookings"]

#: Every value BookingCheck.status can take.
BOOKING_STATUSES = ("used", "no_trip", "pending")


@dataclass(frozen=True, slots=True)
class Booking:
    id: str
    vehicle_id: str
    person: str  # who booked the vehicle
    start_ms: int
    end_ms: int
    purpose: str = ""


@dataclass(frozen=True, slots=True)
class BookingCheck:
    booking_id: str
    status: str  # one of BOOKING_STATUSES
    trip_indices: tuple[int, ...] = ()  # trips matched to this booking


def match_bookings(
    trips: Sequence[Trip], bookings: Iterable[Booking], now_ms: int, vehicle_id: str | None = None
) -> tuple[list[Trip], list[BookingCheck]]:
    """Each trip gets a booking_id or the flag "no_booking"; each booking a status.

    A trip's booking overlaps it (both taken as [start, end): a booking that ends as the
    trip starts does not); preferred: one holding the trip's start (whoever had the car
    when it left), then the longest overlap, then the earliest start, then the smallest
    id. A booking is "used" when any trip overlaps it (even one matched to another
    booking), otherwise "no_trip" once its end is at or before ``now_ms``, else "pending".
    ``vehicle_id``, when given, ignores other vehicles' bookings.
    """
    chosen = sorted(
        (b for b in bookings if vehicle_id is None or b.vehicle_id == vehicle_id), key=lambda b: (b.start_ms, b.id)
    )
    starts = [b.start_ms for b in chosen]
    overlapped = [False] * len(chosen)
    matched: dict[str, list[int]] = {b.id: [] for b in chosen}
    out: list[Trip] = []
    for k, trip in enumerate(trips):
        best, best_key = None, None
        ts, te = trip.start_ms, trip.end_ms
        for m in range(bisect_right(starts, te)):  # bookings starting after it cannot overlap
            b = chosen[m]
            holds_start = b.start_ms <= ts < b.end_ms
            if not holds_start and not (b.start_ms < te and ts < b.end_ms):
                continue
            overlapped[m] = True
            overlap = min(b.end_ms, te) - max(b.start_ms, ts)
            key = (holds_start, overlap, -b.start_ms)
            if best_key is None or key > best_key:  # equal keys: the earlier (smaller id) stays
                best, best_key = b, key
        flags = tuple(f for f in trip.flags if f != "no_booking")  # matching again starts afresh
        if best is None:
            out.append(replace(trip, booking_id=None, flags=flags + ("no_booking",)))
        else:
            matched[best.id].append(k)
            out.append(replace(trip, booking_id=best.id, flags=flags))
    checks = []
    for m, b in enumerate(chosen):
        status = "used" if overlapped[m] else "no_trip" if b.end_ms <= now_ms else "pending"
        checks.append(BookingCheck(b.id, status, tuple(matched[b.id])))
    return out, checks
