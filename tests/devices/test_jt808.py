from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.events import idempotency_key
from gateway.core.timeutil import to_epoch_ms
from gateway.devices import jt808
from gateway.devices.errors import DecodeError
from gateway.devices.jt808 import (
    Deframer,
    Registration,
    build_frame,
    escape,
    general_response,
    parse_auth,
    parse_frame,
    parse_register,
    register_response,
    unescape,
)
from gateway.devices.jt808_location import parse_batch, parse_location
from tests.devices.codec_checks import only_decode_errors

UTC = UTC
SHANGHAI = ZoneInfo("Asia/Shanghai")
DEV = "van-1"


def hx(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def between_delimiters(wire: bytes) -> bytes:
    assert wire[0] == wire[-1] == 0x7E
    return wire[1:-1]


# 0x0200, 2013 header, phone 013912345678, serial 0x007E. Body: alarm 0, status ACC+positioned,
# lat 31.227152 (01DC7D10), lon 121.473701, alt 10 m, 50.0 km/h, heading 90, 26-11-27 03:00:00,
# then mileage 1234.5 km, 12 satellites, signal 31 and a vendor item (E1) chosen so the
# checksum comes out 0x7E. Escapes: serial 7E -> 7D 02, lat's 7D -> 7D 01, checksum 7E -> 7D 02.
LOCATION_WIRE = hx(
    "7e 0200 002c 013912345678 007d02"
    " 00000000 00000003 01dc7d0110 073d8aa5 000a 01f4 005a 261127030000"
    " 0104 00003039 3101 0c 3001 1f e102 aa59 7d02 7e"
)
LOCATION_BODY = hx(
    "00000000 00000003 01dc7d10 073d8aa5 000a 01f4 005a 261127030000 0104 00003039 3101 0c 3001 1f e102 aa59"
)


def location(status="00000003", lat="01dc89d0", lon="073d8aa5", stamp="261127030000", alarm="00000000", extra=""):
    return hx(f"{alarm} {status} {lat} {lon} 000a 01f4 005a {stamp} {extra}")


# --- framing --------------------------------------------------------------------------


def test_location_frame_with_escaped_serial_body_and_checksum():
    content = between_delimiters(LOCATION_WIRE)
    assert unescape(content) == hx("0200 002c 013912345678 007e") + LOCATION_BODY + b"\x7e"
    frame = parse_frame(content)
    assert (frame.msg_id, frame.version, frame.protocol_version, frame.phone, frame.serial) == (
        0x0200,
        2013,
        None,
        "13912345678",
        0x7E,
    )
    assert frame.body == LOCATION_BODY
    assert (frame.checksum_ok, frame.length_ok, frame.encryption, frame.sub_package) == (True, True, 0, None)
    assert build_frame(0x0200, "13912345678", 0x7E, LOCATION_BODY) == LOCATION_WIRE


def test_location_vector_gives_the_fix_and_rolls_the_date_back_across_utc_midnight():
    fix = parse_location(LOCATION_BODY, DEV, SHANGHAI)
    # 2026-11-27 03:00 at +08:00 is the previous day in UTC.
    assert fix.time == datetime(2026, 11, 26, 19, 0, tzinfo=UTC)
    assert fix.utc_offset_min == 480
    assert (fix.lat, fix.lon, fix.alt, fix.speed_kmh, fix.heading) == (31.227152, 121.473701, 10.0, 50.0, 90.0)
    assert (fix.odometer_km, fix.sats, fix.ignition, fix.valid, fix.flags) == (1234.5, 12, True, True, [])
    assert (fix.source, fix.device_id) == ("jt808", DEV)
    assert fix.key == idempotency_key("fix", DEV, to_epoch_ms(fix.time), 31.227152, 121.473701)


def test_2019_header_with_ten_byte_phone():
    frame = parse_frame(hx("0002 4000 01 00000000013912345678 0001 72"))
    assert (frame.msg_id, frame.version, frame.protocol_version, frame.phone, frame.phone_bytes) == (
        0x0002,
        2019,
        1,
        "13912345678",
        10,
    )
    assert (frame.serial, frame.body, frame.checksum_ok, frame.length_ok) == (1, b"", True, True)


def test_2019_flag_with_six_byte_phone_is_told_apart_by_length():
    frame = parse_frame(hx("0002 4000 01 013912345678 0002 71"))
    assert (frame.version, frame.protocol_version, frame.phone, frame.phone_bytes) == (2019, 1, "13912345678", 6)
    assert (frame.serial, frame.checksum_ok, frame.length_ok) == (2, True, True)


def test_2019_flag_on_a_2013_header_is_read_as_2013():
    frame = parse_frame(hx("0002 4000 013912345678 0003 71"))
    assert (frame.version, frame.protocol_version, frame.phone, frame.serial) == (2013, None, "13912345678", 3)
    assert frame.length_ok


@pytest.mark.parametrize(
    "hex_content, version, sub",
    [
        ("0801 2003 013912345678 0005 0002 0001 010203 1c", 2013, (2, 1)),
        ("0801 6003 01 00000000013912345678 0005 0002 0002 010203 5e", 2019, (2, 2)),
    ],
)
def test_sub_package_header_carries_total_and_index(hex_content, version, sub):
    frame = parse_frame(hx(hex_content))
    assert (frame.version, frame.sub_package, frame.body, frame.serial) == (version, sub, hx("010203"), 5)
    assert frame.checksum_ok and frame.length_ok


def test_wrong_checksum_is_reported_not_raised():
    content = bytearray(unescape(between_delimiters(LOCATION_WIRE)))
    content[-1] ^= 0x01
    frame = parse_frame(escape(bytes(content)))
    assert (frame.checksum_ok, frame.length_ok, frame.body) == (False, True, LOCATION_BODY)


def test_body_length_disagreeing_with_properties_is_flagged_and_parsed_anyway():
    # Properties say 3 bytes of body, 5 follow.
    frame = parse_frame(hx("0801 0003 013912345678 0009 0102030405 32"))
    assert (frame.length_ok, frame.serial, frame.body) == (False, 9, hx("0102030405"))


@pytest.mark.parametrize(
    "content, detail",
    [
        (hx("0002 0000 013912345678 00"), "too short"),
        (hx("0002 0000 013912345678 0001 7d03 00"), "0x7D"),
        (hx("0002 0000 013912345678 0001 00 7d"), "0x7D"),
        (hx("0002 0000 013912345678 0001 7e 00"), "0x7E"),
        (hx("0002 0000 0139123456ab 0001 00"), "BCD"),
        (hx("0002 6000 01 0000000001391234 0001 00"), "too short"),  # 2019 + sub-package, header cut short
    ],
)
def test_broken_frames_raise_bad_frame(content, detail):
    with pytest.raises(DecodeError) as ei:
        parse_frame(content)
    assert ei.value.reason == "bad_frame"
    assert detail in ei.value.detail
    assert ei.value.raw == content


def test_escape_and_unescape():
    assert escape(hx("30 7e 08 7d 55")) == hx("30 7d02 08 7d01 55")
    assert unescape(hx("30 7d02 08 7d01 55")) == hx("30 7e 08 7d 55")


# --- the deframer -----------------------------------------------------------------------

HEARTBEAT_WIRE = hx("7e 0002 0000 013912345678 0001 33 7e")


def test_deframer_fed_one_byte_at_a_time():
    deframer = Deframer()
    frames = []
    for byte in LOCATION_WIRE + HEARTBEAT_WIRE:
        frames += deframer.feed(bytes([byte]))
    assert frames == [between_delimiters(LOCATION_WIRE), between_delimiters(HEARTBEAT_WIRE)]
    assert parse_frame(frames[1]).checksum_ok
    assert deframer.discarded_bytes == 0


def test_deframer_drops_and_counts_garbage_before_and_between_frames():
    deframer = Deframer()
    frames = deframer.feed(b"\x00GET /" + LOCATION_WIRE + b"\r\n\xff" + HEARTBEAT_WIRE + b"trailing")
    assert frames == [between_delimiters(LOCATION_WIRE), between_delimiters(HEARTBEAT_WIRE)]
    assert deframer.discarded_bytes == 6 + 3 + 8


def test_deframer_takes_back_to_back_delimiters_as_one_boundary():
    stream = HEARTBEAT_WIRE + HEARTBEAT_WIRE + b"\x7e\x7e\x7e" + LOCATION_WIRE
    assert Deframer().feed(stream) == [between_delimiters(HEARTBEAT_WIRE)] * 2 + [between_delimiters(LOCATION_WIRE)]


def test_deframer_discards_an_oversize_frame_and_recovers():
    deframer = Deframer(max_frame=64)
    frames = deframer.feed(b"\x7e" + b"\x11" * 100)
    frames += deframer.feed(b"\x22" * 5000 + b"\x7e" + HEARTBEAT_WIRE)
    assert frames == [between_delimiters(HEARTBEAT_WIRE)]
    assert (deframer.oversize_frames, deframer.discarded_bytes) == (1, 5100)
    assert deframer.buffered == 0  # nothing of the oversize frame kept


# --- locations ---------------------------------------------------------------------------


def test_south_west_and_unfixed_status_bits():
    # Status 0C: south, west, not positioned, ACC off; Buenos Aires.
    fix = parse_location(location(status="0000000c", lat="021002ca", lon="037ad518"), DEV, SHANGHAI)
    assert (fix.lat, fix.lon, fix.ignition, fix.valid) == (-34.603722, -58.381592, False, False)
    assert fix.flags == ["unfixed"]


def test_zero_position_alarm_and_caller_flags():
    fix = parse_location(location(lat="00000000", lon="00000000", alarm="00000001"), DEV, SHANGHAI, ["bad_checksum"])
    assert fix.valid is False
    assert fix.flags == ["bad_checksum", "zero_position", "alarm:00000001"]


def test_time_zone_is_the_terminals_and_offset_follows_it():
    utc3 = timezone(timedelta(hours=3))
    fix = parse_location(location(stamp="260101001500"), DEV, utc3)
    assert (fix.time, fix.utc_offset_min) == (datetime(2025, 12, 31, 21, 15, tzinfo=UTC), 180)


@pytest.mark.parametrize("stamp", ["261327030000", "260230120000", "261127250000", "26112703000a", "000101000000"])
def test_impossible_or_non_bcd_time_is_bad_time(stamp):
    with pytest.raises(DecodeError) as ei:
        parse_location(location(stamp=stamp), DEV, SHANGHAI)
    assert ei.value.reason == "bad_time"


def test_truncated_additional_item_is_flagged_and_earlier_items_kept():
    fix = parse_location(location(extra="3101 07 0104 0000"), DEV, SHANGHAI)
    assert (fix.sats, fix.odometer_km, fix.flags) == (7, None, ["truncated_extra"])


def test_vendor_and_unused_items_are_skipped():
    fix = parse_location(location(extra="e003 010203 0202 0064 0302 01f4 3001 1f 0104 0000000a"), DEV, SHANGHAI)
    assert (fix.odometer_km, fix.flags) == (1.0, [])
    odd = parse_location(location(extra="0102 0001 3101 05").replace(hx("005a"), hx("0168")), DEV, SHANGHAI)
    assert (odd.odometer_km, odd.sats, odd.heading, odd.flags) == (None, 5, None, ["bad_heading", "bad_extra:01"])


@pytest.mark.parametrize(
    "body, reason",
    [
        (location()[:27], "bad_body"),
        (location(lat="05f5e101"), "out_of_range"),  # 100.000001 degrees
    ],
)
def test_short_or_off_globe_location_raises(body, reason):
    with pytest.raises(DecodeError) as ei:
        parse_location(body, DEV, SHANGHAI)
    assert ei.value.reason == reason


def test_same_report_twice_gives_the_same_key_and_another_time_another():
    first = parse_location(location(), DEV, SHANGHAI)
    assert parse_location(location(), DEV, SHANGHAI).key == first.key
    assert parse_location(location(stamp="261127030001"), DEV, SHANGHAI).key != first.key


# --- batches -------------------------------------------------------------------------------


def test_batch_with_a_truncated_third_item_gives_two_fixes_and_one_reject():
    body = hx(
        "0003 01"
        " 001c 00000000 00000003 01dc89d0 073d8aa5 000a 01f4 005a 261127030000"
        " 001c 00000000 00000003 0157faf8 06cc6289 0000 0000 0000 261127030030"
        " 001c 00000000 00000003 0157"
    )
    out = parse_batch(body, DEV, SHANGHAI)
    assert [(f.lat, f.lon) for f in out.events] == [(31.230416, 121.473701), (22.543096, 114.057865)]
    assert all(f.flags == ["blind_area"] for f in out.events)
    assert [r.reason for r in out.rejects] == ["truncated"]
    assert out.rejects[0].raw == hx("00000000 00000003 0157")


def test_batch_bad_item_is_rejected_and_the_rest_decode():
    good = location()
    bad = location(stamp="261327030000")
    body = struct.pack(">HB", 3, 0) + b"".join(struct.pack(">H", len(i)) + i for i in (good, bad, good))
    out = parse_batch(body, DEV, SHANGHAI, ["bad_length"])
    assert len(out.events) == 2 and out.events[0].flags == ["bad_length"]
    assert [(r.reason, r.raw) for r in out.rejects] == [("bad_time", bad)]
    assert "item 1" in out.rejects[0].detail


def test_batch_with_fewer_items_than_counted_or_bytes_left_over():
    good = location()
    item = struct.pack(">H", len(good)) + good
    short = parse_batch(struct.pack(">HB", 2, 0) + item, DEV, SHANGHAI)
    assert (len(short.events), [r.reason for r in short.rejects]) == (1, ["truncated"])
    extra = parse_batch(struct.pack(">HB", 1, 0) + item + b"\x00", DEV, SHANGHAI)
    assert (len(extra.events), [r.reason for r in extra.rejects]) == (1, ["bad_body"])


# --- registration and authentication --------------------------------------------------------

REGISTER_2013 = hx("002c 012c 4142434445 4d31" + "00" * 18 + " 54303030303031 01 d4c1423132333435")


def test_register_2013_body():
    assert parse_register(REGISTER_2013, 2013) == Registration(44, 300, "ABCDE", "M1", "T000001", 1, "粤B12345")


def test_register_2019_body():
    body = hx("002c 012c" + "41" * 11 + "4d32" + "00" * 28 + "54" * 30 + "02" + "4c47424838")
    assert parse_register(body, 2019) == Registration(44, 300, "A" * 11, "M2", "T" * 30, 2, "LGBH8")


def test_register_2011_body_and_2013_body_under_a_2019_header():
    body = hx("0001 0002 4142434445 4d4f44454c3038 00 54303030303031 00")
    assert parse_register(body, 2013) == Registration(1, 2, "ABCDE", "MODEL08", "T000001", 0, "")
    assert parse_register(REGISTER_2013, 2019).plate == "粤B12345"


def test_register_too_short_raises():
    with pytest.raises(DecodeError) as ei:
        parse_register(hx("002c 012c 41"), 2013)
    assert ei.value.reason == "bad_body"


def test_auth_bodies():
    assert parse_auth(b"AUTH1234", 2013) == "AUTH1234"
    body_2019 = b"\x08AUTH1234" + b"860000000000001" + b"SIM-1.0".ljust(20, b"\x00")
    assert parse_auth(body_2019, 2019) == "AUTH1234"
    with pytest.raises(DecodeError) as ei:
        parse_auth(b"", 2013)
    assert ei.value.reason == "bad_body"


# --- replies -----------------------------------------------------------------------------


def test_general_response_is_byte_exact_and_escapes_the_reply_serial():
    request = parse_frame(between_delimiters(LOCATION_WIRE))
    assert general_response(request, 1) == hx("7e 8001 0005 013912345678 0001 007d02 0200 00 c9 7e")


def test_general_response_mirrors_2019_and_ambiguous_headers():
    full = parse_frame(hx("0002 4000 01 00000000013912345678 0001 72"))
    assert general_response(full, 7) == hx("7e 8001 4005 01 00000000013912345678 0007 0001 0002 00 f1 7e")
    short_phone = parse_frame(hx("0002 4000 01 013912345678 0002 71"))
    assert general_response(short_phone, 8) == hx("7e 8001 4005 01 013912345678 0008 0002 0002 00 fd 7e")


def test_register_response_is_byte_exact_with_and_without_code():
    request = parse_frame(between_delimiters(build_frame(0x0100, "13912345678", 0x10, REGISTER_2013)))
    assert register_response(request, 2, 0, "AUTH1234") == hx(
        "7e 8100 000b 013912345678 0002 0010 00 4155544831323334 a4 7e"
    )
    request.serial = 0x11
    assert register_response(request, 3, jt808.TERMINAL_TAKEN, "ignored") == hx(
        "7e 8100 0003 013912345678 0003 0011 03 a3 7e"
    )


# --- properties ----------------------------------------------------------------------------


def _only_decode_errors(fn, payload: bytes) -> None:
    try:
        fn(payload)
    except DecodeError as exc:  # anything else fails the test
        assert isinstance(exc.raw, bytes)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_decode_error(payload):
    _only_decode_errors(parse_frame, payload)
    _only_decode_errors(lambda p: parse_location(p, DEV, SHANGHAI), payload)
    _only_decode_errors(lambda p: parse_register(p, 2013), payload)
    _only_decode_errors(lambda p: parse_register(p, 2019), payload)
    _only_decode_errors(lambda p: parse_auth(p, 2013), payload)
    _only_decode_errors(lambda p: parse_auth(p, 2019), payload)
    only_decode_errors(lambda p: parse_batch(p, DEV, SHANGHAI), payload)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=28, max_size=80), st.sampled_from([b"\x26\x11\x27\x03\x00\x00", b"\x00\x01\x01\x00\x00\x00"]))
