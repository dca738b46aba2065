"""People: the checks on a person's fields and the CSV import, as pure functions (no I/O).

The REST router and the CSV import share these checks, so a person is held to
the same rules whichever way it arrives.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ID_PATTERN = r"^[A-Za-z0-9._@-]{1,64}$"
DEVICE_KEY_PATTERN = r"^(\*|[A-Za-z0-9._-]{1,64})$"
MAX_FACILITY = 65535
MAX_NUMBER = 2**40
MAX_CARDS = 100
MAX_DEVICE_USER_IDS = 200

COLUMNS = ("id", "name", "department", "platform_user_id", "cards", "device_user_ids")
REQUIRED_COLUMNS = ("id", "name")

_ID = re.compile(ID_PATTERN)
_DEVICE_KEY = re.compile(DEVICE_KEY_PATTERN)
_DIGITS = re.compile(r"[0-9]{1,20}")  # ASCII only: str.isdigit() would let "²" through
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError(f"{value[:70]!r} is not an id: 1 to 64 of letters, digits, . _ @ -")
    return value


def check_text(value: str, limit: int = 100) -> str:
    if len(value) > limit:
        raise ValueError(f"longer than {limit} characters")
    if _CONTROL.search(value):  # PostgreSQL refuses NUL, and a name with line breaks breaks reports
        raise ValueError("has control characters")
    return value


def check_name(value: str) -> str:
    if not value.strip():
        raise ValueError("may not be empty")
    return check_text(value, 200)


def parse_card(text: str) -> str:
    """A card as stored: "<facility>:<number>" or "<number>", without leading zeros."""
    value = text.strip()
    facility, sep, number = value.rpartition(":")
    if not _DIGITS.fullmatch(number) or (sep and not _DIGITS.fullmatch(facility)):
        raise ValueError(f"card {text[:70]!r} is not '<facility>:<number>' or '<number>' (digits)")
    if sep and int(facility) > MAX_FACILITY:
        raise ValueError(f"card {text[:70]!r}: facility {int(facility)} is above {MAX_FACILITY}")
    if int(number) > MAX_NUMBER:
        raise ValueError(f"card {text[:70]!r}: number {int(number)} is above 2^40")
    return f"{int(facility)}:{int(number)}" if sep else str(int(number))


MAX_PINS = 5
_PIN = re.compile(r"[0-9]{4,12}")


def check_pins(pins: Iterable[str]) -> list[str]:
    """Keypad PINs: 4 to 12 digits, none twice."""
    out: list[str] = []
    for pin in pins:
        if _PIN.fullmatch(pin) is None:
            raise ValueError("a PIN is 4 to 12 digits")
        if pin in out:
            raise ValueError("a PIN is listed twice")
        out.append(pin)
    if len(out) > MAX_PINS:
        raise ValueError(f"more than {MAX_PINS} PINs")
    return out


def check_cards(cards: Iterable[str]) -> list[str]:
    """Canonical cards; "10:0093" and "10:93" are the same card, so a list may not hold both."""
    seen: dict[str, str] = {}
    for text in cards:
        card = parse_card(text)
        if card in seen:
            raise ValueError(f"card {text[:70]!r} is listed twice (as {seen[card]!r})")
        seen[card] = text
    if len(seen) > MAX_CARDS:
        raise ValueError(f"more than {MAX_CARDS} cards")
    return list(seen)


def check_device_user_ids(value: Mapping[str, str]) -> dict[str, str]:
    if len(value) > MAX_DEVICE_USER_IDS:
        raise ValueError(f"more than {MAX_DEVICE_USER_IDS} devices")
    for device, user in value.items():
        if not _DEVICE_KEY.fullmatch(device):
            raise ValueError(f"{device[:70]!r} is not a device id or '*'")
        if not user or len(user) > 64 or _CONTROL.search(user):
            raise ValueError(f"user id for {device!r} must be 1 to 64 printable characters")
    return dict(value)


def card_owners(people: Iterable[tuple[str, Iterable[str]]]) -> dict[str, str]:
    """Card -> person id, from (person id, cards) pairs as stored."""
    owners: dict[str, str] = {}
    for person_id, cards in people:
        for text in cards:
            try:
                owners[parse_card(str(text))] = person_id
            except ValueError:
                continue  # a card no rule can match cannot clash either
    return owners


def card_conflict(person_id: str, cards: Iterable[str], owners: Mapping[str, str]) -> tuple[str, str] | None:
    """(card, other person) for the first card someone else already has, else None."""
    for card in cards:
        other = owners.get(card)
        if other is not None and other != person_id:
            return card, other
    return None


# ---------------------------------------------------------------- CSV import


class BadFile(ValueError):
    """The file as a whole cannot be read (encoding, empty, header)."""


@dataclass
class RowError:
    row: int  # as a spreadsheet numbers it: the header is row 1
    field: str
    message: str


class BadRows(ValueError):
    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        super().__init__(self.detail)

    @property
    def detail(self) -> str:
        shown = "; ".join(f"row {e.row}, {e.field}: {e.message}" for e in self.errors[:50])
        return shown + (f"; and {len(self.errors) - 50} more" if len(self.errors) > 50 else "")


@dataclass
class ImportRow:
    row: int
    id: str
    fields: dict[str, Any] = field(default_factory=dict)  # only the file's columns (but id), checked


def decode(body: bytes) -> str:
    try:
        text = body.decode("utf-8-sig")  # spreadsheets often save UTF-8 with a BOM
    except UnicodeDecodeError as e:
        raise BadFile(f"the file is not UTF-8 (bad byte at offset {e.start})") from None
    if not text.strip():
        raise BadFile("the file is empty; it needs a header row: " + ",".join(COLUMNS))
    return text


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(";") if part.strip()]


def _device_user_ids(cell: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for part in _split(cell):
        device, sep, user = part.partition("=")
        if not sep:
            raise ValueError(f"{part[:70]!r} is not 'device=user'")
        if device.strip() in pairs:
            raise ValueError(f"device {device.strip()[:70]!r} is listed twice")
        pairs[device.strip()] = user.strip()
    return check_device_user_ids(pairs)


_CELLS = {
    "name": check_name,
    "department": check_text,
    "platform_user_id": lambda v: check_text(v) or None,
    "cards": lambda v: check_cards(_split(v)),
    "device_user_ids": _device_user_ids,
}


def _header(record: list[str]) -> list[str]:
    names = [name.strip().lower() for name in record]
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        raise BadFile(f"unknown columns {unknown}; the columns are {list(COLUMNS)}")
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise BadFile(f"the header row lacks {missing}; it needs at least {list(REQUIRED_COLUMNS)}")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise BadFile(f"columns {twice} appear twice in the header row")
    return names


def parse_csv(text: str) -> list[ImportRow]:
    """Every row checked; BadRows lists every problem so one upload shows them all."""
    records: list[list[str]] = []
    try:
        for record in csv.reader(io.StringIO(text, newline=""), strict=True):
            records.append(record)
    except csv.Error as e:  # e.g. an unclosed quote, which would swallow every row after it
        raise BadFile(f"not a readable CSV file: row {len(records) + 1}: {e}") from None
    if not records[0]:
        raise BadFile("row 1 must be the header row: " + ",".join(COLUMNS))
    header = _header(records[0])
    rows: list[ImportRow] = []
    errors: list[RowError] = []
    id_rows: dict[str, int] = {}
    card_rows: dict[str, tuple[int, str]] = {}
    for number, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue  # a blank line still counts as a row, as a spreadsheet shows it
        if len(record) > len(header) and any(cell.strip() for cell in record[len(header) :]):
            errors.append(RowError(number, "columns", f"{len(record)} cells but the header has {len(header)}"))
            continue
        cells = dict(zip(header, (cell.strip() for cell in record)))
        row = ImportRow(number, cells.get("id", ""))
        try:
            check_id(row.id)
        except ValueError as e:
            errors.append(RowError(number, "id", str(e)))
        else:
            if row.id in id_rows:
                errors.append(RowError(number, "id", f"{row.id!r} is also on row {id_rows[row.id]}"))
            id_rows.setdefault(row.id, number)
        for name in header:
            if name == "id":
                continue
            try:
                row.fields[name] = _CELLS[name](cells.get(name, ""))
            except ValueError as e:
                errors.append(RowError(number, name, str(e)))
        for card in row.fields.get("cards", []):
            if card in card_rows:
                first, owner = card_rows[card]
                errors.append(RowError(number, "cards", f"card {card!r} is also on row {first} ({owner!r})"))
            card_rows.setdefault(card, (number, row.id))
        rows.append(row)
    if errors:
        raise BadRows(errors)
    if not rows:
        raise BadFile("the file has a header row but no people")
    return rows


def import_conflict(rows: list[ImportRow], owners: Mapping[str, str]) -> tuple[ImportRow, str, str] | None:
    """(row, card, other person) when a row takes a card a person outside the file keeps.

    A person in the file with a cards column gives up their old cards, so
    cards may move between people named in the same file.
    """
    replaced = {row.id for row in rows if "cards" in row.fields}
    for row in rows:
        for card in row.fields.get("cards", []):
            other = owners.get(card)
            if other is not None and other != row.id and other not in replaced:
                return row, card, other
    return None
