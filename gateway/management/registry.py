"""The devices the gateway knows, cached in memory for the hot path.

The pipeline asks on every message; the API updates the cache after each
committed change, so a newly provisioned device is recognised at once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlmodel import col

from gateway.devices.families import wire_key
from gateway.store.models import Device, Vehicle


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    id: str
    kind: str
    protocol: str
    site: str
    tz: tzinfo
    config: Mapping[str, Any] = field(default_factory=dict)  # as registered (no secrets live there)


class Registry:
    def __init__(self, engine: Engine, default_timezone: str) -> None:
        self._engine = engine
        self._default_tz = ZoneInfo(default_timezone)
        self._devices: dict[str, DeviceInfo] = {}
        self._ids: dict[tuple[str, str], str] = {}  # (protocol, identity) -> device id
        self._vehicles: dict[str, str] = {}  # device id -> vehicle id
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(
                    col(Device.id),
                    col(Device.kind),
                    col(Device.protocol),
                    col(Device.site),
                    col(Device.timezone),
                    col(Device.config),
                )
            ).all()
            vehicles = {
                r.device_id: r.id
                for r in conn.execute(
                    select(col(Vehicle.device_id), col(Vehicle.id)).where(col(Vehicle.device_id).is_not(None))
                )
            }
        devices = {
            row.id: self._info(row.id, row.kind, row.protocol, row.site, row.timezone, row.config) for row in rows
        }
        ids = {(row.protocol, key): row.id for row in rows if (key := wire_key(row.protocol, row.config)) is not None}
        with self._lock:
            self._devices, self._ids, self._vehicles = devices, ids, vehicles

    def _info(self, id: str, kind: str, protocol: str, site: str, timezone: str, config: Any) -> DeviceInfo:
        tz = ZoneInfo(timezone) if timezone else self._default_tz
        return DeviceInfo(id, kind, protocol, site, tz, dict(config or {}))

    def get(self, device_id: str) -> DeviceInfo | None:
        return self._devices.get(device_id)

    def by_identity(self, protocol: str, key: str) -> DeviceInfo | None:
        """The device of `protocol` known on the wire as `key` (see `families.wire_key`), if registered."""
        device_id = self._ids.get((protocol, key))
        return self._devices.get(device_id) if device_id is not None else None

    def by_zk_sn(self, sn: str) -> DeviceInfo | None:
        return self.by_identity("zk-adms", sn)

    def vehicle_of(self, device_id: str) -> str | None:
        return self._vehicles.get(device_id)

    def link_vehicle(self, vehicle_id: str, device_id: str | None) -> None:
        """After a committed change to a vehicle: its fixes from now on carry its id."""
        with self._lock:
            vehicles = {d: v for d, v in self._vehicles.items() if v != vehicle_id}
            if device_id is not None:
                vehicles[device_id] = vehicle_id
            self._vehicles = vehicles

    def put(self, device: Device) -> None:
        info = self._info(device.id, device.kind, device.protocol, device.site, device.timezone, device.config)
        key = wire_key(device.protocol, device.config)
        with self._lock:
            self._devices = {**self._devices, device.id: info}
            ids = {k: v for k, v in self._ids.items() if v != device.id}
            if key is not None:
                ids[(device.protocol, key)] = device.id
            self._ids = ids

    def remove(self, device_id: str) -> None:
        with self._lock:
            self._devices = {k: v for k, v in self._devices.items() if k != device_id}
            self._ids = {k: v for k, v in self._ids.items() if v != device_id}
            self._vehicles = {k: v for k, v in self._vehicles.items() if k != device_id}

    def __len__(self) -> int:
        return len(self._devices)
