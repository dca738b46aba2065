"""The people service: cards and PINs name one holder, every change is audited, and the hook runs after commit."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlmodel import Session

from gateway.core.errors import Conflict, Invalid, NotFound
from gateway.people.service import People
from gateway.store.models import AuditEntry


@pytest.fixture
def people(engine):
    changes: list[str] = []
    service = People(engine, lambda pin: f"digest:{pin}", lambda: changes.append("changed"))
    return service, changes


def audit_actions(service: People) -> list[tuple[str, str]]:
    with Session(service.engine) as session:
        return [(a.action, a.target_id) for a in session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars()]


def test_a_card_or_a_pin_of_someone_else_is_refused_and_changes_nothing(people):
    service, changes = people
    service.create("admin", {"id": "E1", "name": "One", "cards": ["10:1093"], "pins": ["1234"]})
    assert changes == ["changed"]
    with pytest.raises(Conflict, match="card '10:1093' already belongs to person 'E1'"):
        service.create("admin", {"id": "E2", "name": "Two", "cards": ["10:1093"]})
    with pytest.raises(Conflict, match="PIN is already in use by person 'E1'"):
        service.create("admin", {"id": "E2", "name": "Two", "pins": ["1234"]})
    with pytest.raises(Invalid, match="name: may not be null"):
        service.update("admin", "E1", {"name": None})
    with pytest.raises(NotFound):
        service.delete("admin", "E9")
    assert changes == ["changed"]  # refusals commit nothing, so nothing is told
    assert audit_actions(service) == [("create", "E1")]


def test_pins_are_stored_as_digests_and_an_unchanged_update_is_not_audited(people):
    service, changes = people
    created = service.create("admin", {"id": "E1", "name": "One", "pins": ["1234"]})
    assert created["pin_count"] == 1 and "pins" not in created
    assert service.update("admin", "E1", {"name": "One"}) == created
    service.update("admin", "E1", {"department": "Sales"})
    service.delete("admin", "E1")
    assert audit_actions(service) == [("create", "E1"), ("update", "E1"), ("delete", "E1")]
    assert len(changes) == 4
