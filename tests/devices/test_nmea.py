from __future__ import annotations

import itertools
import os
import select
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from functools import reduce
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_stubs.nmea_receiver import NmeaReceiver, along, epoch_sentences
from gateway.core.events import Fix, idempotency_key
from gateway.core.timeutil import to_epoch_ms
from gateway.devices.errors import DecodeError
from gateway.devices.nmea import NmeaReader, checksum
from tests.devices.codec_checks import only_decode_errors

UTC = UTC
DEV = "gps-01"
RECEIVED = datetime(2025, 8, 27, 8, 30, 16, tzinfo=UTC)
VECTORS = Path(__file__).parents[1] / "vectors" / "nmea.txt"

# Checksums below were worked out by hand (XOR of the characters between $ and *)
# and are checked again by test_literal_checksums_are_the_xor_between_dollar_and_star.
SHANGHAI_RMC = "$GNRMC,083015.00,A,3113.98760,N,12128.43210,E,12.345,87.60,270825,,,A*71"
SHANGHAI_GGA = "$GNGGA,083015.00,3113.98760,N,12128.43210,E,1,12,0.78,14.3,M,8.9,M,,*4A"
SHANGHAI_VTG = "$GNVTG,87.60,T,,M,12.345,N,22.863,K,A*16"
BEIDOU_RMC = "$BDRMC,083016.00,A,3113.99100,N,12128.44050,E,12.300,87.50,270825,,,A*7F"
BEIDOU_GGA = "$BDGGA,083016.00,3113.99100,N,12128.44050,E,1,07,1.10,14.1,M,8.9,M,,*4F"
EMPTY_RMC = "$GNRMC,083017.00,A,3113.98760,N,12128.43210,E,,,270825,,,A*4B"
EMPTY_GGA = "$GNGGA,083017.00,3113.98760,N,12128.43210,E,1,,,,M,,M,,*6D"
ZERO_RMC = "$GNRMC,083018.00,A,0000.00000,N,00000.00000,E,0.0,,270825,,,A*66"
BA_RMC = "$GPRMC,221004.50,A,3436.22200,S,05822.89600,W,0.000,,311224,,,A*72"
BA_GGA = "$GPGGA,221004.50,3436.22200,S,05822.89600,W,2,09,1.4,-3.5,M,14.2,M,,*4A"
BA_NOFIX_RMC = "$GPRMC,221005.00,V,,,,,,,311224,,,N*7E"
BA_NOFIX_GGA = "$GPGGA,221005.00,,,,,0,00,,,M,,M,,*4C"
BA_STALE_RMC = "$GPRMC,221006.00,V,3436.23000,S,05822.90000,W,,,311224,,,N*4E"
LAST_RMC_OF_YEAR = "$GNRMC,235959.00,A,3113.98760,N,12128.43210,E,0.000,,311224,,,A*64"
FIRST_GGA_OF_YEAR = "$GNGGA,000000.00,3113.98760,N,12128.43210,E,1,10,0.9,15.0,M,,M,,*5C"
LITERALS = [
    SHANGHAI_RMC,
    SHANGHAI_GGA,
    SHANGHAI_VTG,
    BEIDOU_RMC,
    BEIDOU_GGA,
    EMPTY_RMC,
    EMPTY_GGA,
    ZERO_RMC,
    BA_RMC,
    BA_GGA,
    BA_NOFIX_RMC,
    BA_NOFIX_GGA,
    BA_STALE_RMC,
    LAST_RMC_OF_YEAR,
    FIRST_GGA_OF_YEAR,
]


def xor(body: str) -> str:
    return f"{reduce(lambda acc, char: acc ^ char, body.encode('latin-1'), 0):02X}"


def framed(body: str) -> str:
    return f"${body}*{xor(body)}"


def read(*sentences: str) -> tuple[list[Fix], list[DecodeError]]:
    reader = NmeaReader(DEV)
    out = reader.feed("".join(s + "\r\n" for s in sentences).encode("latin-1"), RECEIVED)
    tail = reader.flush()
    return out.events + tail.events, out.rejects + tail.rejects


def one_fix(*sentences: str) -> Fix:
    fixes, rejects = read(*sentences)
    assert rejects == [], [(r.reason, r.detail) for r in rejects]
    assert len(fixes) == 1, fixes
    return fixes[0]


def one_reject(*sentences: str) -> DecodeError:
    fixes, rejects = read(*sentences)
    assert fixes == []
    assert len(rejects) == 1, [(r.reason, r.detail) for r in rejects]
    return rejects[0]


