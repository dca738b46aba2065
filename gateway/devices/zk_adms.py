"""ZKTeco ADMS ("iclock") push protocol, sans-IO: text in, text out, no I/O, no clock.

A terminal speaks HTTP to the gateway (gateway/devices/zk_session.py is the conversation,
gateway/transports/zk_http.py serves it):

- `GET /iclock/cdata?SN=..&options=all[&pushver=..]`: the handshake; the answer
  is `handshake_reply()`, one `key=value` a line.
- `POST /iclock/cdata?SN=..&table=ATTLOG&Stamp=..`: punch lines (decoded by
  gateway.devices.attlog through the pipeline's "iclock/ATTLOG" channel);
  answered `cdata_reply(n)` = `OK:<n>` once durable. `table=OPERLOG` carries user
  and enrolment lines (`parse_operlog()`).
- `GET /iclock/getrequest?SN=..` (queued commands) and `POST /iclock/devicecmd?SN=..`
  (their results): gateway.devices.zk_commands, re-exported here so that this
  module stays the one import for the whole protocol.

Every function that reads input raises gateway.devices.errors.DecodeError, and
nothing else, for input it cannot use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.devices.errors import DecodeError

# The command side is re-exported (F401): this module stays the one import for the whole protocol.
from gateway.devices.zk_commands import (  # noqa: F401
    COMMAND_NAMES,
    NAME_MAX,
    CommandReply,
    DeviceCmd,
    body_text,
    command_text,
    devicecmd_body,
    getrequest_reply,
    parse_command,
    parse_devicecmd,
    parse_getrequest,
    wire_id,
)

# Serial numbers as provisioning accepts them (provisioning.ZkAdmsConfig).
_SN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_STAMP = re.compile(r"[0-9]{1,20}|None")

# table= of POST /iclock/cdata -> the pipeline channel that stores it. Other
# tables (ATTPHOTO, BIODATA, options, ...) have no record kind here.
TABLE_CHANNELS: Mapping[str, str] = {"ATTLOG": "iclock/ATTLOG", "OPERLOG": "iclock/OPERLOG"}

# The options the gateway asks of every terminal (FIELD_NOTES: ZKTeco ADMS).
ERROR_DELAY_S = 30  # seconds before a terminal retries after a failed request
DELAY_S = 10  # seconds between getrequest polls
TRANS_TIMES = "00:00;14:05"
TRANS_INTERVAL_MIN = 1
TRANS_FLAG = "TransData AttLog OpLog"


def valid_sn(sn: object) -> bool:
    return isinstance(sn, str) and _SN.fullmatch(sn) is not None


def _check_sn(sn: object) -> str:
    if not valid_sn(sn):
        raise DecodeError("bad_sn", f"serial number {str(sn)[:40]!r} is not 1-64 letters, digits, _ or -")
    return sn  # type: ignore[return-value]


def channel_for_table(table: str | None) -> str | None:
    """The pipeline channel for a cdata table, None for tables the gateway does not store."""
    return TABLE_CHANNELS.get(table or "")


# --- handshake ------------------------------------------------------------------------------------


def timezone_option(utc_offset_min: int) -> str:
    """`TimeZone=` value: whole hours as hours (8, -5); other offsets in minutes (330 for +05:30),
    the form newer firmware documents for half-hour zones."""
    if utc_offset_min % 60 == 0:
        return str(utc_offset_min // 60)
    return str(utc_offset_min)


def handshake_reply(
    sn: str, utc_offset_min: int, *, new_firmware: bool = True, stamps: Mapping[str, str] | None = None
) -> str:
    """The options answered to `GET /iclock/cdata?SN=..&options=all`.

    `new_firmware`: the request carried `pushver`. Older firmware reads the
    stamps as `Stamp=`, `OpStamp=`, `PhotoStamp=`; it gets those as well as the
    newer names. `stamps` (keys ATTLOG, OPERLOG, ATTPHOTO): the last stamp the
    gateway holds per table; "None" (the default) leaves the terminal to upload
    what it has not had acknowledged, which duplicates nothing here because
    records are keyed by content.
    """
    _check_sn(sn)
    stamps = stamps or {}

    def stamp(table: str) -> str:
        value = str(stamps.get(table, "None"))
        if _STAMP.fullmatch(value) is None:
            raise DecodeError("bad_value", f"stamp {value[:30]!r} for {table} is not a number")
        return value

    lines = [
        f"GET OPTION FROM: {sn}",
        f"ATTLOGStamp={stamp('ATTLOG')}",
        f"OPERLOGStamp={stamp('OPERLOG')}",
        f"ATTPHOTOStamp={stamp('ATTPHOTO')}",
    ]
    if not new_firmware:
        lines += [f"Stamp={stamp('ATTLOG')}", f"OpStamp={stamp('OPERLOG')}", f"PhotoStamp={stamp('ATTPHOTO')}"]
    lines += [
        f"ErrorDelay={ERROR_DELAY_S}",
        f"Delay={DELAY_S}",
        f"TransTimes={TRANS_TIMES}",
        f"TransInterval={TRANS_INTERVAL_MIN}",
        f"TransFlag={TRANS_FLAG}",
        f"TimeZone={timezone_option(int(utc_offset_min))}",
        "Realtime=1",
        "Encrypt=0",
    ]
    return "\n".join(lines) + "\n"


def parse_options(text: str) -> dict[str, str]:
    """`key=value` lines (a handshake reply, as a terminal reads it). The first line's
    `GET OPTION FROM: <SN>` is kept under the key "GET OPTION FROM"."""
    options: dict[str, str] = {}
    for line in text.replace("\r", "").split("\n"):
        if line.startswith("GET OPTION FROM:"):
            options["GET OPTION FROM"] = line.split(":", 1)[1].strip()
        elif "=" in line:
            key, value = line.split("=", 1)
            options[key.strip()] = value.strip()
    return options


def split_lines(payload: bytes, limit: int) -> list[bytes]:
    """A data post cut at line ends into pieces of at most `limit` bytes (a single longer
    line stays one piece), so a large upload is stored whole rather than refused as too large."""
    if limit < 1:
        raise DecodeError("bad_value", "limit must be positive")
    data = bytes(payload)
    if len(data) <= limit:
        return [data]
    pieces: list[bytes] = []
    start = 0
    while start < len(data):
        end = start + limit
        if end >= len(data):
            pieces.append(data[start:])
            break
        cut = data.rfind(b"\n", start, end)
        if cut < 0:  # one line longer than the limit: keep it whole
            cut = data.find(b"\n", end)
            if cut < 0:
                pieces.append(data[start:])
                break
        pieces.append(data[start : cut + 1])
        start = cut + 1
    return pieces


def cdata_reply(accepted: int) -> str:
    """The answer to a data post: `OK:<number of lines accepted>`."""
    return f"OK:{max(0, int(accepted))}"


# --- OPERLOG --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OperEntry:
    """One OPERLOG line: `USER PIN=1\\tName=Ann\\tCard=..` -> kind "USER", fields {PIN, Name, Card};
    `OPLOG 4\\t0\\t2025-..` -> kind "OPLOG", values ("4", "0", "2025-..")."""

    kind: str
    fields: dict[str, str] = field(default_factory=dict)
    values: tuple[str, ...] = ()


@dataclass(slots=True)
class OperLog:
    entries: list[OperEntry] = field(default_factory=list)
    rejects: list[DecodeError] = field(default_factory=list)

    def users(self) -> list[dict[str, str]]:
        """The USER lines' fields (PIN, Name, Card, Pri, ...)."""
        return [e.fields for e in self.entries if e.kind == "USER"]


