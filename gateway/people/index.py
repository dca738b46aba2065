"""Who a punch belongs to: a device's user id resolved to a person, kept in memory for the hot path.

Order (CONTRACT): the person's device_user_ids[<device id>], then
device_user_ids["*"], then a person whose id equals the user, then a person
holding a card equal to the user. After people change, `remap()` brings the
stored punches in line, so punches that arrived before their person existed
resolve retroactively.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine, and_, bindparam, select, update

from gateway.store.models import Person, PunchRecord

log = logging.getLogger(__name__)


class PeopleIndex:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._by_device: dict[tuple[str, str], str] = {}
        self._by_any_device: dict[str, str] = {}
        self._ids: set[str] = set()
        self._by_card: dict[str, str] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        by_device, by_any, ids, by_card = {}, {}, set(), {}
        p = Person.__table__.c
        with self.engine.connect() as conn:
            for person_id, device_user_ids, cards in conn.execute(select(p.id, p.device_user_ids, p.cards)):
                ids.add(person_id)
                for device_id, user in (device_user_ids or {}).items():
                    if device_id == "*":
                        by_any[user] = person_id
                    else:
                        by_device[(device_id, user)] = person_id
                for card in cards or ():
                    by_card[card] = person_id
        with self._lock:
            self._by_device, self._by_any_device, self._ids, self._by_card = by_device, by_any, ids, by_card

    def resolve(self, device_id: str, user: str) -> str | None:
        person = self._by_device.get((device_id, user))
        if person is None:
            person = self._by_any_device.get(user)
        if person is None and user in self._ids:
            person = user
        if person is None:
            person = self._by_card.get(user)
        return person

    def remap(self) -> int:
        """Re-resolve every stored punch's person; returns how many punches changed."""
        t = PunchRecord.__table__.c
        with self.engine.connect() as conn:
            groups = conn.execute(
                select(t.device_id, t.user, t.person_id).group_by(t.device_id, t.user, t.person_id)
            ).all()
        changes = [
            {"d": device_id, "u": user, "old": old, "new": new}
            for device_id, user, old in groups
            if (new := self.resolve(device_id, user)) != old
        ]
        if not changes:
            return 0
        same_person = (t.person_id == bindparam("old")) | (t.person_id.is_(None) & bindparam("old").is_(None))
        statement = (
            update(PunchRecord.__table__)
            .where(and_(t.device_id == bindparam("d"), t.user == bindparam("u"), same_person))
            .values(person_id=bindparam("new"))
        )
        with self.engine.begin() as conn:
            changed = conn.execute(statement, changes).rowcount
        log.info("people changed: %d punches re-mapped", changed)
        return changed
