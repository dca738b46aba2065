"""Records to the office platform: a real gateway process against the platform stand-in (a real HTTP server
following DingTalk's documented contract, and a webhook receiver)."""

from __future__ import annotations

import time
from collections import defaultdict

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firmware_stubs.mqtt_terminal import MqttTerminal
from firmware_stubs.platform import PlatformStandIn
from tests.conftest import wait_for

PEOPLE = [f"E{1000 + i}" for i in range(5)]


@pytest.fixture
def platform():
    standin = PlatformStandIn(qps=200, webhook_secret="hook-secret").start()
    yield standin
    standin.stop()


def dingtalk_config(standin: PlatformStandIn, **extra: object) -> str:
    lines = [
        "[uplink]",
        "retry_max_s = 2",
        *(f"{k} = {v!r}".replace("'", '"') for k, v in extra.items()),
        "[uplink.dingtalk]",
        "enabled = true",
        f'base_url = "{standin.url}"',
        'app_key = "standin-key"',
        'app_secret = "standin-secret"',
        "rate = 50",
        "timeout_s = 2",
    ]
    return "\n".join(lines) + "\n"


def office(gw, platform_ids: bool = True) -> MqttTerminal:
    """Five people (platform user ids "dt-<id>") and a terminal that punches for them."""
    for person in PEOPLE:
        body = {"id": person, "name": person, **({"platform_user_id": f"dt-{person}"} if platform_ids else {})}
        gw.http.post("/api/v1/people", json=body).raise_for_status()
    creds = gw.register("att-01")["credentials"]
    return MqttTerminal(
        "att-01", port=gw.mqtt_port, username="att-01", password=creds["mqtt_password"], users=PEOPLE
    ).start()


def punch(terminal: MqttTerminal, n: int) -> None:
    infos = [terminal.punch() for _ in range(n)]
    wait_for(lambda: all(i.is_published() for i in infos), 30, what="every PUBACK")


def status(gw, sink: str = "dingtalk") -> dict:
    return gw.http.get("/api/v1/uplink/status").json()[sink]


def assert_once_in_order(standin: PlatformStandIn, expected: int) -> None:
    records = standin.records()
    assert len(records) == expected
    assert standin.duplicates() == {}
    per_person: dict[str, list[int]] = defaultdict(list)
    for record in records:
        per_person[record["userid"]].append(record["user_check_time"])
    for times in per_person.values():
        assert times == sorted(times), "a person's punches reached the platform out of order"


def test_platform_down_for_the_whole_ingest_then_every_punch_once_in_order(gateway_factory, platform):
    platform.go_down()
    gw = gateway_factory("embedded", extra=dingtalk_config(platform)).start()
    terminal = office(gw)
    punch(terminal, 60)
    wait_for(lambda: status(gw)["backlog"] == 60 and status(gw)["failed"] > 0, 20, 0.2, what="a backlog, retried")
    platform.come_up()
    wait_for(lambda: platform.total_accepted >= 60, 60, 0.2, what="the backlog delivered")
    time.sleep(1.0)  # nothing more may arrive
    assert_once_in_order(platform, 60)
    sent = {(r["userid"], r["device_id"]) for r in platform.records()}
    assert {u for u, _ in sent} <= {f"dt-{p}" for p in PEOPLE} and {d for _, d in sent} == {"att-01"}
    wait_for(lambda: status(gw)["delivered"] == 60 and status(gw)["backlog"] == 0, 10, 0.2, what="the status")
    assert gw.metric("gateway_uplink_delivered_total", sink="dingtalk") == 60
    terminal.close()


def test_kill_9_mid_drain_and_a_lost_answer_still_count_once(gateway_factory, platform):
    platform.set_qps(10)
    gw = gateway_factory("embedded", extra=dingtalk_config(platform).replace("rate = 50", "rate = 10")).start()
    terminal = office(gw)
    punch(terminal, 40)
    terminal.close()
    wait_for(lambda: platform.total_accepted >= 10, 30, 0.1, what="the drain under way")
    platform.record_then_hang(1)  # the next upload is stored, its answer never comes
    wait_for(lambda: platform.hung_count >= 1, 30, 0.05, what="a send whose answer is lost")
    gw.kill9()
    platform.release_hung()
    gw.start()
    wait_for(lambda: platform.total_accepted >= 40, 60, 0.2, what="the rest after the restart")
    time.sleep(1.5)
    assert_once_in_order(platform, 40)


