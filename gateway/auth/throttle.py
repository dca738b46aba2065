"""Sign-in throttling per client address, with backoff.

Wrong tokens (on the API or the dashboard's sign-in) count against the address
they came from. After `max_failures` within `window_s`, the address is refused
(429 with Retry-After) for a while that doubles with each further block, up to
`max_block_s`. Other addresses are unaffected. The table is bounded: beyond
`capacity` addresses the least recently seen is forgotten.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_FAILURES = 10
WINDOW_S = 60.0
BASE_BLOCK_S = 2.0
MAX_BLOCK_S = 300.0
CAPACITY = 10_000


@dataclass
class _Entry:
    failures: int = 0
    first_failure: float = 0.0
    blocked_until: float = 0.0
    strikes: int = 0  # blocks so far: each doubles the next
    last_seen: float = 0.0


class Throttle:
    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        base_block_s: float = BASE_BLOCK_S,
        max_block_s: float = MAX_BLOCK_S,
        capacity: int = CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures, self.window_s = max_failures, window_s
        self.base_block_s, self.max_block_s = base_block_s, max_block_s
        self.capacity, self.clock = capacity, clock
        self._table: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._table)

    def retry_after(self, address: str) -> int:
        """Whole seconds the address must wait before its next try; 0 = it may try now."""
        now = self.clock()
        with self._lock:
            entry = self._table.get(address)
            if entry is None or entry.blocked_until <= now:
                return 0
            return max(1, math.ceil(entry.blocked_until - now))

    def failed(self, address: str) -> None:
        now = self.clock()
        with self._lock:
            entry = self._table.pop(address, None)
            if entry is None or now - entry.last_seen > self.max_block_s + self.window_s:
                entry = _Entry()  # quiet long enough: a fresh start, backoff forgotten
            if entry.failures == 0 or now - entry.first_failure > self.window_s:
                entry.failures, entry.first_failure = 0, now
            entry.failures += 1
            entry.last_seen = now
            if entry.failures >= self.max_failures:
                entry.blocked_until = now + min(self.max_block_s, self.base_block_s * 2**entry.strikes)
                entry.strikes += 1
                entry.failures = 0
            self._table[address] = entry
            while len(self._table) > self.capacity:
                self._table.popitem(last=False)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._table.pop(address, None)


_made = threading.Lock()


def throttle_of(state: Any) -> Throttle:
    """The app's one throttle (API and dashboard share it), made on first use."""
    with _made:
        if getattr(state, "login_throttle", None) is None:
            state.login_throttle = Throttle()
        return state.login_throttle
