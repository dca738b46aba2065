"""JT/T 808 terminals over TCP: the platform side of register, authenticate, heartbeat and location.

One asyncio task per connection. It only reads, feeds the sans-IO
`jt808_session.Session`, and carries out what the session asks: writes its
replies, stores its dead letters and decoded fixes through the store writer
(the 0x8001 for a location follows the commit, so the terminal resends what
was not answered), and binds, checks codes, unbinds and records heartbeats in
worker threads (all touch the database). A silent connection is closed after
`idle_timeout`; one from outside the `allow` networks is closed before a byte
is read, and only counted (`gateway_jt808_refused_total{reason="not_allowed"}`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from gateway.core.metrics import Metrics
from gateway.devices.jt808_session import (
    Action,
    Bind,
    CheckCode,
    Close,
    Counted,
    DeadLetter,
    Heartbeat,
    Send,
    Session,
    Store,
    Terminal,
    Unbind,
)
from gateway.management.registry import Registry
from gateway.pipeline.queue import Inbound, IngestQueue, LoopAcker, submit

log = logging.getLogger(__name__)

CHANNEL = "jt808/location"  # the pipeline channel of 0x0200 and 0x0704 frames
COMMIT_TIMEOUT_S = 10.0
READ_SIZE = 4096
REFUSALS_LOGGED = 10  # then one in LOG_EVERY: a refused flood must not flood the log


class Bindings(Protocol):
    """Terminal bindings in the database (management/jt808_bindings.py); blocking calls."""

    def bind(self, device_id: str, actor: str) -> str | None: ...
    def check(self, device_id: str, code: str, actor: str) -> bool: ...
    def unbind(self, device_id: str, actor: str) -> None: ...


LOG_EVERY = 1000


class Jt808Server:
    def __init__(
        self,
        listen: str,
        queue: IngestQueue,
        registry: Registry,
        metrics: Metrics,
        *,
        bindings: Bindings,
        heartbeat: Callable[[str], object],
        accept_bad_checksum: bool = True,
        idle_timeout: float = 180.0,
        allow: Sequence[str] = (),
    ) -> None:
        """`heartbeat(device_id)` is blocking (run in a thread); `allow`: CIDRs, empty = any address."""
        host, _, port = listen.rpartition(":")
        self.host, self.port = host.strip("[]") or "0.0.0.0", int(port)
        self.queue = queue
        self.registry = registry
        self.metrics = metrics
        self.bindings = bindings
        self.allow = [ipaddress.ip_network(cidr, strict=False) for cidr in allow]
        self.refused = 0
        self.heartbeat = heartbeat
        self.accept_bad_checksum = accept_bad_checksum
        self.idle_timeout = idle_timeout
        self._server: asyncio.AbstractServer | None = None
        self._acker: LoopAcker | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._acker = LoopAcker(asyncio.get_running_loop())
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("JT/T 808 server listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        if not self._allowed(peer):
            self._connections.discard(task)
            writer.transport.abort()  # nothing read, nothing answered
            return
        session = Session(self._lookup, accept_bad_checksum=self.accept_bad_checksum)
        conn = _Connection(f"{peer[0]}:{peer[1]}" if peer else "?", session)
        try:
            await self._converse(reader, writer, conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("JT/T 808 connection %s failed", conn.peer)
        finally:
            self._connections.discard(task)
            writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Connection) -> None:
        while True:
            try:
                data = await asyncio.wait_for(reader.read(READ_SIZE), self.idle_timeout)
            except TimeoutError:
                log.info("JT/T 808 %s silent for %.0f s: closed", conn.name, self.idle_timeout)
                return
            if not data:
                return
            if not await self._perform(conn.session.feed(data), writer, conn):
                return

    async def _perform(self, actions: list[Action], writer: asyncio.StreamWriter, conn: _Connection) -> bool:
        """Carry out the session's actions in order, answering its questions; False once it closes."""
        session, pending = conn.session, deque(actions)
        while pending:
            action = pending.popleft()
            if isinstance(action, Send):
                writer.write(action.data)
                await writer.drain()
            elif isinstance(action, Counted):
                self.metrics.jt808_frames.labels(action.problem).inc()
            elif isinstance(action, DeadLetter):
                await self._dead(action, conn)
            elif isinstance(action, Heartbeat):
                await asyncio.to_thread(self.heartbeat, action.device_id)
            elif isinstance(action, Bind):
                code = await asyncio.to_thread(self.bindings.bind, action.device_id, f"jt808 {conn.peer}")
                pending.extend(session.bound(code))
            elif isinstance(action, CheckCode):
                ok = await asyncio.to_thread(self.bindings.check, action.device_id, action.code, f"jt808 {conn.peer}")
                pending.extend(session.checked(ok))
            elif isinstance(action, Unbind):
                await asyncio.to_thread(self.bindings.unbind, action.device_id, f"jt808 {conn.peer}")
            elif isinstance(action, Store):
                item = Inbound("tcp", CHANNEL, action.frame, action.device_id, sender=conn.peer, decoded=action.decoded)
                pending.extend(session.stored(await self._commit(item)))
            elif isinstance(action, Close):
                return False
        return True

    def _lookup(self, phone: str) -> Terminal | None:
        device = self.registry.by_identity("jt808", phone)
        if device is None:
            return None
        return Terminal(device.id, device.tz, device.config.get("terminal_id", ""), device.config.get("plate", ""))

    def _allowed(self, peer: Any) -> bool:
        if not self.allow:
            return True
        try:
            address = ipaddress.ip_address(peer[0])
        except (TypeError, ValueError, IndexError):
            address = None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address is not None and any(address in network for network in self.allow):
            return True
        self.refused += 1
        self.metrics.jt808_refused.labels("not_allowed").inc()
        if self.refused <= REFUSALS_LOGGED or self.refused % LOG_EVERY == 0:
            log.warning("JT/T 808 connection from %s refused: outside [jt808] allow (%d so far)", peer, self.refused)
        return False

    async def _commit(self, item: Inbound) -> bool:
        assert self._acker is not None
        item.acker, item.token = self._acker, self._acker.future()
        if not await submit(self.queue, item, COMMIT_TIMEOUT_S):
            return False
        try:
            return await asyncio.wait_for(item.token, COMMIT_TIMEOUT_S)
        except TimeoutError:
            return False

    async def _dead(self, dead: DeadLetter, conn: _Connection) -> None:
        log.debug("JT/T 808 %s: %s (%s)", conn.name, dead.reason, dead.detail)
        sender = f"{conn.peer} {dead.detail}"[:200]
        await self._commit(Inbound("tcp", CHANNEL, dead.frame, dead.device_id, reject=dead.reason, sender=sender))


class _Connection:
    __slots__ = ("peer", "session")

    def __init__(self, peer: str, session: Session) -> None:
        self.peer = peer
        self.session = session

    @property
    def name(self) -> str:
        device_id = self.session.device_id
        return f"{device_id} ({self.peer})" if device_id else self.peer
