from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.events import Punch
from gateway.devices.attlog import decode, encode_line
from gateway.devices.errors import DecodeError
from tests.devices.codec_checks import only_decode_errors

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = UTC
DEV = "att-01"
VECTORS = Path(__file__).parents[1] / "vectors" / "attlog.txt"


def vector_payload() -> bytes:
    # The vector file annotates its lines with '#' comments; a terminal never sends those.
    lines = VECTORS.read_bytes().split(b"\n")
    return b"\n".join(line for line in lines if line.strip() and not line.startswith(b"#")) + b"\n"


def dec(text: str, **kwargs):
    return decode(text.encode(), DEV, kwargs.pop("tz", SHANGHAI), **kwargs)


def one_event(line: str, **kwargs) -> Punch:
    out = dec(line, **kwargs)
    assert out.rejects == [], [(r.reason, r.detail) for r in out.rejects]
    assert len(out.events) == 1
    return out.events[0]


def one_reject(line: str) -> DecodeError:
    out = dec(line)
    assert out.events == []
    assert len(out.rejects) == 1
    return out.rejects[0]


GOOD = "101\t2025-08-27 08:57:49\t0\t1\t0\t0"


# --- shared vectors ------------------------------------------------------------------


def test_vector_file_decodes_without_rejects():
    out = decode(vector_payload(), DEV, SHANGHAI)
    assert out.rejects == []
    assert [p.user for p in out.events] == ["101", "11", "205"]


@pytest.mark.parametrize(
    "pin, utc, direction, verify, status, verify_code",
    [
        # 6 fields
        ("101", datetime(2025, 8, 27, 0, 57, 49, tzinfo=UTC), "in", "fingerprint", 0, 1),
        # 10 fields (newer firmware)
        ("11", datetime(2025, 8, 27, 2, 57, 49, tzinfo=UTC), "out", "palm", 1, 25),
        # 7 fields, status 255 undefined
        ("205", datetime(2025, 8, 27, 4, 1, 2, tzinfo=UTC), "unknown", "face", 255, 15),
    ],
)
def test_vector_lines_give_expected_punches(pin, utc, direction, verify, status, verify_code):
    by_pin = {p.user: p for p in decode(vector_payload(), DEV, SHANGHAI).events}
    p = by_pin[pin]
    assert (p.time, p.direction, p.verify, p.status_code, p.verify_code) == (
        utc,
        direction,
        verify,
        status,
        verify_code,
    )
    assert (p.utc_offset_min, p.workcode, p.source, p.device_id) == (480, "0", "attlog", DEV)


# --- fields --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, direction",
    [
        (0, "in"),
        (1, "out"),
        (2, "out"),
        (3, "in"),
        (4, "in"),
        (5, "out"),
        (6, "unknown"),
        (255, "unknown"),
    ],
)
def test_status_maps_to_direction(status, direction):
    ev = one_event(f"7\t2025-08-27 08:00:00\t{status}\t1\t0\t0")
    assert (ev.direction, ev.status_code) == (direction, status)


@pytest.mark.parametrize(
    "code, verify",
    [
        (0, "password"),
        (1, "fingerprint"),
        (2, "card"),
        (15, "face"),
        (25, "palm"),
        (3, "other:3"),
        (200, "other:200"),
    ],
)
def test_default_verify_convention(code, verify):
    ev = one_event(f"7\t2025-08-27 08:00:00\t0\t{code}\t0\t0")
    assert (ev.verify, ev.verify_code) == (verify, code)


def test_verify_map_overrides_the_default_convention():
    other_family = {1: "fingerprint", 2: "password", 3: "card"}
    ev = one_event("7\t2025-08-27 08:00:00\t0\t3\t0\t0", verify_map=other_family)
    assert (ev.verify, ev.verify_code) == ("card", 3)
    assert one_event("7\t2025-08-27 08:00:00\t0\t15", verify_map=other_family).verify == "other:15"


def test_four_fields_are_enough_and_workcode_is_none():
    ev = one_event("7\t2025-08-27 08:00:00\t0\t1")
    assert ev.workcode is None


