"""The bounded hand-off between transports (any thread) and the store writer.

Producers block (or are told "full") when it is at capacity: backpressure
reaches the device or the broker instead of memory growing without bound.
The writer takes whole batches; producers wake it only when the queue turns
non-empty or a batch fills, not on every message.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any, Protocol

from gateway.devices.base import Decoded


class Acker(Protocol):
    def ack(self, tokens: list[Any]) -> None:
        """Tell the sender these inputs are durable. Called after the commit."""


class Inbound:
    """One input as a transport received it."""

    __slots__ = (
        "transport",
        "topic",
        "payload",
        "device_id",
        "acker",
        "token",
        "reject",
        "sender",
        "decoded",
        "accepted",
    )

    def __init__(
        self,
        transport: str,
        topic: str,
        payload: bytes,
        device_id: str | None = None,
        acker: Acker | None = None,
        token: Any = None,
        reject: str | None = None,
        sender: str | None = None,
        decoded: Decoded | None = None,
    ) -> None:
        self.transport = transport
        self.topic = topic
        self.payload = payload
        self.device_id = device_id
        self.acker = acker
        self.token = token
        self.reject = reject  # the transport already refused it: dead-letter with this reason
        self.sender = sender  # who sent it, where the transport knows (login, peer address)
        # What a session already decoded from `payload` (so a frame is parsed once); None: the writer decodes.
        self.decoded = decoded
        self.accepted = 0  # set by the store writer: records decoded from it (ADMS answers OK:<n>)


# Inputs from outside, which the uplink's "refuse" overflow policy holds back at the edge. The door
# readers' own decided records are not among them: a door must keep working.
EDGE_TRANSPORTS = frozenset({"mqtt", "http", "tcp", "serial"})


class IngestQueue:
    def __init__(self, capacity: int, batch_size: int) -> None:
        self.capacity = capacity
        self.batch_size = batch_size
        self.refusing = False  # set while the uplink backlog is over its limit
        self.gate: asyncio.Lock | None = None  # event-loop senders queue behind each other in order (submit)
        self._items: deque[Inbound] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Inbound, timeout: float | None = None) -> bool:
        """Enqueue, waiting while full. False if it timed out or the queue closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while (
                len(self._items) >= self.capacity or (self.refusing and item.transport in EDGE_TRANSPORTS)
            ) and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._not_full.wait(remaining if remaining is not None else 0.5)
            if self._closed:
                return False
            self._items.append(item)
            size = len(self._items)
            if size == 1 or size == self.batch_size:
                self._not_empty.notify()
            return True

    def put_nowait(self, item: Inbound) -> bool:
        return self.put(item, timeout=0)

    def take(self, max_wait: float, idle: float = 0.2) -> list[Inbound]:
        """Up to batch_size items: waits up to `idle` for the first, then up to
        `max_wait` for the batch to fill. Empty list on idle timeout or close."""
        with self._lock:
            if not self._items and not self._closed:
                self._not_empty.wait(idle)
            if not self._items:
                return []
            if len(self._items) < self.batch_size and not self._closed:
                self._not_empty.wait(max_wait)
            count = min(self.batch_size, len(self._items))
            batch = [self._items.popleft() for _ in range(count)]
            self._not_full.notify_all()
            return batch

    def wake(self) -> None:
        """Wake the writer waiting for input (it has other work: a job between batches)."""
        with self._lock:
            self._not_empty.notify()

    def close(self) -> None:
        """Refuse new items; wake everyone. Items already queued can still be taken."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


SUBMIT_POLL_S = 0.02


class LoopAcker:
    """For transports on the event loop: each input's token is a future, resolved
    True once the batch holding it is committed (the transport then answers its
    sender), or False if the gateway stops first."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def future(self) -> asyncio.Future[bool]:
        return self.loop.create_future()

    def ack(self, tokens: list[Any]) -> None:
        self.loop.call_soon_threadsafe(_resolve, tokens)


def _resolve(futures: list[asyncio.Future[bool]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(True)


async def submit(queue: IngestQueue, item: Inbound, timeout: float | None = None) -> bool:
    """Queue from the event loop without blocking it. While the queue is full (or refusing edge input)
    this waits on the loop, not in a worker thread: held-back senders must not use up the threads the
    housekeeping and the uplink need to drain the backlog. False if it closed or `timeout` passed."""
    if queue.gate is None:
        queue.gate = asyncio.Lock()
    try:
        # The lock is first come, first served: inputs held back leave in the order they came.
        async with asyncio.timeout(timeout), queue.gate:
            while not queue.put_nowait(item):
                if queue.closed:
                    return False
                await asyncio.sleep(SUBMIT_POLL_S)
    except TimeoutError:
        return False
    return True
