"""Drain-rate benchmark: the gateway (ack after commit into SQLite) against bare paho subscribers.

Usage:  PYTHONPATH=. python bench/ingest.py [--messages 200000] [--repeat 2]
GATEWAY_* variables in the environment reach the gateway (e.g. GATEWAY_MQTT__RECEIVE_MAXIMUM).

Everything runs on 127.0.0.1 and stops by itself. Every drain starts from scratch, so no
consumer is advantaged: a new mosquitto (persistence off, unbounded offline queue) on a new
port and, for the gateway, a new temp dir with an empty SQLite database. Each drain:

1. Make the persistent session: the consumer connects once (MQTT v5, clean start off,
   session expiry 7 days), subscribes `devices/+/events` at QoS 1 and goes away.
   Bare: connect, subscribe, disconnect. Gateway: `python -m gateway run`, wait for /healthz
   with mqtt_connected, register device bench-01, publish a warm-up punch (again every
   second, same punch) until the stored counter shows it, then SIGTERM and wait for exit.
2. With the consumer offline, a paho publisher sends the same N punches (200 bytes, distinct
   seq) at QoS 1 and waits for every PUBACK: the broker now holds the backlog.
3. The consumer comes back (its session must be present) and drains the backlog.

Timing, the same rule for every consumer: from the moment the client handled its CONNACK
(the backlog starts to flow right after it) to the moment message N was counted.
  * Bare subscribers (stock paho, and paho with the gateway's BufferedClient) run in this
    process with paho's auto-ack; the clock stops in on_message at message N.
  * Gateway: the start is the timestamp of its log line "connected to the broker" (ms, same
    wall clock). The end is the first /metrics poll (every 0.2 s) whose
    gateway_records_stored_total{kind="punch"} reaches N, taken when the answer arrived, so
    the gateway's time is overstated by up to ~0.2 s, never understated. The counter is per
    process: the warm-up, stored by the earlier process, is not in it. Start-up (spawn to
    CONNACK: imports, migrations, API) is reported apart, not in the rate.
All subscribers ask for the same window (Receive Maximum 2000, the gateway's default).
Rounds alternate (bare, buffered bare, gateway) x --repeat; the table shows best and median
and ratios of medians, all from this same run (the machine is noisy: compare only ratios).

Per gateway drain it also prints the rate over the first and the second half of the backlog
(from the same 0.2 s polls, so meaningful only for large N), the batch count and the writer's
busy time (gateway_batch_commit_seconds_sum: decode + write + commit), the peak depth of
its ingest queue seen by the polls, peak RSS (VmHWM, read before the SIGTERM), and checks
after it exits that the SQLite punch table holds exactly 1 + N rows with 1 + N distinct seq
(no loss, no duplicates). A queue peak above 2000 means the broker sent more unacknowledged
messages than the Receive Maximum allows (mosquitto 2.0.11 does, when it resumes a backlog).

Children get SIGTERM if this process dies; only a SIGKILL leaves a gw-bench-* dir in /tmp.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import procs  # noqa: E402 (bench/ beside this script)

from gateway.transports.paho_buffered import BufferedClient  # noqa: E402

TOPIC, TOKEN, DEVICE = "devices/bench-01/events", "bench-admin-token-0123456789", "bench-01"
RECEIVE_MAXIMUM = 2000  # the gateway's default [mqtt] receive_maximum
STALL_S = 60.0  # a step that makes no progress for this long fails the run
CONNECTED = re.compile(r"^(\S+ \S+) INFO \S+: connected to the broker \(session present: (\w+)\)", re.M)


def punch(seq: int) -> bytes:
    head = (
        f'{{"type":"punch","user":"E{1000 + seq % 500}","time":"2026-11-27T{seq // 3600 % 24:02d}:'
        f'{seq // 60 % 60:02d}:{seq % 60:02d}+08:00","verify":"fingerprint","direction":"in","seq":{seq},"note":"'
    )
    return (head + "x" * (198 - len(head)) + '"}').encode()


class Sandbox:
    """Child processes and temp dirs of one drain, all removed on close (after errors and Ctrl-C too)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.dirs: list[Path] = []

    def tempdir(self) -> Path:
        self.dirs.append(Path(tempfile.mkdtemp(prefix="gw-bench-")))
        return self.dirs[-1]

    def spawn(self, args: list[str], log: Path, **kw) -> subprocess.Popen:
        with open(log, "wb") as out:  # own session: a Ctrl-C reaches only us, and we stop them in order
            self.procs.append(
                subprocess.Popen(
                    args,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=procs.die_with_parent,
                    **kw,
                )
            )
        return self.procs[-1]

    def close(self) -> None:
        for proc in reversed(self.procs):
            procs.stop(proc, 5.0)
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(box: Sandbox, tmp: Path) -> int:
    port, conf = free_port(), tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000000\n"
        "max_queued_bytes 0\nmax_inflight_messages 4000\npersistence false\n"
        f"user {getpass.getuser()}\n"
    )  # keep our user: a change of user would drop the death signal
    proc = box.spawn(["/usr/sbin/mosquitto", "-c", str(conf)], tmp / "mosquitto.log")
    for _ in range(100):
        if proc.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"mosquitto did not start: {(tmp / 'mosquitto.log').read_text()[-500:]}")


