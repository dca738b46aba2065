from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.devices.errors import DecodeError
from gateway.devices.wiegand import FORMATS, Card, decode, encode, hex_value

# (facility range or None, number range) per format, from the formats' field widths.
RANGES = {
    "H10301": ((0, 255), (0, 65535)),
    "H10306": ((0, 65535), (0, 65535)),
    "C1000": ((0, 4095), (0, 2**20 - 1)),
    "H10302": (None, (0, 2**35 - 1)),
    "H10304": ((0, 65535), (0, 2**19 - 1)),
}


@st.composite
def cards(draw):
    name = draw(st.sampled_from(sorted(RANGES)))
    fc_range, cn_range = RANGES[name]
    facility = None if fc_range is None else draw(st.integers(*fc_range))
    return name, facility, draw(st.integers(*cn_range))


def value_of(data: bytes, bits: int) -> int:
    size = (bits + 7) // 8
    return int.from_bytes(data[:size], "big") >> (size * 8 - bits)


def bit(value: int, bits: int, position: int) -> int:
    return (value >> (bits - position)) & 1


def ones(value: int, bits: int, positions) -> int:
    return sum(bit(value, bits, p) for p in positions)


# FIELD_NOTES.md, "Wiegand card formats": FC 10 / CN 1093 = 0x14088B, OSDP data 05 02 22 C0, 26 bits.


def test_field_notes_example_decodes():
    card = decode(bytes.fromhex("050222C0"), 26)
    assert card == Card("H10301", 26, 10, 1093, bytes.fromhex("050222C0"), "0x14088B")


def test_field_notes_example_encodes():
    data, bits = encode("H10301", 10, 1093)
    assert (data, bits) == (bytes.fromhex("050222C0"), 26)
    assert value_of(data, bits) == 0x14088B


def test_bytes_like_input_and_ignored_padding():
    data = bytes.fromhex("050222C0")
    assert decode(bytearray(data), 26).number == 1093
    assert decode(memoryview(data), 26).number == 1093
    # The six pad bits after bit 26 and any bytes past the fourth are not card bits.
    padded = decode(bytes.fromhex("050222FF") + b"\xaa", 26)
    assert (padded.facility, padded.number, padded.raw) == (10, 1093, bytes.fromhex("050222FF"))


def test_explicit_format_must_match_length():
    data, bits = encode("H10301", 10, 1093)
    assert decode(data, bits, "H10301").format == "H10301"
    with pytest.raises(DecodeError) as err:
        decode(data, bits, "H10306")
    assert err.value.reason == "bad_length"
    with pytest.raises(DecodeError) as err:
        decode(data, bits, "H99999")
    assert err.value.reason == "unknown_format"


def test_37_bits_need_the_configured_format():
    data, bits = encode("H10304", 1234, 56789)
    with pytest.raises(DecodeError) as err:
        decode(data, bits)
    assert err.value.reason == "unknown_format"
    # Same bits, two readings: the site's configuration decides.
    assert decode(data, bits, "H10304") == Card("H10304", 37, 1234, 56789, data, hex_value(data, 37))
    as_h10302 = decode(data, bits, "H10302")
    assert (as_h10302.facility, as_h10302.number) == (None, (1234 << 19) | 56789)


def test_unknown_length():
    with pytest.raises(DecodeError) as err:
        decode(b"\x00" * 4, 32)
    assert err.value.reason == "unknown_format"


def test_short_data():
    with pytest.raises(DecodeError) as err:
        decode(bytes.fromhex("050222"), 26)
    assert err.value.reason == "bad_length"
    assert err.value.raw == bytes.fromhex("050222")


def test_bad_parity_names_the_bit():
    data = bytearray(encode("H10301", 10, 1093)[0])
    data[3] ^= 0x40  # bit 26, the last card bit
    with pytest.raises(DecodeError) as err:
        decode(bytes(data), 26)
    assert err.value.reason == "bad_parity"
    assert "26" in err.value.detail


