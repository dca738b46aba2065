"""A day's GPS points drawn as an SVG polyline on a plain coordinate grid (no map tiles: nothing leaves the LAN).

Equirectangular projection: x = lon * cos(middle latitude), y = lat, scaled
to the view box with the same factor on both axes (so shapes are not
stretched) and y flipped (north up). Over a city-sized area the distortion is
negligible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

WIDTH, HEIGHT, PAD = 800, 500, 40
MIN_SPAN_DEG = 0.002  # about 200 m: a vehicle that stood still still gets a readable grid
NICE_STEPS = (1, 2, 5)


@dataclass
class GridLine:
    x1: float
    y1: float
    x2: float
    y2: float
    label: str
    label_x: float
    label_y: float


@dataclass
class TrackDrawing:
    width: int
    height: int
    points: str  # the polyline's "x,y x,y ..." - one vertex per GPS point, in time order
    count: int
    start: tuple[float, float]
    end: tuple[float, float]
    grid: list[GridLine] = field(default_factory=list)


def _nice_step(span: float, lines: int = 8) -> float:
    """A 1/2/5 x 10^n step giving about `lines` grid lines over `span` degrees."""
    raw = span / lines
    power = 10 ** math.floor(math.log10(raw))
    return next((m * power for m in NICE_STEPS if m * power >= raw), 10 * power)


def _decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step)))


def usable_points(points: list[Any]) -> list[tuple[float, float, float]]:
    """(time_ms, lat, lon) of each point with finite, in-range coordinates."""
    usable = []
    for point in points:
        try:
            t, lat, lon = (float(v) for v in point[:3])
        except (TypeError, ValueError, IndexError):
            continue
        if math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180:
            usable.append((t, lat, lon))
    return usable


def draw(points: list[Any], width: int = WIDTH, height: int = HEIGHT, pad: int = PAD) -> TrackDrawing | None:
    """The drawing of `points` ([time_ms, lat, lon], in time order); None when there is no usable point."""
    track = usable_points(points)
    if not track:
        return None
    lats, lons = [p[1] for p in track], [p[2] for p in track]
    mid_lat = (min(lats) + max(lats)) / 2
    k = max(math.cos(math.radians(mid_lat)), 0.01)  # degrees of longitude shrink towards the poles
    span_x = max((max(lons) - min(lons)) * k, MIN_SPAN_DEG * k)
    span_y = max(max(lats) - min(lats), MIN_SPAN_DEG)
    scale = min((width - 2 * pad) / span_x, (height - 2 * pad) / span_y)
    # Centre the track: the view box's middle is the track's middle.
    centre_x, centre_y = (min(lons) + max(lons)) / 2 * k, (min(lats) + max(lats)) / 2

    def to_view(lat: float, lon: float) -> tuple[float, float]:
        return (round(width / 2 + (lon * k - centre_x) * scale, 1), round(height / 2 - (lat - centre_y) * scale, 1))

    def lon_at(x: float) -> float:
        return ((x - width / 2) / scale + centre_x) / k

    def lat_at(y: float) -> float:
        return (height / 2 - y) / scale + centre_y

    vertices = [to_view(lat, lon) for _, lat, lon in track]
    grid = _grid(lon_at(0), lon_at(width), lat_at(height), lat_at(0), to_view, width, height)
    return TrackDrawing(
        width, height, " ".join(f"{x},{y}" for x, y in vertices), len(vertices), vertices[0], vertices[-1], grid
    )


def _grid(
    west: float, east: float, south: float, north: float, to_view: Any, width: int, height: int
) -> list[GridLine]:
    lines = []
    step = _nice_step(max(east - west, north - south))
    places = _decimals(step)
    lon = math.ceil(west / step) * step
    while lon <= east:
        x = to_view(south, lon)[0]
        lines.append(GridLine(x, 0, x, height, f"{lon:.{places}f}°", x + 3, height - 4))
        lon += step
    lat = math.ceil(south / step) * step
    while lat <= north:
        y = to_view(lat, west)[1]
        lines.append(GridLine(0, y, width, y, f"{lat:.{places}f}°", 3, y - 3))
        lat += step
    return lines
