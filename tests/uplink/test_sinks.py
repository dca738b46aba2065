"""The DingTalk and webhook sink clients against the real platform stand-in over loopback HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from firmware_stubs.platform import PlatformStandIn
from gateway.uplink.dingtalk import DingTalkSink
from gateway.uplink.result import Outcome
from gateway.uplink.webhook import WebhookSink, batch_key

KEY, SECRET, HOOK_SECRET, SITE = "standin-key", "standin-secret", "hook-secret", "hq"
T = TypeVar("T")


@pytest.fixture
def stand_in() -> Iterator[PlatformStandIn]:
    with PlatformStandIn(qps=None, webhook_secret=HOOK_SECRET) as s:
        yield s


# Fixed once, so punches made either side of a second boundary can never share a time.
AN_HOUR_AGO_S = int(time.time()) - 3600


def punch(userid: str = "u1", seconds_ago: int = 0, device_id: str = "att-01") -> dict[str, Any]:
    at_ms = (AN_HOUR_AGO_S - seconds_ago) * 1000
    return {"userid": userid, "device_name": "Front door", "device_id": device_id, "user_check_time": at_ms}


def with_dingtalk(stand_in: PlatformStandIn, scenario: Callable[[DingTalkSink], Awaitable[T]], **kw: Any) -> T:
    async def main() -> T:
        sink = DingTalkSink(stand_in.url, kw.pop("app_key", KEY), kw.pop("app_secret", SECRET), **kw)
        try:
            return await scenario(sink)
        finally:
            await sink.close()

    return asyncio.run(main())


def stored(stand_in: PlatformStandIn, record: dict[str, Any]) -> int:
    return stand_in.accepted_count(record["userid"], record["user_check_time"], record["device_id"])


def api_calls(stand_in: PlatformStandIn, api: str) -> int:
    return stand_in.stats()["calls"].get(api, 0)


# ---- DingTalk ----


def test_a_punch_is_delivered_and_stored_once(stand_in: PlatformStandIn) -> None:
    record = punch()
    outcome = with_dingtalk(stand_in, lambda sink: sink.send(record))
    assert outcome == Outcome.delivered()
    assert stored(stand_in, record) == 1 and stand_in.total_accepted == 1


def test_one_token_serves_many_sends_even_when_they_start_together(stand_in: PlatformStandIn) -> None:
    records = [punch(seconds_ago=i) for i in range(10)]

    async def scenario(sink: DingTalkSink) -> tuple[list[Outcome], int]:
        outcomes = list(await asyncio.gather(*(sink.send(r) for r in records)))
        return outcomes, sink.token_refreshes

    outcomes, refreshes = with_dingtalk(stand_in, scenario, rate=200)
    assert all(o.status == "delivered" for o in outcomes)
    assert api_calls(stand_in, "gettoken") == 1 and refreshes == 1
    assert stand_in.total_accepted == 10 and not stand_in.duplicates()


def test_an_expired_token_is_replaced_and_the_punch_sent_once(stand_in: PlatformStandIn) -> None:
    first, second = punch(seconds_ago=1), punch(seconds_ago=2)

    async def scenario(sink: DingTalkSink) -> tuple[Outcome, Outcome]:
        before = await sink.send(first)
        stand_in.expire_tokens()
        return before, await sink.send(second)

    assert with_dingtalk(stand_in, scenario) == (Outcome.delivered(), Outcome.delivered())
    assert api_calls(stand_in, "gettoken") == 2
    assert api_calls(stand_in, "upload") == 3  # the second punch: refused with 42001, then accepted
    assert stored(stand_in, second) == 1 and not stand_in.duplicates()


def test_wrong_app_secret_is_a_retry_that_names_the_config(stand_in: PlatformStandIn) -> None:
    outcome = with_dingtalk(stand_in, lambda sink: sink.send(punch()), app_secret="wrong")
    assert outcome.status == "retry" and "40089" in outcome.detail and "app_secret" in outcome.detail
    assert api_calls(stand_in, "upload") == 0


def test_busy_platform_is_retried_soon_and_stores_nothing(stand_in: PlatformStandIn) -> None:
    stand_in.busy(1, apis=["upload"])
    outcome = with_dingtalk(stand_in, lambda sink: sink.send(punch()))
    assert outcome.status == "retry" and outcome.retry_after == 1.0 and not outcome.maybe_delivered
    assert stand_in.total_accepted == 0


def test_unknown_user_is_parked_with_the_platforms_reason(stand_in: PlatformStandIn) -> None:
    stand_in.set_known_users(["u1"])
    outcome = with_dingtalk(stand_in, lambda sink: sink.send(punch("stranger")))
    assert outcome.status == "park" and "60121" in outcome.detail and "user not found" in outcome.detail
    assert stand_in.total_accepted == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [({"user_check_time": 1_000_000_000_000}, "user_check_time"), ({"device_name": None}, "device_name")],
)
def test_data_the_platform_calls_invalid_is_parked(stand_in: PlatformStandIn, change: dict, field: str) -> None:
    record = {k: v for k, v in {**punch(), **change}.items() if v is not None}
    outcome = with_dingtalk(stand_in, lambda sink: sink.send(record))
    assert outcome.status == "park" and "40035" in outcome.detail and field in outcome.detail


def test_an_html_error_page_is_a_throttle_retry(stand_in: PlatformStandIn) -> None:
    stand_in.html_error(1, status=502, apis=["upload"])

    async def scenario(sink: DingTalkSink) -> tuple[Outcome, int]:
        return await sink.send(punch()), sink.throttled

    outcome, throttled = with_dingtalk(stand_in, scenario)
    assert outcome.status == "retry" and outcome.retry_after == 5.0 and "HTML" in outcome.detail
    assert outcome.maybe_delivered  # a 502 from a proxy: the platform behind it may have taken the punch
    assert throttled == 1 and stand_in.total_accepted == 0


def test_the_ip_throttle_answer_waits_as_long_as_it_says(stand_in: PlatformStandIn) -> None:
    stand_in.ip_throttle(1, apis=["upload"])
    outcome = with_dingtalk(stand_in, lambda sink: sink.send(punch()))
    assert outcome.status == "retry" and outcome.retry_after == 5.0 and not outcome.maybe_delivered
    assert stand_in.total_accepted == 0


def test_a_qps_cap_below_the_clients_rate_gives_retries_and_no_double_punch(stand_in: PlatformStandIn) -> None:
    stand_in.set_qps(5)
    records = [punch(seconds_ago=i) for i in range(12)]

    async def scenario(sink: DingTalkSink) -> tuple[list[Outcome], int]:
        return list(await asyncio.gather(*(sink.send(r) for r in records))), sink.throttled

    outcomes, throttled = with_dingtalk(stand_in, scenario, rate=50)
    delivered = [r for r, o in zip(records, outcomes) if o.status == "delivered"]
    retried = [o for o in outcomes if o.status == "retry"]
    assert retried and all(o.retry_after == 1.0 and "90018" in o.detail for o in retried)
    assert len(delivered) + len(retried) == len(records)
    assert stand_in.total_accepted == len(delivered) and all(stored(stand_in, r) == 1 for r in delivered)
    assert throttled == stand_in.throttled == len(retried)


def test_the_rate_limit_keeps_a_burst_under_the_platforms_cap(stand_in: PlatformStandIn) -> None:
    stand_in.set_qps(25)
    records = [punch(seconds_ago=i) for i in range(30)]
    outcomes = with_dingtalk(stand_in, lambda sink: asyncio.gather(*(sink.send(r) for r in records)), rate=20)
    assert [o.status for o in outcomes] == ["delivered"] * 30
    assert stand_in.throttled == 0 and stand_in.total_accepted == 30


@pytest.mark.parametrize("loss", ["record_then_drop", "record_then_hang"])
def test_a_lost_answer_is_flagged_and_was_delivered_finds_the_punch(stand_in: PlatformStandIn, loss: str) -> None:
    record = punch()
    getattr(stand_in, loss)(1)

    async def scenario(sink: DingTalkSink) -> tuple[Outcome, bool | None]:
        outcome = await sink.send(record)
        return outcome, await sink.was_delivered(record)

    outcome, found = with_dingtalk(stand_in, scenario, timeout_s=0.5)
    stand_in.release_hung()
    assert outcome.status == "retry" and outcome.maybe_delivered and outcome.retry_after is None
    assert found is True
    assert stored(stand_in, record) == 1 and api_calls(stand_in, "upload") == 1


def test_was_delivered_tells_a_stored_punch_from_its_neighbours(stand_in: PlatformStandIn) -> None:
    sent = punch(seconds_ago=10)
    later, elsewhere = {**sent, "user_check_time": sent["user_check_time"] + 5000}, {**sent, "device_id": "att-02"}
    someone_else = {**sent, "userid": "u2"}

    async def scenario(sink: DingTalkSink) -> list[bool | None]:
        assert await sink.send(sent) == Outcome.delivered()
        return [await sink.was_delivered(r) for r in (sent, later, elsewhere, someone_else)]

    assert with_dingtalk(stand_in, scenario) == [True, False, False, False]


def test_when_the_platform_is_down_sends_retry_and_was_delivered_cannot_tell(stand_in: PlatformStandIn) -> None:
    first, second = punch(seconds_ago=1), punch(seconds_ago=2)

    async def scenario(sink: DingTalkSink) -> tuple[Outcome, bool | None, str, Outcome]:
        assert await sink.send(first) == Outcome.delivered()  # token cached, connection kept alive
        stand_in.go_down()
        while_down = await sink.send(second)
        known = await sink.was_delivered(first)
        error = sink.last_error
        stand_in.come_up()
        return while_down, known, error, await sink.send(second)

    while_down, known, error, after = with_dingtalk(stand_in, scenario)
    assert while_down.status == "retry" and "unreachable" in while_down.detail and not while_down.maybe_delivered
    assert known is None and "listRecord" in error
    assert after == Outcome.delivered()
    assert stored(stand_in, first) == 1 and stored(stand_in, second) == 1


# ---- webhook ----


def hook_records(*types: str) -> list[dict[str, Any]]:
    return [{"type": t, "idempotency_key": f"{t}-{i}", "record": {"n": i}} for i, t in enumerate(types)]


def with_webhook(stand_in: PlatformStandIn, scenario: Callable[[WebhookSink], Awaitable[T]], **kw: Any) -> T:
    async def main() -> T:
        sink = WebhookSink(stand_in.webhook_url, kw.pop("secret", HOOK_SECRET), SITE, **kw)
        try:
            return await scenario(sink)
        finally:
            await sink.close()

    return asyncio.run(main())


def test_a_signed_batch_is_accepted_and_counted(stand_in: PlatformStandIn) -> None:
    records = hook_records("visit", "trip", "visit")
    outcomes = with_webhook(stand_in, lambda sink: sink.send_batch(records))
    assert outcomes == [Outcome.delivered()] * 3
    assert stand_in.webhook.accepted == 3 and stand_in.webhook.batch_deliveries(batch_key(records)) == 1
    assert [(r["site"], r["idempotency_key"]) for r in stand_in.webhook.records()] == [
        (SITE, "visit-0"),
        (SITE, "trip-1"),
        (SITE, "visit-2"),
    ]


def test_a_resent_batch_counts_as_duplicates_not_new_records(stand_in: PlatformStandIn) -> None:
    records = hook_records("visit", "trip")

    async def scenario(sink: WebhookSink) -> list[Outcome]:
        await sink.send_batch(records)
        return await sink.send_batch(records)

    assert with_webhook(stand_in, scenario) == [Outcome.delivered()] * 2
    assert stand_in.webhook.accepted == 2 and stand_in.webhook.duplicate_deliveries == 2


def test_a_wrong_secret_is_retried_not_parked(stand_in: PlatformStandIn) -> None:
    outcomes = with_webhook(stand_in, lambda sink: sink.send_batch(hook_records("visit")), secret="wrong")
    assert outcomes[0].status == "retry" and "401" in outcomes[0].detail and "bad signature" in outcomes[0].detail
    assert stand_in.webhook.accepted == 0


def test_a_server_error_retries_the_whole_batch(stand_in: PlatformStandIn) -> None:
    stand_in.webhook.fail(1, status=500)
    outcomes = with_webhook(stand_in, lambda sink: sink.send_batch(hook_records("visit", "trip")))
    assert [o.status for o in outcomes] == ["retry", "retry"] and "500" in outcomes[0].detail
    assert stand_in.webhook.accepted == 0


def test_a_bad_request_parks_the_batch_with_the_answer(stand_in: PlatformStandIn) -> None:
    stand_in.webhook.fail(1, status=400, reason="record shape not understood")
    outcomes = with_webhook(stand_in, lambda sink: sink.send_batch(hook_records("visit", "trip")))
    assert [o.status for o in outcomes] == ["park", "park"]
    assert "400" in outcomes[0].detail and "record shape not understood" in outcomes[0].detail


def test_refused_types_are_parked_and_the_rest_resent_without_them(stand_in: PlatformStandIn) -> None:
    stand_in.webhook.reject_types(["trip"])
    records = hook_records("visit", "trip", "visit")

    async def scenario(sink: WebhookSink) -> tuple[list[Outcome], list[Outcome]]:
        first = await sink.send_batch(records)
        rest = [r for r, o in zip(records, first) if o.status == "retry"]
        return first, await sink.send_batch(rest)

    first, second = with_webhook(stand_in, scenario)
    assert [o.status for o in first] == ["retry", "park", "retry"] and first[0].retry_after == 0.0
    assert "trip-1" in first[1].detail
    assert second == [Outcome.delivered()] * 2
    assert sorted(r["idempotency_key"] for r in stand_in.webhook.records()) == ["visit-0", "visit-2"]


def test_a_timeout_is_flagged_maybe_delivered_and_a_resend_is_stored_once(stand_in: PlatformStandIn) -> None:
    stand_in.webhook.hang(1)  # held until released
    records = hook_records("visit", "trip")

    async def scenario(sink: WebhookSink) -> tuple[list[Outcome], list[Outcome]]:
        lost = await sink.send_batch(records)
        stand_in.release_hung()
        return lost, await sink.send_batch(records)

    lost, resent = with_webhook(stand_in, scenario, timeout_s=0.5)
    assert all(o.status == "retry" and o.maybe_delivered for o in lost)
    assert resent == [Outcome.delivered()] * 2
    assert [stand_in.webhook.deliveries(r["idempotency_key"]) for r in records] == [1, 1]
