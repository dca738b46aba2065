"""The REST API over the wire (uvicorn in the gateway process): auth, errors, pagination, devices."""

from __future__ import annotations

import httpx
import pytest

from tests.mqtt_helpers import close, publish_all, publisher


@pytest.fixture
def gw(gateway_factory):
    return gateway_factory("embedded").start()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/devices"),
        ("POST", "/api/v1/devices"),
        ("GET", "/api/v1/devices/x"),
        ("PATCH", "/api/v1/devices/x"),
        ("DELETE", "/api/v1/devices/x"),
        ("GET", "/api/v1/attendance/punches"),
        ("GET", "/api/v1/deadletters"),
    ],
)
def test_every_endpoint_answers_401_without_a_token_or_with_a_wrong_one(gw, method, path):
    anonymous = httpx.Client(base_url=str(gw.http.base_url))
    assert anonymous.request(method, path).status_code == 401
    wrong = anonymous.request(method, path, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "invalid token"


def test_health_and_metrics_need_no_token(gw):
    anonymous = httpx.Client(base_url=str(gw.http.base_url))
    assert anonymous.get("/healthz").json()["status"] == "ok"
    metrics = anonymous.get("/metrics").text
    for name in (
        "gateway_messages_received_total",
        "gateway_records_stored_total",
        "gateway_duplicates_total",
        "gateway_deadletters_total",
        "gateway_batch_commit_seconds",
        "gateway_queue_depth",
    ):
        assert name in metrics
    assert anonymous.get("/openapi.json").json()["info"]["title"]


def test_device_lifecycle(gw):
    created = gw.register("att-01", name="Lobby", timezone="Asia/Tokyo")
    assert created["credentials"]["mqtt_username"] == "att-01"
    assert len(created["credentials"]["mqtt_password"]) >= 20
    shown = gw.http.get("/api/v1/devices/att-01").json()
    assert "credentials" not in shown and shown["name"] == "Lobby" and shown["timezone"] == "Asia/Tokyo"
    assert shown["online"] is None and shown["counters"] == {"events": 0, "errors": 0}
    patched = gw.http.patch("/api/v1/devices/att-01", json={"name": "Front door"})
    assert patched.status_code == 200 and patched.json()["name"] == "Front door"
    assert (
        gw.http.post(
            "/api/v1/devices", json={"id": "att-01", "kind": "attendance", "protocol": "mqtt-json"}
        ).status_code
        == 409
    )
    assert gw.http.delete("/api/v1/devices/att-01").status_code == 204
    assert gw.http.get("/api/v1/devices/att-01").status_code == 404


def test_unknown_device_is_404_with_a_reason(gw):
    for response in (
        gw.http.get("/api/v1/devices/nope"),
        gw.http.patch("/api/v1/devices/nope", json={"name": "x"}),
        gw.http.delete("/api/v1/devices/nope"),
    ):
        assert response.status_code == 404
        assert "nope" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "a/b", "kind": "attendance", "protocol": "mqtt-json"}, "id"),
        ({"id": "ok", "kind": "toaster", "protocol": "mqtt-json"}, "kind"),
        ({"id": "ok", "kind": "attendance", "protocol": "carrier-pigeon"}, "protocol"),
        ({"id": "ok", "kind": "attendance", "protocol": "mqtt-json", "timezone": "Nowhere/City"}, "timezone"),
        ({"id": "ok", "kind": "attendance", "protocol": "mqtt-json", "colour": "red"}, "colour"),
        ({"kind": "attendance", "protocol": "mqtt-json"}, "id"),
    ],
)
def test_bad_device_body_is_422_naming_the_field(gw, body, field):
    response = gw.http.post("/api/v1/devices", json=body)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(field + ":")


def test_malformed_json_body_and_bad_query_are_422_never_500(gw):
    response = gw.http.post("/api/v1/devices", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and isinstance(response.json()["detail"], str)
    assert gw.http.get("/api/v1/attendance/punches", params={"since": "yesterday"}).status_code == 422
    assert gw.http.get("/api/v1/attendance/punches", params={"limit": 5000}).status_code == 422
    assert gw.http.get("/api/v1/attendance/punches", params={"cursor": "%%%"}).status_code == 422


def test_lists_paginate_with_limit_and_cursor(gw):
    for i in range(5):
        gw.register(f"dev-{i}")
    first = gw.http.get("/api/v1/devices", params={"limit": 2}).json()
    assert [d["id"] for d in first["items"]] == ["dev-0", "dev-1"] and first["next"]
    second = gw.http.get("/api/v1/devices", params={"limit": 2, "cursor": first["next"]}).json()
    assert [d["id"] for d in second["items"]] == ["dev-2", "dev-3"]
    last = gw.http.get("/api/v1/devices", params={"limit": 2, "cursor": second["next"]}).json()
    assert [d["id"] for d in last["items"]] == ["dev-4"] and last["next"] is None


def test_punches_filter_by_device_user_and_time(gw):
    for device, messages in (
        (
            "att-01",
            [
                b'{"type":"punch","user":"E1","time":"2026-11-27T01:00:00Z"}',
                b'{"type":"punch","user":"E2","time":"2026-11-27T02:00:00Z"}',
            ],
        ),
        ("att-02", [b'{"type":"punch","user":"E1","time":"2026-11-27T03:00:00Z"}']),
    ):
        client = publisher(gw.mqtt_port, device, credentials=gw.register(device)["credentials"])
        publish_all(client, [(f"devices/{device}/events", m) for m in messages])
        close(client)
    assert len(gw.all_items("/api/v1/attendance/punches")) == 3
    assert [p["user"] for p in gw.all_items("/api/v1/attendance/punches", device_id="att-01")] == ["E1", "E2"]
    assert [p["device_id"] for p in gw.all_items("/api/v1/attendance/punches", user="E1")] == ["att-01", "att-02"]
    window = gw.all_items("/api/v1/attendance/punches", since="2026-11-27T10:00:00+08:00", until="2026-11-27T03:00:00Z")
    assert [p["time"] for p in window] == ["2026-11-27T02:00:00Z"]
    pages = gw.http.get("/api/v1/attendance/punches", params={"limit": 2}).json()
    assert len(pages["items"]) == 2 and pages["next"]
