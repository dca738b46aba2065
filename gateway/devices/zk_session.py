"""ZKTeco ADMS ("iclock") request handling, with no I/O: what each request means and how it is answered.

A terminal is known by its serial number `SN`, registered as a `zk-adms`
device with config {"sn": ...}; it cannot send a bearer token. The HTTP
transport (gateway/transports/zk_http.py) reads a request and runs the
conversation this module returns for it:

- GET  /iclock/cdata       handshake: the options (per-device TimeZone).
- POST /iclock/cdata       table=ATTLOG punch lines / table=OPERLOG user lines:
                           stored, and answered `OK:<n>` only once committed
                           (n = punches decoded; for OPERLOG the lines read).
                           Bad lines are dead-lettered with their reason. A
                           resend is stored once: records are keyed by content.
                           Other tables (ATTPHOTO, BIODATA, options, ...) are
                           answered `OK` and not stored: the gateway keeps no
                           photos or templates.
- GET  /iclock/getrequest  heartbeat; answers the device's queued commands
                           (marking them sent) or `OK`.
- POST /iclock/devicecmd   command results: Return >= 0 succeeded, negative failed.

Unknown SN: a data post is dead-lettered (`unknown_device`, a sample of the
first `sample` bytes kept: anyone can send it) and, once that is committed,
answered `OK:0`. The terminal then moves on; an error status instead would have
it resend the same batch forever (every ErrorDelay) and hold its newer punches
behind it. Handshake and getrequest of an unknown SN are answered as usual
(options with the site's zone / `OK`) and store nothing.

Trust: a terminal proves nothing but its SN, which is printed on it. So a
registered terminal is its SN plus the address it was first heard from: the
first request of a terminal without a pinned address pins the sender's
(`Pin`: the store keeps whichever pin came first). Any request from another
address is refused (403): nothing is taken, finished, stored or counted as a
sign of life; a sample of it is dead-lettered `address_mismatch` and the device
gets an `Alert`. A handshake carrying `pushcommkey` is checked against the
device's `comm_key` when one is set (wrong key: `not_authorized`, same refusal).

How it runs: each request is a generator of actions (a conversation). The
transport carries out each action in order; an action that asks a question
(`Store`, `TakeCommands`, `SentCommands`) gets its answer written into it
before the generator is resumed, which then reads it. The last action is
`Answer` (the text to send) or `Refuse` (an HTTP error). HTTP has no
connection to keep state on, so unlike the JT/T 808 session there is nothing
between requests; the terminal is found through the `lookup` callable, an
in-memory table look-up with no I/O. What the store holds (commands,
liveness, the records) is asked of the transport, which asks the database.
Nothing here reads a clock: the handshake is given the time.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from gateway.core.timeutil import offset_minutes
from gateway.devices import zk_adms
from gateway.devices.errors import DecodeError

COMMANDS_PER_POLL = 20
SAMPLE_BYTES = 4096  # what a dead letter keeps of input from an unknown or untrusted sender
DEVICECMD_CHANNEL = "iclock/devicecmd"  # only ever dead-lettered: results are not records


@dataclass(frozen=True, slots=True)
class Terminal:
    """A registered terminal, as `lookup(sn)` finds it."""

    device_id: str
    tz: tzinfo


@dataclass(frozen=True, slots=True)
class Piece:
    """One input for the pipeline: a line-aligned piece of a post, or a refused one (`reject`)."""

    channel: str
    payload: bytes
    device_id: str | None = None
    reject: str | None = None
    note: str = ""  # added to the sender the dead letter names


@dataclass(frozen=True, slots=True)
class QueuedCommand:
    id: str
    name: str
    args: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Finish:
    command_id: str | None  # None: the terminal answered a command that is not waiting
    ok: bool
    detail: str
    answered_id: str | None = None  # the id a terminal answered to (logged when it was not waiting)


# Actions. Heartbeat, FinishCommands and Alert are effects; Binding, Pin, Store, TakeCommands and
# SentCommands are questions.
@dataclass(slots=True)
class Binding:
    """What the device's registration says it is bound to: its pinned address and comm key."""

    device_id: str
    address: str | None = None
    comm_key: str | None = None