def new_client(cls: type, client_id: str) -> mqtt.Client:
    return cls(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)


def connect_persistent(client: mqtt.Client, port: int) -> None:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval, props.ReceiveMaximum = 7 * 86400, RECEIVE_MAXIMUM
    client.connect("127.0.0.1", port, clean_start=False, properties=props)


def publish(port: int, payloads: list[bytes]) -> None:
    """QoS 1 with 1000 in flight; returns when the broker acknowledged every one.

    The window is ours, not paho's: paho's own limit rescans all its queued messages on each
    PUBACK, and its 16-bit message ids cannot hold more than 65535 unacknowledged messages."""
    c = new_client(mqtt.Client, f"bench-pub-{os.getpid()}")
    c.max_inflight_messages_set(0)  # unlimited in paho; the semaphore keeps 1000 in flight
    c.max_queued_messages_set(0)
    connected, window, acks, refused = threading.Event(), threading.Semaphore(1000), [0], [0]

    def on_publish(client, userdata, mid, reason, props) -> None:
        acks[0] += 1
        refused[0] += reason.is_failure
        window.release()

    c.on_connect = lambda *a: connected.set()
    c.on_publish = on_publish
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        if not connected.wait(10):
            raise RuntimeError("publisher: no CONNACK")
        for p in payloads + [b""] * 1000:  # the last 1000 acquires wait for the last acks
            if not window.acquire(timeout=STALL_S):
                raise RuntimeError(f"publisher stuck at {acks[0]}/{len(payloads)} acknowledged")
            if p and c.publish(TOPIC, p, qos=1).rc != mqtt.MQTT_ERR_SUCCESS:
                raise RuntimeError("publisher: publish refused by paho")
        if refused[0]:
            raise RuntimeError(f"publisher: the broker refused {refused[0]} messages")
    finally:
        c.disconnect()
        c.loop_stop()


def drain_bare(box: Sandbox, cls: type, payloads: list[bytes]) -> dict:
    n, port = len(payloads), start_broker(box, box.tempdir())
    c, subscribed = new_client(cls, "bench-bare"), threading.Event()
    c.on_connect = lambda cl, *a: cl.subscribe("devices/+/events", qos=1)
    c.on_subscribe = lambda *a: subscribed.set()
    connect_persistent(c, port)
    c.loop_start()
    ok = subscribed.wait(10)
    c.disconnect()
    c.loop_stop()
    if not ok:
        raise RuntimeError("bare subscriber: no SUBACK")
    publish(port, payloads)

    c, st = new_client(cls, "bench-bare"), {"count": 0, "t0": 0.0, "t1": None, "session": None}

    def on_connect(client, userdata, flags, reason, props) -> None:
        st["t0"], st["session"] = time.time(), flags.session_present

    def on_message(client, userdata, msg) -> None:
        st["count"] += 1
        if st["count"] == n:
            st["t1"] = time.time()

    c.on_connect, c.on_message = on_connect, on_message
    connect_persistent(c, port)
    seen, last_change = 0, time.time()
    while st["t1"] is None:
        if c.loop(0.2) != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"bare subscriber lost the broker at {st['count']}/{n}")
        if st["count"] != seen:
            seen, last_change = st["count"], time.time()
        elif time.time() - last_change > STALL_S:
            raise RuntimeError(f"bare subscriber stalled at {seen}/{n} (session present: {st['session']})")
    c.disconnect()
    return {"seconds": st["t1"] - st["t0"], "rate": n / (st["t1"] - st["t0"])}


