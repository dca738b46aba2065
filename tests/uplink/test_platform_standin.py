"""The office-platform stand-in, driven over real HTTP as the gateway will drive it."""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest

from firmware_stubs.platform import PlatformStandIn
from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.system  # runs the gateway (or the platform stand-in) as its own process

KEY, SECRET, HOOK_SECRET = "standin-key", "standin-secret", "hook-secret"
UPLOAD, LIST = "/topapi/attendance/record/upload", "/attendance/listRecord"
SHANGHAI = ZoneInfo("Asia/Shanghai")
# A closed connection, as opposed to a timeout (which an endless hang would also give).
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError)


class FakeClock:
    """Monotonic time the test moves by hand, so token lifetimes and the QPS window need no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stand_in(clock: FakeClock) -> Iterator[PlatformStandIn]:
    with PlatformStandIn(qps=None, webhook_secret=HOOK_SECRET, clock=clock) as s:
        yield s


@pytest.fixture
def client(stand_in: PlatformStandIn) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stand_in.url, timeout=5) as c:
        yield c


def token(client: httpx.Client) -> str:
    return client.get("/gettoken", params={"appkey": KEY, "appsecret": SECRET}).json()["access_token"]


def punch(userid: str = "u1", at_ms: int | None = None, device_id: str = "att-01") -> dict[str, Any]:
    at_ms = int(time.time() * 1000) - 60_000 if at_ms is None else at_ms
    return {"userid": userid, "device_name": "Front door", "device_id": device_id, "user_check_time": at_ms}


def upload(client: httpx.Client, tok: str, body: Any) -> dict[str, Any]:
    return client.post(UPLOAD, params={"access_token": tok}, json=body).json()


def local_ms(day: datetime, hour: int, minute: int = 0) -> int:
    return int(day.replace(hour=hour, minute=minute, second=0, microsecond=0).timestamp() * 1000)


# ---- tokens ----


def test_gettoken_good_and_bad(client: httpx.Client) -> None:
    answer = client.get("/gettoken", params={"appkey": KEY, "appsecret": SECRET}).json()
    assert answer["errcode"] == 0 and answer["errmsg"] == "ok" and answer["expires_in"] == 7200
    assert token(client) == answer["access_token"]  # still valid: the same token again
    bad = client.get("/gettoken", params={"appkey": KEY, "appsecret": "wrong"}).json()
    assert bad["errcode"] == 40089 and "access_token" not in bad


def test_token_expires_after_its_lifetime_and_on_demand(stand_in: PlatformStandIn, clock: FakeClock) -> None:
    stand_in.token_ttl = 60
    with httpx.Client(base_url=stand_in.url) as client:
        tok = token(client)
        assert upload(client, tok, punch())["errcode"] == 0
        clock.now += 61
        assert upload(client, tok, punch())["errcode"] == 42001
        assert upload(client, "garbled", punch())["errcode"] == 40014
        assert client.post(UPLOAD, json=punch()).json()["errcode"] == 40014  # no token at all
        fresh = token(client)
        assert fresh != tok and upload(client, fresh, punch())["errcode"] == 0
        stand_in.expire_tokens()
        assert upload(client, fresh, punch())["errcode"] == 42001
    assert stand_in.total_accepted == 2


# ---- uploads ----


def test_upload_is_accepted_counted_and_a_resend_counts_again(stand_in: PlatformStandIn, client: httpx.Client) -> None:
    tok, body = token(client), punch("u7")
    first = upload(client, tok, body)
    assert first["errcode"] == 0 and first["success"] is True and first["request_id"]
    assert stand_in.accepted_count("u7", body["user_check_time"], "att-01") == 1
    assert stand_in.duplicates() == {}
    second = upload(client, tok, body)
    assert second["errcode"] == 0 and second["request_id"] != first["request_id"]
    key = ("u7", body["user_check_time"], "att-01")
    assert stand_in.accepted_count(*key) == 2 and stand_in.duplicates() == {key: 2}
    assert stand_in.total_accepted == 2
    assert [r["userid"] for r in stand_in.records()] == ["u7", "u7"]


def test_records_keep_arrival_order(stand_in: PlatformStandIn, client: httpx.Client) -> None:
    tok, now = token(client), int(time.time() * 1000)
    sent = [punch(u, now - i * 1000) for i, u in enumerate(["a", "b", "a", "c", "a"])]
    for body in sent:
        assert upload(client, tok, body)["errcode"] == 0
    got = [(r["userid"], r["user_check_time"]) for r in stand_in.records()]
    assert got == [(b["userid"], b["user_check_time"]) for b in sent]


def test_unknown_user_is_60121_and_not_stored(stand_in: PlatformStandIn, client: httpx.Client) -> None:
    stand_in.set_known_users({"u1"})
    tok = token(client)
    assert upload(client, tok, punch("stranger"))["errcode"] == 60121
    assert upload(client, tok, punch("u1"))["errcode"] == 0
    assert stand_in.total_accepted == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"userid": None}, "userid"),
        ({"device_id": 17}, "device_id"),
        ({"device_name": ""}, "device_name"),
        ({"user_check_time": "1700000000000"}, "user_check_time"),
        ({"user_check_time": int(time.time())}, "user_check_time"),  # seconds, not milliseconds
        ({"user_check_time": int(time.time() * 1000) - 181 * 86400_000}, "user_check_time"),
        ({"photo_url": 5}, "photo_url"),
    ],
)
def test_invalid_upload_is_40035_naming_the_field(
    stand_in: PlatformStandIn, client: httpx.Client, change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**punch(), **change}.items() if v is not None}
    answer = upload(client, token(client), body)
    assert answer["errcode"] == 40035 and field in answer["errmsg"]
    assert stand_in.total_accepted == 0


def test_body_that_is_not_json_is_40035(stand_in: PlatformStandIn, client: httpx.Client) -> None:
    answer = client.post(UPLOAD, params={"access_token": token(client)}, content=b"userid=u1").json()
    assert answer["errcode"] == 40035 and stand_in.total_accepted == 0


# ---- QPS limit ----


def test_qps_limit_refuses_the_excess_with_90018_and_does_not_store_it(
    stand_in: PlatformStandIn, client: httpx.Client, clock: FakeClock
) -> None:
    stand_in.set_qps(5)
    tok, now = token(client), int(time.time() * 1000)
    codes = [upload(client, tok, punch("u1", now - i))["errcode"] for i in range(15)]  # clock frozen: one instant
    assert codes == [0] * 5 + [90018] * 10
    assert stand_in.throttled == 10 and stand_in.total_accepted == 5
    clock.now += 0.5  # the first five are still inside the rolling second
    assert upload(client, tok, punch("u1", now - 100))["errcode"] == 90018
    clock.now += 0.5
    assert upload(client, tok, punch("u1", now - 101))["errcode"] == 0
    assert stand_in.throttled == 11
    assert [r["user_check_time"] for r in stand_in.records()] == [now - i for i in range(5)] + [now - 101]


def test_qps_limit_with_the_real_clock_under_a_burst() -> None:
    calls = 30
    with PlatformStandIn(qps=5) as stand_in, httpx.Client(base_url=stand_in.url) as client:
        tok, now = token(client), int(time.time() * 1000)
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda i: upload(client, tok, punch("u1", now - i))["errcode"], range(calls)))
        assert set(codes) <= {0, 90018} and 90018 in codes
        assert codes.count(0) == stand_in.total_accepted and codes.count(90018) == stand_in.throttled


# ---- faults ----


def test_busy_html_and_ip_throttle_knobs_each_serve_their_n_calls(
    stand_in: PlatformStandIn, client: httpx.Client
) -> None:
    tok = token(client)
    stand_in.busy(2)
    stand_in.html_error(1, status=502)
    stand_in.html_error(1, status=200)
    stand_in.ip_throttle(1, wait=7)
    answers = [client.post(UPLOAD, params={"access_token": tok}, json=punch()) for _ in range(6)]
    assert [a.json()["errcode"] for a in answers[:2]] == [-1, -1]
    for answer, status in ((answers[2], 502), (answers[3], 200)):
        assert answer.status_code == status and answer.headers["content-type"].startswith("text/html")
    assert answers[4].json() == {"status": 1111, "wait": 7}
    assert answers[5].json()["errcode"] == 0
    assert stand_in.total_accepted == 1


def test_a_fault_can_be_limited_to_some_apis(stand_in: PlatformStandIn, client: httpx.Client) -> None:
    stand_in.busy(1, apis=["upload"])
    tok = token(client)  # gettoken is not affected
    assert upload(client, tok, punch())["errcode"] == -1
    assert upload(client, tok, punch())["errcode"] == 0


def test_hang_holds_the_call_until_released_then_serves_it(stand_in: PlatformStandIn, client: httpx.Client) -> None:
    tok = token(client)
    stand_in.hang(1)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(upload, client, tok, punch())
        wait_for(lambda: stand_in.hung_count == 1, 5, what="the call to be held")
        assert not pending.done() and stand_in.total_accepted == 0
        stand_in.release_hung()
        assert pending.result(timeout=5)["errcode"] == 0
    assert stand_in.total_accepted == 1


def test_hang_for_a_time_answers_afterwards(stand_in: PlatformStandIn, client: httpx.Client) -> None:
    stand_in.hang(1, seconds=0.2)
    assert upload(client, token(client), punch())["errcode"] == 0
    assert stand_in.stats()["faults_served"] == {"hang": 1}


def test_a_hung_client_that_gives_up_has_nothing_stored(stand_in: PlatformStandIn, client: httpx.Client) -> None:
    tok = token(client)
    stand_in.hang(1)
    with pytest.raises(httpx.ReadTimeout):
        client.post(UPLOAD, params={"access_token": tok}, json=punch(), timeout=0.3)
    assert stand_in.total_accepted == 0 and stand_in.hung_count == 1


def test_record_then_drop_stores_the_record_but_the_client_gets_no_answer(
    stand_in: PlatformStandIn, client: httpx.Client
) -> None:
    tok, body = token(client), punch("u3")
    stand_in.record_then_drop(1)
    with pytest.raises(DROPPED):
        client.post(UPLOAD, params={"access_token": tok}, json=body)
    assert stand_in.accepted_count("u3", body["user_check_time"], "att-01") == 1
    assert upload(client, tok, punch("u4"))["errcode"] == 0  # the next call is served
    # What the gateway does next: ask listRecord whether the unanswered send was stored.
    sent_at = datetime.fromtimestamp(body["user_check_time"] / 1000, SHANGHAI)
    window = [(sent_at + timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S") for m in (-1, 1)]
    rows = list_records(client, tok, ["u3"], *window)["recordresult"]
    assert [r["userCheckTime"] for r in rows] == [body["user_check_time"]]


def test_record_then_hang_stores_the_record_and_the_client_times_out(
    stand_in: PlatformStandIn, client: httpx.Client
) -> None:
    tok, body = token(client), punch("u5")
    stand_in.record_then_hang(1)
    with pytest.raises(httpx.ReadTimeout):
        client.post(UPLOAD, params={"access_token": tok}, json=body, timeout=0.3)
    assert stand_in.accepted_count("u5", body["user_check_time"], "att-01") == 1


# ---- listRecord ----


def list_records(client: httpx.Client, tok: str, users: list[str], start: str, end: str) -> dict[str, Any]:
    body = {"userIds": users, "checkDateFrom": start, "checkDateTo": end, "isI18n": False}
    return client.post(LIST, params={"access_token": tok}, json=body).json()


def test_list_record_returns_the_window_in_the_org_time_zone(stand_in: PlatformStandIn, client: httpx.Client) -> None:
    tok = token(client)
    day = datetime.now(SHANGHAI) - timedelta(days=1)
    morning, evening, next_day = local_ms(day, 8, 58), local_ms(day, 18, 5), local_ms(day + timedelta(days=1), 9)
    for body in (punch("u1", morning), punch("u1", evening), punch("u1", next_day), punch("u2", morning)):
        assert upload(client, tok, body)["errcode"] == 0
    date = day.strftime("%Y-%m-%d")
    answer = list_records(client, tok, ["u1"], f"{date} 00:00:00", f"{date} 23:59:59")
    assert answer["errcode"] == 0
    rows = answer["recordresult"]
    assert [(r["userId"], r["userCheckTime"]) for r in rows] == [("u1", morning), ("u1", evening)]
    assert [r["checkType"] for r in rows] == ["OnDuty", "OffDuty"]
    assert {r["workDate"] for r in rows} == {local_ms(day, 0)}
    assert all(r["deviceId"] == "att-01" and r["sourceType"] == "ATM" and r["timeResult"] == "Normal" for r in rows)
    # The morning punch at 08:58 Shanghai is 00:58 UTC: a window read as UTC would miss it.
    narrow = list_records(client, tok, ["u1"], f"{date} 08:58:00", f"{date} 08:58:59")["recordresult"]
    assert [r["userCheckTime"] for r in narrow] == [morning]


def test_list_record_uses_the_configured_time_zone() -> None:
    new_york = ZoneInfo("America/New_York")
    with PlatformStandIn(qps=None, org_tz="America/New_York") as stand_in, httpx.Client(base_url=stand_in.url) as c:
        tok, day = token(c), datetime.now(new_york) - timedelta(days=2)
        at = local_ms(day, 7, 30)
        upload(c, tok, punch("u1", at))
        date = day.strftime("%Y-%m-%d")
        rows = list_records(c, tok, ["u1"], f"{date} 07:30:00", f"{date} 07:31:00")["recordresult"]
        assert [r["userCheckTime"] for r in rows] == [at]
        assert rows[0]["workDate"] == local_ms(day, 0)


def test_list_record_refuses_a_range_over_7_days_or_over_50_users(client: httpx.Client) -> None:
    tok = token(client)
    assert list_records(client, tok, ["u1"], "2024-01-01 00:00:00", "2024-01-08 00:00:01")["errcode"] == 40035
    assert list_records(client, tok, ["u1"], "2024-01-02 00:00:00", "2024-01-01 00:00:00")["errcode"] == 40035
    assert list_records(client, tok, ["u1"], "2024-01-01", "2024-01-02")["errcode"] == 40035
    many = [f"u{i}" for i in range(51)]
    assert list_records(client, tok, many, "2024-01-01 00:00:00", "2024-01-02 00:00:00")["errcode"] == 40035
    assert list_records(client, tok, many[:50], "2024-01-01 00:00:00", "2024-01-08 00:00:00")["errcode"] == 0


# ---- down and up ----


def test_go_down_refuses_connections_and_comes_up_on_the_same_port(stand_in: PlatformStandIn) -> None:
    port = stand_in.port
    with httpx.Client(base_url=stand_in.url, timeout=5) as client:
        tok = token(client)
        assert upload(client, tok, punch())["errcode"] == 0
        stand_in.go_down()
        with pytest.raises(httpx.ConnectError):
            upload(client, tok, punch())
        stand_in.come_up()
        assert stand_in.port == port
        assert upload(client, tok, punch())["errcode"] == 0  # same memory: the token is still valid
    assert stand_in.total_accepted == 2


def test_going_down_cuts_a_request_whose_body_is_still_arriving(stand_in: PlatformStandIn) -> None:
    with socket.create_connection(("127.0.0.1", stand_in.port), timeout=5) as sock:
        sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        wait_for(lambda: stand_in.open_connections == 1, 5, what="the connection to be accepted")
        time.sleep(0.2)  # let the server read the headers, so the request is mid-way, not merely connected
        stand_in.go_down()
        try:
            assert sock.recv(1024) == b""  # closed, and no answer was sent
        except ConnectionResetError:
            pass


def test_going_down_drops_held_calls_and_can_come_back_by_itself(
    stand_in: PlatformStandIn, client: httpx.Client
) -> None:
    tok = token(client)
    stand_in.hang(1)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(upload, client, tok, punch())
        wait_for(lambda: stand_in.hung_count == 1, 5, what="the call to be held")
        stand_in.go_down(for_seconds=0.3)
        with pytest.raises(DROPPED):
            pending.result(timeout=5)
    wait_for(lambda: stand_in.is_up, 5, what="the stand-in to come back")
    assert upload(client, tok, punch())["errcode"] == 0 and stand_in.total_accepted == 1


# ---- webhook ----


def signed(
    body: dict[str, Any], *, secret: str = HOOK_SECRET, ts: int | None = None, batch: str = "b1"
) -> tuple[bytes, dict[str, str]]:
    raw = orjson.dumps(body)
    ts = int(time.time() * 1000) if ts is None else ts
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + raw, hashlib.sha256).hexdigest()
    headers = {"X-Gateway-Timestamp": str(ts), "X-Gateway-Signature": f"sha256={digest}", "Idempotency-Key": batch}
    return raw, headers


def batch(*keys: str, kind: str = "visit") -> dict[str, Any]:
    return {"site": "hq", "records": [{"type": kind, "idempotency_key": k, "record": {"n": k}} for k in keys]}


def post_hook(client: httpx.Client, body: dict[str, Any], **sign_args: Any) -> httpx.Response:
    raw, headers = signed(body, **sign_args)
    return client.post("/webhook", content=raw, headers=headers)


def test_webhook_signature_good_bad_and_stale(stand_in: PlatformStandIn, client: httpx.Client) -> None:
    assert post_hook(client, batch("k1")).json() == {"accepted": 1, "duplicates": 0}
    assert post_hook(client, batch("k2"), secret="other").status_code == 401
    stale = int(time.time() * 1000) - 6 * 60 * 1000
    assert post_hook(client, batch("k3"), ts=stale).status_code == 401
    raw, headers = signed(batch("k4"))
    headers["X-Gateway-Signature"] = headers["X-Gateway-Signature"].upper().replace("SHA256=", "sha256=")
    assert client.post("/webhook", content=raw, headers=headers).status_code == 401  # hex must be lowercase
    del headers["X-Gateway-Signature"]
    assert client.post("/webhook", content=raw, headers=headers).status_code == 401
    tampered = raw.replace(b"k4", b"k5")
    raw, headers = signed(batch("k4"))
    assert client.post("/webhook", content=tampered, headers=headers).status_code == 401
    assert [r["idempotency_key"] for r in stand_in.webhook.records()] == ["k1"]


def test_webhook_counts_each_record_once_and_replays_as_duplicates(
    stand_in: PlatformStandIn, client: httpx.Client
) -> None:
    assert post_hook(client, batch("a", "b")).json() == {"accepted": 2, "duplicates": 0}
    assert post_hook(client, batch("a", "b")).json() == {"accepted": 0, "duplicates": 2}
    assert post_hook(client, batch("b", "c", "c"), batch="b2").json() == {"accepted": 1, "duplicates": 2}
    hook = stand_in.webhook
    assert [r["idempotency_key"] for r in hook.records()] == ["a", "b", "c"]
    assert hook.accepted == 3 and hook.duplicate_deliveries == 4
    assert hook.deliveries("b") == 3 and hook.batch_deliveries("b1") == 2
    assert hook.records()[0] == {"site": "hq", "type": "visit", "idempotency_key": "a", "record": {"n": "a"}}


def test_webhook_refuses_malformed_batches(stand_in: PlatformStandIn, client: httpx.Client) -> None:
    raw, headers = signed(batch("a"))
    del headers["Idempotency-Key"]
    assert client.post("/webhook", content=raw, headers=headers).status_code == 400
    assert post_hook(client, {"site": "hq", "records": [{"type": "visit", "record": {}}]}).status_code == 400
    assert post_hook(client, {"records": []}).status_code == 400
    assert stand_in.webhook.accepted == 0


def test_webhook_fail_hang_and_reject_knobs(stand_in: PlatformStandIn, client: httpx.Client) -> None:
    hook = stand_in.webhook
    hook.fail(1, status=503)
    hook.fail(1, status=400, reason="site unknown")
    first, second = post_hook(client, batch("a")), post_hook(client, batch("a"))
    assert first.status_code == 503 and second.status_code == 400 and second.json() == {"error": "site unknown"}
    assert hook.accepted == 0
    assert post_hook(client, batch("a")).json() == {"accepted": 1, "duplicates": 0}  # the retry is not a duplicate
    hook.reject_types({"trip"})
    mixed = {"site": "hq", "records": batch("b")["records"] + batch("t1", kind="trip")["records"]}
    refused = post_hook(client, mixed)
    assert refused.status_code == 422 and refused.json()["rejected"] == ["t1"]
    assert hook.accepted == 1  # all or nothing: "b" was not stored either
    hook.hang(1)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post_hook, client, batch("c"))
        wait_for(lambda: stand_in.hung_count == 1, 5, what="the batch to be held")
        assert hook.accepted == 1
        stand_in.release_hung()
        assert pending.result(timeout=5).json() == {"accepted": 1, "duplicates": 0}


# ---- admin HTTP and the standalone process ----


def test_admin_routes_drive_the_knobs(stand_in: PlatformStandIn, client: httpx.Client) -> None:
    tok = token(client)
    assert client.post("/_standin/fault", json={"kind": "busy", "n": 1, "apis": ["upload"]}).json() == {"ok": True}
    assert client.post("/_standin/fault", json={"kind": "ip-throttle", "wait": 3}).status_code == 200
    assert client.post("/_standin/fault", json={"kind": "nonsense"}).status_code == 400
    assert upload(client, tok, punch())["errcode"] == -1
    assert upload(client, tok, punch())["status"] == 1111
    body = punch("u9")
    upload(client, tok, body)
    upload(client, tok, body)
    assert client.get("/_standin/records").json()[0]["userid"] == "u9"
    assert client.get("/_standin/duplicates").json() == [
        {"userid": "u9", "user_check_time": body["user_check_time"], "device_id": "att-01", "count": 2}
    ]
    client.post("/_standin/known-users", json={"userids": ["someone"]})
    assert upload(client, tok, punch("u9"))["errcode"] == 60121
    client.post("/_standin/expire-tokens")
    assert upload(client, tok, punch())["errcode"] == 42001
    client.post("/_standin/webhook/fault", json={"kind": "fail", "status": 500})
    assert post_hook(client, batch("w")).status_code == 500
    stats = client.get("/_standin/stats").json()
    assert (
        stats["total_accepted"] == 2 and stats["duplicate_records"] == 1 and stats["webhook"]["answered"] == {"500": 1}
    )
    client.post("/_standin/reset")
    assert stand_in.total_accepted == 0 and stand_in.webhook.stats()["answered"] == {}


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("qps", {"qps": "5"}),
        ("known-users", {"userids": "u1"}),  # one string, not a list of ids
        ("fault", {"kind": "html", "status": "bad"}),
        ("fault", {"kind": "busy", "apis": ["nowhere"]}),
        ("fault", {"kind": "hang", "n": 0}),
        ("webhook/fault", {"kind": "fail", "status": 99}),
        ("webhook/reject-types", {"types": "trip"}),
    ],
)
def test_admin_routes_refuse_bad_settings_with_400(
    stand_in: PlatformStandIn, client: httpx.Client, route: str, body: dict[str, Any]
) -> None:
    answer = client.post(f"/_standin/{route}", json=body)
    assert answer.status_code == 400 and answer.json()["error"]
    assert stand_in.stats()["faults_pending"] == [] and stand_in.webhook.stats()["faults_pending"] == []
    assert upload(client, token(client), punch())["errcode"] == 0  # nothing half-applied


def test_admin_down_comes_back_after_the_time_given(stand_in: PlatformStandIn, client: httpx.Client) -> None:
    assert client.post("/_standin/down", json={}).status_code == 400  # nothing could bring it back
    assert client.post("/_standin/down", json={"seconds": 0.5}).status_code == 200
    wait_for(lambda: not stand_in.is_up, 5, what="the stand-in to go down")
    wait_for(lambda: stand_in.is_up, 5, what="the stand-in to come back")
    assert token(client)


def test_runs_standalone_and_stops_on_sigterm() -> None:
    command = [sys.executable, "-m", "firmware_stubs.platform", "--port", "0", "--qps", "20", "--webhook-secret", "s"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env) as process:
        try:
            url = process.stdout.readline().strip() if process.stdout else ""
            assert url.startswith("http://127.0.0.1:")
            with httpx.Client(base_url=url) as client:
                assert token(client)
                raw, headers = signed(batch("x"), secret="s")
                assert client.post("/webhook", content=raw, headers=headers).json() == {"accepted": 1, "duplicates": 0}
            process.terminate()
            assert process.wait(timeout=20) == 0
        finally:
            process.kill()
