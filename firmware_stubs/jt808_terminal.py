"""A simulated JT/T 808 vehicle terminal over real TCP.

Like a real one it registers (0x0100) to get an auth code, authenticates with
it (0x0102) after every connect, sends heartbeats and location reports
(0x0200) and waits for each answer. Points taken while it has no connection
are kept and uploaded after reconnecting as one blind-area batch (0x0704).
Every frame the platform sends is recorded in `replies`; platform requests it
does not know are answered "unsupported", as the standard asks.

It speaks with the gateway's own codec (`gateway.devices.jt808`): it is a
client of the same protocol, not a second implementation of it.

Run alone: python -m firmware_stubs.jt808_terminal --host 127.0.0.1 --port 7611 --phone 13912345678 --count 10
"""

from __future__ import annotations

import argparse
import asyncio
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from gateway.devices import jt808
from gateway.devices.jt808 import Deframer, Frame, build_frame, parse_frame

EARTH_RADIUS_KM = 6371.0088


@dataclass(slots=True)
class Point:
    lat: float
    lon: float
    time: datetime  # aware, or naive in the terminal's own zone
    speed_kmh: float = 0.0
    heading: int = 0
    odometer_km: float | None = None
    sats: int | None = None
    fixed: bool = True
    acc: bool = True


def _bcd_time(local: datetime) -> bytes:
    return bytes.fromhex(local.strftime("%y%m%d%H%M%S"))


def _fixed_text(text: str, width: int) -> bytes:
    return text.encode("ascii")[:width].ljust(width, b"\x00")


def location_body(point: Point, local_time: datetime) -> bytes:
    """A 0x0200 body; `local_time` is the point's time on the terminal's clock."""
    status = (1 if point.acc else 0) | (2 if point.fixed else 0)
    status |= (4 if point.lat < 0 else 0) | (8 if point.lon < 0 else 0)
    body = struct.pack(
        ">IIIIHHH",
        0,
        status,
        round(abs(point.lat) * 1e6),
        round(abs(point.lon) * 1e6),
        0,
        min(round(point.speed_kmh * 10), 0xFFFF),
        point.heading % 360,
    ) + _bcd_time(local_time)
    if point.odometer_km is not None:
        body += struct.pack(">BBI", 0x01, 4, round(point.odometer_km * 10))
    if point.sats is not None:
        body += struct.pack(">BBB", 0x31, 1, point.sats)
    return body


def register_body(version: int, terminal_id: str, plate: str = "", plate_colour: int = 1) -> bytes:
    maker, model, id_width = (11, 30, 30) if version == 2019 else (5, 20, 7)
    return (
        struct.pack(">HH", 44, 300)
        + _fixed_text("SIMUL", maker)
        + _fixed_text("SIM-808", model)
        + _fixed_text(terminal_id, id_width)
        + bytes([plate_colour])
        + plate.encode("gbk")
    )


def auth_body(version: int, code: str, imei: str = "860000000000001", software: str = "SIM-1.0") -> bytes:
    raw = code.encode("gbk")
    if version == 2013:
        return raw
    return bytes([len(raw)]) + raw + _fixed_text(imei, 15) + _fixed_text(software, 20)


def bearing_deg(a: tuple[float, float], b: tuple[float, float]) -> int:
    lat1, lat2 = math.radians(a[0]), math.radians(b[0])
    dlon = math.radians(b[1] - a[1])
    x = math.sin(dlon) * math.cos(lat2)
    y = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(dlon)
    return round(math.degrees(math.atan2(x, y))) % 360


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lat2 = math.radians(a[0]), math.radians(b[0])
    dlon = math.radians(b[1] - a[1])
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