def test_location_shaped_bytes_raise_only_decode_error(noise, stamp):
    # Random position/status words with a plausible time, so the later checks are reached too.
    body = noise[:22] + stamp + noise[28:]
    _only_decode_errors(lambda p: parse_location(p, DEV, SHANGHAI), body)
    only_decode_errors(lambda p: parse_batch(p, DEV, SHANGHAI), struct.pack(">HBH", 1, 1, len(body)) + body)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=8), st.integers(min_value=16, max_value=64))
def test_deframer_never_raises_and_output_is_bounded(chunks, cap):
    deframer = Deframer(max_frame=cap)
    fed = 0
    out_bytes = 0
    for chunk in chunks:
        for content in deframer.feed(chunk):
            assert content and b"\x7e" not in content and len(content) <= cap
            out_bytes += len(content)
        fed += len(chunk)
    assert out_bytes + deframer.discarded_bytes + deframer.buffered <= fed


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=1, max_value=40), max_size=20))
def test_deframer_output_does_not_depend_on_how_the_stream_is_split(stream, cuts):
    whole = Deframer().feed(stream)
    pieces, pos = [], 0
    deframer = Deframer()
    for cut in cuts:
        pieces += deframer.feed(stream[pos : pos + cut])
        pos += cut
    pieces += deframer.feed(stream[pos:])
    assert pieces == whole


