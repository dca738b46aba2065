"""The demo office's people and attendance terminals."""

from __future__ import annotations

import threading
from typing import Any

from sqlmodel import Session

from gateway.app import Gateway
from gateway.core.timeutil import now_ms
from gateway.store.models import Person, ShiftAssignment, ShiftRow

TERMINALS = (("att-json-01", "mqtt-json", "json"), ("att-attlog-01", "attlog", "attlog"))
ZK_TERMINAL = ("zk-lobby", "DEMO0000001")
PEOPLE = 50  # E1000..E1049; the ZK terminal knows them as PIN 1000..1049
CARD_FACILITY = 10  # person E1xyz carries card 10:1xyz


def card_of(index: int) -> tuple[int, int]:
    return CARD_FACILITY, 1000 + index


def register(
    gateway: Gateway,
    device_id: str,
    protocol: str,
    config: dict | None = None,
    kind: str = "attendance",
    name: str | None = None,
) -> dict:
    """Provision a simulated device (re-configured and re-keyed if an earlier demo left it); its credentials."""
    config = config or {}
    if gateway.registry.get(device_id) is not None:
        if config:
            gateway.provisioner.update(device_id, {"config": config}, "demo")
        if protocol == "zk-adms":
            return {}
        _, creds = gateway.provisioner.rotate(device_id, "demo")
        return creds
    fields = {
        "id": device_id,
        "kind": kind,
        "protocol": protocol,
        "config": config,
        "name": name or f"Simulated {protocol} device",
        "site": gateway.settings.site.id,
    }
    return gateway.provisioner.create(fields, "demo")[1]


def populate(gateway: Gateway, doors: list[str]) -> None:
    """People in two departments on an office day shift, with cards for every door but the lab, which only
    Engineering may open."""
    now = now_ms()
    with Session(gateway.engine) as session:
        if session.get(ShiftRow, "office-day") is None:
            session.add(
                ShiftRow(
                    id="office-day",
                    name="Office day",
                    start="09:00",
                    end="18:00",
                    rules={},
                    workdays=[0, 1, 2, 3, 4],
                    updated_at=now,
                )
            )
            for department in ("Sales", "Engineering"):
                session.add(ShiftAssignment(target_type="department", target_id=department, shift_id="office-day"))
        for i in range(PEOPLE):
            person_id = f"E{1000 + i}"
            department = ("Sales", "Engineering")[i % 2]
            allowed = doors if department == "Engineering" else [d for d in doors if d != "lab"]
            facility, number = card_of(i)
            name = f"Demo Person {i + 1}"
            person = session.get(Person, person_id) or Person(id=person_id, name=name, created_at=now)
            person.name, person.department = name, department
            person.device_user_ids = {ZK_TERMINAL[0]: str(1000 + i)}
            person.platform_user_id = f"dt-{person_id}"  # the user id at the (stand-in) platform
            person.cards, person.access = [f"{facility}:{number}"], {"doors": allowed, "schedule": "always"}
            person.updated_at = now
            session.add(person)
        session.commit()
    gateway.people_changed()


def drive_terminals(terminals: list, zk: Any, rate: float, stop: threading.Event) -> None:
    interval = 1.0 / rate if rate > 0 else 1.0
    ticks = 0
    while not stop.wait(interval):
        for terminal in terminals:
            terminal.punch()
        ticks += 1
        if ticks % 5 == 0:  # the ZK terminal pushes in batches and polls for commands, as real ones do
            try:
                zk.punch(5)
                zk.push()
                zk.poll()
            except Exception:  # the demo keeps going when the gateway is stopping
                pass
