"""OSDP door readers: a read becomes a decision, the decision opens the door (or not) at once.

One `OsdpLine` per `[[serial]] protocol = "osdp"` line, carrying every reader
registered on it (`config.line` = the port). Events arrive on the line's
dispatch thread, outside libosdp's lock, so answering with `grant()` or
`deny()` from here is safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import osdp
from sqlalchemy import select
from sqlmodel import Session

from gateway.access.decide import Credential
from gateway.access.service import AccessControl
from gateway.config import SerialLineSettings as SerialSettings
from gateway.devices import wiegand
from gateway.devices.errors import DecodeError
from gateway.management.liveness import Liveness
from gateway.management.provisioning import Provisioner
from gateway.store.models import Device
from gateway.transports.osdp_cp import OsdpLine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reader:
    device_id: str
    door: str
    card_format: str
    strike_ms: int
    direction: str = "in"


def credential_of(event: dict[str, Any], card_format: str) -> tuple[Credential, int | None] | None:
    """The credential a reader event carries (card or keypad PIN), or None for other events."""
    kind = event.get("event")
    if kind == osdp.Event.CardRead:
        data, bits = bytes(event.get("data") or b""), int(event.get("length") or 0)
        try:
            return Credential.from_card(wiegand.decode(data, bits, card_format)), bits
        except DecodeError as exc:
            # A misread or a card of another format: denied with its reason, its bits kept for the record.
            value = wiegand.hex_value(data, bits) if bits > 0 else data.hex()
            return Credential("card", value, parity_ok=exc.reason != "bad_parity"), bits
    if kind == osdp.Event.KeyPress:
        digits = bytes(event.get("data") or b"").decode("ascii", "ignore").rstrip("#*")
        return (Credential("pin", digits), None) if digits else None
    return None


class DoorReaders:
    def __init__(
        self,
        lines: list[SerialSettings],
        engine: Any,
        access: AccessControl,
        provisioner: Provisioner,
        liveness: Liveness,
    ) -> None:
        self.settings = lines
        self.engine = engine
        self.access = access
        self.provisioner = provisioner
        self.liveness = liveness
        self.lines: dict[str, OsdpLine] = {}
        self._readers: dict[tuple[str, int], Reader] = {}

    def start(self) -> None:
        with Session(self.engine) as session:
            devices = session.execute(select(Device).where(Device.protocol == "osdp")).scalars().all()
        for line in self.settings:
            keys = {}
            for device in devices:
                if device.config.get("line") != line.port:
                    continue
                address = int(device.config["address"])
                keys[address] = bytes.fromhex(self.provisioner.secret(device.id) or "")
                self._readers[(line.port, address)] = Reader(
                    device.id,
                    device.config.get("door") or device.id,
                    device.config.get("format", "H10301"),
                    int(device.config.get("strike_ms", 3000)),
                    device.config.get("direction", "in"),
                )
            if not keys:
                log.warning("OSDP line %s has no readers registered; not started", line.port)
                continue
            osdp_line = OsdpLine(line.port, keys, baudrate=line.baudrate, on_event=self._handler(line.port))
            self.lines[line.port] = osdp_line.start()

    def _handler(self, port: str) -> Any:
        def on_event(address: int, event: dict[str, Any]) -> None:
            reader = self._readers.get((port, address))
            found = credential_of(event, reader.card_format) if reader is not None else None
            if reader is None or found is None:
                return
            credential, bits = found
            self.liveness.heartbeat(reader.device_id)
            decision = self.access.read(
                reader.device_id, reader.door, credential, bits, reader.card_format, reader.direction
            )
            line = self.lines[port]
            line.grant(address, reader.strike_ms) if decision.granted else line.deny(address)

        return on_event

    def heartbeat(self) -> None:
        """Readers answering polls are alive."""
        for (port, address), reader in self._readers.items():
            line = self.lines.get(port)
            if line is not None and line.online(address):
                self.liveness.heartbeat(reader.device_id)

    def stop(self) -> None:
        for line in self.lines.values():
            line.stop(1.0)

    def status(self, device_id: str) -> dict[str, Any] | None:
        """The reader's link as its line sees it (online, secure, and why not), or None if not on a line."""
        for (port, address), reader in self._readers.items():
            if reader.device_id == device_id and port in self.lines:
                return self.lines[port].status(address)
        return None

    def install(self, device_id: str) -> bool:
        """Installer action: let this reader receive its key once over the default key."""
        for (port, address), reader in self._readers.items():
            if reader.device_id == device_id and port in self.lines:
                self.lines[port].install(address)
                return True
        return False
