from __future__ import annotations


class DecodeError(ValueError):
    """Input a codec cannot turn into events. The only error a codec raises.

    `reason` is a short stable code (it becomes the dead letter's reason and a
    metrics label); `detail` says what exactly was wrong; `raw` is the input.
    """

    def __init__(self, reason: str, detail: str, raw: bytes = b"") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.raw = raw
