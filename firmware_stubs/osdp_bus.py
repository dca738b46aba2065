"""The readers' end of a serial line, shared like an RS-485 bus, for simulated OSDP readers.

Every reader attached to a `ReaderBus` hears every byte and answers only to
its own address, so several readers can share one line (multidrop). The bus
runs one refresh thread for all its readers, reopens the port by itself when
it disappears (pty closed, socat restarted) and never blocks in read or write.
"""

from __future__ import annotations

import logging
import os
import termios
import threading
import time
import tty
from typing import TYPE_CHECKING

import osdp

if TYPE_CHECKING:
    from firmware_stubs.osdp_reader import SimulatedReader

log = logging.getLogger("firmware_stubs.osdp_reader")


class BusChannel(osdp.Channel):
    """One reader's view of the bus: its own copy of every received byte."""

    def __init__(self, bus: ReaderBus) -> None:
        super().__init__()
        self.id = bus.channel_id
        self.bus = bus
        self.rx = bytearray()

    def read(self, max_bytes: int) -> bytes:
        data = bytes(self.rx[:max_bytes])
        del self.rx[:max_bytes]
        return data

    def write(self, buf: bytes) -> int:
        return self.bus._write(buf)

    def flush(self) -> None:
        self.rx.clear()


class ReaderBus:
    """The readers' end of one serial line, shared like an RS-485 bus."""

    def __init__(self, port: str, *, poll_interval: float = 0.002, reopen_interval: float = 0.2, channel_id: int = 1):
        self.port = port
        self.poll_interval = poll_interval
        self.reopen_interval = reopen_interval
        self.channel_id = channel_id
        self.readers: list[SimulatedReader] = []
        self.connected = threading.Event()
        self.opens = 0
        self._fd: int | None = None
        self._lost: OSError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards the reader list

    def attach(self, reader: SimulatedReader) -> None:
        with self._lock:
            if any(r.address == reader.address for r in self.readers):
                raise ValueError(f"address {reader.address} already on bus {self.port}")
            self.readers.append(reader)

    def detach(self, reader: SimulatedReader) -> None:
        with self._lock:
            if reader in self.readers:
                self.readers.remove(reader)

    def start(self) -> ReaderBus:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"osdp reader bus {self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._close()

    def _open(self) -> bool:
        try:
            fd = os.open(self.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return False
        try:
            tty.setraw(fd)
        except (OSError, termios.error) as exc:  # not a tty: raw mode does not apply
            log.debug("%s: not set raw (%s)", self.port, exc)
        self._fd, self._lost = fd, None
        self.opens += 1
        self.connected.set()
        log.info("reader bus %s open", self.port)
        return True

    def _close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        self.connected.clear()

    def _write(self, buf: bytes) -> int:
        if self._fd is None or self._lost is not None:
            return 0
        try:
            return os.write(self._fd, buf)
        except BlockingIOError:
            return 0
        except OSError as exc:
            self._lost = exc
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._fd is None and not self._open():
                self._stop.wait(self.reopen_interval)
                continue
            fd = self._fd
            if fd is None:  # closed meanwhile
                continue
            try:
                data = os.read(fd, 4096)
                if not data:  # a tty whose other end is gone reads as end-of-file
                    self._lost = OSError("end of file: the other end of the line is gone")
            except BlockingIOError:
                data = b""
            except OSError as exc:
                self._lost = exc
                data = b""
            with self._lock:
                readers = list(self.readers)
            for reader in readers:
                if data:
                    reader._channel.rx.extend(data)
                reader._refresh()
            if self._lost is not None:
                log.info("reader bus %s lost (%s); reopening", self.port, self._lost)
                self._close()
                for reader in readers:
                    reader._channel.rx.clear()
                self._stop.wait(self.reopen_interval)
                continue
            time.sleep(self.poll_interval)