class SimulatedTerminal:
    def __init__(
        self,
        host: str,
        port: int,
        phone: str,
        version: int = 2013,
        auth_code: str | None = None,
        tz_hours: float = 8,
        terminal_id: str = "SIM0001",
        plate: str = "粤B12345",
        reply_timeout: float = 5.0,
        local_host: str | None = None,
    ) -> None:
        self.host, self.port, self.phone, self.version = host, port, phone, version
        self.auth_code = auth_code
        self.tz = timezone(timedelta(hours=tz_hours))
        self.terminal_id, self.plate = terminal_id, plate
        self.reply_timeout = reply_timeout
        self.local_host = local_host  # the source address to connect from (another host on loopback)
        self.replies: list[Frame] = []
        self.sent = 0
        self._serial = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._deframer = Deframer()
        self._received: list[Frame] = []  # parsed but not yet claimed by a request

    # --- connection -----------------------------------------------------------------------

    async def connect(self) -> None:
        local = (self.local_host, 0) if self.local_host else None
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port, local_addr=local)
        self._deframer = Deframer()
        self._received.clear()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (ConnectionError, OSError):
                pass  # the platform hung up first
        self._reader = self._writer = None

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def send_raw(self, data: bytes) -> None:
        if self._writer is None:
            raise ConnectionError("not connected")
        self._writer.write(data)
        await self._writer.drain()

    # --- messages ------------------------------------------------------------------------

    async def register(self) -> tuple[int, str | None]:
        """0x0100 -> 0x8100: (result, auth code or None); the code is kept for authenticate()."""
        reply = await self._request(jt808.REGISTER, register_body(self.version, self.terminal_id, self.plate))
        if len(reply.body) < 3:
            raise ConnectionError(f"registration reply {reply.body.hex()} is too short")
        result = reply.body[2]
        code = reply.body[3:].decode("gbk") if result == jt808.REGISTERED else None
        if code is not None:
            self.auth_code = code
        return result, code

    async def authenticate(self, code: str | None = None) -> int:
        code = self.auth_code if code is None else code
        if code is None:
            raise ValueError("no auth code: register first or pass one")
        return self._result(await self._request(jt808.AUTHENTICATE, auth_body(self.version, code)))

    async def heartbeat(self) -> int:
        return self._result(await self._request(jt808.HEARTBEAT, b""))

    async def logout(self) -> int:
        return self._result(await self._request(jt808.LOGOUT, b""))

    async def report(
        self,
        lat: float,
        lon: float,
        speed_kmh: float,
        heading: int,
        time: datetime,
        odometer_km: float | None = None,
        sats: int | None = None,
        fixed: bool = True,
        acc: bool = True,
    ) -> int:
        point = Point(lat, lon, time, speed_kmh, heading, odometer_km, sats, fixed, acc)
        return self._result(await self._request(jt808.LOCATION, location_body(point, self._local(point.time))))

    async def report_batch(self, points: Sequence[Point], blind_area: bool = True) -> int:
        body = bytearray(struct.pack(">HB", len(points), 1 if blind_area else 0))
        for point in points:
            item = location_body(point, self._local(point.time))
            body += struct.pack(">H", len(item)) + item
        return self._result(await self._request(jt808.BATCH_LOCATION, bytes(body)))

    async def drive(
        self,
        route: Sequence[tuple[float, float]],
        start: datetime,
        every_s: float = 30.0,
        offline: range | None = None,
        sats: int = 9,
        pace_s: float = 0.0,
    ) -> list[int]:
        """Report each waypoint in turn on a simulated clock; the results of every report and batch.

        While the index is in `offline` the connection is down and points are
        kept; on the first point after it the terminal reconnects,
        authenticates and uploads the kept points as one blind-area batch.
        """
        results: list[int] = []
        kept: list[Point] = []
        odometer = 0.0
        for index, here in enumerate(route):
            if index:
                odometer += distance_km(route[index - 1], here)
            ahead = route[index + 1] if index + 1 < len(route) else None
            behind = route[index - 1] if index else None
            heading = bearing_deg(here, ahead) if ahead else (bearing_deg(behind, here) if behind else 0)
            step_km = distance_km(here, ahead) if ahead else 0.0
            point = Point(
                here[0],
                here[1],
                start + timedelta(seconds=every_s * index),
                speed_kmh=step_km * 3600 / every_s,
                heading=heading,
                odometer_km=odometer,
                sats=sats,
            )
            if offline is not None and index in offline:
                if self.connected:
                    await self.close()
                kept.append(point)
                continue
            if kept:
                results.append(await self._reconnect_and_upload(kept))
                kept = []
            results.append(await self.report(**_fields(point)))
            if pace_s:
                await asyncio.sleep(pace_s)
        if kept:
            results.append(await self._reconnect_and_upload(kept))
        return results

    # --- internals -----------------------------------------------------------------------

    async def _reconnect_and_upload(self, kept: list[Point]) -> int:
        await self.connect()
        await self.authenticate()
        return await self.report_batch(kept, blind_area=True)

    def _local(self, time: datetime) -> datetime:
        return time if time.tzinfo is None else time.astimezone(self.tz)

    def _next_serial(self) -> int:
        serial = self._serial
        self._serial = (self._serial + 1) & 0xFFFF
        return serial

    def _frame(self, msg_id: int, serial: int, body: bytes) -> bytes:
        return build_frame(msg_id, self.phone, serial, body, version=self.version)

    @staticmethod
    def _result(reply: Frame) -> int:
        if len(reply.body) < 5:
            raise ConnectionError(f"platform reply {reply.body.hex()} is too short")
        return reply.body[4]

    async def _request(self, msg_id: int, body: bytes) -> Frame:
        """Send one message and wait for the platform's answer to it (same serial)."""
        serial = self._next_serial()
        await self.send_raw(self._frame(msg_id, serial, body))
        self.sent += 1
        expected = jt808.REGISTER_REPLY if msg_id == jt808.REGISTER else jt808.PLATFORM_REPLY
        return await asyncio.wait_for(self._await_reply(expected, serial), self.reply_timeout)

    async def _await_reply(self, msg_id: int, serial: int) -> Frame:
        while True:
            for frame in self._received:
                if frame.msg_id == msg_id and frame.body[:2] == struct.pack(">H", serial):
                    self._received.remove(frame)
                    return frame
            assert self._reader is not None
            data = await self._reader.read(4096)
            if not data:
                raise ConnectionError("the platform closed the connection")
            for content in self._deframer.feed(data):
                frame = parse_frame(content)
                self.replies.append(frame)
                if frame.msg_id in (jt808.PLATFORM_REPLY, jt808.REGISTER_REPLY):
                    self._received.append(frame)
                else:
                    await self._answer_unsupported(frame)

    async def _answer_unsupported(self, request: Frame) -> None:
        body = struct.pack(">HHB", request.serial, request.msg_id, jt808.UNSUPPORTED)
        await self.send_raw(self._frame(jt808.GENERAL_REPLY, self._next_serial(), body))


