"""Dead-letter housekeeping: past the retention, or over the size cap oldest first, counted in /metrics."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from gateway.core.metrics import Metrics
from gateway.pipeline import deadletters
from gateway.store.models import DeadLetter

DAY = deadletters.DAY_MS
NOW = 400 * DAY


def add(engine, times: list[int], size: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            DeadLetter.__table__.insert(),
            [
                {"time": t, "source": "http", "reason": "unknown_device", "size": size, "raw": b"x" * size}
                for t in times
            ],
        )


def kept(engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(col(DeadLetter.time)).order_by(col(DeadLetter.id))).scalars())


def deleted(metrics: Metrics, why: str) -> float:
    return metrics.registry.get_sample_value("gateway_deadletters_deleted_total", {"why": why}) or 0.0


def test_dead_letters_past_the_retention_are_deleted(engine):
    metrics = Metrics()
    add(engine, [NOW - 31 * DAY, NOW - 30 * DAY - 1, NOW - 29 * DAY, NOW], 10)
    assert deadletters.prune(engine, metrics, 30, 1 << 30, NOW) == 2
    assert kept(engine) == [NOW - 29 * DAY, NOW]
    assert (deleted(metrics, "retention"), deleted(metrics, "cap")) == (2, 0)


def test_over_the_size_cap_the_oldest_go_first_until_the_rest_fit(engine):
    metrics = Metrics()
    cost = 1000 + deadletters.ROW_OVERHEAD
    add(engine, [NOW - 2500 + i for i in range(2500)], 1000)  # more than one page
    assert deadletters.prune(engine, metrics, 30, 100 * cost, NOW) == 2400
    assert kept(engine) == [NOW - 100 + i for i in range(100)]
    assert deleted(metrics, "cap") == 2400
    assert deadletters.prune(engine, metrics, 30, 100 * cost, NOW) == 0  # fits now: nothing more goes