def test_empty_workcode_is_none_and_a_set_one_is_kept():
    assert one_event("7\t2025-08-27 08:00:00\t0\t1\t\t0").workcode is None
    assert one_event("7\t2025-08-27 08:00:00\t0\t1\t42\t0").workcode == "42"


def test_source_is_as_given():
    assert one_event(GOOD, source="zk-adms").source == "zk-adms"


def test_local_time_follows_dst_of_the_device_zone():
    ev = one_event("7\t2025-07-01 09:00:00\t0\t1", tz=ZoneInfo("America/New_York"))
    assert ev.time == datetime(2025, 7, 1, 13, 0, 0, tzinfo=UTC)
    assert ev.utc_offset_min == -240


# --- whole-payload reasons -------------------------------------------------------------


def test_invalid_utf8_raises_bad_utf8():
    payload = b"101\t2025-08-27 08:57:49\t0\t1\t0\t0\n\xff\xfe\n"
    with pytest.raises(DecodeError) as ei:
        decode(payload, DEV, SHANGHAI)
    assert ei.value.reason == "bad_utf8"
    assert ei.value.raw == payload


@pytest.mark.parametrize("payload", [b"", b"\n", b"\r\n\r\n", b"  \n\t\n"])
def test_payload_without_a_nonblank_line_raises_empty(payload):
    with pytest.raises(DecodeError) as ei:
        decode(payload, DEV, SHANGHAI)
    assert ei.value.reason == "empty"


# --- per-line reasons ----------------------------------------------------------------


@pytest.mark.parametrize("line, count", [("101", 1), ("101\t2025-08-27 08:57:49\t0", 3)])
def test_line_with_fewer_than_four_fields_is_bad_line(line, count):
    rej = one_reject(line)
    assert rej.reason == "bad_line"
    assert str(count) in rej.detail
    assert rej.raw == line.encode()


@pytest.mark.parametrize("pin", ["", "   "])
def test_empty_pin_is_missing_field(pin):
    rej = one_reject(f"{pin}\t2025-08-27 08:57:49\t0\t1\t0\t0")
    assert rej.reason == "missing_field"
    assert "PIN" in rej.detail


@pytest.mark.parametrize(
    "stamp",
    [
        "2025/08/27 08:57:49",
        "2025-08-27T08:57:49",
        "2025-08-27 08:57",
        "2025-08-27 08:57:49.5",
        " 2025-08-27 08:57:49",
        "2025-8-27 08:57:49",
        "２０２５-08-27 08:57:49",
        "",
    ],
)
def test_time_not_in_the_exact_form_is_bad_time(stamp):
    assert one_reject(f"101\t{stamp}\t0\t1\t0\t0").reason == "bad_time"


@pytest.mark.parametrize(
    "stamp",
    [
        "2025-02-30 08:00:00",
        "2025-13-01 08:00:00",
        "2025-08-27 24:00:00",
        "1999-12-31 23:59:59",
        "0001-01-01 00:00:00",
        "9999-12-31 23:59:59",
    ],
)
def test_impossible_or_out_of_range_time_is_bad_time(stamp):
    rej = one_reject(f"101\t{stamp}\t0\t1\t0\t0")
    assert rej.reason == "bad_time"
    assert rej.detail


@pytest.mark.parametrize(
    "status, verify",
    [
        ("x", "1"),
        ("-1", "1"),
        ("", "1"),
        ("0", "fp"),
        ("0", "+1"),
        ("0", "1.0"),
        ("0", "9" * 5000),
    ],
)
def test_status_or_verify_not_a_nonnegative_integer_is_bad_value(status, verify):
    rej = one_reject(f"101\t2025-08-27 08:57:49\t{status}\t{verify}\t0\t0")
    assert rej.reason == "bad_value"


# --- batches ----------------------------------------------------------------------


