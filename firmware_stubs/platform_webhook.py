"""The webhook receiver of the platform stand-in: signature check, per-record de-duplication, faults.

The contract it enforces is written out in `firmware_stubs.platform`'s
docstring. This module holds no HTTP: `deliver` takes the three headers and
the raw body and returns the status and JSON answer to send.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

MAX_CLOCK_SKEW_MS = 5 * 60 * 1000


@dataclass
class WebhookFault:
    kind: str  # "fail" or "hang"
    remaining: int
    status: int = 500
    reason: str = "injected failure"
    seconds: float | None = None  # hang length; None = until released


def sign(secret: str, timestamp_ms: int | str, raw_body: bytes) -> str:
    """The X-Gateway-Signature value for this timestamp and body."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}.".encode() + raw_body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookReceiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self._lock = threading.Lock()
        self._faults: list[WebhookFault] = []
        self._rejected_types: frozenset[str] = frozenset()
        self.reset()

    def reset(self) -> None:
        """Forget deliveries, counters and pending faults (the rejected types stay)."""
        with self._lock:
            self._records: list[dict[str, Any]] = []
            self._deliveries: Counter[str] = Counter()  # per-record idempotency key -> times delivered
            self._batch_deliveries: Counter[str] = Counter()
            self._duplicate_deliveries = 0
            self._answered: Counter[int] = Counter()  # HTTP status -> batches answered with it
            self._faults.clear()

    # ---- knobs ----

    def fail(self, n: int = 1, *, status: int = 500, reason: str = "injected failure") -> None:
        """The next n batches are answered with this status and {"error": reason}, and not stored."""
        self._add_fault(WebhookFault("fail", n, status=status, reason=reason))

    def hang(self, n: int = 1, *, seconds: float | None = None) -> None:
        """Hold the next n batches for `seconds` (None: until released), then handle them as usual."""
        self._add_fault(WebhookFault("hang", n, seconds=seconds))

    def reject_types(self, types: Iterable[str]) -> None:
        """Batches holding a record of one of these types are refused whole with 422."""
        if isinstance(types, str):
            raise TypeError("types must be a collection of strings")  # a bare string would become its letters
        with self._lock:
            self._rejected_types = frozenset(types)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add_fault(self, fault: WebhookFault) -> None:
        if fault.remaining < 1 or not (isinstance(fault.status, int) and 100 <= fault.status <= 599):
            raise ValueError("n must be at least 1 and status an HTTP status")
        if fault.seconds is not None and not (isinstance(fault.seconds, (int, float)) and fault.seconds >= 0):
            raise ValueError("seconds must be a non-negative number or None")
        with self._lock:
            self._faults.append(fault)

    # ---- counters ----

    def records(self) -> list[dict[str, Any]]:
        """Distinct records received, in arrival order: {"site", "type", "idempotency_key", "record"}."""
        with self._lock:
            return [dict(r) for r in self._records]

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self._records)

    @property
    def duplicate_deliveries(self) -> int:
        """Record deliveries whose idempotency key had been received before."""
        with self._lock:
            return self._duplicate_deliveries

    def deliveries(self, idempotency_key: str) -> int:
        with self._lock:
            return self._deliveries[idempotency_key]

    def batch_deliveries(self, batch_key: str) -> int:
        """How often a signed, well-formed batch with this Idempotency-Key header arrived."""
        with self._lock:
            return self._batch_deliveries[batch_key]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "accepted": len(self._records),
                "duplicate_deliveries": self._duplicate_deliveries,
                "answered": {str(status): n for status, n in self._answered.items()},
                "faults_pending": [{"kind": f.kind, "remaining": f.remaining} for f in self._faults],
            }

    # ---- what the handler calls ----

    def take_fault(self) -> WebhookFault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.remaining -= 1
            if fault.remaining == 0:
                self._faults.pop(0)
            if fault.kind == "fail":
                self._answered[fault.status] += 1
            return fault

    def deliver(
        self, timestamp: str | None, signature: str | None, batch_key: str | None, raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        status, answer = self._deliver(timestamp, signature, batch_key, raw)
        with self._lock:
            self._answered[status] += 1
        return status, answer

    def _deliver(
        self, timestamp: str | None, signature: str | None, batch_key: str | None, raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        if not timestamp or not timestamp.isdigit():
            return 401, {"error": "missing or malformed X-Gateway-Timestamp"}
        if not signature or not hmac.compare_digest(signature.encode(), sign(self.secret, timestamp, raw).encode()):
            return 401, {"error": "bad signature"}
        if abs(time.time() * 1000 - int(timestamp)) > MAX_CLOCK_SKEW_MS:
            return 401, {"error": "stale timestamp"}
        if not batch_key:
            return 400, {"error": "missing Idempotency-Key header"}
        entries, problem = _parse_batch(raw)
        if problem:
            return 400, {"error": problem}
        with self._lock:
            self._batch_deliveries[batch_key] += 1
            refused = [e["idempotency_key"] for e in entries if e["type"] in self._rejected_types]
            if refused:
                # All or nothing, so the sender never has to work out which half of a batch arrived.
                return 422, {"error": "record type not accepted", "rejected": refused}
            accepted = duplicates = 0
            for entry in entries:
                self._deliveries[entry["idempotency_key"]] += 1
                if self._deliveries[entry["idempotency_key"]] > 1:
                    duplicates += 1
                else:
                    accepted += 1
                    self._records.append(entry)
            self._duplicate_deliveries += duplicates
        return 200, {"accepted": accepted, "duplicates": duplicates}


def _parse_batch(raw: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """The batch's records with the site folded in, or the reason the body is malformed."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return [], "body is not JSON"
    if not isinstance(body, dict) or not isinstance(body.get("site"), str):
        return [], "body must be an object with a string site"
    if not isinstance(body.get("records"), list):
        return [], "records must be a list"
    entries = []
    for i, item in enumerate(body["records"]):
        if not isinstance(item, dict):
            return [], f"records[{i}] is not an object"
        kind, key, record = item.get("type"), item.get("idempotency_key"), item.get("record")
        if not isinstance(kind, str) or not kind:
            return [], f"records[{i}].type must be a non-empty string"
        if not isinstance(key, str) or not key:
            return [], f"records[{i}].idempotency_key must be a non-empty string"
        if not isinstance(record, dict):
            return [], f"records[{i}].record must be an object"
        entries.append({"site": body["site"], "type": kind, "idempotency_key": key, "record": record})
    return entries, None
