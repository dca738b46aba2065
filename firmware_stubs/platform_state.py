"""The office-platform stand-in's memory: tokens, rate limit, injected faults, records and counters.

Plain thread-safe Python with no HTTP in it: the request handlers (on the
server's event loop) and the test or demo (on its own thread) both call in
here, and every method holds one lock only for a few dictionary operations,
so neither side can see a half-made change. See `firmware_stubs.platform` for
the HTTP contract these answers travel in.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from firmware_stubs.platform_webhook import WebhookReceiver

# DingTalk error codes the stand-in answers with.
OK = 0
SYSTEM_BUSY = -1
INVALID_TOKEN = 40014
INVALID_PARAMETER = 40035
INVALID_APP_CREDENTIALS = 40089
TOKEN_EXPIRED = 42001
USER_NOT_FOUND = 60121
QPS_EXCEEDED = 90018

APIS = ("gettoken", "upload", "listrecord")
MAX_CHECK_TIME_DISTANCE_MS = 180 * 24 * 3600 * 1000
MAX_LIST_USERS = 50
MAX_LIST_RANGE = timedelta(days=7)
LIST_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# Faults that answer instead of the platform, and the two that answer after the record is stored.
ANSWERING_FAULTS = ("busy", "html", "ip_throttle", "hang")
AFTER_RECORD_FAULTS = ("record_then_hang", "record_then_drop")

RecordKey = tuple[str, int, str]  # (userid, user_check_time, device_id)


@dataclass
class Fault:
    kind: str
    remaining: int
    apis: frozenset[str]
    seconds: float | None = None  # hang length; None = until released
    status: int = 502  # HTTP status of the HTML error page
    wait: int = 5  # the "wait" of the IP throttle answer


def error(code: int, message: str) -> dict[str, Any]:
    return {"errcode": code, "errmsg": message}


def invalid(field: str, why: str = "missing or of the wrong type") -> dict[str, Any]:
    return error(INVALID_PARAMETER, f"invalid parameter: {field} {why}")


class PlatformState:
    def __init__(
        self,
        *,
        qps: int | None = 20,
        known_users: Iterable[str] | None = None,
        app_key: str = "standin-key",
        app_secret: str = "standin-secret",
        token_ttl: float = 7200,
        org_tz: str = "Asia/Shanghai",
        webhook_secret: str = "standin-webhook-secret",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self.app_key, self.app_secret = app_key, app_secret
        self.token_ttl = token_ttl
        self.org_tz = ZoneInfo(org_tz)
        self._clock = clock  # injectable so tests move time instead of sleeping
        self._qps = _checked_qps(qps)
        self._known_users = _checked_ids(known_users)
        self._tokens: dict[str, float] = {}  # token -> expiry on self._clock
        self._current_token: str | None = None
        self._admitted: deque[float] = deque()  # when each call inside the last second was let through
        self._faults: list[Fault] = []
        self.webhook = WebhookReceiver(webhook_secret)
        self._forget_records()

    def _forget_records(self) -> None:
        self._records: list[dict[str, Any]] = []
        self._accepted: Counter[RecordKey] = Counter()
        self._throttled = 0
        self._calls: Counter[str] = Counter()
        self._faults_served: Counter[str] = Counter()

    # ---- knobs ----

    def set_qps(self, qps: int | None) -> None:
        """Calls per rolling second per app; None or 0 switches the limit off."""
        qps = _checked_qps(qps)
        with self._lock:
            self._qps = qps
            self._admitted.clear()

    def set_known_users(self, userids: Iterable[str] | None) -> None:
        """The user ids the org has; empty or None means every user id is known."""
        known = _checked_ids(userids)
        with self._lock:
            self._known_users = known

    def expire_tokens(self) -> None:
        """Every token issued so far answers 42001 from now on."""
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, float("-inf"))
            self._current_token = None

    def busy(self, n: int = 1, *, apis: Iterable[str] = APIS) -> None:
        """The next n calls answer errcode -1 (system busy)."""
        self._add_fault(Fault("busy", n, frozenset(apis)))

    def html_error(self, n: int = 1, *, status: int = 502, apis: Iterable[str] = APIS) -> None:
        """The next n calls get an HTML error page (a proxy in the way), with this HTTP status."""
        self._add_fault(Fault("html", n, frozenset(apis), status=status))

    def ip_throttle(self, n: int = 1, *, wait: int = 5, apis: Iterable[str] = APIS) -> None:
        """The next n calls answer {"status": 1111, "wait": wait}: the IP-level throttle."""
        self._add_fault(Fault("ip_throttle", n, frozenset(apis), wait=wait))

    def hang(self, n: int = 1, *, seconds: float | None = None, apis: Iterable[str] = APIS) -> None:
        """Hold the next n calls for `seconds` (None: until release_hung), then serve them as usual."""
        self._add_fault(Fault("hang", n, frozenset(apis), seconds=seconds))

    def record_then_hang(self, n: int = 1, *, seconds: float | None = None) -> None:
        """The next n accepted uploads are stored, then their answer is held (None: until released)."""
        self._add_fault(Fault("record_then_hang", n, frozenset({"upload"}), seconds=seconds))

    def record_then_drop(self, n: int = 1) -> None:
        """The next n accepted uploads are stored, then the connection is closed with no answer."""
        self._add_fault(Fault("record_then_drop", n, frozenset({"upload"})))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """Forget records, counters, pending faults and webhook deliveries; keep settings and tokens."""
        with self._lock:
            self._forget_records()
            self._faults.clear()
            self._admitted.clear()
        self.webhook.reset()

    def _add_fault(self, fault: Fault) -> None:
        unknown = fault.apis - set(APIS)
        if unknown or fault.remaining < 1:
            raise ValueError(
                f"fault needs n >= 1 and apis among {APIS}, got n={fault.remaining} apis={sorted(unknown)}"
            )
        # Checked now, since a bad value would otherwise only blow up inside a later request.
        if not (isinstance(fault.status, int) and 100 <= fault.status <= 599 and isinstance(fault.wait, int)):
            raise ValueError("status must be an HTTP status and wait an integer")
        if fault.seconds is not None and not (isinstance(fault.seconds, (int, float)) and fault.seconds >= 0):
            raise ValueError("seconds must be a non-negative number or None")
        with self._lock:
            self._faults.append(fault)

    # ---- counters ----

    @property
    def total_accepted(self) -> int:
        with self._lock:
            return len(self._records)

    @property
    def throttled(self) -> int:
        """Calls refused with 90018 by the QPS limit."""
        with self._lock:
            return self._throttled

    def accepted_count(self, userid: str, user_check_time: int, device_id: str) -> int:
        with self._lock:
            return self._accepted[(userid, user_check_time, device_id)]

    def records(self) -> list[dict[str, Any]]:
        """Accepted uploads in arrival order (a resend appears again)."""
        with self._lock:
            return [dict(r) for r in self._records]

    def duplicates(self) -> dict[RecordKey, int]:
        """Records accepted more than once, with how many times."""
        with self._lock:
            return {key: n for key, n in self._accepted.items() if n > 1}

    def stats(self) -> dict[str, Any]:
        with self._lock:
            stats = {
                "total_accepted": len(self._records),
                "throttled": self._throttled,
                "duplicate_records": sum(1 for n in self._accepted.values() if n > 1),
                "calls": dict(self._calls),
                "faults_served": dict(self._faults_served),
                "faults_pending": [{"kind": f.kind, "remaining": f.remaining} for f in self._faults],
            }
        stats["webhook"] = self.webhook.stats()
        return stats

    # ---- what the handlers call ----

    def take_fault(self, api: str, *, after_record: bool = False) -> Fault | None:
        """Use up one call of the oldest pending fault that applies to this call, if any."""
        kinds = AFTER_RECORD_FAULTS if after_record else ANSWERING_FAULTS
        with self._lock:
            return self._take_fault_locked(api, kinds)

    def _take_fault_locked(self, api: str, kinds: tuple[str, ...]) -> Fault | None:
        for fault in self._faults:
            if api in fault.apis and fault.kind in kinds:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                self._faults_served[fault.kind] += 1
                return fault
        return None

    def issue_token(self, appkey: str | None, appsecret: str | None) -> dict[str, Any]:
        with self._lock:
            self._calls["gettoken"] += 1
            if appkey != self.app_key or appsecret != self.app_secret:
                return error(INVALID_APP_CREDENTIALS, "invalid appkey or appsecret")
            now = self._clock()
            token = self._current_token
            if token is None or self._tokens[token] <= now:
                token = uuid.uuid4().hex
                self._current_token = token
            # Like DingTalk, asking again while the token is valid returns it with its lifetime renewed.
            self._tokens[token] = now + self.token_ttl
            return {"errcode": OK, "errmsg": "ok", "access_token": token, "expires_in": int(self.token_ttl)}

    def admit(self, api: str, token: str | None) -> dict[str, Any] | None:
        """Check the token and the QPS limit for one call; None lets it through, else the error answer."""
        with self._lock:
            self._calls[api] += 1
            now = self._clock()
            expiry = self._tokens.get(token or "")
            if expiry is None:
                return error(INVALID_TOKEN, "invalid access_token")
            if expiry <= now:
                return error(TOKEN_EXPIRED, "access_token expired")
            if self._qps:
                # Only calls let through fill the window, so a client that hammers is not locked out for ever.
                while self._admitted and self._admitted[0] <= now - 1.0:
                    self._admitted.popleft()
                if len(self._admitted) >= self._qps:
                    self._throttled += 1
                    return error(QPS_EXCEEDED, f"app exceeded {self._qps} calls per second")
                self._admitted.append(now)
            return None

    def upload(self, body: Any) -> tuple[dict[str, Any], Fault | None]:
        """Validate and store one attendance record; also returns the after-record fault to act out, if any."""
        problem = _upload_problem(body)
        if problem:
            return problem, None
        now_ms = int(time.time() * 1000)
        if abs(now_ms - body["user_check_time"]) > MAX_CHECK_TIME_DISTANCE_MS:
            return invalid("user_check_time", "is more than 180 days from now"), None
        key = (body["userid"], body["user_check_time"], body["device_id"])
        with self._lock:
            if self._known_users and key[0] not in self._known_users:
                return error(USER_NOT_FOUND, "user not found"), None
            request_id = uuid.uuid4().hex
            self._records.append(
                {
                    "id": len(self._records) + 1,
                    "userid": key[0],
                    "user_check_time": key[1],
                    "device_id": key[2],
                    "device_name": body["device_name"],
                    "photo_url": body.get("photo_url"),
                    "request_id": request_id,
                }
            )
            self._accepted[key] += 1
            fault = self._take_fault_locked("upload", AFTER_RECORD_FAULTS)
        return {"errcode": OK, "success": True, "errmsg": "ok", "request_id": request_id}, fault

    def list_records(self, body: Any) -> dict[str, Any]:
        """Stored records of the given users checked between two org-local times, both ends included."""
        if not isinstance(body, dict):
            return invalid("body", "is not a JSON object")
        userids = body.get("userIds")
        if not isinstance(userids, list) or not userids or not all(isinstance(u, str) for u in userids):
            return invalid("userIds")
        if len(userids) > MAX_LIST_USERS:
            return invalid("userIds", f"has more than {MAX_LIST_USERS} ids")
        start, end = self._org_time(body.get("checkDateFrom")), self._org_time(body.get("checkDateTo"))
        if start is None:
            return invalid("checkDateFrom", "is not yyyy-MM-dd HH:mm:ss")
        if end is None:
            return invalid("checkDateTo", "is not yyyy-MM-dd HH:mm:ss")
        if not start <= end <= start + MAX_LIST_RANGE:
            return invalid("checkDateTo", "must be after checkDateFrom and at most 7 days later")
        start_ms, end_ms, wanted = int(start.timestamp() * 1000), int(end.timestamp() * 1000), set(userids)
        with self._lock:
            found = [r for r in self._records if r["userid"] in wanted and start_ms <= r["user_check_time"] <= end_ms]
        found.sort(key=lambda r: (r["user_check_time"], r["id"]))
        return {"errcode": OK, "errmsg": "ok", "recordresult": [self._as_listed(r) for r in found]}

    def _org_time(self, text: Any) -> datetime | None:
        try:
            return datetime.strptime(text, LIST_TIME_FORMAT).replace(tzinfo=self.org_tz)
        except (TypeError, ValueError):
            return None

    def _as_listed(self, record: dict[str, Any]) -> dict[str, Any]:
        local = datetime.fromtimestamp(record["user_check_time"] / 1000, self.org_tz)
        work_date = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return {
            "id": record["id"],
            "userId": record["userid"],
            "userCheckTime": record["user_check_time"],
            "deviceId": record["device_id"],
            "sourceType": "ATM",
            # No shifts are kept here: morning punches count as on duty, and the punch is its own base time.
            "checkType": "OnDuty" if local.hour < 12 else "OffDuty",
            "timeResult": "Normal",
            "locationResult": "Normal",
            "baseCheckTime": record["user_check_time"],
            "workDate": int(work_date.timestamp() * 1000),
        }


def _checked_qps(qps: Any) -> int | None:
    if qps is not None and (type(qps) is not int or qps < 0):
        raise ValueError(f"qps must be a non-negative integer or None, not {qps!r}")
    return qps or None


def _checked_ids(userids: Iterable[str] | None) -> frozenset[str]:
    if userids is None:
        return frozenset()
    if isinstance(userids, str):
        raise TypeError("user ids must be a collection of strings, not one string")  # it would become its letters
    ids = frozenset(userids)
    if not all(isinstance(u, str) for u in ids):
        raise ValueError("user ids must be strings")
    return ids


def _upload_problem(body: Any) -> dict[str, Any] | None:
    if not isinstance(body, dict):
        return invalid("body", "is not a JSON object")
    for field in ("userid", "device_name", "device_id"):
        value = body.get(field)
        if not isinstance(value, str) or not value:
            return invalid(field)
    check_time = body.get("user_check_time")
    if type(check_time) is not int or not 10**12 <= check_time < 10**13:  # bool is no time, hence type()
        return invalid("user_check_time", "must be epoch milliseconds (13 digits)")
    photo = body.get("photo_url")
    if photo is not None and not isinstance(photo, str):
        return invalid("photo_url")
    return None
