"""OSDP control panel over real pty pairs (socat), with libosdp's own PeripheralDevice as the reader.

Secure Channel with the right key, card and keypad events, grant/deny on the
reader, a wrong key refused, install mode, the line pulled and replugged, a
reader that disappears for longer than libosdp's probing, and two readers on
one line (multidrop). Waits have deadlines; nothing asserts on wall-clock time.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import osdp
import pytest

from firmware_stubs.osdp_reader import ReaderBus, SimulatedReader, h10301
from gateway.core.reader_events import CardRead, KeyPress
from gateway.transports.osdp_cp import OsdpLine
from gateway.transports.osdp_dispatch import reader_event
from tests.conftest import wait_for

KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
KEY2 = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
WRONG = bytes.fromhex("ffeeddccbbaa99887766554433221100")
H10301_FC10_CN1093 = b"\x05\x02\x22\xc0"


class SocatPair:
    """Two linked ptys; stopping socat is pulling the cable, for both ends."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("socat") is None:
            pytest.fail("socat is not installed (apt-get install socat); the OSDP tests need it")
        self.gateway_end = str(workdir / "ttyOSDP-CP")
        self.reader_end = str(workdir / "ttyOSDP-PD")
        self.proc: subprocess.Popen[bytes] | None = None
        self.plug()

    def plug(self) -> None:
        self.proc = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.gateway_end}", f"pty,raw,echo=0,link={self.reader_end}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: Path(self.gateway_end).exists() and Path(self.reader_end).exists(), 5, what="the pty pair")

    def unplug(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(5)
        wait_for(lambda: not Path(self.gateway_end).exists(), 5, what="the pty to go away")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


class Collected:
    """What on_event / on_status delivered, with arrival times, waitable."""

    def __init__(self) -> None:
        self.items: list[tuple[float, int, object, str]] = []
        self.cond = threading.Condition()

    def __call__(self, address: int, payload: object) -> None:
        with self.cond:
            self.items.append((time.monotonic(), address, payload, threading.current_thread().name))
            self.cond.notify_all()

    def wait(self, predicate, timeout: float = 10.0) -> tuple[float, int, Any, str]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for item in self.items:
                    if predicate(item[1], item[2]):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout}s; got {[i[1:3] for i in self.items]}")
                self.cond.wait(left)


def is_card(data: bytes, bits: int, address: int | None = None):
    def check(addr: int, ev: object) -> bool:
        return isinstance(ev, CardRead) and ev.data == data and ev.bits == bits and (address is None or addr == address)

    return check


@pytest.fixture
def pty(tmp_path):
    pair = SocatPair(tmp_path)
    yield pair
    pair.close()


@pytest.fixture
def started():
    """Stops every line and reader a test started, lines first."""
    things: list = []
    yield things
    for thing in sorted(things, key=lambda t: not isinstance(t, OsdpLine)):
        thing.stop()


def test_h10301_encoding():
    assert h10301(10, 1093) == (H10301_FC10_CN1093, 26)


def test_secure_channel_comes_up(pty, started, caplog):
    caplog.set_level(logging.INFO, logger="gateway.transports.osdp_cp")
    statuses = Collected()
    reader = SimulatedReader(pty.reader_end, 1, KEY).start()
    line = OsdpLine(pty.gateway_end, {1: KEY}, on_status=statuses).start()
    started += [reader, line]

    wait_for(lambda: line.secure(1), 10, what="secure channel")
    assert line.online(1)
    wait_for(lambda: reader.secure, 5, what="the reader's side of the secure channel")
    status = line.status(1)
    assert status["reason"] is None and status["sc_failures"] == 0 and not status["installing"]
    statuses.wait(lambda a, s: a == 1 and s.online and s.secure)
    # libosdp's C logging arrives in Python logging, attributed to this line and reader
    wait_for(
        lambda: any(
            r.name.endswith(".libosdp") and "reader 1" in r.getMessage() and "With SC" in r.getMessage()
            for r in caplog.records
        ),
        5,
        what="libosdp's log line in Python logging",
    )
    stats = line.stats()
    assert stats["connected"] and stats["opens"] == 1


def test_card_and_keypad_events(pty, started):
    events = Collected()
    reader = SimulatedReader(pty.reader_end, 1, KEY).start()
    line = OsdpLine(pty.gateway_end, {1: KEY}, on_event=events).start()
    started += [reader, line]
    wait_for(lambda: line.secure(1), 10, what="secure channel")

    sent = time.monotonic()
    reader.present_h10301(10, 1093)
    arrived, address, event, thread = events.wait(is_card(H10301_FC10_CN1093, 26))
    assert address == 1
    assert event.format == "wiegand" and event.reader_no == 0
    assert not thread.startswith("osdp /")  # delivered off the refresh thread
    print(f"card-to-event latency {1000 * (arrived - sent):.1f} ms")

    reader.present_card(b"\xab\xcd\xef\x12\x30", 37)
    events.wait(is_card(b"\xab\xcd\xef\x12\x30", 37, address=1))

    reader.enter_keys("1234#")
    _, address, event, _ = events.wait(lambda a, e: isinstance(e, KeyPress))
    assert address == 1 and event.keys == "1234#"
    assert line.status(1)["events"] == 3


