"""The device registry: provision, list, change, remove."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, HTTPException, Path, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from gateway import credentials
from gateway.api.deps import Page, engine, page, paginated, allow, read_devices, services
from gateway.store.models import Device
from gateway.timeutil import iso_utc

router = APIRouter(prefix="/api/v1/devices", tags=["devices"], dependencies=[Depends(read_devices)])

DeviceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$", description="letters, digits, . _ -")]
Kind = Literal["attendance", "access", "gps"]
Protocol = Literal["mqtt-json", "zk-adms", "attlog", "osdp", "nmea", "jt808", "owntracks"]


def _check_zone(value: str) -> str:
    if value:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
    return value


class DeviceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: DeviceId
    kind: Kind
    protocol: Protocol
    name: str = Field("", max_length=200)
    site: str = Field("", max_length=64)
    timezone: str = Field("", max_length=64, description="IANA zone; empty = the site's")
    config: dict[str, Any] = {}

    _zone = field_validator("timezone")(_check_zone)


class DevicePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Kind | None = None
    name: str | None = Field(None, max_length=200)
    site: str | None = Field(None, max_length=64)
    timezone: str | None = Field(None, max_length=64)
    config: dict[str, Any] | None = None

    _zone = field_validator("timezone")(lambda v: _check_zone(v) if v is not None else v)


def shape(d: Device) -> dict[str, Any]:
    return {
        "id": d.id, "kind": d.kind, "protocol": d.protocol, "name": d.name, "site": d.site,
        "timezone": d.timezone, "config": d.config, "online": d.online,
        "last_seen": iso_utc(d.last_seen) if d.last_seen else None, "firmware": d.firmware,
        "counters": {"events": d.events_total, "errors": d.errors_total},
        "created_at": iso_utc(d.created_at), "updated_at": iso_utc(d.updated_at),
    }  # fmt: skip


def _get(session: Session, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(404, f"no device {device_id!r}")
    return device


@router.post("", status_code=201)
def create_device(body: DeviceCreate, svc: Any = Depends(services)) -> dict[str, Any]:
    now = int(time.time() * 1000)
    creds, secret_hash = credentials.issue(body.id, body.protocol)
    device = Device(**body.model_dump(), created_at=now, updated_at=now, credential_hash=secret_hash)
    with Session(svc.engine) as session:
        session.add(device)
        try:
            session.commit()
        except IntegrityError:
            raise HTTPException(409, f"device {body.id!r} already exists") from None
        session.refresh(device)
        svc.registry.put(device)
        return {**shape(device), "credentials": creds}


@router.get("")
def list_devices(p: Page = Depends(page), eng: Any = Depends(engine)) -> dict[str, Any]:
    with Session(eng) as session:
        query = select(Device).order_by(Device.id).limit(p.limit + 1)
        if p.after is not None:
            query = query.where(Device.id > p.after)
        rows = session.execute(query).scalars().all()
    return paginated(list(rows), p.limit, shape)


@router.get("/{device_id}")
def get_device(device_id: Annotated[str, Path(max_length=64)], eng: Any = Depends(engine)) -> dict[str, Any]:
    with Session(eng) as session:
        return shape(_get(session, device_id))


@router.patch("/{device_id}")
def patch_device(
    device_id: Annotated[str, Path(max_length=64)], body: DevicePatch, svc: Any = Depends(services)
) -> dict[str, Any]:
    with Session(svc.engine) as session:
        device = _get(session, device_id)
        for name, value in body.model_dump(exclude_unset=True).items():
            if value is None:
                raise HTTPException(422, f"{name}: may not be null")
            setattr(device, name, value)
        device.updated_at = int(time.time() * 1000)
        session.add(device)
        session.commit()
        session.refresh(device)
        svc.registry.put(device)
        return shape(device)


@router.delete("/{device_id}", status_code=204)
def delete_device(device_id: Annotated[str, Path(max_length=64)], svc: Any = Depends(services)) -> Response:
    with Session(svc.engine) as session:
        session.delete(_get(session, device_id))
        session.commit()
    svc.registry.remove(device_id)
    return Response(status_code=204)
