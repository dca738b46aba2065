"""What a sink tells the uplink worker about one record: delivered, try again later, or park it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import httpx

# Raised before any byte of the request could reach the other end, so nothing can have been stored.
NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer for one record.

    - "delivered": the platform has it; mark it done.
    - "retry": try again later. `retry_after` is how many seconds the worker
      should wait for this record (None: use its own backoff).
    - "park": the platform refused the data itself; retrying cannot help, so
      keep it aside with `detail` as the reason until a person looks at it.

    `maybe_delivered` is set when the request may have reached the platform but
    its answer was lost (read timeout, connection cut after sending). A sink
    whose platform does not de-duplicate (DingTalk) must then be asked whether
    the record arrived before it is sent again.
    """

    status: Literal["delivered", "retry", "park"]
    detail: str = ""
    retry_after: float | None = None
    maybe_delivered: bool = False

    @classmethod
    def delivered(cls) -> Outcome:
        return cls("delivered")

    @classmethod
    def retry(cls, detail: str, after: float | None = None, *, maybe_delivered: bool = False) -> Outcome:
        return cls("retry", detail, after, maybe_delivered)

    @classmethod
    def park(cls, detail: str) -> Outcome:
        return cls("park", detail)


def no_answer(exc: httpx.HTTPError, could_store: bool, what: str = "record") -> Outcome:
    """The retry for a call that got no answer, flagged `maybe_delivered` when the request may have arrived."""
    reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
    if could_store and not isinstance(exc, NOT_SENT):
        return Outcome.retry(f"answer lost, the {what} may be stored: {reason}", maybe_delivered=True)
    return Outcome.retry(f"unreachable: {reason}")
