"""Drain-rate benchmark: the gateway (ack-after-commit into SQLite) against bare paho subscribers.

Usage:  PYTHONPATH=. python bench/ingest.py [--messages 200000] [--repeat 2]

Everything runs on 127.0.0.1 and stops by itself. Every drain starts from scratch: a new
mosquitto (persistence off, big offline queue) on a new port, and for the gateway a new
temp dir with an empty SQLite database. Each drain:

1. Make the persistent session: the consumer connects once (MQTT v5, clean start off,
   session expiry 7 days) and subscribes `devices/+/events` at QoS 1, then goes away.
   Bare: connect, subscribe, disconnect. Gateway: `python -m gateway run`, wait for
   /healthz with mqtt_connected, register device bench-01, publish a warm-up punch (again
   every second) until the stored counter shows it, then SIGTERM and wait for exit.
2. With the consumer offline a paho publisher sends the same N punches (~200 bytes,
   distinct seq) at QoS 1 and waits for every PUBACK: the broker now holds the backlog.
3. The consumer comes back and we time how long it takes to get through the backlog.

Timing (the same for every consumer): from the moment the client handled its CONNACK
(the backlog starts to flow right after it) to the moment the last message was counted.
  * Bare subscribers (stock paho, and paho with the gateway's BufferedClient) run in this
    process with paho's default auto-ack; the clock stops in on_message at message N.
  * The gateway's CONNACK time is the timestamp of its log line "connected to the broker"
    (ms resolution, same wall clock). The end is the first /metrics poll (every 0.2 s)
    at which gateway_records_stored_total{kind="punch"} reaches N (the counter is per
    process, so the warm-up from the earlier process is not in it), taken after the
    answer arrived: this overstates the gateway's time by up to ~0.2 s, never understates.
    Its start-up (process spawn to CONNACK: imports, migrations, API) is shown apart.
All subscribers ask for the same flow-control window (Receive Maximum = the gateway's
default [mqtt] receive_maximum, 2000). Rounds alternate (bare, buffered, gateway) x repeat;
the table shows best and median and the ratio of medians, all from this same run.

Checks per gateway drain: peak RSS (VmHWM, read before the SIGTERM), and after it exits
the SQLite punch table must hold exactly 1 + N rows with 1 + N distinct seq.
"""

from __future__ import annotations

import argparse, json, os, re, shutil, signal, socket, sqlite3, statistics, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.request
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from gateway.transports.paho_buffered import BufferedClient  # noqa: E402

TOPIC, TOKEN, DEVICE = "devices/bench-01/events", "bench-token", "bench-01"
RECEIVE_MAXIMUM = 2000  # the gateway's default [mqtt] receive_maximum
STALL_S = 60.0  # a drain that makes no progress for this long fails
CONNECTED_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO \S+: connected to the broker", re.M)


def punch(seq: int) -> bytes:
    head = (f'{{"type":"punch","user":"E{1000 + seq % 500}","time":"2026-11-27T{seq // 3600 % 24:02d}:'
            f'{seq // 60 % 60:02d}:{seq % 60:02d}+08:00","verify":"fingerprint","direction":"in","seq":{seq},"note":"')
    return (head + "x" * (198 - len(head)) + '"}').encode()


class Sandbox:
    """Child processes and temp dirs, all removed on close (also after an error or Ctrl-C)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.dirs: list[Path] = []

    def tempdir(self) -> Path:
        self.dirs.append(Path(tempfile.mkdtemp(prefix="gw-bench-")))
        return self.dirs[-1]

    def spawn(self, args: list[str], log: Path, **kw) -> subprocess.Popen:
        with open(log, "wb") as out:  # own session: a Ctrl-C reaches only us, we stop them in order
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen, timeout: float = 10.0) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def close(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc, 5.0)
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(box: Sandbox, tmp: Path) -> int:
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000000\n"
                    "max_queued_bytes 0\nmax_inflight_messages 4000\npersistence false\n")
    proc = box.spawn(["/usr/sbin/mosquitto", "-c", str(conf)], tmp / "mosquitto.log")
    for _ in range(100):
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited: {(tmp / 'mosquitto.log').read_text()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("mosquitto did not listen")


def connect_props() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 7 * 86400
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    return props


def make_session(cls: type, port: int, cid: str) -> None:
    c = cls(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
    subscribed = threading.Event()
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe("devices/+/events", qos=1)
    c.on_subscribe = lambda cl, u, mid, rcs, p: subscribed.set()
    c.connect("127.0.0.1", port, clean_start=False, properties=connect_props())
    c.loop_start()
    try:
        if not subscribed.wait(10):
            raise RuntimeError("no SUBACK")
    finally:
        c.disconnect()
        c.loop_stop()


def publish(port: int, payloads: list[bytes], timeout: float) -> None:
    """QoS 1 with 1000 in flight; returns when the broker acknowledged every one.

    The window is ours, not paho's: paho's own limit rescans every queued message on each
    PUBACK, and its 16-bit message ids cannot tell apart more than 65535 queued messages."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(0)  # unlimited in paho: the semaphore below keeps it at 1000
    c.max_queued_messages_set(0)
    connected, done, window, acks, failed = threading.Event(), threading.Event(), threading.Semaphore(1000), [0], [0]

    def on_publish(cl, u, mid, rc, props):
        acks[0] += 1
        failed[0] += rc.is_failure
        window.release()
        if acks[0] == len(payloads):
            done.set()

    c.on_connect = lambda *a: connected.set()
    c.on_publish = on_publish
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        if not connected.wait(10):
            raise RuntimeError("publisher: no CONNACK")
        for p in payloads:
            if not window.acquire(timeout=STALL_S) or c.publish(TOPIC, p, qos=1).rc != mqtt.MQTT_ERR_SUCCESS:
                raise RuntimeError(f"publisher stuck after {acks[0]}/{len(payloads)} acknowledged")
        if not done.wait(timeout) or failed[0]:
            raise RuntimeError(f"publisher: {acks[0]}/{len(payloads)} acknowledged, {failed[0]} refused")
    finally:
        c.disconnect()
        c.loop_stop()