def degrees(whole: int, minutes: float) -> float:
    return whole + minutes / 60


# --- checksums and framing -----------------------------------------------------------


@pytest.mark.parametrize("sentence", LITERALS)
def test_literal_checksums_are_the_xor_between_dollar_and_star(sentence):
    body, given_sum = sentence[1:].split("*")
    assert xor(body) == given_sum
    assert checksum(body.encode()) == int(given_sum, 16)


@pytest.mark.parametrize(
    "sentence, reason",
    [
        (SHANGHAI_RMC[:-2] + "70", "bad_checksum"),
        (SHANGHAI_RMC.replace("3113.98760", "3113.98761"), "bad_checksum"),  # one flipped digit
        (SHANGHAI_RMC[:-3] + "*7", "bad_checksum"),
        (SHANGHAI_RMC[:-3] + "*7G", "bad_checksum"),
        (SHANGHAI_RMC[:-3] + "*711", "bad_checksum"),
        (SHANGHAI_RMC[:-3], "missing_checksum"),
    ],
)
def test_checksum_problems_drop_the_sentence_with_a_reason(sentence, reason):
    reject = one_reject(sentence)
    assert (reject.reason, reject.raw) == (reason, sentence.encode())


def test_lowercase_hex_checksum_is_accepted():
    assert one_fix(SHANGHAI_RMC, SHANGHAI_GGA.replace("*4A", "*4a")).sats == 12


def test_unknown_sentence_types_and_line_noise_are_ignored_silently():
    fixes, rejects = read(
        framed("GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00"),
        framed("GNGSA,A,3,80,71,73,79,69,,,,,,,,1.83,1.09,1.47"),
        framed("GPTXT,01,01,02,ANTSTATUS=OK"),
        framed("PUBX,00,081350.00,4717.113210,N,00833.915187,E"),
        "A,3113.98760,N,12128.43210,E,12.345,87.60,270825,,,A*71",  # a port opened mid-sentence
        "",
    )
    assert (fixes, rejects) == ([], [])


def test_a_sentence_cut_off_by_the_next_is_rejected_and_the_next_survives():
    cut = SHANGHAI_RMC[:30] + SHANGHAI_RMC
    fixes, rejects = read(cut, SHANGHAI_GGA)
    assert [r.reason for r in rejects] == ["missing_checksum"]
    assert len(fixes) == 1 and fixes[0].speed_kmh is not None


# --- merging an epoch ----------------------------------------------------------------


def test_rmc_gga_and_vtg_of_one_time_make_one_fix():
    fix = one_fix(SHANGHAI_RMC, SHANGHAI_VTG, SHANGHAI_GGA)
    when = datetime(2025, 8, 27, 8, 30, 15, tzinfo=UTC)
    lat, lon = degrees(31, 13.9876), degrees(121, 28.4321)
    assert fix.time == when and fix.utc_offset_min == 0
    assert fix.lat == pytest.approx(lat, abs=1e-12) and fix.lon == pytest.approx(lon, abs=1e-12)
    assert fix.speed_kmh == pytest.approx(12.345 * 1.852)  # RMC knots, not VTG km/h
    assert (fix.heading, fix.alt, fix.sats, fix.hdop) == (87.6, 14.3, 12, 0.78)
    assert (fix.valid, fix.flags, fix.source, fix.device_id) == (True, [], "nmea", DEV)
    assert fix.key == idempotency_key("fix", DEV, to_epoch_ms(when), fix.lat, fix.lon)


def test_emission_when_rmc_and_gga_are_in_else_at_the_next_time_else_at_flush():
    reader = NmeaReader(DEV)

    def feed(sentence: str) -> list[Fix]:
        return reader.feed((sentence + "\r\n").encode(), RECEIVED).events

    assert feed(SHANGHAI_RMC) == []
    assert [f.time.second for f in feed(SHANGHAI_GGA)] == [15]  # complete: out at once
    assert feed(BEIDOU_RMC) == []
    only_rmc = feed(EMPTY_RMC)  # another time: the RMC-only epoch before it is done
    assert [(f.time.second, f.alt, f.sats) for f in only_rmc] == [(16, None, None)]
    assert [f.time.second for f in reader.flush().events] == [17]
    assert reader.flush().events == []


def test_late_sentence_of_an_emitted_epoch_is_ignored():
    fixes, rejects = read(SHANGHAI_RMC, SHANGHAI_GGA, SHANGHAI_VTG, SHANGHAI_GGA)
    assert len(fixes) == 1 and rejects == []


