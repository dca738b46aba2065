from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.events import AccessEvent, Fix, Punch
from gateway.devices.errors import DecodeError
from gateway.devices.mqtt_json import decode
from tests.devices.codec_checks import only_decode_errors

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = UTC
DEV = "att-01"

PUNCH = {
    "type": "punch",
    "user": "E1001",
    "time": "2026-11-27T08:59:03+08:00",
    "verify": "fingerprint",
    "direction": "in",
    "seq": 1234,
}
ACCESS = {
    "type": "access",
    "door": "main",
    "credential": {"kind": "card", "value": "0x14088B", "bits": 26},
    "result": "granted",
    "direction": "in",
    "time": 1795741143000,
}
FIX = {
    "type": "fix",
    "time": "2026-11-27T09:00:00Z",
    "lat": 31.2304,
    "lon": 121.4737,
    "speed_kmh": 42.5,
    "heading": 90,
    "alt": 12,
    "sats": 9,
    "ignition": True,
}


def dec(obj, tz=SHANGHAI):
    return decode(orjson.dumps(obj), DEV, tz)


def one_event(obj, tz=SHANGHAI):
    out = dec(obj, tz)
    assert out.rejects == [], [r.reason for r in out.rejects]
    assert len(out.events) == 1
    return out.events[0]


def one_reject(obj) -> DecodeError:
    out = dec(obj)
    assert out.events == []
    assert len(out.rejects) == 1
    return out.rejects[0]


def with_(base, **changes):
    obj = dict(base)
    for name, value in changes.items():
        if value is ...:
            obj.pop(name, None)
        else:
            obj[name] = value
    return obj


# --- time forms ---------------------------------------------------------------


def test_time_with_offset_is_converted_to_utc_and_keeps_the_offset():
    ev = one_event(with_(PUNCH, time="2026-11-27T08:59:03+08:00"))
    assert ev.time == datetime(2026, 11, 27, 0, 59, 3, tzinfo=UTC)
    assert ev.utc_offset_min == 480


def test_time_without_offset_is_device_local_in_the_given_zone():
    ev = one_event(with_(PUNCH, time="2026-11-27T08:59:03"), tz=SHANGHAI)
    assert ev.time == datetime(2026, 11, 27, 0, 59, 3, tzinfo=UTC)
    assert ev.utc_offset_min == 480


def test_time_without_offset_follows_dst_of_the_device_zone():
    ev = one_event(with_(PUNCH, time="2026-07-01T09:00:00"), tz=ZoneInfo("America/New_York"))
    assert ev.time == datetime(2026, 7, 1, 13, 0, 0, tzinfo=UTC)
    assert ev.utc_offset_min == -240


def test_time_as_epoch_milliseconds():
    # 1970..2025 is 56 years with 14 leap days = 20454 days; Jan 1..Nov 27 2026 adds
    # 330 days -> 20784 * 86400 = 1795737600 s, plus 00:59:03 = 3543 s.
    ev = one_event(with_(PUNCH, time=1795741143000))
    assert ev.time == datetime(2026, 11, 27, 0, 59, 3, tzinfo=UTC)
    assert ev.utc_offset_min == 480  # the device zone's offset at that instant


def test_time_with_z_suffix_is_utc():
    ev = one_event(with_(PUNCH, time="2026-11-27T09:00:00Z"))
    assert ev.time == datetime(2026, 11, 27, 9, 0, 0, tzinfo=UTC)
    assert ev.utc_offset_min == 0


# --- each event type with all fields -----------------------------------------------


def test_punch_with_all_fields():
    ev = one_event(PUNCH)
    assert isinstance(ev, Punch)
    assert (ev.device_id, ev.user, ev.verify, ev.direction, ev.seq, ev.source) == (
        DEV,
        "E1001",
        "fingerprint",
        "in",
        1234,
        "mqtt-json",
    )
    assert ev.key


def test_punch_defaults_when_optional_fields_are_absent():
    ev = one_event({"type": "punch", "user": "E1", "time": "2026-11-27T08:59:03+08:00"})
    assert (ev.verify, ev.direction, ev.seq) == ("other:", "unknown", None)


