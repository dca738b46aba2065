"""JT/T 808 vehicle terminals over TCP: framing, headers, and the messages the gateway handles.

A frame on the wire is 0x7E, header, body, a checksum byte, 0x7E. Between the
delimiters 0x7E is sent as 7D 02 and 0x7D as 7D 01; the checksum is the XOR
of the unescaped header and body. The header is message id, properties
(body length, encryption, sub-package and 2019 bits), in 2019 a protocol
version byte, the terminal's phone number in BCD (6 bytes, 10 in 2019), a
serial number and, for a sub-package, its total and 1-based index.

Sans-IO: `Deframer` splits one connection's byte stream into frames,
`parse_frame` reads one, the registration and authentication body parsers
read those bodies and the builders make the replies. Location bodies are in
`jt808_location`, the conversation (who may say what, and the answers) in
`jt808_session`. Only DecodeError leaves the parsers.

Policy hooks, for the caller to decide on:
- `Frame.checksum_ok` / `Frame.length_ok` are reported, not enforced: the
  session applies the site's policy (fixes flagged "bad_checksum" /
  "bad_length", or the frame refused).
- `Deframer.discarded_bytes` and `Deframer.oversize_frames` count what the
  stream lost (garbage outside frames, frames over the size cap).
- Not done here: RSA bodies (`Frame.encryption` non-zero) are not decrypted
  and sub-packages (`Frame.sub_package`) are not reassembled.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gateway.devices.errors import DecodeError

SOURCE = "jt808"

# Message ids; GENERAL_REPLY is the terminal's answer to a platform request.
GENERAL_REPLY, HEARTBEAT, LOGOUT, REGISTER, AUTHENTICATE = 0x0001, 0x0002, 0x0003, 0x0100, 0x0102
LOCATION, BATCH_LOCATION, PLATFORM_REPLY, REGISTER_REPLY = 0x0200, 0x0704, 0x8001, 0x8100

# 0x8001 results
OK, FAILED, BAD_MESSAGE, UNSUPPORTED, ALARM_ACK = 0, 1, 2, 3, 4
# 0x8100 results
(REGISTERED, VEHICLE_TAKEN, NO_SUCH_VEHICLE, TERMINAL_TAKEN, NO_SUCH_TERMINAL) = range(5)

MAX_BODY = 0x3FF
# Largest legal frame is about 1 KiB unescaped, so twice that escaped; 4 KiB leaves room.
DEFAULT_MAX_FRAME = 4096

_FLAG, _ESC = 0x7E, 0x7D
_BIT_SUB_PACKAGE = 1 << 13
_BIT_2019 = 1 << 14


@dataclass(slots=True)
class Frame:
    msg_id: int
    version: int  # 2013 or 2019
    protocol_version: int | None
    phone: str  # BCD digits, leading zeros stripped
    serial: int
    body: bytes
    encryption: int  # bits 10-12 of the properties; bit 10 is RSA
    sub_package: tuple[int, int] | None  # (total, 1-based index)
    checksum_ok: bool
    length_ok: bool
    phone_bytes: int = 6  # as sent, so a reply can use the same header form


@dataclass(slots=True)
class Registration:
    province: int
    city: int
    maker: str
    model: str
    terminal_id: str
    plate_colour: int
    plate: str  # the VIN when plate_colour is 0 (no plate)


class Deframer:
    """One TCP connection's bytes in, the escaped contents between 0x7E delimiters out."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.discarded_bytes = 0
        self.oversize_frames = 0
        self._buffer = bytearray()
        self._inside = False
        self._skipping = False  # inside a frame already over the cap

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        frames: list[bytes] = []
        pos, end = 0, len(data)
        while pos < end:
            flag = data.find(_FLAG, pos)
            stop = end if flag < 0 else flag
            if not self._inside or self._skipping:
                self.discarded_bytes += stop - pos
            else:
                self._buffer += data[pos:stop]
                if len(self._buffer) > self.max_frame:
                    self.discarded_bytes += len(self._buffer)
                    self.oversize_frames += 1
                    self._buffer.clear()
                    self._skipping = True
            if flag < 0:
                break
            pos = flag + 1
            if not self._inside:
                self._inside = True
            elif self._skipping:
                self._inside = self._skipping = False
            elif self._buffer:
                frames.append(bytes(self._buffer))
                self._buffer.clear()
                self._inside = False
            # else 7E 7E: a closing and an opening delimiter back to back, stay inside
        return frames


