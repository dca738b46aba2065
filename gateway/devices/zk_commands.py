"""ZKTeco ADMS ("iclock") commands, sans-IO: the gateway's commands down, their results up.

- `GET /iclock/getrequest?SN=..`: the heartbeat; answered `getrequest_reply()`:
  `OK`, or queued commands as lines `C:<id>:<command>` (`command_text()` builds
  a command from its API name and args).
- `POST /iclock/devicecmd?SN=..`: command results, lines
  `ID=<id>&Return=<code>&CMD=<cmd>` (`parse_devicecmd()`); Return >= 0 is success.

Command ids: the gateway's command ids are 20 hex characters; firmware in the
field is known to treat the id as a number. `wire_id()` gives each command a
decimal id of at most 10 digits (31 bits) taken from the random part of its
gateway id, so it survives a gateway restart without any stored mapping; the
results are matched back among the device's own sent commands.

`parse_getrequest()`, `parse_command()` and `devicecmd_body()` are the
terminal's side, for the simulated terminal. Every function that reads input
raises gateway.devices.errors.DecodeError, and nothing else, for input it
cannot use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.devices.errors import DecodeError

# --- commands down --------------------------------------------------------------------------------

# Values go between TABs on one line: a TAB, CR, LF or other control character
# would start another field or another command.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PIN = re.compile(r"[A-Za-z0-9]{1,24}")
_CARD = re.compile(r"[0-9]{1,20}")
_PASSWORD = re.compile(r"[0-9]{0,8}")
NAME_MAX = 24  # characters terminals keep of a name

COMMAND_NAMES = ("sync_user", "delete_user", "info", "check", "reboot")


def _arg(args: Mapping[str, Any], key: str, required: bool = False) -> str | None:
    value = args.get(key)
    if value is None or value == "":
        if required:
            raise DecodeError("bad_args", f"args.{key} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DecodeError("bad_args", f"args.{key} must be a string or an integer")
    if isinstance(value, int) and value < 0:
        raise DecodeError("bad_args", f"args.{key} must not be negative")
    return str(value)


def _only(args: Mapping[str, Any], allowed: Iterable[str], name: str) -> None:
    extra = sorted(set(args) - set(allowed))
    if extra:
        raise DecodeError("bad_args", f"{name}: unknown args {', '.join(map(str, extra))[:100]}")


def _pin(args: Mapping[str, Any]) -> str:
    pin = _arg(args, "pin", required=True)
    assert pin is not None
    if _PIN.fullmatch(pin) is None:
        raise DecodeError("bad_args", f"args.pin {pin[:30]!r} must be 1-24 letters or digits")
    return pin


def command_text(name: str, args: Mapping[str, Any] | None = None) -> str:
    """The ZK command for an API command (POST /api/v1/devices/{id}/commands).

    - sync_user {pin, name?, card?, privilege?, password?} -> DATA UPDATE USERINFO PIN=..\\tName=..\\tCard=..
    - delete_user {pin} -> DATA DELETE USERINFO PIN=..
    - info -> INFO; check -> CHECK; reboot -> REBOOT

    DecodeError `unknown_command` for other names, `bad_args` for missing or
    malformed args (never a value that could break the line).
    """
    args = dict(args or {})
    if not isinstance(name, str):
        raise DecodeError("unknown_command", "command name must be a string")
    if name == "sync_user":
        _only(args, ("pin", "name", "card", "privilege", "password"), name)
        parts = [f"PIN={_pin(args)}"]
        user_name = _arg(args, "name")
        if user_name is not None:
            if _CONTROL.search(user_name) or len(user_name) > NAME_MAX:
                raise DecodeError("bad_args", f"args.name: at most {NAME_MAX} characters, no control characters")
            parts.append(f"Name={user_name}")
        privilege = _arg(args, "privilege")
        if privilege is not None:
            if privilege not in ("0", "2", "6", "14"):
                raise DecodeError("bad_args", "args.privilege is 0 (user), 2 (enroller), 6 (manager) or 14 (admin)")
            parts.append(f"Pri={privilege}")
        password = _arg(args, "password")
        if password is not None:
            if _PASSWORD.fullmatch(password) is None:
                raise DecodeError("bad_args", "args.password must be up to 8 digits")
            parts.append(f"Passwd={password}")
        card = _arg(args, "card")
        if card is not None:
            if _CARD.fullmatch(card) is None:
                raise DecodeError("bad_args", "args.card must be 1-20 digits (the card number)")
            parts.append(f"Card={card}")
        return "DATA UPDATE USERINFO " + "\t".join(parts)
    if name == "delete_user":
        _only(args, ("pin",), name)
        return f"DATA DELETE USERINFO PIN={_pin(args)}"
    if name in ("info", "check", "reboot"):
        _only(args, (), name)
        return name.upper()
    raise DecodeError(
        "unknown_command", f"{str(name)[:40]!r} is not a ZK ADMS command; supported: {', '.join(COMMAND_NAMES)}"
    )


def wire_id(command_id: str) -> str:
    """The id a terminal sees for a gateway command: decimal, at most 31 bits.

    Gateway ids end in 8 random hex digits; those (less the top bit) become the
    number. An id of another shape is used as it is.
    """
    tail = command_id[-8:]
    if len(command_id) >= 8 and re.fullmatch(r"[0-9a-fA-F]{8}", tail):
        return str(int(tail, 16) & 0x7FFFFFFF)
    return command_id


def getrequest_reply(commands: Iterable[tuple[str, str]]) -> str:
    """`OK` when nothing is queued, else one `C:<id>:<command>` line per (wire id, command text)."""
    lines = []
    for cid, text in commands:
        if not cid or ":" in cid or _CONTROL.search(cid) or "\n" in text or "\r" in text:
            raise DecodeError("bad_value", f"command {cid[:30]!r} cannot be sent on one line")
        lines.append(f"C:{cid}:{text}")
    return "\n".join(lines) + "\n" if lines else "OK"


def parse_getrequest(text: str) -> list[tuple[str, str]]:
    """The terminal's side: (id, command) of each `C:<id>:<command>` line; [] for `OK`."""
    out = []
    for line in text.replace("\r", "").split("\n"):
        if line.startswith("C:"):
            parts = line.split(":", 2)
            if len(parts) == 3:
                out.append((parts[1], parts[2]))
    return out