def test_punch_integer_user_becomes_decimal_string():
    assert one_event(with_(PUNCH, user=1001)).user == "1001"


@pytest.mark.parametrize("verify", ["fingerprint", "card", "face", "password", "palm"])
def test_punch_known_verify_kept_as_is(verify):
    assert one_event(with_(PUNCH, verify=verify)).verify == verify


def test_punch_unknown_verify_becomes_other_with_raw_value():
    assert one_event(with_(PUNCH, verify="iris")).verify == "other:iris"


def test_access_with_all_fields():
    ev = one_event(ACCESS)
    assert isinstance(ev, AccessEvent)
    assert (ev.door, ev.credential_kind, ev.credential_value, ev.credential_bits, ev.result, ev.direction) == (
        "main",
        "card",
        "0x14088B",
        26,
        "granted",
        "in",
    )
    assert ev.time == datetime(2026, 11, 27, 0, 59, 3, tzinfo=UTC)


def test_access_integer_credential_value_becomes_string_and_direction_defaults():
    ev = one_event(with_(ACCESS, credential={"kind": "pin", "value": 1234}, direction=...))
    assert (ev.credential_kind, ev.credential_value, ev.credential_bits, ev.direction) == (
        "pin",
        "1234",
        None,
        "unknown",
    )


def test_fix_with_all_fields():
    ev = one_event(FIX)
    assert isinstance(ev, Fix)
    assert (ev.lat, ev.lon, ev.speed_kmh, ev.heading, ev.alt, ev.sats, ev.ignition) == (
        31.2304,
        121.4737,
        42.5,
        90,
        12,
        9,
        True,
    )
    assert ev.valid and ev.flags == []
    assert ev.time == datetime(2026, 11, 27, 9, 0, 0, tzinfo=UTC)


def test_fix_at_zero_zero_is_invalid_and_flagged():
    ev = one_event(with_(FIX, lat=0, lon=0.0))
    assert ev.valid is False
    assert ev.flags == ["zero_position"]


def test_fix_optional_fields_may_be_absent():
    ev = one_event({"type": "fix", "time": 1795741143000, "lat": -33.9, "lon": -70})
    assert (ev.speed_kmh, ev.heading, ev.alt, ev.sats, ev.ignition) == (None, None, None, None, None)


# --- arrays ---------------------------------------------------------------------


def test_array_payload_yields_one_event_per_element_in_order():
    out = dec([PUNCH, ACCESS, FIX])
    assert [type(e) for e in out.events] == [Punch, AccessEvent, Fix]
    assert out.rejects == []


def test_one_bad_element_is_rejected_and_the_others_kept():
    bad = with_(FIX, lat=91)
    out = dec([PUNCH, bad, ACCESS])
    assert [type(e) for e in out.events] == [Punch, AccessEvent]
    assert [r.reason for r in out.rejects] == ["out_of_range"]
    assert orjson.loads(out.rejects[0].raw) == bad


def test_array_element_that_is_not_an_object_is_rejected_as_bad_shape():
    out = dec([PUNCH, "punch", 3])
    assert len(out.events) == 1
    assert [r.reason for r in out.rejects] == ["bad_shape", "bad_shape"]
    assert [r.raw for r in out.rejects] == [b'"punch"', b"3"]


# --- whole-payload reasons -----------------------------------------------------------


def test_invalid_utf8_raises_bad_utf8_with_the_payload_as_raw():
    payload = b'{"type": "punch", "user": "\xff"}'
    with pytest.raises(DecodeError) as ei:
        decode(payload, DEV, SHANGHAI)
    assert ei.value.reason == "bad_utf8"
    assert ei.value.raw == payload


def test_unparseable_json_raises_bad_json():
    with pytest.raises(DecodeError) as ei:
        decode(b'{"type": "punch",', DEV, SHANGHAI)
    assert ei.value.reason == "bad_json"
    assert ei.value.raw == b'{"type": "punch",'


@pytest.mark.parametrize("payload", [b'"punch"', b"42", b"null", b"true", b"[]"])
def test_payload_that_is_not_an_object_or_nonempty_array_raises_bad_shape(payload):
    with pytest.raises(DecodeError) as ei:
        decode(payload, DEV, SHANGHAI)
    assert ei.value.reason == "bad_shape"


