"""Attendance as the dashboard shows it: today's totals by department, and one person's month as a calendar."""

from __future__ import annotations

import calendar
import re
from collections import Counter
from datetime import date
from typing import Any

from gateway.attendance.rules import STATUSES

# Columns of the department table, in the order a manager reads them.
STATUS_COLUMNS = ("present", "late", "early_exit", "half_day", "absent", "missing_punch", "leave", "holiday")
NEEDS_ATTENTION = ("late", "absent", "missing_punch", "early_exit", "half_day")
if set(STATUS_COLUMNS) != set(STATUSES):
    raise RuntimeError("a new attendance status needs a column in the dashboard's table")


def today_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    totals: Counter[str] = Counter(r["status"] for r in rows)
    by_department: dict[str, Counter[str]] = {}
    for r in rows:
        by_department.setdefault(r["department"] or "(no department)", Counter())[r["status"]] += 1
    attention = sorted(
        (r for r in rows if r["status"] in NEEDS_ATTENTION),
        key=lambda r: (NEEDS_ATTENTION.index(r["status"]), r["department"] or "", r["name"] or ""),
    )
    return {
        "totals": totals,
        "scheduled": len(rows),
        "columns": STATUS_COLUMNS,
        "departments": sorted(by_department.items()),
        "attention": attention,
        "provisional": any(not r["final"] for r in rows),
    }


def parse_month(text: str | None, today: date) -> tuple[int, int] | None:
    """'YYYY-MM' (or nothing: this month) as (year, month); None when it is not a month."""
    if not text:
        return today.year, today.month
    match = re.fullmatch(r"(\d{4})-(\d{2})", text)
    if not match:
        return None
    year, month = int(match[1]), int(match[2])
    return (year, month) if 2000 <= year <= 2199 and 1 <= month <= 12 else None


def month_neighbours(year: int, month: int) -> tuple[str, str]:
    before = (year - 1, 12) if month == 1 else (year, month - 1)
    after = (year + 1, 1) if month == 12 else (year, month + 1)
    return f"{before[0]:04d}-{before[1]:02d}", f"{after[0]:04d}-{after[1]:02d}"


def month_bounds(year: int, month: int) -> tuple[date, date]:
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def month_grid(year: int, month: int, rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Weeks (Monday first) of day cells; a cell outside the month is marked so and has no record."""
    by_day = {r["date"]: r for r in rows}
    weeks = []
    for week in calendar.Calendar(firstweekday=0).monthdatescalendar(year, month):
        weeks.append(
            [
                {
                    "day": d.day,
                    "date": d.isoformat(),
                    "in_month": d.month == month,
                    "record": by_day.get(d.isoformat()) if d.month == month else None,
                }
                for d in week
            ]
        )
    return weeks


def clock(local_iso: str | None) -> str:
    """'2026-11-27T08:59:03+08:00' -> '08:59' (a record's local first-in / last-out)."""
    return local_iso[11:16] if local_iso else ""
