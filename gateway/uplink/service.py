"""The uplink: the configured sinks, their workers, what each record looks like on the way out, and status.

A punch or door event is read from its table when it is sent, not when it was
stored: a punch parked because its person had no platform user id goes out
with the id once the person is fixed and the record retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from sqlalchemy import Engine, and_, delete, func, select, update

from gateway.config import Settings
from gateway.core.asyncutil import cancel_and_wait
from gateway.core.metrics import Metrics
from gateway.core.timeutil import iso_utc
from gateway.pipeline.batch import Batch
from gateway.pipeline.queue import IngestQueue
from gateway.store import shapes
from gateway.store.models import AccessRecord, Device, OutboxEntry, Person, PunchRecord
from gateway.uplink.outbox import Outbox
from gateway.uplink.result import Outcome
from gateway.uplink.worker import Entry, SinkWorker, backlog

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Awaitable[None]]
MONITOR_EVERY_S = 2.0
REFUSE_RESUME = 0.9  # input is taken again once the backlog is back under this share of the limit


class MqttNorthSink:
    """Records published QoS 1 to `platform/{site}/{record type}`; delivered once the broker has them."""

    name = "mqtt"
    batch_size = 100
    checks_delivery = False

    def __init__(self, publish: Publish, site: str, prefix: str = "platform") -> None:
        self.publish = publish
        self.site = site
        self.prefix = prefix

    async def send_batch(self, records: list[dict[str, Any]]) -> list[Outcome]:
        async def one(record: dict[str, Any]) -> Outcome:
            topic = f"{self.prefix}/{self.site}/{record['type']}"
            try:
                await self.publish(topic, orjson.dumps(record))
            except Exception as exc:
                return Outcome("retry", f"not published: {exc}", maybe_delivered=True)
            return Outcome("delivered")

        return list(await asyncio.gather(*(one(r) for r in records)))

    async def was_delivered(self, record: dict[str, Any]) -> bool | None:
        return None


class Uplink:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        metrics: Metrics,
        outbox: Outbox,
        queue: IngestQueue,
        mqtt_publish: Publish | None = None,
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.settings = settings
        self.metrics = metrics
        self.outbox = outbox
        self.refusing = False
        self.workers: dict[str, SinkWorker] = {}
        u = settings.uplink
        if u.dingtalk.enabled:
            from gateway.uplink.dingtalk import DingTalkSink

            sink: Any = DingTalkSink(
                u.dingtalk.base_url,
                u.dingtalk.app_key,
                u.dingtalk.app_secret.get_secret_value(),
                u.dingtalk.rate,
                u.dingtalk.timeout_s,
            )
            org_zone = settings.site.timezone
            self.workers["dingtalk"] = SinkWorker(
                engine, _OneByOne(sink, org_zone), self.resolve, metrics, u.retry_max_s
            )
        if u.webhook.enabled:
            from gateway.uplink.webhook import WebhookSink

            sink = WebhookSink(
                u.webhook.url, u.webhook.secret.get_secret_value(), settings.site.id, u.webhook.timeout_s
            )
            self.workers["webhook"] = SinkWorker(
                engine, _Batches(sink, u.webhook.batch_size), self.resolve, metrics, u.retry_max_s
            )
        if u.mqtt.enabled and mqtt_publish is not None:
            north = MqttNorthSink(mqtt_publish, settings.site.id, u.mqtt.topic_prefix)
            self.workers["mqtt"] = SinkWorker(engine, north, self.resolve, metrics, u.retry_max_s)
        self._tasks: list[asyncio.Task[Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [
            asyncio.create_task(worker.run(), name=f"uplink {name}") for name, worker in self.workers.items()
        ]
        if self.workers:
            self._tasks.append(asyncio.create_task(self._monitor(), name="uplink monitor"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        for worker in self.workers.values():
            close = getattr(worker.sink, "close", None)
            if close is not None:
                try:
                    await close()
                except Exception:
                    pass

    def on_commit(self, batch: Batch) -> None:
        """Store-writer hook: new records may be waiting."""
        if self._loop is not None and (batch.punches or batch.access):
            for worker in self.workers.values():
                self._loop.call_soon_threadsafe(worker.wake.set)

    # -- what goes out ---------------------------------------------------------------

    def resolve(self, sink: str, entries: list[Entry]) -> dict[int, dict[str, Any] | Outcome]:
        out: dict[int, dict[str, Any] | Outcome] = {}
        punches = {e.record_key: e for e in entries if e.record_type == "punch" and e.payload is None}
        doors = {e.record_key: e for e in entries if e.record_type == "access" and e.payload is None}
        with self.engine.connect() as conn:
            if punches:
                punch_table, person, device = PunchRecord.__table__, Person.__table__, Device.__table__
                rows = conn.execute(
                    select(punch_table, person.c.platform_user_id, device.c.name.label("device_name"))
                    .outerjoin(person, person.c.id == punch_table.c.person_id)
                    .outerjoin(device, device.c.id == punch_table.c.device_id)
                    .where(punch_table.c.key.in_([bytes.fromhex(k) for k in punches]))
                ).all()
                for punch in rows:
                    entry = punches[punch.key.hex()]
                    out[entry.id] = self._punch(sink, entry, punch, punch.platform_user_id, punch.device_name)
            if doors:
                table = AccessRecord.__table__
                rows = conn.execute(select(table).where(table.c.key.in_([bytes.fromhex(k) for k in doors]))).all()
                for event in rows:
                    entry = doors[event.key.hex()]
                    out[entry.id] = _envelope(entry, shapes.access(event))
        for e in entries:
            if e.payload is not None:
                out[e.id] = _envelope(e, e.payload)
        return out

    @staticmethod
    def _punch(sink: str, entry: Entry, punch: Any, platform_id: str | None, device_name: str | None) -> Any:
        if sink != "dingtalk":
            return _envelope(entry, shapes.punch(punch))
        if punch.person_id is None:
            return Outcome("park", f"unknown_user: user {punch.user!r} of {punch.device_id} is no known person")
        if not platform_id:
            return Outcome("park", f"unknown_user: person {punch.person_id!r} has no platform_user_id")
        return {
            "userid": platform_id,
            "device_name": device_name or punch.device_id,
            "device_id": punch.device_id,
            "user_check_time": punch.time,
        }

    # -- status, parked records ----------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        counts = backlog(self.engine)
        t = OutboxEntry.__table__.c
        with self.engine.connect() as conn:
            delivered: dict[str, int] = dict(
                conn.execute(select(t.sink, func.count()).where(t.state == "delivered").group_by(t.sink)).all()
            )
        out = []
        for name, worker in self.workers.items():
            states = counts.get(name, {})
            out.append(
                {
                    "sink": name,
                    "backlog": states.get("pending", 0) + states.get("sending", 0),
                    "delivered": delivered.get(name, 0),
                    "parked": states.get("parked", 0),
                    "failed": worker.failed,
                    "last_error": worker.last_error or None,
                    "rate": round(worker.rate(), 2),
                    "refusing_input": self.refusing,
                }
            )
        return out

    def parked(self, limit: int = 100, after_id: int = 0) -> list[dict[str, Any]]:
        t = OutboxEntry.__table__.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(OutboxEntry.__table__).where(t.state == "parked", t.id > after_id).order_by(t.id).limit(limit)
            ).all()
        return [
            {
                "id": r.id,
                "sink": r.sink,
                "record_type": r.record_type,
                "record_key": r.record_key,
                "reason": r.last_error,
                "attempts": r.attempts,
                "time_ms": r.created_at,
                "time": iso_utc(r.created_at),
            }
            for r in rows
        ]

    def retry(self, entry_id: int) -> bool:
        """A parked record goes back in line (after its data was fixed)."""
        t = OutboxEntry.__table__.c
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(OutboxEntry.__table__)
                .where(t.id == entry_id, t.state == "parked")
                .values(state="pending", next_attempt=0, attempts=0)
            ).rowcount
            sink = conn.execute(select(t.sink).where(t.id == entry_id)).scalar()
        worker = self.workers.get(sink or "")
        if changed and worker is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(worker.wake.set)
        return bool(changed)

    # -- the backlog's bound -----------------------------------------------------------

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(MONITOR_EVERY_S)
            try:
                await asyncio.to_thread(self.check_backlog)
            except Exception:
                log.exception("uplink backlog check failed")

    def check_backlog(self) -> None:
        """Gauges, and the overflow policy: refuse new input at the edge, or drop the oldest (counted)."""
        limit, policy = self.settings.uplink.max_backlog, self.settings.uplink.overflow
        counts = backlog(self.engine)
        worst = 0
        for name in self.workers:
            states = counts.get(name, {})
            waiting = states.get("pending", 0) + states.get("sending", 0)
            self.metrics.uplink_backlog.labels(name).set(waiting)
            self.metrics.uplink_parked.labels(name).set(states.get("parked", 0))
            if policy == "drop_oldest" and waiting > limit:
                self._drop_oldest(name, waiting - limit)
            worst = max(worst, waiting)
        if policy == "refuse":
            was = self.refusing
            self.refusing = worst >= limit or (was and worst >= limit * REFUSE_RESUME)
            self.queue.refusing = self.refusing
            if self.refusing != was:
                log.error(
                    "uplink backlog %s the limit (%d): %s new device input",
                    "over" if self.refusing else "back under",
                    limit,
                    "refusing" if self.refusing else "taking",
                )

    def _drop_oldest(self, sink: str, count: int) -> None:
        t = OutboxEntry.__table__.c
        with self.engine.begin() as conn:
            ids = (
                conn.execute(select(t.id).where(and_(t.sink == sink, t.state == "pending")).order_by(t.id).limit(count))
                .scalars()
                .all()
            )
            conn.execute(delete(OutboxEntry).where(t.id.in_(ids)))
        self.metrics.uplink_dropped.labels(sink).inc(len(ids))
        log.error("uplink %s: backlog over its limit, dropped the %d oldest records unsent", sink, len(ids))


def _envelope(entry: Entry, record: dict[str, Any]) -> dict[str, Any]:
    return {"type": entry.record_type, "idempotency_key": f"{entry.record_type}:{entry.record_key}", "record": record}


class _OneByOne:
    """DingTalk takes one record per call."""

    batch_size = 1
    checks_delivery = True

    def __init__(self, sink: Any, org_zone: str) -> None:
        self.sink = sink
        self.name = sink.name
        self.org_zone = org_zone  # listRecord takes the organisation's local times

    async def send_batch(self, records: list[dict[str, Any]]) -> list[Outcome]:
        return [await self.sink.send(record) for record in records]

    async def was_delivered(self, record: dict[str, Any]) -> bool | None:
        return await self.sink.was_delivered(record, self.org_zone)

    async def close(self) -> None:
        await self.sink.close()


class _Batches:
    """The webhook takes batches; its receiver de-duplicates by idempotency key."""

    checks_delivery = False

    def __init__(self, sink: Any, batch_size: int) -> None:
        self.sink = sink
        self.name = sink.name
        self.batch_size = batch_size

    async def send_batch(self, records: list[dict[str, Any]]) -> list[Outcome]:
        return await self.sink.send_batch(records)

    async def was_delivered(self, record: dict[str, Any]) -> bool | None:
        return None

    async def close(self) -> None:
        await self.sink.close()
