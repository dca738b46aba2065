"""Visitors: an invitation gives a visitor a temporary credential for some doors during a window.

- The credential (a QR payload, a 6-digit PIN or a temporary card from the
  card pool) is valid from `LEAD_MS` before the window until its end, and is
  checked at the door from memory like a person's card: `views.door_rows()` is
  what the access service puts in its snapshot. An invitation or a revocation
  reloads that snapshot before the API answers.
- The first granted entry checks the visitor in and leaves a `visitor_arrived`
  notification for the host (an uplink delivers it later). A granted read at an
  exit reader (a reader provisioned with `direction = "out"`) checks them out;
  so does the window's end (`housekeeping`).
- `housekeeping` also anonymises a visit's personal data `RETENTION_MS` after
  its window ended; the row stays, so visits can still be counted.

The lead time, retention and card pool are the `[visitors]` config keys.
"""

from __future__ import annotations

import logging
import queue
import re
import secrets
import threading
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, select, update
from sqlmodel import Session

from gateway.access.decide import Decision, card_key
from gateway.auth import audit
from gateway.core.timeutil import iso_utc, now_ms
from gateway.store.models import AuditEntry, Person, Visit, VisitNotification, VisitorBlock
from gateway.visitors.views import invitation_view, visit_view

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
DAY_MS = 24 * 60 * MINUTE_MS
LEAD_MS = 15 * MINUTE_MS  # the credential works this long before the window starts
RETENTION_MS = 180 * DAY_MS  # personal data is anonymised this long after the window ended
MAX_WINDOW_MS = 7 * DAY_MS  # the longest window an invitation may have
MAX_AHEAD_MS = 366 * DAY_MS  # how far ahead a window may start
CARD_POOL = (60000, 65535)  # temporary cards "<number>" (any facility), inclusive; H10301 numbers go to 65535
HOUSEKEEPING_S = 2.0  # how often the gateway runs `housekeeping`
ANONYMISED = "anonymised"
ANONYMISE_BATCH = 500
CREDENTIAL_KINDS = ("qr", "pin", "card")
AUDIT_TYPE = "visitor_invitation"
_PERSONAL = ("name", "phone", "company")


class VisitorError(Exception):
    """A refused request; `status` is the HTTP status the API answers with."""

    status = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadWindow(VisitorError):
    status = 422


class NotFound(VisitorError):
    status = 404


class Blocklisted(VisitorError):
    status = 409


class NoCredentialLeft(VisitorError):
    status = 409


def normal_name(name: str | None) -> str:
    return " ".join((name or "").split()).casefold()


def normal_phone(phone: str | None) -> str:
    """Digits only: "+86 138-0000-0000" and "+8613800000000" are the same phone."""
    return re.sub(r"[^0-9]", "", phone or "")


def blocklist_match(entries: Iterable[VisitorBlock], name: str, phone: str | None) -> VisitorBlock | None:
    """The first entry whose name (case-insensitive) or phone (digits) is the visitor's."""
    name_key, phone_key = normal_name(name), normal_phone(phone)
    for entry in entries:
        if entry.name and name_key and normal_name(entry.name) == name_key:
            return entry
        if entry.phone and phone_key and normal_phone(entry.phone) == phone_key:
            return entry
    return None


def check_window(start_ms: int, end_ms: int, now: int) -> None:
    if end_ms <= start_ms:
        raise BadWindow("window: end must be after start")
    if end_ms - start_ms > MAX_WINDOW_MS:
        raise BadWindow(f"window: at most {MAX_WINDOW_MS // DAY_MS} days long")
    if end_ms <= now:
        raise BadWindow("window: it has already ended")
    if start_ms - now > MAX_AHEAD_MS:
        raise BadWindow(f"window: starts more than {MAX_AHEAD_MS // DAY_MS} days ahead")