@dataclass(slots=True)
class Pin:
    """Pin `address` unless an address is pinned already (durably; the first pin wins);
    answered with the address pinned after that."""

    device_id: str
    address: str
    pinned: str | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    """Something the installer must see on the device: a refused request and why."""

    device_id: str
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    device_id: str


@dataclass(slots=True)
class Store:
    """Commit these inputs before going on (the transport refuses the request if that fails);
    answered with the records the store writer decoded from each."""

    pieces: list[Piece]
    accepted: list[int] = field(default_factory=list)


@dataclass(slots=True)
class TakeCommands:
    """Take the device's queued commands (they become `sent`); `key` is the id the terminal sees,
    which must stay unique among its open commands."""

    device_id: str
    limit: int
    key: Callable[[str], str]
    taken: list[QueuedCommand] = field(default_factory=list)


@dataclass(slots=True)
class SentCommands:
    """The ids of the device's commands waiting for an answer."""

    device_id: str
    ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FinishCommands:
    device_id: str
    results: list[Finish]


@dataclass(frozen=True, slots=True)
class Answer:
    text: str


@dataclass(frozen=True, slots=True)
class Refuse:
    status: int
    detail: str


Action = Heartbeat | Binding | Pin | Alert | Store | TakeCommands | SentCommands | FinishCommands | Answer | Refuse
Conversation = Iterator[Action]


def _serial_number_checked(request: Callable[..., Conversation]) -> Callable[..., Conversation]:
    """Every request names the terminal by its serial number: a malformed one is refused before anything."""

    @functools.wraps(request)
    def checked(session: AdmsSession, sn: str, *args: object) -> Conversation:
        if not zk_adms.valid_sn(sn):
            yield _BAD_SN
            return
        yield from request(session, sn, *args)

    return checked


