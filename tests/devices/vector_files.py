"""The vector file format shared by every codec (tests/vectors/<codec>.txt), and the matcher.

A vector file is read line by line:

    # any text                prose: where the input came from and what it means
    # defaults: {json}        options for every input below it in the file (merged, later wins)
    # with: {json}            options for the next input only (merged over the defaults)
    # expect: {json}          the next input decodes without a reject to results matching this:
                              an object is exactly one result, an array that many results in order
                              ([] is "nothing, and nothing refused")
    # reject: <reason>        the next input, or one element of it, is refused with this
                              DecodeError reason; repeat the line for several rejects. Together
                              with `expect`, the input yields both the results and the rejects.
    # known-bug: <text>       the decoder disagrees with this (correct) expectation today; the
                              test is an expected failure, and turns red once the decoder is
                              fixed so that the line is removed
    <input>                   one input, exactly as the line holds it (TABs kept); binary
                              frames are written as hex

Blank lines are ignored. Every input needs an `expect` or a `reject` above it.

An expected object names only the fields it checks: the result's attribute (or
key) of that name must match. Values match as follows: objects and arrays
recursively; numbers within 1e-9 when either side is a float; a string against
a datetime is an ISO 8601 time ("Z" for UTC) that must be the same instant; a
string against bytes is their hex; a "0x.." string against an integer is that
number in hex; true/false/null only match themselves.

Options (`defaults` / `with`) are the codec's inputs beside the bytes; which
ones a codec reads is up to its runner in test_vectors.py.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

VECTOR_DIR = Path(__file__).resolve().parent.parent / "vectors"

_DIRECTIVE = re.compile(r"# (defaults|with|expect|reject|known-bug):\s*(.*)")
_NO_EXPECT = object()


class VectorFileError(ValueError):
    """A vector file that does not follow the format (named with its line)."""


@dataclass(frozen=True)
class Vector:
    file: str
    line: int
    text: str
    options: dict[str, Any]
    expect: Any  # the parsed JSON, or None when the input only has rejects
    has_expect: bool
    rejects: tuple[str, ...] = field(default_factory=tuple)
    known_bug: str | None = None

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise VectorFileError(f"{where}: not JSON: {exc}") from None


def parse(text: str, name: str) -> list[Vector]:
    defaults: dict[str, Any] = {}
    pending_with: dict[str, Any] = {}
    expect: Any = _NO_EXPECT
    rejects: list[str] = []
    known_bug: str | None = None
    vectors: list[Vector] = []
    last_directive = 0
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        where = f"{name}:{number}"
        if not line.strip():
            continue
        if line.startswith("#"):
            m = _DIRECTIVE.fullmatch(line)
            if m is None:
                continue  # prose
            kind, value = m.groups()
            last_directive = number
            if kind in ("defaults", "with"):
                options = _json(value, where)
                if not isinstance(options, dict):
                    raise VectorFileError(f"{where}: {kind} must be a JSON object")
                (defaults if kind == "defaults" else pending_with).update(options)
            elif kind == "expect":
                if expect is not _NO_EXPECT:
                    raise VectorFileError(f"{where}: a second expect for one input")
                expect = _json(value, where)
            else:
                if not value.strip():
                    raise VectorFileError(f"{where}: {kind} without a reason")
                if kind == "known-bug":
                    known_bug = value.strip()
                else:
                    rejects.append(value.strip())
            continue
        if expect is _NO_EXPECT and not rejects:
            raise VectorFileError(f"{where}: input without an expect or reject line above it")
        has_expect = expect is not _NO_EXPECT
        vectors.append(
            Vector(
                file=name,
                line=number,
                text=line,
                options={**defaults, **pending_with},
                expect=expect if has_expect else None,
                has_expect=has_expect,
                rejects=tuple(rejects),
                known_bug=known_bug,
            )
        )
        pending_with, expect, rejects, known_bug = {}, _NO_EXPECT, [], None
    if expect is not _NO_EXPECT or rejects or pending_with or known_bug:
        raise VectorFileError(f"{name}:{last_directive}: expectation with no input after it")
    return vectors


def load(codec: str) -> list[Vector]:
    path = VECTOR_DIR / f"{codec}.txt"
    return parse(path.read_text(encoding="utf-8"), path.name)


# --- matching ------------------------------------------------------------------------------------


def _field(actual: Any, name: str) -> tuple[bool, Any]:
    if isinstance(actual, dict):
        return (name in actual, actual.get(name))
    if hasattr(actual, name):
        return True, getattr(actual, name)
    return False, None


def mismatches(expected: Any, actual: Any, path: str = "") -> list[str]:
    """What differs between an expectation and a result ([] when they match)."""
    here = path or "result"
    if isinstance(expected, dict):
        out: list[str] = []
        for name, want in expected.items():
            present, got = _field(actual, name)
            if not present:
                out.append(f"{path}.{name}: no such field on {type(actual).__name__}")
            else:
                out += mismatches(want, got, f"{path}.{name}")
        return out
    if isinstance(expected, list):
        if not isinstance(actual, (list, tuple)):
            return [f"{here}: expected a list, got {actual!r}"]
        if len(expected) != len(actual):
            return [f"{here}: expected {len(expected)} item(s), got {len(actual)}: {actual!r}"[:600]]
        return [
            m for i, (w, g) in enumerate(zip(expected, actual, strict=True)) for m in mismatches(w, g, f"{path}[{i}]")
        ]
    if expected is None or isinstance(expected, bool):
        return [] if actual is expected else [f"{here}: expected {expected!r}, got {actual!r}"]
    if isinstance(expected, str) and isinstance(actual, datetime):
        want = datetime.fromisoformat(expected.replace("Z", "+00:00"))
        return [] if want == actual else [f"{here}: expected {want.isoformat()}, got {actual.isoformat()}"]
    if isinstance(expected, str) and isinstance(actual, (bytes, bytearray)):
        want_hex = expected.replace(" ", "").lower()
        return (
            [] if want_hex == bytes(actual).hex() else [f"{here}: expected hex {want_hex}, got {bytes(actual).hex()}"]
        )
    if isinstance(expected, str) and expected.startswith("0x") and type(actual) is int:
        return [] if int(expected, 16) == actual else [f"{here}: expected {expected}, got 0x{actual:x}"]
    if isinstance(expected, (int, float)) and type(actual) in (int, float):
        if isinstance(expected, float) or isinstance(actual, float):
            ok = math.isclose(expected, actual, rel_tol=0.0, abs_tol=1e-9)
        else:
            ok = expected == actual
        return [] if ok else [f"{here}: expected {expected!r}, got {actual!r}"]
    if type(expected) is not type(actual) or expected != actual:
        return [f"{here}: expected {expected!r}, got {actual!r}"]
    return []
