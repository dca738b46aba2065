"""Publishing from a separate client, as devices do."""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import wait_for


def publisher(
    port: int, client_id: str = "test-publisher", clean: bool = True, credentials: dict | None = None
) -> mqtt.Client:
    """A connected client; `credentials` as the device registration answered them."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
    if credentials:
        client.username_pw_set(credentials["mqtt_username"], credentials["mqtt_password"])
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def publish_all(client: mqtt.Client, messages: list[tuple[str, bytes]], timeout: float = 30) -> None:
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    wait_for(lambda: all(info.is_published() for info in infos), timeout, what="every PUBACK")


def close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()
