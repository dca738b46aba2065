"""A provisioned device, and only that device, speaks as itself: at mosquitto (dynamic security) and the embedded broker."""

from __future__ import annotations

import time

import orjson
import pytest

from firmware_stubs.mqtt_terminal import MqttTerminal
from tests.conftest import wait_for
from tests.mqtt_helpers import close, publish_all, publisher

PUNCH = b'{"type": "punch", "user": "%s", "time": "2026-11-27T09:00:00+08:00"}'


def terminal(port: int, device: str, credentials: dict, **kw) -> MqttTerminal:
    return MqttTerminal(
        device, "127.0.0.1", port, username=credentials["mqtt_username"], password=credentials["mqtt_password"], **kw
    )


def users(gw, device: str) -> list[str]:
    return sorted(p["user"] for p in gw.all_items("/api/v1/attendance/punches", device_id=device))


def test_credentials_rotation_and_deletion(secured):
    gw, port = secured
    creds = gw.register("att-01")["credentials"]
    client = publisher(port, "att-01", credentials=creds)
    publish_all(client, [("devices/att-01/events", PUNCH % b"E1")])
    close(client)
    wait_for(lambda: users(gw, "att-01") == ["E1"], 15, what="the punch")

    with pytest.raises(PermissionError):
        terminal(port, "att-01", {**creds, "mqtt_password": "wrong"}).start(5)

    live = terminal(port, "att-01", creds).start()
    rotated = gw.http.post("/api/v1/devices/att-01/credentials/rotate").raise_for_status().json()["credentials"]
    assert rotated["mqtt_password"] != creds["mqtt_password"]
    wait_for(lambda: not live.connected.is_set(), 10, what="the old session to be dropped")
    live.client.loop_stop()
    with pytest.raises(PermissionError):
        terminal(port, "att-01", creds).start(5)
    fresh = terminal(port, "att-01", rotated).start()
    fresh.publish_raw("events", PUNCH % b"E2")
    assert fresh.wait_all_acked(10)
    wait_for(lambda: users(gw, "att-01") == ["E1", "E2"], 15, what="the punch after rotation")
    fresh.client.loop_stop()
    fresh.client.disconnect()

    assert gw.http.delete("/api/v1/devices/att-01").status_code == 204
    with pytest.raises(PermissionError):
        terminal(port, "att-01", rotated).start(5)


def test_a_device_cannot_publish_as_another(secured):
    gw, port = secured
    a = gw.register("dev-a")["credentials"]
    gw.register("dev-b")
    client = publisher(port, "dev-a", credentials=a)
    publish_all(client, [("devices/dev-b/events", PUNCH % b"forged"), ("devices/dev-a/events", PUNCH % b"own")])
    close(client)
    wait_for(lambda: users(gw, "dev-a") == ["own"], 15, what="dev-a's own punch")
    time.sleep(0.5)  # give a forged message every chance to arrive
    assert users(gw, "dev-b") == []
    assert gw.http.get("/api/v1/devices/dev-b").json()["counters"] == {"events": 0, "errors": 0}


def test_command_round_trip_and_timeout(secured):
    gw, port = secured
    creds = gw.register("att-01")["credentials"]
    device = terminal(port, "att-01", creds).start()
    try:
        queued = gw.http.post("/api/v1/devices/att-01/commands", json={"name": "open_door", "args": {"door": "main"}})
        assert queued.status_code == 202 and queued.json()["state"] == "queued"
        command_id = queued.json()["id"]
        done = wait_for(
            lambda: (
                (c := gw.http.get(f"/api/v1/devices/att-01/commands/{command_id}").json())["state"] == "succeeded" and c
            ),
            15,
            0.1,
            what="the command to succeed",
        )
        assert done["detail"] == "open_door done" and done["sent_at"] and done["finished_at"]
        assert device.commands == [{"id": command_id, "name": "open_door", "args": {"door": "main"}}]

        failed = gw.http.post("/api/v1/devices/att-01/commands", json={"name": "self_destruct"}).json()
        wait_for(
            lambda: gw.http.get(f"/api/v1/devices/att-01/commands/{failed['id']}").json()["state"] == "failed",
            15,
            0.1,
            what="the unknown command to fail",
        )
    finally:
        device.close()

    silent = terminal(port, "att-01", creds, answer_commands=False).start()
    try:
        queued = gw.http.post("/api/v1/devices/att-01/commands", json={"name": "reboot", "timeout_s": 2}).json()
        wait_for(lambda: len(silent.commands) == 1, 10, what="the command to reach the device")
        final = wait_for(
            lambda: (
                (c := gw.http.get(f"/api/v1/devices/att-01/commands/{queued['id']}").json())["state"] == "timed_out"
                and c
            ),
            15,
            0.2,
            what="the timeout",
        )
        assert final["sent_at"] is not None
    finally:
        silent.close()
    listed = gw.http.get("/api/v1/devices/att-01/commands").json()["items"]
    assert [c["state"] for c in listed] == ["succeeded", "failed", "timed_out"]


