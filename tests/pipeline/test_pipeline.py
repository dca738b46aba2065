"""The hand-off queue and the store writer, in process, on a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any

import pytest
from sqlmodel import Session

from gateway.config import MqttSettings
from gateway.core.events import Punch
from gateway.core.metrics import Metrics
from gateway.devices.base import Decoded
from gateway.management.registry import Registry
from gateway.pipeline import Inbound, IngestQueue, Pipeline
from gateway.store.models import Device
from gateway.transports.mqtt import MqttTransport
from tests.conftest import wait_for
from tests.mqtt_helpers import close, publish_all, publisher

PUNCH = b'{"type":"punch","user":"E1","time":"2026-11-27T09:00:00Z","seq":%d}'


@pytest.fixture
def store(tmp_path, engine):
    with Session(engine) as session:
        session.add(Device(id="att-01", kind="attendance", protocol="mqtt-json", created_at=0, updated_at=0))
        session.commit()
    registry = Registry(engine, "UTC")
    registry.load()
    queue = IngestQueue(capacity=10_000, batch_size=500)
    pipeline = Pipeline(engine, registry, queue, Metrics(), batch_ms=5)
    yield tmp_path / "gw.db", queue, pipeline
    pipeline.stop()


def count(db_path, table: str) -> int:
    with sqlite3.connect(db_path) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_queue_pushes_back_when_full_and_lets_go_when_drained():
    queue = IngestQueue(capacity=3, batch_size=2)
    for i in range(3):
        assert queue.put(Inbound("t", "x", b"%d" % i))
    assert not queue.put(Inbound("t", "x", b"late"), timeout=0.05)
    released = threading.Event()
    threading.Thread(target=lambda: queue.put(Inbound("t", "x", b"blocked")) and released.set()).start()
    assert not released.wait(0.1), "a put into a full queue must wait"
    assert [i.payload for i in queue.take(max_wait=0)] == [b"0", b"1"]
    assert released.wait(2), "taking a batch must release a waiting producer"
    assert len(queue) == 2


def test_closed_queue_refuses_new_input_but_hands_out_what_it_holds():
    queue = IngestQueue(capacity=10, batch_size=10)
    queue.put(Inbound("t", "x", b"kept"))
    queue.close()
    assert not queue.put(Inbound("t", "x", b"refused"))
    assert [i.payload for i in queue.take(max_wait=0)] == [b"kept"]


class RecordingAcker:
    """At the moment of each acknowledgement, looks in the database for the acknowledged punches."""

    def __init__(self, db_path) -> None:
        self.db_path = db_path
        self.acked: list[Any] = []
        self.missing_at_ack: list[Any] = []

    def ack(self, tokens: list[Any]) -> None:
        seqs = [t for t in tokens if isinstance(t, int)]
        with sqlite3.connect(self.db_path) as db:
            stored = {
                row[0] for row in db.execute(f"SELECT seq FROM punch WHERE seq IN ({','.join('?' * len(seqs))})", seqs)
            }
        self.missing_at_ack += [t for t in seqs if t not in stored]
        self.acked.extend(tokens)


def test_acknowledgement_comes_only_after_the_commit(store):
    db_path, queue, pipeline = store
    acker = RecordingAcker(db_path)
    pipeline.start()
    for i in range(1000):
        queue.put(Inbound("mqtt", "devices/att-01/events", PUNCH % i, acker=acker, token=i))
    wait_for(lambda: len(acker.acked) == 1000, 10, what="every ack")
    assert sorted(acker.acked) == list(range(1000))
    assert acker.missing_at_ack == []


def test_a_row_the_store_rejects_is_dead_lettered_alone_and_the_batch_survives(store, monkeypatch):
    db_path, queue, pipeline = store

    def poisoned(payload: bytes, device_id: str, tz: Any, now: Any) -> Decoded:
        # A decoder bug that yields a NULL user: the database's NOT NULL refuses the row.
        return Decoded([Punch(device_id, None, now, 0, key=b"poison")])  # type: ignore[arg-type]

    monkeypatch.setitem(pipeline.decoders, "attlog", poisoned)
    acker = RecordingAcker(db_path)
    pipeline.start()
    queue.put(Inbound("mqtt", "devices/att-01/events", PUNCH % 1, acker=acker, token="good-1"))
    queue.put(Inbound("mqtt", "devices/att-01/attlog", b"whatever", acker=acker, token="poison"))
    queue.put(Inbound("mqtt", "devices/att-01/events", PUNCH % 2, acker=acker, token="good-2"))
    wait_for(lambda: len(acker.acked) == 3, 10, what="all three acknowledged")
    assert count(db_path, "punch") == 2
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT reason, raw FROM dead_letter").fetchall() == [("store_rejected", b"whatever")]


def test_stop_writes_and_acknowledges_everything_queued(store):
    db_path, queue, pipeline = store
    acker = RecordingAcker(db_path)
    for i in range(3000):
        queue.put(Inbound("mqtt", "devices/att-01/events", PUNCH % i, acker=acker, token=i))
    pipeline.start()
    pipeline.stop(timeout=10)
    assert count(db_path, "punch") == 3000
    assert len(acker.acked) == 3000


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_watchdog_restarts_a_dead_mqtt_network_loop(store, mosquitto):
    db_path, queue, pipeline = store
    pipeline.start()
    metrics = pipeline.metrics

    async def scenario() -> None:
        transport = MqttTransport(
            MqttSettings(broker=mosquitto.url, client_id="gw-watchdog", device_auth="off"), queue, metrics
        )
        transport.start()
        await asyncio.to_thread(transport.connected.wait, 10)

        def crash(*args: Any) -> None:
            raise RuntimeError("a callback bug")

        # paho re-raises callback exceptions, which ends its network thread.
        transport.client.on_unsubscribe = crash
        transport.client.unsubscribe("nothing/here")
        await asyncio.to_thread(wait_for, lambda: metrics.mqtt_loop_restarts._value.get() >= 1, 10, 0.05, "restart")
        client = publisher(mosquitto.port)
        await asyncio.to_thread(publish_all, client, [("devices/att-01/events", PUNCH % i) for i in range(50)])
        close(client)
        await asyncio.to_thread(wait_for, lambda: count(db_path, "punch") == 50, 20, 0.1, "punches after restart")
        await transport.stop()

    asyncio.run(scenario())
