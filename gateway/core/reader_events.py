"""What a door reader tells the gateway, in terms of no particular wire or library.

A reader line (OSDP today) turns its protocol's events into these, and the
door logic (gateway.access) decides on them: it never sees a library's types,
so a line of another kind can feed it the same way. Each is delivered with
the reader's address on its line, `on_event(address, event)`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CardRead:
    """A card presented: its bits as read, most significant first, padded at the end of `data`."""

    data: bytes
    bits: int
    format: str = "wiegand"  # "wiegand", "ascii" (the card number as text) or "unspecified"
    reader_no: int = 0  # a sub-reader behind the same address


@dataclass(frozen=True, slots=True)
class KeyPress:
    """Keys pressed on the reader's keypad, as sent ("1234#")."""

    keys: str
    reader_no: int = 0


@dataclass(frozen=True, slots=True)
class ReaderLink:
    """A reader's link changed: reachable, trusted (a secure channel on the line's key), being installed."""

    online: bool
    secure: bool
    installing: bool = False
    reason: str | None = None  # why it is not secure, None when it is


ReaderEvent = CardRead | KeyPress
