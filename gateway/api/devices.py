"""The device registry: provision, list, change, re-key, remove, and commands down."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from gateway.api.deps import Actor, Page, allow, engine, page, paginated, read_devices, services
from gateway.core.timeutil import check_zone, iso_utc
from gateway.devices.families import ProtocolName
from gateway.management.broker_logins import BrokerAuthError
from gateway.management.commands import DEFAULT_COMMAND_TIMEOUT_S, masked_args
from gateway.management.provisioning import ConfigProblem
from gateway.services import Services
from gateway.store.models import Command, Device

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])
manage_devices = allow("installer")
send_commands = allow("installer", "operator")

DeviceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$", description="letters, digits, . _ -")]
PathId = Annotated[str, Path(max_length=64)]
Kind = Literal["attendance", "access", "gps"]


def _check_zone(value: str | None) -> str | None:
    return check_zone(value) if value is not None else None


class DeviceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: DeviceId
    kind: Kind
    protocol: ProtocolName
    name: str = Field("", max_length=200)
    site: str = Field("", max_length=64)
    timezone: str = Field("", max_length=64, description="IANA zone; empty = the site's")
    config: dict[str, Any] = Field({}, description="per protocol, see the docs")

    _zone = field_validator("timezone")(_check_zone)


class DevicePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Kind | None = None
    name: str | None = Field(None, max_length=200)
    site: str | None = Field(None, max_length=64)
    timezone: str | None = Field(None, max_length=64)
    config: dict[str, Any] | None = None

    _zone = field_validator("timezone")(_check_zone)


class CommandCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,31}$", description="open_door, sync_time, reboot, or protocol-specific"
    )
    args: dict[str, Any] = {}
    timeout_s: int = Field(
        DEFAULT_COMMAND_TIMEOUT_S, ge=1, le=3600, description="seconds to wait for the device's answer"
    )


def shape(d: Device) -> dict[str, Any]:
    return {
        "id": d.id,
        "kind": d.kind,
        "protocol": d.protocol,
        "name": d.name,
        "site": d.site,
        "timezone": d.timezone,
        "config": d.config,
        "online": d.online,
        "last_seen": iso_utc(d.last_seen) if d.last_seen else None,
        "firmware": d.firmware,
        "counters": {"events": d.events_total, "errors": d.errors_total},
        "created_at": iso_utc(d.created_at),
        "updated_at": iso_utc(d.updated_at),
    }


def shape_command(c: Command, reveal: bool = False) -> dict[str, Any]:
    """`reveal`: show the args' secrets (admins only); everyone else sees them masked."""
    return {
        "id": c.id,
        "device_id": c.device_id,
        "name": c.name,
        "args": c.args if reveal else masked_args(c.args),
        "state": c.state,
        "detail": c.detail,
        "created_by": c.created_by,
        "created_at": iso_utc(c.created_at),
        "sent_at": iso_utc(c.sent_at) if c.sent_at else None,
        "finished_at": iso_utc(c.finished_at) if c.finished_at else None,
        "timeout_s": c.timeout_s,
    }


def _answer_errors(call: Any, *args: Any) -> Any:
    """The provisioning service's own refusals as HTTP answers (NotFound and Conflict answer by themselves)."""
    try:
        return call(*args)
    except ConfigProblem as exc:
        raise HTTPException(422, str(exc)) from None
    except BrokerAuthError as exc:
        raise HTTPException(503, str(exc)) from None


@router.post("", status_code=201)
def create_device(
    body: DeviceCreate, actor: Actor = Depends(manage_devices), svc: Services = Depends(services)
) -> dict[str, Any]:
    device, credentials = _answer_errors(svc.provisioner.create, body.model_dump(), actor.name)
    return {**shape(device), "credentials": credentials}


@router.get("", dependencies=[Depends(read_devices)])
def list_devices(p: Page = Depends(page), eng: Engine = Depends(engine)) -> dict[str, Any]:
    query = select(Device).order_by(Device.id).limit(p.limit + 1)
    if p.after is not None:
        query = query.where(col(Device.id) > p.after)
    with Session(eng) as session:
        rows = session.execute(query).scalars().all()
    return paginated(list(rows), p.limit, shape)


