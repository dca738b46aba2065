"""DingTalk attendance upload: one punch per call, a cached token, a shared rate limit, errcodes mapped to outcomes.

DingTalk keeps every upload it accepts (a resend is a second punch) and takes
no idempotency key. So when `send` answers `maybe_delivered=True` the request
may have been stored and only its answer was lost: the caller must ask
`was_delivered` before sending that record again, and resend only on False
(None means "cannot tell yet": ask again later, do not resend).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import httpx
import orjson

from gateway.uplink.result import Outcome, no_answer

UPLOAD_PATH, LIST_PATH, TOKEN_PATH = "/topapi/attendance/record/upload", "/attendance/listRecord", "/gettoken"
UPLOAD_FIELDS = ("userid", "device_name", "device_id", "user_check_time", "photo_url")
JSON_HEADERS = {"Content-Type": "application/json"}

SYSTEM_BUSY = -1
INVALID_PARAMETER = 40035
APP_QPS_EXCEEDED = 90018
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
UNKNOWN_USER = frozenset({60121, 33012})
ADMIN_MUST_ACT = frozenset({88, 60011, 60020})  # auth, permission, IP whitelist: data is fine, config is not
CALL_CAP_WAIT = {90002: 60.0, 90020: 3600.0}  # global limit, monthly cap

BUSY_WAIT = 1.0
QPS_PAUSE = 1.0
THROTTLE_WAIT = 5.0  # the IP throttle's usual wait, used when it does not say
MAX_CLIENT_PAUSE = 30.0  # longer waits go to the worker instead of blocking every send
ADMIN_WAIT = 60.0
TOKEN_REFRESH_MARGIN = 300.0
LIST_WINDOW_S = 60
LIST_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# Spaced calls need few connections, and httpx slows down with every idle one it keeps (it checks them all
# on each request). Calls in flight are capped at this too, so none queues inside httpx and leaves late.
CONNECTIONS = 4
TIMER_TICK, CATCH_UP = 0.001, 0.004
COUNTED_WITHIN = 0.05  # latest the platform is taken to count a call after it left, if the answer comes later


class _Stop(Exception):  # ends a call early with the outcome to report
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome


class RateLimiter:
    """At most `rate` calls in any rolling second, evenly spaced, shared by every call of one client.

    Spacing, not a bucket that saves up bursts. A call may leave only a second
    after the platform counted the call `rate` places back, which happened
    before that call's answer and, we assume, at most COUNTED_WITHIN after it
    left: so network delays cannot push a rolling second over the cap.
    """

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self._next_slot = self._paused_until = 0.0
        self._lock = asyncio.Lock()
        self._counted_by: deque[list[float]] = deque(maxlen=max(1, int(rate)))  # one-item lists, set on answer

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for this call's turn; the block is the call itself, from sending until the answer or failure."""
        counted_by = await self._wait_turn()
        try:
            yield
        finally:
            counted_by[0] = min(counted_by[0], time.monotonic())

    async def _wait_turn(self) -> list[float]:
        # One caller at a time, first come first served, its slot fixed only when its turn comes: slots
        # handed out far ahead would fire together, late, whenever the event loop lags.
        async with self._lock:
            while True:
                now = time.monotonic()
                slot = max(now - CATCH_UP, self._next_slot)  # behind schedule: catch up a little, never in a burst
                full = len(self._counted_by) == self._counted_by.maxlen
                hard = max(self._paused_until, self._counted_by[0][0] + 1.0 if full else 0.0)
                # Timers tick in ~1 ms, so spacing may go that little early rather than lose a tick; hard limits never.
                wait = max(slot - now if slot - now >= TIMER_TICK else 0.0, hard - now)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            self._next_slot = max(slot, hard) + self.interval
            counted_by = [now + COUNTED_WITHIN]
            self._counted_by.append(counted_by)
            return counted_by


