"""Attacks on ZK ADMS push from a second host on the LAN (source address 127.0.0.2), against the real
gateway process: the real terminal pushes from 127.0.0.1 and is pinned there at its first request."""

from __future__ import annotations

import base64
import socket

import httpx
import pytest

from firmware_stubs.zk_terminal import ZkTerminal
from tests.conftest import free_port

SN = "CKJA193960001"
ATTACKER = "127.0.0.2"
FORGED = b"6666\t2026-11-27 08:59:03\t0\t1\t0\t0\n"


def attacker(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, transport=httpx.HTTPTransport(local_address=ATTACKER), timeout=20)


@pytest.fixture
def gw(gateway_factory):
    return gateway_factory("embedded").start()


@pytest.fixture
def zk(gw):
    gw.register("zk-1", protocol="zk-adms", config={"sn": SN})
    terminal = ZkTerminal(f"http://127.0.0.1:{gw.api_port}", SN, retry_delay=0.05)
    terminal.handshake()  # its first request: pinned to 127.0.0.1
    yield terminal
    terminal.close()


def punches(gw):
    return gw.all_items("/api/v1/attendance/punches", device_id="zk-1")


def healthy(gw) -> bool:
    return gw.http.get("/healthz").status_code == 200


def test_the_first_request_pins_the_terminal_address(gw, zk):
    assert gw.http.get("/api/v1/devices/zk-1").json()["config"] == {"sn": SN, "address": "127.0.0.1"}


def test_a_punch_from_a_second_address_is_refused_and_the_terminal_keeps_working(gw, zk):
    with attacker(f"http://127.0.0.1:{gw.api_port}") as evil:
        forged = evil.post("/iclock/cdata", params={"SN": SN, "table": "ATTLOG"}, content=FORGED * 2000)
        assert forged.status_code == 403 and not forged.text.startswith("OK")
        assert evil.get("/iclock/cdata", params={"SN": SN, "options": "all"}).status_code == 403
    assert punches(gw) == []
    dead = gw.all_items("/api/v1/deadletters", reason="address_mismatch")
    assert len(dead) == 2 and {d["device_id"] for d in dead} == {"zk-1"}
    assert all(len(base64.b64decode(d["raw_b64"])) <= 4096 for d in dead)  # a sample, not the body
    assert all("127.0.0.2" in d["detail"] for d in dead)
    device = gw.http.get("/api/v1/devices/zk-1").json()
    assert device["config"]["address"] == "127.0.0.1"  # not re-pinned
    assert device["counters"]["errors"] >= 1  # the alert shows on the device

    zk.punch(3)
    assert zk.push() == 3
    assert len(punches(gw)) == 3 and healthy(gw)


def test_a_poll_from_a_second_address_gets_no_command_and_a_result_finishes_nothing(gw, zk):
    queued = gw.http.post(
        "/api/v1/devices/zk-1/commands", json={"name": "sync_user", "args": {"pin": "1001", "password": "4321"}}
    ).json()
    with attacker(f"http://127.0.0.1:{gw.api_port}") as evil:
        stolen = evil.get("/iclock/getrequest", params={"SN": SN})
        assert stolen.status_code == 403 and "4321" not in stolen.text and "C:" not in stolen.text
        command = gw.http.get(f"/api/v1/devices/zk-1/commands/{queued['id']}").json()
        assert command["state"] == "queued"

        (received,) = zk_poll_without_answers(zk)
        wire = received[0]
        finished = evil.post("/iclock/devicecmd", params={"SN": SN}, content=f"ID={wire}&Return=0&CMD=DATA\n".encode())
        assert finished.status_code == 403
    assert gw.http.get(f"/api/v1/devices/zk-1/commands/{queued['id']}").json()["state"] == "sent"
    zk.http.post(
        "/iclock/devicecmd", params={"SN": SN}, content=f"ID={wire}&Return=0&CMD=DATA\n".encode()
    ).raise_for_status()
    assert gw.http.get(f"/api/v1/devices/zk-1/commands/{queued['id']}").json()["state"] == "succeeded"
    assert healthy(gw)


def zk_poll_without_answers(zk: ZkTerminal) -> list[tuple[str, str]]:
    zk.answer_commands = False
    try:
        return zk.poll()
    finally:
        zk.answer_commands = True


def test_a_terminal_set_to_an_address_at_registration_is_refused_elsewhere(gw):
    gw.register("zk-2", protocol="zk-adms", config={"sn": "FIXED0001", "address": "127.0.0.3"})
    with attacker(f"http://127.0.0.1:{gw.api_port}") as evil:
        assert evil.get("/iclock/getrequest", params={"SN": "FIXED0001"}).status_code == 403
    assert httpx.get(f"http://127.0.0.1:{gw.api_port}/iclock/getrequest", params={"SN": "FIXED0001"}).status_code == 403
    local3 = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.3"))
    with local3:
        assert local3.get(f"http://127.0.0.1:{gw.api_port}/iclock/getrequest", params={"SN": "FIXED0001"}).text == "OK"