def drain_bare(box: Sandbox, cls: type, payloads: list[bytes]) -> dict:
    n, port = len(payloads), start_broker(box, box.tempdir())
    make_session(cls, port, "bench-bare")
    publish(port, payloads, timeout=60 + n / 500)
    c = cls(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv5)
    st = {"count": 0, "t0": None, "t1": None}

    def on_message(cl, u, msg):
        st["count"] += 1
        if st["count"] == n:
            st["t1"] = time.time()

    c.on_connect = lambda *a: st.__setitem__("t0", time.time())
    c.on_message = on_message
    c.connect("127.0.0.1", port, clean_start=False, properties=connect_props())
    seen, last_change = 0, time.time()
    while st["t1"] is None:
        if c.loop(0.2) != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"bare subscriber lost the broker at {st['count']}/{n}")
        if st["count"] != seen:
            seen, last_change = st["count"], time.time()
        elif time.time() - last_change > STALL_S:
            raise RuntimeError(f"bare subscriber stalled at {seen}/{n}")
    c.disconnect()
    return {"rate": n / (st["t1"] - st["t0"]), "seconds": st["t1"] - st["t0"]}


def http(api: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://{api}{path}", data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def metrics(api: str) -> dict[str, float]:
    text = http(api, "/metrics")[1].decode()
    return {m[1]: float(m[2]) for m in re.finditer(r"^(\w+(?:\{[^}]*\})?) (\S+)$", text, re.M)}


def stored(api: str) -> int:
    try:
        return int(metrics(api).get('gateway_records_stored_total{kind="punch"}', 0))
    except (OSError, urllib.error.URLError):
        return 0  # not listening yet


def start_gateway(box: Sandbox, tmp: Path, name: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return box.spawn([sys.executable, "-m", "gateway", "run", "--config", str(tmp / "gw.toml")],
                     tmp / f"{name}.log", cwd=tmp, env=env)


def wait_until(proc: subprocess.Popen, log: Path, what: str, check, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not check():
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"gateway: no {what}; log tail:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)


def drain_gateway(box: Sandbox, payloads: list[bytes]) -> dict:
    n, tmp = len(payloads), box.tempdir()
    port, api = start_broker(box, tmp), f"127.0.0.1:{free_port()}"
    (tmp / "gw.toml").write_text(f'[database]\nurl = "sqlite:///{tmp}/gw.db"\n[mqtt]\nbroker = "mqtt://127.0.0.1:{port}"\n'
                                 f'client_id = "gateway-bench"\n[api]\nlisten = "{api}"\nadmin_token = "{TOKEN}"\n')

    def healthy() -> bool:
        try:
            code, body = http(api, "/healthz")
            return code == 200 and json.loads(body)["mqtt_connected"] is True
        except OSError:
            return False

    proc = start_gateway(box, tmp, "setup")  # step 1: session, subscription, device, warm-up
    wait_until(proc, tmp / "setup.log", "/healthz", healthy)
    code, body = http(api, "/api/v1/devices", {"id": DEVICE, "kind": "attendance", "protocol": "mqtt-json"})
    if code != 201:
        raise RuntimeError(f"registering the device: {code} {body[:300]!r}")
    next_warm = 0.0

    def warmed() -> bool:
        nonlocal next_warm
        if time.time() >= next_warm:  # the subscription may not be in place yet: resend, same punch
            publish(port, [punch(0)], 10)
            next_warm = time.time() + 1.0
        return stored(api) >= 1

    wait_until(proc, tmp / "setup.log", "warm-up punch stored", warmed, 30)
    if box.stop(proc) != 0:
        raise RuntimeError(f"gateway setup exit code {proc.returncode}")

    publish(port, payloads, timeout=60 + n / 500)  # step 2: the backlog
    t_spawn = time.time()  # step 3
    proc = start_gateway(box, tmp, "drain")
    seen, last_change = 0, t_spawn
    while (count := stored(api)) < n:
        now = time.time()
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited during the drain:\n{(tmp / 'drain.log').read_text()[-2000:]}")
        if count != seen:
            seen, last_change = count, now
        elif now - last_change > STALL_S:
            raise RuntimeError(f"gateway stalled at {count}/{n}")
        time.sleep(0.2)
    t_end = time.time()
    hwm = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{proc.pid}/status").read_text())
    m = metrics(api)
    if box.stop(proc) != 0:
        raise RuntimeError(f"gateway drain exit code {proc.returncode}")
    stamp = CONNECTED_RE.search((tmp / "drain.log").read_text())
    if stamp is None:
        raise RuntimeError("no 'connected to the broker' line in the gateway log")
    t0 = datetime.strptime(stamp[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    with sqlite3.connect(f"file:{tmp}/gw.db?mode=ro", uri=True) as db:
        rows, distinct = db.execute("SELECT count(*), count(DISTINCT seq) FROM punch").fetchone()
    return {
        "rate": n / (t_end - t0), "seconds": t_end - t0, "startup": t0 - t_spawn, "rss_mib": int(hwm[1]) / 1024,
        "rows": rows, "distinct": distinct, "ok": rows == distinct == n + 1,
        "dups": m.get("gateway_duplicates_total", 0), "dead": sum(v for k, v in m.items() if k.startswith("gateway_deadletters_total")),
        "batches": m.get("gateway_batch_size_count", 0), "commit_s": m.get("gateway_batch_commit_seconds_sum", 0.0),
    }


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=200_000, help="backlog size (default 200000)")
    ap.add_argument("--repeat", type=int, default=2, help="rounds of (bare, buffered, gateway) (default 2)")
    args = ap.parse_args()
    payloads = [punch(seq) for seq in range(1, args.messages + 1)]
    consumers = [("bare paho (stock)", lambda b: drain_bare(b, mqtt.Client, payloads)),
                 ("bare paho (BufferedClient)", lambda b: drain_bare(b, BufferedClient, payloads)),
                 ("gateway (ack after commit)", lambda b: drain_gateway(b, payloads))]
    results: dict[str, list[dict]] = {name: [] for name, _ in consumers}
    signal.signal(signal.SIGTERM, _interrupt)  # clean up as on Ctrl-C
    print(f"{args.messages} messages of {len(payloads[0])} bytes, QoS 1, {args.repeat} round(s)", flush=True)
    for rnd in range(1, args.repeat + 1):
        for name, run in consumers:
            box = Sandbox()
            try:
                r = run(box)
            finally:
                box.close()
            results[name].append(r)
            extra = "" if "rows" not in r else (
                f"  startup {r['startup']:.2f}s  VmHWM {r['rss_mib']:.0f} MiB  rows {r['rows']} (distinct seq "
                f"{r['distinct']}, {'OK' if r['ok'] else 'WRONG'})  dups {r['dups']:.0f}  dead {r['dead']:.0f}  "
                f"{r['batches']:.0f} batches, writer busy {r['commit_s']:.1f}s")
            print(f"round {rnd}  {name:28s} {r['seconds']:7.2f}s {r['rate']:9.0f} msg/s{extra}", flush=True)
    med = {name: statistics.median(r["rate"] for r in rs) for name, rs in results.items()}
    base, buf, gw = (name for name, _ in consumers)
    print(f"\n{'consumer':28s} {'runs':>4s} {'best msg/s':>11s} {'median msg/s':>13s} {'gateway/this':>13s}")
    for name, rs in results.items():
        print(f"{name:28s} {len(rs):4d} {max(r['rate'] for r in rs):11.0f} {med[name]:13.0f} {med[gw] / med[name]:13.2f}")
    g = results[gw]
    print(f"\nratio gateway/bare (medians): {med[gw] / med[base]:.2f}  (goal >= 0.80: "
          f"{'met' if med[gw] / med[base] >= 0.80 else 'NOT met'});  gateway/buffered bare: {med[gw] / med[buf]:.2f}")
    print(f"gateway start-up (spawn -> CONNACK), median: {statistics.median(r['startup'] for r in g):.2f}s, not in the rates")
    print(f"gateway peak RSS (VmHWM), max: {max(r['rss_mib'] for r in g):.0f} MiB")
    print(f"stored punches per gateway run (SQLite rows, expected 1 warm-up + {args.messages}): "
          f"{', '.join(str(r['rows']) for r in g)} -> {'OK' if all(r['ok'] for r in g) else 'MISMATCH'}")
    return 0 if all(r["ok"] for r in g) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; brokers, gateways and temp dirs removed", file=sys.stderr)
        sys.exit(130)
