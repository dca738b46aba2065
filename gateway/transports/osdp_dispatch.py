"""An OSDP line's events, off its refresh thread and in neutral terms.

libosdp reports a card or a keypress as a dict of its own enums; the door
logic is handed `CardRead` / `KeyPress` / `ReaderLink` (gateway.core.reader_events)
instead, so it never imports libosdp. Callbacks run on the line's dispatcher
thread (or on an asyncio loop when one is given), outside libosdp's lock, so
they may answer with a grant at once; one that raises is logged and the
line goes on.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import osdp

from gateway.core.reader_events import CardRead, KeyPress, ReaderEvent, ReaderLink

log = logging.getLogger("gateway.transports.osdp_cp")

_CARD_FORMATS = {osdp.CardFormat.Wiegand: "wiegand", osdp.CardFormat.ASCII: "ascii"}

EventCallback = Callable[[int, ReaderEvent], Any]
StatusCallback = Callable[[int, ReaderLink], Any]


def reader_event(event: dict[str, Any]) -> ReaderEvent | None:
    """libosdp's event as a neutral one; None for the kinds no door acts on."""
    kind = event.get("event")
    if kind == osdp.Event.CardRead:
        return CardRead(
            bytes(event.get("data") or b""),
            int(event.get("length") or 0),
            _CARD_FORMATS.get(event.get("format"), "unspecified"),
            int(event.get("reader_no") or 0),
        )
    if kind == osdp.Event.KeyPress:
        keys = bytes(event.get("data") or b"").decode("ascii", "ignore")
        return KeyPress(keys, int(event.get("reader_no") or 0))
    return None


def reader_link(status: dict[str, Any]) -> ReaderLink:
    """A reader's status (as `OsdpLine.status()` gives it) as a neutral link event."""
    return ReaderLink(bool(status["online"]), bool(status["secure"]), bool(status["installing"]), status["reason"])


class Dispatcher:
    """Calls `fn(address, payload)` in order on its own thread, or on `loop`."""

    def __init__(self, port: str, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.port = port
        self.loop = loop
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], int, object] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"osdp events {self.port}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def post(self, fn: Callable[..., Any], address: int, payload: object) -> None:
        if self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(self._call, fn, address, payload)
            except RuntimeError:  # loop closed
                log.warning("OSDP line %s: event loop closed, dropping %r", self.port, payload)
        else:
            self._queue.put((fn, address, payload))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._call(*item)

    def _call(self, fn: Callable[..., Any], address: int, payload: object) -> None:
        try:
            fn(address, payload)
        except Exception:
            log.exception("OSDP line %s: callback for reader %d failed", self.port, address)
