"""Uplink drain benchmark: a backlog of punches into the platform stand-in at its call cap.

Usage:  PYTHONPATH=. python bench/uplink.py [--punches 10000] [--cap 500] [--people 50]

DingTalk allows an app 20 calls a second; a drain of 10,000 punches at that cap takes over
8 minutes, so the run is time-compressed: the stand-in enforces `--cap` calls/s (90018 above
it, like DingTalk) and the gateway is set to the same rate. What matters is the share of the
cap achieved and that nothing is throttled or sent twice.

1. Baseline, in this process: the gateway's own DingTalk client (no database, no outbox)
   sends --baseline records back to back, one call each, 50 people in parallel as the worker
   does: the best a sender at this rate can do on this machine.
2. Gateway: `python -m gateway run` (SQLite, embedded broker) with the DingTalk sink on. The
   stand-in is down while the punches arrive over MQTT and are stored (the backlog); then it
   comes up and the clock runs until it has accepted every punch.
3. Webhook: the same with the webhook sink (batches of 100) instead: batches and records/s.

Everything runs on 127.0.0.1 and stops by itself; compare the ratios, not the absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from firmware_stubs.platform import PlatformStandIn  # noqa: E402
from gateway.uplink.dingtalk import DingTalkSink  # noqa: E402

TOKEN = "bench-admin-token-0123456789"
START_MS = int(time.time() * 1000) - 86_400_000  # yesterday: inside DingTalk's 180-day window


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(check, timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(every)


async def baseline(standin: PlatformStandIn, n: int, people: int, cap: float) -> dict:
    sink = DingTalkSink(standin.url, "standin-key", "standin-secret", rate=cap)
    queues = [
        [
            {
                "userid": f"dt-{p}",
                "device_name": "bench",
                "device_id": "bench-base",
                "user_check_time": START_MS + i * 1000 + p,
            }
            for i in range(p, n, people)
        ]
        for p in range(people)
    ]

    async def person(records: list[dict]) -> int:
        return sum([(await sink.send(r)).status == "delivered" for r in records])

    await sink.send({"userid": "dt-warm", "device_name": "bench", "device_id": "warm", "user_check_time": START_MS})
    start = time.perf_counter()
    delivered = sum(await asyncio.gather(*(person(q) for q in queues)))
    elapsed = time.perf_counter() - start
    await sink.close()
    return {"records": delivered, "seconds": elapsed, "rate": delivered / elapsed}


class Gateway:
    def __init__(self, uplink: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gw-uplink-"))
        self.api, self.mqtt = free_port(), free_port()
        (self.dir / "gateway.toml").write_text(
            f'[database]\nurl = "sqlite:///{self.dir}/gateway.db"\n[mqtt]\nbroker = "embedded"\n'
            f'listen = "127.0.0.1:{self.mqtt}"\n[api]\nlisten = "127.0.0.1:{self.api}"\nadmin_token = "{TOKEN}"\n'
            + uplink
        )
        self.log = open(self.dir / "gateway.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", "gateway.toml"],
            cwd=self.dir,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.api}", headers={"Authorization": f"Bearer {TOKEN}"})
        wait(self._ready, 60, "the gateway's /healthz")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError((self.dir / "gateway.log").read_text()[-2000:])
        try:
            return self.http.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def stored(self) -> int:
        for line in self.http.get("/metrics").text.splitlines():
            if line.startswith('gateway_records_stored_total{kind="punch"}'):
                return int(float(line.split()[-1]))
        return 0

    def backlog(self, n: int, people: int, platform_ids: bool) -> None:
        """n punches of `people` people, stored while the platform is down."""
        for p in range(people):
            body = {"id": f"E{p}", "name": f"Person {p}", **({"platform_user_id": f"dt-{p}"} if platform_ids else {})}
            self.http.post("/api/v1/people", json=body).raise_for_status()
        creds = self.http.post(
            "/api/v1/devices", json={"id": "att-01", "kind": "attendance", "protocol": "mqtt-json"}
        ).json()["credentials"]
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="att-01")
        client.username_pw_set("att-01", creds["mqtt_password"])
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.connect("127.0.0.1", self.mqtt)
        client.loop_start()
        infos = [
            client.publish(
                "devices/att-01/events",
                orjson.dumps({"type": "punch", "user": f"E{i % people}", "time": START_MS + i * 1000, "seq": i}),
                qos=1,
            )
            for i in range(n)
        ]
        wait(lambda: all(i.is_published() for i in infos), 300, "every PUBACK", 0.2)
        client.loop_stop()
        client.disconnect()
        wait(lambda: self.stored() >= n, 120, "the punches stored", 0.2)

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.http.close()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def drain(standin: PlatformStandIn, gw: Gateway, n: int, count) -> dict:
    standin.come_up()
    start = time.perf_counter()
    wait(lambda: count() >= n, 3600, "the drain", 0.01)
    elapsed = time.perf_counter() - start
    return {"records": count(), "seconds": elapsed, "rate": count() / elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--punches", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=2_000)
    parser.add_argument("--cap", type=int, default=500, help="calls per second the stand-in allows")
    parser.add_argument("--people", type=int, default=50)
    args = parser.parse_args()
    n, cap = args.punches, args.cap

    standin = PlatformStandIn(qps=cap, webhook_secret="bench-secret").start()
    try:
        base = asyncio.run(baseline(standin, args.baseline, args.people, cap))
        base_throttled = standin.throttled
        standin.reset()

        standin.go_down()
        gw = Gateway(
            f'[uplink.dingtalk]\nenabled = true\nbase_url = "{standin.url}"\napp_key = "standin-key"\n'
            f'app_secret = "standin-secret"\nrate = {cap}\n'
        )
        try:
            gw.backlog(n, args.people, platform_ids=True)
            ding = drain(standin, gw, n, lambda: standin.total_accepted)
            time.sleep(1.0)
            ding.update(
                accepted=standin.total_accepted, throttled=standin.throttled, duplicates=len(standin.duplicates())
            )
        finally:
            gw.close()

        standin.reset()
        standin.go_down()
        gw = Gateway(
            f'[uplink.webhook]\nenabled = true\nurl = "{standin.webhook_url}"\nsecret = "bench-secret"\n'
            'records = ["punch"]\nbatch_size = 100\n'
        )
        try:
            gw.backlog(n, args.people, platform_ids=False)
            hook = drain(standin, gw, n, lambda: standin.webhook.accepted)
            hook["batches"] = int(standin.webhook.stats()["answered"].get("200", 0))
        finally:
            gw.close()
    finally:
        standin.stop()

    print(f"\nDingTalk upload, {n} punches of {args.people} people, stand-in cap {cap} calls/s (DingTalk: 20)")
    print(
        f"  baseline (bare client, {base['records']} records): {base['rate']:8.1f} calls/s = "
        f"{base['rate'] / cap:6.1%} of the cap, throttled {base_throttled}"
    )
    print(
        f"  gateway  (outbox drain, {ding['accepted']} accepted): {ding['rate']:8.1f} calls/s = "
        f"{ding['rate'] / cap:6.1%} of the cap, throttled {ding['throttled']}, sent twice {ding['duplicates']}"
    )
    print(f"  gateway / baseline: {ding['rate'] / base['rate']:.2f}   (goal: >= 95% of the cap, no 90018)")
    print(f"\nWebhook, {n} punches in batches of 100")
    print(
        f"  {hook['records']} records in {hook['seconds']:.2f} s: {hook['rate']:8.0f} records/s, "
        f"{hook['batches'] / hook['seconds']:6.1f} batches/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
