"""OSDP control panel for one RS-485 line, on libosdp (`pip install libosdp`, `import osdp`).

One `OsdpLine` owns one serial port (a pyserial port URL) carrying one or
more readers (OSDP addresses), each with its own 16-byte Secure Channel base
key. The OSDP protocol itself (framing, Secure Channel, state machines) is
libosdp's; this module runs the line around it:

- its own refresh thread: refresh() every few milliseconds instead of the
  stock 20 ms loop, so each reader is polled as fast as libosdp allows
  (about 17 polls/s per reader, its 50 ms poll interval);
- the refresh thread is the only one that touches the libosdp context.
  Commands from other threads go through a queue it drains; events are
  collected from libosdp's queue after refresh() returns and handed, as
  neutral reader events, to `on_event(address, event)` on a dispatcher thread
  (or an asyncio loop), so callbacks run outside libosdp's lock and may call
  `grant()` themselves;
- recovery: the port reopens by itself after it disappears (adapter
  unplugged, pty closed) and a new control panel is built.

Alongside: osdp_readers follows each reader's link (Secure Channel
enforcement, install mode, retries), osdp_dispatch delivers its events in
neutral terms off the refresh thread, osdp_submissions makes a door command
run promptly or not at all, osdp_support holds the non-blocking serial
channel and routes libosdp's C logging into Python logging
(`gateway.transports.osdp_cp.libosdp`).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from typing import Self

import osdp
import serial

from gateway.core.backoff import Backoff
from gateway.devices import osdp_commands as door_commands
from gateway.transports.osdp_dispatch import Dispatcher, EventCallback, StatusCallback, reader_event, reader_link
from gateway.transports.osdp_readers import LineReaders
from gateway.transports.osdp_submissions import Submission
from gateway.transports.osdp_support import LibosdpLog, SerialChannel, default_osdp_log_level, liblog

log = logging.getLogger(__name__)


class OsdpLine:
    """The control panel for the readers on one serial line.

    readers: {address: scbk} with the 16-byte key (bytes or 32 hex characters)
    each reader has or is to receive in install mode.
    on_event(address, event): a card read or a keypress, as a neutral event
    (gateway.core.reader_events), called on this line's dispatcher thread, or
    on `loop` if one is given (osdp_dispatch).
    on_status(address, link): a `ReaderLink`, when a reader goes online/offline/secure.
    install: addresses whose install window opens at start (see install()).
    """

    def __init__(
        self,
        port: str,
        readers: Mapping[int, bytes | str],
        *,
        baudrate: int = 115200,
        on_event: EventCallback | None = None,
        on_status: StatusCallback | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        install: Iterable[int] = (),
        install_window: float = 300.0,
        channel_id: int = 1,
        poll_interval: float = 0.003,
        command_timeout: float = 3.0,
        retry_max: float = 30.0,
        osdp_log_level: int | None = None,
    ) -> None:
        if not readers:
            raise ValueError("an OSDP line needs at least one reader")
        for address in readers:
            if not 0 <= int(address) <= 126:
                raise ValueError(f"OSDP address {address} is outside 0-126")
        if channel_id == 0:
            raise ValueError("channel_id must be non-zero (libosdp's multidrop bus id)")
        self.port = port
        self.baudrate = baudrate
        self.on_event = on_event
        self.on_status = on_status
        self.loop = loop
        self.install_window = install_window
        self.channel_id = channel_id
        self.poll_interval = poll_interval
        self.command_timeout = command_timeout
        self.osdp_log_level = default_osdp_log_level(liblog) if osdp_log_level is None else osdp_log_level
        self._state_lock = threading.Lock()
        self._readers = LineReaders(
            port,
            readers,
            retry_max=retry_max,
            state_lock=self._state_lock,
            on_event=self._reader_event,
            on_change=self._reader_changed,
        )
        self.addresses = self._readers.addresses

        self.connected = threading.Event()
        self.opens = 0
        self.last_line_error: str | None = None
        self.refreshes = 0
        self.tx_packets = 0
        self._tx_before = 0
        self._has_completion = False
        self._rate = {"refreshes_per_s": 0.0, "tx_packets_per_s": 0.0, "polls_per_s_per_reader": 0.0}
        self._ops: queue.SimpleQueue = queue.SimpleQueue()
        self._completions: list[tuple[int, dict, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dispatcher = Dispatcher(port, loop)
        self._log = LibosdpLog(self._on_libosdp_log, tag=f"osdp-cp {port}")
        for address in install:
            self._readers.open_install(address, time.monotonic(), install_window)

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("OSDP line already started")
        self._stop.clear()
        self._dispatcher.start()
        self._thread = threading.Thread(target=self._run, name=f"osdp {self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._dispatcher.stop(timeout)
        self._fail_queued_ops("line stopped")
        self.last_line_error = "line stopped"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- status -------------------------------------------------------------

    def online(self, address: int) -> bool:
        return self._readers[address].online

    def secure(self, address: int) -> bool:
        """Online with a Secure Channel on this line's key (never the default key)."""
        return self._readers[address].secure

    def installing(self, address: int) -> bool:
        return self._readers[address].installing

    def status(self, address: int) -> dict:
        r = self._readers[address]
        with self._state_lock:
            line_down = None if self.connected.is_set() else (self.last_line_error or "not open yet")
            return r.status(self.port, line_down)

    def statuses(self) -> dict[int, dict]:
        return {a: self.status(a) for a in self.addresses}

    def stats(self) -> dict:
        """Counters and rates (over the last second) of the refresh loop and the wire."""
        return {
            "port": self.port,
            "connected": self.connected.is_set(),
            "opens": self.opens,
            "refreshes": self.refreshes,
            "tx_packets": self.tx_packets,
            **self._rate,
        }

    def wait_secure(self, address: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.secure(address):
                return True
            time.sleep(0.01)
        return self.secure(address)

    # -- commands (any thread, including on_event) ---------------------------

    def grant(self, address: int, strike_ms: int = 3000, *, output_no: int = 0, reader_no: int = 0) -> Future[bool]:
        """Pulse the door strike output for strike_ms (100 ms steps), green LED, short beep.

        The Future is True once the reader acknowledged the strike pulse (LED
        and beep are feedback: their failures are logged, not fatal).
        """
        commands = door_commands.grant(strike_ms, output_no, reader_no)
        return self._submit(address, commands, f"grant ({strike_ms} ms)")

    def deny(self, address: int, *, reader_no: int = 0, show_ms: int = 2000) -> Future[bool]:
        """Red LED for show_ms and a long beep; True once the reader acknowledged the LED."""
        return self._submit(address, door_commands.deny(show_ms, reader_no), "deny")

    def submit(self, address: int, commands: Iterable[dict]) -> Future[bool]:
        """Raw libosdp command dicts; True once every one was acknowledged."""
        return self._submit(address, [(dict(c), True) for c in commands], "commands")

    def _submit(self, address: int, commands: list[tuple[dict, bool]], what: str) -> Future[bool]:
        self._readers[address]  # KeyError for an address not on this line
        submission = Submission(int(address), commands, what)
        if self._stop.is_set() or self._thread is None:
            submission.resolve(False, "line not running")
        else:
            self._ops.put(("submit", submission))
        return submission.future

    def install(self, address: int, window: float | None = None) -> None:
        """Open the install window for one reader: if it has no key yet, it may take this line's
        key once, over the default key (SCBK-D). The window closes (Secure Channel enforced
        again) as soon as the reader is secure on the line's key, or after `window` seconds.
        Use it only while the reader is being installed: SCBK-D is public."""
        self._readers[address]
        self._ops.put(("install", int(address), self.install_window if window is None else window))

    def cancel_install(self, address: int) -> None:
        self._readers[address]
        self._ops.put(("cancel_install", int(address)))

    # -- refresh thread -----------------------------------------------------

    def _run(self) -> None:
        reopen = Backoff(initial=0.2, maximum=10.0)
        while not self._stop.is_set():
            try:
                port = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=0, write_timeout=0)
            except (serial.SerialException, OSError, ValueError) as exc:
                self.last_line_error = str(exc)
                log.debug("cannot open OSDP line %s: %s", self.port, exc)
                self._idle(reopen.next())
                continue
            reopen.reset()
            try:
                self._session(port)
            except Exception:
                log.exception("OSDP line %s failed; reopening", self.port)
            finally:
                self._tx_before = self.tx_packets
                try:
                    port.close()
                except (serial.SerialException, OSError) as exc:
                    log.debug("closing %s: %s", self.port, exc)
                self.connected.clear()
                self._readers.line_lost(stopping=self._stop.is_set())
            if not self._stop.is_set():
                self._idle(reopen.next())

    def _idle(self, seconds: float) -> None:
        """Wait while the line is down, still answering submissions (with a failure)."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._drain_ops(None, time.monotonic())
            self._stop.wait(min(0.05, max(0.0, deadline - time.monotonic())))

    def _make_cp(self, channel: SerialChannel) -> osdp.ControlPanel:
        infos = self._readers.pd_infos(channel)

        def factory() -> osdp.ControlPanel:
            return osdp.ControlPanel(
                infos, log_level=self.osdp_log_level, command_completion_handler=self._on_completion
            )

        cp = self._log.create(factory, self.osdp_log_level)
        cp.lock = threading.Lock()  # the wrapper's methods take it; only this thread calls them
        self._has_completion = hasattr(cp.ctx, "set_command_completion_callback")
        return cp

    def _session(self, port: serial.SerialBase) -> None:
        channel = SerialChannel(port, self.channel_id)
        self._completions.clear()
        cp = self._make_cp(channel)
        self.opens += 1
        self.last_line_error = None
        self.connected.set()
        log.info("OSDP line %s open (readers %s)", self.port, ", ".join(map(str, self.addresses)))
        now = time.monotonic()
        self._readers.line_opened(now)
        window_start, window_refreshes, window_tx = now, self.refreshes, 0
        while not self._stop.is_set():
            now = time.monotonic()
            self._drain_ops(cp, now)
            with cp.lock:
                cp.ctx.refresh()
            self.refreshes += 1
            if channel.error is not None:
                self.last_line_error = str(channel.error)
                log.warning("OSDP line %s lost (%s); reopening", self.port, channel.error)
                return
            self._after_refresh(cp, time.monotonic())
            self.tx_packets = self._tx_before + channel.tx_packets
            if now - window_start >= 1.0:
                self._update_rates(
                    now - window_start, self.refreshes - window_refreshes, channel.tx_packets - window_tx
                )
                window_start, window_refreshes, window_tx = now, self.refreshes, channel.tx_packets
            time.sleep(self.poll_interval)

    def _update_rates(self, dt: float, refreshes: int, tx: int) -> None:
        n_online = self._readers.online_count() or 1
        self._rate = {
            "refreshes_per_s": refreshes / dt,
            "tx_packets_per_s": tx / dt,
            "polls_per_s_per_reader": tx / dt / n_online,
        }

    def _drain_ops(self, cp: osdp.ControlPanel | None, now: float) -> None:
        while True:
            try:
                op = self._ops.get_nowait()
            except queue.Empty:
                return
            kind = op[0]
            if kind == "submit":
                self._do_submit(cp, op[1], now)
            elif kind == "install":
                self._readers.request_install(cp, op[1], now, op[2])
            elif kind == "cancel_install":
                self._readers.cancel_install(cp, op[1])

    def _fail_queued_ops(self, why: str) -> None:
        while True:
            try:
                op = self._ops.get_nowait()
            except queue.Empty:
                return
            if op[0] == "submit":
                op[1].resolve(False, why)

    def _do_submit(self, cp: osdp.ControlPanel | None, submission: Submission, now: float) -> None:
        r = self._readers[submission.address]
        if cp is None or not self.connected.is_set():
            submission.resolve(False, "line down")
            return
        if now - submission.created > self.command_timeout:
            submission.resolve(False, "too old to execute")
            return
        if not r.secure:
            submission.resolve(False, "reader not online with a secure channel")
            return
        r.commands.send(cp, r.address, submission, track_completion=self._has_completion)

    def _on_completion(self, address: int, command: dict, status: int) -> None:
        # Runs inside refresh(), under libosdp's lock: record only.
        self._completions.append((address, command, status))

    def _after_refresh(self, cp: osdp.ControlPanel, now: float) -> None:
        completions, self._completions = self._completions, []
        for address, command, status in completions:
            self._readers.complete(address, command, status)
        self._readers.update(cp, now, self.command_timeout)

    # -- events, handed over off the refresh thread --------------------------

    def _reader_event(self, address: int, event: dict) -> None:
        neutral = reader_event(event)
        if self.on_event is not None and neutral is not None:
            self._dispatcher.post(self.on_event, address, neutral)

    def _reader_changed(self, address: int) -> None:
        if self.on_status is not None:
            self._dispatcher.post(self.on_status, address, reader_link(self.status(address)))

    # -- libosdp log lines (called from C, on the refresh thread) ------------

    def _on_libosdp_log(self, name: str, level: int, msg: str) -> None:
        address = self._readers.note_libosdp_log(name, level, msg)
        where = f"reader {address}" if address is not None else "cp"
        liblog.log(level, "%s %s: %s", self.port, where, msg)
