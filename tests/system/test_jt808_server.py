"""JT/T 808 terminals against the gateway's TCP server: a real gateway process, real loopback sockets."""

from __future__ import annotations

import asyncio
import math
import socket
from datetime import UTC, datetime, timedelta, timezone

import pytest

from firmware_stubs.jt808_terminal import SimulatedTerminal
from gateway.devices import jt808
from tests.conftest import free_port, wait_for

PHONE = "13912345678"
START = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)  # 09:00 in the terminal's +08:00


def leg(start: tuple[float, float], east_km: float, steps: int) -> list[tuple[float, float]]:
    """Points going east from `start` (excluded) in equal steps."""
    lat, lon = start
    per_step = east_km / steps / (111.32 * math.cos(math.radians(lat)))
    return [(lat, lon + per_step * (i + 1)) for i in range(steps)]


def two_stop_route() -> list[tuple[float, float]]:
    """Parked 10 min, 3 km east, parked 10 min, 2 km east, parked 10 min; a fix every 30 s."""
    here = (31.2304, 121.4737)
    route = [here] * 20
    route += leg(route[-1], 3.0, 6)
    route += [route[-1]] * 20
    route += leg(route[-1], 2.0, 4)
    route += [route[-1]] * 20
    return route


@pytest.fixture
def fleet(gateway_factory):
    port = free_port()
    gw = gateway_factory("embedded", extra=f'[jt808]\nlisten = "127.0.0.1:{port}"\nidle_timeout_s = 10\n').start()
    creds = gw.register("gps-van-1", kind="gps", protocol="jt808", config={"phone": PHONE})["credentials"]
    gw.http.post(
        "/api/v1/vehicles", json={"id": "van-1", "plate": "沪A12345", "device_id": "gps-van-1"}
    ).raise_for_status()
    return gw, port, creds["auth_code"]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_a_terminal_registers_authenticates_and_its_route_becomes_two_trips(fleet):
    gw, port, auth_code = fleet

    async def drive() -> tuple[tuple[int, str], int, list[int]]:
        terminal = SimulatedTerminal("127.0.0.1", port, PHONE)
        await terminal.connect()
        registered = await terminal.register()
        auth = await terminal.authenticate()
        results = await terminal.drive(two_stop_route(), START, every_s=30, offline=range(30, 40))
        await terminal.heartbeat()
        await terminal.close()
        return registered, auth, results

    registered, auth, results = run(drive())
    assert registered == (jt808.REGISTERED, auth_code)
    assert auth == jt808.OK and set(results) == {jt808.OK}

    route = two_stop_route()
    fixes = wait_for(
        lambda: len(f := gw.all_items("/api/v1/vehicles/van-1/fixes")) == len(route) and f,
        15,
        0.2,
        what="every fix stored",
    )
    first = fixes[0]
    assert (first["lat"], first["lon"], first["time"]) == (31.2304, 121.4737, "2026-11-27T01:00:00Z")
    assert first["local_time"] == "2026-11-27T09:00:00+08:00" and first["source"] == "jt808"
    assert sum("blind_area" in f["flags"] for f in fixes) == 10  # the offline stretch came as one batch

    trips = wait_for(
        lambda: len(t := gw.all_items("/api/v1/vehicles/van-1/trips")) == 2 and t, 15, 0.2, what="two trips"
    )
    assert [t["distance_source"] for t in trips] == ["odometer", "odometer"]
    assert trips[0]["distance_km"] == pytest.approx(3.0, rel=0.05)
    assert trips[1]["distance_km"] == pytest.approx(2.0, rel=0.05)
    assert all("no_booking" in t["flags"] for t in trips)
    assert gw.http.get("/api/v1/devices/gps-van-1").json()["online"] is True

    stops = gw.http.get(
        "/api/v1/vehicles/van-1/stops", params={"since": "2026-11-27T00:00:00Z", "until": "2026-11-28T00:00:00Z"}
    ).json()["items"]
    assert len(stops) == 3 and [s["complete"] for s in stops] == [True, True, False]  # parked at the end
    assert all(s["duration_s"] >= 540 for s in stops[:2])

    gpx = gw.http.get("/api/v1/vehicles/van-1/trips.gpx")
    assert gpx.status_code == 200 and gpx.text.count("<trk>") == 2
    geo = gw.http.get("/api/v1/vehicles/van-1/trips.geojson").json()
    assert len(geo["features"]) == 2 and geo["features"][0]["geometry"]["coordinates"][0][0] > 100  # [lon, lat]


def test_a_booking_covers_its_trip_and_an_unused_one_is_flagged(fleet):
    gw, port, _ = fleet
    booked = gw.http.post(
        "/api/v1/vehicles/van-1/bookings",
        json={
            "person": "E1001",
            "start": "2026-11-27T09:05:00+08:00",
            "end": "2026-11-27T09:20:00+08:00",
            "purpose": "client visit",
        },
    )
    assert booked.status_code == 201
    unused = gw.http.post(
        "/api/v1/vehicles/van-1/bookings",
        json={"person": "E1002", "start": "2026-11-26T09:00:00+08:00", "end": "2026-11-26T10:00:00+08:00"},
    ).json()

    async def drive() -> None:
        terminal = SimulatedTerminal("127.0.0.1", port, PHONE)
        await terminal.connect()
        await terminal.register()
        await terminal.authenticate()
        await terminal.drive(two_stop_route(), START, every_s=30)
        await terminal.close()

    run(drive())
    trips = wait_for(
        lambda: len(t := gw.all_items("/api/v1/vehicles/van-1/trips")) == 2 and t, 15, 0.2, what="two trips"
    )
    assert trips[0]["booking_id"] == booked.json()["id"] and "no_booking" not in trips[0]["flags"]
    assert trips[1]["booking_id"] is None and "no_booking" in trips[1]["flags"]
    status = {b["id"]: b["status"] for b in gw.all_items("/api/v1/vehicles/van-1/bookings")}
    assert status == {booked.json()["id"]: "used", unused["id"]: "no_trip"}