class DingTalkSink:
    """Async client for the attendance upload; one per process, connections kept alive. Stats are read-only."""

    name = "dingtalk"
    calls = property(lambda self: self._calls, doc="upload and listRecord requests sent")
    throttled = property(lambda self: self._throttled, doc="answers 90018, IP throttle or an HTML page")
    token_refreshes = property(lambda self: self._token_refreshes, doc="tokens fetched")
    last_error = property(lambda self: self._last_error, doc="detail of the latest failure, '' if none yet")

    def __init__(
        self, base_url: str, app_key: str, app_secret: str, rate: float = 20.0, timeout_s: float = 10.0
    ) -> None:
        self._app_key, self._app_secret = app_key, app_secret
        self._base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            timeout=timeout_s,
            headers=JSON_HEADERS,
            limits=httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS),
        )
        self._limiter = RateLimiter(rate)
        self._in_flight = asyncio.Semaphore(CONNECTIONS)
        self._token: str | None = None
        self._token_good_until = 0.0
        self._urls: dict[str, tuple[str, httpx.URL]] = {}
        self._token_lock = asyncio.Lock()  # many sends waiting on an expired token fetch one, not one each
        self._calls = self._throttled = self._token_refreshes = 0
        self._last_error = ""

    async def send(self, record: dict[str, Any]) -> Outcome:
        """Upload one punch: {"userid", "device_name", "device_id", "user_check_time" (epoch ms), "photo_url"?}.

        Never raises for platform trouble. A retry with `maybe_delivered=True`
        (answer lost after sending, or a 5xx page from a proxy in front) may be
        stored already: call `was_delivered`, resend only if it answers False.
        """
        body = {field: record[field] for field in UPLOAD_FIELDS if field in record}
        try:
            answer = await self._call(UPLOAD_PATH, body, stores_data=True)
        except _Stop as stop:
            return self._noted(stop.outcome)
        return self._noted(upload_outcome(answer))

    async def was_delivered(self, record: dict[str, Any], tz: str = "Asia/Shanghai") -> bool | None:
        """Whether the platform holds this punch (same user and time, and device when given).

        Asks listRecord for a minute either side, in the org's time zone `tz`. None when it
        cannot tell: platform unreachable, throttled, an error answer, a record without user/time.
        """
        try:
            userid, at_ms, zone = record["userid"], int(record["user_check_time"]), ZoneInfo(tz)
            body = {
                "userIds": [userid],
                "checkDateFrom": _org_time(at_ms / 1000 - LIST_WINDOW_S, zone),
                "checkDateTo": _org_time(at_ms / 1000 + LIST_WINDOW_S, zone),
            }
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # ZoneInfoNotFoundError is a KeyError
            self._last_error = f"listRecord: cannot ask for this record: {exc!r}"
            return None
        try:
            answer = await self._call(LIST_PATH, body, stores_data=False)
        except _Stop as stop:
            self._last_error = f"listRecord: {stop.outcome.detail}"
            return None
        if answer.get("errcode") != 0 or not isinstance(answer.get("recordresult"), list):
            self._last_error = f"listRecord: {describe(answer)}"
            return None
        device = record.get("device_id")
        return any(
            isinstance(row, dict)
            and row.get("userId") == userid
            and row.get("userCheckTime") == at_ms
            and (device is None or row.get("deviceId") == device)
            for row in answer["recordresult"]
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, path: str, body: dict[str, Any], *, stores_data: bool) -> dict[str, Any]:
        """POST with a token; a refused token is replaced and the same request sent once more at once."""
        token = await self._valid_token()
        answer = await self._post(path, token, body, stores_data)
        if answer.get("errcode") in TOKEN_ERRORS:
            if self._token == token:  # else another send has already replaced it
                self._token = None
            answer = await self._post(path, await self._valid_token(), body, stores_data)
        return answer

    async def _post(self, path: str, token: str, body: dict[str, Any], stores_data: bool) -> dict[str, Any]:
        # A connection first, then the turn, so the call leaves on its slot instead of queueing inside httpx.
        async with self._in_flight, self._limiter.turn():
            self._calls += 1
            try:
                response = await self._http.post(self._url(path, token), content=orjson.dumps(body))
            except httpx.HTTPError as exc:
                raise _Stop(no_answer(exc, stores_data)) from None
        answer = self._json_answer(response, stores_data)
        if answer.get("errcode") == APP_QPS_EXCEEDED:
            self._throttled += 1
            self._limiter.pause(QPS_PAUSE)  # every send waits, not only the one that was refused
        return answer

    def _json_answer(self, response: httpx.Response, stores_data: bool) -> dict[str, Any]:
        """The platform's errcode answer; throttle answers and anything else end the call."""
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            answer = None
        status = response.status_code
        # A 5xx page comes from something in front of the platform, which may have passed the record on.
        maybe = stores_data and status >= 500
        if not isinstance(answer, dict):
            if "html" in response.headers.get("content-type", "") or response.text.lstrip().startswith("<"):
                self._throttle(THROTTLE_WAIT, f"throttled: HTML page instead of an answer (HTTP {status})", maybe)
            raise _Stop(Outcome.retry(f"HTTP {status}: not an answer: {response.text[:200]!r}", maybe_delivered=maybe))
        if answer.get("status") == 1111:
            wait = answer.get("wait")
            wait = float(wait) if isinstance(wait, (int, float)) and wait > 0 else THROTTLE_WAIT
            self._throttle(wait, f"throttled: IP-level limit, wait {wait:g} s", False)
        if not isinstance(answer.get("errcode"), int):
            raise _Stop(
                Outcome.retry(f"HTTP {status}: answer without errcode: {str(answer)[:200]}", maybe_delivered=maybe)
            )
        return answer

    def _throttle(self, wait: float, detail: str, maybe_delivered: bool) -> NoReturn:
        self._throttled += 1
        self._limiter.pause(min(wait, MAX_CLIENT_PAUSE))  # the IP limit holds for all our calls
        raise _Stop(Outcome.retry(detail, wait, maybe_delivered=maybe_delivered))

    async def _valid_token(self) -> str:
        if self._token is not None and time.monotonic() < self._token_good_until:
            return self._token
        async with self._token_lock:
            if self._token is None or time.monotonic() >= self._token_good_until:
                await self._fetch_token()
            assert self._token is not None
            return self._token

    async def _fetch_token(self) -> None:
        asked_at = time.monotonic()
        try:
            response = await self._http.get(TOKEN_PATH, params={"appkey": self._app_key, "appsecret": self._app_secret})
        except httpx.HTTPError as exc:
            raise _Stop(no_answer(exc, could_store=False)) from None
        answer = self._json_answer(response, stores_data=False)
        token, code = answer.get("access_token"), answer.get("errcode")
        if code == SYSTEM_BUSY:
            raise _Stop(Outcome.retry(f"gettoken: platform busy: {describe(answer)}", BUSY_WAIT))
        if code != 0 or not isinstance(token, str) or not token:
            # Wrong key or secret (40089 and friends): a config problem, so back off rather than hammer.
            raise _Stop(Outcome.retry(f"gettoken refused, check app_key/app_secret: {describe(answer)}"))
        lifetime = float(answer["expires_in"]) if isinstance(answer.get("expires_in"), (int, float)) else 7200.0
        # Refresh ahead of expiry so a token never runs out in flight; short lifetimes keep half.
        self._token_good_until = asked_at + lifetime - min(TOKEN_REFRESH_MARGIN, lifetime / 2)
        self._token = token
        self._token_refreshes += 1

    def _url(self, path: str, token: str) -> httpx.URL:
        # Built once per token: letting httpx merge base URL and query on every call doubles its own cost.
        cached_token, url = self._urls.get(path, ("", None))
        if url is None or cached_token != token:
            url = httpx.URL(self._base_url + path, params={"access_token": token})
            self._urls[path] = (token, url)
        return url

    def _noted(self, outcome: Outcome) -> Outcome:
        if outcome.status != "delivered":
            self._last_error = outcome.detail
        return outcome


