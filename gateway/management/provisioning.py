"""Registering devices: each protocol's config and credentials, as its family (devices/families.py) declares."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from gateway.auth import audit
from gateway.auth.credentials import hash_secret
from gateway.auth.secretbox import SecretBox
from gateway.core.errors import Conflict, NotFound
from gateway.core.timeutil import now_ms
from gateway.devices.families import MQTT_PROTOCOLS, family, identity, own_topics
from gateway.management import jt808_bindings
from gateway.management.broker_logins import BrokerAuth
from gateway.management.liveness import Liveness
from gateway.management.registry import Registry
from gateway.store.models import Device


class ConfigProblem(ValueError):
    pass


def check_config(protocol: str, config: dict[str, Any]) -> dict[str, Any]:
    """The protocol's config, validated and with defaults filled in; ConfigProblem names the key."""
    try:
        return family(protocol).config.model_validate(config).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in ("config", *first["loc"]))
        reason = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigProblem(f"{where}: {reason} (protocol {protocol})") from None


def issue(device_id: str, protocol: str, box: SecretBox) -> tuple[dict[str, str], str | None, str | None]:
    """New credentials, as the protocol's family says: (shown once, password hash to store, sealed secret
    to store)."""
    kind = family(protocol).credentials
    if kind == "mqtt_login":
        password = secrets.token_urlsafe(18)
        return {"mqtt_username": device_id, "mqtt_password": password}, hash_secret(password), None
    if kind == "scbk":
        scbk = secrets.token_hex(16)
        return {"scbk": scbk}, None, box.seal(scbk)
    if kind == "auth_code":
        # Sealed only until the terminal's first binding hands it out; then only its hash is kept
        # (management/jt808_bindings.py). Issued again, it also unbinds the terminal.
        code = jt808_bindings.new_code()
        return {"auth_code": code}, None, box.seal(code)
    return {}, None, None


def snapshot(device: Device) -> dict[str, Any]:
    """The device for the audit log: everything but its secrets."""
    return device.model_dump(exclude={"credential_hash", "secret_enc"})


