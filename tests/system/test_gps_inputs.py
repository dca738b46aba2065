"""GPS that is not JT/T 808: an NMEA receiver on a real pty pair, and OwnTracks phones over MQTT."""

from __future__ import annotations

import time

import orjson

from firmware_stubs.nmea_receiver import NmeaReceiver, along
from tests.conftest import wait_for
from tests.mqtt_helpers import close, publish_all, publisher
from tests.system.test_serial import PtyPair


def fixes(gw, vehicle: str = "car-1") -> list[dict]:
    return gw.all_items(f"/api/v1/vehicles/{vehicle}/fixes")


def test_an_nmea_receiver_on_serial_gives_fixes_and_survives_a_pulled_cable(gateway_factory, tmp_path):
    pty = PtyPair(tmp_path)
    extra = f'[[serial]]\nport = "{pty.gateway_end}"\nprotocol = "nmea"\nbaudrate = 9600\n'
    gw = gateway_factory("embedded", extra=extra).start()
    gw.register("gps-car-1", kind="gps", protocol="nmea", config={"line": str(pty.gateway_end)})
    gw.http.post("/api/v1/vehicles", json={"id": "car-1", "plate": "A1", "device_id": "gps-car-1"}).raise_for_status()
    route = along([(31.2304, 121.4737), (31.2404, 121.4837)], speed_kmh=40)
    receiver = NmeaReceiver(str(pty.device_end), route, talker="GN", sats=11, hdop=0.8)
    for _ in range(5):
        receiver.tick()
    receiver.corrupt_next(1)  # one bad checksum: that sentence is dropped with its reason
    receiver.tick()
    receiver.lose_fix(2)  # status V: no position to trust
    receiver.tick()
    receiver.tick()
    receiver.tick()  # the next epoch flushes the one before
    stored = wait_for(lambda: len(f := fixes(gw)) >= 7 and f, 15, 0.2, what="the fixes")
    good = [f for f in stored if f["valid"]]
    assert len(good) >= 5 and good[0]["sats"] == 11 and good[0]["hdop"] == 0.8 and good[0]["source"] == "nmea"
    assert good[0]["lat"] == 31.2304 and good[0]["lon"] == 121.4737 and good[0]["alt"] == 45.0
    assert abs(good[0]["speed_kmh"] - 40.0) < 0.01  # a sentence lost to a bad checksum may leave an epoch without speed
    no_fix = [f for f in stored if not f["valid"]]
    assert all("no_fix" in f["flags"] for f in no_fix)
    assert any(d["reason"] == "bad_checksum" for d in gw.all_items("/api/v1/deadletters"))

    pty.unplug()  # the cable is pulled; the gateway reopens the port once it is back
    time.sleep(0.5)
    pty.plug()
    receiver.close()
    receiver = NmeaReceiver(str(pty.device_end), route, talker="BD", start=receiver.clock)
    before = len(fixes(gw))
    wait_for(lambda: (receiver.tick(), len(fixes(gw)) > before + 2)[1], 20, 0.5, what="fixes after the replug")
    receiver.close()


def test_owntracks_locations_from_a_phone(secured):
    gw, port = secured
    creds = gw.register("phone-li", kind="gps", protocol="owntracks", config={"user": "li", "device": "pixel"})[
        "credentials"
    ]
    other = gw.register("phone-wang", kind="gps", protocol="owntracks", config={"user": "wang", "device": "iphone"})[
        "credentials"
    ]
    gw.http.post("/api/v1/vehicles", json={"id": "car-1", "plate": "A1", "device_id": "phone-li"}).raise_for_status()
    client = publisher(port, "phone-li", credentials=creds)
    now = int(time.time())
    location = {"_type": "location", "lat": 31.23, "lon": 121.47, "tst": now, "acc": 12, "vel": 30, "cog": 90}
    publish_all(
        client,
        [
            ("owntracks/li/pixel", orjson.dumps(location)),
            ("owntracks/li/pixel", orjson.dumps({"_type": "transition", "event": "enter", "tst": now})),
        ],
    )
    close(client)
    stored = wait_for(lambda: len(f := fixes(gw)) == 1 and f, 10, 0.1, what="the location")
    assert (stored[0]["lat"], stored[0]["speed_kmh"], stored[0]["source"]) == (31.23, 30, "owntracks")

    # A phone may only speak for itself: wang's login publishing li's topic is refused (the embedded broker
    # keeps it as a dead letter; mosquitto drops it).
    spoof = publisher(port, "phone-wang", credentials=other)
    spoof.publish("owntracks/li/pixel", orjson.dumps({**location, "tst": now + 60}), qos=1).wait_for_publish(5)
    publish_all(spoof, [("owntracks/wang/iphone", orjson.dumps({**location, "tst": now + 120}))])  # its own: fine
    close(spoof)
    wait_for(
        lambda: gw.http.get("/api/v1/devices/phone-wang").json()["counters"]["events"] == 1,
        10,
        0.1,
        what="wang's own location stored",
    )
    assert len(fixes(gw)) == 1
    if port == gw.mqtt_port:
        assert any(d["reason"] == "not_authorized" for d in gw.all_items("/api/v1/deadletters"))
