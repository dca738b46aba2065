"""Line-oriented devices on a serial port: ZKTeco ATTLOG terminals, card readers.

Reads in chunks (what the port has waiting, not byte by byte), hands every
complete line to the pipeline, and when the port disappears (cable pulled,
adapter replugged, pty closed) reopens it with backoff, so no restart is
ever needed. A partial line cut off by the unplug is dead-lettered as
`truncated`, never silently dropped or glued to the next line.
"""

from __future__ import annotations

import logging
import threading

import serial

from gateway.core.backoff import Backoff
from gateway.pipeline.queue import Inbound, IngestQueue

log = logging.getLogger(__name__)

MAX_LINE = 4096  # longer than any real line: a line-ending that never comes


class SerialLine:
    def __init__(self, port: str, baudrate: int, protocol: str, device_id: str, queue: IngestQueue) -> None:
        self.port = port
        self.baudrate = baudrate
        self.channel = f"serial/{protocol}"
        self.device_id = device_id
        self.queue = queue
        self.connected = threading.Event()
        self.opens = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"serial {self.port}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _emit(self, payload: bytes, reject: str | None = None) -> None:
        self.queue.put(Inbound("serial", self.channel, payload, self.device_id, reject=reject, sender=self.port))

    def _run(self) -> None:
        backoff = Backoff(initial=0.2, maximum=10.0)
        while not self._stop.is_set():
            try:
                port = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=0.2)
            except (serial.SerialException, OSError, ValueError) as exc:
                log.debug("cannot open %s: %s", self.port, exc)
                self._stop.wait(backoff.next())
                continue
            self.opens += 1
            backoff.reset()
            self.connected.set()
            log.info("serial line %s open", self.port)
            try:
                self._read(port)
            except (serial.SerialException, OSError) as exc:
                log.warning("serial line %s lost (%s); reopening", self.port, exc)
            finally:
                self.connected.clear()
                port.close()

    def _read(self, port: serial.SerialBase) -> None:
        pending = b""
        try:
            while not self._stop.is_set():
                chunk = port.read(port.in_waiting or 1)
                if not chunk:
                    continue
                pending += chunk
                cut = pending.rfind(b"\n")
                if cut >= 0:
                    self._emit(pending[: cut + 1])
                    pending = pending[cut + 1 :]
                if len(pending) > MAX_LINE:
                    self._emit(pending, reject="line_too_long")
                    pending = b""
        finally:
            if pending.strip():
                self._emit(pending, reject="truncated")