def test_batch_keeps_good_lines_and_rejects_each_bad_line():
    text = "\n".join(
        [
            GOOD,
            "102\t2025-08-27 08:58:00",  # bad_line
            "103\t2025-08-27 08:59:00\t1\t2\t0\t0",
            "\t2025-08-27 09:00:00\t0\t1\t0\t0",  # missing_field
            "104\tyesterday\t0\t1\t0\t0",  # bad_time
            "105\t2025-08-27 09:01:00\tin\t1\t0\t0",  # bad_value
            "",
            "106\t2025-08-27 09:02:00\t0\t15\t0\t0",
        ]
    )
    out = dec(text)
    assert [p.user for p in out.events] == ["101", "103", "106"]
    assert [r.reason for r in out.rejects] == ["bad_line", "missing_field", "bad_time", "bad_value"]
    assert out.rejects[3].raw == b"105\t2025-08-27 09:01:00\tin\t1\t0\t0"


def test_crlf_line_ends_are_accepted():
    payload = vector_payload().replace(b"\n", b"\r\n")
    out = decode(payload, DEV, SHANGHAI)
    assert out.rejects == []
    assert [(p.user, p.workcode) for p in out.events] == [("101", "0"), ("11", "0"), ("205", "0")]


def test_four_field_line_with_crlf_keeps_verify_clean():
    ev = one_event("7\t2025-08-27 08:00:00\t0\t1\r\n")
    assert ev.verify_code == 1


# --- keys --------------------------------------------------------------------------


def test_same_payload_twice_gives_the_same_keys():
    first = [p.key for p in decode(vector_payload(), DEV, SHANGHAI).events]
    second = [p.key for p in decode(vector_payload(), DEV, SHANGHAI).events]
    assert first == second
    assert len(set(first)) == 3


@pytest.mark.parametrize(
    "line",
    [
        "102\t2025-08-27 08:57:49\t0\t1\t0\t0",  # another user
        "101\t2025-08-27 08:57:50\t0\t1\t0\t0",  # another second
        "101\t2025-08-27 08:57:49\t1\t1\t0\t0",  # another status
    ],
)
def test_key_changes_with_user_time_or_status(line):
    assert one_event(line).key != one_event(GOOD).key


def test_key_ignores_verify_and_workcode():
    assert one_event("101\t2025-08-27 08:57:49\t0\t15\t9\t0").key == one_event(GOOD).key


# --- encode_line ----------------------------------------------------------------------


def test_encode_line_builds_six_tab_separated_fields():
    line = encode_line("101", datetime(2025, 8, 27, 8, 57, 49), 0, 1)
    assert line == "101\t2025-08-27 08:57:49\t0\t1\t0\t0"


PINS = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    pin=PINS,
    local=st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2199, 12, 30)),
    status=st.integers(min_value=0, max_value=255),
    verify=st.integers(min_value=0, max_value=255),
    workcode=st.integers(min_value=0, max_value=99999).map(str),
)
def test_encode_line_round_trips_through_decode(pin, local, status, verify, workcode):
    local = local.replace(microsecond=0)
    ev = one_event(encode_line(pin, local, status, verify, workcode) + "\r\n")
    assert ev.user == pin
    assert ev.time == local.replace(tzinfo=SHANGHAI).astimezone(UTC)
    assert ev.time.astimezone(SHANGHAI).replace(tzinfo=None) == local
    assert (ev.status_code, ev.verify_code, ev.workcode) == (status, verify, workcode)


# --- properties ----------------------------------------------------------------------


def _only_decode_errors(payload: bytes) -> None:
    only_decode_errors(lambda p: decode(p, DEV, SHANGHAI), payload)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_decode_error(payload):
    _only_decode_errors(payload)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text(alphabet="0123456789-: \t\r\nabc\u0660", max_size=60), max_size=5))
def test_arbitrary_text_lines_never_raise_anything_but_decode_error(lines):
    _only_decode_errors("\n".join(lines).encode())


def test_every_prefix_of_a_valid_payload_raises_only_decode_error():
    payload = vector_payload()
    for end in range(len(payload)):
        _only_decode_errors(payload[:end])