@pytest.mark.parametrize("name", sorted(RANGES))
def test_extremes_round_trip(name):
    fc_range, cn_range = RANGES[name]
    for fc in (None,) if fc_range is None else fc_range:
        for cn in cn_range:
            data, bits = encode(name, fc, cn)
            assert bits == FORMATS[name].bits
            card = decode(data, bits, name)
            assert (card.format, card.facility, card.number) == (name, fc, cn)


def test_c1000_parity_bits_follow_the_spec():
    # Positions written out as FIELD_NOTES gives them, independent of the codec's masks.
    even_2 = [p for start in range(3, 35, 3) for p in (start, start + 1)]  # 3,4,6,7,...,33,34
    odd_35 = [p for start in range(2, 34, 3) for p in (start, start + 1)]  # 2,3,5,6,...,32,33
    assert even_2[:4] == [3, 4, 6, 7] and even_2[-1] == 34
    assert odd_35[:4] == [2, 3, 5, 6] and odd_35[-1] == 33
    for fc, cn in [(0, 0), (4095, 2**20 - 1), (1, 1), (2730, 699050), (1365, 349525)]:
        data, bits = encode("C1000", fc, cn)
        v = value_of(data, bits)
        assert (ones(v, 35, even_2) + bit(v, 35, 2)) % 2 == 0
        assert (ones(v, 35, odd_35) + bit(v, 35, 35)) % 2 == 1
        assert ones(v, 35, range(1, 36)) % 2 == 1  # bit 1 odd over 2-35, so all 35 bits are odd
        assert (v >> 21) & 0xFFF == fc and (v >> 1) & 0xFFFFF == cn


@pytest.mark.parametrize(
    "name, facility, number",
    [
        ("H10301", 256, 0),
        ("H10301", 0, 65536),
        ("H10301", -1, 0),
        ("H10306", 65536, 0),
        ("C1000", 4096, 0),
        ("C1000", 0, 2**20),
        ("H10302", None, 2**35),
        ("H10302", 0, 1),  # H10302 has no facility field
        ("H10304", 0, 2**19),
        ("H10304", None, 1),
        ("H10301", True, 1),
        ("H10301", 1, 1.0),
        ("H99999", 1, 1),
    ],
)
def test_encode_rejects_out_of_range(name, facility, number):
    with pytest.raises(ValueError):
        encode(name, facility, number)


@given(cards())
def test_round_trip(card):
    name, facility, number = card
    data, bits = encode(name, facility, number)
    decoded = decode(data, bits, name)
    assert (decoded.format, decoded.bits, decoded.facility, decoded.number) == (name, bits, facility, number)
    assert decoded.raw == data
    assert decoded.raw_hex == f"0x{value_of(data, bits):X}" == hex_value(data, bits)
    if name not in ("H10302", "H10304"):
        assert decode(data, bits) == decoded  # the only format of its length


@given(cards(), st.data())
def test_any_flipped_bit_is_bad_parity(card, data):
    name, facility, number = card
    payload, bits = encode(name, facility, number)
    position = data.draw(st.integers(1, bits), label="bit")
    value = value_of(payload, bits) ^ (1 << (bits - position))
    size = len(payload)
    flipped = (value << (size * 8 - bits)).to_bytes(size, "big")
    with pytest.raises(DecodeError) as err:
        decode(flipped, bits, name)
    assert err.value.reason == "bad_parity"


@settings(max_examples=300)
@given(
    st.binary(max_size=12),
    st.one_of(st.integers(-3, 100), st.sampled_from([26, 34, 35, 37]), st.none(), st.text(max_size=3), st.floats()),
    st.one_of(st.none(), st.sampled_from(sorted(FORMATS)), st.text(max_size=8), st.integers()),
)
def test_only_decode_errors(payload, bits, name):
    try:
        card = decode(payload, bits, name)
    except DecodeError as exc:
        assert exc.reason in ("bad_parity", "unknown_format", "bad_length")
        assert isinstance(exc.raw, bytes)
        return
    assert card.bits == bits and card.format in FORMATS


@pytest.mark.parametrize("payload", [None, 5, "050222C0", [5, 2, 34, 192]])
def test_non_bytes_data_is_a_decode_error(payload):
    with pytest.raises(DecodeError):
        decode(payload, 26)
