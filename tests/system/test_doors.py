"""A door end to end: libosdp's PD as the reader on a real pty pair, the gateway as the control panel."""

from __future__ import annotations

import time

import osdp
import pytest

from firmware_stubs.osdp_reader import SimulatedReader
from tests.conftest import wait_for
from tests.system.test_serial import PtyPair

GREEN, RED = osdp.CommandLEDColor.Green, osdp.CommandLEDColor.Red


def provisioned_line(gateway_factory, tmp_path):
    """A gateway with an OSDP line on a pty pair and reader-front (address 1) registered on it."""
    pty = PtyPair(tmp_path)
    extra = f'[[serial]]\nport = "{pty.gateway_end}"\nprotocol = "osdp"\nbaudrate = 115200\n'
    gw = gateway_factory("embedded", extra=extra).start()
    scbk = gw.register(
        "reader-front",
        kind="access",
        protocol="osdp",
        config={"line": str(pty.gateway_end), "address": 1, "door": "front", "strike_ms": 1000},
    )
    gw.http.post(
        "/api/v1/people",
        json={"id": "E1", "name": "Holder", "cards": ["10:1093"], "access": {"doors": ["front"], "schedule": "always"}},
    ).raise_for_status()
    gw.terminate()  # the line takes the readers registered when it starts
    gw.start()
    return gw, pty, scbk["credentials"]["scbk"]


@pytest.fixture
def door(gateway_factory, tmp_path):
    """(gateway, reader) with one reader at address 1 on the front door, and E1 holding card 10:1093."""
    gw, pty, scbk = provisioned_line(gateway_factory, tmp_path)
    reader = SimulatedReader(str(pty.device_end), 1, scbk).start()
    wait_for(lambda: reader.secure, 20, 0.1, what="the secure channel")
    yield gw, reader
    reader.stop()
    pty.unplug()


def decisions(gw) -> list[tuple[str, str]]:
    return [(e["decision"], e["reason"]) for e in gw.all_items("/api/v1/access/events", door="front")]


def test_a_known_card_opens_and_an_unknown_one_does_not(door):
    gw, reader = door
    reader.present_h10301(10, 1093)
    assert reader.wait_for("output", lambda c: c["control_code"] == 5, timeout=10) is not None
    assert reader.wait_for("led", lambda c: c["on_color"] == GREEN, timeout=10) is not None
    reader.clear()
    reader.present_h10301(10, 1)
    assert reader.wait_for("led", lambda c: c["on_color"] == RED, timeout=10) is not None
    assert reader.outputs() == []
    wait_for(
        lambda: decisions(gw) == [("granted", "granted"), ("denied", "unknown_credential")],
        10,
        0.2,
        what="both reads recorded",
    )
    event = gw.all_items("/api/v1/access/events", decision="granted")[0]
    assert event["person_id"] == "E1" and event["credential"]["format"] == "H10301"
    assert (event["credential"]["facility"], event["credential"]["number"]) == (10, 1093)
    assert gw.http.get("/api/v1/devices/reader-front").json()["online"] is True


def test_revoking_a_card_takes_effect_at_the_door_within_a_second(door):
    gw, reader = door
    gw.http.patch("/api/v1/people/E1", json={"cards": []}).raise_for_status()
    time.sleep(1.0)
    reader.present_h10301(10, 1093)
    assert reader.wait_for("led", lambda c: c["on_color"] == RED, timeout=10) is not None
    assert reader.outputs() == []
    wait_for(lambda: decisions(gw) == [("denied", "unknown_credential")], 10, 0.2, what="the denial recorded")


def test_a_door_the_person_may_not_use_and_a_bad_read(door):
    gw, reader = door
    gw.http.patch("/api/v1/people/E1", json={"access": {"doors": ["back"], "schedule": "always"}}).raise_for_status()
    reader.present_h10301(10, 1093)
    data, bits = bytearray(b"\x05\x02\x22\xc0"), 26
    data[0] ^= 0x02  # one flipped bit: the parity no longer holds
    reader.present_card(bytes(data), bits)
    wait_for(
        lambda: decisions(gw) == [("denied", "door_not_allowed"), ("denied", "bad_parity")],
        10,
        0.2,
        what="both denials recorded",
    )
    assert reader.outputs() == []


def test_a_reader_with_the_wrong_key_stays_offline_and_says_why(gateway_factory, tmp_path):
    gw, pty, _ = provisioned_line(gateway_factory, tmp_path)
    reader = SimulatedReader(str(pty.device_end), 1, "00" * 16).start()
    try:
        link = wait_for(
            lambda: (
                "refused"
                in ((gw.http.get("/api/v1/devices/reader-front").json().get("link") or {}).get("reason") or "")
                and gw.http.get("/api/v1/devices/reader-front").json()
            ),
            20,
            0.2,
            what="the refusal to be reported",
        )
        assert link["online"] is not True and link["link"]["secure"] is False
        assert not reader.secure
    finally:
        reader.stop()
        pty.unplug()


def test_install_mode_gives_a_new_reader_its_key(gateway_factory, tmp_path):
    gw, pty, scbk = provisioned_line(gateway_factory, tmp_path)
    reader = SimulatedReader(str(pty.device_end), 1, None).start()  # fresh from the box: no key yet
    try:
        time.sleep(2.0)
        assert not reader.secure, "without install mode a keyless reader must not be let in"
        assert gw.http.post("/api/v1/devices/reader-front/install").status_code == 202
        wait_for(lambda: reader.secure, 30, 0.2, what="the reader to take its key")
        assert reader.scbk == bytes.fromhex(scbk)
        entries = gw.all_items("/api/v1/audit", target_id="reader-front")
        assert "install_mode" in [e["action"] for e in entries]
    finally:
        reader.stop()
        pty.unplug()


def test_a_weekly_schedule_keeps_a_door_shut_outside_its_hours(door):
    gw, reader = door
    all_week = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    gw.http.post("/api/v1/access/schedules", json={"id": "never", "windows": {}}).raise_for_status()
    gw.http.post("/api/v1/access/schedules", json={"id": "24-7", "windows": all_week}).raise_for_status()
    bad = gw.http.post("/api/v1/access/schedules", json={"id": "x", "windows": {"someday": [["08:00", "09:00"]]}})
    assert bad.status_code == 422 and "someday" in bad.json()["detail"]
    gw.http.patch("/api/v1/people/E1", json={"access": {"doors": ["front"], "schedule": "never"}}).raise_for_status()
    reader.present_h10301(10, 1093)
    wait_for(lambda: decisions(gw) == [("denied", "outside_schedule")], 10, 0.2, what="the closed schedule")
    gw.http.patch("/api/v1/people/E1", json={"access": {"doors": ["front"], "schedule": "24-7"}}).raise_for_status()
    reader.present_h10301(10, 1093)
    assert reader.wait_for("output", lambda c: c["control_code"] == 5, timeout=10) is not None
    wait_for(lambda: decisions(gw)[-1] == ("granted", "granted"), 10, 0.2, what="the open schedule")
