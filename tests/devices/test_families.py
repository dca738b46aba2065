"""Every protocol in the family table can be registered through the API, and every channel it speaks on
takes an input through the pipeline to the store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from fastapi.testclient import TestClient

from firmware_stubs.jt808_terminal import Point, location_body
from gateway.api import create_app
from gateway.app import Gateway
from gateway.config import Settings
from gateway.devices import access_log, jt808
from gateway.devices.families import CHANNELS, FAMILIES, Family, decoders
from gateway.devices.nmea import checksum
from gateway.pipeline.queue import Inbound
from gateway.store.db import upgrade
from tests.conftest import TOKEN, wait_for

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime.now(UTC).replace(microsecond=0)


def _kind_and_config(protocol: str, n: int) -> tuple[str, dict[str, object]]:
    """A registration of the protocol, unique per n (identity keys may not repeat)."""
    return {
        "mqtt-json": ("attendance", {}),
        "attlog": ("attendance", {}),
        "owntracks": ("gps", {"user": "staff", "device": f"phone{n}"}),
        "zk-adms": ("attendance", {"sn": f"ZK{n:06d}"}),
        "osdp": ("access", {"line": "/dev/ttyOSDP", "address": n % 127}),
        "nmea": ("gps", {"line": f"/dev/ttyGPS{n}"}),
        "card-lines": ("attendance", {"line": f"/dev/ttyCARD{n}"}),
        "jt808": ("gps", {"phone": f"1380000{n:04d}"}),
    }[protocol]


def _nmea(body: str) -> bytes:
    return b"$%s*%02X\r\n" % (body.encode(), checksum(body.encode()))


ATTLOG_LINE = b"7\t2026-11-27 09:00:00\t0\t1\t0\t0\n"

# channel -> (an input a device of its family sends there, the table its record lands in; None: journal only)
SAMPLES: dict[str, tuple[bytes, str | None]] = {
    "events": (b'{"type":"punch","user":"E1","time":"2026-11-27T09:00:00Z"}', "punch"),
    "status": (b'{"online": true, "firmware": "1.2.3"}', "device_status"),
    "commands/result": (b'{"id": "c-1", "ok": true}', "command_result"),
    "attlog": (ATTLOG_LINE, "punch"),
    "serial/attlog": (ATTLOG_LINE, "punch"),
    "owntracks": (orjson.dumps({"_type": "location", "lat": 31.23, "lon": 121.47, "tst": int(NOW.timestamp())}), "fix"),
    "iclock/ATTLOG": (ATTLOG_LINE, "punch"),
    "iclock/OPERLOG": (b"OPLOG 4\t0\t2026-11-27 09:00:00\t0\t0\t0\t0\n", None),
    "access/decided": (
        access_log.encode(
            "main",
            int(NOW.timestamp() * 1000),
            {"kind": "card", "value": "1093"},
            "denied",
            "unknown_card",
            None,
            None,
            "in",
        ),
        "access_event",
    ),
    "serial/nmea": (
        _nmea("GPRMC,090000.00,A,3113.800,N,12128.200,E,10.0,90.0,271126,,,A")
        + _nmea("GPGGA,090000.00,3113.800,N,12128.200,E,1,08,0.9,10.0,M,0.0,M,,"),
        "fix",
    ),
    "serial/card-lines": (b"1093\n", "punch"),
    "jt808/location": (b"", "fix"),  # built per device: the frame carries the terminal's phone
}

CASES = [(protocol, channel) for protocol, f in FAMILIES.items() for channel in f.channels]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, TestClient, Path]]:
    db = tmp_path_factory.mktemp("families") / "gateway.db"
    settings = Settings(site={"timezone": str(ZONE)}, database={"url": f"sqlite:///{db}"}, api={"admin_token": TOKEN})
    gw = Gateway(settings)
    upgrade(gw.engine)
    for part in (gw.registry, gw.liveness, gw.people_index):
        part.load()
    gw.pipeline.start()
    yield gw, TestClient(create_app(gw), headers={"Authorization": f"Bearer {TOKEN}"}), db
    gw.pipeline.stop(2.0)
    gw.engine.dispose()


def _register(client: TestClient, device_id: str, protocol: str, n: int) -> dict[str, object]:
    kind, config = _kind_and_config(protocol, n)
    body = {"id": device_id, "kind": kind, "protocol": protocol, "config": config}
    response = client.post("/api/v1/devices", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _inbound(family: Family, channel: str, device: dict[str, object], payload: bytes) -> Inbound:
    device_id = str(device["id"])
    config = device["config"]
    assert isinstance(config, dict)
    if channel == "jt808/location":
        point = Point(31.23, 121.47, NOW, speed_kmh=40.0)
        frame = jt808.build_frame(jt808.LOCATION, config["phone"], 1, location_body(point, NOW.astimezone(ZONE)))
        payload = frame[1:-1]  # the server hands over what is between the delimiters
    if channel == family.own_topic_root:  # the device names its own topic; the broker said who sent it
        topic = "/".join([channel, *(str(config[k]) for k in family.wire_key)])
        return Inbound("mqtt", topic, payload, sender=device_id)
    if family.credentials == "mqtt_login" and not channel.startswith("serial/"):
        return Inbound("mqtt", f"devices/{device_id}/{channel}", payload)
    return Inbound(channel.split("/")[0], channel, payload, device_id)


def _rows(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def test_every_protocol_and_every_channel_has_a_case_here():
    assert set(SAMPLES) == set(CHANNELS)
    for protocol in FAMILIES:
        _kind_and_config(protocol, 0)  # a KeyError names a protocol this test does not know yet


@pytest.mark.parametrize("protocol", list(FAMILIES))
def test_every_protocol_can_be_registered_through_the_api(site, protocol):
    _, client, _ = site
    device_id = f"reg-{protocol}"
    created = _register(client, device_id, protocol, 900 + list(FAMILIES).index(protocol))
    shown = client.get(f"/api/v1/devices/{device_id}").json()
    assert shown["protocol"] == protocol and shown["config"] == created["config"]
    assert ("mqtt_password" in created["credentials"]) == (FAMILIES[protocol].credentials == "mqtt_login")


@pytest.mark.parametrize(("protocol", "channel"), CASES)
def test_an_input_on_each_channel_is_stored(site, protocol, channel):
    gw, client, db = site
    n = CASES.index((protocol, channel))
    device = _register(client, f"dev-{n}", protocol, n)
    payload, table = SAMPLES[channel]
    gw.queue.put(_inbound(FAMILIES[protocol], channel, device, payload))
    heard = "SELECT last_seen FROM device WHERE id = ? AND last_seen IS NOT NULL"
    wait_for(lambda: _rows(db, heard, device["id"]), 10, what=f"{protocol} device heard on {channel}")
    assert _rows(db, "SELECT reason, detail FROM dead_letter WHERE device_id = ?", device["id"]) == []
    if table is not None:
        # raw_ref: what the device sent, not what the gateway adds (liveness stores its own status rows)
        query = f"SELECT count(*) FROM {table} WHERE device_id = ? AND raw_ref != ''"
        stored = _rows(db, query, device["id"])
        assert stored == [(1,)], f"{protocol} on {channel}: no {table} record"


def test_each_pipeline_keeps_its_own_nmea_reader_state():
    rmc, gga = SAMPLES["serial/nmea"][0].split(b"\r\n", 1)
    first, second = decoders()["serial/nmea"], decoders()["serial/nmea"]
    assert first(rmc + b"\r\n", "gps-1", UTC, NOW).events == []
    assert second(gga, "gps-1", UTC, NOW).events == []  # the second pipeline never saw the RMC
    assert len(first(gga, "gps-1", UTC, NOW).events) == 1  # RMC and GGA of one epoch: one fix
