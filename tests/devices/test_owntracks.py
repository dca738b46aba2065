from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.events import Fix, idempotency_key
from gateway.devices.errors import DecodeError
from gateway.devices.owntracks import decode
from tests.devices.codec_checks import only_decode_errors

UTC = UTC
DEV = "phone-anna"
TST = 1756283415  # 2025-08-27 08:30:15 UTC

# What the Android app publishes for a location (fields it adds for its own use left in).
EXAMPLE = (
    b'{"_type":"location","acc":12,"alt":31,"batt":88,"bs":1,"cog":270,"conn":"m","created_at":1756283416,'
    b'"lat":31.2304,"lon":121.4737,"m":1,"t":"u","tid":"an","tst":1756283415,"vel":36,"vac":3}'
)


def location(**fields) -> bytes:
    body = {"_type": "location", "lat": 31.2304, "lon": 121.4737, "tst": TST}
    body.update(fields)
    return orjson.dumps({k: v for k, v in body.items() if v is not ...})


def one_fix(payload: bytes, **kwargs) -> Fix:
    out = decode(payload, DEV, **kwargs)
    assert out.rejects == []
    assert len(out.events) == 1
    return out.events[0]


def reason(payload: bytes) -> str:
    with pytest.raises(DecodeError) as caught:
        decode(payload, DEV)
    assert caught.value.raw == payload
    return caught.value.reason


def test_example_location_becomes_a_fix():
    fix = one_fix(EXAMPLE)
    assert fix.time == datetime(2025, 8, 27, 8, 30, 15, tzinfo=UTC)
    assert (fix.lat, fix.lon, fix.speed_kmh, fix.heading, fix.alt) == (31.2304, 121.4737, 36.0, 270.0, 31.0)
    assert (fix.sats, fix.hdop, fix.valid, fix.flags) == (None, None, True, [])
    assert (fix.device_id, fix.source, fix.utc_offset_min) == (DEV, "owntracks", 0)
    assert fix.key == idempotency_key("fix", DEV, TST * 1000, 31.2304, 121.4737)


def test_offset_follows_the_device_zone():
    assert one_fix(EXAMPLE, tz=ZoneInfo("Asia/Shanghai")).utc_offset_min == 480


def test_optional_fields_absent_or_null_are_unknown():
    fix = one_fix(location(vel=None, cog=None, alt=None, acc=None))
    assert (fix.speed_kmh, fix.heading, fix.alt, fix.flags) == (None, None, None, [])


def test_negative_velocity_or_course_means_unknown():
    fix = one_fix(location(vel=-1, cog=-1))
    assert (fix.speed_kmh, fix.heading) == (None, None)


def test_zero_position_is_kept_but_invalid_and_signed_zero_is_one_place():
    fix = one_fix(location(lat=0, lon=0))
    assert (fix.valid, fix.flags) == (False, ["zero_position"])
    assert one_fix(location(lat=-0.0, lon=-0.0)).key == fix.key


def test_poor_accuracy_is_flagged_but_valid():
    fix = one_fix(location(acc=1500))
    assert (fix.valid, fix.flags) == (True, ["low_accuracy"])
    assert one_fix(location(acc=40)).flags == []


def test_same_message_twice_gives_the_same_key_and_another_time_another():
    assert one_fix(EXAMPLE).key == one_fix(EXAMPLE).key
    assert one_fix(location(tst=TST + 1)).key != one_fix(location()).key


@pytest.mark.parametrize(
    "payload",
    [
        b'{"_type":"transition","wtst":1756280000,"lat":31.23,"lon":121.47,"tst":1756283415,"event":"enter"}',
        b'{"_type":"waypoint","desc":"Office","lat":31.23,"lon":121.47,"rad":100,"tst":1756280000}',
        b'{"_type":"waypoints","waypoints":[]}',
        b'{"_type":"lwt","tst":1756283415}',
        b'{"_type":"card","name":"Anna","face":"iVBORw0KGgo="}',
        b'{"_type":"status","android":{"hib":1}}',
        b'{"_type":"cmd","action":"reportLocation"}',
        b'{"_type":"steps","steps":100,"from":1756200000,"to":1756283415}',
    ],
)
def test_other_message_types_are_ignored_without_error(payload):
    out = decode(payload, DEV)
    assert (out.events, out.rejects) == ([], [])


