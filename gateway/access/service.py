"""Door decisions at the edge: an in-memory snapshot of who may open what, rebuilt on every change.

A read is decided from memory (no database, no network on the way to the
strike), acted on by the caller at once, then recorded through the pipeline
like any other input. A change to people is in the snapshot as soon as the
API has committed it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlmodel import col

from gateway.access.decide import AccessData, Credential, Decision, build, decide, find_holder
from gateway.core.events import AccessEvent
from gateway.core.timeutil import now_ms
from gateway.devices import access_log, wiegand
from gateway.devices.errors import DecodeError
from gateway.pipeline.queue import Inbound, IngestQueue
from gateway.store.models import AccessSchedule, Holiday, Person

log = logging.getLogger(__name__)

# The visitors the doors should know, read in the snapshot's transaction: (connection, now ms) -> rows as
# `decide.build` takes them. The visitors domain provides it; the app wires it in.
VisitorRows = Callable[[Connection, int], list[dict[str, Any]]]


def _no_visitors(conn: Connection, now: int) -> list[dict[str, Any]]:
    return []


class AccessControl:
    def __init__(self, engine: Engine, site_timezone: str, queue: IngestQueue) -> None:
        self.engine = engine
        self.site_timezone = site_timezone
        self.queue = queue
        self.anti_passback: list[tuple[str, str]] = []
        self.door_groups: dict[str, list[str]] = {}
        self.data = AccessData()
        # PINs are matched as keyed digests (people's are stored so); the app sets the site's key.
        self.pin_digest: Callable[[str], str] = lambda pin: pin
        self._last_direction: dict[str, str] = {}  # holder key -> "in"/"out" through anti-passback doors
        self._lock = threading.Lock()
        # Called after each read is decided and queued, on the reader's thread: (reader id, door, direction,
        # decision, time ms). They must only hand the work on (the visitors' check-in, say), never block.
        self.on_decision: list[Callable[[str, str, str, Decision, int], None]] = []
        self.visitor_rows: VisitorRows = _no_visitors

    def reload(self) -> None:
        with self.engine.connect() as conn:
            people = [
                {"id": p.id, "cards": p.cards or [], "pins": p.pins or [], "access": self._expand_groups(p.access)}
                for p in conn.execute(select(col(Person.id), col(Person.cards), col(Person.pins), col(Person.access)))
            ]
            visitors = [self._digest_visitor_pin(row) for row in self.visitor_rows(conn, now_ms())]
            holidays = [row.date for row in conn.execute(select(col(Holiday.date)))]
            schedules = [
                {"id": s.id, "windows": s.windows, "holidays_closed": s.holidays_closed}
                for s in conn.execute(
                    select(col(AccessSchedule.id), col(AccessSchedule.windows), col(AccessSchedule.holidays_closed))
                )
            ]
        data = build(
            people,
            visitors=visitors,
            schedules=schedules,
            holidays=holidays,
            tz=self.site_timezone,
            anti_passback=self.anti_passback,
        )
        for problem in data.problems:
            log.warning("access rules: %s", problem)
        self.data = data  # one reference swap: readers see the old or the new snapshot, never half of one

    def _digest_visitor_pin(self, row: dict) -> dict:
        credential = row.get("credential") or {}
        if credential.get("kind") != "pin" or not credential.get("value"):
            return row
        return {**row, "credential": {"kind": "pin", "value": self.pin_digest(str(credential["value"]))}}

    def _expand_groups(self, access: dict | None) -> dict | None:
        """A person's access with door group names replaced by their doors."""
        if not access or not self.door_groups:
            return access
        doors: list[str] = []
        for door in access.get("doors") or []:
            doors += self.door_groups.get(door, [door])
        return {**access, "doors": doors}

    def read(
        self,
        reader_id: str,
        door: str,
        credential: Credential,
        bits: int | None = None,
        card_format: str | None = None,
        direction: str = "in",
    ) -> Decision:
        """Decide a read at `door` and queue its record; the caller opens the door or not."""
        now = now_ms()
        decision = self._decide(door, credential, direction, now)
        shown = {
            "kind": credential.kind,
            "value": _shown(credential),
            "bits": bits,
            "format": card_format,
            "facility": credential.facility,
            "number": credential.number,
        }
        record = access_log.encode(
            door, now, shown, decision.decision, decision.reason, decision.person_id, decision.visitor_id, direction
        )
        # Blocks only while the store is jammed: the record is never dropped.
        self.queue.put(Inbound("osdp", "access/decided", record, reader_id))
        self._after(reader_id, door, direction, decision, now)
        return decision

    def decide_request(self, event: AccessEvent) -> Decision:
        """An MQTT door controller's read that asks the gateway to decide ("result": "pending").

        Called by the store writer before it writes the event: the event becomes
        the decided record (the caller sends the controller its answer after the commit).
        """
        now = now_ms()
        credential = _mqtt_credential(event)
        decision = self._decide(event.door, credential, event.direction, now)
        event.result, event.reason = decision.decision, decision.reason
        event.person_id, event.visitor_id = decision.person_id, decision.visitor_id
        event.credential_value = _shown(credential)
        if credential.number is not None:
            event.facility, event.number = credential.facility, credential.number
        self._after(event.device_id, event.door, event.direction, decision, now)
        return decision

    def _decide(self, door: str, credential: Credential, direction: str, now: int) -> Decision:
        data = self.data
        if credential.kind == "pin":  # PINs are secrets: matched by digest, never recorded
            credential = replace(credential, value=self.pin_digest(credential.value))
        with self._lock:
            holder = find_holder(credential, data)
            last = self._last_direction.get(holder.key) if holder is not None else None
            decision = decide(credential, door, now, data, last, direction)
            if decision.granted and holder is not None:
                self._last_direction[holder.key] = direction
        return decision

    def _after(self, reader_id: str, door: str, direction: str, decision: Decision, now: int) -> None:
        for callback in self.on_decision:
            try:
                callback(reader_id, door, direction, decision, now)
            except Exception:
                log.exception("after the decision at %s", door)


def _shown(credential: Credential) -> str:
    """The credential as recorded: a PIN only by its length."""
    return "*" * len(credential.value) if credential.kind == "pin" else credential.value


def _mqtt_credential(event: AccessEvent) -> Credential:
    """A controller's card is its bits as hex ("0x14088B", 26 bits): decoded like a reader's; a card that
    is not hex or has no bit count is matched as a number; a bad parity is denied as such."""
    value, bits = event.credential_value, event.credential_bits
    if event.credential_kind != "card" or not bits or not value.lower().startswith("0x"):
        return Credential(event.credential_kind, value)
    try:
        number = int(value, 16)
        size = (bits + 7) // 8
        data = (number << (size * 8 - bits)).to_bytes(size, "big")
        card = wiegand.decode(data, bits)
    except DecodeError as exc:
        return Credential("card", value, parity_ok=exc.reason != "bad_parity")
    except (ValueError, OverflowError):
        return Credential("card", value)
    event.credential_format = card.format
    return Credential.from_card(card)
