"""Geofences: containment of circles and polygons (convex, concave, across the
antimeridian), and enter/exit events with dwell hysteresis.

Positions are laid out in metres east/north of a base point and converted to degrees, so
the expected side of each fence follows from the geometry written here.
"""

from __future__ import annotations

import math
import random

import pytest

from gateway.vehicles import (
    CircleFence,
    GeofenceEvent,
    Point,
    PolygonFence,
    geofence_events,
)
from gateway.vehicles.fixes import M_PER_DEG

BASE_LAT, BASE_LON = 31.2304, 121.4737
T0 = 1_780_000_000_000
S = 1000


def at(east_m: float, north_m: float, lat0: float = BASE_LAT, lon0: float = BASE_LON) -> tuple[float, float]:
    lat = lat0 + north_m / M_PER_DEG
    lon = lon0 + east_m / (M_PER_DEG * math.cos(math.radians(lat0)))
    return lat, (lon + 180) % 360 - 180


def fix(k_seconds: float, east_m: float, north_m: float) -> Point:
    return Point(T0 + round(k_seconds * S), *at(east_m, north_m))


CAR_PARK = CircleFence("car-park", *at(0, 0), radius_m=100)


# --- containment -----------------------------------------------------------------------


def test_circle_contains():
    assert CAR_PARK.contains(*at(0, 0))
    for bearing in range(0, 360, 30):
        dx, dy = math.sin(math.radians(bearing)), math.cos(math.radians(bearing))
        assert CAR_PARK.contains(*at(99 * dx, 99 * dy)), bearing
        assert not CAR_PARK.contains(*at(101 * dx, 101 * dy)), bearing
    assert not CAR_PARK.contains(*at(0, 5000))
    with pytest.raises(ValueError):
        CircleFence("bad", 0, 0, 0)


def test_convex_polygon_contains_in_either_winding():
    square = [at(-100, -100), at(100, -100), at(100, 100), at(-100, 100)]
    for verts in (square, square[::-1], square + [square[0]]):  # also a closed ring
        fence = PolygonFence("office", tuple(verts))
        assert fence.contains(*at(0, 0)) and fence.contains(*at(95, -95))
        assert not fence.contains(*at(105, 0)) and not fence.contains(*at(0, -105))
        assert not fence.contains(*at(300, 300))
    with pytest.raises(ValueError):
        PolygonFence("line", (at(0, 0), at(10, 10)))


def test_concave_polygon():
    # A "U": two arms 0..100 and 200..300 wide, joined by a base 0..100 high; the notch
    # between the arms (100..200 east, above 100 north) is outside.
    u = PolygonFence(
        "u",
        tuple(
            at(x, y)
            for x, y in [(0, 0), (300, 0), (300, 400), (200, 400), (200, 100), (100, 100), (100, 400), (0, 400)]
        ),
    )
    assert u.contains(*at(50, 300)) and u.contains(*at(250, 300)) and u.contains(*at(150, 50))
    assert not u.contains(*at(150, 300)) and not u.contains(*at(150, 101))
    assert not u.contains(*at(-10, 200)) and not u.contains(*at(150, 450))
    # a point level with the inner corners: the ray crosses edges at vertices
    assert u.contains(*at(50, 100)) and not u.contains(*at(150, 100 + 1e-3))


def test_polygon_across_the_antimeridian():
    lat0, lon0 = -17.7, 180.0  # Fiji
    box = PolygonFence(
        "port", tuple(at(x, y, lat0, lon0) for x, y in [(-500, -500), (500, -500), (500, 500), (-500, 500)])
    )
    assert box.contains(*at(-200, 0, lat0, lon0)) and box.contains(*at(200, 0, lat0, lon0))
    assert not box.contains(*at(900, 0, lat0, lon0)) and not box.contains(*at(0, 0, lat0, 0.0))
    ring = CircleFence("buoy", *at(0, 0, lat0, lon0), radius_m=300)
    assert ring.contains(*at(-250, 0, lat0, lon0)) and ring.contains(*at(250, 0, lat0, lon0))


# --- events ----------------------------------------------------------------------------