def test_an_unknown_serial_number_flood_keeps_only_samples(gw):
    db = gw.workdir / "gateway.db"
    before = db.stat().st_size
    big = FORGED * (1024 * 1024 // len(FORGED))  # 1 MiB each
    with attacker(f"http://127.0.0.1:{gw.api_port}") as evil:
        for i in range(10):
            answer = evil.post("/iclock/cdata", params={"SN": f"NOBODY{i}", "table": "ATTLOG"}, content=big)
            assert answer.text == "OK:0"
        too_big = evil.post("/iclock/cdata", params={"SN": "NOBODY", "table": "ATTLOG"}, content=b"x" * (17 << 20))
        assert too_big.status_code == 413
    dead = gw.all_items("/api/v1/deadletters", reason="unknown_device")
    assert len(dead) == 10 and all(len(base64.b64decode(d["raw_b64"])) <= 4096 for d in dead)
    assert db.stat().st_size - before < 2 * 1024 * 1024  # ten 1 MiB posts, not 10 MiB
    assert healthy(gw)


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(gw, zk):
    raw = _raw_post(gw.api_port, f"/iclock/cdata?SN={SN}&table=ATTLOG", 64 << 20)
    assert raw.startswith(b"HTTP/1.1 413")
    assert punches(gw) == [] and healthy(gw)


def _raw_post(port: int, path: str, declared: int) -> bytes:
    """A request that declares a huge body and sends none of it: the answer comes without reading."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(ATTACKER, 0)) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n\r\n".encode())
        return sock.recv(4096)


def push_two(url: str) -> int:
    terminal = ZkTerminal(url, SN)
    try:
        terminal.punch(2)
        return terminal.push()
    finally:
        terminal.close()


def test_the_allow_list_refuses_an_address_outside_it(gateway_factory):
    gw = gateway_factory("embedded", extra='[zk]\nallow = ["127.0.0.1/32"]').start()
    gw.register("zk-1", protocol="zk-adms", config={"sn": SN})
    raw = _raw_post(gw.api_port, f"/iclock/cdata?SN={SN}&table=ATTLOG", 1 << 20)
    assert raw.startswith(b"HTTP/1.1 403")
    with attacker(f"http://127.0.0.1:{gw.api_port}") as evil:
        assert evil.get("/iclock/getrequest", params={"SN": SN}).status_code == 403
    # Nothing pinned by the refused sender: the terminal inside the list is served and pinned.
    assert push_two(f"http://127.0.0.1:{gw.api_port}") == 2
    assert gw.http.get("/api/v1/devices/zk-1").json()["config"]["address"] == "127.0.0.1"
    assert gw.all_items("/api/v1/deadletters") == []


def test_on_its_own_listener_iclock_is_not_served_on_the_api_port(gateway_factory):
    port = free_port()
    gw = gateway_factory("embedded", extra=f'[zk]\nlisten = "127.0.0.1:{port}"').start()
    gw.register("zk-1", protocol="zk-adms", config={"sn": SN})
    api = httpx.get(f"http://127.0.0.1:{gw.api_port}/iclock/getrequest", params={"SN": SN})
    assert api.status_code == 404
    assert push_two(f"http://127.0.0.1:{port}") == 2
    assert len(punches(gw)) == 2
    # The device listener serves only /iclock: no API, no docs.
    assert httpx.get(f"http://127.0.0.1:{port}/api/v1/devices").status_code == 404
    assert httpx.get(f"http://127.0.0.1:{port}/openapi.json").status_code == 404
    assert gw.terminate() == 0


def test_an_unbound_terminal_is_pinned_again_at_its_next_request(gw, zk):
    config = {"sn": SN}  # what the installer's unbind leaves
    assert gw.http.patch("/api/v1/devices/zk-1", json={"config": config}).status_code == 200
    with attacker(f"http://127.0.0.1:{gw.api_port}") as moved:
        assert moved.get("/iclock/getrequest", params={"SN": SN}).text == "OK"
    assert gw.http.get("/api/v1/devices/zk-1").json()["config"]["address"] == ATTACKER


def test_a_wrong_comm_key_is_refused_and_pins_nothing(gw):
    gw.register("zk-k", protocol="zk-adms", config={"sn": "KEYED0001", "comm_key": "1234"})
    url = f"http://127.0.0.1:{gw.api_port}"
    wrong = ZkTerminal(url, "KEYED0001", comm_key="9999", local_address=ATTACKER)
    right = ZkTerminal(url, "KEYED0001", comm_key="1234")
    try:
        with pytest.raises(httpx.HTTPStatusError) as refused:
            wrong.handshake()
        assert refused.value.response.status_code == 403
        assert "address" not in gw.http.get("/api/v1/devices/zk-k").json()["config"]
        assert right.handshake()["GET OPTION FROM"] == "KEYED0001"
        right.punch(1)
        assert right.push() == 1
    finally:
        wrong.close()
        right.close()
    assert [d["reason"] for d in gw.all_items("/api/v1/deadletters", device_id="zk-k")] == ["not_authorized"]
