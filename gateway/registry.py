"""The devices the gateway knows, cached in memory for the hot path.

The pipeline asks on every message; the API updates the cache after each
committed change, so a newly provisioned device is recognised at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from gateway.store.models import Device


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    id: str
    kind: str
    protocol: str
    site: str
    tz: tzinfo


class Registry:
    def __init__(self, engine: Engine, default_timezone: str) -> None:
        self._engine = engine
        self._default_tz = ZoneInfo(default_timezone)
        self._devices: dict[str, DeviceInfo] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._engine.connect() as conn:
            rows = conn.execute(select(Device.id, Device.kind, Device.protocol, Device.site, Device.timezone)).all()
        devices = {row.id: self._info(row.id, row.kind, row.protocol, row.site, row.timezone) for row in rows}
        with self._lock:
            self._devices = devices

    def _info(self, id: str, kind: str, protocol: str, site: str, timezone: str) -> DeviceInfo:
        return DeviceInfo(id, kind, protocol, site, ZoneInfo(timezone) if timezone else self._default_tz)

    def get(self, device_id: str) -> DeviceInfo | None:
        return self._devices.get(device_id)

    def put(self, device: Device) -> None:
        info = self._info(device.id, device.kind, device.protocol, device.site, device.timezone)
        with self._lock:
            self._devices = {**self._devices, device.id: info}

    def remove(self, device_id: str) -> None:
        with self._lock:
            self._devices = {k: v for k, v in self._devices.items() if k != device_id}

    def __len__(self) -> int:
        return len(self._devices)
