"""The health panel's figures, read from the same Prometheus registry /metrics serves."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from gateway.services import Services

RATE_WINDOW_S = 30.0  # the ingest rate is averaged over about this long
MIN_SPAN_S = 1.0  # shorter than this, a rate would be noise


class RateMeter:
    """Messages per second from successive readings of a counter (one reading per health request)."""

    def __init__(self, window_s: float = RATE_WINDOW_S, min_span_s: float = MIN_SPAN_S) -> None:
        self.window_s, self.min_span_s = window_s, min_span_s
        self._readings: deque[tuple[float, float]] = deque()
        self._lock = threading.Lock()

    def observe(self, total: float, now: float | None = None) -> float | None:
        """Record the counter's value; the rate since the oldest kept reading, or None until there is a span."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._readings.append((now, total))
            # Keep one reading at least a window old, so the rate always spans about a window.
            while len(self._readings) > 2 and now - self._readings[1][0] >= self.window_s:
                self._readings.popleft()
            first_time, first_total = self._readings[0]
        span = now - first_time
        return max(0.0, (total - first_total) / span) if span >= self.min_span_s else None


_meter_lock = threading.Lock()


def ingest_meter(state: Any) -> RateMeter:
    with _meter_lock:
        if getattr(state, "dashboard_ingest_meter", None) is None:
            state.dashboard_ingest_meter = RateMeter()
        return state.dashboard_ingest_meter


def _samples(registry: Any) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in registry.collect() for s in family.samples]


def _by_label(samples: list[tuple[str, dict[str, str], float]], name: str, label: str) -> dict[str, float]:
    return {labels.get(label, ""): value for sample_name, labels, value in samples if sample_name == name}


def _single(samples: list[tuple[str, dict[str, str], float]], name: str) -> float:
    return next((value for sample_name, _, value in samples if sample_name == name), 0.0)


def _counts(values: dict[str, float], by_count: bool = False) -> dict[str, int]:
    """Label -> whole count, by label (or largest first)."""
    order = (lambda kv: (-kv[1], kv[0])) if by_count else (lambda kv: kv[0])
    return {label: int(value) for label, value in sorted(values.items(), key=order)}


def health_figures(svc: Services, meter: RateMeter) -> dict[str, Any]:
    svc.metrics.queue_depth.set(len(svc.queue))  # as /metrics does: the gauge is current when read
    samples = _samples(svc.metrics.registry)
    received = _by_label(samples, "gateway_messages_received_total", "transport")
    deadletters = _by_label(samples, "gateway_deadletters_total", "reason")
    rate = meter.observe(sum(received.values()))
    return {
        "queue_depth": int(_single(samples, "gateway_queue_depth")),
        "queue_capacity": svc.queue.capacity,
        "ingest_rate": None if rate is None else round(rate, 1),
        "received_total": int(sum(received.values())),
        "received": _counts(received),
        "stored": _counts(_by_label(samples, "gateway_records_stored_total", "kind")),
        "duplicates": int(_single(samples, "gateway_duplicates_total")),
        "deadletters": _counts(deadletters, by_count=True),
        "deadletters_total": int(sum(deadletters.values())),
        "devices_online": int(_single(samples, "gateway_devices_online")),
        "devices": len(svc.registry),
        "mqtt_connected": svc.mqtt_connected(),
        "store_errors": int(_single(samples, "gateway_store_errors_total")),
        "commands": _counts(_by_label(samples, "gateway_commands_total", "state")),
        "uplink_backlog": _counts(_by_label(samples, "gateway_uplink_backlog", "sink")),
        "uplink_delivered": _counts(_by_label(samples, "gateway_uplink_delivered_total", "sink")),
    }
