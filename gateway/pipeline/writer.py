"""The store writer: decode a batch, commit it in one transaction, then acknowledge.

Runs on its own thread (SQLite has one writer; the event loop stays free).
Nothing is acknowledged before its commit. A batch whose commit fails for an
operational reason (disk, lock, lost PostgreSQL connection) is retried with
backoff while the queue fills and pushes back on the transports; a batch that
fails because of one bad row is split so that row is dead-lettered alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, func, select, update
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from gateway.core.backoff import Backoff
from gateway.core.events import AccessEvent, CommandResult, DeviceStatus, Event, Fix, Punch
from gateway.core.metrics import Metrics
from gateway.devices import families
from gateway.devices.errors import DecodeError
from gateway.management.registry import Registry
from gateway.people.index import PeopleIndex
from gateway.pipeline.batch import Batch, Reported
from gateway.pipeline.queue import Inbound, IngestQueue
from gateway.pipeline.rows import (
    COLUMNS,
    TABLE,
    AccessRow,
    PunchRow,
    Row,
    access_row,
    command_result_row,
    fix_row,
    punch_row,
    route,
    status_row,
)
from gateway.store import journal
from gateway.store.models import DeadLetter, Device, Journal
from gateway.uplink.outbox import Outbox

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(
        self,
        engine: Engine,
        registry: Registry,
        queue: IngestQueue,
        metrics: Metrics,
        *,
        batch_ms: int = 20,
        max_payload: int = 262144,
        people: PeopleIndex | None = None,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.queue = queue
        self.metrics = metrics
        self.batch_wait = batch_ms / 1000
        self.max_payload = max_payload
        self.people = people
        self.decoders = families.decoders()  # channel -> decoder; per-device reader state stays with this pipeline
        self._jobs: list[Callable[[], None]] = []
        self.outbox: Outbox | None = None  # records for the platform are queued in the same commit
        # Decides a door controller's "pending" read in place (the access service; None: left pending).
        self.decide_access: Callable[[AccessEvent], Any] | None = None
        self.on_commit: list[Callable[[Batch], None]] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._next_segment: int | None = None
        self._insert_new = {kind: _insert_or_ignore(engine, TABLE[kind], cols) for kind, cols in COLUMNS.items()}
        self._insert_journal = Journal.__table__.insert()
        self._insert_dead = DeadLetter.__table__.insert()
        dev = Device.__table__
        self._update_seen = (
            update(dev)
            .where(dev.c.id == bindparam("dev"))
            .values(
                last_seen=bindparam("t"),
                events_total=dev.c.events_total + bindparam("n"),
                errors_total=dev.c.errors_total + bindparam("e"),
            )
        )
        # Online/offline is Liveness's to decide; the writer keeps the reported firmware.
        self._update_firmware = (
            update(dev)
            .where(dev.c.id == bindparam("dev"))
            .values(firmware=func.coalesce(bindparam("fw"), dev.c.firmware))
        )

    # -- thread ------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 4.0) -> None:
        """Refuse new input, write and acknowledge what is queued, then stop."""
        self.queue.close()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("store writer did not finish in %.1fs; unacknowledged input will be resent", timeout)
                self._stop.set()
                self._thread.join(1.0)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def on_writer_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def run_in_writer(self, job: Callable[[], None]) -> threading.Event:
        """Run `job` on the writer thread between batches, so it never races a batch's commit. The event
        is set once it ran: a caller that waits knows every input queued after that sees its effect."""
        done = threading.Event()

        def run() -> None:
            try:
                job()
            finally:
                done.set()

        self._jobs.append(run)
        self.queue.wake()  # not after the idle wait for input
        return done

    def _run_jobs(self) -> None:
        while self._jobs:
            job = self._jobs.pop(0)
            try:
                job()
            except Exception:
                log.exception("job on the store writer failed")

    def _run(self) -> None:
        while not self._stop.is_set():
            self._run_jobs()
            items = self.queue.take(self.batch_wait)
            self.metrics.queue_depth.set(len(self.queue))
            if items:
                self.process(items)
            elif self.queue.closed and not len(self.queue):
                return

    # -- one batch -----------------------------------------------------------

    def process(self, items: list[Inbound]) -> None:
        start = time.perf_counter()
        batch = self.prepare(items)
        if not self._commit_with_retry(batch):
            return  # stopping: unacknowledged input will be resent by its sender
        self.metrics.commit_seconds.observe(time.perf_counter() - start)
        self.metrics.batch_size.observe(len(items))
        self._acknowledge(items)
        for callback in self.on_commit:
            try:
                callback(batch)
            except Exception:  # a listener must never stop the writer
                log.exception("on_commit listener failed")

    def prepare(self, items: list[Inbound]) -> Batch:
        now = datetime.now(UTC)
        batch = Batch(now_ms=int(now.timestamp() * 1000), items=items)
        received: dict[str, int] = defaultdict(int)
        for item in items:
            received[item.transport] += 1
            self._decode_one(item, now, batch)
        for transport, n in received.items():
            self.metrics.received.labels(transport).inc(n)
        return batch

    def _decode_one(self, item: Inbound, now: datetime, batch: Batch) -> None:
        payload = item.payload
        if item.reject is not None:
            known = item.device_id if item.device_id and self.registry.get(item.device_id) else None
            batch.dead_letter(item, known, item.reject, f"refused by the transport (sender {item.sender!r})", payload)
            return
        device_id, channel = route(item.topic, item.device_id)
        if channel is None or device_id is None:  # route() names a device whenever it names a channel
            batch.dead_letter(item, device_id, "unknown_topic", f"no decoder for topic {item.topic[:200]!r}", payload)
            return
        own = families.OWN_TOPICS.get(channel)
        if own is not None:  # a topic of the device's own naming: known by its wire key
            device = self.registry.by_identity(own.protocol, device_id)
            if device is not None and item.sender is not None and item.sender != device.id:
                batch.dead_letter(item, device.id, "not_authorized", f"{item.sender!r} may not speak for it", payload)
                return
        else:
            device = self.registry.get(device_id)
            if device is None and item.transport == "serial" and item.sender:  # a line without a device_id
                device = self.registry.by_identity(families.CHANNELS[channel].protocol, item.sender)
        if device is None:
            batch.dead_letter(item, None, "unknown_device", f"device {device_id[:64]!r} is not registered", payload)
            return
        counts = batch.seen.setdefault(device.id, [0, 0])
        if len(payload) > self.max_payload:
            batch.dead_letter(item, device.id, "too_large", f"{len(payload)} bytes > {self.max_payload}", payload)
            return
        try:
            decoded = (
                item.decoded if item.decoded is not None else self.decoders[channel](payload, device.id, device.tz, now)
            )
        except DecodeError as exc:
            batch.dead_letter(item, device.id, exc.reason, exc.detail, exc.raw or payload)
            return
        segment = batch.segments.get(item.transport)
        if segment is None:
            segment = batch.segments[item.transport] = self._allocate_segment()
        accepted = batch.journal[item.transport]
        raw_ref = f"{segment}/{len(accepted)}"
        accepted.append((item.topic, payload))
        self._add_rows(batch, decoded.events, device.id, raw_ref)
        counts[0] += len(decoded.events)
        item.accepted = len(decoded.events)
        for reject in decoded.rejects:
            batch.dead_letter(item, device.id, reject.reason, reject.detail, reject.raw)

    def _add_rows(self, batch: Batch, events: list[Event], device_id: str, raw_ref: str) -> None:
        """The events as rows of their tables: a punch with the person it resolves to, a fix with the
        vehicle its device is in, a door controller's pending request decided here."""
        people, stored_at = self.people, batch.now_ms
        for event in events:
            if isinstance(event, Punch):
                person = people.resolve(device_id, event.user) if people is not None else None
                batch.punches.append(punch_row(event, raw_ref, stored_at, person))
            elif isinstance(event, AccessEvent):
                if event.result == "pending" and self.decide_access is not None:
                    self.decide_access(event)
                    batch.door_requests.append(event)
                batch.access.append(access_row(event, raw_ref, stored_at))
            elif isinstance(event, Fix):
                batch.fixes.append(fix_row(event, raw_ref, stored_at, self.registry.vehicle_of(device_id)))
            elif isinstance(event, DeviceStatus):
                batch.statuses.append(status_row(event, raw_ref, stored_at))
                batch.reported[device_id] = Reported(event.online, event.detail.get("firmware"))
            elif isinstance(event, CommandResult):
                batch.command_results.append(command_result_row(event, raw_ref, stored_at))
            else:
                raise TypeError(f"not an event: {event!r}")

    def _allocate_segment(self) -> int:
        # This thread is the journal's only writer, so ids can be handed out here.
        if self._next_segment is None:
            with self.engine.connect() as conn:
                self._next_segment = (conn.execute(select(func.max(Journal.id))).scalar() or 0) + 1
        segment, self._next_segment = self._next_segment, self._next_segment + 1
        return segment

    def _commit_with_retry(self, batch: Batch) -> bool:
        backoff = Backoff(initial=0.05, maximum=5.0)
        while True:
            try:
                self._write(batch)
                return True
            except OperationalError as exc:
                self.metrics.store_errors.inc()
                if self._stop.is_set():
                    return False
                log.warning("store unavailable (%s); retrying the batch", exc.orig)
                time.sleep(backoff.next())
            except (DBAPIError, SQLAlchemyError) as exc:
                # One bad row spoils the whole transaction: write the items one by one.
                log.warning("batch rejected by the store (%s); isolating the bad input", exc)
                self._write_one_by_one(batch)
                return True

    def _write_one_by_one(self, batch: Batch) -> None:
        for item in batch.items:
            single = self.prepare([item])
            try:
                self._write(single)
            except OperationalError:
                raise
            except (DBAPIError, SQLAlchemyError) as exc:
                failed = Batch(now_ms=single.now_ms, items=[item])
                failed.dead_letter(item, item.device_id, "store_rejected", str(exc.__cause__ or exc), item.payload)
                self._write(failed)

    def _write(self, batch: Batch) -> None:
        stored: dict[str, int] = {}
        duplicates = 0
        with self.engine.begin() as conn:
            if batch.journal:
                conn.execute(
                    self._insert_journal,
                    [
                        {
                            "id": batch.segments[transport],
                            "received_at": batch.now_ms,
                            "transport": transport,
                            "count": len(messages),
                            "data": journal.pack(messages),
                        }
                        for transport, messages in batch.journal.items()
                    ],
                )
            for kind, rows in batch.records().items():
                if rows:
                    inserted = conn.exec_driver_sql(self._insert_new[kind], rows).rowcount
                    stored[kind] = inserted
                    duplicates += len(rows) - inserted
                    if self.outbox is not None and self.outbox.wants(kind):
                        self.outbox.enqueue(conn, kind, [(row.key.hex(), _order_key(row), None) for row in rows])
            if batch.dead:
                conn.execute(self._insert_dead, batch.dead)
            if batch.seen:
                params = [{"dev": d, "t": batch.now_ms, "n": c[0], "e": c[1]} for d, c in batch.seen.items()]
                conn.execute(self._update_seen, params)
            if batch.reported:
                conn.execute(self._update_firmware, [{"dev": d, "fw": r.firmware} for d, r in batch.reported.items()])
        for kind, n in stored.items():
            self.metrics.stored.labels(kind).inc(n)
        if duplicates:
            self.metrics.duplicates.inc(duplicates)
        for row in batch.dead:
            self.metrics.deadletters.labels(row["reason"]).inc()

    def _acknowledge(self, items: list[Inbound]) -> None:
        groups: dict[Any, list[Any]] = defaultdict(list)
        for item in items:
            if item.acker is not None:
                groups[item.acker].append(item.token)
        for acker, tokens in groups.items():
            try:
                acker.ack(tokens)
            except Exception:
                log.exception("acknowledging %d inputs failed; their senders will resend", len(tokens))


def _order_key(row: Row) -> str:
    """Whose records must reach the platform in order. A punch goes in order with the other punches of
    its device user (a person as one terminal knows them): unlike the person it resolves to, that never
    changes, so a punch stored before its person was known stays in line."""
    if isinstance(row, PunchRow):
        return f"user:{row.device_id}/{row.user}"
    if isinstance(row, AccessRow):
        holder = row.person_id or row.visitor_id
        return f"holder:{holder}" if holder else f"door:{row.door}"
    return f"device:{row.device_id}"  # not reached: the store writer queues only punches and access events


def _insert_or_ignore(engine: Engine, table: str, columns: tuple[str, ...]) -> str:
    """Plain SQL for executemany with tuples; a row whose key exists is skipped (a resend)."""
    quote = engine.dialect.identifier_preparer.quote
    mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    names = ", ".join(quote(c) for c in columns)
    marks = ", ".join(mark for _ in columns)
    return f"INSERT INTO {quote(table)} ({names}) VALUES ({marks}) ON CONFLICT ({quote('key')}) DO NOTHING"