def test_liveness_follows_status_will_and_silence(gateway_factory):
    gw = gateway_factory("embedded", extra="[liveness]\naccess = 5\n").start()
    creds = gw.register("door-01", kind="access")["credentials"]
    device = terminal(gw.mqtt_port, "door-01", creds).start()
    wait_for(lambda: gw.http.get("/api/v1/devices/door-01").json()["online"] is True, 10, what="online")
    assert gw.http.get("/api/v1/devices/door-01").json()["firmware"] == "sim-1.0"
    device.client.loop_stop()  # the device stops talking without saying goodbye
    device.client.socket().close()
    wait_for(lambda: gw.http.get("/api/v1/devices/door-01").json()["online"] is False, 20, 0.2, what="offline")
    assert gw.metric("gateway_device_transitions_total", state="offline") >= 1
    assert gw.metric("gateway_device_transitions_total", state="online") >= 1


def test_protocol_config_and_credentials(gateway_factory):
    gw = gateway_factory("embedded").start()
    osdp = gw.register("door-main", kind="access", protocol="osdp", config={"line": "/dev/ttyUSB0", "address": 1})
    assert len(osdp["credentials"]["scbk"]) == 32 and osdp["config"]["format"] == "H10301"
    jt = gw.register("van-1", kind="gps", protocol="jt808", config={"phone": "13800138000"})
    assert len(jt["credentials"]["auth_code"]) == 16
    assert gw.register("zk-1", protocol="zk-adms", config={"sn": "CKJA1234"})["credentials"] == {}
    clash = gw.http.post(
        "/api/v1/devices",
        json={"id": "door-2", "kind": "access", "protocol": "osdp", "config": {"line": "/dev/ttyUSB0", "address": 1}},
    )
    assert clash.status_code == 409 and "door-main" in clash.json()["detail"]
    bad = gw.http.post(
        "/api/v1/devices",
        json={"id": "door-3", "kind": "access", "protocol": "osdp", "config": {"line": "/dev/ttyUSB0", "address": 300}},
    )
    assert bad.status_code == 422 and bad.json()["detail"].startswith("config.address")
    extra = gw.http.post(
        "/api/v1/devices", json={"id": "x", "kind": "attendance", "protocol": "mqtt-json", "config": {"colour": "red"}}
    )
    assert extra.status_code == 422 and "config.colour" in extra.json()["detail"]
    rotated = gw.http.post("/api/v1/devices/door-main/credentials/rotate").json()["credentials"]
    assert rotated["scbk"] != osdp["credentials"]["scbk"]
    assert gw.http.post("/api/v1/devices/zk-1/credentials/rotate").status_code == 409


def test_device_changes_are_audited_without_secrets(gateway_factory):
    gw = gateway_factory("embedded").start()
    created = gw.register("att-01")
    rotated = gw.http.post("/api/v1/devices/att-01/credentials/rotate").json()
    gw.http.patch("/api/v1/devices/att-01", json={"name": "Lobby"})
    gw.http.delete("/api/v1/devices/att-01")
    entries = gw.all_items("/api/v1/audit", target_type="device")
    assert [e["action"] for e in entries] == ["create", "rotate_credentials", "update", "delete"]
    assert entries[2]["before"]["name"] == "" and entries[2]["after"]["name"] == "Lobby"
    assert all(e["actor"] == "bootstrap-admin" for e in entries)
    text = orjson.dumps(entries).decode()
    for secret in (created["credentials"]["mqtt_password"], rotated["credentials"]["mqtt_password"], "scrypt$"):
        assert secret not in text
