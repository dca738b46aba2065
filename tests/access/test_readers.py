"""The door logic fed neutral reader events: no libosdp, no serial line; a line stand-in records the answers."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session

from firmware_stubs.osdp_reader import h10301
from gateway.access.decide import Credential
from gateway.access.readers import DoorReaders, credential_of
from gateway.core.reader_events import CardRead, KeyPress
from gateway.store.db import make_engine, upgrade
from gateway.store.models import Device

KEY = "00112233445566778899aabbccddeeff"


@dataclass
class Decision:
    granted: bool


@dataclass
class Access:
    """Grants card 10/1093 and PIN 4321, and remembers what it was asked."""

    asked: list[tuple[Any, ...]] = field(default_factory=list)

    def read(self, reader_id: str, door: str, credential: Credential, *rest: Any) -> Decision:
        self.asked.append((reader_id, door, credential, *rest))
        return Decision(credential.value in ("1093", "4321") or credential.number == 1093)


@dataclass
class Line:
    said: list[tuple[str, int, int | None]] = field(default_factory=list)

    def grant(self, address: int, strike_ms: int = 3000) -> None:
        self.said.append(("grant", address, strike_ms))

    def deny(self, address: int) -> None:
        self.said.append(("deny", address, None))

    def online(self, address: int) -> bool:
        return True

    def status(self, address: int) -> dict[str, Any]:
        return {"online": True, "address": address}

    def install(self, address: int) -> None:
        self.said.append(("install", address, None))

    def stop(self, timeout: float) -> None:
        pass


class Keys:
    def secret(self, device_id: str) -> str:
        return KEY


class Alive:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def heartbeat(self, device_id: str) -> None:
        self.seen.append(device_id)


def readers(tmp_path: Path) -> tuple[DoorReaders, Access, Alive]:
    engine = make_engine(f"sqlite:///{tmp_path / 'doors.db'}")
    upgrade(engine)
    with Session(engine) as session:
        config = {"line": "/dev/ttyDOOR", "address": 1, "door": "front", "strike_ms": 1500}
        session.add(
            Device(id="front-reader", kind="access", protocol="osdp", config=config, created_at=0, updated_at=0)
        )
        other = {"line": "/dev/ttyOTHER", "address": 1}
        session.add(Device(id="other-reader", kind="access", protocol="osdp", config=other, created_at=0, updated_at=0))
        session.commit()
    access, alive = Access(), Alive()
    return DoorReaders(engine, access, Keys(), alive), access, alive  # type: ignore[arg-type]


def test_a_line_gets_the_keys_of_the_readers_registered_on_it(tmp_path: Path) -> None:
    doors, _, _ = readers(tmp_path)
    assert doors.load(["/dev/ttyDOOR", "/dev/ttyEMPTY"]) == {
        "/dev/ttyDOOR": {1: bytes.fromhex(KEY)},
        "/dev/ttyEMPTY": {},
    }


def test_a_card_read_opens_the_door_and_a_wrong_card_is_denied(tmp_path: Path) -> None:
    doors, access, alive = readers(tmp_path)
    doors.load(["/dev/ttyDOOR"])
    line = Line()
    doors.attach("/dev/ttyDOOR", line)
    doors.on_event("/dev/ttyDOOR", 1, CardRead(*h10301(10, 1093)))
    doors.on_event("/dev/ttyDOOR", 1, CardRead(*h10301(10, 7)))
    assert line.said == [("grant", 1, 1500), ("deny", 1, None)]
    assert alive.seen == ["front-reader", "front-reader"]
    reader_id, door, credential, bits, card_format, direction = access.asked[0]
    assert (reader_id, door, credential.kind, bits, card_format, direction) == (
        "front-reader",
        "front",
        "card",
        26,
        "H10301",
        "in",
    )


def test_a_pin_is_read_without_its_terminator_and_empty_entries_or_unknown_readers_do_nothing(tmp_path: Path) -> None:
    doors, access, _ = readers(tmp_path)
    doors.load(["/dev/ttyDOOR"])
    line = Line()
    doors.attach("/dev/ttyDOOR", line)
    doors.on_event("/dev/ttyDOOR", 1, KeyPress("4321#"))
    doors.on_event("/dev/ttyDOOR", 1, KeyPress("#"))
    doors.on_event("/dev/ttyDOOR", 9, CardRead(*h10301(10, 1093)))
    assert line.said == [("grant", 1, 1500)]
    assert [a[2] for a in access.asked] == [Credential("pin", "4321")]


def test_a_misread_card_is_a_denied_credential_with_its_bits_kept() -> None:
    data, bits = h10301(10, 1093)
    flipped = bytes([data[0] ^ 0x80]) + data[1:]  # the leading parity bit
    credential, kept = credential_of(CardRead(flipped, bits), "H10301")  # type: ignore[misc]
    assert credential.kind == "card" and not credential.parity_ok and kept == 26


def test_the_door_logic_imports_no_transport_and_no_libosdp() -> None:
    package = Path(__file__).resolve().parents[2] / "gateway" / "access"
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad = [n for n in names if n.startswith("gateway.transports") or n.split(".")[0] == "osdp"]
            assert not bad, f"{path.name} imports {bad}"
