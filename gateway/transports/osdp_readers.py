"""The readers on one OSDP line: each reader's link state, and what changes it.

After every libosdp refresh the line's refresh thread hands the control panel
to `LineReaders.update()`, which follows each reader's online / Secure Channel
bits, passes on the events of secure readers only, retries offline readers
with backoff (instead of libosdp's fixed 300 s wait) and closes install
windows. Install mode is per reader and one-shot: Secure Channel enforcement
is lifted so a reader without a key may take the line's key once over the
default key (SCBK-D), then switched back on.

Everything here runs on the refresh thread, except `ReaderLink.status()`,
which other threads call under the line's state lock.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import osdp

from gateway.core.backoff import Backoff
from gateway.transports.osdp_submissions import PendingCommands

# The line's own logger name: its logs are configured and read under one name.
log = logging.getLogger("gateway.transports.osdp_cp")


def secure_channel_key(value: bytes | str) -> bytes:
    key = bytes.fromhex(value) if isinstance(value, str) else bytes(value)
    if len(key) != 16:
        raise ValueError("an OSDP Secure Channel base key is 16 bytes (32 hex characters)")
    return key


@dataclass
class ReaderLink:
    """What the control panel knows of one reader (OSDP address) on the line."""

    address: int
    scbk: bytes
    retry: Backoff
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
    retry_at: float | None = None
    disabling: bool = False
    commands: PendingCommands = field(default_factory=PendingCommands)

    def flags(self) -> list[int]:
        flags = [osdp.LibFlag.EnableNotification]
        if not self.installing:
            flags.append(osdp.LibFlag.EnforceSecure)
        return flags

    def status(self, port: str, line_down: str | None) -> dict:
        """line_down: why the line is down, None while it is open."""
        if line_down is not None:
            reason = f"line down: {line_down}"
        elif self.secure:
            reason = None
        elif self.online:
            reason = "online without a secure channel"
        elif self.last_sc_failure is not None and (self.last_online is None or self.last_sc_failure > self.last_online):
            reason = "secure channel refused (wrong key, or reader not keyed and not in install mode)"
        else:
            reason = "no response"
        return {
            "address": self.address,
            "port": port,
            "online": self.online,
            "secure": self.secure,
            "installing": self.installing,
            "reason": reason,
            "sc_failures": self.sc_failures,
            "last_error": self.last_error,
            "events": self.events,
            "dropped_insecure": self.dropped_insecure,
            "commands_ok": self.commands.ok,
            "commands_failed": self.commands.failed,
            "since": self.since,
        }


class LineReaders:
    """The readers of one line, keyed by address.

    keys: {address: scbk}. on_event(address, event): an event from a reader
    with an active Secure Channel. on_change(address): a reader's status
    changed. state_lock guards what `ReaderLink.status()` reads from other threads.
    """

    _PD_NAME = re.compile(r"PD-(\d+)")
    _SC_REFUSED = re.compile(r"(CHLNG|SCRYPT) failed|Failed to set SCBK|SC Failed\. Online without SC")

    def __init__(
        self,
        port: str,
        keys: Mapping[int, bytes | str],
        *,
        retry_max: float,
        state_lock: threading.Lock,
        on_event: Callable[[int, dict], None],
        on_change: Callable[[int], None],
    ) -> None:
        self.port = port
        self.addresses = [int(a) for a in keys]
        self._links = {
            int(a): ReaderLink(int(a), secure_channel_key(k), Backoff(initial=1.0, maximum=retry_max))
            for a, k in keys.items()
        }
        self._state_lock = state_lock
        self._on_event = on_event
        self._on_change = on_change

    def __getitem__(self, address: int) -> ReaderLink:
        try:
            return self._links[int(address)]
        except KeyError:
            raise KeyError(f"no OSDP reader {address} on {self.port}") from None

    def __iter__(self) -> Iterator[ReaderLink]:
        return iter(self._links.values())

    def online_count(self) -> int:
        return sum(1 for r in self._links.values() if r.online)

    def pd_infos(self, channel: osdp.Channel) -> list[osdp.PDInfo]:
        """libosdp's description of every reader, in address order (its status bit order)."""
        return [
            osdp.PDInfo(a, channel, scbk=self._links[a].scbk, name=f"reader-{a}", flags=self._links[a].flags())
            for a in self.addresses
        ]

    # -- the line opening and closing ------------------------------------------

    def line_opened(self, now: float) -> None:
        """A new control panel: poll every reader once its first retry delay has passed."""
        for r in self._links.values():
            r.retry.reset()
            r.retry_at = now + r.retry.next()
            r.disabling = False

    def line_lost(self, stopping: bool) -> None:
        now = time.monotonic()
        for r in self._links.values():
            r.commands.drop("line lost")
            r.disabling = False
            if r.online or r.secure:
                with self._state_lock:
                    r.online = r.secure = False
                    r.since = now
                if stopping:
                    log.info("OSDP reader %d on %s offline (line stopped)", r.address, self.port)
                else:
                    log.warning("OSDP reader %d on %s offline (line down)", r.address, self.port)
                self._on_change(r.address)

    # -- install windows -------------------------------------------------------

    def open_install(self, address: int, now: float, window: float) -> None:
        r = self[address]
        r.installing = True
        r.saw_scbkd = False
        r.install_deadline = now + window
        log.warning(
            "OSDP reader %d on %s: install window open for %.0f s (a reader without a key may take it over SCBK-D)",
            r.address,
            self.port,
            window,
        )
        self._on_change(r.address)

    def request_install(self, cp: osdp.ControlPanel | None, address: int, now: float, window: float) -> None:
        """Open the install window unless the reader is already secure on its key."""
        r = self[address]
        if r.secure:
            log.info("OSDP reader %d on %s is already secure on its key; no install needed", r.address, self.port)
            return
        self.open_install(address, now, window)
        if cp is not None:
            cp.clear_flag(r.address, osdp.LibFlag.EnforceSecure)
            self._retry_now(cp, r)

    def cancel_install(self, cp: osdp.ControlPanel | None, address: int) -> None:
        r = self[address]
        if r.installing:
            self._close_install(cp, r, "cancelled")

    def _close_install(self, cp: osdp.ControlPanel | None, r: ReaderLink, why: str) -> None:
        r.installing = False
        r.install_deadline = None
        if cp is not None:
            cp.set_flag(r.address, osdp.LibFlag.EnforceSecure)
            if r.online and not r.secure:
                self._retry_now(cp, r)  # drop an insecure session now that enforcement is back
        log.info("OSDP reader %d on %s: install window closed (%s)", r.address, self.port, why)
        self._on_change(r.address)

    def _retry_now(self, cp: osdp.ControlPanel, r: ReaderLink) -> None:
        """Restart a reader's state machine: disable it, then enable it once libosdp has."""
        if not r.disabling and cp.disable_pd(r.address):
            r.disabling = True

    # -- after each refresh ----------------------------------------------------

    def complete(self, address: int, command: dict, status: int) -> None:
        """libosdp's completion report for a command (recorded during refresh)."""
        r = self._links.get(address)
        if r is not None:
            r.commands.complete(address, command, status)

    def update(self, cp: osdp.ControlPanel, now: float, command_timeout: float) -> None:
        """Follow what libosdp reports of each reader, and act on it."""
        online_bits, sc_bits = cp.status(), cp.sc_status()
        for idx, address in enumerate(self.addresses):
            r = self._links[address]
            online = bool(online_bits >> idx & 1)
            secure = online and bool(sc_bits >> idx & 1)
            self._track(cp, r, online, secure, now)
            while (event := cp.get_event(address, timeout=-1)) is not None:
                self._handle_event(r, event)
            if r.commands.overdue(now, command_timeout):
                r.commands.flush(cp, r.address, "not acknowledged in time")
            if r.disabling and not cp.is_pd_enabled(address):
                cp.enable_pd(address)
                r.disabling = False
            if not r.online and not r.disabling and r.retry_at is not None and now >= r.retry_at:
                log.debug("OSDP reader %d on %s offline; retrying", address, self.port)
                self._retry_now(cp, r)
                r.retry_at = now + r.retry.next()
            if r.installing and r.install_deadline is not None and now > r.install_deadline:
                self._close_install(cp, r, "window expired without a key exchange")

    def _track(self, cp: osdp.ControlPanel, r: ReaderLink, online: bool, secure: bool, now: float) -> None:
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
            r.commands.flush(cp, r.address, "reader went offline")
        self._on_change(r.address)

    def _handle_event(self, r: ReaderLink, event: dict) -> None:
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
        self._on_event(r.address, event)

    # -- libosdp log lines (called from C, on the refresh thread) --------------

    def note_libosdp_log(self, name: str, level: int, msg: str) -> int | None:
        """Record a reader's errors and refused Secure Channels (a wrong key, told apart from
        a silent reader); returns the address the line is about, None for the control panel."""
        m = self._PD_NAME.search(name)
        address = int(m.group(1)) if m else None
        r = self._links.get(address) if address is not None else None
        if r is not None and level >= logging.ERROR:
            r.last_error = msg
        if r is not None and self._SC_REFUSED.search(msg):
            r.sc_failures += 1
            r.last_sc_failure = time.monotonic()
        return address