class AdmsSession:
    def __init__(
        self,
        lookup: Callable[[str], Terminal | None],
        site_tz: tzinfo,
        max_piece: int,
        sample: int = SAMPLE_BYTES,
    ) -> None:
        """`max_piece`: the largest input the pipeline takes; `sample`: what a dead letter keeps of
        input from an unknown or untrusted sender."""
        self.lookup = lookup
        self.site_tz = site_tz
        self.max_piece = max_piece
        self.sample = sample

    @_serial_number_checked
    def handshake(
        self, sn: str, new_firmware: bool, now: datetime, peer: str, commkey: str | None = None
    ) -> Conversation:
        """GET /iclock/cdata: the options the terminal is to work with."""
        terminal = self.lookup(sn)
        if terminal is not None:
            if not (yield from self._trusted(terminal, peer, HANDSHAKE_CHANNEL, b"", commkey)):
                return
            yield Heartbeat(terminal.device_id)
        zone = terminal.tz if terminal is not None else self.site_tz
        yield Answer(zk_adms.handshake_reply(sn, offset_minutes(now, zone), new_firmware=new_firmware))

    @_serial_number_checked
    def cdata(self, sn: str, table: str, body: bytes, peer: str) -> Conversation:
        """POST /iclock/cdata: data pushed by a terminal; OK:<n> once it is stored."""
        terminal = self.lookup(sn)
        channel = zk_adms.channel_for_table(table)
        if terminal is not None:
            if not (yield from self._trusted(terminal, peer, channel or "iclock/cdata", body)):
                return
            yield Heartbeat(terminal.device_id)
        if channel is None:
            yield Answer("OK")
            return
        if terminal is None:
            note = f" ({len(body)} bytes, first {min(len(body), self.sample)} kept)"
            yield Store([Piece(channel, body[: self.sample], reject="unknown_device", note=note)])
            yield Answer(zk_adms.cdata_reply(0))
            return
        # A backlog upload larger than one pipeline input is stored in line-aligned pieces.
        store = Store([Piece(channel, p, terminal.device_id) for p in zk_adms.split_lines(body, self.max_piece)])
        yield store
        if channel == zk_adms.TABLE_CHANNELS["OPERLOG"]:
            try:
                yield Answer(zk_adms.cdata_reply(len(zk_adms.parse_operlog(body).entries)))
            except DecodeError:
                yield Answer(zk_adms.cdata_reply(0))
            return
        yield Answer(zk_adms.cdata_reply(sum(store.accepted)))

    @_serial_number_checked
    def getrequest(self, sn: str, peer: str) -> Conversation:
        """GET /iclock/getrequest: the terminal's poll; its queued commands (now sent), or OK."""
        terminal = self.lookup(sn)
        if terminal is None:
            yield Answer("OK")
            return
        if not (yield from self._trusted(terminal, peer, GETREQUEST_CHANNEL, b"")):
            return
        yield Heartbeat(terminal.device_id)
        take = TakeCommands(terminal.device_id, COMMANDS_PER_POLL, zk_adms.wire_id)
        yield take
        lines, failed = [], []
        for command in take.taken:
            try:
                lines.append((zk_adms.wire_id(command.id), zk_adms.command_text(command.name, command.args)))
            except DecodeError as exc:  # refused when queued; only a command stored before that check gets here
                failed.append(Finish(command.id, False, f"{exc.reason}: {exc.detail}"))
        if failed:
            yield FinishCommands(terminal.device_id, failed)
        yield Answer(zk_adms.getrequest_reply(lines))

    @_serial_number_checked
    def devicecmd(self, sn: str, body: bytes, peer: str) -> Conversation:
        """POST /iclock/devicecmd: command results, each finishing the command it names."""
        terminal = self.lookup(sn)
        if terminal is None:
            yield Answer("OK")
            return
        if not (yield from self._trusted(terminal, peer, DEVICECMD_CHANNEL, body)):
            return
        yield Heartbeat(terminal.device_id)
        note = f" (device {terminal.device_id})"  # refused results name the device only here
        try:
            parsed = zk_adms.parse_devicecmd(body)
        except DecodeError as exc:
            yield Store([Piece(DEVICECMD_CHANNEL, body, reject=exc.reason, note=note)])
            yield Answer("OK")
            return
        sent = SentCommands(terminal.device_id)
        yield sent
        # A terminal answers with the wire id; one that echoes the gateway's own id is understood too.
        by_wire = {zk_adms.wire_id(cid): cid for cid in sent.ids}
        by_wire.update({cid: cid for cid in sent.ids})
        results = [Finish(by_wire.get(reply.id), reply.ok, reply.detail, reply.id) for reply in parsed.replies]
        yield FinishCommands(terminal.device_id, results)
        if parsed.rejects:
            raw = b"\n".join(r.raw for r in parsed.rejects)
            yield Store([Piece(DEVICECMD_CHANNEL, raw, reject=parsed.rejects[0].reason, note=note)])
        yield Answer("OK")

    def _trusted(
        self, terminal: Terminal, peer: str, channel: str, body: bytes, commkey: str | None = None
    ) -> Generator[Action, None, bool]:
        """Whether the request comes from the terminal: its comm key (if it sent one and one is set) and
        its pinned address (pinned now if there is none). Refused otherwise, ending the conversation."""
        binding = Binding(terminal.device_id)
        yield binding
        if commkey is not None and binding.comm_key and not hmac.compare_digest(commkey, binding.comm_key):
            yield from self._refuse(terminal, "not_authorized", channel, body, f"wrong comm key from {peer}")
            return False
        pinned = binding.address
        if pinned is None:
            pin = Pin(terminal.device_id, normal_address(peer))
            yield pin
            pinned = pin.pinned
        if pinned is not None and same_address(pinned, peer):
            return True
        yield from self._refuse(terminal, "address_mismatch", channel, body, f"from {peer}, pinned to {pinned}")
        return False

    def _refuse(self, terminal: Terminal, reason: str, channel: str, body: bytes, why: str) -> Conversation:
        note = f" ({why}; {len(body)} bytes, first {min(len(body), self.sample)} kept)"
        yield Store([Piece(channel, body[: self.sample], terminal.device_id, reject=reason, note=note)])
        yield Alert(terminal.device_id, reason, why)
        yield Refuse(403, f"{reason}: this terminal is bound to another address or key; ask the installer")


def normal_address(address: str) -> str:
    """An IP address in one spelling (an IPv4-mapped IPv6 sender as IPv4); anything else as it is."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def same_address(pinned: str, peer: str) -> bool:
    return normal_address(pinned) == normal_address(peer)


HANDSHAKE_CHANNEL = "iclock/handshake"  # refused requests without a table are dead-lettered under these
GETREQUEST_CHANNEL = "iclock/getrequest"
_BAD_SN = Refuse(400, "SN: 1-64 letters, digits, _ or -")
