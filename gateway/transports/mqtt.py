"""The gateway's client at an external broker (mosquitto in production).

paho's network loop runs on its own thread. Each message goes into the
bounded ingest queue (the put blocks when it is full, so paho stops reading
and the broker holds the rest); its PUBACK is sent only when the store writer
reports the batch holding it committed. The session is persistent (MQTT v5,
clean start off, long expiry), so what the broker queued while the gateway
was away is delivered when it returns. A watchdog restarts the network loop
if its thread dies.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.config import MqttSettings
from gateway.core.metrics import Metrics
from gateway.pipeline.queue import Inbound, IngestQueue
from gateway.transports.paho_buffered import BufferedClient

log = logging.getLogger(__name__)

DEVICE_TOPICS = [
    "devices/+/events",
    "devices/+/attlog",
    "devices/+/status",
    "devices/+/commands/result",
    "owntracks/+/+",
]


class MqttTransport:
    def __init__(self, settings: MqttSettings, queue: IngestQueue, metrics: Metrics) -> None:
        self.settings = settings
        self.queue = queue
        self.metrics = metrics
        self.connected = threading.Event()
        self._generation = 0  # acks from an older connection are not sent on a newer one
        self._accepting = True
        self._stopping = False
        self._connections = 0
        self._watchdog: asyncio.Task[None] | None = None
        # Broker housekeeping topics (dynamic-security answers): handled here, never stored.
        self.control: dict[str, Callable[[bytes], None]] = {}
        self.on_connected: list[Callable[[], None]] = []
        self.client = self._make_client()

    def _make_client(self) -> BufferedClient:
        s = self.settings
        client = BufferedClient(
            CallbackAPIVersion.VERSION2, client_id=s.client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        if s.username:
            client.username_pw_set(s.username, s.password.get_secret_value() or None)
        _, _, tls = s.endpoint()
        if tls:
            client.tls_set(ca_certs=s.tls_ca or None, cert_reqs=ssl.CERT_REQUIRED)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        host, port, _ = self.settings.endpoint()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry
        props.ReceiveMaximum = self.settings.receive_maximum
        self.client.connect_async(host, port, keepalive=self.settings.keepalive, clean_start=False, properties=props)
        self.client.loop_start()
        self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    def pause(self) -> None:
        """Stop taking messages in (shutdown): what is not queued is redelivered later."""
        self._accepting = False

    async def stop(self) -> None:
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        # Let the network thread write the last PUBACKs before the DISCONNECT.
        await asyncio.sleep(0.1)
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    async def _watch(self) -> None:
        while not self._stopping:
            await asyncio.sleep(1.0)
            thread = getattr(self.client, "_thread", None)
            if not self._stopping and (thread is None or not thread.is_alive()):
                log.error("MQTT network loop died; reconnecting and restarting it")
                self.metrics.mqtt_loop_restarts.inc()
                await asyncio.to_thread(self._restore_loop)

    def _restore_loop(self) -> None:
        # The dead loop may have left a half-read packet: start from a fresh
        # connection. The persistent session redelivers whatever was not acked.
        self.client._thread = None
        try:
            self.client.reconnect()
        except OSError as exc:
            log.warning("reconnect failed (%s); the network loop keeps trying", exc)
        self.client.loop_start()

    # -- paho callbacks (network thread) --------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused the connection: %s", reason)
            return
        self._generation += 1
        self._connections += 1
        if self._connections > 1:
            self.metrics.mqtt_reconnects.inc()
        self.metrics.mqtt_connected.set(1)
        self.connected.set()
        log.info("connected to the broker (session present: %s)", flags.session_present)
        client.subscribe([(topic, 1) for topic in [*DEVICE_TOPICS, *self.control]])
        for callback in self.on_connected:
            threading.Thread(target=callback, name="mqtt-on-connected", daemon=True).start()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        self.metrics.mqtt_connected.set(0)
        if not self._stopping:
            log.warning("lost the broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Never raise here: an exception would end paho's network loop.
        try:
            # paho types the payload for outgoing messages too; a received one is always bytes (struct.unpack).
            payload = cast(bytes, msg.payload)
            handler = self.control.get(msg.topic)
            if handler is not None:
                handler(payload)
                if msg.qos:
                    client.ack(msg.mid, msg.qos)
                return
            if not self._accepting:
                return
            token = (self._generation, msg.mid) if msg.qos else None
            item = Inbound("mqtt", msg.topic, payload, None, self if token else None, token)
            self.queue.put(item)
        except Exception:
            log.exception("could not queue a message from %s", getattr(msg, "topic", "?"))

    # -- acknowledgement (store-writer thread) ---------------------------------

    def ack(self, tokens: list[Any]) -> None:
        generation = self._generation
        self.client.ack_many([mid for gen, mid in tokens if gen == generation])

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    async def publish_confirmed(self, topic: str, payload: bytes, qos: int = 1, timeout: float = 10.0) -> None:
        """Publish and wait until the broker has it (PUBACK for QoS 1)."""
        info = self.client.publish(topic, payload, qos=qos)
        await asyncio.to_thread(info.wait_for_publish, timeout)
