"""`gateway demo`: the gateway plus an embedded broker and simulated devices."""

from __future__ import annotations

import asyncio
import secrets
import sys
import threading
from pydantic import SecretStr

from gateway.app import Gateway
from gateway.config import Settings

DEMO_TERMINALS = (("att-json-01", "mqtt-json", "json"), ("att-attlog-01", "attlog", "attlog"))


def _register(gateway: Gateway, device_id: str, protocol: str) -> str:
    """Provision a simulated terminal (re-keying it if an earlier demo left it) and return its MQTT password."""
    if gateway.registry.get(device_id) is not None:
        _, creds = gateway.provisioner.rotate(device_id, "demo")
    else:
        fields = {"id": device_id, "kind": "attendance", "protocol": protocol,
                  "name": f"Simulated {protocol} terminal", "site": gateway.settings.site.id}  # fmt: skip
        _, creds = gateway.provisioner.create(fields, "demo")
    return creds["mqtt_password"]


def _drive(terminals: list, rate: float, stop: threading.Event) -> None:
    interval = 1.0 / rate if rate > 0 else 1.0
    while not stop.wait(interval):
        for terminal in terminals:
            terminal.punch()


async def run_demo(settings: Settings, seconds: float | None, rate: float) -> None:
    from firmware_stubs.mqtt_terminal import MqttTerminal

    if not settings.mqtt.embedded:
        settings.mqtt.broker = "embedded"
    token = settings.api.admin_token.get_secret_value() or secrets.token_urlsafe(24)
    settings.api.admin_token = SecretStr(token)
    gateway = Gateway(settings)
    await gateway.start()
    host, port, _ = settings.mqtt.endpoint()
    terminals = []
    stop = threading.Event()
    try:
        for device_id, protocol, mode in DEMO_TERMINALS:
            password = await asyncio.to_thread(_register, gateway, device_id, protocol)
            terminal = MqttTerminal(device_id, host, port, mode=mode, username=device_id, password=password)
            terminals.append(await asyncio.to_thread(terminal.start))
        driver = threading.Thread(target=_drive, args=(terminals, rate, stop), daemon=True)
        driver.start()
        url = f"http://{settings.api.listen}"
        print(f"\nGateway demo running.\n  API:         {url}/docs\n  Health:      {url}/healthz"
              f"\n  Admin token: {token}\n  Try:         curl -H 'Authorization: Bearer {token}' "
              f"{url}/api/v1/attendance/punches?limit=5\nCtrl-C stops it.\n", flush=True)  # fmt: skip
        counts = asyncio.create_task(_show_counts(gateway))
        await gateway.run_until_signal(seconds)
        counts.cancel()
    finally:
        stop.set()
        for terminal in terminals:
            await asyncio.to_thread(terminal.close)
        await gateway.stop()
        print("\ndemo stopped", flush=True)


async def _show_counts(gateway: Gateway) -> None:
    m = gateway.metrics
    while True:
        received = sum(s.value for metric in m.received.collect() for s in metric.samples if s.name.endswith("_total"))
        stored = sum(s.value for metric in m.stored.collect() for s in metric.samples if s.name.endswith("_total"))
        dead = sum(s.value for metric in m.deadletters.collect() for s in metric.samples if s.name.endswith("_total"))
        line = f"\rreceived {received:>8.0f}   stored {stored:>8.0f}   dead letters {dead:>5.0f}   queue {len(gateway.queue):>5}"
        sys.stdout.write(line)
        sys.stdout.flush()
        await asyncio.sleep(1.0)