class Provisioner:
    """Registers, changes, re-keys and removes devices: database, broker logins, caches, audit."""

    def __init__(
        self, engine: Engine, registry: Registry, liveness: Liveness, box: SecretBox, broker: BrokerAuth
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.liveness = liveness
        self.box = box
        self.broker = broker

    def _get(self, session: Session, device_id: str) -> Device:
        device = session.get(Device, device_id)
        if device is None:
            raise NotFound(f"no device {device_id!r}")
        return device

    def _check_identity(self, session: Session, device_id: str, protocol: str, config: dict[str, Any]) -> None:
        mine = identity(protocol, config)
        if mine is None:
            return
        for other in session.execute(
            select(Device).where(col(Device.protocol) == protocol, col(Device.id) != device_id)
        ).scalars():
            if identity(protocol, other.config) == mine:
                keys = ", ".join(f"{k}={v!r}" for k, v in zip(family(protocol).identity_keys, mine))
                raise Conflict(f"device {other.id!r} already has {keys}")

    def create(self, fields: dict[str, Any], actor: str) -> tuple[Device, dict[str, str]]:
        fields = {**fields, "config": check_config(fields["protocol"], fields.get("config") or {})}
        now = now_ms()
        with Session(self.engine) as session:
            if session.get(Device, fields["id"]) is not None:
                raise Conflict(f"device {fields['id']!r} already exists")
            self._check_identity(session, fields["id"], fields["protocol"], fields["config"])
            creds, secret_hash, sealed = issue(fields["id"], fields["protocol"], self.box)
            device = Device(**fields, created_at=now, updated_at=now, credential_hash=secret_hash, secret_enc=sealed)
            session.add(device)
            audit.record(session, actor, "create", "device", device.id, None, snapshot(device))
            if "mqtt_password" in creds:
                # Before the commit: a refusal changes nothing.
                self.broker.add_device(device.id, creds["mqtt_password"], own_topics(device.protocol, device.config))
            session.commit()
            session.refresh(device)
        self.registry.put(device)
        self.liveness.track(device.id, device.kind)
        return device, creds

    def update(self, device_id: str, changes: dict[str, Any], actor: str) -> Device:
        with Session(self.engine) as session:
            device = self._get(session, device_id)
            before = snapshot(device)
            if "config" in changes:
                changes["config"] = check_config(device.protocol, changes["config"])
                self._check_identity(session, device_id, device.protocol, changes["config"])
            for name, value in changes.items():
                setattr(device, name, value)
            device.updated_at = now_ms()
            session.add(device)
            audit.record(session, actor, "update", "device", device_id, before, snapshot(device))
            session.commit()
            session.refresh(device)
        self.registry.put(device)
        self.liveness.track(device.id, device.kind)
        return device

    def rotate(self, device_id: str, actor: str) -> tuple[Device, dict[str, str]]:
        with Session(self.engine) as session:
            device = self._get(session, device_id)
            creds, secret_hash, sealed = issue(device.id, device.protocol, self.box)
            if not creds:
                raise Conflict(f"protocol {device.protocol!r} has no credentials to rotate")
            device.credential_hash, device.secret_enc = secret_hash, sealed
            device.updated_at = now_ms()
            session.add(device)
            audit.record(session, actor, "rotate_credentials", "device", device_id, None, None)
            session.commit()
            session.refresh(device)
        if "mqtt_password" in creds:
            # After the commit: the embedded broker reads the new hash at the next login.
            self.broker.set_password(device.id, creds["mqtt_password"])
        return device, creds

    def delete(self, device_id: str, actor: str) -> None:
        with Session(self.engine) as session:
            device = self._get(session, device_id)
            audit.record(session, actor, "delete", "device", device_id, snapshot(device), None)
            session.delete(device)
            session.commit()
        self.registry.remove(device_id)
        self.liveness.forget(device_id)
        if device.protocol in MQTT_PROTOCOLS:
            self.broker.remove_device(device_id)

    def secret(self, device_id: str) -> str | None:
        """The clear secret a protocol needs (OSDP key, JT/T 808 auth code)."""
        with Session(self.engine) as session:
            device = self._get(session, device_id)
            return self.box.open(device.secret_enc) if device.secret_enc else None

    def open_install_mode(self, device_id: str, actor: str, install: Callable[[str], bool] | None) -> None:
        """Installer action: a new OSDP reader without a key may take its key once, over the default key.
        `install` opens the window on the reader's running line (False: the reader is on none)."""
        with Session(self.engine) as session:
            device = self._get(session, device_id)
            if device.protocol != "osdp":
                raise Conflict(f"install mode is for OSDP readers, not {device.protocol!r} devices")
            if install is None or not install(device_id):
                raise Conflict(f"reader {device_id!r} is not on a running OSDP line (restart after adding readers)")
            audit.record(session, actor, "install_mode", "device", device_id)
            session.commit()

    def unbind(self, device_id: str, actor: str) -> str:
        """Installer action: forget a JT/T 808 terminal's binding (it registers again for a fresh code) or a
        ZK terminal's pinned address (pinned again at its next push). What was forgotten: "binding" or
        "address", or "" when there was nothing to forget."""
        with Session(self.engine) as session:
            device = self._get(session, device_id)
            before = snapshot(device)
            if device.protocol == "jt808":
                forgot = "binding" if jt808_bindings.forget(device) else ""
            elif device.protocol == "zk-adms":
                forgot = "address" if "address" in device.config else ""
                device.config = {k: v for k, v in device.config.items() if k != "address"}
                device.updated_at = now_ms()
            else:
                raise Conflict(f"a {device.protocol!r} device has no binding to forget")
            session.add(device)
            audit.record(session, actor, "unbind", "device", device_id, before, {**snapshot(device), "forgot": forgot})
            session.commit()
            session.refresh(device)
        self.registry.put(device)
        return forgot
