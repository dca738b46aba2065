"""JT/T 808 terminals over TCP: the platform side of register, authenticate, heartbeat and location.

One asyncio task per connection. It only reads, feeds the sans-IO
`jt808_session.Session`, and carries out what the session asks: writes its
replies, stores its dead letters and decoded fixes through the store writer
(the 0x8001 for a location follows the commit, so the terminal resends what
was not answered), and looks up auth codes and records heartbeats in worker
threads (both touch the database). A silent connection is closed after
`idle_timeout`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from gateway.core.metrics import Metrics
from gateway.devices.jt808_session import (
    Action,
    Close,
    Counted,
    DeadLetter,
    Heartbeat,
    NeedAuthCode,
    Send,
    Session,
    Store,
    Terminal,
)
from gateway.management.registry import Registry
from gateway.pipeline.queue import Inbound, IngestQueue, LoopAcker, submit

log = logging.getLogger(__name__)

CHANNEL = "jt808/location"  # the pipeline channel of 0x0200 and 0x0704 frames
COMMIT_TIMEOUT_S = 10.0
READ_SIZE = 4096


class Jt808Server:
    def __init__(
        self,
        listen: str,
        queue: IngestQueue,
        registry: Registry,
        metrics: Metrics,
        *,
        auth_code: Callable[[str], str | None],
        heartbeat: Callable[[str], object],
        accept_bad_checksum: bool = True,
        idle_timeout: float = 180.0,
    ) -> None:
        """`auth_code(device_id) -> str | None` and `heartbeat(device_id)` are blocking (run in threads)."""
        host, _, port = listen.rpartition(":")
        self.host, self.port = host.strip("[]") or "0.0.0.0", int(port)
        self.queue = queue
        self.registry = registry
        self.metrics = metrics
        self.auth_code = auth_code
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
            elif isinstance(action, NeedAuthCode):
                pending.extend(session.auth_code(await asyncio.to_thread(self.auth_code, action.device_id)))
            elif isinstance(action, Store):
                item = Inbound("tcp", CHANNEL, action.frame, action.device_id, sender=conn.peer, decoded=action.decoded)
                pending.extend(session.stored(await self._commit(item)))
            elif isinstance(action, Close):
                return False
        return True

    def _lookup(self, phone: str) -> Terminal | None:
        device = self.registry.by_identity("jt808", phone)
        return Terminal(device.id, device.tz) if device is not None else None

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
