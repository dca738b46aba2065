"""MQTT door controllers that let the gateway decide: a read goes up as "pending", the answer comes down as a
command; people's keypad PINs. A real mosquitto, a real gateway process."""

from __future__ import annotations

import time

import orjson
import pytest

from firmware_stubs.mqtt_terminal import MqttTerminal
from tests.conftest import wait_for


@pytest.fixture
def controller(gateway, mosquitto):
    gateway.register("door-ctl", kind="access")
    gateway.http.post(
        "/api/v1/people",
        json={
            "id": "E1",
            "name": "Holder",
            "cards": ["10:1093"],
            "pins": ["4711"],
            "access": {"doors": ["main"], "schedule": "always"},
        },
    ).raise_for_status()
    device = MqttTerminal("door-ctl", port=mosquitto.port).start()
    yield gateway, device
    device.close()


def request(device: MqttTerminal, kind: str, value: str, bits: int | None = None, age_s: float = 0) -> None:
    credential = {"kind": kind, "value": value, **({"bits": bits} if bits else {})}
    event = {
        "type": "access",
        "door": "main",
        "credential": credential,
        "result": "pending",
        "time": int((time.time() - age_s) * 1000),
    }
    device.publish_raw("events", orjson.dumps(event))


def answers(device: MqttTerminal) -> list[tuple[str, str]]:
    return [(c["name"], c["args"]["reason"]) for c in device.commands]


def test_the_gateway_decides_for_a_controller_and_answers_with_a_command(controller):
    gw, device = controller
    request(device, "card", "0x14088B", 26)  # H10301 facility 10, card 1093
    wait_for(lambda: answers(device) == [("open_door", "granted")], 15, 0.05, what="open_door")
    assert device.commands[0]["args"]["door"] == "main"
    request(device, "card", "0x14088A", 26)  # the last bit flipped: odd parity fails
    request(device, "qr", "not-an-invitation")
    wait_for(lambda: len(answers(device)) == 3, 15, 0.05, what="two more answers")
    assert answers(device)[1:] == [("deny_access", "bad_parity"), ("deny_access", "unknown_credential")]

    events = wait_for(
        lambda: len(e := gw.all_items("/api/v1/access/events", door="main")) == 3 and e, 10, 0.1, what="three records"
    )
    granted = next(e for e in events if e["decision"] == "granted")
    assert granted["person_id"] == "E1"
    assert (granted["credential"]["format"], granted["credential"]["facility"], granted["credential"]["number"]) == (
        "H10301",
        10,
        1093,
    )
    # The answers are tracked commands: the controller's results close them.
    command_id = device.commands[0]["id"]
    wait_for(
        lambda: gw.http.get(f"/api/v1/devices/door-ctl/commands/{command_id}").json()["state"] == "succeeded",
        10,
        0.1,
        what="the controller's result",
    )


def test_a_person_s_pin_opens_and_is_never_recorded(controller):
    gw, device = controller
    person = gw.http.get("/api/v1/people/E1").json()
    assert person["pin_count"] == 1 and "pins" not in person
    request(device, "pin", "4711")
    request(device, "pin", "1234")
    wait_for(
        lambda: answers(device) == [("open_door", "granted"), ("deny_access", "unknown_credential")],
        15,
        0.05,
        what="both answers",
    )
    events = wait_for(
        lambda: len(e := gw.all_items("/api/v1/access/events", door="main")) == 2 and e, 10, 0.1, what="two records"
    )
    assert sorted(e["credential"]["value"] for e in events) == ["****", "****"]
    assert "4711" not in gw.http.get("/api/v1/deadletters").text

    # Another person may not take the same PIN; a changed PIN works at once.
    clash = gw.http.post("/api/v1/people", json={"id": "E2", "name": "Other", "pins": ["4711"]})
    assert clash.status_code == 409 and "PIN" in clash.json()["detail"]
    assert gw.http.post("/api/v1/people", json={"id": "E3", "name": "Short", "pins": ["12"]}).status_code == 422
    gw.http.patch("/api/v1/people/E1", json={"pins": ["9090"]}).raise_for_status()
    time.sleep(1.0)
    request(device, "pin", "4711")
    request(device, "pin", "9090")
    wait_for(lambda: len(answers(device)) == 4, 15, 0.05, what="two more answers")
    assert answers(device)[2:] == [("deny_access", "unknown_credential"), ("open_door", "granted")]


def test_a_stale_request_is_recorded_but_opens_nothing(controller):
    gw, device = controller
    request(device, "card", "0x14088B", 26, age_s=120)  # resent long after somebody stood at the door
    wait_for(lambda: len(gw.all_items("/api/v1/access/events", door="main")) == 1, 10, 0.1, what="the record")
    request(device, "card", "0x14088B", 26)
    wait_for(lambda: len(device.commands) >= 1, 15, 0.05, what="the fresh request's answer")
    assert answers(device) == [("open_door", "granted")]