def escape(data: bytes) -> bytes:
    return data.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")


def unescape(data: bytes) -> bytes:
    """The bytes between delimiters, unescaped; DecodeError("bad_frame") on a broken escape."""
    data = bytes(data)
    if b"\x7e" in data:
        raise DecodeError("bad_frame", "unescaped 0x7E inside a frame", data)
    if b"\x7d" not in data:
        return data
    parts = data.split(b"\x7d")
    out = bytearray(parts[0])
    for part in parts[1:]:
        if not part or part[0] not in (1, 2):
            raise DecodeError("bad_frame", "0x7D not followed by 01 or 02", data)
        out.append(_ESC if part[0] == 1 else _FLAG)
        out += part[1:]
    return bytes(out)


def _xor(data: bytes | bytearray) -> int:
    acc = 0
    for byte in data:
        acc ^= byte
    return acc


def bcd_digits(data: bytes) -> str | None:
    text = data.hex()
    return text if text.isdigit() else None


def _header_layouts(props: int) -> list[tuple[int, int, bool]]:
    """Candidate (header size, phone bytes, has version byte), most likely first."""
    extra = 4 if props & _BIT_SUB_PACKAGE else 0
    if props & _BIT_2019:
        # Proper 2019; 2019 with a 2013-sized phone; a 2013 header with a stray bit 14.
        return [(17 + extra, 10, True), (13 + extra, 6, True), (12 + extra, 6, False)]
    return [(12 + extra, 6, False)]


def parse_frame(content: bytes) -> Frame:
    """One frame from the bytes between its delimiters, as received (still escaped)."""
    raw = bytes(content)
    data = unescape(raw)
    if len(data) < 13:
        raise DecodeError("bad_frame", f"{len(data)} bytes is too short for a frame", raw)
    msg_id, props = struct.unpack_from(">HH", data, 0)
    body_len = props & MAX_BODY
    layouts = [layout for layout in _header_layouts(props) if layout[0] + 1 <= len(data)]
    if not layouts:
        raise DecodeError("bad_frame", f"{len(data)} bytes is too short for the header", raw)
    fitting = [layout for layout in layouts if layout[0] + body_len + 1 == len(data)]
    header_size, phone_bytes, has_version = (fitting or layouts)[0]

    protocol_version = data[4] if has_version else None
    pos = 5 if has_version else 4
    digits = bcd_digits(data[pos : pos + phone_bytes])
    if digits is None:
        raise DecodeError("bad_frame", f"phone {data[pos : pos + phone_bytes].hex()} is not BCD", raw)
    pos += phone_bytes
    (serial,) = struct.unpack_from(">H", data, pos)
    sub_package = struct.unpack_from(">HH", data, pos + 2) if props & _BIT_SUB_PACKAGE else None
    return Frame(
        msg_id=msg_id,
        version=2019 if has_version else 2013,
        protocol_version=protocol_version,
        phone=digits.lstrip("0") or "0",
        serial=serial,
        body=data[header_size:-1],
        encryption=(props >> 10) & 0b111,
        sub_package=sub_package,
        checksum_ok=_xor(data[:-1]) == data[-1],
        length_ok=bool(fitting),
        phone_bytes=phone_bytes,
    )


def build_frame(
    msg_id: int,
    phone: str,
    serial: int,
    body: bytes,
    version: int = 2013,
    protocol_version: int | None = 1,
    sub_package: tuple[int, int] | None = None,
    phone_bytes: int | None = None,
) -> bytes:
    """A whole frame, escaped and with both delimiters; ValueError on a body or phone that does not fit."""
    if len(body) > MAX_BODY:
        raise ValueError(f"body of {len(body)} bytes is over {MAX_BODY}")
    if version not in (2013, 2019):
        raise ValueError("version is 2013 or 2019")
    width = phone_bytes or (10 if version == 2019 else 6)
    if not phone.isascii() or not phone.isdigit() or len(phone) > width * 2:
        raise ValueError(f"phone {phone!r} is not at most {width * 2} digits")
    props = len(body)
    header = bytearray()
    if version == 2019:
        props |= _BIT_2019
        header.append(1 if protocol_version is None else protocol_version)
    header += bytes.fromhex(phone.rjust(width * 2, "0"))
    header += struct.pack(">H", serial)
    if sub_package is not None:
        props |= _BIT_SUB_PACKAGE
        header += struct.pack(">HH", *sub_package)
    data = struct.pack(">HH", msg_id, props) + bytes(header) + bytes(body)
    return b"\x7e" + escape(data + bytes([_xor(data)])) + b"\x7e"