def test_flapping_at_the_edge_gives_no_event():
    # parked at the edge: a fix every 10 s, alternately 90 m (in) and 110 m (out), 10 min
    pts = [fix(10 * k, 90 if k % 2 == 0 else 110, 0) for k in range(60)]
    assert [CAR_PARK.contains(p.lat, p.lon) for p in pts[:4]] == [True, False, True, False]
    assert geofence_events(pts, [CAR_PARK]) == []
    assert geofence_events(pts, [CAR_PARK], initial_inside={"car-park"}) == []
    # without dwell every crossing is an event
    assert len(geofence_events(pts, [CAR_PARK], dwell_s=0)) == 60


def test_real_entry_and_exit():
    pts = [fix(10 * k, 510 - 20 * k, 0) for k in range(30)]  # drives in from 510 m east
    pts += [fix(300 + 10 * k, 20, 10) for k in range(30)]  # parks inside for 5 min
    pts += [fix(600 + 10 * k, 20 + 25 * k, 10) for k in range(30)]  # leaves
    first_in = next(p for p in pts if CAR_PARK.contains(p.lat, p.lon))
    first_out = next(p for p in pts[60:] if not CAR_PARK.contains(p.lat, p.lon))
    events = geofence_events(pts, [CAR_PARK])
    assert events == [
        GeofenceEvent("car-park", "enter", first_in.time_ms, first_in.lat, first_in.lon),
        GeofenceEvent("car-park", "exit", first_out.time_ms, first_out.lat, first_out.lon),
    ]
    assert first_in.time_ms == T0 + 210 * S  # 510 - 20 k <= 100 from k = 21
    assert first_out.time_ms == T0 + 640 * S  # 20 + 25 k > 100 from k = 4
    shuffled = list(pts)
    random.Random(5).shuffle(shuffled)
    assert geofence_events(shuffled, [CAR_PARK]) == events


def test_dwell_counts_from_the_first_fix_of_an_unbroken_run():
    # in for 50 s: too short for 60 s of dwell, long enough for 30 s
    visit = (
        [fix(0, 500, 0)] + [fix(10 + 10 * k, 0, 0) for k in range(6)] + [fix(70 + 10 * k, 500, 0) for k in range(10)]
    )
    assert geofence_events(visit, [CAR_PARK]) == []
    assert [e.kind for e in geofence_events(visit, [CAR_PARK], dwell_s=30)] == ["enter", "exit"]
    # a flicker out and back restarts the count: the exit dates from the run that lasted
    pts = [fix(10 * k, 0, 0) for k in range(10)]  # inside
    pts += [fix(100, 300, 0), fix(110, 0, 0), fix(120, 0, 0)]  # one fix out, back in
    pts += [fix(130 + 10 * k, 300, 0) for k in range(10)]  # gone
    events = geofence_events(pts, [CAR_PARK], initial_inside=["car-park"])
    assert [(e.kind, e.time_ms) for e in events] == [("exit", T0 + 130 * S)]
    # a run still too short when the data ends gives no event
    assert geofence_events(pts[:-5], [CAR_PARK], initial_inside=["car-park"]) == []


def test_several_fences_in_time_order():
    office = PolygonFence("office", tuple(at(x, y) for x, y in [(1000, -50), (1100, -50), (1100, 50), (1000, 50)]))
    pts = [fix(10 * k, -310 + 20 * k, 0) for k in range(71)]  # through the car park to the office
    pts += [fix(800 + 10 * k, 1050, 0) for k in range(20)]  # stays at the office
    events = geofence_events(pts, [office, CAR_PARK])
    # in the car park for k = 11..20 (110..200 s), in the office from k = 66 (660 s) on
    assert [(e.fence_id, e.kind) for e in events] == [("car-park", "enter"), ("car-park", "exit"), ("office", "enter")]
    assert [e.time_ms for e in events] == [T0 + 110 * S, T0 + 210 * S, T0 + 660 * S]
    # nested fences confirmed by the same (sparse) fix still come out in time order
    campus = CircleFence("campus", *at(0, 0), radius_m=1000)
    sparse = [fix(0, 2000, 0), fix(10, 500, 0), fix(20, 0, 0), fix(300, 0, 0)]
    assert [(e.fence_id, e.time_ms) for e in geofence_events(sparse, [CAR_PARK, campus])] == [
        ("campus", T0 + 10 * S),
        ("car-park", T0 + 20 * S),
    ]
    with pytest.raises(ValueError):
        geofence_events(pts, [office, CAR_PARK], initial_inside=["nowhere"])
    with pytest.raises(ValueError):
        geofence_events(pts, [office, office])
