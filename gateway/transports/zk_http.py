"""ZKTeco ADMS ("iclock") terminals over HTTP: the routes under /iclock, on the API listener or on
their own (`[zk] listen`).

No bearer token (terminals cannot send one). A sender outside `[zk] allow` is
answered 403 before its body is read; a body over the route's limit is refused
on its Content-Length, or cut off where it passes the limit. Each route only reads the
request, runs the sans-IO conversation of gateway.devices.zk_session, carries
out its actions (heartbeats and command bookkeeping in worker threads, inputs
through the store writer) and writes its answer. What each request means is
documented there and in CONTRACT.md.

When the store cannot commit in time (or the gateway is stopping) a data post
gets 503 and no OK: the terminal keeps the batch and resends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from gateway.devices import zk_adms
from gateway.devices.zk_session import (
    AdmsSession,
    Alert,
    Answer,
    Binding,
    Conversation,
    FinishCommands,
    Heartbeat,
    Pin,
    QueuedCommand,
    Refuse,
    SentCommands,
    Store,
    TakeCommands,
)
from gateway.management.commands import Commands
from gateway.pipeline.queue import Inbound, IngestQueue, LoopAcker, submit
from gateway.transports.zk_trust import AllowList, ZkBindings

log = logging.getLogger(__name__)

COMMIT_TIMEOUT_S = 30.0  # a data post waits this long for its commit, then 503 (the terminal resends)
MAX_BODY = 16 * 1024 * 1024  # larger posts: 413 (the pipeline dead-letters anything over [mqtt] max_payload)
MAX_DEVICECMD_BODY = 1024 * 1024


class _Error(BaseModel):
    detail: str


SN = Annotated[str, Query(alias="SN", min_length=1, max_length=64, description="the terminal's serial number")]
TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": _Error, "description": "malformed serial number"},
    403: {"model": _Error, "description": "sender not allowed, or not the address or key the terminal is bound to"},
    413: {"model": _Error, "description": "body too large"},
    422: {"model": _Error, "description": "invalid request"},
    503: {"model": _Error, "description": "not stored in time; the terminal resends"},
}
TEXT_BODY = {"requestBody": {"required": False, "content": {"text/plain": {"schema": {"type": "string"}}}}}


class ZkAdmsHttp:
    """`router` holds the routes; `heartbeat(device_id)` is blocking (run in a thread)."""

    def __init__(
        self,
        session: AdmsSession,
        queue: IngestQueue,
        heartbeat: Callable[[str], object],
        commands: Commands,
        bindings: ZkBindings,
        allow: AllowList | None = None,
    ) -> None:
        self.session = session
        self.queue = queue
        self.heartbeat = heartbeat
        self.commands = commands
        self.bindings = bindings
        self.allow = allow or AllowList([])
        self._acker: LoopAcker | None = None
        # Not in /openapi.json: it documents the bearer-token API, whose every operation has a role
        # (tests/test_roles.py checks that). The device protocol is documented in zk_session and CONTRACT.md.
        self.router = router = APIRouter(
            prefix="/iclock",
            tags=["zk-adms"],
            responses=RESPONSES,
            include_in_schema=False,
            dependencies=[Depends(self._allowed)],  # before any body is read
        )
        router.add_api_route("/cdata", self.handshake, methods=["GET"], response_model=None, responses={200: TEXT})
        router.add_api_route(
            "/cdata", self.cdata, methods=["POST"], response_model=None, responses={200: TEXT}, openapi_extra=TEXT_BODY
        )
        router.add_api_route(
            "/getrequest", self.getrequest, methods=["GET"], response_model=None, responses={200: TEXT}
        )
        router.add_api_route(
            "/devicecmd",
            self.devicecmd,
            methods=["POST"],
            response_model=None,
            responses={200: TEXT},
            openapi_extra=TEXT_BODY,
        )

    def _allowed(self, request: Request) -> None:
        if not self.allow.allows(_host(request)):
            raise HTTPException(403, "this address may not push to the gateway ([zk] allow)")

    async def handshake(
        self,
        request: Request,
        sn: SN,
        pushver: Annotated[str | None, Query(max_length=32, description="present on newer firmware")] = None,
        options: Annotated[str | None, Query(max_length=32)] = None,
        pushcommkey: Annotated[str | None, Query(max_length=64, description="sent when a comm key is set")] = None,
    ) -> PlainTextResponse:
        """The handshake: the options the terminal is to work with."""
        now = datetime.now(UTC)
        conversation = self.session.handshake(sn, pushver is not None, now, _host(request), pushcommkey)
        return await self._run(conversation, _sender(request, sn))

    async def cdata(
        self,
        request: Request,
        sn: SN,
        table: Annotated[str, Query(max_length=32, description="ATTLOG, OPERLOG, ATTPHOTO, ...")] = "",
        stamp: Annotated[str | None, Query(alias="Stamp", max_length=32)] = None,
    ) -> PlainTextResponse:
        """Data pushed by a terminal; answered OK:<n> once it is stored."""
        body = await _body(request, MAX_BODY)
        if zk_adms.channel_for_table(table) is None:
            log.debug("iclock: %s sent table %r (%d bytes): not stored", sn, table[:32], len(body))
        return await self._run(self.session.cdata(sn, table, body, _host(request)), _sender(request, sn))

    async def getrequest(self, request: Request, sn: SN) -> PlainTextResponse:
        """The terminal's poll: its queued commands (now sent), or OK."""
        return await self._run(self.session.getrequest(sn, _host(request)), _sender(request, sn))

    async def devicecmd(self, request: Request, sn: SN) -> PlainTextResponse:
        """Command results: each finishes the command it names."""
        body = await _body(request, MAX_DEVICECMD_BODY)
        return await self._run(self.session.devicecmd(sn, body, _host(request)), _sender(request, sn))

    async def _run(self, conversation: Conversation, sender: str) -> PlainTextResponse:
        for action in conversation:
            if isinstance(action, Answer):
                return PlainTextResponse(action.text)
            if isinstance(action, Refuse):
                raise HTTPException(action.status, action.detail)
            if isinstance(action, Heartbeat):
                await asyncio.to_thread(self.heartbeat, action.device_id)
            elif isinstance(action, Binding):
                action.address, action.comm_key = await asyncio.to_thread(self.bindings.binding, action.device_id)
            elif isinstance(action, Pin):
                action.pinned = await asyncio.to_thread(self.bindings.pin, action.device_id, action.address)
            elif isinstance(action, Alert):
                await asyncio.to_thread(self.bindings.alert, action.device_id, action.reason, action.detail)
            elif isinstance(action, Store):
                action.accepted = await self._store(action, sender)
            elif isinstance(action, TakeCommands):
                action.taken = await asyncio.to_thread(self._take, action)
            elif isinstance(action, SentCommands):
                action.ids = await asyncio.to_thread(self._sent, action.device_id)
            elif isinstance(action, FinishCommands):
                await asyncio.to_thread(self._finish, action)
        raise RuntimeError("the conversation ended without an answer")

    def _take(self, take: TakeCommands) -> list[QueuedCommand]:
        taken = self.commands.take_queued(take.device_id, take.limit, key=lambda c: take.key(c.id))
        return [QueuedCommand(c.id, c.name, c.args) for c in taken]

    def _sent(self, device_id: str) -> list[str]:
        return [c.id for c in self.commands.sent(device_id)]

    def _finish(self, finish: FinishCommands) -> None:
        for result in finish.results:
            finished = result.command_id is not None and self.commands.finish(
                result.command_id, result.ok, result.detail, finish.device_id
            )
            if not finished and result.answered_id is not None:
                log.info(
                    "iclock: device %s answered command %r, which is not waiting for an answer",
                    finish.device_id,
                    result.answered_id,
                )

    async def _store(self, store: Store, sender: str) -> list[int]:
        """Queue the inputs and return once the store writer committed them (records or dead letters)."""
        if any(p.reject == "unknown_device" for p in store.pieces):
            log.info("iclock: data from unregistered terminal (%s): dead-lettered as unknown_device", sender)
        items = [
            Inbound("http", p.channel, p.payload, device_id=p.device_id, reject=p.reject, sender=sender + p.note)
            for p in store.pieces
        ]
        if self._acker is None:
            self._acker = LoopAcker(asyncio.get_running_loop())
        acker, futures = self._acker, []
        for item in items:
            item.acker, item.token = acker, acker.future()
            futures.append(item.token)
            if not await submit(self.queue, item, COMMIT_TIMEOUT_S):
                raise HTTPException(503, "the gateway is stopping or not taking input now; send again later")
        try:
            await asyncio.wait_for(asyncio.gather(*futures), COMMIT_TIMEOUT_S)
        except TimeoutError:
            raise HTTPException(503, "not stored in time; send again later") from None
        return [item.accepted for item in items]


def _host(request: Request) -> str:
    return request.client.host if request.client is not None else "?"


def _sender(request: Request, sn: str) -> str:
    return f"SN {sn} at {_host(request)}"


async def _body(request: Request, limit: int) -> bytes:
    """The body, refused (413) on its declared length before reading, or where it passes `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
