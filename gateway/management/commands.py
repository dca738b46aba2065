"""Commands down to devices: queued -> sent -> succeeded | failed | timed_out.

A command is stored first (so it is never lost), then, by the device's protocol:

- MQTT devices: published QoS 1 on `devices/{id}/commands`; `sent` once the
  broker has it. The device answers on `devices/{id}/commands/result`; the
  store writer reports each committed result here.
- Devices that fetch their commands (their family says "pull": ZK ADMS terminals poll
  `/iclock/getrequest`): left `queued` until the device polls; the poll takes
  them (`take_queued`, which marks them `sent`) and the device's answer
  finishes them (`finish`).

A command with no answer within its timeout is `timed_out`, whether it was
ever sent or not.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import Engine, and_, select, update
from sqlmodel import Session, col

from gateway.auth import audit
from gateway.core.errors import Conflict, Invalid, NotFound, Refused
from gateway.core.metrics import Metrics
from gateway.core.timeutil import now_ms
from gateway.devices.errors import DecodeError
from gateway.devices.families import family
from gateway.pipeline.batch import Batch
from gateway.store.models import Command, Device

log = logging.getLogger(__name__)

OPEN = ("queued", "sent")
DEFAULT_COMMAND_TIMEOUT_S = 30  # how long a command waits for the device's answer unless the caller says

Publish = Callable[[str, bytes], Awaitable[None]]

# Command arguments that are a terminal user's secrets (a ZK user's PIN is their number on the
# terminal, printed on every punch, so it stays readable): masked in the audit log and, for
# roles below admin, in every view of a command.
SECRET_ARGS = frozenset({"password", "passwd", "card", "cards", "secret", "code"})
MASK = "***"


class NotPermitted(Refused):
    status = 403


def masked_args(args: dict[str, Any]) -> dict[str, Any]:
    return {k: (MASK if k.lower() in SECRET_ARGS else v) for k, v in args.items()}


def raises_privilege(args: dict[str, Any]) -> bool:
    """A command that gives a terminal user more than the plain user's privilege (e.g. ZK's 14, admin)."""
    value = args.get("privilege")
    return value is not None and str(value).strip() not in ("", "0")


class Commands:
    def __init__(self, engine: Engine, metrics: Metrics) -> None:
        self.engine = engine
        self.metrics = metrics
        self.publish: Publish | None = None  # set by the app: the transport that reaches devices
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop, publish: Publish) -> None:
        self._loop, self.publish = loop, publish

    def submit(
        self, device_id: str, name: str, args: dict[str, Any], timeout_s: int, actor: str, role: str = "admin"
    ) -> Command:
        """Store a new command, audited with its secrets masked, and start sending it. Call from a worker thread.

        Refused (NotFound, Conflict, Invalid) when the device does not exist, its protocol takes no
        commands, or the protocol's fixed vocabulary could never carry this one; NotPermitted when
        `role` (the caller's) is below admin and the command raises a terminal user's privilege."""
        if role != "admin" and raises_privilege(args):
            raise NotPermitted("only an admin may raise a terminal user's privilege")
        command = Command(
            id=f"{now_ms():012x}{secrets.token_hex(4)}",
            device_id=device_id,
            name=name,
            args=args,
            state="queued",
            created_by=actor,
            created_at=now_ms(),
            timeout_s=timeout_s,
        )
        with Session(self.engine) as session:
            device = session.get(Device, device_id)
            if device is None:
                raise NotFound(f"no device {device_id!r}")
            protocol = family(device.protocol)
            if protocol.commands is None:
                raise Conflict(f"commands to {device.protocol!r} devices are not supported yet")
            if protocol.check_command is not None:
                try:  # refuse now what the device could never be sent
                    protocol.check_command(name, args)
                except DecodeError as exc:
                    raise Invalid(f"{exc.reason}: {exc.detail}") from None
            pull = protocol.commands == "pull"
            session.add(command)
            shown = {"device_id": device_id, "name": name, "args": masked_args(args), "timeout_s": timeout_s}
            audit.record(session, actor, "create", "command", command.id, None, shown)
            session.commit()
            session.refresh(command)
        if self._loop is not None and not pull:
            asyncio.run_coroutine_threadsafe(self._send(command.id, device_id, name, args), self._loop)
        return command

    # -- devices that fetch their commands --------------------------------------

    def take_queued(
        self, device_id: str, limit: int = 20, key: Callable[[Command], str] | None = None
    ) -> list[Command]:
        """The device's queued commands, oldest first, now marked `sent`. Call from a worker thread.

        Commands past their timeout are left for expiry. `key` (the id the device
        sees): a command whose key equals that of another open command of the
        device stays queued until that one is finished, so every answer maps to
        one command.
        """
        now = now_ms()
        with Session(self.engine) as session:
            open_commands = (
                session.execute(
                    select(Command)
                    .where(and_(col(Command.device_id) == device_id, col(Command.state).in_(OPEN)))
                    .order_by(col(Command.id))
                )
                .scalars()
                .all()
            )
        in_use = {key(c) for c in open_commands if c.state == "sent"} if key else set()
        taken: list[Command] = []
        for command in open_commands:
            if len(taken) >= limit:
                break
            if command.state != "queued" or command.created_at + command.timeout_s * 1000 < now:
                continue
            if key is not None:
                wire = key(command)
                if wire in in_use:
                    continue
                in_use.add(wire)
            # Only if still queued: two polls at once must not both send it.
            if self._set(command.id, ("queued",), state="sent", sent_at=now):
                command.state, command.sent_at = "sent", now
                taken.append(command)
        return taken

    def sent(self, device_id: str) -> Sequence[Command]:
        """The device's commands waiting for its answer."""
        with Session(self.engine) as session:
            return (
                session.execute(
                    select(Command).where(and_(col(Command.device_id) == device_id, col(Command.state) == "sent"))
                )
                .scalars()
                .all()
            )

    def finish(self, command_id: str, ok: bool, detail: str = "", device_id: str | None = None) -> bool:
        """An open command succeeded or failed (the device said so). False if it was not open
        (unknown, another device's, already finished or timed out)."""
        state = "succeeded" if ok else "failed"
        condition = and_(col(Command.id) == command_id, col(Command.state).in_(OPEN))
        if device_id is not None:
            condition = and_(condition, col(Command.device_id) == device_id)
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(Command).where(condition).values(state=state, detail=detail[:2000], finished_at=now_ms())
            ).rowcount
        if changed:
            self.metrics.commands.labels(state).inc()
        return bool(changed)

    async def _send(self, command_id: str, device_id: str, name: str, args: dict[str, Any]) -> None:
        payload = orjson.dumps({"id": command_id, "name": name, "args": args})
        try:
            assert self.publish is not None
            await self.publish(f"devices/{device_id}/commands", payload)
        except Exception as exc:  # left queued: the timeout decides, and the detail says why
            log.warning("command %s to %s not sent yet: %s", command_id, device_id, exc)
            await asyncio.to_thread(self._set, command_id, ("queued",), detail=f"not sent: {exc}")
            return
        await asyncio.to_thread(self._set, command_id, ("queued",), state="sent", sent_at=now_ms())

    def _set(self, command_id: str, from_states: tuple[str, ...], **values: Any) -> bool:
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(Command)
                .where(and_(col(Command.id) == command_id, col(Command.state).in_(from_states)))
                .values(**values)
            ).rowcount
        return bool(changed)

    def on_commit(self, batch: Batch) -> None:
        """Store-writer hook: results that just arrived finish their commands."""
        for result in batch.command_results:
            self.finish(result.command_id, result.ok, result.detail, result.device_id)

    def expire(self) -> int:
        """Open commands past their timeout become timed_out."""
        now = now_ms()
        with self.engine.begin() as conn:
            expired = (
                conn.execute(
                    select(col(Command.id)).where(
                        and_(
                            col(Command.state).in_(OPEN), col(Command.created_at) + col(Command.timeout_s) * 1000 < now
                        )
                    )
                )
                .scalars()
                .all()
            )
            if expired:
                conn.execute(
                    update(Command)
                    .where(and_(col(Command.id).in_(expired), col(Command.state).in_(OPEN)))
                    .values(state="timed_out", finished_at=now, detail="no answer from the device in time")
                )
        if expired:
            self.metrics.commands.labels("timed_out").inc(len(expired))
        return len(expired)
