"""What binds a ZK terminal to its registration, in the store: its pinned address and comm key.

The pin is written into the device's config (`address`) by the first request
of a terminal that has none. Two first requests may race (two threads, or two
gateways on one database): the write is a compare-and-set on the row's
`updated_at`, so exactly one wins and the other reads the winner's address.
Removing `address` from the config (the installer's unbind) pins again at the
next request.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Sequence

from sqlalchemy import Engine, select, update
from sqlmodel import col

from gateway.core.events import idempotency_key
from gateway.store.models import Device, StatusRecord

log = logging.getLogger(__name__)

PIN_ATTEMPTS = 5
ALERT_EVERY_MS = 60_000  # one alert row per device, reason and sender a minute: a flood adds no rows


class ZkBindings:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._alerted: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()

    def binding(self, device_id: str) -> tuple[str | None, str | None]:
        """(pinned address, comm key) from the device's config."""
        config = self._config(device_id)[0]
        return _text(config.get("address")), _text(config.get("comm_key"))

    def pin(self, device_id: str, address: str) -> str | None:
        """Pin `address` unless one is pinned; the address pinned afterwards (None: no such device)."""
        for _ in range(PIN_ATTEMPTS):
            config, stamp = self._config(device_id)
            if stamp is None:
                return None
            pinned = _text(config.get("address"))
            if pinned is not None:
                return pinned
            changed = max(int(time.time() * 1000), stamp + 1)  # always a new stamp: the next writer's check fails
            with self.engine.begin() as conn:
                won = conn.execute(
                    update(Device)
                    .where(col(Device.id) == device_id, col(Device.updated_at) == stamp)
                    .values(config={**config, "address": address}, updated_at=changed)
                ).rowcount
            if won:
                log.warning("ZK terminal %s pinned to %s (its first request)", device_id, address)
                return address
        return _text(self._config(device_id)[0].get("address"))

    def alert(self, device_id: str, reason: str, detail: str) -> None:
        """A refused request, on the device's status (at most one row a minute per cause) and in the log."""
        now = int(time.time() * 1000)
        cause = (device_id, reason, detail.split(",", 1)[0])
        with self._lock:
            if now - self._alerted.get(cause, -ALERT_EVERY_MS) < ALERT_EVERY_MS:
                return
            self._alerted[cause] = now
            if len(self._alerted) > 10_000:  # forget old causes rather than grow
                self._alerted = {cause: now}
        log.warning("ZK terminal %s: request refused (%s: %s)", device_id, reason, detail)
        with self.engine.begin() as conn:
            conn.execute(
                StatusRecord.__table__.insert(),
                {
                    "key": idempotency_key("alert", device_id, now, reason, detail),
                    "device_id": device_id,
                    "time": now,
                    "online": None,
                    "detail": {"reason": reason, "alert": reason, "detail": detail[:500]},
                    "raw_ref": "",
                    "stored_at": now,
                },
            )
            conn.execute(
                update(Device).where(col(Device.id) == device_id).values(errors_total=col(Device.errors_total) + 1)
            )

    def _config(self, device_id: str) -> tuple[dict[str, object], int | None]:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(col(Device.config), col(Device.updated_at)).where(col(Device.id) == device_id)
            ).first()
        return (dict(row.config or {}), row.updated_at) if row is not None else ({}, None)


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


class AllowList:
    """The networks terminals may push from; empty = any."""

    def __init__(self, cidrs: Sequence[object]) -> None:
        self.networks = [ipaddress.ip_network(str(c), strict=False) for c in cidrs]

    def allows(self, host: str | None) -> bool:
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address((host or "").strip("[]"))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self.networks)
