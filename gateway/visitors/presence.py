"""Who is on site: check-in and check-out at the doors and at the window's end, and forgetting visitors.

- The first granted entry checks the visitor in and leaves a `visitor_arrived`
  notification for the host (an uplink delivers it later). A granted read at an
  exit reader (a reader provisioned with `direction = "out"`) checks them out;
  so does the window's end.
- A visit's personal data is anonymised once the retention after its window has
  passed; the row stays, so visits can still be counted.

Each function is one step in the caller's transaction; finished visits go to the
outbox in the transaction that finished them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, select, update
from sqlmodel import Session, col

from gateway.core.timeutil import iso_utc
from gateway.store import shapes
from gateway.store.models import AuditEntry, Visit, VisitNotification
from gateway.visitors.rules import ANONYMISE_BATCH, ANONYMISED, AUDIT_TYPE, scrubbed

if TYPE_CHECKING:
    from gateway.uplink.outbox import Outbox

log = logging.getLogger(__name__)


def record_passage(
    conn: Connection, outbox: Outbox | None, visit_id: int, door: str, direction: str, at_ms: int
) -> None:
    """A granted read: check in (first entry, and notify the host), back in, or check out at an exit."""
    t = Visit.__table__.c
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
            send_visits(conn, outbox, [visit_id])
        return
    first = conn.execute(
        update(Visit.__table__).where(t.id == visit_id, t.checked_in_at.is_(None)).values(checked_in_at=at_ms)
    ).rowcount
    if first:
        _arrived(conn, outbox, visit_id, door, at_ms)
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


def _arrived(conn: Connection, outbox: Outbox | None, visit_id: int, door: str, at_ms: int) -> None:
    """The host's notification, kept here and sent to the platform."""
    t = Visit.__table__.c
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
    if outbox is not None:
        visit = conn.execute(select(t.name, t.company).where(t.id == visit_id)).one()
        outbox.enqueue(
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


def check_out_ended(conn: Connection, outbox: Outbox | None, now: int) -> int:
    """Check out the visitors still on site whose window has ended; how many."""
    t = Visit.__table__.c
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
    send_visits(conn, outbox, ending)
    return checked_out


def send_visits(conn: Connection, outbox: Outbox | None, visit_ids: list[int]) -> None:
    """Finished visits to the platform, in the transaction that finished them."""
    if outbox is None or not visit_ids or not outbox.wants("visit"):
        return
    visits = conn.execute(select(Visit.__table__).where(Visit.__table__.c.id.in_(visit_ids))).all()
    outbox.enqueue(conn, "visit", [(str(v.id), f"host:{v.host_person_id}", shapes.visit(v, None)) for v in visits])


def anonymise(engine: Engine, now: int, retention_ms: int) -> int:
    """Forget the personal data of up to ANONYMISE_BATCH visits past the retention; how many."""
    t = Visit.__table__.c
    with Session(engine) as session:
        ids = list(
            session.execute(
                select(t.id)
                .where(
                    t.anonymised_at.is_(None),
                    t.window_end <= now - retention_ms,
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
                col(AuditEntry.target_type) == AUDIT_TYPE,
                col(AuditEntry.target_id).in_([str(i) for i in ids]),
            )
        ).scalars()
        for entry in entries:
            entry.before = scrubbed(entry.before)
            entry.after = scrubbed(entry.after)
            session.add(entry)
        session.commit()
    return len(ids)
