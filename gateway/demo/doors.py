"""The demo office's doors: OSDP readers (libosdp's own PD) on software pty links.

People present their cards, a visitor invited for the next hour presents a
temporary card, and now and then somebody tries a card nobody holds.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

from gateway.app import Gateway
from gateway.config import SerialLineSettings, Settings
from gateway.core.timeutil import now_ms
from gateway.demo.office import PEOPLE, card_of, register

log = logging.getLogger(__name__)

DOORS = (("reader-front", "front"), ("reader-lab", "lab"))
UNKNOWN_CARD = (99, 4242)


class DemoDoors:
    def __init__(self) -> None:
        from firmware_stubs.pty_link import PtyLink

        self.links = {door: PtyLink().start() for _, door in DOORS}
        self.readers: list[Any] = []
        self.visitor_card: int | None = None
        self._stop = threading.Event()

    def configure(self, settings: Settings) -> None:
        """One RS-485 line per door (before the gateway is built: lines start with it)."""
        known = {line.port for line in settings.serial}
        for link in self.links.values():
            if link.gateway_end not in known:
                settings.serial.append(SerialLineSettings(port=link.gateway_end, protocol="osdp", baudrate=115200))

    def provision(self, gateway: Gateway) -> dict[str, str]:
        """Register the readers (before the gateway starts: a line takes the readers registered then)."""
        keys = {}
        for device_id, door in DOORS:
            config = {"line": self.links[door].gateway_end, "address": 1, "door": door, "strike_ms": 1500}
            creds = register(gateway, device_id, "osdp", config, kind="access", name=f"{door.title()} door reader")
            keys[door] = creds["scbk"]
        return keys

    def start(self, gateway: Gateway, keys: dict[str, str]) -> None:
        from firmware_stubs.osdp_reader import SimulatedReader

        for _, door in DOORS:
            self.readers.append(SimulatedReader(self.links[door].device_end, 1, keys[door], name=door).start())
        now = now_ms()
        visit = gateway.visitors.invite(
            "demo",
            name="Demo Visitor",
            host="E1000",
            start_ms=now,
            end_ms=now + 3600_000,
            doors=["front"],
            kind="card",
            company="Acme",
        )
        self.visitor_card = int(visit["credential"]["value"])
        threading.Thread(target=self._present, name="demo-doors", daemon=True).start()

    def _next_card(self, rng: random.Random, turn: int) -> tuple[int, int]:
        """An employee, the unknown card, the visitor first (so a short run shows each), then mostly employees."""
        roll = (0.5, 0.05, 0.15)[turn] if turn < 3 else rng.random()
        if roll < 0.1:
            return UNKNOWN_CARD
        if roll < 0.2 and self.visitor_card is not None:
            return 0, self.visitor_card
        return card_of(rng.randrange(PEOPLE))

    def _present(self) -> None:
        rng = random.Random(7)
        turn = 0
        while not self._stop.wait(1.5):
            reader = self.readers[0] if turn < 3 else rng.choice(self.readers)  # the visitor may use the front only
            if not reader.secure:
                continue
            try:
                reader.present_h10301(*self._next_card(rng, turn))
                turn += 1
            except Exception:  # the demo keeps going while the gateway stops
                log.debug("demo card not presented", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        for reader in self.readers:
            reader.stop()
        for link in self.links.values():
            link.close()
