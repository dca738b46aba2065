"""The outbox: records on their way to the office platform, written in the transaction that stores them.

Which records go to which sink is config (`[uplink.<sink>] records`). An entry
is unique per (sink, record type, record key), so a resent punch, a
recomputed trip or a second enqueue never delivers a record twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine

from gateway.core.timeutil import now_ms
from gateway.store.models import OutboxEntry


class Outbox:
    def __init__(self, engine: Engine, routes: Mapping[str, Sequence[str]]) -> None:
        """`routes`: sink name -> the record types it takes (enabled sinks only)."""
        self.engine = engine
        self.sinks_for: dict[str, list[str]] = {}
        for sink, types in routes.items():
            for record_type in types:
                self.sinks_for.setdefault(record_type, []).append(sink)
        self._insert = _insert_or_ignore(engine)

    def wants(self, record_type: str) -> bool:
        return record_type in self.sinks_for

    def enqueue(
        self, conn: Connection, record_type: str, entries: Iterable[tuple[str, str, dict[str, Any] | None]]
    ) -> None:
        """Inside the caller's transaction: (record key, order key, payload or None = read at send time)."""
        sinks = self.sinks_for.get(record_type)
        if not sinks:
            return
        now = now_ms()
        rows = [
            (sink, record_type, key, order, _json(payload), "pending", 0, now, "", now)
            for key, order, payload in entries
            for sink in sinks
        ]
        if rows:
            conn.exec_driver_sql(self._insert, rows)


def _json(payload: dict[str, Any] | None) -> str | None:
    import orjson

    return orjson.dumps(payload).decode() if payload is not None else None


def _insert_or_ignore(engine: Engine) -> str:
    quote = engine.dialect.identifier_preparer.quote
    mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    columns = (
        "sink",
        "record_type",
        "record_key",
        "order_key",
        "payload",
        "state",
        "attempts",
        "next_attempt",
        "last_error",
        "created_at",
    )
    names = ", ".join(quote(c) for c in columns)
    marks = ", ".join(mark for _ in columns)
    table = quote(OutboxEntry.__tablename__)
    return f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT (sink, record_type, record_key) DO NOTHING"
