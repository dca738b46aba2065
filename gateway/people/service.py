"""People as a service: create, change, remove and import, each in one audited transaction.

A card or a PIN names one holder at the door, so both are checked unique before they are
written; one writer at a time keeps two requests from taking the same card. After every
committed change `on_change` runs (the doors and the punch mapping follow at once).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from gateway.auth import audit
from gateway.core.errors import Conflict, Invalid, NotFound
from gateway.core.timeutil import iso_utc, now_ms
from gateway.people import rules
from gateway.store.models import Person

NOT_NULL = ("name", "department", "cards", "pins", "device_user_ids")


def person_view(p: Person) -> dict[str, Any]:
    """What the API (and the audit log) shows of a person: PINs only counted."""
    return {
        "id": p.id,
        "name": p.name,
        "department": p.department,
        "platform_user_id": p.platform_user_id,
        "cards": list(p.cards),
        "pin_count": len(p.pins or ()),
        "device_user_ids": dict(p.device_user_ids),
        "access": p.access,
        "created_at": iso_utc(p.created_at),
        "updated_at": iso_utc(p.updated_at),
    }


def _get(session: Session, person_id: str) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise NotFound(f"no person {person_id!r}")
    return person


def _check_cards(session: Session, person_id: str, cards: list[str]) -> None:
    owners = rules.card_owners(session.execute(select(col(Person.id), col(Person.cards))).all())
    clash = rules.card_conflict(person_id, cards, owners)
    if clash is not None:
        raise Conflict(f"card {clash[0]!r} already belongs to person {clash[1]!r}")


class People:
    def __init__(self, engine: Engine, pin_digest: Callable[[str], str], on_change: Callable[[], None]) -> None:
        self.engine = engine
        self.pin_digest = pin_digest  # PINs are stored as the site's keyed digests
        self.on_change = on_change
        self._writes = threading.Lock()

    def _digest_pins(self, session: Session, person_id: str, pins: list[str]) -> list[str]:
        """The PINs as stored; one person's PIN may not be another's (a keypad entry names one holder)."""
        digests = [self.pin_digest(pin) for pin in pins]
        others = select(col(Person.id), col(Person.pins)).where(col(Person.id) != person_id)
        for other_id, other_pins in session.execute(others):
            if set(digests) & set(other_pins or ()):
                raise Conflict(f"a PIN is already in use by person {other_id!r}; choose another")
        return digests

    def page(self, limit: int, after: str | None) -> list[Person]:
        """Up to `limit` people after the id `after`, by id."""
        query = select(Person).order_by(Person.id).limit(limit)
        if after is not None:
            query = query.where(col(Person.id) > after)
        with Session(self.engine) as session:
            return list(session.execute(query).scalars().all())

    def get(self, person_id: str) -> dict[str, Any]:
        with Session(self.engine) as session:
            return person_view(_get(session, person_id))

    def create(self, actor: str, fields: dict[str, Any]) -> dict[str, Any]:
        """`fields`: a person's columns, PINs in clear (they are stored as digests)."""
        person_id = fields["id"]
        with self._writes, Session(self.engine) as session:
            if session.get(Person, person_id) is not None:
                raise Conflict(f"person {person_id!r} already exists")
            _check_cards(session, person_id, fields.get("cards", []))
            pins = self._digest_pins(session, person_id, fields.get("pins", []))
            now = now_ms()
            person = Person(
                **{k: v for k, v in fields.items() if k != "pins"}, pins=pins, created_at=now, updated_at=now
            )
            audit.record(session, actor, "create", "person", person.id, None, person_view(person))
            session.add(person)
            try:
                session.commit()
            except IntegrityError:
                raise Conflict(f"person {person_id!r} already exists") from None
            answer = person_view(person)
        self.on_change()
        return answer

    def update(self, actor: str, person_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Only the fields in `changes` change; nothing changed means nothing written or audited."""
        for name in NOT_NULL:
            if name in changes and changes[name] is None:
                raise Invalid(f"{name}: may not be null")
        with self._writes, Session(self.engine) as session:
            person = _get(session, person_id)
            if "cards" in changes:
                _check_cards(session, person_id, changes["cards"])
            if "pins" in changes:
                changes = {**changes, "pins": self._digest_pins(session, person_id, changes["pins"])}
            before, pins_before = person_view(person), list(person.pins or ())
            for name, value in changes.items():
                setattr(person, name, value)
            if person_view(person) == before and list(person.pins) == pins_before:
                answer = before
            else:
                person.updated_at = now_ms()
                audit.record(session, actor, "update", "person", person_id, before, person_view(person))
                session.add(person)
                session.commit()
                answer = person_view(person)
        self.on_change()
        return answer

    def delete(self, actor: str, person_id: str) -> None:
        with self._writes, Session(self.engine) as session:
            person = _get(session, person_id)
            audit.record(session, actor, "delete", "person", person_id, person_view(person), None)
            session.delete(person)
            session.commit()
        self.on_change()

    def import_rows(self, actor: str, rows: list[rules.ImportRow]) -> dict[str, int]:
        """One transaction: every row is stored, or (on a card clash) none is."""
        with self._writes, Session(self.engine) as session:
            existing = {p.id: p for p in session.execute(select(Person)).scalars()}
            clash = rules.import_conflict(rows, rules.card_owners((p.id, p.cards) for p in existing.values()))
            if clash is not None:
                row, card, other = clash
                raise Conflict(f"row {row.row}: card {card!r} already belongs to person {other!r}")
            created = updated = 0
            now = now_ms()
            for row in rows:
                person = existing.get(row.id)
                if person is None:
                    person = Person(id=row.id, **row.fields, created_at=now, updated_at=now)
                    audit.record(session, actor, "import", "person", row.id, None, person_view(person))
                    created += 1
                else:
                    before = person_view(person)
                    for name, value in row.fields.items():
                        setattr(person, name, value)
                    if person_view(person) != before:
                        person.updated_at = now
                        audit.record(session, actor, "import", "person", row.id, before, person_view(person))
                    updated += 1
                session.add(person)
            session.commit()
        self.on_change()
        return {"created": created, "updated": updated}