@pytest.mark.parametrize("mode, speed, course", [("A", 30.0, 45.0), ("N", None, None)])
def test_vtg_fills_speed_and_course_when_rmc_has_none_unless_it_says_invalid(mode, speed, course):
    fix = one_fix(EMPTY_RMC, framed(f"GNVTG,45.00,T,,M,,N,30.000,K,{mode}"), EMPTY_GGA)
    assert (fix.speed_kmh, fix.heading) == (speed, course)


def test_beidou_talker_is_read_like_any_other():
    fix = one_fix(BEIDOU_RMC, BEIDOU_GGA)
    assert (fix.sats, fix.hdop, fix.alt) == (7, 1.1, 14.1)
    assert fix.lat == pytest.approx(degrees(31, 13.991), abs=1e-12)


def test_southern_and_western_hemispheres_are_negative():
    fix = one_fix(BA_RMC, BA_GGA)
    assert fix.lat == pytest.approx(-degrees(34, 36.222), abs=1e-12)
    assert fix.lon == pytest.approx(-degrees(58, 22.896), abs=1e-12)
    assert fix.time == datetime(2024, 12, 31, 22, 10, 4, 500_000, tzinfo=UTC)
    assert (fix.alt, fix.speed_kmh, fix.heading) == (-3.5, 0.0, None)


def test_empty_fields_are_unknown_not_zero():
    fix = one_fix(EMPTY_RMC, EMPTY_GGA)
    assert (fix.speed_kmh, fix.heading, fix.alt, fix.sats, fix.hdop) == (None, None, None, None, None)
    assert fix.valid


MODE_N_RMC = "GNRMC,083015.00,A,3113.98760,N,12128.43210,E,12.345,87.60,270825,,,N"


@pytest.mark.parametrize(
    "sentences, valid, flags",
    [
        ([ZERO_RMC], False, ["zero_position"]),
        ([framed(MODE_N_RMC[:-1] + "E")], True, ["estimated"]),  # dead reckoning
        (
            [SHANGHAI_RMC, framed("GNGGA,083015.00,3113.98760,N,12128.43210,E,0,03,9.9,14.3,M,8.9,M,,")],
            False,
            ["no_fix"],
        ),
        # mode N overrides status A; the epoch takes the date of the good one before it
        ([EMPTY_RMC, EMPTY_GGA, framed(MODE_N_RMC.replace("083015", "083019"))], False, ["no_fix"]),
    ],
)
def test_validity_and_flags(sentences, valid, flags):
    fixes, rejects = read(*sentences)
    assert rejects == []
    assert (fixes[-1].valid, fixes[-1].flags) == (valid, flags)


# --- no fix and dates ------------------------------------------------------------------


@pytest.mark.parametrize(
    "sentences, fixes",
    [
        ([BA_RMC, BA_GGA, BA_NOFIX_RMC, BA_NOFIX_GGA], 1),  # no fix, no position: nothing after the good one
        ([BA_STALE_RMC], 0),  # no fix is never dated from its own RMC
        ([SHANGHAI_GGA], 0),  # GGA alone, no RMC ever: no date
    ],
)
def test_epochs_that_yield_nothing(sentences, fixes):
    out, rejects = read(*sentences)
    assert (len(out), rejects) == (fixes, [])


def test_status_v_with_a_position_is_an_invalid_no_fix_on_the_borrowed_date():
    fixes, rejects = read(BA_RMC, BA_GGA, BA_NOFIX_RMC, BA_NOFIX_GGA, BA_STALE_RMC)
    assert rejects == []
    stale = fixes[-1]
    assert (stale.valid, stale.flags) == (False, ["no_fix"])
    assert stale.time == datetime(2024, 12, 31, 22, 10, 6, tzinfo=UTC)
    assert stale.lat == pytest.approx(-degrees(34, 36.23), abs=1e-12)


def test_gga_only_epoch_borrows_the_last_date_across_midnight():
    fixes, _ = read(LAST_RMC_OF_YEAR, FIRST_GGA_OF_YEAR)
    assert [f.time for f in fixes] == [
        datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC),
    ]
    assert (fixes[1].sats, fixes[1].speed_kmh) == (10, None)


def test_a_date_is_not_borrowed_after_twelve_hours_of_silence():
    reader = NmeaReader(DEV)
    reader.feed((LAST_RMC_OF_YEAR + "\r\n").encode(), RECEIVED)
    assert len(reader.flush().events) == 1
    later = reader.feed((FIRST_GGA_OF_YEAR + "\r\n").encode(), RECEIVED + timedelta(hours=13))
    assert later.events + reader.flush().events == []


