"""Punches resolve to people in the CONTRACT's order, and retroactively once the mapping exists."""

from __future__ import annotations

from tests.conftest import wait_for
from tests.mqtt_helpers import close, publish_all, publisher


def punch(user: str, minute: int) -> bytes:
    return f'{{"type":"punch","user":"{user}","time":"2026-11-27T09:{minute:02d}:00+08:00"}}'.encode()


def people_of(gw) -> dict[str, str | None]:
    return {p["user"]: p["person_id"] for p in gw.all_items("/api/v1/attendance/punches")}


def test_punches_map_to_people_even_after_the_fact(gateway_factory):
    gw = gateway_factory("embedded").start()
    creds = gw.register("att-01")["credentials"]
    gw.http.post("/api/v1/people", json={"id": "E1", "name": "Known Before"}).raise_for_status()
    client = publisher(gw.mqtt_port, "att-01", credentials=creds)
    publish_all(client, [("devices/att-01/events", punch(u, i)) for i, u in enumerate(["E1", "101", "7777", "X9"])])
    close(client)
    wait_for(lambda: len(people_of(gw)) == 4, 15, 0.2, what="four punches")
    assert people_of(gw) == {"E1": "E1", "101": None, "7777": None, "X9": None}
    unmapped = gw.all_items("/api/v1/attendance/punches", unmapped="true")
    assert sorted(p["user"] for p in unmapped) == ["101", "7777", "X9"]

    gw.http.post(
        "/api/v1/people", json={"id": "E2", "name": "Device Id", "device_user_ids": {"att-01": "101"}}
    ).raise_for_status()
    gw.http.post("/api/v1/people", json={"id": "E3", "name": "Card", "cards": ["7777"]}).raise_for_status()
    wait_for(lambda: people_of(gw) == {"E1": "E1", "101": "E2", "7777": "E3", "X9": None}, 10, 0.2, what="re-mapping")
    assert [p["user"] for p in gw.all_items("/api/v1/attendance/punches", person="E2")] == ["101"]

    # the device-specific id wins over the "*" id and over a person whose id equals the user
    gw.http.post("/api/v1/people", json={"id": "E4", "name": "Star", "device_user_ids": {"*": "E1"}}).raise_for_status()
    wait_for(lambda: people_of(gw)["E1"] == "E4", 10, 0.2, what="the * mapping to take over")
    gw.http.delete("/api/v1/people/E3").raise_for_status()
    wait_for(lambda: people_of(gw)["7777"] is None, 10, 0.2, what="the card's punches to be unmapped again")
