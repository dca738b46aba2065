"""Nothing acknowledged is lost and nothing is stored twice: kill -9, broker restarts."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

from tests.conftest import ROOT, wait_for

STREAM = 20_000


def punch_rows(gw) -> tuple[int, int]:
    """(rows, distinct seqs) in the gateway's database, read directly."""
    with sqlite3.connect(gw.workdir / "gateway.db") as db:
        return db.execute("SELECT count(*), count(DISTINCT seq) FROM punch").fetchone()


def start_terminal(port: int, device: str, count: int, credentials: dict | None = None) -> subprocess.Popen[str]:
    """A simulated terminal in its own process: keeps its session and resends what was not acknowledged."""
    login = (
        ["--username", credentials["mqtt_username"], "--password", credentials["mqtt_password"]] if credentials else []
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firmware_stubs.mqtt_terminal",
            "--port",
            str(port),
            "--device",
            device,
            "--count",
            str(count),
            "--wait",
            "180",
            *login,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stored(gw) -> float:
    return gw.metric("gateway_records_stored_total", kind="punch")


def test_kill_9_mid_stream_with_mosquitto_loses_nothing_and_stores_nothing_twice(mosquitto, gateway):
    gateway.register("att-01")
    terminal = start_terminal(mosquitto.port, "att-01", STREAM)
    wait_for(lambda: stored(gateway) >= 2_000, 60, what="the stream to be under way")
    gateway.kill9()
    rows_at_kill, _ = punch_rows(gateway)
    assert rows_at_kill < STREAM, "the kill came too late to test anything"
    gateway.start()
    out, _ = terminal.communicate(timeout=180)
    assert terminal.returncode == 0, out
    wait_for(lambda: punch_rows(gateway)[0] >= STREAM, 60, 0.2, what="every punch")
    time.sleep(0.5)  # anything still redelivered would show up as an extra row
    assert punch_rows(gateway) == (STREAM, STREAM)


def test_kill_9_mid_stream_with_the_embedded_broker_loses_nothing(gateway_factory):
    gw = gateway_factory("embedded").start()
    credentials = gw.register("att-01")["credentials"]
    terminal = start_terminal(gw.mqtt_port, "att-01", STREAM, credentials)
    wait_for(lambda: stored(gw) >= 1_000, 60, what="the stream to be under way")
    gw.kill9()
    assert punch_rows(gw)[0] < STREAM, "the kill came too late to test anything"
    gw.start()  # same port: the terminal reconnects and resends what had no PUBACK
    out, _ = terminal.communicate(timeout=180)
    assert terminal.returncode == 0, out
    wait_for(lambda: punch_rows(gw)[0] >= STREAM, 60, 0.2, what="every punch")
    assert punch_rows(gw) == (STREAM, STREAM)


def test_broker_restart_mid_stream_the_gateway_reconnects_and_nothing_is_lost(mosquitto, gateway):
    gateway.register("att-01")
    terminal = start_terminal(mosquitto.port, "att-01", STREAM)
    wait_for(lambda: stored(gateway) >= 2_000, 60, what="the stream to be under way")
    mosquitto.stop()
    time.sleep(1.0)
    mosquitto.start()
    out, _ = terminal.communicate(timeout=180)
    assert terminal.returncode == 0, out
    wait_for(lambda: punch_rows(gateway)[0] >= STREAM, 60, 0.2, what="every punch")
    assert punch_rows(gateway) == (STREAM, STREAM)
    assert gateway.metric("gateway_mqtt_reconnects_total") >= 1
    assert gateway.http.get("/healthz").json()["mqtt_connected"] is True


def test_sigterm_stops_cleanly_and_quickly(mosquitto, gateway):
    gateway.register("att-01")
    start = time.monotonic()
    assert gateway.terminate() == 0
    # Generous bound: a stuck shutdown hangs for the full 10 s wait and fails the test.
    assert time.monotonic() - start < 8
