"""A paho client tuned for draining a QoS 1 backlog.

Stock paho spends most of a drain on per-message overhead that a gateway
does not need:
- it reads every packet with at least three recv() calls (type, length,
  body): this client keeps a 64 KiB read buffer and parses packets out of it;
- it walks its topic-filter tree for every message even when no per-filter
  callback is registered: this client skips that walk when there are none;
- each PUBACK is queued, signalled and sent on its own: `ack_many` sends the
  PUBACKs of a whole committed batch as one write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import PUBACK

READ_CHUNK = 65536
_PUBACK_HEAD = bytes([PUBACK, 2])  # fixed header and remaining length of a minimal PUBACK


class BufferedClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0
        self._rbuf_sock: object = None
        self._filtered_callbacks = False

    # -- reading ------------------------------------------------------------

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rbuf_sock is not self._sock:  # a new connection: forget the old one's bytes
            self._rbuf, self._rpos, self._rbuf_sock = b"", 0, self._sock
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(READ_CHUNK)
            if not data:
                return data
            self._rbuf, self._rpos = data, 0
        end = self._rpos + bufsize
        chunk = self._rbuf[self._rpos : end]
        self._rpos = end
        return chunk

    def buffered(self) -> bool:
        return self._rbuf_sock is self._sock and self._rpos < len(self._rbuf)

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        # select() cannot see bytes already in our buffer: parse them all now.
        rc = super().loop_read(max_packets)
        while rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS and self.buffered():
            rc = super().loop_read(max_packets)
        return rc

    # -- dispatch -------------------------------------------------------------

    def message_callback_add(self, sub: str, callback: Callable[..., Any]) -> None:
        self._filtered_callbacks = True
        super().message_callback_add(sub, callback)

    def _handle_on_message(self, message: mqtt.MQTTMessage) -> None:
        if self._filtered_callbacks:
            super()._handle_on_message(message)
            return
        on_message = self.on_message
        if on_message is not None:
            with self._in_callback_mutex:
                on_message(self, self._userdata, message)

    # -- acknowledging ----------------------------------------------------------

    def ack_many(self, mids: list[int]) -> None:
        """PUBACK these QoS 1 messages (manual_ack mode) with one queued write."""
        if mids:
            blob = b"".join([_PUBACK_HEAD + mid.to_bytes(2, "big") for mid in mids])
            self._packet_queue(PUBACK, blob, 0, 0)