def test_grant_and_deny_reach_the_reader(pty, started):
    reader = SimulatedReader(pty.reader_end, 1, KEY).start()
    line = OsdpLine(pty.gateway_end, {1: KEY}).start()
    started += [reader, line]
    wait_for(lambda: line.secure(1), 10, what="secure channel")

    assert line.grant(1, 3000).result(10) is True
    out = reader.wait_for("output", lambda c: c["control_code"] == 5)
    assert out is not None
    assert out.command["output_no"] == 0 and out.command["timer_count"] == 30
    assert reader.strike_active(0)
    assert reader.wait_for("led", lambda c: c["on_color"] == osdp.CommandLEDColor.Green) is not None
    beep = reader.wait_for("buzzer")
    assert beep is not None and beep.command["rep_count"] >= 1

    reader.clear()
    assert line.deny(1).result(10) is True
    assert reader.wait_for("led", lambda c: c["on_color"] == osdp.CommandLEDColor.Red) is not None
    long_beep = reader.wait_for("buzzer")
    assert long_beep is not None and long_beep.command["on_count"] >= 10
    assert reader.outputs() == []  # a deny never touches the strike
    wait_for(lambda: line.status(1)["commands_ok"] >= 2, 5, what="acknowledged commands counted")


def test_callback_may_grant_without_deadlock(pty, started):
    """on_event runs outside libosdp's lock, so it can answer a card with a grant at once."""
    reader = SimulatedReader(pty.reader_end, 1, KEY).start()
    grants = []
    line = OsdpLine(pty.gateway_end, {1: KEY}, on_event=lambda a, e: grants.append(line.grant(a, 500)))
    line.start()
    started += [reader, line]
    wait_for(lambda: line.secure(1), 10, what="secure channel")

    reader.present_h10301(10, 1093)
    assert reader.wait_for("output", timeout=10) is not None
    wait_for(lambda: grants and grants[0].done(), 10, what="the grant to complete")
    assert grants[0].result() is True


def test_events_on_an_asyncio_loop(pty, started):
    reader = SimulatedReader(pty.reader_end, 1, KEY).start()
    started.append(reader)

    async def scenario() -> tuple[int, dict, bool]:
        loop = asyncio.get_running_loop()
        got: asyncio.Future = loop.create_future()

        def on_event(address: int, event: object) -> None:
            on_loop = asyncio.get_running_loop() is loop  # raises if not on a loop thread
            if not got.done():
                got.set_result((address, event, on_loop))

        line = OsdpLine(pty.gateway_end, {1: KEY}, on_event=on_event, loop=loop).start()
        try:
            deadline = loop.time() + 10
            while not line.secure(1) and loop.time() < deadline:
                await asyncio.sleep(0.02)
            reader.present_h10301(10, 1093)
            return await asyncio.wait_for(got, 10)
        finally:
            await loop.run_in_executor(None, line.stop)

    address, event, on_loop = asyncio.run(scenario())
    assert address == 1 and event.data == H10301_FC10_CN1093 and on_loop


def test_wrong_key_stays_offline_and_is_reported(pty, started):
    events = Collected()
    reader = SimulatedReader(pty.reader_end, 1, WRONG).start()
    line = OsdpLine(pty.gateway_end, {1: KEY}, on_event=events).start()
    started += [reader, line]

    wait_for(lambda: line.status(1)["sc_failures"] >= 1, 10, what="the refused secure channel")
    # watch a while (libosdp's own retries and ours): never online, never secure
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert not line.online(1) and not line.secure(1) and not reader.secure
        time.sleep(0.02)
    status = line.status(1)
    assert "secure channel refused" in status["reason"]
    assert status["last_error"]

    reader.present_h10301(10, 1093)
    assert line.grant(1, 1000).result(10) is False  # nothing is sent to a reader we cannot trust
    time.sleep(0.5)
    assert events.items == [] and reader.outputs() == []


def test_install_mode_gives_a_new_reader_its_key(pty, started, tmp_path):
    reader = SimulatedReader(pty.reader_end, 1, None).start()  # factory-fresh: no key
    line = OsdpLine(pty.gateway_end, {1: KEY}).start()
    started += [reader, line]

    # without install mode a keyless reader is refused like any wrong key
    wait_for(lambda: line.status(1)["sc_failures"] >= 1, 10, what="the keyless reader to be refused")
    assert not line.secure(1)

    line.install(1)
    wait_for(lambda: line.secure(1), 15, what="secure channel after install")
    assert reader.scbk == KEY
    keyset = reader.wait_for("keyset", timeout=1)
    assert keyset is not None and keyset.command["data"] == KEY
    wait_for(lambda: not line.installing(1), 5, what="the install window to close")

    # the reader keeps its key: a fresh control panel, without install mode, is secure with it
    line.stop()
    line2 = OsdpLine(pty.gateway_end, {1: KEY}).start()
    started.append(line2)
    wait_for(lambda: line2.secure(1), 15, what="secure channel on the installed key")
    assert not line2.installing(1)


