"""Trips as GPX 1.1 and GeoJSON text. Pure: the caller writes the text where it wants.

Both take the trips and the kept points they index into (``Trip.first_index`` ..
``Trip.last_index``), so a track is exactly the fixes the trip was computed from.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from .trips import Point, Trip

__all__ = ["iso_utc", "trips_geojson_dict", "trips_to_geojson", "trips_to_gpx"]

GPX_NS = "http://www.topografix.com/GPX/1/1"
# Characters XML 1.0 cannot carry even escaped; a plate or a name typed with one would
# otherwise make the whole file unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def iso_utc(ms: int) -> str:
    """'2026-03-02T08:00:00Z', with '.123' when the milliseconds are not zero."""
    seconds, millis = divmod(ms, 1000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{millis:03d}Z" if millis else f"{stamp}Z"


def _text(value: str) -> str:
    return escape(_NOT_XML.sub("", value))


def _track(trip: Trip, points: Sequence[Point]) -> Sequence[Point]:
    if not 0 <= trip.first_index <= trip.last_index < len(points):
        raise ValueError(f"trip indices {trip.first_index}..{trip.last_index} are not in the {len(points)} points")
    return points[trip.first_index : trip.last_index + 1]


def _default_name(trip: Trip) -> str:
    return f"Trip {iso_utc(trip.start_ms)}"


def trips_to_gpx(
    trips: Sequence[Trip],
    points: Sequence[Point],
    *,
    name: str = "",
    trip_names: Sequence[str] | None = None,
    creator: str = "office-gateway",
) -> str:
    """A GPX 1.1 document: one <trk> per trip, one <trkseg> of its fixes.

    ``name`` titles the file (metadata); ``trip_names`` names each track (default:
    "Trip <start time>"). Names are escaped, and control characters dropped.
    """
    if trip_names is not None and len(trip_names) != len(trips):
        raise ValueError("trip_names must have one name per trip")
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<gpx version="1.1" creator={quoteattr(_NOT_XML.sub("", creator))} xmlns="{GPX_NS}">\n',
    ]
    if name:
        out.append(f"  <metadata><name>{_text(name)}</name></metadata>\n")
    for k, trip in enumerate(trips):
        title = trip_names[k] if trip_names is not None else _default_name(trip)
        desc = f"{trip.distance_km:.3f} km ({trip.distance_source}), {iso_utc(trip.start_ms)} to {iso_utc(trip.end_ms)}"
        out.append(f"  <trk>\n    <name>{_text(title)}</name>\n    <desc>{_text(desc)}</desc>\n    <trkseg>\n")
        out.extend(
            f'      <trkpt lat="{p.lat:.7f}" lon="{p.lon:.7f}"><time>{iso_utc(p.time_ms)}</time></trkpt>\n'
            for p in _track(trip, points)
        )
        out.append("    </trkseg>\n  </trk>\n")
    out.append("</gpx>\n")
    return "".join(out)


def trips_geojson_dict(trips: Sequence[Trip], points: Sequence[Point]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection: one LineString per trip, positions [lon, lat]."""
    features = []
    for trip in trips:
        coords = [[round(p.lon, 7), round(p.lat, 7)] for p in _track(trip, points)]
        if len(coords) == 1:
            coords.append(list(coords[0]))  # a LineString needs two positions
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": coords},
                "properties": {
                    "start": iso_utc(trip.start_ms),
                    "end": iso_utc(trip.end_ms),
                    "distance_km": round(trip.distance_km, 3),
                    "distance_source": trip.distance_source,
                    "max_speed_kmh": round(trip.max_speed_kmh, 1),
                    "avg_speed_kmh": round(trip.avg_speed_kmh, 1),
                    "point_count": trip.point_count,
                    "complete": trip.complete,
                    "booking_id": trip.booking_id,
                    "no_booking": "no_booking" in trip.flags,
                    "flags": list(trip.flags),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def trips_to_geojson(trips: Sequence[Trip], points: Sequence[Point]) -> str:
    return json.dumps(trips_geojson_dict(trips, points), separators=(",", ":"), allow_nan=False)
