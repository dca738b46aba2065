"""Wiegand card formats: the bits a reader sends turned into facility and card number, and back.

Bits are numbered as the formats' specs number them: bit 1 is sent first and
is the most significant bit of the whole value. The input is what libosdp's
card read event carries: the bits MSB-first, left-justified in `data`, and the
bit count in `bits` (FC 10 / CN 1093 in H10301 is data 05 02 22 C0, 26 bits,
value 0x14088B).

A parity bit is "even" when it and the bits it covers hold an even number of
ones, "odd" when they hold an odd number. Every format here has each data bit
under at least one parity bit, so any single flipped bit is caught.

Pure functions: no I/O. `decode` raises only DecodeError.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from gateway.devices.errors import DecodeError


@dataclass(frozen=True, slots=True)
class _Parity:
    position: int  # the parity bit itself
    odd: bool
    covers: tuple[int, ...]  # bit numbers it covers, 1-based


@dataclass(frozen=True, slots=True)
class _Format:
    name: str
    bits: int
    facility: tuple[int, int] | None  # first and last bit, inclusive
    number: tuple[int, int]
    # In the order encode must compute them: a later parity bit may cover an
    # earlier one (Corporate 1000's bit 1 covers bits 2 and 35).
    parities: tuple[_Parity, ...]


def _span(first: int, last: int) -> tuple[int, ...]:
    return tuple(range(first, last + 1))


FORMATS: dict[str, _Format] = {
    f.name: f
    for f in (
        _Format("H10301", 26, (2, 9), (10, 25), (_Parity(1, False, _span(2, 13)), _Parity(26, True, _span(14, 25)))),
        _Format("H10306", 34, (2, 17), (18, 33), (_Parity(1, False, _span(2, 17)), _Parity(34, True, _span(18, 33)))),
        _Format(
            "C1000",
            35,
            (3, 14),
            (15, 34),
            (
                # bit 2 even over 3,4,6,7,9,10,...,33,34 (every third bit left out, from 5)
                _Parity(2, False, tuple(p for p in range(3, 35) if p % 3 != 2)),
                # bit 35 odd over 2,3,5,6,8,9,...,32,33 (every third bit left out, from 4)
                _Parity(35, True, tuple(p for p in range(2, 35) if p % 3 != 1)),
                _Parity(1, True, _span(2, 35)),
            ),
        ),
        _Format("H10302", 37, None, (2, 36), (_Parity(1, False, _span(2, 19)), _Parity(37, True, _span(19, 36)))),
        _Format("H10304", 37, (2, 17), (18, 36), (_Parity(1, False, _span(2, 19)), _Parity(37, True, _span(19, 36)))),
    )
}

_BY_LENGTH: dict[int, tuple[str, ...]] = {}
for _f in FORMATS.values():
    _BY_LENGTH[_f.bits] = _BY_LENGTH.get(_f.bits, ()) + (_f.name,)
del _f


@dataclass(frozen=True, slots=True)
class Card:
    format: str
    bits: int
    facility: int | None
    number: int
    raw: bytes  # the data bytes as read, ceil(bits/8) of them
    raw_hex: str  # the whole bit value, e.g. "0x14088B"


def _bit(value: int, bits: int, position: int) -> int:
    return (value >> (bits - position)) & 1


def _field(value: int, bits: int, span: tuple[int, int]) -> int:
    first, last = span
    return (value >> (bits - last)) & ((1 << (last - first + 1)) - 1)


@cache  # a handful of (length, parity) pairs; saves rebuilding masks per read
def _mask(bits: int, positions: tuple[int, ...]) -> int:
    m = 0
    for p in positions:
        m |= 1 << (bits - p)
    return m


def _parity_ok(value: int, fmt: _Format, parity: _Parity) -> bool:
    ones = (value & _mask(fmt.bits, parity.covers)).bit_count() + _bit(value, fmt.bits, parity.position)
    return ones % 2 == (1 if parity.odd else 0)


def _value(data: bytes, bits: int) -> tuple[bytes, int]:
    """The `bits`-bit value left-justified in data, and the bytes that hold it."""
    size = (bits + 7) // 8
    if len(data) < size:
        raise DecodeError("bad_length", f"{bits} bits need {size} bytes, got {len(data)}", data)
    # Bytes past `size` are ignored, like the pad bits at the end of the last byte.
    raw = data[:size]
    return raw, int.from_bytes(raw, "big") >> (size * 8 - bits)


def _as_bytes(data: object) -> bytes:
    # Checked by type: bytes(5) would quietly make five zero bytes.
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise DecodeError("bad_length", f"data must be bytes, got {type(data).__name__}")


def hex_value(data: bytes, bits: int) -> str:
    """The bit value as "0x..." without checking any format; for logging a card that failed to decode."""
    data = _as_bytes(data)
    if type(bits) is not int or bits <= 0:
        raise DecodeError("unknown_format", f"bit count must be a positive integer, got {bits!r}", data)
    return f"0x{_value(data, bits)[1]:X}"


def _pick(bits: object, format: str | None, data: bytes) -> _Format:
    if type(bits) is not int:
        raise DecodeError("unknown_format", f"bit count must be an integer, got {type(bits).__name__}", data)
    if format is not None:
        fmt = FORMATS.get(format) if type(format) is str else None
        if fmt is None:
            raise DecodeError("unknown_format", f"no format named {str(format)[:30]!r}", data)
        if fmt.bits != bits:
            raise DecodeError("bad_length", f"{fmt.name} has {fmt.bits} bits, the reader sent {bits}", data)
        return fmt
    names = _BY_LENGTH.get(bits)
    if names is None:
        raise DecodeError("unknown_format", f"no known format has {bits} bits", data)
    if len(names) > 1:
        # 37 bits: H10302 and H10304 share every parity bit, so only the site knows.
        raise DecodeError("unknown_format", f"{bits} bits is one of {', '.join(names)}; configure the format", data)
    return FORMATS[names[0]]


def decode(data: bytes, bits: int, format: str | None = None) -> Card:
    """One card read: `data` holds `bits` bits MSB-first, left-justified.

    `format` picks among formats of the same length; None takes the only
    format of that length.
    """
    data = _as_bytes(data)
    fmt = _pick(bits, format, data)
    raw, value = _value(data, bits)
    for parity in fmt.parities:
        if not _parity_ok(value, fmt, parity):
            kind = "odd" if parity.odd else "even"
            raise DecodeError(
                "bad_parity", f"{fmt.name} {kind} parity bit {parity.position} is wrong in 0x{value:X}", raw
            )
    facility = _field(value, bits, fmt.facility) if fmt.facility is not None else None
    return Card(fmt.name, bits, facility, _field(value, bits, fmt.number), raw, f"0x{value:X}")


def _check_field(name: str, value: object, span: tuple[int, int] | None, fmt: _Format) -> int:
    if span is None:
        if value is not None:
            raise ValueError(f"{fmt.name} has no facility code")
        return 0
    if type(value) is not int:
        raise ValueError(f"{fmt.name} {name} must be an integer, got {type(value).__name__}")
    width = span[1] - span[0] + 1
    if not 0 <= value < 1 << width:
        raise ValueError(f"{fmt.name} {name} {value} is outside 0..{(1 << width) - 1}")
    return value


def encode(format: str, facility: int | None, number: int) -> tuple[bytes, int]:
    """(data, bits) for a card, parity bits set; the inverse of `decode`."""
    fmt = FORMATS.get(format) if type(format) is str else None
    if fmt is None:
        raise ValueError(f"no format named {format!r}")
    bits = fmt.bits
    value = _check_field("number", number, fmt.number, fmt) << (bits - fmt.number[1])
    if fmt.facility is not None:
        value |= _check_field("facility", facility, fmt.facility, fmt) << (bits - fmt.facility[1])
    else:
        _check_field("facility", facility, None, fmt)
    for parity in fmt.parities:
        if not _parity_ok(value, fmt, parity):
            value |= 1 << (bits - parity.position)  # the bit was 0, so setting it flips the count
    size = (bits + 7) // 8
    return (value << (size * 8 - bits)).to_bytes(size, "big"), bits
