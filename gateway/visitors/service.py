"""Visitors: an invitation gives a visitor a temporary credential for some doors during a window.

- The credential (a QR payload, a 6-digit PIN or a temporary card from the
  card pool) is valid from `LEAD_MS` before the window until its end, and is
  checked at the door from memory like a person's card: `views.door_rows()` is
  what the access service puts in its snapshot. An invitation or a revocation
  reloads that snapshot before the API answers.
- A granted read at a door checks the visitor in or out (`presence`), on a
  worker thread of this service, so the reader never waits for the store.
- `housekeeping` checks out visitors at their window's end and anonymises
  visits past the retention (`presence`).
- The blocklist refuses invitations; every change to it or to an invitation is audited.

The lead time, retention and card pool are the `[visitors]` config keys; the limits are in `rules`.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine, select
from sqlmodel import Session, col

from gateway.access.decide import Decision, card_key
from gateway.auth import audit
from gateway.core.timeutil import now_ms
from gateway.store.models import Person, Visit, VisitorBlock
from gateway.visitors import presence
from gateway.visitors.rules import (
    AUDIT_TYPE,
    CARD_POOL,
    CREDENTIAL_KINDS,
    DAY_MS,
    HOUSEKEEPING_S,
    LEAD_MS,
    MINUTE_MS,
    RETENTION_MS,
    Blocklisted,
    NoCredentialLeft,
    NotFound,
    VisitorError,
    blocklist_match,
    check_window,
)
from gateway.visitors.views import block_view, invitation_view

if TYPE_CHECKING:
    from gateway.uplink.outbox import Outbox

__all__ = ["CARD_POOL", "DAY_MS", "HOUSEKEEPING_S", "MINUTE_MS", "RETENTION_MS", "VisitorError", "Visitors"]

log = logging.getLogger(__name__)
BLOCKLIST_TYPE = "visitor_blocklist"


class DoorSnapshot(Protocol):
    """What the doors decide from (the access service): reloaded after a change to invitations."""

    def reload(self) -> None: ...


class Visitors:
    def __init__(
        self,
        engine: Engine,
        access: DoorSnapshot | None = None,
        *,
        lead_ms: int = LEAD_MS,
        retention_ms: int = RETENTION_MS,
        card_pool: tuple[int, int] = CARD_POOL,
    ) -> None:
        self.engine = engine
        self.access = access  # an AccessControl to reload after a change; None where no doors are decided
        self.lead_ms = lead_ms
        self.retention_ms = retention_ms
        self.card_pool = card_pool
        # Credentials are checked free, then written: one invitation at a time.
        self._writes = threading.Lock()
        self._passages: queue.SimpleQueue[tuple[int, str, str, int] | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self.outbox: Outbox | None = None  # an uplink Outbox: visits and host notifications go to the platform

    # -- invitations ----------------------------------------------------------

    def invite(
        self,
        actor: str,
        *,
        name: str,
        host: str,
        start_ms: int,
        end_ms: int,
        doors: list[str],
        kind: str = "qr",
        phone: str | None = None,
        company: str | None = None,
        now: int | None = None,
    ) -> dict[str, Any]:
        """Store an invitation and answer it with its credential; the doors know it when this returns."""
        now = now_ms() if now is None else now
        check_window(start_ms, end_ms, now)
        if kind not in CREDENTIAL_KINDS:
            raise VisitorError(f"credential: one of {', '.join(CREDENTIAL_KINDS)}")
        with self._writes, Session(self.engine) as session:
            if session.get(Person, host) is None:
                raise NotFound(f"no person {host!r} to host the visitor")
            entry = blocklist_match(
                session.execute(select(VisitorBlock).order_by(col(VisitorBlock.id))).scalars(), name, phone
            )
            if entry is not None:
                log.warning("invitation by %s refused: visitor matches blocklist entry %s", actor, entry.id)
                raise Blocklisted(
                    f"the visitor is on the blocklist (entry {entry.id}"
                    + (f": {entry.reason})" if entry.reason else ")")
                )
            visit = Visit(
                name=name,
                phone=phone,
                company=company,
                host_person_id=host,
                window_start=start_ms,
                window_end=end_ms,
                doors=list(doors),
                credential_kind=kind,
                credential_value=self._new_credential(session, kind, now),
                valid_from=start_ms - self.lead_ms,
                valid_until=end_ms,
                created_at=now,
                created_by=actor[:100],
            )
            session.add(visit)
            session.flush()  # its id, for the audit entry
            audit.record(session, actor, "create", AUDIT_TYPE, str(visit.id), None, invitation_view(visit, now))
            session.commit()
            answer = invitation_view(visit, now, secret=True)
        self._reload()
        return answer

    def revoke(self, actor: str, visit_id: int, now: int | None = None) -> None:
        """The credential stops working at the doors when this returns (a second revoke changes nothing)."""
        now = now_ms() if now is None else now
        with self._writes, Session(self.engine) as session:
            visit = session.get(Visit, visit_id)
            if visit is None:
                raise NotFound(f"no invitation {visit_id}")
            if visit.revoked_at is None:
                before = invitation_view(visit, now)
                visit.revoked_at = now
                audit.record(session, actor, "revoke", AUDIT_TYPE, str(visit_id), before, invitation_view(visit, now))
                session.add(visit)
                session.commit()
        self._reload()

    def _open_values(self, session: Session, kind: str, now: int) -> set[str]:
        t = Visit.__table__.c
        rows = session.execute(
            select(t.credential_value).where(
                t.credential_kind == kind,
                t.credential_value.is_not(None),
                t.revoked_at.is_(None),
                t.anonymised_at.is_(None),
                t.valid_until > now,
            )
        )
        return {str(v) for (v,) in rows}

    def _new_credential(self, session: Session, kind: str, now: int) -> str:
        if kind == "qr":
            return secrets.token_urlsafe(24)
        taken = self._open_values(session, kind, now)
        if kind == "pin":
            for _ in range(200):
                pin = f"{secrets.randbelow(1_000_000):06d}"
                if pin not in taken:
                    return pin
            raise NoCredentialLeft("no free PIN found; try again or use a QR credential")
        # card: the lowest pool number no open invitation holds and no person's card uses
        taken = {card_key(v) for v in taken}
        for (cards,) in session.execute(select(col(Person.cards))):
            for card in cards or ():
                taken.add(card_key(card).rpartition(":")[2])
        low, high = self.card_pool
        for number in range(low, high + 1):
            if str(number) not in taken:
                return str(number)
        raise NoCredentialLeft(f"every temporary card of the pool {low}-{high} is in use")

    def _reload(self) -> None:
        if self.access is not None:
            self.access.reload()

    # -- the blocklist ----------------------------------------------------------

    def block(self, actor: str, name: str | None, phone: str | None, reason: str) -> dict[str, Any]:
        """An invitation for a visitor with this name (any case) or phone (same digits) is refused from now on."""
        with Session(self.engine) as session:
            entry = VisitorBlock(name=name, phone=phone, reason=reason, created_at=now_ms(), created_by=actor[:100])
            session.add(entry)
            session.flush()
            audit.record(session, actor, "create", BLOCKLIST_TYPE, str(entry.id), None, block_view(entry))
            session.commit()
            return block_view(entry)

    def unblock(self, actor: str, entry_id: int) -> None:
        with Session(self.engine) as session:
            entry = session.get(VisitorBlock, entry_id)
            if entry is None:
                raise NotFound(f"no blocklist entry {str(entry_id)!r}")
            audit.record(session, actor, "delete", BLOCKLIST_TYPE, str(entry_id), block_view(entry), None)
            session.delete(entry)
            session.commit()

    # -- reads for the API ----------------------------------------------------------

    def invitations(self, after_id: int, limit: int, host: str | None = None) -> list[Visit]:
        visit_id = col(Visit.id)
        query = select(Visit).where(visit_id > after_id).order_by(visit_id).limit(limit)
        if host is not None:
            query = query.where(col(Visit.host_person_id) == host)
        with Session(self.engine) as session:
            return list(session.execute(query).scalars())

    def visits(self, after_id: int, limit: int, on_site: bool | None = None) -> tuple[list[Visit], dict[str, str]]:
        """Visits by id (all, those on site, or those not), with their hosts' names."""
        t = Visit.__table__.c
        query = select(Visit).where(t.id > after_id).order_by(t.id).limit(limit)
        if on_site is True:
            query = query.where(t.checked_in_at.is_not(None), t.checked_out_at.is_(None))
        elif on_site is False:
            query = query.where((t.checked_in_at.is_(None)) | (t.checked_out_at.is_not(None)))
        with Session(self.engine) as session:
            rows = list(session.execute(query).scalars())
            hosts = {v.host_person_id for v in rows}
            query_names = select(col(Person.id), col(Person.name)).where(col(Person.id).in_(hosts))
            names: dict[str, str] = dict(session.execute(query_names).all()) if hosts else {}
        return rows, names

    def blocklist(self, after_id: int, limit: int) -> list[VisitorBlock]:
        entry_id = col(VisitorBlock.id)
        query = select(VisitorBlock).where(entry_id > after_id).order_by(entry_id).limit(limit)
        with Session(self.engine) as session:
            return list(session.execute(query).scalars())

    # -- at the doors -----------------------------------------------------------

    def on_decision(self, reader_id: str, door: str, direction: str, decision: Decision, at_ms: int) -> None:
        """Called by the access service after each decision, on the reader's thread: only queues the passage."""
        if decision.visitor_id is None or not decision.granted:
            return
        try:
            visit_id = int(decision.visitor_id)
        except ValueError:
            return
        self._passages.put((visit_id, door, direction, at_ms))

    def passage(self, visit_id: int, door: str, direction: str, at_ms: int) -> None:
        """A granted read: check in (first entry, and notify the host), back in, or check out at an exit."""
        with self.engine.begin() as conn:
            presence.record_passage(conn, self.outbox, visit_id, door, direction, at_ms)

    def start(self) -> Visitors:
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="visitor passages", daemon=True)
            self._worker.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        """Record the passages already queued, then stop."""
        if self._worker is not None:
            self._passages.put(None)
            self._worker.join(timeout)
            self._worker = None

    def _work(self) -> None:
        while (item := self._passages.get()) is not None:
            try:
                self.passage(*item)
            except Exception:
                log.exception("could not record visitor %s passing %s", item[0], item[1])

    # -- periodic ---------------------------------------------------------------

    def housekeeping(self, now: int | None = None) -> dict[str, int]:
        """Check out visitors whose window has ended; anonymise visits past the retention."""
        now = now_ms() if now is None else now
        with self.engine.begin() as conn:
            checked_out = presence.check_out_ended(conn, self.outbox, now)
        anonymised = presence.anonymise(self.engine, now, self.retention_ms)
        if checked_out or anonymised:
            log.info("visitors: %d checked out at the end of their window, %d anonymised", checked_out, anonymised)
        return {"checked_out": checked_out, "anonymised": anonymised}
