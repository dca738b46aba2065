"""Journal segments: every accepted input of one batch, packed into one row.

One row per batch instead of one per message keeps the journal nearly free on
the hot path. A record's `raw_ref` is "<segment id>/<index>".
Layout: per message, topic length (u16), topic, payload length (u32), payload.
"""

from __future__ import annotations

import struct

_TOPIC_LEN = struct.Struct(">H")
_PAYLOAD_LEN = struct.Struct(">I")


def pack(messages: list[tuple[str, bytes]]) -> bytes:
    parts: list[bytes] = []
    for topic, payload in messages:
        encoded = topic.encode()
        parts += (_TOPIC_LEN.pack(len(encoded)), encoded, _PAYLOAD_LEN.pack(len(payload)), payload)
    return b"".join(parts)