@pytest.mark.parametrize(
    "ddmmyy, day",
    [
        ("311224", datetime(2024, 12, 31)),
        ("010100", datetime(2000, 1, 1)),
        ("290224", datetime(2024, 2, 29)),
        ("150399", datetime(2099, 3, 15)),
    ],
)
def test_two_digit_year_is_read_as_2000_to_2099(ddmmyy, day):
    fix = one_fix(framed(f"GPRMC,120000,A,4807.038,N,01131.000,E,,,{ddmmyy},,"))
    assert fix.time == day.replace(hour=12, tzinfo=UTC)


# --- unreadable fields -----------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "GPRMC,250000.00,A,4807.038,N,01131.000,E,,,270825,,",  # hour 25
        "GPRMC,120000.00,A,4807.038,N,01131.000,E,,,300225,,",  # 30 February
        "GPRMC,120000.00,A,4807.038,N,01131.000,E,,,2708,,",  # short date
        "GPRMC,120000.00,A,4860.038,N,01131.000,E,,,270825,,",  # 60 minutes
        "GPRMC,120000.00,A,9100.000,N,01131.000,E,,,270825,,",  # latitude past the pole
        "GPRMC,120000.00,A,4807.038,X,01131.000,E,,,270825,,",  # hemisphere
        "GPRMC,120000.00,A,4807.038,N,,,,,270825,,",  # half a position
        "GPRMC,120000.00,Q,4807.038,N,01131.000,E,,,270825,,",  # status
        "GPRMC,120000.00,A,,,,,,,270825,,",  # fix without a position
        "GPRMC,120000.00,A,4807.038,N,01131.000,E,-1.0,,270825,,",  # negative speed
        "GPRMC,120000.00,A,4807.038,N,01131.000,E,1.0,361.0,270825,,",  # course
        "GPRMC,120000.00,A,4807.038,N,01131.000,E,nan,,270825,,",
        "GPGGA,120000.00,4807.038,N,01131.000,E,1,1e2,0.9,10,M,,M,,",  # satellites
        "GPGGA,120000.00,4807.038,N,01131.000,E,x,08,0.9,10,M,,M,,",  # quality
        "GPGGA,120000.00,4807.038,N,01131.000,E,1,08,0.9,1_0,M,,M,,",  # altitude
        "GPRMC,120000.00,A,4807.038,N,01131.000,E,,,270825,,\u00e9",  # non-ASCII under a good checksum
    ],
)
def test_unreadable_field_is_bad_sentence(body):
    reject = one_reject(framed(body))
    assert reject.reason == "bad_sentence"
    assert reject.raw == framed(body).encode("latin-1")
    assert not reject.detail.startswith("unexpected")


# --- the vector file --------------------------------------------------------------------


def vectors() -> list[str]:
    return [line for line in VECTORS.read_text().splitlines() if line.startswith("$")]


def test_vector_gga_gives_its_position_on_a_borrowed_date():
    dated = "$GPRMC,184352.00,A,1929.045,S,02410.506,E,,,150325,,,A*4C"
    fixes, rejects = read(dated, vectors()[0])
    gga = fixes[1]
    assert rejects == []
    assert gga.time == datetime(2025, 3, 15, 18, 43, 53, 70_000, tzinfo=UTC)
    assert (gga.lat, gga.lon) == (pytest.approx(-19.484083333), pytest.approx(24.1751))
    assert (gga.sats, gga.hdop, gga.alt) == (4, 2.6, 100.0)


def test_vector_no_fix_lines_yield_nothing_and_the_truncated_one_a_reason():
    _, no_fix_gga, rmc_v, rmc_a, truncated, vtg, _ = vectors()
    assert read(no_fix_gga, rmc_v, vtg) == ([], [])
    assert one_reject(truncated).reason == "missing_checksum"
    # The vector's 1994 comes out as 2094: two-digit years are read as 2000-2099.
    fix = one_fix(rmc_a, vtg)
    assert fix.time == datetime(2094, 3, 23, 12, 35, 19, tzinfo=UTC)
    assert (fix.speed_kmh, fix.heading) == (0.0, None)  # VTG knots 0.00, course unknown


