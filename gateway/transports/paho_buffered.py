"""A paho client that reads the socket in large chunks.

Stock paho reads every packet with at least three recv() calls (type byte,
length bytes, body). Draining a QoS 1 backlog that is most of its CPU time.
This subclass keeps a 64 KiB read buffer and parses packets out of it, so a
burst of small messages costs one system call instead of hundreds.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt

READ_CHUNK = 65536


class BufferedClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0
        self._rbuf_sock: object = None

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
