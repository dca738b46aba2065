"""JT/T 808 terminals over TCP: the platform side of register, authenticate, heartbeat and location.

One asyncio task per connection. Frames are decoded by the sans-IO codec; a
location or batch frame goes through the store writer and the terminal gets
its 0x8001 only after the commit (it resends what was not answered). A
terminal that is not provisioned, or does not authenticate, is refused and its
frame dead-lettered; a frame that cannot be parsed is dead-lettered and the
connection carries on; a silent connection is closed after `idle_timeout`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

from gateway.core.metrics import Metrics
from gateway.devices import jt808
from gateway.devices.errors import DecodeError
from gateway.management.registry import DeviceInfo, Registry
from gateway.pipeline.queue import Inbound, IngestQueue, LoopAcker, submit

log = logging.getLogger(__name__)

CHANNEL = "jt808/location"  # the writer's decoder for 0x0200 and 0x0704 frames
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
        auth_code: Any,
        heartbeat: Any,
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
        session = _Session(f"{peer[0]}:{peer[1]}" if peer else "?")
        try:
            await self._converse(reader, writer, session)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("JT/T 808 connection %s failed", session.peer)
        finally:
            self._connections.discard(task)
            writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, session: _Session) -> None:
        deframer = jt808.Deframer()
        while True:
            try:
                data = await asyncio.wait_for(reader.read(READ_SIZE), self.idle_timeout)
            except TimeoutError:
                log.info("JT/T 808 %s silent for %.0f s: closed", session.name, self.idle_timeout)
                return
            if not data:
                return
            for content in deframer.feed(data):
                reply = await self._handle(content, session)
                if reply:
                    writer.write(reply)
                    await writer.drain()
                if session.closing:
                    return

    async def _handle(self, content: bytes, session: _Session) -> bytes | None:
        try:
            frame = jt808.parse_frame(content)
        except DecodeError as exc:
            self.metrics.jt808_frames.labels("unparseable").inc()
            await self._dead(content, session.device, exc.reason, exc.detail, session)
            return None
        # Real terminals send wrong checksums and lengths: counted here, accepted or not by policy below.
        problem = "bad_checksum" if not frame.checksum_ok else "bad_length" if not frame.length_ok else "none"
        self.metrics.jt808_frames.labels(problem).inc()
        session.serial = (session.serial + 1) & 0xFFFF
        device = self.registry.by_identity("jt808", frame.phone)
        if device is None:
            await self._dead(content, None, "unknown_device", f"terminal {frame.phone!r} is not provisioned", session)
            session.closing = True
            if frame.msg_id == jt808.REGISTER:
                return jt808.register_response(frame, session.serial, jt808.NO_SUCH_TERMINAL)
            return jt808.general_response(frame, session.serial, jt808.FAILED)
        session.device = device
        msg = frame.msg_id
        if msg == jt808.REGISTER:
            code = await asyncio.to_thread(self.auth_code, device.id)
            return jt808.register_response(frame, session.serial, jt808.REGISTERED, code or "")
        if msg == jt808.AUTHENTICATE:
            return await self._authenticate(frame, device, content, session)
        if not session.authenticated:
            await self._dead(content, device, "not_authenticated", f"0x{msg:04X} before authentication", session)
            return jt808.general_response(frame, session.serial, jt808.FAILED)
        if msg == jt808.HEARTBEAT:
            await asyncio.to_thread(self.heartbeat, device.id)
            return jt808.general_response(frame, session.serial, jt808.OK)
        if msg == jt808.LOGOUT:
            session.closing = True
            return jt808.general_response(frame, session.serial, jt808.OK)
        if msg in (jt808.LOCATION, jt808.BATCH_LOCATION):
            if not frame.checksum_ok and not self.accept_bad_checksum:
                await self._dead(content, device, "bad_checksum", "checksum mismatch (refused by policy)", session)
                return jt808.general_response(frame, session.serial, jt808.BAD_MESSAGE)
            stored = await self._commit(Inbound("tcp", CHANNEL, content, device.id, sender=session.peer))
            return jt808.general_response(frame, session.serial, jt808.OK if stored else jt808.FAILED)
        return jt808.general_response(frame, session.serial, jt808.UNSUPPORTED)

    async def _authenticate(self, frame: jt808.Frame, device: DeviceInfo, content: bytes, session: _Session) -> bytes:
        try:
            presented = jt808.parse_auth(frame.body, frame.version)
        except DecodeError as exc:
            await self._dead(content, device, exc.reason, exc.detail, session)
            return jt808.general_response(frame, session.serial, jt808.BAD_MESSAGE)
        expected = await asyncio.to_thread(self.auth_code, device.id) or ""
        if expected and hmac.compare_digest(presented.encode(), expected.encode()):
            session.authenticated = True
            await asyncio.to_thread(self.heartbeat, device.id)
            return jt808.general_response(frame, session.serial, jt808.OK)
        await self._dead(content, device, "not_authorized", "wrong auth code", session)
        session.closing = True
        return jt808.general_response(frame, session.serial, jt808.FAILED)

    async def _commit(self, item: Inbound) -> bool:
        assert self._acker is not None
        item.acker, item.token = self._acker, self._acker.future()
        if not await submit(self.queue, item, COMMIT_TIMEOUT_S):
            return False
        try:
            return await asyncio.wait_for(item.token, COMMIT_TIMEOUT_S)
        except TimeoutError:
            return False

    async def _dead(
        self, content: bytes, device: DeviceInfo | None, reason: str, detail: str, session: _Session
    ) -> None:
        log.debug("JT/T 808 %s: %s (%s)", session.name, reason, detail)
        await self._commit(
            Inbound(
                "tcp",
                CHANNEL,
                content,
                device.id if device else None,
                reject=reason,
                sender=f"{session.peer} {detail}"[:200],
            )
        )


class _Session:
    __slots__ = ("peer", "device", "authenticated", "serial", "closing")

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.device: DeviceInfo | None = None
        self.authenticated = False
        self.serial = 0  # the platform's own message serial
        self.closing = False

    @property
    def name(self) -> str:
        return f"{self.device.id} ({self.peer})" if self.device else self.peer
