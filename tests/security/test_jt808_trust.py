"""Attacks on JT/T 808 terminal trust, against a real gateway over loopback TCP.

127.0.0.1 is the van's terminal; 127.0.0.2 plays another host on the network that knows the van's phone
number (it is printed on the SIM card). Each attack checks that nothing was stored for the van, that the
van itself keeps working and that the gateway stays healthy.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from datetime import UTC, datetime, timedelta

import pytest

from firmware_stubs.jt808_terminal import Point, SimulatedTerminal, location_body
from gateway.devices import jt808
from tests.conftest import free_port, wait_for

PHONE = "13912345678"
TERMINAL_ID, PLATE = "SIM0001", "粤B12345"  # what the stub's 0x0100 says
START = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
ATTACKER = "127.0.0.2"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def start(gateway_factory, extra: str = "") -> tuple:
    port = free_port()
    gw = gateway_factory("embedded", extra=f'[jt808]\nlisten = "127.0.0.1:{port}"\n{extra}').start()
    config = {"phone": PHONE, "terminal_id": TERMINAL_ID, "plate": PLATE}
    creds = gw.register("gps-van-1", kind="gps", protocol="jt808", config=config)["credentials"]
    gw.http.post("/api/v1/vehicles", json={"id": "van-1", "plate": PLATE, "device_id": "gps-van-1"}).raise_for_status()
    return gw, port, creds["auth_code"]


@pytest.fixture
def fleet(gateway_factory):
    return start(gateway_factory)


def van(port: int, **kwargs) -> SimulatedTerminal:
    return SimulatedTerminal("127.0.0.1", port, PHONE, reply_timeout=10, **kwargs)


def stranger(port: int, **kwargs) -> SimulatedTerminal:
    return SimulatedTerminal("127.0.0.1", port, PHONE, local_host=ATTACKER, reply_timeout=10, **kwargs)


async def drive_once(terminal: SimulatedTerminal, seconds: int = 0) -> int:
    """Connect, authenticate with the code the terminal holds, one report; the first result not OK."""
    await terminal.connect()
    try:
        if (auth := await terminal.authenticate()) != jt808.OK:
            return auth
        return await terminal.report(31.23, 121.47, 30.0, 90, START + timedelta(seconds=seconds))
    finally:
        await terminal.close()


def fixes(gw) -> list[dict]:
    return gw.all_items("/api/v1/vehicles/van-1/fixes")


def letters(gw, reason: str) -> list[dict]:
    return [d for d in gw.all_items("/api/v1/deadletters") if d["reason"] == reason]


def assert_healthy(gw, code: str | None = None) -> None:
    assert gw.http.get("/healthz").status_code == 200
    if code is not None:
        assert code not in gw.log.read_text(errors="replace")  # no log line carries a code


def test_a_stranger_who_knows_the_phone_gets_no_code(fleet):
    gw, port, code = fleet

    async def scenario() -> tuple:
        wrong = stranger(port, terminal_id="FAKE001")  # before the van registers: the body must match
        await wrong.connect()
        refused_early = await wrong.register()
        await wrong.close()
        real = van(port)
        await real.connect()
        registered = await real.register()
        await real.close()
        copy = stranger(port)  # the same body as the van's, after it bound
        await copy.connect()
        refused_late = await copy.register()
        late_auth = await copy.authenticate(code="guess-0000000000")
        await copy.close()
        return refused_early, registered, refused_late, late_auth, await drive_once(real)

    refused_early, registered, refused_late, late_auth, report = run(scenario())
    assert refused_early == (jt808.NO_SUCH_TERMINAL, None)
    assert registered == (jt808.REGISTERED, code)  # the code answered at creation is the first binding's
    assert refused_late == (jt808.TERMINAL_TAKEN, None)
    assert late_auth == jt808.FAILED
    assert report == jt808.OK  # the van keeps working
    wait_for(lambda: len(fixes(gw)) == 1, 10, 0.1, what="the van's fix")
    assert len(letters(gw, "not_authorized")) == 3
    assert_healthy(gw, code)


def test_a_code_replayed_after_a_rebinding_fails(fleet):
    gw, port, code = fleet

    async def bind(terminal: SimulatedTerminal) -> tuple[int, str | None]:
        await terminal.connect()
        try:
            return await terminal.register()
        finally:
            await terminal.close()

    real = van(port)
    assert run(bind(real)) == (jt808.REGISTERED, code)
    assert run(bind(van(port)))[0] == jt808.TERMINAL_TAKEN  # bound: no second code
    answer = gw.http.post("/api/v1/devices/gps-van-1/unbind")  # the installer rebinds the van
    assert answer.status_code == 200 and answer.json()["forgot"] == "binding"
    result, fresh = run(bind(real))
    assert result == jt808.REGISTERED and fresh and fresh != code

    replay = stranger(port, auth_code=code)  # the old code, from another host
    assert run(drive_once(replay)) == jt808.FAILED
    assert run(drive_once(real, 1)) == jt808.OK

    # A 0x0003 deregistration on the authenticated connection unbinds as well.
    async def deregister() -> int:
        await real.connect()
        await real.authenticate()
        result = await real.logout()
        await real.close()
        return result

    assert run(deregister()) == jt808.OK
    assert run(drive_once(stranger(port, auth_code=fresh))) == jt808.FAILED
    assert run(bind(real))[0] == jt808.REGISTERED and real.auth_code not in (code, fresh)
    assert run(drive_once(real, 2)) == jt808.OK

    wait_for(lambda: len(fixes(gw)) == 2, 10, 0.1, what="the van's two fixes")
    actions = [e["action"] for e in gw.all_items("/api/v1/audit", target_id="gps-van-1")]
    assert actions.count("unbind") == 2 and actions.count("bind") == 3
    assert_healthy(gw, code)


def test_a_location_before_authentication_is_refused(fleet):
    gw, port, code = fleet
    other = "13900000009"  # a second provisioned van, whose code this connection never showed
    gw.register("gps-van-2", kind="gps", protocol="jt808", config={"phone": other})
    gw.http.post("/api/v1/vehicles", json={"id": "van-2", "plate": "A2", "device_id": "gps-van-2"}).raise_for_status()
    body = location_body(Point(31.23, 121.47, START), START)

    async def scenario() -> tuple[list[int], int]:
        early = stranger(port)
        await early.connect()
        results = [await early.report(31.23, 121.47, 30.0, 90, START)]
        batch = [Point(31.23, 121.47, START + timedelta(seconds=1))]
        results.append(await early.report_batch(batch))
        await early.close()
        # Authenticated as the van, then speaking for another phone on the same connection.
        real = van(port, auth_code=code)
        await real.connect()
        assert await real.authenticate() == jt808.OK
        await real.send_raw(jt808.build_frame(jt808.LOCATION, other, 50, body))
        try:
            await real.heartbeat()
            switched = jt808.OK
        except ConnectionError:
            switched = jt808.FAILED
        await real.close()
        return results, switched

    results, switched = run(scenario())
    assert results == [jt808.FAILED, jt808.FAILED] and switched == jt808.FAILED
    wait_for(lambda: len(letters(gw, "not_authenticated")) == 2, 10, 0.1, what="both refusals dead-lettered")
    assert fixes(gw) == [] and gw.all_items("/api/v1/vehicles/van-2/fixes") == []
    assert letters(gw, "not_authorized")  # the other phone on the van's connection
    assert run(drive_once(van(port, auth_code=code))) == jt808.OK
    wait_for(lambda: len(fixes(gw)) == 1, 10, 0.1, what="the van's fix")
    assert_healthy(gw, code)


def test_the_dead_letter_of_a_wrong_authentication_holds_no_code(fleet):
    gw, port, code = fleet
    near_miss = code[:-1] + ("A" if code[-1] != "A" else "B")
    for version in (2013, 2019):
        assert run(drive_once(stranger(port, auth_code=near_miss, version=version))) == jt808.FAILED
    dead = wait_for(lambda: len(d := letters(gw, "not_authorized")) == 2 and d, 10, 0.1, what="dead letters")
    for letter in dead:
        raw = base64.b64decode(letter["raw_b64"])
        assert near_miss.encode() not in raw and code[:8].encode() not in raw
        frame = jt808.parse_frame(raw)
        assert frame.msg_id == jt808.AUTHENTICATE and frame.phone == PHONE and frame.checksum_ok
    assert run(drive_once(van(port, auth_code=code))) == jt808.OK
    assert_healthy(gw, near_miss)


def test_the_allow_list_closes_a_connection_from_elsewhere_unread(gateway_factory):
    gw, port, code = start(gateway_factory, 'allow = ["127.0.0.1/32"]\n')
    before = len(gw.all_items("/api/v1/deadletters"))
    for _ in range(20):
        with socket.socket() as sock:
            sock.bind((ATTACKER, 0))
            sock.settimeout(10)
            sock.connect(("127.0.0.1", port))
            try:
                sock.sendall(jt808.build_frame(jt808.REGISTER, PHONE, 1, b"\x00" * 40))
                answer = sock.recv(1024)
            except ConnectionError:
                answer = b""
            assert answer == b""  # closed, never answered
    wait_for(lambda: gw.metric("gateway_jt808_refused_total", reason="not_allowed") == 20, 10, 0.1, what="counted")
    assert len(gw.all_items("/api/v1/deadletters")) == before  # no dead-letter flood
    real = van(port)

    async def legit() -> tuple[int, str | None]:
        await real.connect()
        registered = await real.register()
        await real.close()
        return registered

    assert run(legit()) == (jt808.REGISTERED, code)
    assert run(drive_once(real)) == jt808.OK
    assert_healthy(gw, code)
