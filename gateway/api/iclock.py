"""ZKTeco ADMS ("iclock") push protocol: the gateway as the server terminals push to.

Served on the API listener without a bearer token (terminals cannot send one);
a terminal is known by its serial number `SN`, registered as a `zk-adms` device
with config {"sn": ...}. Parsing and formatting live in gateway.devices.zk_adms.

- GET  /iclock/cdata       handshake: the options (per-device TimeZone).
- POST /iclock/cdata       table=ATTLOG punch lines / table=OPERLOG user lines: queued
                           to the store writer and answered `OK:<n>` only once
                           committed (n = punches decoded; for OPERLOG the lines
                           read). Bad lines are dead-lettered with their reason. A
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

When the store cannot commit in time (or the gateway is stopping) a data post
gets 503 and no OK: the terminal keeps the batch and resends it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse

from gateway.api.errors import Error
from gateway.core.timeutil import offset_minutes
from gateway.devices import zk_adms
from gateway.devices.errors import DecodeError
from gateway.management.registry import DeviceInfo
from gateway.pipeline.queue import Inbound, LoopAcker, submit
from gateway.pipeline.writer import DEAD_RAW_LIMIT
from gateway.services import Services

log = logging.getLogger(__name__)

COMMIT_TIMEOUT_S = 30.0  # a data post waits this long for its commit, then 503 (the terminal resends)
MAX_BODY = 16 * 1024 * 1024  # larger posts: 413 (the pipeline dead-letters anything over [mqtt] max_payload)
MAX_DEVICECMD_BODY = 1024 * 1024
COMMANDS_PER_POLL = 20

SN = Annotated[str, Query(alias="SN", min_length=1, max_length=64, description="the terminal's serial number")]
TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "malformed serial number"},
    413: {"model": Error, "description": "body too large"},
    422: {"model": Error, "description": "invalid request"},
    503: {"model": Error, "description": "not stored in time; the terminal resends"},
}
TEXT_BODY = {"requestBody": {"required": False, "content": {"text/plain": {"schema": {"type": "string"}}}}}

# Not in /openapi.json: it documents the bearer-token API, whose every operation has a role
# (tests/test_roles.py checks that). The device protocol is documented here and in CONTRACT.md.
router = APIRouter(prefix="/iclock", tags=["zk-adms"], responses=RESPONSES, include_in_schema=False)


def _svc(request: Request) -> Services:
    return request.app.state.services


def _device(svc: Services, sn: str) -> DeviceInfo | None:
    if not zk_adms.valid_sn(sn):
        raise HTTPException(400, "SN: 1-64 letters, digits, _ or -")
    return svc.registry.by_zk_sn(sn)


def _sender(request: Request, sn: str) -> str:
    host = request.client.host if request.client is not None else "?"
    return f"SN {sn} at {host}"


async def _heartbeat(svc: Services, device: DeviceInfo | None) -> None:
    if device is not None:
        await asyncio.to_thread(svc.liveness.heartbeat, device.id)


async def _body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _acker(request: Request) -> LoopAcker:
    acker = getattr(request.app.state, "iclock_acker", None)
    if acker is None:
        acker = request.app.state.iclock_acker = LoopAcker(asyncio.get_running_loop())
    return acker


async def _commit(request: Request, svc: Services, *items: Inbound) -> None:
    """Queue the inputs and return once the store writer committed them (records or dead letters)."""
    acker = _acker(request)
    futures = []
    for item in items:
        item.acker, item.token = acker, acker.future()
        futures.append(item.token)
        if not await submit(svc.queue, item, COMMIT_TIMEOUT_S):
            raise HTTPException(503, "the gateway is stopping or not taking input now; send again later")
    try:
        await asyncio.wait_for(asyncio.gather(*futures), COMMIT_TIMEOUT_S)
    except TimeoutError:
        raise HTTPException(503, "not stored in time; send again later") from None


def _text(text: str) -> PlainTextResponse:
    return PlainTextResponse(text)


@router.get("/cdata", response_model=None, responses={200: TEXT})
async def handshake(
    request: Request,
    sn: SN,
    pushver: Annotated[str | None, Query(max_length=32, description="present on newer firmware")] = None,
    options: Annotated[str | None, Query(max_length=32)] = None,
) -> PlainTextResponse:
    """The handshake: the options the terminal is to work with."""
    svc = _svc(request)
    device = _device(svc, sn)
    await _heartbeat(svc, device)
    zone = device.tz if device is not None else ZoneInfo(svc.settings.site.timezone)
    offset = offset_minutes(datetime.now(UTC), zone)
    return _text(zk_adms.handshake_reply(sn, offset, new_firmware=pushver is not None))


@router.post("/cdata", response_model=None, responses={200: TEXT}, openapi_extra=TEXT_BODY)
async def cdata(
    request: Request,
    sn: SN,
    table: Annotated[str, Query(max_length=32, description="ATTLOG, OPERLOG, ATTPHOTO, ...")] = "",
    stamp: Annotated[str | None, Query(alias="Stamp", max_length=32)] = None,
) -> PlainTextResponse:
    """Data pushed by a terminal; answered OK:<n> once it is stored."""
    svc = _svc(request)
    body = await _body(request, MAX_BODY)
    device = _device(svc, sn)
    await _heartbeat(svc, device)
    channel = zk_adms.channel_for_table(table)
    if channel is None:
        log.debug("iclock: %s sent table %r (%d bytes): not stored", sn, table[:32], len(body))
        return _text("OK")
    sender = _sender(request, sn)
    if device is None:
        log.info("iclock: data from unregistered terminal SN %s: dead-lettered as unknown_device", sn)
        pieces = zk_adms.split_lines(body, DEAD_RAW_LIMIT)  # a dead letter keeps this much of its input
        rejected = [Inbound("http", channel, p, reject="unknown_device", sender=sender) for p in pieces]
        await _commit(request, svc, *rejected)
        return _text(zk_adms.cdata_reply(0))
    # A backlog upload larger than one pipeline input is stored in line-aligned pieces.
    pieces = zk_adms.split_lines(body, svc.pipeline.max_payload)
    items = [Inbound("http", channel, p, device_id=device.id, sender=sender) for p in pieces]
    await _commit(request, svc, *items)
    if channel == zk_adms.TABLE_CHANNELS["OPERLOG"]:
        try:
            return _text(zk_adms.cdata_reply(len(zk_adms.parse_operlog(body).entries)))
        except DecodeError:
            return _text(zk_adms.cdata_reply(0))
    return _text(zk_adms.cdata_reply(sum(item.accepted for item in items)))


@router.get("/getrequest", response_model=None, responses={200: TEXT})
async def getrequest(request: Request, sn: SN) -> PlainTextResponse:
    """The terminal's poll: its queued commands (now sent), or OK."""
    svc = _svc(request)
    device = _device(svc, sn)
    if device is None:
        return _text("OK")
    await _heartbeat(svc, device)
    lines = await asyncio.to_thread(_take_commands, svc, device.id)
    return _text(zk_adms.getrequest_reply(lines))


