"""A ZK terminal's pin in the store: the first pin wins when first requests race; unbinding pins again."""

from __future__ import annotations

import threading

from sqlmodel import Session

from gateway.store.models import Device
from gateway.transports.zk_trust import AllowList, ZkBindings


def register(engine, config: dict) -> None:
    with Session(engine) as session:
        session.add(Device(id="zk-1", kind="attendance", protocol="zk-adms", config=config, created_at=1, updated_at=1))
        session.commit()


def test_racing_first_requests_pin_one_address(engine):
    register(engine, {"sn": "A1"})
    bindings = ZkBindings(engine)
    answers: dict[str, str | None] = {}
    start = threading.Barrier(8)

    def first_request(address: str) -> None:
        start.wait()
        answers[address] = bindings.pin("zk-1", address)

    threads = [threading.Thread(target=first_request, args=(f"10.0.0.{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    winners = set(answers.values())
    assert len(answers) == 8 and len(winners) == 1  # every request saw the same pin
    assert bindings.binding("zk-1") == (winners.pop(), None)


def test_an_unbound_terminal_is_pinned_again_and_keeps_its_other_keys(engine):
    register(engine, {"sn": "A1", "comm_key": "1234", "address": "10.0.0.1"})
    bindings = ZkBindings(engine)
    assert bindings.pin("zk-1", "10.0.0.2") == "10.0.0.1"
    with Session(engine) as session:
        device = session.get(Device, "zk-1")
        assert device is not None
        device.config = {"sn": "A1", "comm_key": "1234"}  # the unbind
        session.add(device)
        session.commit()
    assert bindings.pin("zk-1", "10.0.0.2") == "10.0.0.2"
    assert bindings.binding("zk-1") == ("10.0.0.2", "1234")
    assert bindings.pin("nobody", "10.0.0.2") is None


def test_the_allow_list():
    allow = AllowList(["192.168.10.0/24", "2001:db8::/32"])
    assert allow.allows("192.168.10.7") and allow.allows("::ffff:192.168.10.7") and allow.allows("2001:db8::1")
    assert not allow.allows("192.168.11.7") and not allow.allows("testclient") and not allow.allows(None)
    assert AllowList([]).allows("anything")
