"""Door decisions from memory, recorded through the pipeline; MQTT door controllers' own decisions."""

from __future__ import annotations

import sqlite3

from sqlmodel import Session

from gateway.access.decide import Credential
from gateway.access.service import AccessControl
from gateway.core.metrics import Metrics
from gateway.management.registry import Registry
from gateway.pipeline import IngestQueue, Pipeline
from gateway.store.models import Device, Person
from tests.conftest import wait_for
from tests.mqtt_helpers import close, publish_all, publisher

CARD = Credential("card", "0x14088B", facility=10, number=1093)


def test_reads_are_decided_from_memory_recorded_and_follow_changes_at_once(tmp_path, engine):
    with Session(engine) as session:
        session.add(
            Device(
                id="reader-1",
                kind="access",
                protocol="osdp",
                config={"line": "x", "address": 1},
                created_at=0,
                updated_at=0,
            )
        )
        session.add(
            Person(
                id="E1",
                name="Card Holder",
                cards=["10:1093"],
                device_user_ids={},
                access={"doors": ["front"], "schedule": "always"},
                created_at=0,
                updated_at=0,
            )
        )
        session.commit()
    registry = Registry(engine, "Asia/Shanghai")
    registry.load()
    queue = IngestQueue(100, 10)
    pipeline = Pipeline(engine, registry, queue, Metrics(), batch_ms=5)
    pipeline.start()
    access = AccessControl(engine, "Asia/Shanghai", queue)
    access.reload()
    try:
        granted = access.read("reader-1", "front", CARD, bits=26, card_format="H10301")
        assert (granted.decision, granted.reason, granted.person_id) == ("granted", "granted", "E1")
        assert access.read("reader-1", "back", CARD).reason == "door_not_allowed"
        assert (
            access.read("reader-1", "front", Credential("card", "0xFFF", facility=1, number=2)).reason
            == "unknown_credential"
        )
        assert access.read("reader-1", "front", Credential("card", "0x14088A", parity_ok=False)).reason == "bad_parity"

        with Session(engine) as session:  # the card is taken away
            person = session.get(Person, "E1")
            person.cards = []
            session.add(person)
            session.commit()
        access.reload()
        assert access.read("reader-1", "front", CARD).reason == "unknown_credential"

        def stored() -> list[tuple]:
            with sqlite3.connect(tmp_path / "gw.db") as db:
                return db.execute(
                    "SELECT door, decision, reason, person_id, facility, number, credential_format "
                    "FROM access_event ORDER BY id"
                ).fetchall()

        rows = wait_for(lambda: len(s := stored()) == 5 and s, 10, 0.05, what="five access records")
        assert rows[0] == ("front", "granted", "granted", "E1", 10, 1093, "H10301")
        assert [r[2] for r in rows[1:]] == [
            "door_not_allowed",
            "unknown_credential",
            "bad_parity",
            "unknown_credential",
        ]
    finally:
        pipeline.stop()


def test_door_groups_expand_to_their_doors(engine):
    with Session(engine) as session:
        session.add(
            Person(
                id="E1",
                name="Ground Floor",
                cards=["10:1093"],
                device_user_ids={},
                access={"doors": ["ground"], "schedule": "always"},
                created_at=0,
                updated_at=0,
            )
        )
        session.commit()
    access = AccessControl(engine, "Asia/Shanghai", IngestQueue(100, 10))
    access.door_groups = {"ground": ["front", "lobby"]}
    access.reload()
    assert access.read("r", "lobby", CARD).reason == "granted"
    assert access.read("r", "lab", CARD).reason == "door_not_allowed"


def test_mqtt_door_controllers_decisions_are_listed(gateway_factory):
    gw = gateway_factory("embedded").start()
    creds = gw.register("door-ctl", kind="access")["credentials"]
    client = publisher(gw.mqtt_port, "door-ctl", credentials=creds)
    publish_all(
        client,
        [
            (
                "devices/door-ctl/events",
                b'{"type":"access","door":"main","credential":{"kind":"card",'
                b'"value":"0x14088B","bits":26},"result":"denied","time":"2026-11-27T09:00:00+08:00"}',
            )
        ],
    )
    close(client)
    events = wait_for(lambda: gw.all_items("/api/v1/access/events", door="main"), 10, 0.2, what="the door event")
    assert events[0]["decision"] == "denied" and events[0]["reason"] == "denied_by_controller"
    assert events[0]["credential"]["value"] == "0x14088B" and events[0]["time"] == "2026-11-27T01:00:00Z"
    assert gw.all_items("/api/v1/access/events", decision="granted") == []
