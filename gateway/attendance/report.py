"""Daily attendance as a table, CSV or an Excel workbook (one sheet per month)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path
from typing import Any

COLUMNS = (
    ("date", "Date"),
    ("person_id", "Person"),
    ("name", "Name"),
    ("department", "Department"),
    ("shift_id", "Shift"),
    ("status", "Status"),
    ("first_in_local", "First in"),
    ("last_out_local", "Last out"),
    ("worked_minutes", "Worked (min)"),
    ("late_minutes", "Late (min)"),
    ("early_exit_minutes", "Early exit (min)"),
    ("state", "State"),
)


def _cell(record: dict[str, Any], key: str) -> Any:
    value = record.get(key)
    if key.endswith("_local") and value:
        return value[11:16]  # HH:MM of the local time
    return "" if value is None else value


# OWASP's CSV injection rule: a text cell starting with one of these is read as a formula by
# spreadsheets, so it is written with a leading quote. Numbers (negative ones too) stay numbers.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _safe_cell(record: dict[str, Any], key: str) -> Any:
    return safe(_cell(record, key))


def to_csv(records: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([title for _, title in COLUMNS])
    for record in records:
        writer.writerow([_safe_cell(record, key) for key, _ in COLUMNS])
    return out.getvalue()


def to_table(records: list[dict[str, Any]]) -> str:
    rows = [[title for _, title in COLUMNS]] + [[str(_cell(r, key)) for key, _ in COLUMNS] for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def write_xlsx(records: list[dict[str, Any]], path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    by_month: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_month[record["date"][:7]].append(record)
    workbook = Workbook()
    workbook.remove(workbook.active)
    for month in sorted(by_month) or ["empty"]:
        sheet = workbook.create_sheet(month)
        sheet.append([title for _, title in COLUMNS])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for record in by_month.get(month, []):
            sheet.append([_safe_cell(record, key) for key, _ in COLUMNS])
            for cell in sheet[sheet.max_row]:
                if isinstance(cell.value, str):
                    cell.data_type = "s"  # text, never a formula
        for index, (key, title) in enumerate(COLUMNS, start=1):
            longest = max([len(title)] + [len(str(_cell(r, key))) for r in by_month.get(month, [])])
            sheet.column_dimensions[get_column_letter(index)].width = min(longest + 2, 40)
        sheet.freeze_panes = "A2"
    workbook.save(path)
