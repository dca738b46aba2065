"""Door schedules: the weekly windows in which a scheduled holder may pass.

Pure data, read by `gateway.access.decide`; `schedule_from_row` turns the API's
schedule records (day names, "HH:MM") into a `Schedule`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_DAY_MINUTES = 24 * 60
_WEEKDAYS = {name: i for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))}


@dataclass(frozen=True, slots=True)
class Schedule:
    """Weekly windows in site-local wall-clock minutes; weekday 0 is Monday.

    A window is (start, end) with start inclusive and end exclusive, 0..1440.
    A window whose end is not after its start runs past midnight into the next
    day: (1320, 360) on Friday is Friday 22:00 to Saturday 06:00.
    """

    id: str
    windows: Mapping[int, tuple[tuple[int, int], ...]]
    holidays_closed: bool = True
    _days: tuple[tuple[tuple[int, int], ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        days: list[list[tuple[int, int]]] = [[] for _ in range(7)]
        for weekday, spans in self.windows.items():
            if type(weekday) is not int or not 0 <= weekday <= 6:
                raise ValueError(f"schedule {self.id}: weekday must be 0..6, got {weekday!r}")
            for start, end in spans:
                if type(start) is not int or type(end) is not int:
                    raise ValueError(f"schedule {self.id}: window minutes must be integers")
                if not (0 <= start < _DAY_MINUTES and 0 <= end <= _DAY_MINUTES) or start == end:
                    raise ValueError(f"schedule {self.id}: bad window ({start}, {end})")
                if start < end:
                    days[weekday].append((start, end))
                else:
                    days[weekday].append((start, _DAY_MINUTES))
                    if end:
                        days[(weekday + 1) % 7].append((0, end))
        object.__setattr__(self, "_days", tuple(tuple(sorted(d)) for d in days))

    def open_at(self, weekday: int, minute: int) -> bool:
        return any(start <= minute < end for start, end in self._days[weekday])


def _minute(value: object) -> int:
    if type(value) is int:
        return value
    if isinstance(value, str):
        hours, sep, minutes = value.strip().partition(":")
        if sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2:
            return int(hours) * 60 + int(minutes)
    raise ValueError(f"window time must be minutes or 'HH:MM', got {value!r}")


def _weekday(value: object) -> int:
    if type(value) is int:
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            return int(text)
        if text[:3] in _WEEKDAYS:
            return _WEEKDAYS[text[:3]]
    raise ValueError(f"weekday must be 0..6 or a day name, got {value!r}")


def schedule_from_row(row: Schedule | Mapping[str, Any]) -> Schedule:
    if isinstance(row, Schedule):
        return row
    windows: dict[int, tuple[tuple[int, int], ...]] = {}
    for day, spans in (row.get("windows") or {}).items():
        weekday = _weekday(day)
        windows[weekday] = windows.get(weekday, ()) + tuple((_minute(s), _minute(e)) for s, e in spans)
    return Schedule(str(row["id"]), windows, bool(row.get("holidays_closed", True)))