def http(api: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(
        f"http://{api}{path}",
        data=json.dumps(body).encode() if body else None,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def metrics(api: str) -> dict[str, float]:
    text = http(api, "/metrics")[1].decode()
    return {m[1]: float(m[2]) for m in re.finditer(r"^(\w+(?:\{[^}]*\})?) (\S+)$", text, re.M)}


def poll(api: str) -> tuple[int, dict[str, float]]:
    """Stored punches and all metrics; (0, {}) while the API is not listening yet."""
    try:
        m = metrics(api)
    except OSError:
        return 0, {}
    return int(m.get('gateway_records_stored_total{kind="punch"}', 0)), m


def drain_gateway(box: Sandbox, payloads: list[bytes]) -> dict:
    n, tmp = len(payloads), box.tempdir()
    port, api = start_broker(box, tmp), f"127.0.0.1:{free_port()}"
    (tmp / "gw.toml").write_text(
        f'[database]\nurl = "sqlite:///{tmp}/gw.db"\n[mqtt]\nbroker = "mqtt://127.0.0.1:{port}"\n'
        f'client_id = "gateway-bench"\ndevice_auth = "off"\n[api]\nlisten = "{api}"\nadmin_token = "{TOKEN}"\n'
    )

    def start(name: str) -> subprocess.Popen:
        return box.spawn(
            [sys.executable, "-m", "gateway", "run", "--config", str(tmp / "gw.toml")],
            tmp / f"{name}.log",
            cwd=tmp,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )

    def wait_until(proc: subprocess.Popen, what: str, check) -> None:
        deadline = time.time() + STALL_S
        while not check():
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"gateway: no {what}; log tail:\n{(tmp / 'setup.log').read_text()[-2000:]}")
            time.sleep(0.1)

    def healthy() -> bool:
        try:
            code, body = http(api, "/healthz")
            return code == 200 and json.loads(body)["mqtt_connected"] is True
        except OSError:
            return False

    next_warm = 0.0

    def warmed() -> bool:  # the first subscription may still be on its way: resend the same punch
        nonlocal next_warm
        if time.time() >= next_warm:
            publish(port, [punch(0)])
            next_warm = time.time() + 1.0
        return poll(api)[0] >= 1

    proc = start("setup")  # step 1: session, subscription, device, warm-up
    wait_until(proc, "/healthz with mqtt_connected", healthy)
    code, body = http(api, "/api/v1/devices", {"id": DEVICE, "kind": "attendance", "protocol": "mqtt-json"})
    if code != 201:
        raise RuntimeError(f"registering the device: {code} {body[:300]!r}")
    wait_until(proc, "warm-up punch stored", warmed)
    if procs.stop(proc) != 0:
        raise RuntimeError(f"gateway (setup) exited with {proc.returncode}")

    publish(port, payloads)  # step 2: the backlog
    t_spawn = time.time()  # step 3: the drain
    proc = start("drain")
    seen, last_change, t_half, queue_peak = 0, t_spawn, None, 0.0
    while True:
        count, m = poll(api)
        now = time.time()
        queue_peak = max(queue_peak, m.get("gateway_queue_depth", 0))
        if count >= n:
            break
        t_half = t_half or (now if count >= n // 2 else None)
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited during the drain:\n{(tmp / 'drain.log').read_text()[-2000:]}")
        if count != seen:
            seen, last_change = count, now
        elif now - last_change > STALL_S:
            raise RuntimeError(f"gateway stalled at {count}/{n}")
        time.sleep(0.2)
    t_end = now
    hwm = int(re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{proc.pid}/status").read_text())[1])
    m = poll(api)[1]  # again: the last batch's histograms are observed just after its count
    if procs.stop(proc) != 0:
        raise RuntimeError(f"gateway (drain) exited with {proc.returncode}")
    line = CONNECTED.search((tmp / "drain.log").read_text())
    if line is None or line[2] != "True":
        raise RuntimeError(f"gateway log: no 'connected ... (session present: True)' line ({line and line[0]})")
    t0 = datetime.strptime(line[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    with sqlite3.connect(f"file:{tmp}/gw.db?mode=ro", uri=True) as db:
        rows, distinct = db.execute("SELECT count(*), count(DISTINCT seq) FROM punch").fetchone()
    t_half = t_half or t_end
    return {
        "seconds": t_end - t0,
        "rate": n / (t_end - t0),
        "startup": t0 - t_spawn,
        "rss_mib": hwm / 1024,
        "halves": (n // 2 / (t_half - t0), (n - n // 2) / max(t_end - t_half, 1e-3)),
        "rows": rows,
        "distinct": distinct,
        "ok": rows == distinct == n + 1,
        "dups": m.get("gateway_duplicates_total", 0),
        "queue_peak": queue_peak,
        "dead": sum(v for k, v in m.items() if k.startswith("gateway_deadletters_total")),
        "batches": m.get("gateway_batch_size_count", 0),
        "busy": m.get("gateway_batch_commit_seconds_sum", 0),
    }


def describe(r: dict) -> str:
    if "rows" not in r:
        return ""
    return (
        f"  halves {r['halves'][0]:.0f}/{r['halves'][1]:.0f} msg/s  start-up {r['startup']:.2f}s"
        f"  VmHWM {r['rss_mib']:.0f} MiB  rows {r['rows']} ({r['distinct']} distinct seq:"
        f" {'OK' if r['ok'] else 'WRONG'})  dups {r['dups']:.0f}  dead {r['dead']:.0f}"
        f"  {r['batches']:.0f} batches, writer busy {r['busy']:.1f}s, queue peak {r['queue_peak']:.0f}"
    )


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=200_000, help="backlog size (default 200000)")
    ap.add_argument("--repeat", type=int, default=2, help="rounds of (bare, buffered bare, gateway) (default 2)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)  # clean up as on Ctrl-C
    payloads = [punch(seq) for seq in range(1, args.messages + 1)]
    consumers = {
        "bare paho (stock)": lambda box: drain_bare(box, mqtt.Client, payloads),
        "bare paho (BufferedClient)": lambda box: drain_bare(box, BufferedClient, payloads),
        "gateway (ack after commit)": lambda box: drain_gateway(box, payloads),
    }
    results: dict[str, list[dict]] = {name: [] for name in consumers}
    print(f"{args.messages} QoS 1 messages of {len(payloads[0])} bytes, {args.repeat} round(s)", flush=True)
    for rnd in range(1, args.repeat + 1):
        for name, drain in consumers.items():
            box = Sandbox()
            try:
                r = drain(box)
            finally:
                box.close()
            results[name].append(r)
            print(f"round {rnd}  {name:27s} {r['seconds']:7.2f}s {r['rate']:8.0f} msg/s{describe(r)}", flush=True)

    med = {name: statistics.median(r["rate"] for r in rs) for name, rs in results.items()}
    bare, buffered, gw = consumers
    print(f"\n{'consumer':27s} {'runs':>4s} {'best msg/s':>11s} {'median msg/s':>13s} {'gateway/this':>13s}")
    for name, rs in results.items():
        print(
            f"{name:27s} {len(rs):4d} {max(r['rate'] for r in rs):11.0f} {med[name]:13.0f} {med[gw] / med[name]:13.2f}"
        )
    g, ratio = results[gw], med[gw] / med[bare]
    print(
        f"\ngateway/bare (medians): {ratio:.2f}  goal >= 0.80: {'met' if ratio >= 0.80 else 'NOT met'}"
        f"   (gateway/BufferedClient bare: {med[gw] / med[buffered]:.2f})"
    )
    print(
        f"gateway start-up, spawn -> CONNACK (not in the rates), median: {statistics.median(r['startup'] for r in g):.2f}s"
    )
    print(f"gateway peak RSS (VmHWM), max of {len(g)} runs: {max(r['rss_mib'] for r in g):.0f} MiB")
    print(
        f"gateway ingest queue, peak seen by the polls: {max(r['queue_peak'] for r in g):.0f}"
        f" (at most {RECEIVE_MAXIMUM} if the broker keeps to the Receive Maximum)"
    )
    print(
        f"SQLite punch rows per gateway run (expected 1 warm-up + {args.messages}): "
        f"{', '.join(str(r['rows']) for r in g)} -> {'OK' if all(r['ok'] for r in g) else 'MISMATCH'}"
    )
    return 0 if all(r["ok"] for r in g) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; brokers, gateways and temp dirs removed", file=sys.stderr)
        sys.exit(130)
