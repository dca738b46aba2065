"""Door latency: card at an OSDP reader -> strike command back at the reader, gateway vs bare libosdp.

Usage:  PYTHONPATH=. python bench/door.py [--reads 1000] [--blocks 4] [--warmup 20]

Both sides run the same wire: libosdp's PeripheralDevice (firmware_stubs.osdp_reader.SimulatedReader,
in this process) on one end of a socat pty pair at 115200 baud, the control panel on the other end,
Secure Channel enforced on both with a per-side random key. Each control panel is a child process:
  * baseline: `bench/door.py --bare-cp`, a bare OsdpLine (the gateway's libosdp plumbing) whose
    on_event answers every card read with grant(1000 ms) at once: no decoding, no decision, no database;
  * gateway:  `python -m gateway run` with an [[serial]] osdp line, a reader registered through the API
    (its Secure Channel key comes from provisioning) and one person holding card 10:1093 with access to
    the door. The full path: OsdpLine -> DoorReaders.on_event -> credential_of -> AccessControl.read
    (in-memory snapshot) -> grant, with the decision queued to the store writer (SQLite, synchronous=full)
    while the gateway's API, embedded broker and liveness run as usual.
One read: clear the reader's log, stamp time.monotonic(), present H10301 10:1093, wait for the output
command (control code 5) and take its ReceivedCommand.monotonic; latency = the difference; anything
not seen within --timeout counts as a timeout. Reads never overlap: after each, a random 50-100 ms pause
lets the LED/buzzer commands go out and randomises the phase against libosdp's ~50 ms poll cycle, which
a card waits for (the reader can only answer a poll) and which dominates both sides' numbers. So a
second table takes the poll wait out: from the moment the reader wrote the reply that carries the card
(its first write after the event was queued; writes are timestamped at the reader's bus) to the strike
command, i.e. the control panel's turnaround plus the wire, where any gateway overhead shows undiluted.
Sides alternate in ABBA blocks (B G G B B G ...) so drift and machine noise hit both; each side first
gets --warmup reads that are not counted. At the end the gateway is stopped (SIGTERM, it commits what
is queued) and its access_event table is counted: every read, warm-up included, must be recorded.
Children get SIGTERM if this process dies; Ctrl-C (or SIGTERM) stops everything and removes the temp
dir. Exit status 1 if any read timed out, a record is missing or the gateway did not exit cleanly.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import random
import secrets
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
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import procs  # noqa: E402 (bench/ beside this script)

from firmware_stubs.osdp_reader import SimulatedReader  # noqa: E402 (after the path is set)

FC, CN, STRIKE_MS, TOKEN, GOAL_MS = 10, 1093, 1000, "bench-door-token-0123456789", 10.0
ctypes.pythonapi.Py_IncRef.argtypes = [ctypes.py_object]


def restore_none(_command: object) -> None:
    """libosdp's PD binding (osdp_sys pd.c, pd_command_cb) drops one reference to None per command it
    receives; before Python 3.12 None is not immortal and the process aborts ("deallocating None") after
    some thousands of commands. Our readers give each one back, one call per command received."""
    ctypes.pythonapi.Py_IncRef(None)


def bare_cp(port: str, key: str) -> None:
    """Child mode: the baseline control panel."""
    import logging

    from gateway.core.reader_events import CardRead
    from gateway.transports.osdp_cp import OsdpLine

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    line = OsdpLine(port, {1: key}, on_event=lambda a, ev: isinstance(ev, CardRead) and line.grant(a, STRIKE_MS))
    line.start()
    stop.wait()
    line.stop(2.0)


class Sandbox:
    """Child processes, readers and the temp dir; all gone on close (after errors and Ctrl-C too)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gw-door-"))
        self.procs: list[subprocess.Popen] = []
        self.readers: list[SimulatedReader] = []

    def spawn(self, args: list, log: str, **kw) -> subprocess.Popen:
        # Own session: a Ctrl-C reaches only us. Every child is spawned before any thread starts (preexec_fn).
        with open(self.dir / log, "ab") as out:
            proc = subprocess.Popen(
                [str(a) for a in args],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=procs.die_with_parent,
                **kw,
            )
        self.procs.append(proc)
        return proc

    def pty_pair(self, name: str) -> tuple[Path, Path]:
        cp, pd = self.dir / f"{name}-cp", self.dir / f"{name}-pd"
        self.spawn(["/usr/bin/socat", f"pty,raw,echo=0,link={cp}", f"pty,raw,echo=0,link={pd}"], "socat.log")
        wait(lambda: cp.exists() and pd.exists(), 5, "the pty pair")
        return cp, pd

    def reader(self, port: Path, key: str) -> SimulatedReader:
        reader = SimulatedReader(str(port), 1, key, on_command=restore_none if sys.version_info < (3, 12) else None)
        reader.writes, write = [], reader.bus._write  # when the reader put each reply on the wire

        def stamped(buf: bytes) -> int:
            reader.writes.append(time.monotonic())
            return write(buf)

        reader.bus._write = stamped
        self.readers.append(reader.start())
        wait(lambda: self.readers[-1].secure, 30, f"the secure channel on {port.name}")
        return self.readers[-1]

    def close(self) -> None:
        for reader in self.readers:
            reader.stop()
        for proc in reversed(self.procs):
            procs.stop(proc, 5.0)
        shutil.rmtree(self.dir, ignore_errors=True)


def wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(port: int, method: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"{}")


def start_gateway(box: Sandbox, cp_end: Path) -> tuple[subprocess.Popen, int]:
    api_port, conf = free_port(), box.dir / "gateway.toml"
    conf.write_text(
        f'[site]\ntimezone = "Asia/Shanghai"\n[database]\nurl = "sqlite:///{box.dir}/gateway.db"\n'
        f'[mqtt]\nbroker = "embedded"\nlisten = "127.0.0.1:{free_port()}"\n'
        f'[api]\nlisten = "127.0.0.1:{api_port}"\nadmin_token = "{TOKEN}"\n'
        f'[[serial]]\nport = "{cp_end}"\nprotocol = "osdp"\nbaudrate = 115200\n'
    )
    proc = box.spawn(
        [sys.executable, "-m", "gateway", "run", "--config", conf],
        "gateway.log",
        cwd=box.dir,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited: {(box.dir / 'gateway.log').read_text()[-2000:]}")
        try:
            return api(api_port, "GET", "/healthz") is not None
        except OSError:
            return False

    wait(ready, 60, "the gateway's /healthz")
    return proc, api_port


def gateway_side(box: Sandbox) -> tuple[Path, str, subprocess.Popen]:
    cp_end, pd_end = box.pty_pair("gw")
    proc, port = start_gateway(box, cp_end)
    device = api(
        port,
        "POST",
        "/api/v1/devices",
        {
            "id": "reader-front",
            "kind": "access",
            "protocol": "osdp",
            "config": {"line": str(cp_end), "address": 1, "door": "front", "strike_ms": STRIKE_MS},
        },
    )
    api(
        port,
        "POST",
        "/api/v1/people",
        {"id": "E1", "name": "Holder", "cards": [f"{FC}:{CN}"], "access": {"doors": ["front"], "schedule": "always"}},
    )
    procs.stop(proc)  # the line takes the readers registered when it starts
    box.procs.remove(proc)
    proc, _ = start_gateway(box, cp_end)
    return pd_end, device["credentials"]["scbk"], proc


def baseline_side(box: Sandbox) -> tuple[Path, str]:
    cp_end, pd_end = box.pty_pair("bare")
    key = secrets.token_hex(16)
    box.spawn(
        [sys.executable, Path(__file__).resolve(), "--bare-cp", cp_end, key],
        "bare-cp.log",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return pd_end, key


def run_reads(reader: SimulatedReader, n: int, timeout: float, rng: random.Random) -> tuple[list, list, int]:
    """(card -> strike latencies, card reply on the wire -> strike turnarounds, timeouts), in ms."""
    latencies, turnarounds, timeouts = [], [], 0
    for _ in range(n):
        reader.clear()
        t0 = time.monotonic()
        reader.present_h10301(FC, CN)
        queued = time.monotonic()  # from here, the reader's next reply (to the next poll) carries the card
        got = reader.wait_for("output", lambda c: c.get("control_code") == 5, timeout)
        if got is None:
            timeouts += 1
        else:
            latencies.append((got.monotonic - t0) * 1000)
            replied = next((t for t in reader.writes[-50:] if t >= queued), None)
            if replied is not None and replied <= got.monotonic:
                turnarounds.append((got.monotonic - replied) * 1000)
        time.sleep(rng.uniform(0.05, 0.10))
        del reader.writes[:-50]
    return latencies, turnarounds, timeouts


def pct(sorted_ms: list[float], p: float) -> float:
    return sorted_ms[max(0, math.ceil(p / 100 * len(sorted_ms)) - 1)] if sorted_ms else float("nan")


def log_problems(path: Path, offset: int = 0) -> list[str]:
    """Warning/error lines of a child's log from byte `offset` on."""
    with open(path, "rb") as f:
        f.seek(offset)
        lines = f.read().decode(errors="replace").splitlines()
    return [ln for ln in lines if " WARNING " in ln or " ERROR " in ln or "Traceback" in ln]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", type=int, default=1000, help="measured reads per side")
    ap.add_argument("--blocks", type=int, default=4, help="blocks per side, alternating ABBA")
    ap.add_argument("--warmup", type=int, default=20, help="uncounted reads per side first")
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the strike command")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bare-cp", nargs=2, metavar=("PORT", "KEY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_cp:
        bare_cp(*args.bare_cp)
        return 0
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a SIGTERM cleans up like Ctrl-C
    rng, box = random.Random(args.seed), Sandbox()
    try:
        print("setting up: baseline control panel, gateway (register reader and person, restart) ...", flush=True)
        bare_end, bare_key = baseline_side(box)
        gw_end, gw_key, gw_proc = gateway_side(box)
        sides = {"baseline": box.reader(bare_end, bare_key), "gateway": box.reader(gw_end, gw_key)}
        logs = {"gateway": box.dir / "gateway.log", "baseline": box.dir / "bare-cp.log"}
        offsets = {name: path.stat().st_size for name, path in logs.items()}  # setup noise is not reported
        results = {name: ([], [], 0) for name in sides}
        for name, reader in sides.items():
            warm_timeouts = run_reads(reader, args.warmup, args.timeout, rng)[2]
            print(f"warm-up {name}: {args.warmup} reads, {warm_timeouts} timed out", flush=True)
        sizes = [args.reads // args.blocks + (k < args.reads % args.blocks) for k in range(args.blocks)]
        for k, size in enumerate(sizes):
            for name in ("baseline", "gateway") if k % 2 == 0 else ("gateway", "baseline"):
                block = run_reads(sides[name], size, args.timeout, rng)
                results[name] = tuple(a + b for a, b in zip(results[name], block))
                print(
                    f"block {k + 1}/{len(sizes)} {name:8s}: {size} reads, p50 {pct(sorted(block[0]), 50):.1f} ms,"
                    f" {block[2]} timed out",
                    flush=True,
                )
        gw_exit = procs.stop(gw_proc)  # SIGTERM: the store writer commits what is queued
        with sqlite3.connect(box.dir / "gateway.db") as db:
            recorded = dict(db.execute("SELECT decision, count(*) FROM access_event GROUP BY decision").fetchall())
        print(
            f"\nSecure Channel on, socat pty pairs at 115200 baud, {args.reads} reads per side in {args.blocks}"
            f" ABBA blocks (+{args.warmup} warm-up each, not counted)"
        )
        print("baseline: bare OsdpLine in its own process, grant() on every card read (no decision, no database)")
        print(
            "gateway:  python -m gateway run: OsdpLine -> credential_of -> AccessControl.read -> grant; record -> SQLite"
        )
        p99, head = {}, f"{'':10s}{'reads':>6s}{'timeouts':>9s}{'p50':>8s}{'p90':>8s}{'p99':>8s}{'max':>8s}{'mean':>8s}"
        for title, col in (
            ("card submitted at the reader -> strike output command at the reader (ms)", 0),
            ("turnaround: the reader's reply carrying the card -> strike command (ms)", 1),
        ):
            print(f"\n{title}\n{head}")
            for name in sides:
                lat, to = sorted(results[name][col]), results[name][2]
                p99[name, col] = pct(lat, 99)
                stats = (
                    pct(lat, 50),
                    pct(lat, 90),
                    p99[name, col],
                    max(lat, default=math.nan),
                    statistics.fmean(lat) if lat else math.nan,
                )
                print(f"{name:10s}{len(lat) + (to if col == 0 else 0):6d}{to:9d}" + "".join(f"{v:8.1f}" for v in stats))
        diff = p99["gateway", 0] - p99["baseline", 0]
        print(
            f"\np99 gateway - baseline: {diff:+.1f} ms (goal <= {GOAL_MS:.0f} ms): {'MET' if diff <= GOAL_MS else 'NOT MET'}"
            f"   (turnaround p99 difference: {p99['gateway', 1] - p99['baseline', 1]:+.1f} ms)"
        )
        total = args.reads + args.warmup
        print(
            f"recorded by the gateway: {recorded} (expected: {{'granted': {total}}}); its exit code on SIGTERM: {gw_exit}"
        )
        for name, path in logs.items():
            problems = log_problems(path, offsets[name])
            print(
                f"{name} log during the reads: {len(problems)} warning/error lines"
                + "".join(f"\n    {p[:200]}" for p in problems[:5])
            )
        return 0 if sum(r[2] for r in results.values()) == 0 and recorded == {"granted": total} and gw_exit == 0 else 1
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        box.close()


if __name__ == "__main__":
    raise SystemExit(main())
