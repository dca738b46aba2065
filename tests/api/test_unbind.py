"""Bindings of JT/T 808 terminals and the unbind action, on the services alone (a migrated SQLite store)."""

from __future__ import annotations

import threading

import pytest
from sqlmodel import Session, col, select

from gateway.auth.credentials import verify_secret
from gateway.auth.secretbox import SecretBox
from gateway.config import LivenessSettings
from gateway.core.errors import Conflict
from gateway.core.metrics import Metrics
from gateway.management.jt808_bindings import Jt808Bindings
from gateway.management.liveness import Liveness
from gateway.management.provisioning import Provisioner
from gateway.management.registry import Registry
from gateway.store.models import AuditEntry, Device
from gateway.transports.broker_auth import NoBrokerAuth


@pytest.fixture
def services(engine):
    box = SecretBox(b"test key")
    registry = Registry(engine, "Asia/Shanghai")
    provisioner = Provisioner(engine, registry, Liveness(engine, LivenessSettings(), Metrics()), box, NoBrokerAuth())
    return provisioner, Jt808Bindings(engine, box), engine


def van(provisioner: Provisioner, device_id: str = "van-1", phone: str = "13912345678") -> str:
    fields = {"id": device_id, "kind": "gps", "protocol": "jt808", "config": {"phone": phone}}
    return provisioner.create(fields, "tester")[1]["auth_code"]


def stored(engine, device_id: str) -> Device:
    with Session(engine) as session:
        device = session.get(Device, device_id)
        assert device is not None
        return device


def test_the_first_binding_hands_out_the_code_of_creation_then_keeps_only_its_hash(services):
    provisioner, bindings, engine = services
    code = van(provisioner)
    assert bindings.bind("van-1", "jt808 127.0.0.1:1") == code
    device = stored(engine, "van-1")
    assert device.secret_enc is None and device.credential_hash and code not in device.credential_hash
    assert bindings.bind("van-1", "jt808 127.0.0.2:1") is None  # bound: no code for anyone
    assert bindings.check("van-1", code, "x") and not bindings.check("van-1", code[:-1] + "#", "x")
    assert provisioner.secret("van-1") is None  # nothing left to open


def test_unbinding_forgets_the_code_and_the_next_binding_is_fresh(services):
    provisioner, bindings, engine = services
    code = van(provisioner)
    bindings.bind("van-1", "t")
    assert provisioner.unbind("van-1", "installer") == "binding"
    assert not bindings.check("van-1", code, "t")
    fresh = bindings.bind("van-1", "t")
    assert fresh and fresh != code and bindings.check("van-1", fresh, "t")
    bindings.unbind("van-1", "jt808 127.0.0.1:1")  # the terminal's 0x0003
    assert not bindings.check("van-1", fresh, "t")
    assert provisioner.unbind("van-1", "installer") == ""  # nothing left to forget
    with Session(engine) as session:
        entries = session.exec(
            select(AuditEntry).where(col(AuditEntry.target_id) == "van-1").order_by(col(AuditEntry.id))
        )
        actions = [e.action for e in entries]
    assert actions == ["create", "bind", "unbind", "bind", "unbind", "unbind"]


def test_a_code_entered_by_hand_binds_by_authenticating_and_rotation_unbinds(services):
    provisioner, bindings, _ = services
    code = van(provisioner)
    assert not bindings.check("van-1", "wrong", "t")
    assert bindings.check("van-1", code, "t") and bindings.bind("van-1", "t") is None
    _, creds = provisioner.rotate("van-1", "installer")
    assert not bindings.check("van-1", code, "t")
    assert bindings.bind("van-1", "t") == creds["auth_code"]


def test_of_two_terminals_registering_at_once_one_binds(services):
    provisioner, bindings, _ = services
    van(provisioner)
    codes: list[str | None] = []
    threads = [threading.Thread(target=lambda: codes.append(bindings.bind("van-1", "t"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([c for c in codes if c]) == 1


def test_unbind_forgets_a_zk_address_and_refuses_protocols_without_a_binding(services):
    provisioner, _, engine = services
    fields = {"id": "zk-1", "kind": "attendance", "protocol": "zk-adms", "config": {"sn": "ABC123"}}
    provisioner.create(fields, "tester")
    with Session(engine) as session:  # as the ZK transport pins it
        device = session.get(Device, "zk-1")
        assert device is not None
        device.config = {**device.config, "address": "10.0.0.7"}
        session.add(device)
        session.commit()
    assert provisioner.unbind("zk-1", "installer") == "address"
    assert "address" not in stored(engine, "zk-1").config
    assert provisioner.unbind("zk-1", "installer") == ""
    provisioner.create({"id": "att-1", "kind": "attendance", "protocol": "mqtt-json", "config": {}}, "tester")
    with pytest.raises(Conflict):
        provisioner.unbind("att-1", "installer")


def test_a_bound_code_is_no_mqtt_password(services):
    provisioner, bindings, engine = services
    code = van(provisioner)
    bindings.bind("van-1", "t")
    assert not verify_secret(code, stored(engine, "van-1").credential_hash)  # the broker's login check
