"""Punch clean-up and in/out pairing for one person.

Pure helpers used by :mod:`gateway.attendance.rules`. They work on punches of one
person that are already sorted by ``(time, id)``; anything with ``time``, ``direction``
and ``id`` attributes will do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .rules import Punch

__all__ = ["dedupe", "evaluate"]


def dedupe(punches: Sequence[Punch]) -> list[Punch]:
    """Drop repeats: same second and same direction as an earlier punch is one punch.

    Terminals re-send whole packs and a reader may emit a punch twice, so a duplicate is
    not always adjacent to its original once sorted (an opposite-direction punch can sit
    between them within the same second): remember every direction seen in the current
    second. The earliest punch of each (second, direction) is kept.
    """
    kept: list[Punch] = []
    second = None
    seen: set[str] = set()
    for p in punches:
        s = p.time // 1000
        if s != second:
            second = s
            seen = {p.direction}
            kept.append(p)
        elif p.direction not in seen:
            seen.add(p.direction)
            kept.append(p)
    return kept


def evaluate(punches: Sequence[Punch], pairing: str, hours_mode: str) -> tuple[int | None, int | None, int | None]:
    """Return ``(first_in, last_out, worked_ms)`` for one day's de-duplicated punches.

    ``worked_ms`` is None when the day has no usable in/out span (missing punch);
    first_in / last_out are still reported when known, for display.
    """
    if pairing == "alternate":
        return _alternate(punches, hours_mode)
    return _by_direction(punches, hours_mode)


def _alternate(ps: Sequence[Punch], hours_mode: str) -> tuple[int | None, int | None, int | None]:
    # Directions are ignored: punch 0 is an in, 1 an out, 2 an in, ...
    n = len(ps)
    if n == 0:
        return None, None, None
    first_in = ps[0].time
    if n == 1:
        return first_in, None, None
    if hours_mode == "first_last":
        # First punch to last punch whatever lies between: a stray double punch at the
        # door does not turn the day around (the usual "first and last punch" rule).
        last_out = ps[-1].time
        return first_in, last_out, last_out - first_in
    # "pairs": (0,1), (2,3), ...; an odd trailing punch has no partner and is not counted.
    even = n - (n & 1)
    worked = 0
    for k in range(0, even, 2):
        worked += ps[k + 1].time - ps[k].time
    return first_in, ps[even - 1].time, worked


def _by_direction(ps: Sequence[Punch], hours_mode: str) -> tuple[int | None, int | None, int | None]:
    # Trust the terminal's in/out key; "unknown" (or anything else) takes no part.
    first_in = last_out = open_in = None
    paired = 0
    for p in ps:
        d = p.direction
        if d == "in":
            if first_in is None:
                first_in = p.time
            # A second "in" before any "out" replaces the first: the pair is the in
            # immediately followed by an out, so a forgotten "out" is not paid for.
            open_in = p.time
        elif d == "out":
            last_out = p.time
            if open_in is not None:
                paired += p.time - open_in
                open_in = None
    if first_in is None or last_out is None or last_out < first_in:
        return first_in, last_out, None
    if hours_mode == "first_last":
        return first_in, last_out, last_out - first_in
    return first_in, last_out, paired