# --- per-element reasons ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["visit", "", 5, ["punch"]])
def test_unknown_type_is_rejected(kind):
    rej = one_reject(with_(PUNCH, type=kind))
    assert rej.reason == "unknown_type"
    assert orjson.loads(rej.raw) == with_(PUNCH, type=kind)


@pytest.mark.parametrize(
    "base, field",
    [
        (PUNCH, "type"),
        (PUNCH, "user"),
        (PUNCH, "time"),
        (ACCESS, "door"),
        (ACCESS, "credential"),
        (ACCESS, "result"),
        (ACCESS, "time"),
        (FIX, "lat"),
        (FIX, "lon"),
        (FIX, "time"),
    ],
)
def test_missing_required_field_is_rejected_naming_the_field(base, field):
    rej = one_reject(with_(base, **{field: ...}))
    assert rej.reason == "missing_field"
    assert field in rej.detail


@pytest.mark.parametrize("field", ["kind", "value"])
def test_missing_credential_part_is_rejected_naming_the_field(field):
    cred = with_(ACCESS["credential"], **{field: ...})
    rej = one_reject(with_(ACCESS, credential=cred))
    assert rej.reason == "missing_field"
    assert f"credential.{field}" in rej.detail


def test_empty_user_counts_as_missing():
    rej = one_reject(with_(PUNCH, user=""))
    assert rej.reason == "missing_field"
    assert "user" in rej.detail


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-11-27",
        12.5,
        True,
        {"t": 1},
        "1999-12-31T23:59:59Z",
        -1,
        10**15,
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_unusable_time_is_rejected_as_bad_time(value):
    rej = one_reject(with_(PUNCH, time=value))
    assert rej.reason == "bad_time"
    assert rej.detail


@pytest.mark.parametrize(
    "base, field, value",
    [
        (FIX, "lat", 90.0001),
        (FIX, "lat", -91),
        (FIX, "lon", 180.5),
        (FIX, "lon", -181),
        (FIX, "speed_kmh", -0.1),
        (FIX, "speed_kmh", 1000.5),
        (FIX, "heading", -1),
        (FIX, "heading", 361),
        (FIX, "sats", -1),
        (FIX, "sats", 100),
        (FIX, "lat", 2**64 - 1),
        (PUNCH, "seq", -1),
        (PUNCH, "seq", 2**64 - 1),
    ],
)
def test_value_outside_its_range_is_rejected_as_out_of_range(base, field, value):
    rej = one_reject(with_(base, **{field: value}))
    assert rej.reason == "out_of_range", rej.detail
    assert field in rej.detail


@pytest.mark.parametrize("bits", [0, 257])
def test_credential_bits_outside_1_to_256_is_out_of_range(bits):
    cred = dict(ACCESS["credential"], bits=bits)
    assert one_reject(with_(ACCESS, credential=cred)).reason == "out_of_range"


@pytest.mark.parametrize(
    "base, field, value",
    [
        (FIX, "lat", "31.2"),
        (FIX, "lon", True),
        (FIX, "speed_kmh", "fast"),
        (FIX, "heading", [90]),
        (FIX, "alt", False),
        (FIX, "sats", 9.0),
        (FIX, "sats", True),
        (FIX, "ignition", 1),
        (PUNCH, "user", 1.5),
        (PUNCH, "user", ["E1"]),
        (PUNCH, "verify", 1),
        (PUNCH, "direction", "up"),
        (PUNCH, "direction", 0),
        (PUNCH, "seq", "12"),
        (PUNCH, "seq", 1.0),
        (PUNCH, "seq", True),
        (ACCESS, "door", 7),
        (ACCESS, "result", "maybe"),
        (ACCESS, "result", True),
        (ACCESS, "credential", "0x14088B"),
        (ACCESS, "direction", "sideways"),
    ],
)
def test_wrong_json_type_or_value_is_rejected_as_bad_value(base, field, value):
    rej = one_reject(with_(base, **{field: value}))
    assert rej.reason == "bad_value", rej.detail
    assert field in rej.detail


