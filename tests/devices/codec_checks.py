"""A check every codec's property tests share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.devices.errors import DecodeError


def only_decode_errors(decode: Callable[[bytes], Any], payload: bytes) -> None:
    """Decoding may raise DecodeError and nothing else; rejects are DecodeErrors carrying bytes."""
    try:
        out = decode(payload)
    except DecodeError:
        return
    for reject in out.rejects:
        assert isinstance(reject, DecodeError)
        assert isinstance(reject.raw, bytes)
        assert not reject.detail.startswith("unexpected"), reject.detail  # the safety net is for bugs only
