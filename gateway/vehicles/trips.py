"""Trips and stops from one vehicle's GPS fixes (bookings: :mod:`gateway.vehicles.bookings`).

Pure: no I/O, no clock, no database. The fixes are filtered first (:mod:`gateway.vehicles.fixes`);
the contract (rules, units, choices) is in the package docstring, :mod:`gateway.vehicles`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

from gateway.vehicles.fixes import (
    COS_DRIFT_DEG,
    DEFAULT_SETTINGS,
    M_PER_DEG,
    RAD,
    Point,
    TripSettings,
    filter_points,
    haversine_m,
)

# Trip steps beyond ~0.1 deg (11 km) use the haversine; below it the flat step is within 1e-5.
_FLAT_LIMIT2 = 0.1**2
# Odometer distance is trusted within this factor (+ slack, for short trips) of the GPS
# distance: a counter that was reset, wrapped or is in another unit lands far outside.
_ODO_RATIO, _ODO_SLACK_KM = 2.0, 0.5


@dataclass(frozen=True, slots=True)
class Trip:
    start_ms: int
    end_ms: int
    start_lat: float
    start_lon: float
    end_lat: float
    end_lon: float
    distance_km: float
    distance_source: str  # "odometer" or "gps"
    max_speed_kmh: float
    avg_speed_kmh: float
    point_count: int
    first_index: int  # into the kept (filtered, sorted) points
    last_index: int
    complete: bool = True  # False: the data ends while it is still under way
    booking_id: str | None = None  # set by match_bookings
    flags: tuple[str, ...] = ()  # "no_booking", set by match_bookings

    @property
    def duration_s(self) -> float:
        return (self.end_ms - self.start_ms) / 1000


@dataclass(frozen=True, slots=True)
class Stop:
    start_ms: int
    end_ms: int
    lat: float
    lon: float
    duration_s: float
    first_index: int
    last_index: int
    complete: bool = True  # False: the data ends while it is still parked


@dataclass(frozen=True, slots=True)
class TripResult:
    kept: list[Point]
    rejected: list[tuple[Point, str]]
    trips: list[Trip]
    stops: list[Stop]


def detect(points: Sequence[Point], settings: TripSettings = DEFAULT_SETTINGS) -> tuple[list[Trip], list[Stop]]:
    """Trips and stops, in time order, from fixes already filtered and sorted by time.

    One pass; a stop window is rescanned only when a stop is confirmed, or when the vehicle
    is back near where it was 3 minutes ago. Result indices point into ``points``.
    """
    pts = points if isinstance(points, list) else list(points)
    n = len(pts)
    trips: list[Trip] = []
    stops: list[Stop] = []
    if n == 0:
        return trips, stops
    far2 = (settings.min_distance_m / M_PER_DEG) ** 2  # squared, in degrees of latitude
    settle_m = settings.settle_radius_m
    settle2 = (settle_m / M_PER_DEG) ** 2
    window_ms, gap_ms = settings.stop_window_s * 1000, settings.max_gap_s * 1000
    cos = math.cos

    # Stopped at the first fix. STOPPED state: the place and the last fix seen settled there.
    moving, first = False, pts[0]
    stop_start = last_settled = 0
    place_lat, place_lon, place_cos = first.lat, first.lon, cos(first.lat * RAD)
    prev_t = first.time_ms
    # MOVING state: where the trip started, the window-start candidate and its position.
    trip_start = cand = cand_t = blocker = 0
    c_lat = c_lon = ref_lat = 0.0
    c_cos = 1.0
    for i in range(1, n):
        p = pts[i]
        t = p.time_ms
        lat, lon = p.lat, p.lon
        gap = t - prev_t > gap_ms
        prev_t = t
        if moving:
            if gap:  # the trip ends at the last fix before the silence
                trips.append(_trip(pts, trip_start, i - 1, settings, True))
                moving = False
                stop_start = last_settled = i
                place_lat, place_lon, place_cos = lat, lon, cos(lat * RAD)
                continue
            limit = t - window_ms
            if cand_t > limit:
                continue  # no fix of this trip is a full window old yet
            # The window starts at the latest fix at or before t - stop_window.
            if pts[cand + 1].time_ms <= limit:
                cand += 1
                while pts[cand + 1].time_ms <= limit:
                    cand += 1
                c = pts[cand]
                cand_t, c_lat, c_lon = c.time_ms, c.lat, c.lon
                if not -COS_DRIFT_DEG < c_lat - ref_lat < COS_DRIFT_DEG:
                    ref_lat, c_cos = c_lat, cos(c_lat * RAD)
            dlat, dlon = lat - c_lat, lon - c_lon
            if not -180.0 <= dlon <= 180.0:
                dlon = (dlon + 180.0) % 360.0 - 180.0
            dx = dlon * c_cos
            if dlat * dlat + dx * dx >= far2:
                continue  # still travelling
            # Within reach of the window start again: stopped only if it never left it.
            # The fix that broke the last check, or the one after it (the window moved on
            # by a fix, so did the far side of a loop), usually breaks this one too.
            search: Iterable[int] = range(cand + 1, i)
            if cand < blocker < i:
                if _far(pts[blocker], c_lat, c_lon, c_cos, far2):
                    continue
                search = chain(range(blocker + 1, i), range(cand + 1, blocker))
            for j in search:
                if _far(pts[j], c_lat, c_lon, c_cos, far2):
                    blocker = j
                    break
            else:
                arrival, place_lat, place_lon, last_settled = _settle(pts, trip_start, cand, i, settle_m)
                trips.append(_trip(pts, trip_start, arrival, settings, True))
                moving = False
                stop_start = arrival
                place_cos = cos(place_lat * RAD)
            continue
        # STOPPED
        dlat, dlon = lat - place_lat, lon - place_lon
        if not -180.0 <= dlon <= 180.0:
            dlon = (dlon + 180.0) % 360.0 - 180.0
        dx = dlon * place_cos
        d2 = dlat * dlat + dx * dx
        if d2 < far2:  # still at the place (a stop may span a silence: the car was parked)
            if d2 <= settle2:
                last_settled = i
            continue
        if gap:  # it was moved while silent: no trip can be drawn across the gap
            if i - 1 > stop_start:
                stops.append(_stop(pts, stop_start, i - 1, place_lat, place_lon, True))
            stop_start = last_settled = i
            place_lat, place_lon, place_cos = lat, lon, cos(lat * RAD)
            continue
        # Left the place. The trip starts where it was last seen parked, if that was
        # recent; otherwise it had been creeping about inside the area: start at i - 1.
        depart = i - 1
        if settle_m > 0 and t - pts[last_settled].time_ms <= window_ms:
            depart = last_settled
        if depart > stop_start:
            stops.append(_stop(pts, stop_start, depart, place_lat, place_lon, True))
        moving = True
        trip_start = depart
        cand, cand_t, c_lat, c_lon, blocker = i, t, lat, lon, -1
        ref_lat, c_cos = lat, cos(lat * RAD)
    if moving:
        trips.append(_trip(pts, trip_start, n - 1, settings, False))
    elif n - 1 > stop_start:
        stops.append(_stop(pts, stop_start, n - 1, place_lat, place_lon, False))
    return trips, stops


def _far(q: Point, lat: float, lon: float, coslat: float, far2: float) -> bool:
    dlon = q.lon - lon
    if not -180.0 <= dlon <= 180.0:
        dlon = (dlon + 180.0) % 360.0 - 180.0
    dlat, dx = q.lat - lat, dlon * coslat
    return dlat * dlat + dx * dx >= far2


def _settle(pts: list[Point], lo: int, c: int, p: int, settle_m: float) -> tuple[int, float, float, int]:
    """A stop confirmed over fixes c..p of a trip from lo: (arrival, place lat, place lon,
    last settled). The place is the centroid of the fixes near the last one (jitter
    averages out, the approach does not pull it); the arrival is the first fix within
    settle_m of it, or earlier ones just before c already there (see package docs)."""
    if settle_m <= 0:
        q = pts[c]
        return c, q.lat, q.lon, p
    last = pts[p]
    coslat = math.cos(last.lat * RAD)
    gather2 = (2 * settle_m / M_PER_DEG) ** 2  # two jittered fixes can be 2 x settle apart
    sum_dlat = sum_dlon = 0.0
    count, first_near = 0, p
    for j in range(p, c - 1, -1):
        q = pts[j]
        dlat, dlon = q.lat - last.lat, (q.lon - last.lon + 180.0) % 360.0 - 180.0
        if dlat * dlat + (dlon * coslat) ** 2 <= gather2:
            sum_dlat, sum_dlon, count, first_near = sum_dlat + dlat, sum_dlon + dlon, count + 1, j
    place_lat = last.lat + sum_dlat / count
    place_lon = (last.lon + sum_dlon / count + 180.0) % 360.0 - 180.0
    settle2 = (settle_m / M_PER_DEG) ** 2
    arrival, last_settled = -1, p
    for j in range(c, p + 1):
        if not _far(pts[j], place_lat, place_lon, coslat, settle2):
            arrival = j if arrival < 0 else arrival
            last_settled = j
    if arrival < 0:
        return first_near, place_lat, place_lon, last_settled
    while arrival - 1 > lo and not _far(pts[arrival - 1], place_lat, place_lon, coslat, settle2):
        arrival -= 1
    return arrival, place_lat, place_lon, last_settled


def _stop(pts: list[Point], a: int, b: int, lat: float, lon: float, complete: bool) -> Stop:
    t0, t1 = pts[a].time_ms, pts[b].time_ms
    return Stop(t0, t1, lat, lon, (t1 - t0) / 1000, a, b, complete)


def _trip(pts: list[Point], a: int, b: int, settings: TripSettings, complete: bool) -> Trip:
    """Summarize fixes a..b: GPS path length, speeds, and odometer distance when sound."""
    first, last = pts[a], pts[b]
    cos, sqrt, hav = math.cos, math.sqrt, haversine_m
    prev_t, prev_lat, prev_lon = first.time_ms, first.lat, first.lon
    half_rad = RAD / 2
    total = fastest = 0.0  # degrees of latitude, degrees per ms
    reported = first.speed_kmh if first.speed_kmh is not None else -1.0
    for j in range(a + 1, b + 1):
        q = pts[j]
        t, lat, lon = q.time_ms, q.lat, q.lon
        dlat, dlon = lat - prev_lat, lon - prev_lon
        if not -180.0 <= dlon <= 180.0:
            dlon = (dlon + 180.0) % 360.0 - 180.0
        # The reported distance deserves the step's own mid-latitude scale (one cos per
        # fix of a trip): flat steps are then within 1e-5 of the great circle below 11 km.
        dx = dlon * cos((lat + prev_lat) * half_rad)
        d2 = dlat * dlat + dx * dx
        step = sqrt(d2) if d2 < _FLAT_LIMIT2 else hav(prev_lat, prev_lon, lat, lon) / M_PER_DEG
        total += step
        if t > prev_t and step > fastest * (t - prev_t):
            fastest = step / (t - prev_t)
        s = q.speed_kmh
        if s is not None and s > reported:
            reported = s
        prev_t, prev_lat, prev_lon = t, lat, lon
    gps_km = total * M_PER_DEG / 1000
    hours = (last.time_ms - first.time_ms) / 3_600_000
    distance, source = gps_km, "gps"
    odo_a, odo_b = first.odometer_km, last.odometer_km
    if odo_a is not None and odo_b is not None:
        odo = odo_b - odo_a
        plausible = 0 <= odo <= settings.max_speed_kmh * hours + 0.001
        if plausible and gps_km / _ODO_RATIO - _ODO_SLACK_KM <= odo <= gps_km * _ODO_RATIO + _ODO_SLACK_KM:
            distance, source = odo, "odometer"
    max_speed = reported if reported >= 0 else fastest * M_PER_DEG * 3600  # deg/ms -> km/h
    avg = distance / hours if hours > 0 else 0.0
    return Trip(
        first.time_ms,
        last.time_ms,
        first.lat,
        first.lon,
        last.lat,
        last.lon,
        distance,
        source,
        max_speed,
        avg,
        b - a + 1,
        a,
        b,
        complete,
    )


def trips_from_fixes(
    points: Iterable[Point], settings: TripSettings = DEFAULT_SETTINGS, now_ms: int | None = None
) -> TripResult:
    """filter_points then detect: the whole pipeline for one vehicle's fixes, any order."""
    kept, rejected = filter_points(points, settings, now_ms)
    trips, stops = detect(kept, settings)
    return TripResult(kept, rejected, trips, stops)