def _fields(point: Point) -> dict:
    return {
        "lat": point.lat,
        "lon": point.lon,
        "speed_kmh": point.speed_kmh,
        "heading": point.heading,
        "time": point.time,
        "odometer_km": point.odometer_km,
        "sats": point.sats,
        "fixed": point.fixed,
        "acc": point.acc,
    }


def demo_route(count: int, origin: tuple[float, float] = (22.543096, 114.057865)) -> list[tuple[float, float]]:
    """A gentle loop of `count` waypoints, about 100 m apart, around `origin`."""
    return [(origin[0] + 0.004 * math.sin(i / 8), origin[1] + 0.004 * (1 - math.cos(i / 8))) for i in range(count)]


async def _run(args: argparse.Namespace) -> int:
    terminal = SimulatedTerminal(args.host, args.port, args.phone, version=args.version, auth_code=args.auth_code)
    await terminal.connect()
    if terminal.auth_code is None:
        result, code = await terminal.register()
        print(f"register: result {result}, {'auth code received' if code else 'no auth code'}")  # never the code
        if code is None:
            return 1
    print(f"authenticate: result {await terminal.authenticate()}")
    print(f"heartbeat: result {await terminal.heartbeat()}")
    offline = range(args.offline_from, args.offline_from + args.offline_count) if args.offline_count else None
    start = datetime.now(UTC).replace(microsecond=0)
    results = await terminal.drive(demo_route(args.count), start, args.every, offline=offline, pace_s=args.pace)
    print(f"reports: {len(results)} answered, results {sorted(set(results))}")
    await terminal.close()
    return 0 if all(r == jt808.OK for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Simulated JT/T 808 terminal")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--phone", required=True, help="terminal phone number, digits")
    parser.add_argument("--version", type=int, choices=(2013, 2019), default=2013)
    parser.add_argument("--auth-code", default=None, help="skip registration and use this code")
    parser.add_argument("--count", type=int, default=10, help="waypoints to report")
    parser.add_argument("--every", type=float, default=30.0, help="simulated seconds between points")
    parser.add_argument("--pace", type=float, default=0.0, help="real seconds to wait between reports")
    parser.add_argument("--offline-from", type=int, default=0, help="first waypoint of an offline stretch")
    parser.add_argument("--offline-count", type=int, default=0, help="waypoints without connection")
    return asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