@st.composite
def frames(draw):
    version = draw(st.sampled_from([2013, 2019]))
    digits = 12 if version == 2013 else 20
    phone = draw(st.text(alphabet="0123456789", min_size=1, max_size=digits))
    sub = draw(st.none() | st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)))
    return (
        draw(st.integers(0, 0xFFFF)),
        phone,
        draw(st.integers(0, 0xFFFF)),
        draw(st.binary(max_size=jt808.MAX_BODY)),
        version,
        draw(st.integers(0, 255)),
        sub,
    )


@settings(max_examples=300, deadline=None)
@given(frames(), st.binary(max_size=20).filter(lambda b: b"\x7e" not in b))
def test_build_deframe_parse_round_trips(spec, garbage):
    msg_id, phone, serial, body, version, protocol_version, sub = spec
    wire = build_frame(msg_id, phone, serial, body, version, protocol_version, sub)
    assert wire.count(b"\x7e") == 2
    contents = Deframer().feed(garbage + wire)
    assert len(contents) == 1
    frame = parse_frame(contents[0])
    assert (frame.msg_id, frame.serial, frame.body, frame.version, frame.sub_package) == (
        msg_id,
        serial,
        body,
        version,
        sub,
    )
    assert frame.phone == (phone.lstrip("0") or "0")
    assert frame.protocol_version == (protocol_version if version == 2019 else None)
    assert frame.checksum_ok and frame.length_ok
