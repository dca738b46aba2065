"""The platform's side of one JT/T 808 terminal connection, with no I/O: bytes in, actions out.

A terminal registers (0x0100, answered with an auth code while it is not
bound), authenticates (0x0102), then sends heartbeats (0x0002), locations
(0x0200, 0x0704) and may deregister (0x0003, which unbinds it). The session holds what the conversation needs: the
deframer, the platform's own message serial, which terminal this is and
whether it has authenticated. The transport feeds it what it reads and
carries out the actions it returns, in order:

- `Send(data)`: write these bytes to the terminal.
- `Counted(problem)`: a frame was read ("none", "bad_checksum",
  "bad_length", "unparseable"), for the metrics.
- `DeadLetter(...)`: store this refused frame with its reason before going on.
- `Heartbeat(device_id)`: the terminal is alive (liveness is stored outside).
- `Unbind(device_id)`: the authenticated terminal deregistered: forget its
  binding (its code stops working) before the answer that follows.
- `Close()`: end the connection after what came before it.

Two questions only the outside can answer, because the answers come from the
database, are asked h11-style: the session returns the question as its last
action and reads no further until it is answered.

- `Bind(device_id)`: bind the terminal if it is not bound; answer with
  `bound(code)`, the fresh code of the new binding, or `bound(None)` when it
  was already bound.
- `CheckCode(device_id, code)`: answer with `checked(ok)`, whether the code
  is the one of the terminal's binding.
- `Store(...)`: the decoded fixes, to be committed; answer with
  `stored(ok)`. The terminal's 0x8001 follows the commit, so a terminal that
  hears nothing resends.

Who a phone number is, is asked through the `lookup` callable given at
construction: an in-memory table look-up with no I/O, and a question asked
on every frame, so a round trip through the transport would buy nothing.
Nothing here reads a clock: the idle limit is the transport's read timeout
and fix times come from the terminal.

Registration rules (who may register, which result and code it gets) live in
`_register` and `_registered`: that is where a change to them goes. A
connection belongs to the first phone it names; every dead letter passes
through `jt808.redact`, so no auth code is ever stored in one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo

from gateway.devices import jt808, jt808_location
from gateway.devices.base import Decoded
from gateway.devices.errors import DecodeError


@dataclass(frozen=True, slots=True)
class Terminal:
    """A provisioned terminal, as `lookup(phone)` finds it."""

    device_id: str
    tz: tzinfo
    terminal_id: str = ""  # what its 0x0100 must say, when set
    plate: str = ""


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes


@dataclass(frozen=True, slots=True)
class Counted:
    problem: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    frame: bytes  # as received between the delimiters
    device_id: str | None
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class _ForDevice:
    device_id: str


class Heartbeat(_ForDevice):
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Close:
    pass


class Unbind(_ForDevice):
    __slots__ = ()


class Bind(_ForDevice):
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class CheckCode:
    device_id: str
    code: str = field(repr=False)  # never in a log line


@dataclass(frozen=True, slots=True)
class Store:
    frame: bytes  # the raw frame, for the journal
    device_id: str
    decoded: Decoded


Question = Bind | CheckCode | Store
Action = Send | Counted | DeadLetter | Heartbeat | Unbind | Close | Question


@dataclass(slots=True)
class _Waiting:
    """A question asked, and what its answer completes."""

    ask: Question
    frame: jt808.Frame
    serial: int  # the platform serial of the reply
    content: bytes


class Session:
    def __init__(
        self,
        lookup: Callable[[str], Terminal | None],
        *,
        accept_bad_checksum: bool = True,
        max_frame: int = jt808.DEFAULT_MAX_FRAME,
    ) -> None:
        self.lookup = lookup
        self.accept_bad_checksum = accept_bad_checksum
        self.terminal: Terminal | None = None
        self.phone: str | None = None  # the connection's terminal, from its first frame
        self.authenticated = False
        self.closed = False
        self.serial = 0  # the platform's own message serial
        self._deframer = jt808.Deframer(max_frame)
        self._frames: deque[bytes] = deque()
        self._waiting: _Waiting | None = None

    @property
    def device_id(self) -> str | None:
        return self.terminal.device_id if self.terminal else None

    @property
    def waiting(self) -> Question | None:
        """The question the session waits on, if any."""
        return self._waiting.ask if self._waiting else None

    def feed(self, data: bytes) -> list[Action]:
        """Bytes read from the terminal; the actions they lead to (up to the first question)."""
        self._frames.extend(self._deframer.feed(data))
        return self._run([])

    def bound(self, code: str | None) -> list[Action]:
        """The answer to `Bind`: the new binding's code, None if the terminal was bound already."""
        return self._run(self._registered(self._answer(Bind), code))

    def checked(self, ok: bool) -> list[Action]:
        """The answer to `CheckCode`: whether the presented code is the binding's."""
        return self._run(self._authenticated(self._answer(CheckCode), ok))

    def stored(self, ok: bool) -> list[Action]:
        """The answer to `Store`: whether the fixes were committed."""
        waiting = self._answer(Store)
        result = jt808.OK if ok else jt808.FAILED
        return self._run([Send(jt808.general_response(waiting.frame, waiting.serial, result))])

    def _answer(self, kind: type[Question]) -> _Waiting:
        waiting = self._waiting
        if waiting is None or not isinstance(waiting.ask, kind):
            raise RuntimeError(f"the session is not waiting for {kind.__name__}")
        self._waiting = None
        return waiting

    def _run(self, actions: list[Action]) -> list[Action]:
        while self._frames and self._waiting is None and not self.closed:
            actions += self._handle(self._frames.popleft())
        return actions

    def _handle(self, content: bytes) -> list[Action]:
        try:
            frame = jt808.parse_frame(content)
        except DecodeError as exc:
            return [Counted("unparseable"), _dead(content, self.device_id, exc.reason, exc.detail)]
        # Real terminals send wrong checksums and lengths: counted here, accepted or not by policy below.
        problem = "bad_checksum" if not frame.checksum_ok else "bad_length" if not frame.length_ok else "none"
        out: list[Action] = [Counted(problem)]
        self.serial = serial = (self.serial + 1) & 0xFFFF
        if self.phone is not None and frame.phone != self.phone:
            # Authenticating as one terminal must not let a connection speak for another.
            self.closed = True
            detail = f"phone {frame.phone!r} on the connection of {self.phone!r}"
            refused = Send(jt808.general_response(frame, serial, jt808.FAILED))
            return [*out, _dead(content, self.device_id, "not_authorized", detail), refused, Close()]
        self.phone = frame.phone
        terminal = self.lookup(frame.phone)
        if terminal is None:
            self.closed = True
            detail = f"terminal {frame.phone!r} is not provisioned"
            if frame.msg_id == jt808.REGISTER:
                reply = jt808.register_response(frame, serial, jt808.NO_SUCH_TERMINAL)
            else:
                reply = jt808.general_response(frame, serial, jt808.FAILED)
            return [*out, _dead(content, None, "unknown_device", detail), Send(reply), Close()]
        self.terminal = terminal
        device_id = terminal.device_id
        msg = frame.msg_id
        if msg == jt808.REGISTER:
            return [*out, *self._register(frame, serial, content)]
        if msg == jt808.AUTHENTICATE:
            return [*out, *self._authenticate(frame, serial, content)]
        if not self.authenticated:
            dead = _dead(content, device_id, "not_authenticated", f"0x{msg:04X} before authentication")
            return [*out, dead, Send(jt808.general_response(frame, serial, jt808.FAILED))]
        if msg == jt808.HEARTBEAT:
            return [*out, Heartbeat(device_id), Send(jt808.general_response(frame, serial, jt808.OK))]
        if msg == jt808.LOGOUT:
            self.closed = True
            # 0x0003 deregisters: the binding goes, and the terminal must register again.
            return [*out, Unbind(device_id), Send(jt808.general_response(frame, serial, jt808.OK)), Close()]
        if msg in (jt808.LOCATION, jt808.BATCH_LOCATION):
            return [*out, *self._location(frame, serial, content, terminal)]
        return [*out, Send(jt808.general_response(frame, serial, jt808.UNSUPPORTED))]

    def _register(self, frame: jt808.Frame, serial: int, content: bytes) -> list[Action]:
        # A phone number is printed on the SIM card: the body must match what was provisioned, and only
        # an unbound terminal is given a code (a bound one is unbound by an installer or by its 0x0003).
        assert self.terminal is not None
        device_id = self.terminal.device_id
        try:
            registration = jt808.parse_register(frame.body, frame.version)
        except DecodeError as exc:
            refused = jt808.register_response(frame, serial, jt808.NO_SUCH_TERMINAL)
            return [_dead(content, device_id, exc.reason, exc.detail), Send(refused)]
        mismatch = _mismatch(self.terminal, registration)
        if mismatch is not None:
            result, detail = mismatch
            refused = jt808.register_response(frame, serial, result)
            return [_dead(content, device_id, "not_authorized", detail), Send(refused)]
        ask = Bind(device_id)
        self._waiting = _Waiting(ask, frame, serial, content)
        return [ask]

    def _registered(self, waiting: _Waiting, code: str | None) -> list[Action]:
        frame, serial = waiting.frame, waiting.serial
        if code is None:
            dead = _dead(waiting.content, self.device_id, "not_authorized", "terminal already bound")
            return [dead, Send(jt808.register_response(frame, serial, jt808.TERMINAL_TAKEN))]
        return [Send(jt808.register_response(frame, serial, jt808.REGISTERED, code))]

    def _authenticate(self, frame: jt808.Frame, serial: int, content: bytes) -> list[Action]:
        assert self.terminal is not None
        try:
            presented = jt808.parse_auth(frame.body, frame.version)
        except DecodeError as exc:
            dead = _dead(content, self.terminal.device_id, exc.reason, exc.detail)
            return [dead, Send(jt808.general_response(frame, serial, jt808.BAD_MESSAGE))]
        ask = CheckCode(self.terminal.device_id, presented)
        self._waiting = _Waiting(ask, frame, serial, content)
        return [ask]

    def _authenticated(self, waiting: _Waiting, ok: bool) -> list[Action]:
        assert self.terminal is not None
        device_id, frame = self.terminal.device_id, waiting.frame
        if ok:
            self.authenticated = True
            return [Heartbeat(device_id), Send(jt808.general_response(frame, waiting.serial, jt808.OK))]
        self.closed = True
        dead = _dead(waiting.content, device_id, "not_authorized", "wrong auth code")
        return [dead, Send(jt808.general_response(frame, waiting.serial, jt808.FAILED)), Close()]

    def _location(self, frame: jt808.Frame, serial: int, content: bytes, terminal: Terminal) -> list[Action]:
        if not frame.checksum_ok and not self.accept_bad_checksum:
            dead = _dead(content, terminal.device_id, "bad_checksum", "checksum mismatch (refused by policy)")
            return [dead, Send(jt808.general_response(frame, serial, jt808.BAD_MESSAGE))]
        try:
            decoded = jt808_location.decode(frame, terminal.device_id, terminal.tz)
        except DecodeError as exc:
            # Stored as a reject: dead-lettered with its reason, and the terminal need not resend it.
            decoded = Decoded(rejects=[DecodeError(exc.reason, exc.detail, exc.raw or content)])
        ask = Store(content, terminal.device_id, decoded)
        self._waiting = _Waiting(ask, frame, serial, content)
        return [ask]


def _dead(content: bytes, device_id: str | None, reason: str, detail: str) -> DeadLetter:
    return DeadLetter(jt808.redact(content), device_id, reason, detail)


def _same(recorded: str, sent: str) -> bool:
    return recorded.strip().upper() == sent.strip().upper()


def _mismatch(terminal: Terminal, registration: jt808.Registration) -> tuple[int, str] | None:
    """The 0x8100 result and dead-letter detail of a registration unlike the provisioned terminal."""
    if terminal.terminal_id and not _same(terminal.terminal_id, registration.terminal_id):
        return jt808.NO_SUCH_TERMINAL, "terminal id does not match the provisioned one"
    if terminal.plate and not _same(terminal.plate, registration.plate):
        return jt808.NO_SUCH_VEHICLE, "plate does not match the provisioned one"
    return None
