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

Unknown SN: a data post is dead-lettered (`unknown_device`, raw body kept) and,
once that is committed, answered `OK:0`. The terminal then moves on; an error
status instead would have it resend the same batch forever (every ErrorDelay)
and hold its newer punches behind it. The dead letter keeps the data for
whoever registers the terminal. Handshake and getrequest of an unknown SN are
answered as usual (options with the site's zone / `OK`) and store nothing.

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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from gateway.core.timeutil import offset_minutes
from gateway.devices import zk_adms
from gateway.devices.errors import DecodeError

COMMANDS_PER_POLL = 20
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


# Actions. Heartbeat and FinishCommands are effects; Store, TakeCommands and SentCommands are questions.
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


Action = Heartbeat | Store | TakeCommands | SentCommands | FinishCommands | Answer | Refuse
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
        self, lookup: Callable[[str], Terminal | None], site_tz: tzinfo, max_piece: int, dead_raw_limit: int
    ) -> None:
        """`max_piece`: the largest input the pipeline takes; `dead_raw_limit`: what a dead letter keeps."""
        self.lookup = lookup
        self.site_tz = site_tz
        self.max_piece = max_piece
        self.dead_raw_limit = dead_raw_limit

    @_serial_number_checked
    def handshake(self, sn: str, new_firmware: bool, now: datetime) -> Conversation:
        """GET /iclock/cdata: the options the terminal is to work with."""
        terminal = self.lookup(sn)
        if terminal is not None:
            yield Heartbeat(terminal.device_id)
        zone = terminal.tz if terminal is not None else self.site_tz
        yield Answer(zk_adms.handshake_reply(sn, offset_minutes(now, zone), new_firmware=new_firmware))

    @_serial_number_checked
    def cdata(self, sn: str, table: str, body: bytes) -> Conversation:
        """POST /iclock/cdata: data pushed by a terminal; OK:<n> once it is stored."""
        terminal = self.lookup(sn)
        if terminal is not None:
            yield Heartbeat(terminal.device_id)
        channel = zk_adms.channel_for_table(table)
        if channel is None:
            yield Answer("OK")
            return
        if terminal is None:
            pieces = zk_adms.split_lines(body, self.dead_raw_limit)  # a dead letter keeps this much of its input
            yield Store([Piece(channel, p, reject="unknown_device") for p in pieces])
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
    def getrequest(self, sn: str) -> Conversation:
        """GET /iclock/getrequest: the terminal's poll; its queued commands (now sent), or OK."""
        terminal = self.lookup(sn)
        if terminal is None:
            yield Answer("OK")
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
    def devicecmd(self, sn: str, body: bytes) -> Conversation:
        """POST /iclock/devicecmd: command results, each finishing the command it names."""
        terminal = self.lookup(sn)
        if terminal is None:
            yield Answer("OK")
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


_BAD_SN = Refuse(400, "SN: 1-64 letters, digits, _ or -")
