"""Serial attendance lines over real pty pairs (socat): chunked reads, reopen after an unplug."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import wait_for


class PtyPair:
    """Two linked ptys made by socat; stopping socat is pulling the cable."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("socat") is None:
            pytest.fail("socat is not installed (apt-get install socat); the serial tests need it")
        self.gateway_end = workdir / "ttyGW"
        self.device_end = workdir / "ttyDEV"
        self.proc: subprocess.Popen[bytes] | None = None
        self.plug()

    def plug(self) -> None:
        self.proc = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.gateway_end}", f"pty,raw,echo=0,link={self.device_end}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: self.gateway_end.exists() and self.device_end.exists(), 5, what="the pty pair")

    def unplug(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(5)
        wait_for(lambda: not self.gateway_end.exists(), 5, what="the pty to go away")

    def write(self, data: bytes) -> None:
        fd = os.open(self.device_end, os.O_WRONLY | os.O_NOCTTY)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


@pytest.fixture
def pty(tmp_path):
    pair = PtyPair(tmp_path)
    yield pair
    if pair.proc and pair.proc.poll() is None:
        pair.proc.terminate()


def serial_gateway(gateway_factory, pty, protocol: str):
    extra = (
        f'[[serial]]\nport = "{pty.gateway_end}"\nprotocol = "{protocol}"\nbaudrate = 115200\ndevice_id = "line-01"\n'
    )
    gw = gateway_factory("embedded", extra=extra).start()
    config = {} if protocol == "attlog" else {"line": str(pty.gateway_end)}  # a line protocol names its line
    gw.register("line-01", protocol=protocol, config=config)
    return gw


def line(pin: int, second: int) -> bytes:
    return f"{pin}\t2026-11-27 08:{second // 60:02d}:{second % 60:02d}\t0\t1\t0\t0\n".encode()


def pins(gw) -> list[str]:
    return sorted((p["user"] for p in gw.all_items("/api/v1/attendance/punches")), key=int)


def test_attlog_lines_survive_an_unplug_without_loss_or_doubling(gateway_factory, pty):
    gw = serial_gateway(gateway_factory, pty, "attlog")
    time.sleep(0.5)  # the gateway opens the port
    for i in range(100):
        pty.write(line(i, i))
    wait_for(lambda: len(pins(gw)) == 100, 15, 0.2, what="the first 100 lines")
    pty.unplug()
    time.sleep(1.0)
    pty.plug()
    # the gateway reopens by itself; lines written after that arrive
    delivered = wait_for(lambda: _try_write_until_stored(gw, pty), 30, 0.5, what="the gateway to reopen the port")
    assert delivered
    for i in range(101, 200):
        pty.write(line(i, i))
    wait_for(lambda: len(pins(gw)) == 200, 15, 0.2, what="all 200 lines")
    assert pins(gw) == [str(i) for i in range(200)]


def _try_write_until_stored(gw, pty) -> bool:
    if "100" not in pins(gw):
        pty.write(line(100, 100))  # a resend: stored once whatever happens
        time.sleep(0.3)
    return "100" in pins(gw)


def test_a_line_cut_by_the_unplug_is_dead_lettered_as_truncated(gateway_factory, pty):
    gw = serial_gateway(gateway_factory, pty, "attlog")
    time.sleep(0.5)
    pty.write(line(1, 1) + b"2\t2026-11-27 08:")
    wait_for(lambda: pins(gw) == ["1"], 10, 0.2, what="the complete line")
    pty.unplug()
    dead = wait_for(lambda: gw.all_items("/api/v1/deadletters", reason="truncated"), 10, 0.2, what="dead letter")
    assert dead[0]["device_id"] is None or dead[0]["device_id"] == "line-01"
    assert dead[0]["source"] == "serial"


def test_card_lines_become_card_punches(gateway_factory, pty):
    gw = serial_gateway(gateway_factory, pty, "card-lines")
    time.sleep(0.5)
    pty.write(b"1093\n0x445\t2026-11-27 09:00:00\nnot-a-card\n")
    punches = wait_for(
        lambda: len(p := gw.all_items("/api/v1/attendance/punches")) == 2 and p, 10, 0.2, what="two card punches"
    )
    assert sorted(p["user"] for p in punches) == ["1093", "1093"]
    assert {p["verify"] for p in punches} == {"card"}
    assert any(p["time"] == "2026-11-27T01:00:00Z" for p in punches)
    dead = wait_for(lambda: gw.all_items("/api/v1/deadletters"), 10, 0.2, what="dead letter")
    assert [d["reason"] for d in dead] == ["bad_value"]
