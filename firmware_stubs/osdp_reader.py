"""A simulated OSDP access reader: libosdp's own PeripheralDevice on the far end of a serial line.

The reader end of a pty pair (socat, os.openpty) or a real port is a
`ReaderBus` (firmware_stubs/osdp_bus.py): several readers can share one line
(multidrop).

A `SimulatedReader` has an address and a Secure Channel key (or none: a new
reader in install mode, which takes the control panel's key once over the
default key and keeps it in `scbk`). It presents cards (Wiegand bits as
bytes plus a bit length) and keypad entries, and records every command the
control panel sends (output, LED, buzzer, keyset, ...) with timestamps,
thread-safely, for tests, the demo and benchmarks.

Run alone: python -m firmware_stubs.osdp_reader --port /tmp/ttyREADER --address 1 --scbk <32 hex> --every 5
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

import osdp

from firmware_stubs.osdp_bus import BusChannel, ReaderBus
from gateway.transports.osdp_support import LibosdpLog

log = logging.getLogger(__name__)
liblog = logging.getLogger(__name__ + ".libosdp")

COMMAND_KINDS = {
    osdp.Command.Output: "output",
    osdp.Command.LED: "led",
    osdp.Command.Buzzer: "buzzer",
    osdp.Command.Text: "text",
    osdp.Command.Keyset: "keyset",
    osdp.Command.Comset: "comset",
    osdp.Command.Manufacturer: "mfg",
    osdp.Command.FileTransfer: "file_tx",
    osdp.Command.Status: "status",
}

DEFAULT_CAPABILITIES = [
    (osdp.Capability.OutputControl, 1, 1),
    (osdp.Capability.LEDControl, 1, 1),
    (osdp.Capability.AudibleControl, 1, 1),
    (osdp.Capability.CardDataFormat, 1, 0),
    (osdp.Capability.CommunicationSecurity, 1, 1),
]


def h10301(facility: int, card: int) -> tuple[bytes, int]:
    """HID H10301 26-bit: (OSDP data bytes, MSB-first and left-justified; bit count)."""
    if not (0 <= facility <= 255 and 0 <= card <= 65535):
        raise ValueError("H10301: facility 0-255, card 0-65535")
    payload = facility << 16 | card  # bits 2-25
    even = (payload >> 12).bit_count() & 1  # parity over bits 2-13
    odd = 1 - ((payload & 0xFFF).bit_count() & 1)  # parity over bits 14-25
    value = even << 25 | payload << 1 | odd
    return (value << 6).to_bytes(4, "big"), 26


@dataclass(frozen=True)
class ReceivedCommand:
    at: float  # wall clock, time.time()
    monotonic: float
    kind: str  # output, led, buzzer, keyset, text, ...
    command: dict


class SimulatedReader:
    """One OSDP reader (libosdp PeripheralDevice) at `address` on a line or a shared ReaderBus."""

    def __init__(
        self,
        port: str | ReaderBus,
        address: int = 1,
        scbk: bytes | str | None = None,
        *,
        name: str | None = None,
        capabilities: list[tuple[int, int, int]] | None = None,
        osdp_log_level: int = osdp.LogLevel.Warning,
        on_command: Callable[[ReceivedCommand], None] | None = None,
    ) -> None:
        self.address = address
        self.scbk: bytes | None = bytes.fromhex(scbk) if isinstance(scbk, str) else (bytes(scbk) if scbk else None)
        if self.scbk is not None and len(self.scbk) != 16:
            raise ValueError("SCBK is 16 bytes")
        self.name = name or f"reader-{address}"
        self.on_command = on_command
        self._own_bus = not isinstance(port, ReaderBus)
        self.bus: ReaderBus = port if isinstance(port, ReaderBus) else ReaderBus(port)
        self._channel = BusChannel(self.bus)
        self._received: list[ReceivedCommand] = []
        self._cond = threading.Condition()
        self._log = LibosdpLog(self._on_libosdp_log, tag=f"osdp-pd {self.name}")
        flags = [osdp.LibFlag.EnforceSecure] if self.scbk else [osdp.LibFlag.InstallMode]
        info = osdp.PDInfo(address, self._channel, scbk=self.scbk, name=self.name, flags=flags)
        caps = osdp.PDCapabilities(capabilities or DEFAULT_CAPABILITIES)
        self._pd = self._log.create(lambda: osdp.PeripheralDevice(info, caps, log_level=osdp_log_level), osdp_log_level)
        self._pd.lock = threading.Lock()  # submit_event (any thread) vs refresh (bus thread)
        self.bus.attach(self)

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> SimulatedReader:
        self.bus.start()
        return self

    def stop(self) -> None:
        self.bus.detach(self)
        if self._own_bus:
            self.bus.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state --------------------------------------------------------------

    @property
    def online(self) -> bool:
        return bool(self._pd.is_online())

    @property
    def secure(self) -> bool:
        return bool(self._pd.is_sc_active())

    # -- what a person does at the reader -----------------------------------

    def present_card(self, data: bytes, bits: int, *, reader_no: int = 0, direction: int = 0) -> None:
        """A raw Wiegand card read: `bits` bits, MSB-first, left-justified in `data`."""
        if len(data) * 8 < bits:
            raise ValueError("fewer data bytes than bits")
        self._submit(
            {
                "event": osdp.Event.CardRead,
                "reader_no": reader_no,
                "format": osdp.CardFormat.Wiegand,
                "direction": direction,
                "length": bits,
                "data": bytes(data),
            }
        )

    def present_h10301(self, facility: int, card: int, *, reader_no: int = 0) -> None:
        data, bits = h10301(facility, card)
        self.present_card(data, bits, reader_no=reader_no)

    def enter_keys(self, keys: str | bytes, *, reader_no: int = 0) -> None:
        data = keys.encode("ascii") if isinstance(keys, str) else bytes(keys)
        self._submit({"event": osdp.Event.KeyPress, "reader_no": reader_no, "data": data})

    def _submit(self, event: dict) -> None:
        with self._pd.lock:
            self._pd.ctx.submit_event(event)

    # -- what the control panel did -----------------------------------------

    def commands(self, kind: str | None = None) -> list[ReceivedCommand]:
        with self._cond:
            return [c for c in self._received if kind is None or c.kind == kind]

    def outputs(self) -> list[ReceivedCommand]:
        return self.commands("output")

    def leds(self) -> list[ReceivedCommand]:
        return self.commands("led")

    def buzzes(self) -> list[ReceivedCommand]:
        return self.commands("buzzer")

    def clear(self) -> None:
        with self._cond:
            self._received.clear()

    def wait_for(
        self, kind: str, predicate: Callable[[dict], bool] | None = None, timeout: float = 5.0
    ) -> ReceivedCommand | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for c in self._received:
                    if c.kind == kind and (predicate is None or predicate(c.command)):
                        return c
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def strike_active(self, output_no: int = 0) -> bool:
        """Whether the last output command for output_no still holds the strike open."""
        now = time.monotonic()
        for c in reversed(self.outputs()):
            if c.command.get("output_no") == output_no:
                if c.command.get("control_code") in (5, 6):  # timed pulse
                    return now < c.monotonic + c.command.get("timer_count", 0) / 10
                return c.command.get("control_code") in (2, 4)  # permanent on
        return False

    # -- bus thread -----------------------------------------------------------

    def _refresh(self) -> None:
        with self._pd.lock:
            self._pd.ctx.refresh()
        while (cmd := self._pd.get_command(timeout=-1)) is not None:
            self._record(cmd)

    def _record(self, cmd: dict) -> None:
        kind = COMMAND_KINDS.get(cmd.get("command"), f"command-{cmd.get('command')}")
        rc = ReceivedCommand(time.time(), time.monotonic(), kind, cmd)
        if kind == "keyset" and isinstance(cmd.get("data"), bytes) and len(cmd["data"]) == 16:
            self.scbk = cmd["data"]
            log.warning("%s: new Secure Channel key set by the control panel", self.name)
        with self._cond:
            self._received.append(rc)
            self._cond.notify_all()
        if self.on_command is not None:
            try:
                self.on_command(rc)
            except Exception:
                log.exception("%s: on_command failed", self.name)

    def _on_libosdp_log(self, name: str, level: int, msg: str) -> None:
        liblog.log(level, "%s: %s", self.name, msg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="A simulated OSDP reader on a serial line (pty)")
    ap.add_argument("--port", required=True)
    ap.add_argument("--address", type=int, default=1)
    ap.add_argument("--scbk", default=None, help="32 hex characters; omit for install mode")
    ap.add_argument("--facility", type=int, default=10)
    ap.add_argument("--card", type=int, default=1093)
    ap.add_argument("--every", type=float, default=5.0, help="present the card every N seconds (0: never)")
    ap.add_argument("--seconds", type=float, default=0.0, help="stop after N seconds (0: run until Ctrl-C)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    reader = SimulatedReader(
        args.port,
        args.address,
        args.scbk,
        on_command=lambda c: print(f"{c.at:.3f} {c.kind} {c.command}", flush=True),
    ).start()
    started = time.monotonic()
    next_card = started + args.every if args.every > 0 else float("inf")
    try:
        while not args.seconds or time.monotonic() - started < args.seconds:
            if time.monotonic() >= next_card:
                if reader.secure:
                    reader.present_h10301(args.facility, args.card)
                    print(f"{time.time():.3f} card FC {args.facility} CN {args.card}", flush=True)
                next_card += args.every
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    finally:
        reader.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
