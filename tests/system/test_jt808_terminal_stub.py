"""The simulated JT/T 808 terminal against a tiny platform on real loopback TCP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from firmware_stubs.jt808_terminal import SimulatedTerminal, bearing_deg, distance_km
from gateway.devices import jt808, jt808_location
from gateway.devices.jt808 import (
    Deframer,
    build_frame,
    general_response,
    parse_frame,
    register_response,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = UTC
CODE = "K3y-0001"
PHONE = "13912345678"


class Platform:
    """Answers the way the gateway should, with the codec's reply builders, and keeps what it decoded."""

    def __init__(self) -> None:
        self.frames: list[jt808.Frame] = []
        self.fixes: list = []
        self.connections = 0
        self.codes: list[str] = []
        self.push_command = False
        self._serial = 0

    def _next(self) -> int:
        self._serial += 1
        return self._serial

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        deframer = Deframer()
        try:
            while data := await reader.read(4096):
                for content in deframer.feed(data):
                    frame = parse_frame(content)
                    self.frames.append(frame)
                    writer.write(self._answer(frame))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _answer(self, frame: jt808.Frame) -> bytes:
        if frame.msg_id == jt808.REGISTER:
            jt808.parse_register(frame.body, frame.version)
            return register_response(frame, self._next(), jt808.REGISTERED, CODE)
        if frame.msg_id == jt808.AUTHENTICATE:
            code = jt808.parse_auth(frame.body, frame.version)
            self.codes.append(code)
            return general_response(frame, self._next(), jt808.OK if code == CODE else jt808.FAILED)
        if frame.msg_id == jt808.LOCATION:
            self.fixes.append(jt808_location.parse_location(frame.body, PHONE, SHANGHAI))
        elif frame.msg_id == jt808.BATCH_LOCATION:
            self.fixes.extend(jt808_location.parse_batch(frame.body, PHONE, SHANGHAI).events)
        answer = general_response(frame, self._next())
        if self.push_command:  # a platform request the terminal does not know, ahead of the answer
            self.push_command = False
            answer = build_frame(0x8201, frame.phone, self._next(), b"", frame.version) + answer
        return answer


async def with_platform(scenario):
    platform = Platform()
    server = await asyncio.start_server(platform.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return platform, await scenario(port, platform)
    finally:
        server.close()
        await server.wait_closed()


def test_register_authenticate_heartbeat_and_report_over_tcp():
    async def scenario(port, platform):
        terminal = SimulatedTerminal("127.0.0.1", port, PHONE)
        await terminal.connect()
        registered = await terminal.register()
        results = [await terminal.authenticate("wrong"), await terminal.authenticate(), await terminal.heartbeat()]
        results.append(
            await terminal.report(
                22.543096, 114.057865, 36.5, 270, datetime(2026, 11, 27, 3, 0), odometer_km=12.3, sats=8
            )
        )
        await terminal.close()
        return terminal, registered, results

    platform, (terminal, registered, results) = asyncio.run(with_platform(scenario))
    assert registered == (jt808.REGISTERED, CODE)
    assert results == [jt808.FAILED, jt808.OK, jt808.OK, jt808.OK]
    assert platform.codes == ["wrong", CODE]
    assert [f.msg_id for f in platform.frames] == [0x0100, 0x0102, 0x0102, 0x0002, 0x0200]
    assert [f.serial for f in platform.frames] == [0, 1, 2, 3, 4]
    assert all(f.checksum_ok and f.length_ok and f.phone == PHONE for f in platform.frames)
    (fix,) = platform.fixes
    assert (fix.lat, fix.lon, fix.speed_kmh, fix.heading, fix.odometer_km, fix.sats) == (
        22.543096,
        114.057865,
        36.5,
        270.0,
        12.3,
        8,
    )
    # A naive time is the terminal's own clock (GMT+8).
    assert fix.time == datetime(2026, 11, 26, 19, 0, tzinfo=UTC)
    assert [r.msg_id for r in terminal.replies] == [0x8100] + [0x8001] * 4


def test_2019_terminal_answers_an_unknown_command_and_still_gets_its_reply():
    async def scenario(port, platform):
        terminal = SimulatedTerminal("127.0.0.1", port, PHONE, version=2019, auth_code=CODE)
        await terminal.connect()
        platform.push_command = True
        result = await terminal.heartbeat()
        # The terminal's answer to the command arrives after the heartbeat's reply was sent.
        await terminal.heartbeat()
        await terminal.close()
        return terminal, result

    platform, (terminal, result) = asyncio.run(with_platform(scenario))
    assert result == jt808.OK
    assert [f.version for f in platform.frames] == [2019] * 3
    answer = next(f for f in platform.frames if f.msg_id == jt808.GENERAL_REPLY)
    assert answer.body[2:] == bytes.fromhex("8201 03")  # unsupported
    assert [r.msg_id for r in terminal.replies][:2] == [0x8201, 0x8001]


def test_drive_uploads_the_offline_stretch_as_one_blind_area_batch():
    route = [(22.5430 + 0.001 * i, 114.0578 + 0.001 * i) for i in range(8)]
    start = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)

    async def scenario(port, platform):
        terminal = SimulatedTerminal("127.0.0.1", port, PHONE, auth_code=CODE)
        await terminal.connect()
        await terminal.authenticate()
        results = await terminal.drive(route, start, every_s=60, offline=range(3, 6))
        await terminal.close()
        return results

    platform, results = asyncio.run(with_platform(scenario))
    # 5 live reports and one batch, all answered ok.
    assert results == [jt808.OK] * 6
    assert platform.connections == 2
    ids = [f.msg_id for f in platform.frames]
    assert ids == [0x0102, 0x0200, 0x0200, 0x0200, 0x0102, 0x0704, 0x0200, 0x0200]
    assert [(round(f.lat, 6), round(f.lon, 6)) for f in platform.fixes] == [
        (round(a, 6), round(b, 6)) for a, b in route[:3] + route[3:6] + route[6:]
    ]
    assert [f.time for f in platform.fixes] == [start.replace(minute=i) for i in range(8)]
    assert [f.flags for f in platform.fixes[3:6]] == [["blind_area"]] * 3
    assert platform.fixes[0].flags == []
    odometer = [f.odometer_km for f in platform.fixes]
    assert odometer == sorted(odometer) and odometer[0] == 0.0
    assert abs(odometer[-1] - 7 * distance_km(route[0], route[1])) <= 0.05
    assert platform.fixes[2].heading == bearing_deg(route[2], route[3])