@pytest.mark.parametrize(
    "cred",
    [
        {"kind": "face", "value": "x"},
        {"kind": 1, "value": "x"},
        {"kind": "card", "value": 1.5},
        {"kind": "card", "value": "x", "bits": "26"},
        {"kind": "card", "value": "x", "bits": True},
    ],
)
def test_bad_credential_parts_are_rejected_as_bad_value(cred):
    assert one_reject(with_(ACCESS, credential=cred)).reason == "bad_value"


def test_deeply_nested_element_is_rejected_without_crashing():
    # orjson parses deeper nesting than it can dump back for the reject's raw.
    out = decode(b"[" + orjson.dumps(with_(PUNCH, type=...)) + b"," + _deep(600) + b"]", DEV, SHANGHAI)
    assert [r.reason for r in out.rejects] == ["missing_field", "bad_shape"]


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --- idempotency keys ----------------------------------------------------------------


def test_same_payload_twice_gives_the_same_keys():
    payload = orjson.dumps([PUNCH, ACCESS, FIX])
    first = [e.key for e in decode(payload, DEV, SHANGHAI).events]
    second = [e.key for e in decode(payload, DEV, SHANGHAI).events]
    assert first == second
    assert len(set(first)) == 3


def test_same_instant_in_another_time_form_gives_the_same_key():
    a = one_event(with_(PUNCH, time="2026-11-27T08:59:03+08:00"))
    b = one_event(with_(PUNCH, time=1795741143000))
    assert a.key == b.key


@pytest.mark.parametrize(
    "change",
    [
        {"user": "E1002"},
        {"direction": "out"},
        {"seq": 1235},
        {"time": "2026-11-27T08:59:04+08:00"},
    ],
)
def test_punch_key_changes_with_what_identifies_the_punch(change):
    assert one_event(with_(PUNCH, **change)).key != one_event(PUNCH).key


def test_punch_key_depends_on_the_device():
    payload = orjson.dumps(PUNCH)
    assert decode(payload, "a", SHANGHAI).events[0].key != decode(payload, "b", SHANGHAI).events[0].key


# --- properties ----------------------------------------------------------------------


def _only_decode_errors(payload: bytes) -> None:
    only_decode_errors(lambda p: decode(p, DEV, SHANGHAI), payload)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_decode_error(payload):
    _only_decode_errors(payload)


def test_every_prefix_of_a_valid_payload_raises_only_decode_error():
    payload = orjson.dumps([PUNCH, ACCESS, FIX])
    for end in range(len(payload)):
        _only_decode_errors(payload[:end])


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=15,
)


@settings(max_examples=400, deadline=None)
@given(JSON_VALUES)
def test_arbitrary_json_values_never_raise_anything_but_decode_error(value):
    _only_decode_errors(orjson.dumps(value))


@settings(max_examples=400, deadline=None)
@given(
    base=st.sampled_from([PUNCH, ACCESS, FIX]),
    changes=st.dictionaries(
        st.sampled_from(
            [
                "type",
                "user",
                "time",
                "verify",
                "direction",
                "seq",
                "door",
                "credential",
                "result",
                "lat",
                "lon",
                "speed_kmh",
                "heading",
                "alt",
                "sats",
                "ignition",
            ]
        ),
        JSON_VALUES,
        max_size=4,
    ),
)
def test_valid_events_with_arbitrary_field_values_never_raise(base, changes):
    _only_decode_errors(orjson.dumps([dict(base, **changes), base]))


@settings(max_examples=300, deadline=None)
@given(
    user=st.text(min_size=1, max_size=20) | st.integers(min_value=0, max_value=2**63),
    local=st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2199, 12, 30)),
    offset=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_random_valid_punches_round_trip_their_utc_time(user, local, offset):
    aware = local.replace(tzinfo=timezone(timedelta(minutes=offset)))
    ev = one_event({"type": "punch", "user": user, "time": aware.isoformat()})
    assert ev.time == aware.astimezone(UTC)
    assert ev.utc_offset_min == offset
    assert ev.user == str(user)
