"""Door decisions at the edge: an in-memory snapshot of who may open what, rebuilt on every change.

A read is decided from memory (no database, no network on the way to the
strike), acted on by the caller at once, then recorded through the pipeline
like any other input. A change to people is in the snapshot as soon as the
API has committed it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine, select

from gateway.access.decide import AccessData, Credential, Decision, build, decide, find_holder
from gateway.devices import access_log
from gateway.pipeline.queue import Inbound, IngestQueue
from gateway.store.models import AccessSchedule, Holiday, Person
from gateway.visitors.service import door_rows

log = logging.getLogger(__name__)


class AccessControl:
    def __init__(self, engine: Engine, site_timezone: str, queue: IngestQueue) -> None:
        self.engine = engine
        self.site_timezone = site_timezone
        self.queue = queue
        self.anti_passback: list[tuple[str, str]] = []
        self.door_groups: dict[str, list[str]] = {}
        self.data = AccessData()
        self._last_direction: dict[str, str] = {}  # holder key -> "in"/"out" through anti-passback doors
        self._lock = threading.Lock()
        # Called after each read is decided and queued, on the reader's thread: (reader id, door, direction,
        # decision, time ms). They must only hand the work on (the visitors' check-in, say), never block.
        self.on_decision: list[Callable[[str, str, str, Decision, int], None]] = []

    def reload(self) -> None:
        with self.engine.connect() as conn:
            people = [
                {"id": p.id, "cards": p.cards or [], "access": self._expand_groups(p.access)}
                for p in conn.execute(select(Person.id, Person.cards, Person.access))
            ]
            visitors = door_rows(conn, int(time.time() * 1000))
            holidays = [row.date for row in conn.execute(select(Holiday.date))]
            schedules = [
                {"id": s.id, "windows": s.windows, "holidays_closed": s.holidays_closed}
                for s in conn.execute(select(AccessSchedule.id, AccessSchedule.windows, AccessSchedule.holidays_closed))
            ]
        data = build(people, visitors=visitors, schedules=schedules, holidays=holidays, tz=self.site_timezone,
                     anti_passback=self.anti_passback)  # fmt: skip
        for problem in data.problems:
            log.warning("access rules: %s", problem)
        self.data = data  # one reference swap: readers see the old or the new snapshot, never half of one

    def _expand_groups(self, access: dict | None) -> dict | None:
        """A person's access with door group names replaced by their doors."""
        if not access or not self.door_groups:
            return access
        doors: list[str] = []
        for door in access.get("doors") or []:
            doors += self.door_groups.get(door, [door])
        return {**access, "doors": doors}

    def read(self, reader_id: str, door: str, credential: Credential, bits: int | None = None,
             card_format: str | None = None, direction: str = "in") -> Decision:  # fmt: skip
        """Decide a read at `door` and queue its record; the caller opens the door or not."""
        now = int(time.time() * 1000)
        data = self.data
        with self._lock:
            holder = find_holder(credential, data)
            last = self._last_direction.get(holder.key) if holder is not None else None
            decision = decide(credential, door, now, data, last, direction)
            if decision.granted and holder is not None:
                self._last_direction[holder.key] = direction
        shown = {"kind": credential.kind, "value": credential.value, "bits": bits, "format": card_format,
                 "facility": credential.facility, "number": credential.number}  # fmt: skip
        record = access_log.encode(door, now, shown, decision.decision, decision.reason, decision.person_id,
                                   decision.visitor_id, direction)  # fmt: skip
        # Blocks only while the store is jammed: the record is never dropped.
        self.queue.put(Inbound("osdp", "access/decided", record, reader_id))
        for callback in self.on_decision:
            try:
                callback(reader_id, door, direction, decision, now)
            except Exception:
                log.exception("after the decision at %s", door)
        return decision