class Visitors:
    def __init__(
        self,
        engine: Engine,
        access: Any = None,
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
        self.outbox: Any = None  # an uplink Outbox: visits and host notifications go to the platform

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
                session.execute(select(VisitorBlock).order_by(VisitorBlock.id)).scalars(), name, phone
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
        for (cards,) in session.execute(select(Person.cards)):
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
        t = Visit.__table__.c
        with self.engine.begin() as conn:
            if direction == "out":
                left = conn.execute(
                    update(Visit.__table__)
                    .where(
                        t.id == visit_id,
                        t.checked_in_at.is_not(None),
                        t.checked_out_at.is_(None),
                    )
                    .values(checked_out_at=at_ms, checkout_reason="exit_reader")
                ).rowcount
                if left:
                    self._send_visits(conn, [visit_id])
                return
            first = conn.execute(
                update(Visit.__table__).where(t.id == visit_id, t.checked_in_at.is_(None)).values(checked_in_at=at_ms)
            ).rowcount
            if first:
                host = conn.execute(select(t.host_person_id).where(t.id == visit_id)).scalar_one()
                conn.execute(
                    VisitNotification.__table__.insert().values(
                        visit_id=visit_id,
                        host_person_id=host,
                        time=at_ms,
                        kind="visitor_arrived",
                        delivered=False,
                    )
                )
                if self.outbox is not None:
                    visit = conn.execute(select(t.name, t.company).where(t.id == visit_id)).one()
                    self.outbox.enqueue(
                        conn,
                        "visitor_arrived",
                        [
                            (
                                str(visit_id),
                                f"host:{host}",
                                {
                                    "visit_id": str(visit_id),
                                    "host": host,
                                    "visitor_name": visit.name,
                                    "company": visit.company,
                                    "time": iso_utc(at_ms),
                                    "door": door,
                                },
                            )
                        ],
                    )
                log.info("visitor %s checked in at %s", visit_id, door)
            else:  # back in after leaving through an exit reader: on site again
                conn.execute(
                    update(Visit.__table__)
                    .where(
                        t.id == visit_id,
                        t.checked_out_at.is_not(None),
                        t.checkout_reason == "exit_reader",
                    )
                    .values(checked_out_at=None, checkout_reason=None)
                )

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
        t = Visit.__table__.c
        with self.engine.begin() as conn:
            ending = list(
                conn.execute(
                    select(t.id).where(
                        t.checked_in_at.is_not(None),
                        t.checked_out_at.is_(None),
                        t.window_end <= now,
                    )
                ).scalars()
            )
            checked_out = (
                conn.execute(
                    update(Visit.__table__)
                    .where(
                        t.id.in_(ending),
                        t.checked_out_at.is_(None),
                    )
                    .values(checked_out_at=t.window_end, checkout_reason="window_end")
                ).rowcount
                if ending
                else 0
            )
            self._send_visits(conn, ending)
        anonymised = self._anonymise(now)
        if checked_out or anonymised:
            log.info("visitors: %d checked out at the end of their window, %d anonymised", checked_out, anonymised)
        return {"checked_out": checked_out, "anonymised": anonymised}

    def _send_visits(self, conn: Connection, visit_ids: list[int]) -> None:
        """Finished visits to the platform, in the transaction that finished them."""
        if self.outbox is None or not visit_ids or not self.outbox.wants("visit"):
            return
        visits = conn.execute(select(Visit.__table__).where(Visit.__table__.c.id.in_(visit_ids))).all()
        self.outbox.enqueue(
            conn, "visit", [(str(v.id), f"host:{v.host_person_id}", visit_view(v, None)) for v in visits]
        )

    def _anonymise(self, now: int) -> int:
        t = Visit.__table__.c
        with Session(self.engine) as session:
            ids = list(
                session.execute(
                    select(t.id)
                    .where(
                        t.anonymised_at.is_(None),
                        t.window_end <= now - self.retention_ms,
                    )
                    .order_by(t.id)
                    .limit(ANONYMISE_BATCH)
                ).scalars()
            )
            if not ids:
                return 0
            session.execute(
                update(Visit.__table__)
                .where(t.id.in_(ids), t.anonymised_at.is_(None))
                .values(
                    name=ANONYMISED,
                    phone=None,
                    company=None,
                    credential_value=None,
                    anonymised_at=now,
                )
            )
            # The audit log's copies of the invitation go too; who did what, and when, stays.
            entries = session.execute(
                select(AuditEntry).where(
                    AuditEntry.target_type == AUDIT_TYPE,
                    AuditEntry.target_id.in_([str(i) for i in ids]),
                )
            ).scalars()
            for entry in entries:
                entry.before = _scrubbed(entry.before)
                entry.after = _scrubbed(entry.after)
                session.add(entry)
            session.commit()
        return len(ids)


def _scrubbed(view: dict[str, Any] | None) -> dict[str, Any] | None:
    if view is None:
        return None
    view = dict(view)
    for key in _PERSONAL:
        if key in view:
            view[key] = ANONYMISED if key == "name" else None
    return view