def test_vector_rmc_with_mode_indicator():
    fix = one_fix(vectors()[-1])
    assert fix.time == datetime(2019, 4, 6, 23, 57, 24, 20_000, tzinfo=UTC)
    assert (fix.lat, fix.lon) == (pytest.approx(48.149963333), pytest.approx(11.584666667))
    assert (fix.speed_kmh, fix.heading, fix.valid) == (0.0, 0.0, True)


# --- chunking and memory --------------------------------------------------------------

SHANGHAI_T = datetime(2025, 8, 27, 8, 30, 15, tzinfo=UTC)
BA_T = datetime(2024, 12, 31, 22, 10, 4, 500_000, tzinfo=UTC)
STREAM = "".join(
    s + "\r\n"
    for s in [
        SHANGHAI_RMC,
        SHANGHAI_VTG,
        framed("GPGSV,1,1,01,03,03,111,00"),
        SHANGHAI_GGA,
        BEIDOU_RMC[:-2] + "00",
        BEIDOU_GGA,
        BA_RMC,
        BA_GGA,
        BA_NOFIX_RMC,
        BA_STALE_RMC,
    ]
).encode()


def decode_in_chunks(chunks: list[bytes]) -> tuple[list[tuple], list[tuple]]:
    reader = NmeaReader(DEV)
    fixes, rejects = [], []
    for chunk in [*chunks, None]:
        out = reader.flush() if chunk is None else reader.feed(chunk, RECEIVED)
        fixes += [astuple(f) for f in out.events]
        rejects += [(r.reason, r.raw) for r in out.rejects]
    return fixes, rejects


def test_splitting_the_stream_at_every_byte_gives_the_same_fixes():
    whole = decode_in_chunks([STREAM])
    assert [r[0] for r in whole[1]] == ["bad_checksum"]
    times_and_validity = [(f[1], f[11]) for f in whole[0]]  # astuple order: device_id, time, ..., valid
    assert times_and_validity == [
        (SHANGHAI_T, True),
        (SHANGHAI_T + timedelta(seconds=1), True),  # BeiDou GGA alone
        (BA_T, True),
        (BA_T + timedelta(seconds=1.5), False),
    ]
    for cut in range(len(STREAM) + 1):
        assert decode_in_chunks([STREAM[:cut], STREAM[cut:]]) == whole, cut


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunking_gives_the_same_fixes(cuts):
    bounds = [0, *sorted(cuts), len(STREAM)]
    assert decode_in_chunks([STREAM[a:b] for a, b in itertools.pairwise(bounds)]) == decode_in_chunks([STREAM])


def test_garbage_without_line_ends_is_capped_and_reported_once():
    reader = NmeaReader(DEV, max_line=200)
    rejects = []
    for _ in range(100):
        rejects += reader.feed(b"\xff$GARBAGE,no line end " * 7, RECEIVED).rejects
        assert reader.buffered_bytes <= 200
    assert [r.reason for r in rejects] == ["line_too_long"]
    out = reader.feed(("\r\n" + SHANGHAI_RMC + "\r\n" + SHANGHAI_GGA + "\r\n").encode(), RECEIVED)
    assert len(out.events) == 1


def test_sentence_right_after_garbage_in_one_chunk_survives():
    fixes, rejects = read("x" * 500 + SHANGHAI_RMC, SHANGHAI_GGA)
    assert [r.reason for r in rejects] == ["line_too_long"]
    assert len(fixes) == 1 and fixes[0].speed_kmh is not None


# --- properties ------------------------------------------------------------------------


def _feed_and_flush(reader: NmeaReader, payload: bytes):
    out = reader.feed(payload, RECEIVED)
    tail = reader.flush()
    out.events += tail.events
    out.rejects += tail.rejects
    assert all(type(e) is Fix for e in out.events)
    return out


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(payload):
    only_decode_errors(lambda p: _feed_and_flush(NmeaReader(DEV), p), payload)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([s.encode() for s in LITERALS] + [b"\r\n", b"$", b"*", b",", b"\xc3", b"\x00"]), max_size=30
    )
)
def test_shuffled_fragments_of_real_sentences_never_raise(parts):
    reader = NmeaReader(DEV)
    for part in parts:
        only_decode_errors(lambda p: reader.feed(p, RECEIVED), part)
    only_decode_errors(lambda _: _feed_and_flush(reader, b""), b"")


