"""Geofences (circles and polygons) and enter/exit events with dwell hysteresis.

Pure: no I/O, no clock. A vehicle parked at the edge of a fence wanders in and out of it
with GPS noise; an event is reported only after the vehicle has been on the new side
continuously for ``dwell_s``, and it is dated at the first fix of that run (when it really
crossed), not at the fix that confirmed it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from .fixes import M_PER_DEG, Point, haversine_m

__all__ = ["CircleFence", "Fence", "GeofenceEvent", "PolygonFence", "geofence_events"]


def _wrap(dlon: float) -> float:
    """A longitude difference in [-180, 180): fences across the antimeridian work too."""
    return (dlon + 180.0) % 360.0 - 180.0


@dataclass(frozen=True, slots=True)
class CircleFence:
    id: str
    lat: float
    lon: float
    radius_m: float
    # Latitude band outside which nothing can be inside: skips the haversine for most fixes.
    _dlat: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.radius_m > 0:
            raise ValueError(f"fence {self.id!r}: radius_m must be > 0")
        if not (-90 <= self.lat <= 90 and -180 <= self.lon <= 180):
            raise ValueError(f"fence {self.id!r}: center out of range")
        object.__setattr__(self, "_dlat", self.radius_m / M_PER_DEG * 1.001)

    def contains(self, lat: float, lon: float) -> bool:
        """Inside or on the circle (great-circle distance <= radius)."""
        if abs(lat - self.lat) > self._dlat:
            return False
        return haversine_m(self.lat, self.lon, lat, lon) <= self.radius_m


@dataclass(frozen=True, slots=True)
class PolygonFence:
    """A simple polygon given as (lat, lon) vertices, in either winding order, not closed
    (the last vertex joins the first). Containment is ray casting on longitude/latitude
    taken as plane coordinates, which is what the fence was drawn on a map with; fences
    are small compared with the Earth, so this is the shape the user meant. Points exactly
    on an edge may count as either side."""

    id: str
    vertices: tuple[tuple[float, float], ...]
    # Vertices as (x = lon offset from the first vertex, y = lat), and their bounding box.
    _xy: tuple[tuple[float, float], ...] = field(init=False, repr=False, compare=False)
    _box: tuple[float, float, float, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        verts = tuple((float(a), float(b)) for a, b in self.vertices)
        if len(verts) > 3 and verts[0] == verts[-1]:
            verts = verts[:-1]  # a closed ring as GeoJSON writes it
        if len(verts) < 3:
            raise ValueError(f"fence {self.id!r}: a polygon needs at least 3 vertices")
        if not all(-90 <= a <= 90 and -180 <= b <= 180 for a, b in verts):
            raise ValueError(f"fence {self.id!r}: vertex out of range")
        lon0 = verts[0][1]
        xy = tuple((_wrap(lon - lon0), lat) for lat, lon in verts)
        xs, ys = [x for x, _ in xy], [y for _, y in xy]
        object.__setattr__(self, "vertices", verts)
        object.__setattr__(self, "_xy", xy)
        object.__setattr__(self, "_box", (min(xs), max(xs), min(ys), max(ys)))

    def contains(self, lat: float, lon: float) -> bool:
        x, y = _wrap(lon - self.vertices[0][1]), lat
        x0, x1, y0, y1 = self._box
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            return False
        inside = False
        xy = self._xy
        xj, yj = xy[-1]
        for xi, yi in xy:
            # Each edge that straddles the horizontal line through the point, crossed to
            # the point's right, flips the answer (half-open in y: vertices count once).
            if (yi > y) != (yj > y) and x < xi + (y - yi) * (xj - xi) / (yj - yi):
                inside = not inside
            xj, yj = xi, yi
        return inside


Fence = CircleFence | PolygonFence


@dataclass(frozen=True, slots=True)
class GeofenceEvent:
    fence_id: str
    kind: str  # "enter" or "exit"
    time_ms: int  # the first fix of the run that confirmed it
    lat: float
    lon: float


def geofence_events(
    points: Iterable[Point],
    fences: Sequence[Fence],
    dwell_s: float = 60.0,
    initial_inside: Iterable[str] = (),
) -> list[GeofenceEvent]:
    """Enter/exit events, in time order, for one vehicle's fixes (any order: sorted here).

    The vehicle starts outside every fence except those named in ``initial_inside``. An
    enter (exit) is reported once consecutive fixes have been inside (outside) a fence for
    at least ``dwell_s`` from the first of them to the current one; a fix on the old side
    in between starts the count again. A run not yet confirmed when the data ends gives no
    event (``dwell_s = 0``: every change is reported at once).
    """
    if dwell_s < 0:
        raise ValueError("dwell_s must be >= 0")
    ids = [f.id for f in fences]
    if len(set(ids)) != len(ids):
        raise ValueError("fence ids must be unique")
    unknown = set(initial_inside) - set(ids)
    if unknown:
        raise ValueError(f"initial_inside names unknown fences {sorted(unknown)}")
    dwell_ms = dwell_s * 1000
    start_in = set(initial_inside)
    confirmed = [f.id in start_in for f in fences]
    run_start: list[Point | None] = [None] * len(fences)  # first fix on the other side
    found: list[tuple[int, int, GeofenceEvent]] = []
    for p in sorted(points, key=attrgetter("time_ms")):
        for k, fence in enumerate(fences):
            inside = fence.contains(p.lat, p.lon)
            if inside == confirmed[k]:
                run_start[k] = None
                continue
            first = run_start[k]
            if first is None:
                first = run_start[k] = p
            if p.time_ms - first.time_ms >= dwell_ms:
                kind = "enter" if inside else "exit"
                found.append((first.time_ms, k, GeofenceEvent(fence.id, kind, first.time_ms, first.lat, first.lon)))
                confirmed[k] = inside
                run_start[k] = None
    found.sort(key=lambda e: (e[0], e[1]))
    return [e for _, _, e in found]
