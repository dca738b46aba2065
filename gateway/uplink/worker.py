"""One worker per sink: drains the outbox in order, retries with backoff, parks what the platform refuses.

Per order key (a person, a vehicle) records go one after another, oldest
first: a record waiting for its retry holds back the later records of the
same key, never anybody else's. Before a call an entry is marked `sending`
in its own commit; an entry still `sending` after a crash or a lost answer is
checked with the sink (DingTalk's listRecord) before it is sent again, so
the platform counts it once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Engine, and_, bindparam, func, select, update

from gateway.core.metrics import Metrics
from gateway.core.timeutil import now_ms
from gateway.store.models import OutboxEntry
from gateway.uplink.result import Outcome

log = logging.getLogger(__name__)

FETCH = 500  # entries looked at per round
RETRY_BASE_S = 1.0
UNSURE_RECHECK_S = 5.0  # a lost answer the sink could not check yet is asked about again this much later


class Sink(Protocol):
    name: str
    batch_size: int  # records per call; 1 = one call per record (DingTalk), sent in order per key
    checks_delivery: bool  # True: a lost answer is checked with was_delivered before a resend

    async def send_batch(self, records: list[dict[str, Any]]) -> list[Outcome]: ...

    async def was_delivered(self, record: dict[str, Any]) -> bool | None: ...


@dataclass
class Entry:
    id: int
    record_type: str
    record_key: str
    order_key: str
    payload: dict[str, Any] | None
    state: str
    attempts: int


class SinkWorker:
    def __init__(self, engine: Engine, sink: Sink, resolve: Any, metrics: Metrics, retry_max_s: float = 300) -> None:
        """`resolve(sink name, entries) -> {entry id: record dict or Outcome}`: what is sent for each entry
        (read at send time, so a fixed mapping is used on retry), or why it cannot be sent (park)."""
        self.engine = engine
        self.sink = sink
        self.resolve = resolve
        self.metrics = metrics
        self.retry_max_s = retry_max_s
        self.wake = asyncio.Event()
        self.last_error = ""
        self.failed = 0
        self._sent_times: list[float] = []  # recent deliveries, for the rate shown in the status

    @property
    def name(self) -> str:
        return self.sink.name

    def rate(self) -> float:
        """Records delivered per second over the last 10 s."""
        cutoff = time.monotonic() - 10
        self._sent_times = [t for t in self._sent_times if t >= cutoff]
        return len(self._sent_times) / 10

    async def run(self) -> None:
        while True:
            try:
                worked = await self.round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store or the sink misbehaved: keep the worker alive
                log.exception("uplink %s: round failed", self.name)
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                worked = False
            if not worked:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), 1.0)
                except TimeoutError:
                    pass

    async def round(self) -> bool:
        """Send what is due; False when there was nothing to do."""
        entries = await asyncio.to_thread(self._due, now_ms())
        if not entries:
            return False
        unsure = [e for e in entries if e.state == "sending"]
        fresh = [e for e in entries if e.state == "pending"]
        if unsure:
            await self._check_unsure(unsure)
        if fresh:
            await self._send(fresh)
        return True

    # -- the store -------------------------------------------------------------------

    def _due(self, now: int) -> list[Entry]:
        """The next entries to try, oldest first, at most one in flight per order key."""
        t = OutboxEntry.__table__.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.id, t.record_type, t.record_key, t.order_key, t.payload, t.state, t.attempts, t.next_attempt)
                .where(and_(t.sink == self.name, t.state.in_(("pending", "sending"))))
                .order_by(t.id)
                .limit(FETCH)
            ).all()
        held: set[str] = set()  # keys with an earlier entry still waiting: later ones wait behind it
        due: list[Entry] = []
        for r in rows:
            if r.order_key in held:
                continue
            if r.next_attempt > now:
                held.add(r.order_key)
                continue
            due.append(Entry(r.id, r.record_type, r.record_key, r.order_key, r.payload, r.state, r.attempts))
            if r.state == "sending":
                held.add(r.order_key)  # a send whose answer was lost: the rest of its key waits for the check
        return due

    def _mark_sending(self, ids: list[int]) -> None:
        t = OutboxEntry.__table__.c
        with self.engine.begin() as conn:
            conn.execute(update(OutboxEntry.__table__).where(t.id.in_(ids)).values(state="sending"))

    def _settle(self, results: list[tuple[Entry, Outcome]], unsent: Sequence[Entry] = ()) -> None:
        """Write each entry's outcome, and put `unsent` entries back in line; all in one commit."""
        now = now_ms()
        t = OutboxEntry.__table__.c
        # One parameter set per entry, for the executemany of its update.
        delivered = [{"eid": e.id} for e, o in results if o.status == "delivered"]
        parked: list[dict[str, Any]] = [{"eid": e.id, "err": o.detail[:1000]} for e, o in results if o.status == "park"]
        retry: list[dict[str, Any]] = []
        for e, o in results:
            if o.status != "retry":
                continue
            wait = o.retry_after if o.retry_after is not None else _backoff(e.attempts, self.retry_max_s)
            state = "sending" if o.maybe_delivered and self.sink.checks_delivery else "pending"
            retry.append({"eid": e.id, "err": o.detail[:1000], "at": now + int(wait * 1000), "st": state})
        table = OutboxEntry.__table__
        with self.engine.begin() as conn:
            if unsent:
                conn.execute(update(table).where(t.id.in_([e.id for e in unsent])).values(state="pending"))
            if delivered:
                conn.execute(
                    update(table)
                    .where(t.id == bindparam("eid"))
                    .values(state="delivered", delivered_at=now, last_error=""),
                    delivered,
                )
            if parked:
                conn.execute(
                    update(table).where(t.id == bindparam("eid")).values(state="parked", last_error=bindparam("err")),
                    parked,
                )
            if retry:
                conn.execute(
                    update(table)
                    .where(t.id == bindparam("eid"))
                    .values(
                        state=bindparam("st"),
                        attempts=t.attempts + 1,
                        next_attempt=bindparam("at"),
                        last_error=bindparam("err"),
                    ),
                    retry,
                )
        stamp = time.monotonic()
        self._sent_times += [stamp] * len(delivered)
        if delivered:
            self.metrics.uplink_delivered.labels(self.name).inc(len(delivered))
        if retry:
            self.failed += len(retry)
            self.metrics.uplink_failed.labels(self.name).inc(len(retry))
            self.last_error = retry[-1]["err"]
        if parked:
            self.last_error = parked[-1]["err"]

    # -- the sink -----------------------------------------------------------------------

    async def _records(self, entries: list[Entry]) -> tuple[list[tuple[Entry, dict]], list[tuple[Entry, Outcome]]]:
        resolved = await asyncio.to_thread(self.resolve, self.name, entries)
        ready, refused = [], []
        for e in entries:
            value = resolved.get(e.id)
            if isinstance(value, Outcome):
                refused.append((e, value))
            elif value is None:
                refused.append((e, Outcome("park", f"{e.record_type} {e.record_key} is no longer stored")))
            else:
                ready.append((e, value))
        return ready, refused

    async def _send(self, entries: list[Entry]) -> None:
        ready, refused = await self._records(entries)
        if refused:
            await asyncio.to_thread(self._settle, refused)
        if not ready:
            return
        await asyncio.to_thread(self._mark_sending, [e.id for e, _ in ready])
        if self.sink.batch_size == 1:
            by_key: dict[str, list[tuple[Entry, dict]]] = defaultdict(list)
            for item in ready:
                by_key[item[0].order_key].append(item)
            groups = await asyncio.gather(*(self._one_by_one(items) for items in by_key.values()))
            results = [r for sent, _ in groups for r in sent]
            unsent = [e for _, waiting in groups for e in waiting]
        else:
            results, unsent, size = [], [], self.sink.batch_size
            for start in range(0, len(ready), size):
                chunk = ready[start : start + size]
                outcomes = await self._call([record for _, record in chunk])
                results += list(zip([e for e, _ in chunk], outcomes))
                if any(o.status == "retry" for o in outcomes):  # later batches would overtake it
                    unsent = [e for e, _ in ready[start + size :]]
                    break
        await asyncio.to_thread(self._settle, results, unsent)

    async def _one_by_one(self, items: list[tuple[Entry, dict]]) -> tuple[list[tuple[Entry, Outcome]], list[Entry]]:
        """One key's records in order: (outcomes of those sent, those left unsent behind a retry)."""
        results = []
        for index, (entry, record) in enumerate(items):
            outcome = (await self._call([record]))[0]
            results.append((entry, outcome))
            if outcome.status == "retry":  # the rest of this key waits behind it, unsent
                return results, [e for e, _ in items[index + 1 :]]
        return results, []

    async def _call(self, records: list[dict]) -> list[Outcome]:
        try:
            return await self.sink.send_batch(records)
        except Exception as exc:  # a sink bug must not lose records: they stay for a retry
            log.exception("uplink %s: send failed", self.name)
            return [Outcome("retry", f"{type(exc).__name__}: {exc}", maybe_delivered=True) for _ in records]

    async def _check_unsure(self, entries: list[Entry]) -> None:
        """Sends whose answer was lost: delivered if the platform has them, else sent again."""
        ready, refused = await self._records(entries)
        results = list(refused)
        resend: list[Entry] = []
        if not self.sink.checks_delivery:  # the receiver de-duplicates: sending again is safe
            ready, resend = [], [e for e, _ in ready]
        for entry, record in ready:
            try:
                known = await self.sink.was_delivered(record)
            except Exception as exc:
                log.warning("uplink %s: cannot check entry %d: %s", self.name, entry.id, exc)
                known = None
            if known is True:
                results.append((entry, Outcome("delivered")))
            elif known is False:
                resend.append(entry)
            else:
                results.append(
                    (
                        entry,
                        Outcome("retry", "could not check a lost answer yet", UNSURE_RECHECK_S, maybe_delivered=True),
                    )
                )
        if results:
            await asyncio.to_thread(self._settle, results)
        if resend:
            for entry in resend:
                entry.state = "pending"
            await self._send(resend)


def _backoff(attempts: int, most: float) -> float:
    """Exponential with full jitter: retries of many records do not arrive together."""
    return random.uniform(min(RETRY_BASE_S, most), min(most, RETRY_BASE_S * 2 ** min(attempts, 16)))


def backlog(engine: Engine) -> dict[str, dict[str, int]]:
    """sink -> {state: count} for the states still in the outbox's care."""
    t = OutboxEntry.__table__.c
    out: dict[str, dict[str, int]] = defaultdict(dict)
    with engine.connect() as conn:
        for sink, state, count in conn.execute(
            select(t.sink, t.state, func.count()).where(t.state != "delivered").group_by(t.sink, t.state)
        ):
            out[sink][state] = count
    return out