def parse_command(text: str) -> tuple[str, dict[str, str]]:
    """The terminal's side: a command text as (verb, fields), e.g.
    ("DATA UPDATE USERINFO", {"PIN": "1", "Name": "Ann"}) or ("INFO", {})."""
    if text.startswith("DATA "):
        words = text.split(" ", 3)
        head = " ".join(words[:3])
        rest = words[3] if len(words) > 3 else ""
        fields = {}
        for part in rest.split("\t"):
            key, sep, value = part.partition("=")
            if sep:
                fields[key.strip()] = value
        return head, fields
    return text.strip(), {}


# --- results up ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommandReply:
    """One `ID=..&Return=..&CMD=..` line of a devicecmd post (plus any lines that followed it,
    as INFO answers with the terminal's details)."""

    id: str
    code: int
    cmd: str = ""
    extra: str = ""

    @property
    def ok(self) -> bool:
        return self.code >= 0  # negative codes are the terminal's errors

    @property
    def detail(self) -> str:
        text = f"Return={self.code}" + (f" CMD={self.cmd}" if self.cmd else "")
        return f"{text}\n{self.extra}" if self.extra else text


@dataclass(slots=True)
class DeviceCmd:
    replies: list[CommandReply] = field(default_factory=list)
    rejects: list[DecodeError] = field(default_factory=list)


_RETURN = re.compile(r"[+-]?[0-9]{1,9}")


def body_text(payload: bytes, what: str) -> str:
    """A POST body (devicecmd here, OPERLOG in zk_adms) as text: UTF-8, a leading BOM dropped."""
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("bad_utf8", f"{what}: invalid UTF-8 at byte {exc.start}", bytes(payload)) from None
    except Exception:
        raise DecodeError("bad_utf8", f"{what}: payload is a {type(payload).__name__}, not bytes") from None
    return text[1:] if text.startswith("\ufeff") else text


def _reply_line(line: str) -> CommandReply:
    values: dict[str, str] = {}
    for part in line.split("&"):
        key, sep, value = part.partition("=")
        if sep and key.strip() not in values:
            values[key.strip()] = value.strip()
    cid, code = values.get("ID"), values.get("Return")
    if not cid:
        raise DecodeError("missing_field", "ID (the command's id) is required", line.encode())
    if len(cid) > 64:
        raise DecodeError("bad_value", "ID is longer than 64 characters", line.encode())
    if code is None or _RETURN.fullmatch(code) is None:
        raise DecodeError("bad_value", f"Return {str(code)[:20]!r} is not an integer", line.encode())
    return CommandReply(cid, int(code), values.get("CMD", "")[:64])


def parse_devicecmd(payload: bytes) -> DeviceCmd:
    """A `POST /iclock/devicecmd` body: one `ID=<id>&Return=<code>&CMD=<cmd>` line per result.

    Lines that follow a result without starting a new one (INFO's details) are
    kept as that result's `extra`. A malformed result line is one reject; the
    others are still returned. DecodeError when the body is not UTF-8 or holds
    no result line at all.
    """
    text = body_text(payload, "devicecmd")
    out = DeviceCmd()
    current: CommandReply | None = None
    extra: list[str] = []

    def close() -> None:
        if current is not None:
            out.replies.append(
                CommandReply(current.id, current.code, current.cmd, "\n".join(extra)[:1500]) if extra else current
            )

    for raw_line in text.split("\n"):
        line = raw_line.rstrip("\r")
        if not line.strip():
            continue
        if line.startswith("ID="):
            close()
            current, extra = None, []
            try:
                current = _reply_line(line)
            except DecodeError as exc:
                out.rejects.append(exc)
        elif current is not None:
            extra.append(line.strip())
        else:
            out.rejects.append(DecodeError("bad_line", "expected ID=<id>&Return=<code>&CMD=<cmd>", line.encode()))
    close()
    if not out.replies and not out.rejects:
        raise DecodeError("empty", "no command results in the body", bytes(payload))
    return out


def devicecmd_body(replies: Iterable[tuple[str, int, str]]) -> str:
    """The terminal's side: lines for (id, return code, CMD)."""
    return "\n".join(f"ID={cid}&Return={code}&CMD={cmd}" for cid, code, cmd in replies) + "\n"
