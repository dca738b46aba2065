"""`gateway demo`: the gateway plus an embedded broker, simulated terminals and a small office of people."""

from __future__ import annotations

import asyncio
import secrets
import sys
import threading
import time
from typing import Any

from pydantic import SecretStr
from sqlmodel import Session

from gateway.app import Gateway
from gateway.config import Settings
from gateway.store.models import Person, ShiftAssignment, ShiftRow

DEMO_TERMINALS = (("att-json-01", "mqtt-json", "json"), ("att-attlog-01", "attlog", "attlog"))
ZK_TERMINAL = ("zk-lobby", "DEMO0000001")
PEOPLE = 50  # E1000..E1049; the ZK terminal knows them as PIN 1000..1049


def _register(gateway: Gateway, device_id: str, protocol: str, config: dict | None = None) -> dict:
    """Provision a simulated device (re-keying it if an earlier demo left it); its credentials."""
    if gateway.registry.get(device_id) is not None:
        if protocol == "zk-adms":
            return {}
        _, creds = gateway.provisioner.rotate(device_id, "demo")
    else:
        fields = {"id": device_id, "kind": "attendance", "protocol": protocol, "config": config or {},
                  "name": f"Simulated {protocol} terminal", "site": gateway.settings.site.id}  # fmt: skip
        _, creds = gateway.provisioner.create(fields, "demo")
    return creds


def _office(gateway: Gateway) -> None:
    """People in two departments on an office day shift, so attendance days have something to show."""
    now = int(time.time() * 1000)
    with Session(gateway.engine) as session:
        if session.get(ShiftRow, "office-day") is None:
            session.add(ShiftRow(id="office-day", name="Office day", start="09:00", end="18:00", rules={},
                                 workdays=[0, 1, 2, 3, 4], updated_at=now))  # fmt: skip
            for department in ("Sales", "Engineering"):
                session.add(ShiftAssignment(target_type="department", target_id=department, shift_id="office-day"))
        for i in range(PEOPLE):
            person_id = f"E{1000 + i}"
            if session.get(Person, person_id) is None:
                session.add(Person(
                    id=person_id, name=f"Demo Person {i + 1}", department=("Sales", "Engineering")[i % 2],
                    device_user_ids={ZK_TERMINAL[0]: str(1000 + i)}, created_at=now, updated_at=now,
                ))  # fmt: skip
        session.commit()
    gateway.people_changed()


def _drive(terminals: list, zk: Any, rate: float, stop: threading.Event) -> None:
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


async def run_demo(settings: Settings, seconds: float | None, rate: float) -> None:
    from firmware_stubs.mqtt_terminal import MqttTerminal
    from firmware_stubs.zk_terminal import ZkTerminal

    if not settings.mqtt.embedded:
        settings.mqtt.broker = "embedded"
    token = settings.api.admin_token.get_secret_value() or secrets.token_urlsafe(24)
    settings.api.admin_token = SecretStr(token)
    gateway = Gateway(settings)
    await gateway.start()
    host, port, _ = settings.mqtt.endpoint()
    url = f"http://{settings.api.listen}"
    terminals: list[MqttTerminal] = []
    stop = threading.Event()
    try:
        await asyncio.to_thread(_office, gateway)
        for device_id, protocol, mode in DEMO_TERMINALS:
            creds = await asyncio.to_thread(_register, gateway, device_id, protocol)
            terminal = MqttTerminal(device_id, host, port, mode=mode, username=device_id,
                                    password=creds["mqtt_password"])  # fmt: skip
            terminals.append(await asyncio.to_thread(terminal.start))
        await asyncio.to_thread(_register, gateway, ZK_TERMINAL[0], "zk-adms", {"sn": ZK_TERMINAL[1]})
        zk = ZkTerminal(url, ZK_TERMINAL[1], pins=[str(1000 + i) for i in range(PEOPLE)], timeout=5)
        await asyncio.to_thread(zk.handshake)
        threading.Thread(target=_drive, args=(terminals, zk, rate, stop), daemon=True).start()
        print(f"\nGateway demo running.\n  API:         {url}/docs\n  Health:      {url}/healthz"
              f"\n  Admin token: {token}\n  Try:         curl -H 'Authorization: Bearer {token}' "
              f"'{url}/api/v1/attendance/punches?limit=5'\n"
              f"               curl -H 'Authorization: Bearer {token}' "
              f"'{url}/api/v1/attendance/days?from={time.strftime('%Y-%m-%d')}&to={time.strftime('%Y-%m-%d')}&limit=5'"
              "\nCtrl-C stops it.\n", flush=True)  # fmt: skip
        counts = asyncio.create_task(_show_counts(gateway))
        await gateway.run_until_signal(seconds)
        counts.cancel()
    finally:
        stop.set()
        for terminal in terminals:
            await asyncio.to_thread(terminal.close)
        await gateway.stop()
        print("\ndemo stopped", flush=True)


def _total(metric: Any) -> float:
    return sum(s.value for m in metric.collect() for s in m.samples if s.name.endswith("_total"))


async def _show_counts(gateway: Gateway) -> None:
    m = gateway.metrics
    while True:
        sys.stdout.write(
            f"\rreceived {_total(m.received):>8.0f}   stored {_total(m.stored):>8.0f}   "
            f"dead letters {_total(m.deadletters):>5.0f}   queue {len(gateway.queue):>5}"
        )
        sys.stdout.flush()
        await asyncio.sleep(1.0)
