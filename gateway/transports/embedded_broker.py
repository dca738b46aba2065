"""The zero-setup broker inside the gateway process (amqtt).

Logins are checked against the device registry: a device logs in with its
id and the password it was given at provisioning, may publish only under
`devices/<its id>/` and subscribe only to its own `commands` topic. The
gateway's own login ([mqtt] username/password), if set, may do anything.

amqtt does not deliver a persistent session's queued QoS 1 messages after a
reconnect, so the gateway does not subscribe to it like a client. Instead the
broker's PUBLISH handling hands device messages straight to the ingest queue
and sends the device's PUBACK only after the store writer committed them.
A gateway killed in the middle leaves the unacknowledged messages with the
device, which resends them when it reconnects. A device's will (sent when it
drops off without DISCONNECT) is ingested the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import amqtt.broker as amqtt_broker
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler

from gateway.core.metrics import Metrics
from gateway.pipeline.queue import Inbound, IngestQueue, LoopAcker, submit

log = logging.getLogger(__name__)


# (username, password) -> "gateway" | "device" | None (refused)
CheckLogin = Callable[[str | None, str | None], Awaitable[str | None]]


def _is_device_input(topic: str | None) -> bool:
    if not topic:
        return False
    return (topic.startswith("devices/") and not topic.endswith("/commands")) or topic.startswith("owntracks/")


def permitted(role: str | None, username: str | None, topic: str, action: str) -> bool:
    """The topic rules: a device speaks only as itself; the gateway's own login anywhere."""
    if role == "gateway":
        return True
    if role != "device" or not username:
        return False
    own = f"devices/{username}/"
    if action == Action.PUBLISH:
        # OwnTracks names its own topic; the store writer checks it is the login's device.
        return (topic.startswith(own) and topic != own + "commands") or topic.startswith("owntracks/")
    return topic == own + "commands"  # subscribe and receive


class _IngestingHandler(BrokerProtocolHandler):
    async def handle_publish(self, publish_packet: Any) -> None:
        broker = self.plugins_manager.context._broker_instance
        ingest = getattr(broker, "gateway_ingest", None)
        topic, data = publish_packet.topic_name, publish_packet.data
        if ingest is not None and _is_device_input(topic) and data is not None:
            session = self.session
            role, username = getattr(session, "gateway_role", None), getattr(session, "username", None)
            if not permitted(role, username, topic, Action.PUBLISH):
                await ingest(topic, bytes(data), 0, "not_authorized", username)
            elif not await ingest(topic, bytes(data), publish_packet.qos, None, username):
                return  # not committed (shutting down): no PUBACK, the device resends
        await super().handle_publish(publish_packet)


class _GatewayBroker(Broker):
    gateway_ingest: Any = None
    gateway_check_login: CheckLogin | None = None

    async def _authenticate(self, session: Any, listener: Any) -> bool:
        check = self.gateway_check_login
        role = await check(session.username, session.password) if check is not None else None
        session.gateway_role = role
        return role is not None

    async def _topic_filtering(self, session: Any, topic: str, action: Action) -> bool:
        return permitted(getattr(session, "gateway_role", None), getattr(session, "username", None), topic, action)

    async def kick(self, username: str) -> int:
        """Drop every live connection logged in as `username`; returns how many."""
        dropped = 0
        for session, handler in list(self._sessions.values()):
            if session.username == username and handler is not None:
                await self._stop_handler(handler)
                dropped += 1
        return dropped

    async def _handle_disconnect(self, client_session: Any, handler: Any, disconnect_waiter: Any) -> None:
        try:
            abnormal = not isinstance(disconnect_waiter.result(), DisconnectPacket)
        except Exception:
            abnormal = True
        topic = client_session.will_topic
        if abnormal and client_session.will_flag and _is_device_input(topic) and self.gateway_ingest:
            await self.gateway_ingest(topic, bytes(client_session.will_message or b""), 0)
        await super()._handle_disconnect(client_session, handler, disconnect_waiter)


# amqtt builds its connection handlers by this module-level name.
amqtt_broker.BrokerProtocolHandler = _IngestingHandler


class EmbeddedBroker:
    def __init__(self, listen: str, queue: IngestQueue, metrics: Metrics, check_login: CheckLogin) -> None:
        self.listen = listen
        self.queue = queue
        self.metrics = metrics
        self.check_login = check_login
        self._loop: asyncio.AbstractEventLoop | None = None
        self._acker: LoopAcker | None = None
        self._broker: _GatewayBroker | None = None
        self._accepting = True

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._acker = LoopAcker(self._loop)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": self.listen}},
            "plugins": {},
        }
        self._broker = _GatewayBroker(config)
        self._broker.gateway_ingest = self.ingest
        self._broker.gateway_check_login = self.check_login
        await self._broker.start()
        log.info("embedded MQTT broker listening on %s", self.listen)

    def pause(self) -> None:
        self._accepting = False

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()

    async def ingest(
        self, topic: str, payload: bytes, qos: int, reject: str | None = None, sender: str | None = None
    ) -> bool:
        """Queue a device message; for QoS 1, return once it is committed."""
        if not self._accepting:
            return False
        assert self._acker is not None
        future = self._acker.future() if qos else None
        item = Inbound("mqtt", topic, payload, None, self._acker if future else None, future, reject, sender)
        if not await submit(self.queue, item):
            return False
        return await future if future is not None else True

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Send to the devices subscribed to `topic` (commands down)."""
        assert self._broker is not None
        await self._broker.internal_message_broadcast(topic, payload, qos)

    def kick_blocking(self, username: str, timeout: float = 5.0) -> None:
        """From a worker thread: drop `username`'s live connections."""
        assert self._loop is not None and self._broker is not None
        asyncio.run_coroutine_threadsafe(self._broker.kick(username), self._loop).result(timeout)