@pytest.mark.parametrize("fault", ["busy", "html_error", "ip_throttle", "expire_tokens", "hang"])
def test_each_platform_fault_is_retried_and_every_punch_lands_once(gateway_factory, platform, fault):
    gw = gateway_factory("embedded", extra=dingtalk_config(platform)).start()
    terminal = office(gw)
    if fault == "expire_tokens":
        punch(terminal, 5)
        wait_for(lambda: platform.total_accepted == 5, 20, 0.1, what="the first punches")
        platform.expire_tokens()
    elif fault == "hang":
        platform.hang(2, seconds=5, apis=["upload"])  # longer than the gateway's 2 s timeout
    elif fault == "ip_throttle":
        platform.ip_throttle(2, wait=1, apis=["upload"])
    else:
        getattr(platform, fault)(3, apis=["upload"])
    punch(terminal, 20)
    total = 25 if fault == "expire_tokens" else 20
    wait_for(lambda: platform.total_accepted >= total, 60, 0.2, what="every punch delivered")
    time.sleep(1.0)
    assert_once_in_order(platform, total)
    if fault != "expire_tokens":
        assert status(gw)["failed"] >= 1 and status(gw)["last_error"]
    terminal.close()


def test_throttling_at_a_lower_platform_limit_loses_nothing_and_doubles_nothing(gateway_factory, platform):
    platform.set_qps(5)  # the gateway is set to 50 calls/s: the platform answers 90018 to the excess
    gw = gateway_factory("embedded", extra=dingtalk_config(platform)).start()
    terminal = office(gw)
    punch(terminal, 30)
    wait_for(lambda: platform.total_accepted >= 30, 60, 0.2, what="every punch delivered")
    time.sleep(1.0)
    assert_once_in_order(platform, 30)
    assert platform.throttled > 0
    terminal.close()


def test_an_unknown_user_is_parked_with_its_reason_and_retried_after_the_fix(gateway_factory, platform):
    platform.set_known_users([f"dt-{p}" for p in PEOPLE[1:]])  # DingTalk does not know E1000's id
    gw = gateway_factory("embedded", extra=dingtalk_config(platform)).start()
    terminal = office(gw)
    gw.http.patch("/api/v1/people/E1001", json={"platform_user_id": None}).raise_for_status()  # no id at all
    terminal.users = ["E1000", "E1001"]
    punch(terminal, 6)
    parked = wait_for(
        lambda: len(p := gw.all_items("/api/v1/uplink/parked")) == 6 and p, 30, 0.2, what="six parked punches"
    )
    assert any("E1001" in r["reason"] and "platform_user_id" in r["reason"] for r in parked)  # ours
    assert any("60121" in r["reason"] for r in parked)  # DingTalk's
    assert status(gw)["parked"] == 6 and platform.total_accepted == 0

    platform.set_known_users(None)  # the user now exists at DingTalk
    gw.http.patch("/api/v1/people/E1001", json={"platform_user_id": "dt-E1001"}).raise_for_status()
    for record in parked:
        assert gw.http.post(f"/api/v1/uplink/parked/{record['id']}/retry").status_code == 202
    wait_for(lambda: platform.total_accepted == 6, 30, 0.2, what="the retried punches delivered")
    assert gw.http.post(f"/api/v1/uplink/parked/{parked[0]['id']}/retry").status_code == 404
    assert_once_in_order(platform, 6)
    terminal.close()


def webhook_config(standin: PlatformStandIn, secret: str = "hook-secret") -> str:
    return (
        "[uplink]\nretry_max_s = 2\n[uplink.webhook]\nenabled = true\n"
        f'url = "{standin.webhook_url}"\nsecret = "{secret}"\nrecords = ["punch", "access"]\nbatch_size = 10\n'
    )


def test_webhook_batches_are_signed_4xx_parks_and_5xx_retries(gateway_factory, platform):
    gw = gateway_factory("embedded", extra=webhook_config(platform)).start()
    terminal = office(gw, platform_ids=False)  # the webhook needs no DingTalk ids
    platform.webhook.fail(2, status=503)
    punch(terminal, 25)
    wait_for(lambda: len(platform.webhook.records()) == 25, 30, 0.2, what="every punch at the webhook")
    assert status(gw, "webhook")["failed"] >= 1
    record = platform.webhook.records()[0]
    assert record["type"] == "punch" and record["record"]["device_id"] == "att-01"

    platform.webhook.fail(1, status=400, reason="schema says no")
    punch(terminal, 3)
    parked = wait_for(
        lambda: len(p := gw.all_items("/api/v1/uplink/parked")) >= 1 and p, 30, 0.2, what="the refused batch parked"
    )
    assert all("400" in r["reason"] and "schema says no" in r["reason"] for r in parked)
    wait_for(
        lambda: len(platform.webhook.records()) + len(gw.all_items("/api/v1/uplink/parked")) == 28,
        30,
        0.2,
        what="the rest delivered",
    )
    terminal.close()


