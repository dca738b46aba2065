"""GPS fixes and which of them count: the fix, the settings, the distance measure and `filter_points`.

Pure: no I/O, no clock, no database. Trip and stop detection over the fixes kept here
is :mod:`gateway.vehicles.trips`; the rules are in the package docstring, :mod:`gateway.vehicles`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter

__all__ = [
    "DEFAULT_SETTINGS",
    "FILTER_REASONS",
    "M_PER_DEG",
    "Point",
    "TripSettings",
    "filter_points",
    "haversine_m",
]

INVALID, ZERO_POSITION, DUPLICATE_TIME = "invalid", "zero_position", "duplicate_time"
FUTURE_TIME, IMPLAUSIBLE_SPEED = "future_time", "implausible_speed"
#: Every reason filter_points can give for setting a fix aside, in the order they are checked.
FILTER_REASONS = (INVALID, ZERO_POSITION, FUTURE_TIME, DUPLICATE_TIME, IMPLAUSIBLE_SPEED)

EARTH_RADIUS_M = 6_371_008.8  # mean radius: the sphere every distance here is measured on
M_PER_DEG = EARTH_RADIUS_M * math.pi / 180  # metres per degree of latitude
RAD = math.pi / 180
# The 200 m checks are flat-earth, scaled by cos(latitude) of a reference fix refreshed
# once the vehicle is this far north or south of it: the east-west scale is then off by
# at most tan(lat) x 0.05 deg (0.15 % at 60 deg: 0.3 m on 200 m). Cheaper than haversine.
COS_DRIFT_DEG = 0.05
_NO_FUTURE_LIMIT = 1 << 62
_by_time = attrgetter("time_ms")


@dataclass(slots=True)
class Point:
    """One GPS fix. ``id`` links back to the stored row; it plays no part in the rules."""

    time_ms: int
    lat: float
    lon: float
    speed_kmh: float | None = None
    odometer_km: float | None = None
    valid: bool = True
    flags: tuple[str, ...] = ()
    id: int | str | None = None


@dataclass(frozen=True, slots=True)
class TripSettings:
    min_distance_m: float = 200.0  # leaving the stop area / staying within it
    stop_window_s: float = 180.0  # how long it must stay within min_distance_m to be stopped
    max_gap_s: float = 3600.0  # a longer silence ends the trip
    max_speed_kmh: float = 300.0  # implied speed above this sets a fix aside
    future_s: float = 86400.0  # fixes later than now + this are set aside
    # A fix this close to the parked position counts as "at the parking place": trip ends
    # are trimmed to the actual arrival and departure (0 = the raw window rule, see docs).
    settle_radius_m: float = 50.0
    filters: frozenset[str] = frozenset(FILTER_REASONS)  # which filters filter_points applies

    def __post_init__(self) -> None:
        if unknown := set(self.filters) - set(FILTER_REASONS):
            raise ValueError(f"unknown filters {sorted(unknown)}; known: {FILTER_REASONS}")
        for name in ("min_distance_m", "stop_window_s", "max_gap_s", "max_speed_kmh"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if not (self.future_s >= 0 and 0 <= self.settle_radius_m <= self.min_distance_m / 2):
            raise ValueError("need future_s >= 0 and settle_radius_m in [0, min_distance_m / 2]")


DEFAULT_SETTINGS = TripSettings()


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres on the mean-radius sphere."""
    p1, p2 = lat1 * RAD, lat2 * RAD
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin((lon2 - lon1) * RAD / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def filter_points(
    points: Iterable[Point], settings: TripSettings = DEFAULT_SETTINGS, now_ms: int | None = None
) -> tuple[list[Point], list[tuple[Point, str]]]:
    """Sort by time and set aside unusable fixes: (kept, [(fix, reason), ...]).

    Fixes with equal times keep their given order (pass them in storage order), so the
    first of them is the one kept. ``now_ms=None`` skips the future check.
    """
    on = settings.filters
    drop_invalid, drop_zero = INVALID in on, ZERO_POSITION in on
    drop_duplicate, check_speed = DUPLICATE_TIME in on, IMPLAUSIBLE_SPEED in on
    future_limit = _NO_FUTURE_LIMIT
    if now_ms is not None and FUTURE_TIME in on:
        future_limit = now_ms + round(settings.future_s * 1000)
    max_kmh = settings.max_speed_kmh
    # Degrees of latitude per ms at the speed bound. From 90 % of it up (0.81 = 0.9**2) the
    # flat estimate is re-checked with the haversine, so the decision is exact.
    reach_per_ms, near2 = max_kmh / 3600 / M_PER_DEG, 0.81
    cos, hav = math.cos, haversine_m
    kept: list[Point] = []
    rejected: list[tuple[Point, str]] = []
    keep, reject = kept.append, rejected.append
    have_prev, prev_t, prev_lat, prev_lon, ref_lat, coslat = False, 0, 0.0, 0.0, 1e9, 1.0
    for p in sorted(points, key=_by_time):
        lat, lon = p.lat, p.lon
        # NaN fails every comparison, so it lands here too.
        if drop_invalid and not (p.valid and -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            reject((p, INVALID))
            continue
        if drop_zero and lat == 0.0 and lon == 0.0:
            reject((p, ZERO_POSITION))
            continue
        t = p.time_ms
        if t > future_limit:
            reject((p, FUTURE_TIME))
            continue
        if have_prev:
            dt = t - prev_t
            if dt == 0 and drop_duplicate:
                reject((p, DUPLICATE_TIME))
                continue
            if check_speed:
                if not -COS_DRIFT_DEG < lat - ref_lat < COS_DRIFT_DEG:
                    ref_lat, coslat = lat, cos(lat * RAD)
                dlat, dlon = lat - prev_lat, lon - prev_lon
                if not -180.0 <= dlon <= 180.0:
                    dlon = (dlon + 180.0) % 360.0 - 180.0
                dx = dlon * coslat
                reach = reach_per_ms * dt
                far = dlat * dlat + dx * dx > near2 * reach * reach
                if far and hav(prev_lat, prev_lon, lat, lon) * 3600 > max_kmh * dt:
                    reject((p, IMPLAUSIBLE_SPEED))
                    continue
        keep(p)
        have_prev, prev_t, prev_lat, prev_lon = True, t, lat, lon
    return kept, rejected
