"""Prometheus figures, in a registry of our own so several gateways can live in one test process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.received = Counter(
            "gateway_messages_received", "Input messages received, by transport", ["transport"], registry=r
        )
        self.stored = Counter("gateway_records_stored", "Records committed, by kind", ["kind"], registry=r)
        self.duplicates = Counter("gateway_duplicates", "Records already stored (resends)", registry=r)
        self.deadletters = Counter("gateway_deadletters", "Inputs dead-lettered, by reason", ["reason"], registry=r)
        self.deadletters_deleted = Counter(
            "gateway_deadletters_deleted",
            "Dead letters deleted: past retention or over the size cap",
            ["why"],
            registry=r,
        )
        self.commit_seconds = Histogram(
            "gateway_batch_commit_seconds",
            "Time to write and commit one batch",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.batch_size = Histogram(
            "gateway_batch_size",
            "Inputs per committed batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
            registry=r,
        )
        self.queue_depth = Gauge("gateway_queue_depth", "Inputs waiting for the store writer", registry=r)
        self.store_errors = Counter("gateway_store_errors", "Batches whose commit failed and was retried", registry=r)
        self.mqtt_connected = Gauge(
            "gateway_mqtt_connected", "1 while the gateway's MQTT client is connected", registry=r
        )
        self.mqtt_reconnects = Counter(
            "gateway_mqtt_reconnects", "Connections to the broker after the first", registry=r
        )
        self.mqtt_loop_restarts = Counter(
            "gateway_mqtt_loop_restarts", "Times the watchdog restarted a dead MQTT network loop", registry=r
        )
        self.device_transitions = Counter(
            "gateway_device_transitions", "Devices going online or offline", ["state"], registry=r
        )
        self.devices_online = Gauge("gateway_devices_online", "Devices online now", registry=r)
        self.commands = Counter("gateway_commands", "Commands to devices, by final state", ["state"], registry=r)
        self.uplink_delivered = Counter("gateway_uplink_delivered", "Records the sink accepted", ["sink"], registry=r)
        self.uplink_backlog = Gauge("gateway_uplink_backlog", "Records waiting for the sink", ["sink"], registry=r)
        self.uplink_parked = Gauge(
            "gateway_uplink_parked", "Records the platform refused, kept for a retry by hand", ["sink"], registry=r
        )
        self.uplink_failed = Counter(
            "gateway_uplink_failed", "Failed delivery attempts (retried)", ["sink"], registry=r
        )
        self.jt808_frames = Counter(
            "gateway_jt808_frames", "JT/T 808 frames received, by what was wrong with them", ["problem"], registry=r
        )
        self.jt808_refused = Counter(
            "gateway_jt808_refused", "JT/T 808 connections closed unread, by reason", ["reason"], registry=r
        )
        self.uplink_dropped = Counter(
            "gateway_uplink_dropped", "Records dropped unsent because the backlog was full", ["sink"], registry=r
        )
        for kind in ("punch", "access", "fix", "status"):
            self.stored.labels(kind)
        for why in ("retention", "cap"):
            self.deadletters_deleted.labels(why)
