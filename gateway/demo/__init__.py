"""`gateway demo`: the gateway on its embedded defaults with a whole simulated office around it.

Attendance terminals (two over MQTT, one ZKTeco over HTTP) punching for 50
people, doors with OSDP readers on pty links presenting cards, and the rest of
the office as it is built: everything from `firmware_stubs/`, in one process.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import threading
import time
from typing import Any

from pydantic import SecretStr

from gateway.app import Gateway
from gateway.config import Settings
from gateway.demo.doors import DOORS, DemoDoors
from gateway.demo.fleet import DemoFleet
from gateway.demo.office import PEOPLE, TERMINALS, ZK_TERMINAL, drive_terminals, populate, register
from gateway.store.db import upgrade


async def run_demo(settings: Settings, seconds: float | None, rate: float) -> None:
    from firmware_stubs.mqtt_terminal import MqttTerminal
    from firmware_stubs.zk_terminal import ZkTerminal

    if not settings.mqtt.embedded:
        settings.mqtt.broker = "embedded"
    token = settings.api.admin_token.get_secret_value() or secrets.token_urlsafe(24)
    settings.api.admin_token = SecretStr(token)
    platform = _platform(settings)
    doors, fleet = DemoDoors(), DemoFleet()
    doors.configure(settings)
    fleet.configure(settings)
    gateway = Gateway(settings)
    # Devices on serial lines are registered before the start: a line takes the readers it has then.
    await asyncio.to_thread(upgrade, gateway.engine)
    await asyncio.to_thread(gateway.registry.load)
    reader_keys = await asyncio.to_thread(doors.provision, gateway)
    await asyncio.to_thread(fleet.provision, gateway)
    await gateway.start()
    host, port, _ = settings.mqtt.endpoint()
    url = f"http://{settings.api.listen}"
    terminals: list[MqttTerminal] = []
    stop = threading.Event()
    try:
        await asyncio.to_thread(populate, gateway, [door for _, door in DOORS])
        for device_id, protocol, mode in TERMINALS:
            creds = await asyncio.to_thread(register, gateway, device_id, protocol)
            terminal = MqttTerminal(
                device_id, host, port, mode=mode, username=device_id, password=creds["mqtt_password"]
            )
            terminals.append(await asyncio.to_thread(terminal.start))
        await asyncio.to_thread(register, gateway, ZK_TERMINAL[0], "zk-adms", {"sn": ZK_TERMINAL[1]})
        zk_url = f"http://{settings.zk.listen}" if settings.zk.listen else url  # where /iclock is served
        zk = ZkTerminal(zk_url, ZK_TERMINAL[1], pins=[str(1000 + i) for i in range(PEOPLE)], timeout=5)
        await asyncio.to_thread(zk.handshake)
        threading.Thread(target=drive_terminals, args=(terminals, zk, rate, stop), daemon=True).start()
        await asyncio.to_thread(doors.start, gateway, reader_keys)
        fleet.start(gateway)
        print(_banner(url, token, platform.url if platform is not None else None), flush=True)
        counts = asyncio.create_task(_show_counts(gateway))
        await gateway.run_until_signal(seconds)
        counts.cancel()
    finally:
        stop.set()
        for terminal in terminals:
            await asyncio.to_thread(terminal.close)
        await asyncio.to_thread(doors.stop)
        await fleet.stop()
        await gateway.stop()
        if platform is not None:
            platform.stop()
        print("\ndemo stopped", flush=True)


def _banner(url: str, token: str, platform_url: str | None) -> str:
    today = time.strftime("%Y-%m-%d")
    curl = f"curl -H 'Authorization: Bearer {token}'"
    lines = [
        "",
        "Gateway demo running.",
        f"  Dashboard:   {url}/  (sign in with the admin token)",
        f"  API:         {url}/docs",
        f"  Health:      {url}/healthz",
        f"  Admin token: {token}",
    ]
    if platform_url:
        lines.append(f"  Platform:    {platform_url}  (DingTalk and webhook stand-in; counts at /_standin/stats)")
    lines += [
        f"  Try:         {curl} '{url}/api/v1/attendance/punches?limit=5'",
        f"               {curl} '{url}/api/v1/access/events?limit=5'",
        f"               {curl} '{url}/api/v1/vehicles/van-1/trips'",
        f"               {curl} '{url}/api/v1/attendance/days?from={today}&to={today}&limit=5'",
        "Ctrl-C stops it.",
        "",
    ]
    return "\n".join(lines)


def _platform(settings: Settings) -> Any:
    """The platform stand-in receiving the uplink, unless the config points the uplink somewhere itself."""
    uplink = settings.uplink
    if uplink.dingtalk.enabled or uplink.webhook.enabled:
        return None
    from firmware_stubs.platform import PlatformStandIn

    platform = PlatformStandIn(qps=20, webhook_secret="demo-webhook-secret").start()
    uplink.dingtalk.enabled, uplink.dingtalk.base_url = True, platform.url
    uplink.dingtalk.app_key, uplink.dingtalk.app_secret = "standin-key", SecretStr("standin-secret")
    uplink.webhook.enabled, uplink.webhook.url = True, platform.webhook_url
    uplink.webhook.secret = SecretStr("demo-webhook-secret")
    uplink.webhook.records = ["visit", "visitor_arrived", "trip"]
    return platform


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