_KIND = re.compile(r"[A-Z][A-Z0-9_]{0,31}")


def _oper_line(line: str) -> OperEntry:
    kind, _, rest = line.partition(" ")
    if _KIND.fullmatch(kind) is None:
        raise DecodeError("bad_line", f"{kind[:20]!r} is not an OPERLOG line kind", line.encode())
    parts = rest.split("\t") if rest else []
    if kind == "OPLOG":
        return OperEntry(kind, {}, tuple(p.strip() for p in parts))
    fields: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DecodeError("bad_line", f"{part[:30]!r} is not key=value", line.encode())
        fields.setdefault(key, value)
    # USER and FP lines say "PIN", BIODATA lines "Pin": the same user id.
    pin = next((v for k, v in fields.items() if k.upper() == "PIN"), "")
    if kind in ("USER", "FP", "FACE", "BIODATA", "USERPIC", "BIOPHOTO") and not pin.strip():
        raise DecodeError("missing_field", f"{kind} line without PIN", line.encode())
    return OperEntry(kind, fields)


def parse_operlog(payload: bytes) -> OperLog:
    """A `table=OPERLOG` body: one entry per line; malformed lines are rejects.
    DecodeError when the body is not UTF-8 or has no line at all."""
    text = body_text(payload, "OPERLOG")
    out = OperLog()
    seen = False
    for raw_line in text.split("\n"):
        line = raw_line.rstrip("\r")
        if not line.strip():
            continue
        seen = True
        try:
            out.entries.append(_oper_line(line))
        except DecodeError as exc:
            out.rejects.append(exc)
    if not seen:
        raise DecodeError("empty", "no OPERLOG lines in the body", bytes(payload))
    return out


def user_line(fields: Mapping[str, str]) -> str:
    """The terminal's side: an OPERLOG `USER` line."""
    return "USER " + "\t".join(f"{k}={v}" for k, v in fields.items())