def _take_commands(svc: Services, device_id: str) -> list[tuple[str, str]]:
    lines = []
    taken = svc.commands.take_queued(device_id, COMMANDS_PER_POLL, key=lambda c: zk_adms.wire_id(c.id))
    for command in taken:
        try:
            lines.append((zk_adms.wire_id(command.id), zk_adms.command_text(command.name, command.args)))
        except DecodeError as exc:  # refused when queued; only a command stored before that check gets here
            svc.commands.finish(command.id, False, f"{exc.reason}: {exc.detail}", device_id)
    return lines


@router.post("/devicecmd", response_model=None, responses={200: TEXT}, openapi_extra=TEXT_BODY)
async def devicecmd(request: Request, sn: SN) -> PlainTextResponse:
    """Command results: each finishes the command it names."""
    svc = _svc(request)
    body = await _body(request, MAX_DEVICECMD_BODY)
    device = _device(svc, sn)
    if device is None:
        return _text("OK")
    await _heartbeat(svc, device)
    sender = _sender(request, sn) + f" (device {device.id})"
    try:
        parsed = zk_adms.parse_devicecmd(body)
    except DecodeError as exc:
        await _commit(request, svc, Inbound("http", "iclock/devicecmd", body, reject=exc.reason, sender=sender))
        return _text("OK")
    await asyncio.to_thread(_finish_commands, svc, device.id, parsed.replies)
    if parsed.rejects:
        raw = b"\n".join(r.raw for r in parsed.rejects)
        reason = parsed.rejects[0].reason
        await _commit(request, svc, Inbound("http", "iclock/devicecmd", raw, reject=reason, sender=sender))
    return _text("OK")


def _finish_commands(svc: Services, device_id: str, replies: list[zk_adms.CommandReply]) -> None:
    sent = svc.commands.sent(device_id)
    by_wire = {zk_adms.wire_id(c.id): c.id for c in sent}
    by_wire.update({c.id: c.id for c in sent})
    for reply in replies:
        command_id = by_wire.get(reply.id)
        if command_id is None or not svc.commands.finish(command_id, reply.ok, reply.detail, device_id):
            log.info("iclock: device %s answered command %r, which is not waiting for an answer", device_id, reply.id)