def upload_outcome(answer: dict[str, Any]) -> Outcome:
    """Map an upload's errcode answer to what the worker should do with the record."""
    code, what = answer.get("errcode"), describe(answer)
    if code == 0:
        return Outcome.delivered()
    if code == SYSTEM_BUSY:
        return Outcome.retry(f"platform busy: {what}", BUSY_WAIT)
    if code in UNKNOWN_USER:
        return Outcome.park(f"unknown user: {what}")
    if code == INVALID_PARAMETER:
        return Outcome.park(f"platform refused the data: {what}")
    if code == APP_QPS_EXCEEDED:
        return Outcome.retry(f"app QPS limit: {what}", QPS_PAUSE)
    if code in CALL_CAP_WAIT:
        return Outcome.retry(f"platform call cap reached: {what}", CALL_CAP_WAIT[code])
    if code in ADMIN_MUST_ACT:
        return Outcome.retry(f"an admin must act (permission, auth or IP whitelist): {what}", ADMIN_WAIT)
    if code in TOKEN_ERRORS:
        return Outcome.retry(f"token refused again after a refresh: {what}")
    return Outcome.retry(f"unexpected errcode: {what}")


def describe(answer: dict[str, Any]) -> str:
    text = f"{answer.get('errcode')} {answer.get('errmsg', '')}".strip()
    return f"{text} (sub_code {answer['sub_code']})" if answer.get("sub_code") else text


def _org_time(epoch_s: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(epoch_s, zone).strftime(LIST_TIME_FORMAT)
