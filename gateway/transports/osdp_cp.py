"""OSDP control panel for one RS-485 line, on libosdp (`pip install libosdp`, `import osdp`).

One `OsdpLine` owns one serial port (a pyserial port URL) carrying one or
more readers (OSDP addresses), each with its own 16-byte Secure Channel base
key. The OSDP protocol itself (framing, Secure Channel, state machines) is
libosdp's; this module is the plumbing around it:

- a pyserial-backed `osdp.Channel` whose read/write never block (they run
  inside libosdp's refresh, holding the GIL for every reader on the line);
- its own refresh thread: refresh() every few milliseconds instead of the
  stock 20 ms loop, so each reader is polled as fast as libosdp allows
  (about 17 polls/s per reader, its 50 ms poll interval);
- the refresh thread is the only one that touches the libosdp context.
  Commands from other threads go through a queue it drains; events are
  collected from libosdp's queue after refresh() returns and handed to
  `on_event(address, event)` on a dispatcher thread (or an asyncio loop), so
  callbacks run outside libosdp's lock and may call `grant()` themselves;
- Secure Channel is enforced (`LibFlag.EnforceSecure`); events from a reader
  without an active Secure Channel are dropped and counted;
- install mode, per reader and one-shot: `install(address)` lets a reader
  without a key take this line's key once over the default key (SCBK-D),
  then enforcement is switched back on;
- recovery: the port reopens by itself after it disappears (adapter
  unplugged, pty closed) and a new control panel is built; a reader that went
  offline is retried with backoff instead of libosdp's fixed 300 s wait;
- a door command is executed promptly or not at all: commands older than
  `command_timeout` are not sent, and unacknowledged ones are flushed from
  libosdp's queue so a strike never fires minutes late;
- libosdp's C logging (stderr by default) is routed into Python logging
  (`gateway.transports.osdp_cp.libosdp`), per line, which also tells a
  refused Secure Channel (wrong key) apart from a silent reader.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Self

import osdp
import serial

from gateway.backoff import Backoff
from gateway.devices import osdp_commands as door_commands
from gateway.transports.osdp_support import LibosdpLog, SerialChannel, default_osdp_log_level

log = logging.getLogger(__name__)
liblog = logging.getLogger(__name__ + ".libosdp")

EventCallback = Callable[[int, dict], Any]
StatusCallback = Callable[[int, dict], Any]


# --------------------------------------------------------------------------
# The line
# --------------------------------------------------------------------------


class _Ticket:
    """One submission (grant, deny, raw commands) and its Future."""

    def __init__(self, address: int, commands: list[tuple[dict, bool]], what: str) -> None:
        self.address = address
        self.commands = commands  # (command dict, required for success)
        self.what = what
        self.created = time.monotonic()
        self.future: Future[bool] = Future()
        self.required_left = sum(1 for _, required in commands if required)
        self.failed_optional: list[str] = []

    @property
    def done(self) -> bool:
        return self.future.done()

    def resolve(self, ok: bool, why: str = "") -> None:
        if self.future.done():
            return
        if not ok:
            log.warning("OSDP %s for reader %d failed: %s", self.what, self.address, why)
        self.future.set_result(ok)


@dataclass
class _Reader:
    address: int
    scbk: bytes
    online: bool = False
    secure: bool = False
    installing: bool = False
    install_deadline: float | None = None
    saw_scbkd: bool = False
    sc_failures: int = 0
    last_sc_failure: float | None = None
    last_error: str | None = None
    last_online: float | None = None
    since: float = field(default_factory=time.monotonic)
    events: int = 0
    dropped_insecure: int = 0
    commands_ok: int = 0
    commands_failed: int = 0
    retry: Backoff = field(default_factory=lambda: Backoff(initial=1.0, maximum=30.0))
    retry_at: float | None = None
    disabling: bool = False
    pending: deque = field(default_factory=deque)  # (command id, ticket, required)


def _key(value: bytes | str) -> bytes:
    key = bytes.fromhex(value) if isinstance(value, str) else bytes(value)
    if len(key) != 16:
        raise ValueError("an OSDP Secure Channel base key is 16 bytes (32 hex characters)")
    return key


class OsdpLine:
    """The control panel for the readers on one serial line.

    readers: {address: scbk} with the 16-byte key (bytes or 32 hex characters)
    each reader has or is to receive in install mode.
    on_event(address, event): libosdp's event dict (card read, keypress, ...),
    called on this line's dispatcher thread, or on `loop` if one is given.
    on_status(address, status): when a reader goes online/offline/secure.
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
        self.addresses = [int(a) for a in readers]
        self._readers = {int(a): _Reader(int(a), _key(k)) for a, k in readers.items()}
        for r in self._readers.values():
            r.retry = Backoff(initial=1.0, maximum=retry_max)

        self.connected = threading.Event()
        self.opens = 0
        self.last_line_error: str | None = None
        self.refreshes = 0
        self.tx_packets = 0
        self._tx_before = 0
        self._has_completion = False
        self._rate = {"refreshes_per_s": 0.0, "tx_packets_per_s": 0.0, "polls_per_s_per_reader": 0.0}
        self._ops: queue.SimpleQueue = queue.SimpleQueue()
        self._dispatch: queue.SimpleQueue = queue.SimpleQueue()
        self._completions: list[tuple[int, dict, int]] = []
        self._stop = threading.Event()
        self._state_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._dispatcher: threading.Thread | None = None
        self._log = LibosdpLog(self._on_libosdp_log, tag=f"osdp-cp {port}")
        for address in install:
            self._open_install(self._reader(address), time.monotonic(), install_window)

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> OsdpLine:
        if self._thread is not None:
            raise RuntimeError("OSDP line already started")
        self._stop.clear()
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name=f"osdp events {self.port}", daemon=True)
        self._dispatcher.start()
        self._thread = threading.Thread(target=self._run, name=f"osdp {self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._dispatch.put(None)
        if self._dispatcher is not None:
            self._dispatcher.join(timeout)
            self._dispatcher = None
        self._fail_queued_ops("line stopped")
        self.last_line_error = "line stopped"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- status -------------------------------------------------------------

    def _reader(self, address: int) -> _Reader:
        try:
            return self._readers[int(address)]
        except KeyError:
            raise KeyError(f"no OSDP reader {address} on {self.port}") from None

    def online(self, address: int) -> bool:
        return self._reader(address).online

    def secure(self, address: int) -> bool:
        """Online with a Secure Channel on this line's key (never the default key)."""
        return self._reader(address).secure

    def installing(self, address: int) -> bool:
        return self._reader(address).installing

    def status(self, address: int) -> dict:
        r = self._reader(address)
        with self._state_lock:
            if not self.connected.is_set():
                reason = f"line down: {self.last_line_error or 'not open yet'}"
            elif r.secure:
                reason = None
            elif r.online:
                reason = "online without a secure channel"
            elif r.last_sc_failure is not None and (r.last_online is None or r.last_sc_failure > r.last_online):
                reason = "secure channel refused (wrong key, or reader not keyed and not in install mode)"
            else:
                reason = "no response"
            return {
                "address": r.address, "port": self.port, "online": r.online, "secure": r.secure,
                "installing": r.installing, "reason": reason, "sc_failures": r.sc_failures,
                "last_error": r.last_error, "events": r.events, "dropped_insecure": r.dropped_insecure,
                "commands_ok": r.commands_ok, "commands_failed": r.commands_failed,
                "since": r.since,
            }  # fmt: skip

    def statuses(self) -> dict[int, dict]:
        return {a: self.status(a) for a in self.addresses}

    def stats(self) -> dict:
        """Counters and rates (over the last second) of the refresh loop and the wire."""
        return {
            "port": self.port, "connected": self.connected.is_set(), "opens": self.opens,
            "refreshes": self.refreshes, "tx_packets": self.tx_packets, **self._rate,
        }  # fmt: skip

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
        self._reader(address)
        ticket = _Ticket(int(address), commands, what)
        if self._stop.is_set() or self._thread is None:
            ticket.resolve(False, "line not running")
        else:
            self._ops.put(("submit", ticket))
        return ticket.future

    def install(self, address: int, window: float | None = None) -> None:
        """Open the install window for one reader: if it has no key yet, it may take this line's
        key once, over the default key (SCBK-D). The window closes (Secure Channel enforced
        again) as soon as the reader is secure on the line's key, or after `window` seconds.
        Use it only while the reader is being installed: SCBK-D is public."""
        self._reader(address)
        self._ops.put(("install", int(address), self.install_window if window is None else window))

    def cancel_install(self, address: int) -> None:
        self._reader(address)
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
                self._all_offline()
            if not self._stop.is_set():
                self._idle(reopen.next())

    def _idle(self, seconds: float) -> None:
        """Wait while the line is down, still answering submissions (with a failure)."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._drain_ops(None, time.monotonic())
            self._stop.wait(min(0.05, max(0.0, deadline - time.monotonic())))

    def _flags(self, r: _Reader) -> list[int]:
        flags = [osdp.LibFlag.EnableNotification]
        if not r.installing:
            flags.append(osdp.LibFlag.EnforceSecure)
        return flags

    def _make_cp(self, channel: SerialChannel) -> osdp.ControlPanel:
        infos = [
            osdp.PDInfo(a, channel, scbk=self._readers[a].scbk, name=f"reader-{a}", flags=self._flags(self._readers[a]))
            for a in self.addresses
        ]

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
        for r in self._readers.values():
            r.retry.reset()
            r.retry_at = now + r.retry.next()
            r.disabling = False
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
        n_online = sum(1 for r in self._readers.values() if r.online) or 1
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
                r = self._readers[op[1]]
                if r.secure:
                    log.info(
                        "OSDP reader %d on %s is already secure on its key; no install needed", r.address, self.port
                    )
                    continue
                self._open_install(r, now, op[2])
                if cp is not None:
                    cp.clear_flag(r.address, osdp.LibFlag.EnforceSecure)
                    self._retry_now(cp, r)
            elif kind == "cancel_install":
                r = self._readers[op[1]]
                if r.installing:
                    self._close_install(cp, r, "cancelled")

    def _fail_queued_ops(self, why: str) -> None:
        while True:
            try:
                op = self._ops.get_nowait()
            except queue.Empty:
                return
            if op[0] == "submit":
                op[1].resolve(False, why)

    def _open_install(self, r: _Reader, now: float, window: float) -> None:
        r.installing = True
        r.saw_scbkd = False
        r.install_deadline = now + window
        log.warning(
            "OSDP reader %d on %s: install window open for %.0f s (a reader without a key may take it over SCBK-D)",
            r.address, self.port, window,
        )  # fmt: skip
        self._notify_status(r)

    def _close_install(self, cp: osdp.ControlPanel | None, r: _Reader, why: str) -> None:
        r.installing = False
        r.install_deadline = None
        if cp is not None:
            cp.set_flag(r.address, osdp.LibFlag.EnforceSecure)
            if r.online and not r.secure:
                self._retry_now(cp, r)  # drop an insecure session now that enforcement is back
        log.info("OSDP reader %d on %s: install window closed (%s)", r.address, self.port, why)
        self._notify_status(r)

    def _retry_now(self, cp: osdp.ControlPanel, r: _Reader) -> None:
        """Restart a reader's state machine: disable it, then enable it once libosdp has."""
        if not r.disabling and cp.disable_pd(r.address):
            r.disabling = True

    def _do_submit(self, cp: osdp.ControlPanel | None, ticket: _Ticket, now: float) -> None:
        r = self._readers[ticket.address]
        if cp is None or not self.connected.is_set():
            ticket.resolve(False, "line down")
            return
        if now - ticket.created > self.command_timeout:
            ticket.resolve(False, "too old to execute")
            return
        if not r.secure:
            ticket.resolve(False, "reader not online with a secure channel")
            return
        for cmd, required in ticket.commands:
            if cp.submit_command(r.address, cmd):
                if self._has_completion:
                    r.pending.append((cmd.get("command"), ticket, required))
                elif required:
                    ticket.required_left -= 1
            elif required:
                r.commands_failed += 1
                ticket.resolve(False, "libosdp refused the command")
                return
            else:
                ticket.failed_optional.append(str(cmd.get("command")))
        if ticket.required_left <= 0:
            ticket.resolve(True)

    def _on_completion(self, address: int, command: dict, status: int) -> None:
        # Runs inside refresh(), under libosdp's lock: record only.
        self._completions.append((address, command, status))

    def _after_refresh(self, cp: osdp.ControlPanel, now: float) -> None:
        completions, self._completions = self._completions, []
        for address, command, status in completions:
            self._complete(address, command, status)

        online_bits, sc_bits = cp.status(), cp.sc_status()
        for idx, address in enumerate(self.addresses):
            r = self._readers[address]
            online = bool(online_bits >> idx & 1)
            secure = online and bool(sc_bits >> idx & 1)
            self._track(cp, r, online, secure, now)
            while (event := cp.get_event(address, timeout=-1)) is not None:
                self._handle_event(r, event)
            if r.pending and now - r.pending[0][1].created > self.command_timeout:
                self._flush(cp, r, "not acknowledged in time")
            if r.disabling and not cp.is_pd_enabled(address):
                cp.enable_pd(address)
                r.disabling = False
            if not r.online and not r.disabling and r.retry_at is not None and now >= r.retry_at:
                log.debug("OSDP reader %d on %s offline; retrying", address, self.port)
                self._retry_now(cp, r)
                r.retry_at = now + r.retry.next()
            if r.installing and r.install_deadline is not None and now > r.install_deadline:
                self._close_install(cp, r, "window expired without a key exchange")

    def _track(self, cp: osdp.ControlPanel, r: _Reader, online: bool, secure: bool, now: float) -> None:
        if (online, secure) == (r.online, r.secure):
            return
        was_online = r.online
        with self._state_lock:
            r.online, r.secure, r.since = online, secure, now
            if online:
                r.last_online = now
        if secure:
            r.retry.reset()
            r.retry_at = None
            log.info("OSDP reader %d on %s online, secure channel active", r.address, self.port)
            if r.installing:
                how = "took the line's key over SCBK-D" if r.saw_scbkd else "already had the line's key"
                self._close_install(cp, r, f"reader {how}")
        elif online:
            log.warning("OSDP reader %d on %s online WITHOUT a secure channel", r.address, self.port)
        else:
            log.warning("OSDP reader %d on %s offline", r.address, self.port)
            r.retry_at = now + r.retry.next()
        if was_online and not online:
            self._flush(cp, r, "reader went offline")
        self._notify_status(r)

    def _flush(self, cp: osdp.ControlPanel, r: _Reader, why: str) -> None:
        """Drop every queued command of a reader: a strike must not fire late."""
        if r.pending:
            cp.flush_commands(r.address)
        while r.pending:
            _, ticket, required = r.pending.popleft()
            if required:
                r.commands_failed += 1
            ticket.resolve(False, why)

    def _complete(self, address: int, command: dict, status: int) -> None:
        r = self._readers.get(address)
        if r is None:
            return
        cmd_id = command.get("command") if isinstance(command, dict) else None
        for i, (pending_id, ticket, required) in enumerate(r.pending):
            if pending_id == cmd_id:
                del r.pending[i]
                break
        else:
            return  # one of libosdp's own (KEYSET during install)
        ok = status == osdp.CompletionStatus.Ok
        if required:
            if ok:
                r.commands_ok += 1
                ticket.required_left -= 1
                if ticket.required_left <= 0:
                    ticket.resolve(True)
            else:
                r.commands_failed += 1
                ticket.resolve(False, f"reader answered with completion status {status}")
        elif not ok:
            log.warning("OSDP reader %d: feedback command %s not acknowledged (%s)", address, cmd_id, status)

    def _handle_event(self, r: _Reader, event: dict) -> None:
        kind = event.get("event")
        if kind == osdp.Event.Notification:
            if event.get("type") == osdp.EventNotification.SecureChannelStatus and event.get("arg1"):
                r.saw_scbkd = True
            return
        if not r.secure:
            r.dropped_insecure += 1
            log.warning("OSDP reader %d on %s: event dropped, no secure channel: %r", r.address, self.port, event)
            return
        r.events += 1
        if self.on_event is not None:
            self._post(self.on_event, r.address, event)

    def _notify_status(self, r: _Reader) -> None:
        if self.on_status is not None:
            self._post(self.on_status, r.address, self.status(r.address))

    def _all_offline(self) -> None:
        now = time.monotonic()
        for r in self._readers.values():
            while r.pending:
                _, ticket, _ = r.pending.popleft()
                ticket.resolve(False, "line lost")
            r.disabling = False
            if r.online or r.secure:
                with self._state_lock:
                    r.online = r.secure = False
                    r.since = now
                if self._stop.is_set():
                    log.info("OSDP reader %d on %s offline (line stopped)", r.address, self.port)
                else:
                    log.warning("OSDP reader %d on %s offline (line down)", r.address, self.port)
                self._notify_status(r)

    # -- dispatch (outside libosdp) ------------------------------------------

    def _post(self, fn: Callable, address: int, payload: dict) -> None:
        if self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(self._call, fn, address, payload)
            except RuntimeError:  # loop closed
                log.warning("OSDP line %s: event loop closed, dropping %r", self.port, payload)
        else:
            self._dispatch.put((fn, address, payload))

    def _dispatch_loop(self) -> None:
        while True:
            item = self._dispatch.get()
            if item is None:
                return
            self._call(*item)

    def _call(self, fn: Callable, address: int, payload: dict) -> None:
        try:
            fn(address, payload)
        except Exception:
            log.exception("OSDP line %s: callback for reader %d failed", self.port, address)

    # -- libosdp log lines (called from C, on the refresh thread) ------------

    _PD_NAME = re.compile(r"PD-(\d+)")
    _SC_REFUSED = re.compile(r"(CHLNG|SCRYPT) failed|Failed to set SCBK|SC Failed\. Online without SC")

    def _on_libosdp_log(self, name: str, level: int, msg: str) -> None:
        m = self._PD_NAME.search(name)
        address = int(m.group(1)) if m else None
        r = self._readers.get(address) if address is not None else None
        if r is not None and level >= logging.ERROR:
            r.last_error = msg
        if r is not None and self._SC_REFUSED.search(msg):
            r.sc_failures += 1
            r.last_sc_failure = time.monotonic()
        where = f"reader {address}" if address is not None else "cp"
        liblog.log(level, "%s %s: %s", self.port, where, msg)