def test_an_unknown_terminal_is_refused_and_garbage_does_not_disturb_another(fleet):
    gw, port, _ = fleet

    async def scenario() -> tuple[int, bool, list[int]]:
        stranger = SimulatedTerminal("127.0.0.1", port, "13800000000")
        await stranger.connect()
        refused, _ = await stranger.register()
        await stranger.close()
        noisy = socket.create_connection(("127.0.0.1", port))
        noisy.sendall(b"\x7e\x01\x02garbage\x7e\x7e\x7d\x7e" + bytes(range(256)))
        good = SimulatedTerminal("127.0.0.1", port, PHONE)
        await good.connect()
        await good.register()
        assert await good.authenticate() == jt808.OK
        results = [await good.report(31.23, 121.47, 30.0, 90, START + timedelta(seconds=i)) for i in range(3)]
        noisy.sendall(b"\x00" * 100)
        await good.close()
        noisy.close()
        return refused, True, results

    refused, _, results = run(scenario())
    assert refused == jt808.NO_SUCH_TERMINAL
    assert results == [jt808.OK] * 3
    wait_for(lambda: len(gw.all_items("/api/v1/vehicles/van-1/fixes")) == 3, 10, 0.2, what="the good fixes")
    letters = gw.all_items("/api/v1/deadletters")
    assert any(d["reason"] == "unknown_device" and d["source"] == "tcp" for d in letters)


def test_a_wrong_auth_code_is_refused_and_nothing_is_stored(fleet):
    gw, port, _ = fleet

    async def scenario() -> tuple[int, int]:
        terminal = SimulatedTerminal("127.0.0.1", port, PHONE, auth_code="not-the-code")
        await terminal.connect()
        auth = await terminal.authenticate()
        await terminal.close()
        late = SimulatedTerminal("127.0.0.1", port, PHONE)
        await late.connect()
        result = await late.report(31.23, 121.47, 30.0, 90, START)  # no authentication first
        await late.close()
        return auth, result

    assert run(scenario()) == (jt808.FAILED, jt808.FAILED)
    reasons = wait_for(
        lambda: {d["reason"] for d in gw.all_items("/api/v1/deadletters")} >= {"not_authorized", "not_authenticated"},
        10,
        0.2,
        what="both refusals dead-lettered",
    )
    assert reasons
    assert gw.all_items("/api/v1/vehicles/van-1/fixes") == []


def bad_checksum_frame(serial: int) -> bytes:
    """A 0x0200 frame whose checksum byte is wrong (and still needs no escaping)."""
    from firmware_stubs.jt808_terminal import Point, location_body

    body = location_body(Point(31.2304, 121.4737, START), START.astimezone(timezone(timedelta(hours=8))))
    frame = bytearray(jt808.build_frame(jt808.LOCATION, PHONE, serial, body))
    for flip in (0x01, 0x02, 0x04):
        if frame[-2] ^ flip not in (0x7D, 0x7E):
            frame[-2] ^= flip
            return bytes(frame)
    raise AssertionError("no flip avoids an escape")


@pytest.mark.parametrize("accept", [True, False])
def test_a_bad_checksum_is_counted_and_stored_flagged_or_refused_by_policy(gateway_factory, accept):
    port = free_port()
    extra = f'[jt808]\nlisten = "127.0.0.1:{port}"\naccept_bad_checksum = {str(accept).lower()}\n'
    gw = gateway_factory("embedded", extra=extra).start()
    gw.register("gps-van-1", kind="gps", protocol="jt808", config={"phone": PHONE})
    gw.http.post("/api/v1/vehicles", json={"id": "van-1", "plate": "A1", "device_id": "gps-van-1"}).raise_for_status()

    async def scenario() -> int:
        terminal = SimulatedTerminal("127.0.0.1", port, PHONE)
        await terminal.connect()
        await terminal.register()
        await terminal.authenticate()
        await terminal.send_raw(bad_checksum_frame(100))
        await terminal.heartbeat()  # the stub reads while it waits for an answer: ours arrives first
        await terminal.close()
        answers = [r for r in terminal.replies if r.msg_id == jt808.PLATFORM_REPLY and r.body[:2] == b"\x00\x64"]
        assert len(answers) == 1
        return answers[0].body[4]  # the 0x8001 result for serial 100

    result = run(scenario())
    assert gw.metric("gateway_jt808_frames_total", problem="bad_checksum") == 1
    if accept:
        assert result == jt808.OK
        fixes = wait_for(lambda: gw.all_items("/api/v1/vehicles/van-1/fixes"), 10, 0.1, what="the fix")
        assert "bad_checksum" in fixes[0]["flags"]
    else:
        assert result == jt808.BAD_MESSAGE
        assert gw.all_items("/api/v1/vehicles/van-1/fixes") == []
        wait_for(
            lambda: any(d["reason"] == "bad_checksum" for d in gw.all_items("/api/v1/deadletters")),
            10,
            0.1,
            what="the refused frame dead-lettered",
        )
