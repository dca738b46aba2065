"""Vehicle trips, stops, geofences, bookings and track export from GPS fixes.

Everything here is pure (no I/O, no clock, no database): the store layer loads one
vehicle's fixes, calls these functions and stores or renders the result. Recomputing from
the full list of fixes always gives the same answer, whatever order the fixes arrived in.

Units
-----
* Instants are ``int`` UTC epoch milliseconds; durations in settings are seconds.
* Positions are WGS 84 degrees; distances are measured on a sphere of the mean Earth
  radius (6371.0088 km): metres in settings, kilometres in results.

Pipeline (:mod:`gateway.vehicles.fixes`, then :mod:`gateway.vehicles.trips`)
---------------------------------------------------------------------------
``filter_points(points, settings, now_ms) -> (kept, [(point, reason), ...])``
    Sorts by time (stable: equal times keep their given order) and sets aside, checking
    in this order: ``invalid`` (``valid`` false, or lat/lon outside -90..90 / -180..180
    or NaN), ``zero_position`` (0, 0), ``future_time`` (later than ``now_ms`` +
    ``future_s``; skipped when ``now_ms`` is None), ``duplicate_time`` (same time as the
    previous kept fix), ``implausible_speed`` (distance from the previous kept fix over
    the elapsed time above ``max_speed_kmh``). ``settings.filters`` picks which apply.
    A speed check against a bad kept fix heals by itself once enough time has passed.
``detect(kept, settings) -> (trips, stops)``
    Expects finite, in-range positions in time order (what filter_points returns).
``trips_from_fixes(points, settings, now_ms) -> TripResult(kept, rejected, trips, stops)``

Motion rules (``TripSettings``; defaults in brackets)
-----------------------------------------------------
* The vehicle starts stopped at its first fix. While stopped it has a *place*; the first
  fix at least ``min_distance_m`` [200 m] from the place starts a trip.
* While moving, it is stopped again once every fix since the start of the last
  ``stop_window_s`` [180 s] is within ``min_distance_m`` of the fix that starts that
  window (the latest fix at least stop_window_s old): it stayed inside 200 m for 3 min.
* A silence longer than ``max_gap_s`` [3600 s] between kept fixes ends a trip at the last
  fix before it; the vehicle is stopped at the first fix after it. A stop does continue
  across a silence when the fix after it is still at the place (parked, tracker asleep).
* GPS wander while parked never starts a trip as long as it stays within 200 m of the
  place, i.e. within ~100 m of where the car really is.

Trip ends (``settle_radius_m`` [50 m]). The raw window rule puts the arrival at the start
of the window, which can be up to 200 m before the parking spot; the matching departure
(the last fix before leaving the area) can be up to 200 m past it. Both would cut ~0.4 km
off every trip. So once a stop is confirmed its place is the centroid of the window's
fixes within 2 x settle_radius_m of its last fix, and the trip ends at the first fix of
the window within settle_radius_m of the place, or earlier if the fixes just before the
window start were already there (the window start skips them when fixes are sparser
parked than driving). A trip starts at the last fix within settle_radius_m of the place
if that fix is at most stop_window_s before the one that left the area, else at the fix
just before that one (it had moved within the area). ``settle_radius_m = 0`` gives the
raw rule: the trip ends at the window start (which is also the place) and starts at the
last fix before the one that left the area.

Trip fields: ``start_ms, end_ms, start/end lat/lon`` (of its first and last fix),
``distance_km``, ``distance_source`` ("odometer" when both end fixes have an odometer
reading whose difference is >= 0, no faster than max_speed_kmh on average, and within 2x
(+-0.5 km) of the GPS distance; else "gps": the summed great-circle steps over the kept
fixes), ``max_speed_kmh`` (highest reported speed; the highest step speed when none was
reported), ``avg_speed_kmh`` (distance over duration), ``point_count``, ``first_index``
and ``last_index`` (into the kept list: the track for GPX), ``complete`` (False for a trip
still under way when the data ends), ``booking_id`` and ``flags`` (from match_bookings).
A stop and its neighbouring trips share their boundary fix.
Stop fields: ``start_ms, end_ms, lat, lon`` (the place), ``duration_s``, indices,
``complete``. Stops of a single fix (zero length) are not reported.

Cost: one sort plus one pass; the window is rescanned only when a stop is confirmed or
the vehicle is back within 200 m of where it was 3 min earlier. Distances against the
200 m bound use a flat-earth formula (error < 0.3 m at 200 m, see fixes.py).

Bookings (:mod:`gateway.vehicles.bookings`): ``match_bookings(trips, bookings, now_ms,
vehicle_id=None) -> (trips, checks)``: each trip gets ``booking_id`` or the flag
``no_booking``; each booking a ``BookingCheck(booking_id, status, trip_indices)`` with
status ``used``, ``no_trip`` or ``pending``. Intervals are [start, end); the rules are in
its docstring.

Geofences: :mod:`gateway.vehicles.geofence`. GPX and GeoJSON: :mod:`gateway.vehicles.export`.

In the store: :mod:`gateway.vehicles.service` recomputes trips, stops and geofence events
after new fixes; :mod:`gateway.vehicles.fleet` provisions vehicles, bookings and geofences.
"""

from .bookings import BOOKING_STATUSES, Booking, BookingCheck, match_bookings
from .export import iso_utc, trips_geojson_dict, trips_to_geojson, trips_to_gpx
from .fixes import DEFAULT_SETTINGS, FILTER_REASONS, Point, TripSettings, filter_points, haversine_m
from .geofence import CircleFence, GeofenceEvent, PolygonFence, geofence_events
from .trips import Stop, Trip, TripResult, detect, trips_from_fixes

__all__ = [
    "BOOKING_STATUSES",
    "DEFAULT_SETTINGS",
    "FILTER_REASONS",
    "Booking",
    "BookingCheck",
    "CircleFence",
    "GeofenceEvent",
    "Point",
    "PolygonFence",
    "Stop",
    "Trip",
    "TripResult",
    "TripSettings",
    "detect",
    "filter_points",
    "geofence_events",
    "haversine_m",
    "iso_utc",
    "match_bookings",
    "trips_from_fixes",
    "trips_geojson_dict",
    "trips_to_geojson",
    "trips_to_gpx",
]