@router.get("/{device_id}", dependencies=[Depends(read_devices)])
def get_device(device_id: PathId, svc: Services = Depends(services)) -> dict[str, Any]:
    with Session(svc.engine) as session:
        device = session.get(Device, device_id)
        if device is None:
            raise HTTPException(404, f"no device {device_id!r}")
        answer = shape(device)
    if device.protocol == "osdp" and svc.door_readers is not None:
        # Why a reader is not online: a refused secure channel (wrong key) reads differently from silence.
        answer["link"] = svc.door_readers.status(device_id)
    return answer


@router.post("/{device_id}/install", status_code=202)
def open_install_mode(
    device_id: PathId, actor: Actor = Depends(manage_devices), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Installer action: a new OSDP reader without a key may take its key once, over the default key."""
    install = svc.door_readers.install if svc.door_readers is not None else None
    _answer_errors(svc.provisioner.open_install_mode, device_id, actor.name, install)
    return {"device_id": device_id, "install": "open", "window_s": 300}


@router.post("/{device_id}/unbind")
def unbind_device(
    device_id: PathId, actor: Actor = Depends(manage_devices), svc: Services = Depends(services)
) -> dict[str, Any]:
    """Installer action: forget a JT/T 808 terminal's binding or a ZK terminal's pinned address."""
    forgot = _answer_errors(svc.provisioner.unbind, device_id, actor.name)
    return {"device_id": device_id, "forgot": forgot or None}


@router.patch("/{device_id}")
def patch_device(
    device_id: PathId, body: DevicePatch, actor: Actor = Depends(manage_devices), svc: Services = Depends(services)
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None:
            raise HTTPException(422, f"{name}: may not be null")
    return shape(_answer_errors(svc.provisioner.update, device_id, changes, actor.name))


@router.delete("/{device_id}", status_code=204)
def delete_device(
    device_id: PathId, actor: Actor = Depends(manage_devices), svc: Services = Depends(services)
) -> Response:
    _answer_errors(svc.provisioner.delete, device_id, actor.name)
    return Response(status_code=204)


@router.post("/{device_id}/credentials/rotate")
def rotate_credentials(
    device_id: PathId, actor: Actor = Depends(manage_devices), svc: Services = Depends(services)
) -> dict[str, Any]:
    device, credentials = _answer_errors(svc.provisioner.rotate, device_id, actor.name)
    return {**shape(device), "credentials": credentials}


@router.post("/{device_id}/commands", status_code=202)
def queue_command(
    device_id: PathId, body: CommandCreate, actor: Actor = Depends(send_commands), svc: Services = Depends(services)
) -> dict[str, Any]:
    if actor.role == "operator" and body.name != "open_door":
        raise HTTPException(403, "role 'operator' may send only open_door")
    command = svc.commands.submit(device_id, body.name, body.args, body.timeout_s, actor.name, actor.role)
    return shape_command(command, actor.role == "admin")


@router.get("/{device_id}/commands")
def list_commands(
    device_id: PathId, p: Page = Depends(page), eng: Engine = Depends(engine), actor: Actor = Depends(read_devices)
) -> dict[str, Any]:
    command_id = col(Command.id)
    query = select(Command).where(col(Command.device_id) == device_id).order_by(command_id).limit(p.limit + 1)
    if p.after is not None:
        query = query.where(command_id > p.after)
    with Session(eng) as session:
        rows = session.execute(query).scalars().all()
    return paginated(list(rows), p.limit, partial(shape_command, reveal=actor.role == "admin"))


@router.get("/{device_id}/commands/{command_id}")
def get_command(
    device_id: PathId,
    command_id: Annotated[str, Path(max_length=32)],
    eng: Engine = Depends(engine),
    actor: Actor = Depends(read_devices),
) -> dict[str, Any]:
    with Session(eng) as session:
        command = session.get(Command, command_id)
        if command is None or command.device_id != device_id:
            raise HTTPException(404, f"no command {command_id!r} for device {device_id!r}")
        return shape_command(command, actor.role == "admin")
