"""Device messages through a real mosquitto into the store, seen through the API."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import wait_for
from tests.mqtt_helpers import close, publish_all, publisher


def punch(user: str, time: str, seq: int, **extra: object) -> bytes:
    return orjson.dumps(
        {"type": "punch", "user": user, "time": time, "verify": "fingerprint", "direction": "in", "seq": seq, **extra}
    )


def stored_punches(gw, n: int, timeout: float = 30, **params: object) -> list[dict]:
    def enough() -> list[dict] | None:
        punches = gw.all_items("/api/v1/attendance/punches", **params)
        return punches if len(punches) >= n else None

    return wait_for(enough, timeout, 0.2, what=f"{n} punches")


def test_published_punches_are_stored_once_and_normalised(mosquitto, gateway):
    gateway.register("att-01")
    client = publisher(mosquitto.port)
    messages = [
        ("devices/att-01/events", punch(f"E{i % 7}", f"2026-11-27T08:{i // 60:02d}:{i % 60:02d}+08:00", i))
        for i in range(300)
    ]
    publish_all(client, messages)
    close(client)
    punches = stored_punches(gateway, 300)
    assert len(punches) == 300
    assert len({p["id"] for p in punches}) == 300
    first = next(p for p in punches if p["user"] == "E0" and p["local_time"].startswith("2026-11-27T08:00:00"))
    assert first["time"] == "2026-11-27T00:00:00Z"
    assert first["local_time"] == "2026-11-27T08:00:00+08:00"
    assert first["device_id"] == "att-01"
    assert first["direction"] == "in"
    assert first["verify"] == "fingerprint"
    assert first["source"] == "mqtt-json"


def test_local_time_without_offset_uses_the_device_zone(mosquitto, gateway):
    gateway.register("att-ny", timezone="America/New_York")
    client = publisher(mosquitto.port)
    publish_all(
        client,
        [
            ("devices/att-ny/events", punch("E1", "2026-07-01T09:00:00", 1)),
            ("devices/att-ny/events", punch("E1", 1782901800000, 2)),
        ],
    )
    close(client)
    punches = sorted(stored_punches(gateway, 2), key=lambda p: p["time"])
    assert punches[0]["time"] == "2026-07-01T10:30:00Z"  # 1782901800000 ms
    assert punches[1]["time"] == "2026-07-01T13:00:00Z"  # 09:00 EDT (UTC-4)
    assert punches[1]["local_time"] == "2026-07-01T09:00:00-04:00"


def test_a_resent_message_is_stored_once_and_arrays_store_each_element(mosquitto, gateway):
    gateway.register("att-01")
    client = publisher(mosquitto.port)
    one = punch("E1", "2026-11-27T09:00:00+08:00", 1)
    array = orjson.dumps(
        [
            orjson.loads(punch("E2", "2026-11-27T09:01:00+08:00", 2)),
            orjson.loads(punch("E3", "2026-11-27T09:02:00+08:00", 3)),
        ]
    )
    publish_all(
        client, [("devices/att-01/events", one), ("devices/att-01/events", one), ("devices/att-01/events", array)]
    )
    close(client)
    punches = stored_punches(gateway, 3)
    wait_for(lambda: gateway.metric("gateway_duplicates_total") >= 1, 10, what="the duplicate to be counted")
    assert sorted(p["user"] for p in gateway.all_items("/api/v1/attendance/punches")) == ["E1", "E2", "E3"]
    assert len(punches) == 3


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"type": "punch", "user": ', "bad_json"),
        (b'{"type": "teleport", "time": "2026-11-27T09:00:00Z"}', "unknown_type"),
        (b'{"type": "punch", "user": "E1", "time": "27/11/2026 09:00"}', "bad_time"),
        (b'{"type": "fix", "time": "2026-11-27T09:00:00Z", "lat": 91.5, "lon": 10}', "out_of_range"),
        (b"\xff\xfe\x00punch", "bad_utf8"),
        (
            b'{"type": "punch", "user": "E1", "time": "2026-11-27T09:00:00Z", "pad": "' + b"x" * 1_000_000 + b'"}',
            "too_large",
        ),
        (b'{"type": "punch", "time": "2026-11-27T09:00:00Z"}', "missing_field"),
    ],
)
def test_bad_input_is_dead_lettered_with_its_reason_and_good_input_around_it_is_stored(
    mosquitto, gateway, payload, reason
):
    gateway.register("att-01")
    client = publisher(mosquitto.port)
    publish_all(
        client,
        [
            ("devices/att-01/events", punch("before", "2026-11-27T09:00:00+08:00", 1)),
            ("devices/att-01/events", payload),
            ("devices/att-01/events", punch("after", "2026-11-27T09:00:01+08:00", 2)),
        ],
    )
    close(client)
    assert sorted(p["user"] for p in stored_punches(gateway, 2)) == ["after", "before"]
    dead = wait_for(lambda: gateway.all_items("/api/v1/deadletters"), 10, what="a dead letter")
    assert [d["reason"] for d in dead] == [reason]
    assert dead[0]["device_id"] == "att-01"
    assert dead[0]["source"] == "mqtt"
    assert dead[0]["detail"]
    assert gateway.metric("gateway_deadletters_total", reason=reason) == 1


def test_bad_element_in_an_array_is_dead_lettered_alone(mosquitto, gateway):
    gateway.register("att-01")
    client = publisher(mosquitto.port)
    array = b'[{"type": "punch", "user": "E1", "time": "2026-11-27T09:00:00Z"}, {"type": "punch", "user": "E2", "time": "soon"}]'
    publish_all(client, [("devices/att-01/events", array)])
    close(client)
    assert [p["user"] for p in stored_punches(gateway, 1)] == ["E1"]
    dead = wait_for(lambda: gateway.all_items("/api/v1/deadletters"), 10, what="a dead letter")
    assert [d["reason"] for d in dead] == ["bad_time"]
    assert b"soon" in __import__("base64").b64decode(dead[0]["raw_b64"])


def test_messages_from_an_unknown_device_are_dead_lettered_not_stored(mosquitto, gateway):
    gateway.register("att-01")
    client = publisher(mosquitto.port)
    publish_all(
        client,
        [
            ("devices/ghost/events", punch("E1", "2026-11-27T09:00:00+08:00", 1)),
            ("devices/att-01/events", punch("E2", "2026-11-27T09:00:00+08:00", 2)),
        ],
    )
    close(client)
    assert [p["user"] for p in stored_punches(gateway, 1)] == ["E2"]
    dead = wait_for(lambda: gateway.all_items("/api/v1/deadletters", reason="unknown_device"), 10, what="dead letter")
    assert len(dead) == 1 and dead[0]["device_id"] is None
    assert orjson.loads(__import__("base64").b64decode(dead[0]["raw_b64"]))["user"] == "E1"


def test_attlog_lines_over_mqtt_become_punches(mosquitto, gateway):
    gateway.register("zk-01", protocol="attlog")
    client = publisher(mosquitto.port)
    body = b"101\t2025-08-27 08:57:49\t0\t1\t0\t0\n11\t2025-08-27 10:57:49\t1\t25\t0\t0\t0\t0\t0\t0\nbroken line\n"
    publish_all(client, [("devices/zk-01/attlog", body)])
    close(client)
    punches = {p["user"]: p for p in stored_punches(gateway, 2)}
    assert punches["101"]["time"] == "2025-08-27T00:57:49Z"
    assert punches["101"]["direction"] == "in" and punches["101"]["verify"] == "fingerprint"
    assert punches["11"]["direction"] == "out" and punches["11"]["verify"] == "palm"
    assert punches["11"]["source"] == "attlog"
    dead = wait_for(lambda: gateway.all_items("/api/v1/deadletters"), 10, what="dead letter")
    assert [d["reason"] for d in dead] == ["bad_line"]


def test_status_and_will_update_the_device(mosquitto, gateway):
    gateway.register("att-01")
    client = publisher(mosquitto.port)
    publish_all(client, [("devices/att-01/status", b'{"online": true, "firmware": "6.60"}')])
    device = wait_for(
        lambda: (d := gateway.http.get("/api/v1/devices/att-01").json())["online"] and d, 10, what="online"
    )
    assert device["firmware"] == "6.60" and device["last_seen"].endswith("Z")
    publish_all(client, [("devices/att-01/status", b"offline")])
    close(client)
    wait_for(lambda: gateway.http.get("/api/v1/devices/att-01").json()["online"] is False, 10, what="offline")