def test_a_wrong_webhook_secret_is_refused_and_retried_not_parked(gateway_factory, platform):
    """A 401 says nothing about the data: the records wait (retried) until the secret is right."""
    gw = gateway_factory("embedded", extra=webhook_config(platform, secret="not-the-secret")).start()
    terminal = office(gw, platform_ids=False)
    punch(terminal, 2)
    wait_for(lambda: status(gw, "webhook")["failed"] >= 2, 30, 0.2, what="refused sends")
    now = status(gw, "webhook")
    assert "401" in now["last_error"] and now["backlog"] == 2 and now["parked"] == 0
    assert platform.webhook.records() == []
    terminal.close()


def test_mqtt_north_publishes_records_qos1_to_a_subscriber(mosquitto, gateway_factory):
    received: list[tuple[str, int, dict]] = []
    subscriber = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="platform-sub")
    subscriber.on_message = lambda c, u, m: received.append((m.topic, m.qos, orjson.loads(m.payload)))
    subscriber.connect("127.0.0.1", mosquitto.port)
    subscriber.subscribe("platform/#", qos=1)
    subscriber.loop_start()
    extra = '[uplink.mqtt]\nenabled = true\nrecords = ["punch"]\n'
    gw = gateway_factory(mosquitto.url, extra=extra).start()
    for person in PEOPLE:
        gw.http.post("/api/v1/people", json={"id": person, "name": person}).raise_for_status()
    gw.register("att-01")
    terminal = MqttTerminal("att-01", port=mosquitto.port, users=PEOPLE).start()
    punch(terminal, 10)
    wait_for(lambda: len(received) == 10, 20, 0.1, what="ten records at the platform's subscriber")
    topics = {t for t, _, _ in received}
    assert topics == {"platform/hq/punch"} and {q for _, q, _ in received} == {1}
    assert {r["record"]["person_id"] for _, _, r in received} <= set(PEOPLE)
    wait_for(lambda: status(gw, "mqtt")["delivered"] == 10, 10, 0.2, what="counted as delivered")
    terminal.close()
    subscriber.loop_stop()
    subscriber.disconnect()


def test_drop_oldest_overflow_drops_and_counts(gateway_factory, platform):
    platform.go_down()
    extra = dingtalk_config(platform, max_backlog=100, overflow="drop_oldest")
    gw = gateway_factory("embedded", extra=extra).start()
    terminal = office(gw)
    punch(terminal, 130)
    wait_for(
        lambda: gw.metric("gateway_uplink_dropped_total", sink="dingtalk") == 30, 20, 0.2, what="the 30 oldest dropped"
    )
    platform.come_up()
    wait_for(lambda: platform.total_accepted >= 100, 60, 0.2, what="the rest delivered")
    time.sleep(1.0)
    assert platform.total_accepted == 100 and platform.duplicates() == {}
    terminal.close()


def test_refuse_overflow_holds_device_input_at_the_edge_until_the_backlog_drains(gateway_factory, platform):
    platform.go_down()
    gw = gateway_factory("embedded", extra=dingtalk_config(platform, max_backlog=100)).start()  # "refuse": default
    terminal = office(gw)
    infos = []
    for _ in range(160):
        infos.append(terminal.punch())
        time.sleep(0.03)
    wait_for(lambda: status(gw)["refusing_input"], 30, 0.2, what="device input refused")
    held = gw.metric("gateway_records_stored_total", kind="punch")
    assert 100 <= held < 160  # the rest waits at the edge: the terminal has no PUBACK for it
    assert not all(i.is_published() for i in infos)
    assert gw.http.get("/healthz").status_code == 200  # the gateway itself keeps working

    platform.come_up()
    wait_for(lambda: all(i.is_published() for i in infos), 90, 0.2, what="the held punches taken once drained")
    wait_for(lambda: platform.total_accepted >= 160, 90, 0.2, what="every punch delivered")
    time.sleep(1.0)
    assert_once_in_order(platform, 160)
    assert not status(gw)["refusing_input"]
    terminal.close()
