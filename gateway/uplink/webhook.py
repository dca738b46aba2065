"""The customer webhook: a signed batch of records in one POST; the receiver de-duplicates by idempotency key.

Contract (see `firmware_stubs.platform`): body `{"site", "records": [{"type",
"idempotency_key", "record"}]}`; headers `X-Gateway-Timestamp` (epoch ms),
`X-Gateway-Signature: sha256=<hex HMAC-SHA256(secret, f"{ts}." + body)>` and
`Idempotency-Key` (here a digest of the records' keys, so the same batch
resent carries the same key). A refused batch is stored by nobody, so the
whole batch or any part of it may be sent again.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
import orjson

from gateway.core.timeutil import now_ms
from gateway.uplink.result import Outcome, no_answer

REASON_LIMIT = 500  # parked reasons end up in the dashboard; a whole error page would not help there
MAX_RETRY_AFTER = 3600.0
# 4xx answers that say nothing about the data: wrong secret or clock (401), access (403), wrong URL (404),
# or "later" (408, 425, 429). Parking records for them would need a person to un-park every one.
NOT_THE_DATA = frozenset({401, 403, 404, 408, 425, 429})


def batch_key(records: list[dict[str, Any]]) -> str:
    """The batch's Idempotency-Key: a digest of its records' keys, in order."""
    digest = hashlib.sha256()
    for entry in records:
        digest.update(entry["idempotency_key"].encode())
        digest.update(b"\n")  # keeps ["ab", "c"] apart from ["a", "bc"]
    return digest.hexdigest()


def signature(secret: str, timestamp_ms: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp_ms}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class WebhookSink:
    """Async client for the webhook receiver; connections kept alive. Stats are read-only."""

    name = "webhook"
    calls = property(lambda self: self._calls, doc="batches posted")
    last_error = property(lambda self: self._last_error, doc="detail of the latest failure, '' if none yet")

    def __init__(self, url: str, secret: str, site: str, timeout_s: float = 10.0) -> None:
        self.url, self.site = url, site
        self._secret = secret
        self._http = httpx.AsyncClient(timeout=timeout_s)
        self._calls = 0
        self._last_error = ""

    async def send_batch(self, records: list[dict[str, Any]]) -> list[Outcome]:
        """POST `records` ({"type", "idempotency_key", "record"} each) as one batch; one outcome per record.

        - 2xx: all delivered (new or already there: the receiver de-duplicates).
        - 422 naming `rejected` keys: those are parked; the rest are answered
          retry(after=0), because the receiver stored nothing of the batch and
          the rest will go through in a batch without the refused records.
        - Other 4xx: all parked with the (truncated) answer as the reason,
          except 401/403/404/408/425/429, which are retried: they are about the
          secret, the clock, the URL or load, not the data.
        - 5xx, connection errors, timeouts: all retried. After a timeout or a
          lost answer the batch may have been stored (`maybe_delivered=True`);
          resending it is harmless since the receiver de-duplicates by key.
        """
        if not records:
            return []
        entries = [{"type": r["type"], "idempotency_key": r["idempotency_key"], "record": r["record"]} for r in records]
        body = orjson.dumps({"site": self.site, "records": entries})
        timestamp = now_ms()
        headers = {
            "Content-Type": "application/json",
            "X-Gateway-Timestamp": str(timestamp),
            "X-Gateway-Signature": signature(self._secret, timestamp, body),
            "Idempotency-Key": batch_key(records),
        }
        self._calls += 1
        try:
            response = await self._http.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return self._all(records, no_answer(exc, could_store=True, what="batch"))
        return self._outcomes(records, response)

    async def close(self) -> None:
        await self._http.aclose()

    def _outcomes(self, records: list[dict[str, Any]], response: httpx.Response) -> list[Outcome]:
        status = response.status_code
        if 200 <= status < 300:
            return [Outcome.delivered() for _ in records]
        reason = f"HTTP {status}: {response.text[:REASON_LIMIT]}"
        if status == 422:
            rejected = _rejected_keys(response)
            # Only when it names records of this batch: otherwise resending at once would loop for ever.
            if any(entry["idempotency_key"] in rejected for entry in records):
                resend = Outcome.retry(f"its batch held refused records; send again without them ({reason})", 0.0)
                park = Outcome.park(reason)
                self._last_error = reason
                return [park if entry["idempotency_key"] in rejected else resend for entry in records]
        if 400 <= status < 500 and status not in NOT_THE_DATA:
            return self._all(records, Outcome.park(reason))
        return self._all(records, Outcome.retry(reason, _retry_after(response)))

    def _all(self, records: list[dict[str, Any]], outcome: Outcome) -> list[Outcome]:
        self._last_error = outcome.detail
        return [outcome for _ in records]


def _rejected_keys(response: httpx.Response) -> frozenset[str]:
    try:
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return frozenset()
    keys = answer.get("rejected") if isinstance(answer, dict) else None
    return frozenset(k for k in keys if isinstance(k, str)) if isinstance(keys, list) else frozenset()


def _retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds, if the receiver sent one (the HTTP-date form is left to backoff)."""
    try:
        return min(max(0.0, float(response.headers.get("retry-after", ""))), MAX_RETRY_AFTER)
    except ValueError:
        return None
