"""Door readers: a read becomes a decision, the decision opens the door (or not) at once.

The readers are registered devices (`config.line` = the port of their line,
`config.address` on it). A line of readers (an OSDP line: the app wires it)
hands `on_event(port, address, event)` neutral events, a card read or a
keypress (gateway.core.reader_events), on its dispatch thread, outside the
line's own lock, so answering with `grant()` or `deny()` from here is safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlmodel import Session, col

from gateway.access.decide import Credential
from gateway.access.service import AccessControl
from gateway.core.reader_events import CardRead, KeyPress, ReaderEvent
from gateway.devices import wiegand
from gateway.devices.errors import DecodeError
from gateway.management.liveness import Liveness
from gateway.management.provisioning import Provisioner
from gateway.store.models import Device

log = logging.getLogger(__name__)


class ReaderLine(Protocol):
    """What the door logic needs of a line of readers, each known by its address on it."""

    def grant(self, address: int, strike_ms: int = 3000) -> object: ...

    def deny(self, address: int) -> object: ...

    def online(self, address: int) -> bool: ...

    def status(self, address: int) -> dict[str, Any]: ...

    def install(self, address: int) -> None: ...

    def stop(self, timeout: float) -> None: ...


@dataclass(frozen=True)
class Reader:
    device_id: str
    door: str
    card_format: str
    strike_ms: int
    direction: str = "in"


def credential_of(event: ReaderEvent, card_format: str) -> tuple[Credential, int | None] | None:
    """The credential a reader event carries (card or keypad PIN), or None for an empty entry."""
    if isinstance(event, CardRead):
        data, bits = event.data, event.bits
        try:
            return Credential.from_card(wiegand.decode(data, bits, card_format)), bits
        except DecodeError as exc:
            # A misread or a card of another format: denied with its reason, its bits kept for the record.
            value = wiegand.hex_value(data, bits) if bits > 0 else data.hex()
            return Credential("card", value, parity_ok=exc.reason != "bad_parity"), bits
    if isinstance(event, KeyPress):
        digits = event.keys.rstrip("#*")
        return (Credential("pin", digits), None) if digits else None
    return None


class DoorReaders:
    def __init__(self, engine: Any, access: AccessControl, provisioner: Provisioner, liveness: Liveness) -> None:
        self.engine = engine
        self.access = access
        self.provisioner = provisioner
        self.liveness = liveness
        self.lines: dict[str, ReaderLine] = {}
        self._readers: dict[tuple[str, int], Reader] = {}

    def load(self, ports: list[str]) -> dict[str, dict[int, bytes]]:
        """The readers registered on these lines: {port: {address: Secure Channel key}}."""
        with Session(self.engine) as session:
            devices = session.execute(select(Device).where(col(Device.protocol) == "osdp")).scalars().all()
        keys: dict[str, dict[int, bytes]] = {port: {} for port in ports}
        for device in devices:
            port = device.config.get("line")
            if port not in keys:
                continue
            address = int(device.config["address"])
            keys[port][address] = bytes.fromhex(self.provisioner.secret(device.id) or "")
            self._readers[(port, address)] = Reader(
                device.id,
                device.config.get("door") or device.id,
                device.config.get("format", "H10301"),
                int(device.config.get("strike_ms", 3000)),
                device.config.get("direction", "in"),
            )
        return keys

    def attach(self, port: str, line: ReaderLine) -> None:
        """The running line the readers on `port` are reached through."""
        self.lines[port] = line

    def on_event(self, port: str, address: int, event: ReaderEvent) -> None:
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