def test_encrypted_messages_are_rejected_so_they_are_not_lost_silently():
    assert reason(b'{"_type":"encrypted","data":"b64..."}') == "encrypted"


@pytest.mark.parametrize(
    "payload, expected",
    [
        (b"", "bad_json"),
        (b"{", "bad_json"),
        (b"lat=31.2", "bad_json"),
        (b'{"_type":"location","lat":NaN}', "bad_json"),
        (b'{"_type":"location","lat":1e999,"lon":0,"tst":1756283415}', "bad_json"),
        (b'{"_type":"location","lat":31.2\xff}', "bad_utf8"),
        (b"[]", "bad_shape"),
        (b"null", "bad_shape"),
        (b'"location"', "bad_shape"),
        (b'{"lat":31.2,"lon":121.4,"tst":1756283415}', "missing_field"),
        (b'{"_type":5}', "bad_value"),
    ],
)
def test_unusable_payloads(payload, expected):
    assert reason(payload) == expected


@pytest.mark.parametrize("missing", ["lat", "lon", "tst"])
def test_missing_or_null_required_field(missing):
    assert reason(location(**{missing: ...})) == "missing_field"
    assert reason(location(**{missing: None})) == "missing_field"


@pytest.mark.parametrize(
    "fields",
    [
        {"lat": "31.2304"},
        {"lon": True},
        {"lat": [31.2]},
        {"tst": "1756283415"},
        {"tst": 1756283415.5},
        {"tst": False},
        {"vel": "fast"},
        {"cog": {}},
        {"alt": "31m"},
        {"acc": True},
    ],
)
def test_ill_typed_field_is_bad_value(fields):
    assert reason(location(**fields)) == "bad_value"


@pytest.mark.parametrize(
    "fields",
    [
        {"lat": 90.0001},
        {"lat": -91},
        {"lon": 180.5},
        {"lon": -181},
        {"tst": 0},
        {"tst": 946684799},
        {"tst": 7258118400},
        {"tst": 2**63},
        {"vel": 5000},
        {"cog": 361},
        {"lat": 1e308},
    ],
)
def test_out_of_range_field(fields):
    assert reason(location(**fields)) == "out_of_range"


def test_edges_of_the_ranges_are_accepted():
    fix = one_fix(location(lat=-90, lon=180, tst=946684800, cog=360, vel=0))
    assert (fix.lat, fix.lon, fix.time.year, fix.heading, fix.speed_kmh) == (-90.0, 180.0, 2000, 360.0, 0.0)


def test_bytearray_payload_is_accepted_and_text_is_not():
    assert len(decode(bytearray(EXAMPLE), DEV).events) == 1
    with pytest.raises(DecodeError) as caught:
        decode(EXAMPLE.decode(), DEV)  # type: ignore[arg-type]
    assert caught.value.reason == "bad_shape"


# --- properties ------------------------------------------------------------------------


def _decode(payload: bytes):
    out = decode(payload, DEV)
    assert all(type(e) is Fix and -90 <= e.lat <= 90 and -180 <= e.lon <= 180 for e in out.events)
    return out


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_decode_error(payload):
    only_decode_errors(_decode, payload)


JSON_INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson can write
JSON_VALUES = (
    st.none()
    | st.booleans()
    | JSON_INTS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | st.lists(JSON_INTS, max_size=2)
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["_type", "lat", "lon", "tst", "vel", "cog", "alt", "acc", "batt", "tid"]),
        JSON_VALUES,
    ).map(lambda d: {"_type": "location", **d} if "_type" not in d else d)
)
def test_arbitrary_location_like_objects_only_raise_decode_error(obj):
    only_decode_errors(_decode, orjson.dumps(obj))