@settings(max_examples=300, deadline=None)
@given(
    when=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59)),
    lat=st.floats(min_value=-90, max_value=90),
    lon=st.floats(min_value=-180, max_value=180),
    speed=st.floats(min_value=0, max_value=500),
    course=st.floats(min_value=0, max_value=359.99),
    alt=st.floats(min_value=-400, max_value=9000),
    sats=st.integers(min_value=0, max_value=99),
    hdop=st.floats(min_value=0, max_value=50),
    talker=st.sampled_from(["GP", "GN", "BD", "GB", "GL", "GA"]),
)
def test_stub_sentences_round_trip_through_the_reader(when, lat, lon, speed, course, alt, sats, hdop, talker):
    when = when.replace(tzinfo=UTC)
    sentences = epoch_sentences(when, lat, lon, speed, course, alt, sats, hdop, talker=talker)
    assert [s[3:6] for s in sentences] == ["RMC", "VTG", "GGA"]
    for s in sentences:
        assert s.endswith("\r\n") and xor(s[1:-5]) == s[-4:-2]
    reader = NmeaReader(DEV)
    fixes = _feed_and_flush(reader, "".join(sentences).encode()).events
    assert len(fixes) == 1
    fix = fixes[0]
    assert fix.time == when.replace(microsecond=when.microsecond // 10_000 * 10_000)
    assert abs(fix.lat - lat) <= 1e-6 and abs(fix.lon - lon) <= 1e-6
    assert fix.speed_kmh == pytest.approx(speed, abs=1e-3)
    assert fix.heading == pytest.approx(course, abs=0.006)
    assert (fix.alt, fix.hdop, fix.sats) == (pytest.approx(alt, abs=0.006), pytest.approx(hdop, abs=0.006), sats)
    assert fix.valid == (not (fix.lat == 0 and fix.lon == 0))


# --- the simulated receiver on a real pty ----------------------------------------------

START = datetime(2025, 8, 27, 8, 0, 0, tzinfo=UTC)
DRIVE = along([(31.2304, 121.4737), (31.2404, 121.4737), (31.2404, 121.4837)], speed_kmh=36.0)


def drain(fd: int, reader: NmeaReader, chunk: int = 37) -> tuple[list[Fix], list[DecodeError]]:
    """Read whatever the pty holds, in small chunks, as the serial transport does."""
    fixes, rejects = [], []
    while select.select([fd], [], [], 0.5)[0]:
        out = reader.feed(os.read(fd, chunk), RECEIVED)
        fixes += out.events
        rejects += out.rejects
    return fixes, rejects


def test_stub_over_a_pty_pair_with_a_bad_checksum_no_fix_and_a_pulled_cable():
    master, slave = os.openpty()
    receiver = NmeaReceiver(slave, DRIVE, start=START, rate_hz=1.0)
    reader = NmeaReader(DEV)
    try:
        receiver.tick()
        receiver.tick()
        receiver.corrupt_next(1)  # epoch 2 loses its RMC (and with it the VTG's anchor)
        receiver.tick()
        receiver.lose_fix(2)  # epochs 3 and 4: status V, no position
        receiver.tick()
        receiver.tick()
        receiver.pull_cable()  # epochs 5 and 6 never reach the line
        receiver.tick()
        receiver.tick()
        receiver.plug_cable()
        receiver.tick()
        fixes, rejects = drain(master, reader)
        fixes += reader.flush().events
    finally:
        receiver.close()
        os.close(master)
    assert [r.reason for r in rejects] == ["bad_checksum"]
    assert [int((f.time - START).total_seconds()) for f in fixes] == [0, 1, 2, 7]
    assert all(f.valid and f.source == "nmea" for f in fixes)
    assert fixes[2].speed_kmh is None and fixes[2].sats == 9  # GGA alone, dated by epoch 1's RMC
    assert fixes[1].speed_kmh == pytest.approx(36.0, abs=0.5)
    assert fixes[1].heading == pytest.approx(0.0, abs=0.5)  # driving north
    assert fixes[3].lat > fixes[0].lat


def test_stub_writes_through_a_pyserial_port_path():
    master, slave = os.openpty()
    receiver = NmeaReceiver(os.ttyname(slave), DRIVE, start=START, talker="BD")
    reader = NmeaReader(DEV)
    try:
        sentences = receiver.tick()
        fixes, rejects = drain(master, reader, chunk=512)
    finally:
        receiver.close()
        os.close(slave)
        os.close(master)
    assert all(s.startswith("$BD") for s in sentences)
    assert rejects == [] and len(fixes) == 1
    assert (fixes[0].time, fixes[0].lat, fixes[0].lon) == (START, pytest.approx(31.2304), pytest.approx(121.4737))
