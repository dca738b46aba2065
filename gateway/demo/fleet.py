"""The demo office's vehicles: two vans with JT/T 808 terminals over TCP, driving from the depot to a stop
and back over and over, and a car with an NMEA receiver on a pty link, circling the district in real time.

The vans' clock runs fast (one wall second is `SPEEDUP` seconds of driving) starting two hours ago, so trips,
stops and car-park events show up within minutes; once it has caught up with now it runs at real time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session

from gateway.app import Gateway
from gateway.config import SerialLineSettings, Settings
from gateway.core.asyncutil import cancel_and_wait
from gateway.core.timeutil import now_ms
from gateway.demo.office import register
from gateway.store.models import Geofence, Vehicle

log = logging.getLogger(__name__)

DEPOT = (31.2304, 121.4737)
SPEEDUP = 15.0
EVERY_S = 15  # simulated seconds between two fixes
# (vehicle, plate, device, phone, JT/T 808 version, (km east, km north) of its stop, minutes parked there)
VANS = (
    ("van-1", "SH-D1001", "gps-van-1", "13800000001", 2013, (3.0, 0.5), 12),
    ("van-2", "SH-D1002", "gps-van-2", "13800000002", 2019, (-1.0, 2.5), 8),
)
CAR = ("car-3", "SH-D1003", "gps-car-3")


def offset(km_east: float, km_north: float) -> tuple[float, float]:
    lat = DEPOT[0] + km_north / 111.32
    return lat, DEPOT[1] + km_east / (111.32 * math.cos(math.radians(DEPOT[0])))


def leg(a: tuple[float, float], b: tuple[float, float], kmh: float = 36) -> list[tuple[float, float]]:
    """Fixes every EVERY_S seconds from a to b at a steady speed."""
    km = math.dist((a[0] * 111.32, a[1] * 95.3), (b[0] * 111.32, b[1] * 95.3))
    steps = max(1, round(km / (kmh * EVERY_S / 3600)))
    return [(a[0] + (b[0] - a[0]) * i / steps, a[1] + (b[1] - a[1]) * i / steps) for i in range(1, steps + 1)]


def round_trip(stop: tuple[float, float], parked_min: int) -> list[tuple[float, float]]:
    parked = [stop] * (parked_min * 60 // EVERY_S)
    at_depot = [DEPOT] * (6 * 60 // EVERY_S)
    return leg(DEPOT, stop) + parked + leg(stop, DEPOT) + at_depot


class SimClock:
    def __init__(self) -> None:
        self.wall0 = time.monotonic()
        self.sim0 = datetime.now(UTC) - timedelta(hours=2)

    def now(self) -> datetime:
        elapsed = time.monotonic() - self.wall0
        fast = self.sim0 + timedelta(seconds=elapsed * SPEEDUP)
        return min(fast, datetime.now(UTC))

    def pace(self) -> float:
        """Wall seconds per fix: fast while behind, real time once caught up."""
        behind = datetime.now(UTC) - self.now()
        return EVERY_S / SPEEDUP if behind > timedelta(seconds=EVERY_S) else EVERY_S


class DemoFleet:
    def __init__(self) -> None:
        from firmware_stubs.pty_link import PtyLink

        self.nmea_link = PtyLink().start()
        self.clock = SimClock()
        self.codes: dict[str, str] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._receiver: Any = None

    def configure(self, settings: Settings) -> None:
        if not settings.jt808.listen:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                settings.jt808.listen = f"127.0.0.1:{sock.getsockname()[1]}"
        settings.serial.append(SerialLineSettings(port=self.nmea_link.gateway_end, protocol="nmea", baudrate=9600))

    def provision(self, gateway: Gateway) -> None:
        for _vehicle, plate, device, phone, _, _, _ in VANS:
            creds = register(gateway, device, "jt808", {"phone": phone}, kind="gps", name=f"{plate} terminal")
            # The van is given its code by hand and binds by authenticating with it (no registration).
            self.codes[phone] = creds["auth_code"]
        register(gateway, CAR[2], "nmea", {"line": self.nmea_link.gateway_end}, kind="gps", name="Car GNSS receiver")
        now = now_ms()
        with Session(gateway.engine) as session:
            for vehicle, plate, device, *_ in (*VANS, CAR):
                row = session.get(Vehicle, vehicle) or Vehicle(id=vehicle, plate=plate, created_at=now)
                row.plate, row.device_id, row.name, row.updated_at = plate, device, f"Demo {vehicle}", now
                session.add(row)
            if session.get(Geofence, "depot") is None:
                session.add(
                    Geofence(
                        id="depot",
                        name="Depot car park",
                        dwell_s=60,
                        shape={"circle": {"lat": DEPOT[0], "lon": DEPOT[1], "radius_m": 150}},
                    )
                )
            session.commit()
        for vehicle, _, device, *_ in (*VANS, CAR):
            gateway.registry.link_vehicle(vehicle, device)

    def start(self, gateway: Gateway) -> None:
        from firmware_stubs.nmea_receiver import NmeaReceiver, along

        host, _, port = gateway.settings.jt808.listen.rpartition(":")
        for _, _, _, phone, version, (east, north), parked in VANS:
            route = round_trip(offset(east, north), parked)
            self._tasks.append(asyncio.create_task(self._van(host, int(port), phone, version, route)))
        loop = [DEPOT, offset(1.5, -1.0), offset(2.5, 0.0), offset(1.0, 1.2)]
        self._receiver = NmeaReceiver(self.nmea_link.device_end, along(loop, speed_kmh=30))  # real time, 1 Hz
        self._receiver.start()

    async def _van(self, host: str, port: int, phone: str, version: int, route: list) -> None:
        from firmware_stubs.jt808_terminal import SimulatedTerminal

        while True:
            terminal = SimulatedTerminal(host, port, phone, version=version, auth_code=self.codes[phone])
            try:
                await terminal.connect()
                await terminal.authenticate()
                before = route[-1]
                for here in route:
                    speed = 0.0 if here == before else 36.0
                    await terminal.report(here[0], here[1], speed, 90, self.clock.now(), sats=9)
                    await asyncio.sleep(self.clock.pace())
                    before = here
            except asyncio.CancelledError:
                await terminal.close()
                raise
            except Exception as exc:  # the gateway is stopping or restarting: try again shortly
                log.debug("demo van %s: %s", phone, exc)
                await asyncio.sleep(1.0)
            finally:
                await terminal.close()

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        if self._receiver is not None:
            await asyncio.to_thread(self._receiver.close)
        self.nmea_link.close()
