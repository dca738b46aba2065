"""Whether each device is online, from any sign of life, with one interface for every protocol.

Signs of life: anything a device sends (the store writer reports each batch),
a protocol's own heartbeat (`heartbeat()`, for ADMS getrequest, JT/T 808
0x0002, OSDP poll replies), and an MQTT device's status topic and will. A
device silent for longer than its kind's timeout goes offline. Every
transition is stored as a device_status row and counted in /metrics.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine, select, update
from sqlmodel import col

from gateway.config import LivenessSettings
from gateway.core import timeutil
from gateway.core.events import idempotency_key
from gateway.core.metrics import Metrics
from gateway.pipeline.batch import Batch
from gateway.store.models import Device, StatusRecord

log = logging.getLogger(__name__)


class Liveness:
    def __init__(self, engine: Engine, settings: LivenessSettings, metrics: Metrics) -> None:
        self.engine = engine
        self.timeouts = {"attendance": settings.attendance, "access": settings.access, "gps": settings.gps}
        self.metrics = metrics
        self._lock = threading.Lock()
        self._online: dict[str, bool | None] = {}
        self._last_seen: dict[str, int] = {}
        self._kind: dict[str, str] = {}

    def load(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(col(Device.id), col(Device.kind), col(Device.online), col(Device.last_seen))
            ).all()
        with self._lock:
            for row in rows:
                self._online[row.id], self._kind[row.id] = row.online, row.kind
                if row.last_seen:
                    self._last_seen[row.id] = row.last_seen
        self._update_gauge()

    def forget(self, device_id: str) -> None:
        with self._lock:
            for table in (self._online, self._last_seen, self._kind):
                table.pop(device_id, None)
        self._update_gauge()

    def track(self, device_id: str, kind: str) -> None:
        with self._lock:
            self._kind[device_id] = kind
            self._online.setdefault(device_id, None)

    # -- signs of life --------------------------------------------------------

    def on_commit(self, batch: Batch) -> None:
        """Store-writer hook: the devices in a committed batch were heard from."""
        changes = []
        for device_id in batch.seen:
            reported = batch.reported.get(device_id)
            online = reported.online if reported is not None and reported.online is not None else True
            reason = "status" if reported is not None else "traffic"
            changes.append((device_id, online, reason))
        self._apply(changes, batch.now_ms)

    def heartbeat(self, device_id: str) -> None:
        """A protocol's own keep-alive arrived."""
        self._apply([(device_id, True, "heartbeat")], timeutil.now_ms())

    def sweep(self, now_ms: int | None = None) -> None:
        """Devices silent for longer than their kind's timeout go offline."""
        now_ms = now_ms or timeutil.now_ms()
        with self._lock:
            silent = [
                (device_id, False, "heartbeat_timeout")
                for device_id, online in self._online.items()
                if online
                and now_ms - self._last_seen.get(device_id, 0)
                > 1000 * self.timeouts.get(self._kind.get(device_id, ""), 600)
            ]
        self._apply(silent, now_ms, touch=False)

    # -- transitions ----------------------------------------------------------

    def _apply(self, changes: list[tuple[str, bool, str]], now_ms: int, touch: bool = True) -> None:
        transitions = []
        with self._lock:
            for device_id, online, reason in changes:
                if device_id not in self._kind:
                    continue
                if touch:
                    self._last_seen[device_id] = now_ms
                if self._online.get(device_id) != online:
                    self._online[device_id] = online
                    transitions.append((device_id, online, reason))
        if not transitions:
            return
        status = StatusRecord.__table__
        with self.engine.begin() as conn:
            for device_id, online, _reason in transitions:
                conn.execute(update(Device).where(col(Device.id) == device_id).values(online=online))
            conn.execute(
                status.insert(),
                [
                    {
                        "key": idempotency_key("presence", d, now_ms, o),
                        "device_id": d,
                        "time": now_ms,
                        "online": o,
                        "detail": {"reason": r},
                        "raw_ref": "",
                        "stored_at": now_ms,
                    }
                    for d, o, r in transitions
                ],
            )
        for device_id, online, _reason in transitions:
            self.metrics.device_transitions.labels("online" if online else "offline").inc()
            log.info("device %s is %s (%s)", device_id, "online" if online else "offline", reason)
        self._update_gauge()

    def _update_gauge(self) -> None:
        with self._lock:
            self.metrics.devices_online.set(sum(1 for v in self._online.values() if v))
