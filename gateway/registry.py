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


def _zk_sn(protocol: str, config: object) -> str | None:
    if protocol != "zk-adms" or not isinstance(config, dict):
        return None
    sn = config.get("sn")
    return sn if isinstance(sn, str) and sn else None


class Registry:
    def __init__(self, engine: Engine, default_timezone: str) -> None:
        self._engine = engine
        self._default_tz = ZoneInfo(default_timezone)
        self._devices: dict[str, DeviceInfo] = {}
        self._zk_sn: dict[str, str] = {}  # ZK ADMS terminal serial number -> device id
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(Device.id, Device.kind, Device.protocol, Device.site, Device.timezone, Device.config)
            ).all()
        devices = {row.id: self._info(row.id, row.kind, row.protocol, row.site, row.timezone) for row in rows}
        by_sn = {sn: row.id for row in rows if (sn := _zk_sn(row.protocol, row.config)) is not None}
        with self._lock:
            self._devices = devices
            self._zk_sn = by_sn

    def _info(self, id: str, kind: str, protocol: str, site: str, timezone: str) -> DeviceInfo:
        return DeviceInfo(id, kind, protocol, site, ZoneInfo(timezone) if timezone else self._default_tz)

    def get(self, device_id: str) -> DeviceInfo | None:
        return self._devices.get(device_id)

    def by_zk_sn(self, sn: str) -> DeviceInfo | None:
        """The zk-adms device whose config has this serial number (exact match), if registered."""
        device_id = self._zk_sn.get(sn)
        return self._devices.get(device_id) if device_id is not None else None

    def put(self, device: Device) -> None:
        info = self._info(device.id, device.kind, device.protocol, device.site, device.timezone)
        sn = _zk_sn(device.protocol, device.config)
        with self._lock:
            self._devices = {**self._devices, device.id: info}
            by_sn = {k: v for k, v in self._zk_sn.items() if v != device.id}
            if sn is not None:
                by_sn[sn] = device.id
            self._zk_sn = by_sn

    def remove(self, device_id: str) -> None:
        with self._lock:
            self._devices = {k: v for k, v in self._devices.items() if k != device_id}
            self._zk_sn = {k: v for k, v in self._zk_sn.items() if v != device_id}

    def __len__(self) -> int:
        return len(self._devices)