def test_install_window_open_from_the_start(pty, started):
    statuses = Collected()
    reader = SimulatedReader(pty.reader_end, 7, None).start()
    line = OsdpLine(pty.gateway_end, {7: KEY2}, install=[7], on_status=statuses).start()
    started += [reader, line]

    wait_for(lambda: line.secure(7), 15, what="secure channel after install")
    assert reader.scbk == KEY2
    statuses.wait(lambda a, s: a == 7 and s.installing)
    statuses.wait(lambda a, s: a == 7 and s.secure and not s.installing)


def test_line_recovers_after_unplug(pty, started):
    events = Collected()
    statuses = Collected()
    reader = SimulatedReader(pty.reader_end, 1, KEY).start()
    line = OsdpLine(pty.gateway_end, {1: KEY}, on_event=events, on_status=statuses).start()
    started += [reader, line]
    wait_for(lambda: line.secure(1), 10, what="secure channel")
    reader.present_h10301(10, 1093)
    events.wait(is_card(H10301_FC10_CN1093, 26))

    pty.unplug()
    wait_for(lambda: not line.connected.is_set(), 10, what="the line to notice the unplug")
    assert not line.online(1) and not line.secure(1)
    assert line.status(1)["reason"].startswith("line down")
    statuses.wait(lambda a, s: a == 1 and not s.online)
    assert line.grant(1, 1000).result(10) is False

    pty.plug()
    wait_for(lambda: line.secure(1), 30, what="secure channel after replug")
    assert line.stats()["opens"] >= 2 and reader.bus.opens >= 2
    reader.present_h10301(20, 2002)
    events.wait(is_card(*h10301(20, 2002), address=1), timeout=10)
    assert line.grant(1, 1000).result(10) is True


def test_reader_gone_past_probing_is_retried(pty, started):
    """libosdp takes a reader that stops answering offline for 300 s; the line retries it sooner."""
    reader = SimulatedReader(pty.reader_end, 1, KEY).start()
    line = OsdpLine(pty.gateway_end, {1: KEY}).start()
    started += [reader, line]
    wait_for(lambda: line.secure(1), 10, what="secure channel")

    reader.stop()  # power cut: the line stays, nobody answers
    wait_for(lambda: not line.online(1), 30, what="libosdp to give up on the reader")
    assert line.connected.is_set()

    reader2 = SimulatedReader(pty.reader_end, 1, KEY).start()  # powered back on
    started.append(reader2)
    wait_for(lambda: line.secure(1), 30, what="the reader back without a restart")
    reader2.present_h10301(10, 1093)
    assert line.grant(1, 1000).result(10) is True


def test_two_readers_on_one_line(pty, started):
    events = Collected()
    bus = ReaderBus(pty.reader_end)
    r1 = SimulatedReader(bus, 1, KEY)
    r2 = SimulatedReader(bus, 2, KEY2)
    bus.start()
    line = OsdpLine(pty.gateway_end, {1: KEY, 2: KEY2}, on_event=events).start()
    started += [bus, line]

    wait_for(lambda: line.secure(1) and line.secure(2), 15, what="both readers secure on one line")

    r2.present_h10301(20, 2002)
    events.wait(is_card(*h10301(20, 2002), address=2))
    r1.present_h10301(10, 1093)
    events.wait(is_card(H10301_FC10_CN1093, 26, address=1))

    assert line.grant(2, 2000).result(10) is True
    out = r2.wait_for("output")
    assert out is not None and out.command["timer_count"] == 20
    assert line.deny(1).result(10) is True
    assert r1.wait_for("led", lambda c: c["on_color"] == osdp.CommandLEDColor.Red) is not None
    assert r1.outputs() == []  # the grant went to reader 2 only
    assert not r2.leds() or all(c.command["on_color"] != osdp.CommandLEDColor.Red for c in r2.leds())


def test_libosdp_events_become_neutral_reader_events():
    data, bits = h10301(10, 1093)
    card = {
        "event": osdp.Event.CardRead,
        "reader_no": 0,
        "format": osdp.CardFormat.Wiegand,
        "length": bits,
        "data": data,
    }
    assert reader_event(card) == CardRead(data, 26, "wiegand", 0)
    ascii_card = {**card, "format": osdp.CardFormat.ASCII, "reader_no": 1}
    assert reader_event(ascii_card) == CardRead(data, 26, "ascii", 1)
    assert reader_event({"event": osdp.Event.KeyPress, "reader_no": 0, "data": b"1234#"}) == KeyPress("1234#")
    assert reader_event({"event": osdp.Event.Notification, "type": 0, "arg0": 0, "arg1": 0}) is None
