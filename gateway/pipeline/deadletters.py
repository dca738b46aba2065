"""Dead-letter housekeeping: rejected input is kept for a while and up to a size, oldest deleted first.

Anyone can make the gateway dead-letter something (an unknown serial number, a
malformed frame), so without a bound the table would grow with every probe.
Each row counts as what it keeps of its input plus a little for its columns;
the oldest rows go first once the total passes the cap, and every deletion is
counted in `gateway_deadletters_deleted_total{why}`.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import ColumnElement, Engine, delete, func, select
from sqlmodel import col

from gateway.core.metrics import Metrics
from gateway.pipeline.batch import DEAD_RAW_LIMIT
from gateway.store.models import DeadLetter

ROW_OVERHEAD = 256  # bytes a row costs besides its raw input (detail, topic, indexes), roughly
DAY_MS = 86_400_000
PAGE = 1000
EVERY_S = 60.0


def _cost() -> ColumnElement[Any]:
    return func.min(col(DeadLetter.size), DEAD_RAW_LIMIT) + ROW_OVERHEAD


def prune(engine: Engine, metrics: Metrics, retention_days: int, max_bytes: int, now_ms: int | None = None) -> int:
    """Delete dead letters older than the retention, then the oldest until the rest fit `max_bytes`."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    with engine.begin() as conn:
        expired = conn.execute(delete(DeadLetter).where(col(DeadLetter.time) < now_ms - retention_days * DAY_MS))
    metrics.deadletters_deleted.labels("retention").inc(expired.rowcount)
    over_cap = 0
    with engine.connect() as conn:
        total = conn.execute(select(func.coalesce(func.sum(_cost()), 0))).scalar() or 0
    excess, after = int(total) - max_bytes, 0
    while excess > 0:
        with engine.connect() as conn:
            rows = conn.execute(
                select(col(DeadLetter.id), _cost())
                .where(col(DeadLetter.id) > after)
                .order_by(col(DeadLetter.id))
                .limit(PAGE)
            ).all()
        if not rows:
            break
        cutoff = None
        for row_id, cost in rows:
            cutoff, excess = row_id, excess - int(cost)
            if excess <= 0:
                break
        with engine.begin() as conn:
            over_cap += conn.execute(
                delete(DeadLetter).where(col(DeadLetter.id) > after, col(DeadLetter.id) <= cutoff)
            ).rowcount
        after = cutoff or after
    metrics.deadletters_deleted.labels("cap").inc(over_cap)
    return expired.rowcount + over_cap