def _reply(frame: Frame, msg_id: int, serial: int, body: bytes) -> bytes:
    # Same header form as the request: some terminals only understand their own.
    return build_frame(
        msg_id, frame.phone, serial, body, frame.version, frame.protocol_version, phone_bytes=frame.phone_bytes
    )


def general_response(frame: Frame, serial: int, result: int = OK) -> bytes:
    """0x8001 answering `frame`: its serial and id, and the result."""
    return _reply(frame, PLATFORM_REPLY, serial, struct.pack(">HHB", frame.serial, frame.msg_id, result))


def register_response(frame: Frame, serial: int, result: int, auth_code: str = "") -> bytes:
    """0x8100 answering a registration; the auth code goes only with result 0."""
    body = struct.pack(">HB", frame.serial, result)
    if result == REGISTERED:
        body += auth_code.encode("gbk")
    return _reply(frame, REGISTER_REPLY, serial, body)


def _text(data: bytes, encoding: str = "ascii") -> str:
    # Fixed-width fields are padded with NULs (some firmware uses spaces).
    return data.rstrip(b"\x00 ").decode(encoding, errors="replace")


# Fixed part widths (maker, model, terminal id) by era; each adds 2+2 (region) and 1 (colour).
_REGISTER_LAYOUTS = {2019: (11, 30, 30), 2013: (5, 20, 7), 2011: (5, 8, 7)}


def parse_register(body: bytes, version: int) -> Registration:
    """0x0100. The widths follow the header version when the body is long enough, else the older eras."""
    body = bytes(body)
    eras = (2019, 2013, 2011) if version == 2019 else (2013, 2011)
    for era in eras:
        maker_len, model_len, id_len = _REGISTER_LAYOUTS[era]
        fixed = 4 + maker_len + model_len + id_len + 1
        if len(body) >= fixed:
            break
    else:
        raise DecodeError("bad_body", f"registration of {len(body)} bytes is too short", body)
    province, city = struct.unpack_from(">HH", body, 0)
    model_at, id_at, colour_at = 4 + maker_len, 4 + maker_len + model_len, fixed - 1
    return Registration(
        province=province,
        city=city,
        maker=_text(body[4:model_at]),
        model=_text(body[model_at:id_at]),
        terminal_id=_text(body[id_at:colour_at]),
        plate_colour=body[colour_at],
        plate=_text(body[fixed:], "gbk"),
    )


def _code_span(body: bytes, version: int) -> tuple[int, int]:
    """Where 0x0102's auth code sits in its body. 2019 prefixes it with its length (then IMEI and software
    version); a 2019 header over a 2013 body has the code alone."""
    if version == 2019 and body and 1 + body[0] <= len(body):
        return 1, 1 + body[0]
    return 0, len(body)


def parse_auth(body: bytes, version: int) -> str:
    """0x0102's auth code."""
    body = bytes(body)
    start, end = _code_span(body, version)
    code = body[start:end].rstrip(b"\x00")
    if not code:
        raise DecodeError("bad_body", "empty auth code", body)
    try:
        return code.decode("gbk")
    except UnicodeDecodeError:
        raise DecodeError("bad_body", "auth code is not GBK text", body) from None


def redact(content: bytes) -> bytes:
    """A frame as received (between its delimiters) with any auth code masked, for a dead letter.

    A 0x0102 keeps everything but its code, which becomes `*`s; its checksum is shifted by what the
    masking changed, so it stays exactly as right or wrong as it was and tells nothing of the code.
    A 0x0102 that cannot be read keeps only its message id and properties. Other frames are kept whole.
    """
    raw = bytes(content)
    try:
        frame = parse_frame(raw)
    except DecodeError:
        return raw[:4] if raw[:2] == AUTHENTICATE.to_bytes(2, "big") else raw
    if frame.msg_id != AUTHENTICATE:
        return raw
    data = bytearray(unescape(raw))
    body_at = len(data) - 1 - len(frame.body)
    start, end = (body_at + at for at in _code_span(frame.body, frame.version))
    before = _xor(data[start:end])
    data[start:end] = b"*" * (end - start)
    data[-1] ^= before ^ _xor(data[start:end])
    return escape(bytes(data))
