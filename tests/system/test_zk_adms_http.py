"""ZKTeco ADMS push: the simulated terminal against the real gateway process, over HTTP."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from firmware_stubs.zk_terminal import ZkTerminal
from gateway.devices import zk_adms
from tests.conftest import wait_for

SN = "CKJA193960001"
TOKYO = ZoneInfo("Asia/Tokyo")  # the device's zone; the site's is Asia/Shanghai


@pytest.fixture
def gw(gateway_factory):
    return gateway_factory("embedded", extra="[liveness]\nattendance = 5\n").start()


@pytest.fixture
def zk(gw):
    gw.register("zk-1", protocol="zk-adms", timezone="Asia/Tokyo", config={"sn": SN})
    terminal = ZkTerminal(f"http://127.0.0.1:{gw.api_port}", SN, tz=TOKYO, retry_delay=0.05)
    yield terminal
    terminal.close()


def punches(gw, device_id="zk-1"):
    return gw.all_items("/api/v1/attendance/punches", device_id=device_id)


def dead_letters(gw, **params):
    return gw.all_items("/api/v1/deadletters", **params)


def command(gw, command_id):
    return gw.http.get(f"/api/v1/devices/zk-1/commands/{command_id}").json()


# --- handshake ----------------------------------------------------------------------------------


def test_handshake_for_new_and_old_firmware(gw):
    gw.register("zk-sp", protocol="zk-adms", timezone="America/Sao_Paulo", config={"sn": "SP0001"})
    url = f"http://127.0.0.1:{gw.api_port}"
    new = ZkTerminal(url, "SP0001", pushver="2.4.1")
    old = ZkTerminal(url, "SP0001", pushver=None)
    try:
        options = new.handshake()
        assert options["GET OPTION FROM"] == "SP0001"
        assert {k: options[k] for k in ("ATTLOGStamp", "OPERLOGStamp", "ATTPHOTOStamp")} == dict.fromkeys(
            ("ATTLOGStamp", "OPERLOGStamp", "ATTPHOTOStamp"), "None"
        )
        assert not {"Stamp", "OpStamp", "PhotoStamp"} & set(options)
        assert options["TimeZone"] == "-3"  # the device's zone, not the site's
        assert (options["ErrorDelay"], options["Delay"], options["TransTimes"], options["TransInterval"]) == (
            "30",
            "10",
            "00:00;14:05",
            "1",
        )
        assert (options["TransFlag"], options["Realtime"], options["Encrypt"]) == ("TransData AttLog OpLog", "1", "0")

        old_options = old.handshake()
        assert {old_options[k] for k in ("Stamp", "OpStamp", "PhotoStamp", "ATTLOGStamp")} == {"None"}
        assert old_options["TimeZone"] == "-3"
    finally:
        new.close()
        old.close()

    raw = httpx.get(f"{url}/iclock/cdata", params={"SN": "SP0001", "options": "all", "pushver": "2.4.1"})
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("text/plain")
    assert raw.text.startswith("GET OPTION FROM: SP0001\n")
    # An unknown terminal is answered too (the site's zone), and nothing is stored for it.
    unknown = httpx.get(f"{url}/iclock/cdata", params={"SN": "NOBODY1", "options": "all"})
    assert zk_adms.parse_options(unknown.text)["TimeZone"] == "8"
    assert httpx.get(f"{url}/iclock/getrequest", params={"SN": "NOBODY1"}).text == "OK"
    assert httpx.get(f"{url}/iclock/cdata", params={"SN": "bad sn\n"}).status_code == 400
    assert dead_letters(gw) == []


# --- punches --------------------------------------------------------------------------------------


def test_punches_land_once_though_the_terminal_resends(gw, zk):
    zk.handshake()
    zk.lose_replies = 2  # the first two OKs never reach the terminal: it sends the batch three times
    lines = zk.punch(5)
    assert zk.push() == 5
    assert zk.posts == 3
    assert zk.push(lines) == 5  # and once more, as after a terminal reboot
    stored = punches(gw)
    assert len(stored) == 5
    assert {p["source"] for p in stored} == {"zk-adms"}
    assert sorted(p["user"] for p in stored) == sorted(line.split("\t")[0] for line in lines)
    assert gw.metric("gateway_duplicates_total") == 15
    assert gw.metric("gateway_messages_received_total", transport="http") == 4
    assert dead_letters(gw) == []


def test_mixed_batch_stores_the_good_lines_and_dead_letters_the_rest(gw, zk):
    future = (datetime.now(UTC) + timedelta(days=3)).astimezone(TOKYO).replace(tzinfo=None)
    good6 = "1001\t2025-08-27 08:57:49\t0\t1\t0\t0"
    good10 = "1002\t2025-08-27 18:01:02\t1\t15\t0\t0\t0\t0\t0\t0"
    bad_line = "1003\t2025-08-27 09:00:00"
    bad_time = "1004\t2025-13-45 09:00:00\t0\t1\t0\t0"
    ahead = zk.punch_line("1005", future, 0, 1)
    assert zk.push([good6, bad_line, good10, bad_time, ahead]) == 2  # OK:2: only the accepted lines

    by_user = {p["user"]: p for p in punches(gw)}
    assert sorted(by_user) == ["1001", "1002"]
    first, second = by_user["1001"], by_user["1002"]
    assert (first["time"], first["local_time"]) == ("2025-08-26T23:57:49Z", "2025-08-27T08:57:49+09:00")
    assert (first["direction"], first["verify"], first["status_code"], first["verify_code"]) == (
        "in",
        "fingerprint",
        0,
        1,
    )
    assert (second["local_time"], second["direction"], second["verify"]) == ("2025-08-27T18:01:02+09:00", "out", "face")
    assert {p["source"] for p in by_user.values()} == {"zk-adms"}

    dead = dead_letters(gw, device_id="zk-1")
    assert sorted(d["reason"] for d in dead) == ["bad_line", "bad_time", "future_time"]
    assert {d["source"] for d in dead} == {"http"}
    raws = {d["reason"]: base64.b64decode(d["raw_b64"]).decode() for d in dead}
    assert raws == {"bad_line": bad_line, "bad_time": bad_time, "future_time": ahead}
    assert gw.http.get("/api/v1/devices/zk-1").json()["counters"] == {"events": 2, "errors": 3}


def test_a_backlog_larger_than_one_input_is_stored_whole(gateway_factory):
    gw = gateway_factory("embedded", mqtt_extra="max_payload = 1024").start()
    gw.register("zk-1", protocol="zk-adms", timezone="Asia/Tokyo", config={"sn": SN})
    terminal = ZkTerminal(f"http://127.0.0.1:{gw.api_port}", SN, tz=TOKYO)
    try:
        terminal.punch(300)  # about 10 kB in one post
        assert terminal.push() == 300
    finally:
        terminal.close()
    assert len(punches(gw)) == 300
    assert dead_letters(gw) == []


def test_unknown_serial_number_is_dead_lettered_not_stored(gw):
    terminal = ZkTerminal(f"http://127.0.0.1:{gw.api_port}", "STRANGER9", tz=TOKYO)
    try:
        lines = terminal.punch(3)
        assert terminal.push() == 0  # OK:0: the terminal moves on; the dead letter keeps the batch
        assert terminal.posts == 1
    finally:
        terminal.close()
    assert gw.all_items("/api/v1/attendance/punches") == []
    dead = dead_letters(gw)
    assert [(d["reason"], d["device_id"], d["source"]) for d in dead] == [("unknown_device", None, "http")]
    assert base64.b64decode(dead[0]["raw_b64"]).decode() == "\n".join(lines) + "\n"
    assert "STRANGER9" in dead[0]["detail"]


def test_operlog_and_photos_are_answered_without_punches(gw, zk):
    zk.users = {"1001": {"PIN": "1001", "Name": "Ann Lee", "Card": "123456"}, "1002": {"PIN": "1002", "Name": "Bo"}}
    assert zk.push_users() == 2
    photo = httpx.post(
        f"http://127.0.0.1:{gw.api_port}/iclock/cdata",
        params={"SN": SN, "table": "ATTPHOTO"},
        content=b"PIN=1001\nSN=x\nsize=4\nCMD=uploadphoto\x00\xff\xd8\xff",
    )
    assert (photo.status_code, photo.text) == (200, "OK")
    assert punches(gw) == [] and dead_letters(gw) == []


# --- commands and liveness --------------------------------------------------------------------------


def test_heartbeat_and_commands(gw, zk):
    assert gw.http.get("/api/v1/devices/zk-1").json()["online"] is None
    assert zk.poll() == []
    assert gw.http.get("/api/v1/devices/zk-1").json()["online"] is True  # getrequest is the heartbeat

    queued = gw.http.post(
        "/api/v1/devices/zk-1/commands",
        json={"name": "sync_user", "args": {"pin": "1001", "name": "Ann Lee", "card": "123456"}},
    )
    assert queued.status_code == 202 and queued.json()["state"] == "queued"
    sync_id = queued.json()["id"]
    assert command(gw, sync_id)["state"] == "queued"  # nothing is pushed: it waits for the terminal's poll

    received = zk.poll()
    assert [text for _, text in received] == ["DATA UPDATE USERINFO PIN=1001\tName=Ann Lee\tCard=123456"]
    assert received[0][0] == zk_adms.wire_id(sync_id) and received[0][0].isdigit()
    assert zk.users == {"1001": {"PIN": "1001", "Name": "Ann Lee", "Card": "123456"}}
    done = command(gw, sync_id)
    assert (done["state"], done["detail"]) == ("succeeded", "Return=0 CMD=DATA")
    assert done["sent_at"] and done["finished_at"]
    assert zk.poll() == []  # sent once

    # Several at once, in order; then a failure as the terminal reports it.
    ids = [
        gw.http.post("/api/v1/devices/zk-1/commands", json=body).json()["id"]
        for body in ({"name": "delete_user", "args": {"pin": "1001"}}, {"name": "info"})
    ]
    zk.poll()
    assert [command(gw, i)["state"] for i in ids] == ["succeeded", "succeeded"]
    assert zk.users == {}
    assert "UserCount=0" in command(gw, ids[1])["detail"]

    check = gw.http.post("/api/v1/devices/zk-1/commands", json={"name": "check"}).json()["id"]
    zk.answer_commands = False
    ((wire, text),) = zk.poll()
    assert (wire, text) == (zk_adms.wire_id(check), "CHECK") and command(gw, check)["state"] == "sent"
    answer = httpx.post(
        f"http://127.0.0.1:{gw.api_port}/iclock/devicecmd",
        params={"SN": SN},
        content=f"ID={wire}&Return=-3&CMD=CHECK\n".encode(),
    )
    assert answer.text == "OK"
    failed = command(gw, check)
    assert (failed["state"], failed["detail"]) == ("failed", "Return=-3 CMD=CHECK")

    # Refused at the API: not a command a ZK terminal has.
    refused = gw.http.post("/api/v1/devices/zk-1/commands", json={"name": "open_door", "args": {"door": "main"}})
    assert refused.status_code == 422 and "unknown_command" in refused.json()["detail"]
    bad = gw.http.post("/api/v1/devices/zk-1/commands", json={"name": "sync_user", "args": {"pin": "1\n2"}})
    assert bad.status_code == 422 and "bad_args" in bad.json()["detail"]

    # Nobody polls: it times out without ever being sent; the silent terminal goes offline.
    silent = gw.http.post("/api/v1/devices/zk-1/commands", json={"name": "reboot", "timeout_s": 2}).json()["id"]
    final = wait_for(lambda: (c := command(gw, silent))["state"] == "timed_out" and c, 15, 0.2, what="the timeout")
    assert final["sent_at"] is None
    wait_for(lambda: gw.http.get("/api/v1/devices/zk-1").json()["online"] is False, 20, 0.2, what="offline")
    zk.poll()  # a timed-out command is not sent any more
    assert zk.reboots == 0
    assert gw.http.get("/api/v1/devices/zk-1").json()["online"] is True
    states = [c["state"] for c in gw.all_items("/api/v1/devices/zk-1/commands")]
    assert states == ["succeeded", "succeeded", "succeeded", "failed", "timed_out"]


def test_standalone_run(gw, zk):
    zk.pushver = None
    assert zk.run(count=120, batch=50) == 120
    assert zk.options["Stamp"] == "None"
    assert len(punches(gw)) == 120


def test_garbage_is_never_a_server_error(gw, zk):
    """/iclock is outside the OpenAPI document the API fuzz covers: arbitrary input here, known and unknown SN."""
    import random

    rng = random.Random(808)
    url = f"http://127.0.0.1:{gw.api_port}"
    alphabet = b"\t\n\r =&:ID Return CMD USER PIN 0123456789-\xff\x00"
    with httpx.Client(base_url=url, timeout=40) as http:
        for i in range(60):
            body = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
            sn = rng.choice([SN, "NOBODY2", "", "bad sn", "x" * 70])
            table = rng.choice(["ATTLOG", "OPERLOG", "ATTPHOTO", "", "\u00e9"])
            for method, path, params in (
                ("POST", "/iclock/cdata", {"SN": sn, "table": table, "Stamp": str(i)}),
                ("POST", "/iclock/devicecmd", {"SN": sn}),
                ("GET", "/iclock/getrequest", {"SN": sn}),
                ("GET", "/iclock/cdata", {"SN": sn, "pushver": "x"}),
            ):
                response = http.request(method, path, params=params, content=body if method == "POST" else None)
                assert response.status_code < 500, (method, path, params, body, response.text)
    assert "Traceback" not in gw.log.read_text()
