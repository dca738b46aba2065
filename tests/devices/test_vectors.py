"""Every codec against its vector file, tests/vectors/<codec>.txt (format: tests/devices/vector_files.py).

One test per input line, named after the file and line, so a failure points at
the capture that broke. A runner feeds one input to the codec's public entry
point and returns (results, reject reasons); a DecodeError for the input as a
whole is one reject.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.devices import (
    attlog,
    card_lines,
    jt808,
    jt808_location,
    mqtt_device,
    mqtt_json,
    nmea,
    owntracks,
    wiegand,
    zk_adms,
)
from gateway.devices.base import Decoded
from gateway.devices.errors import DecodeError
from tests.devices.vector_files import VECTOR_DIR, Vector, VectorFileError, load, mismatches, parse

DEVICE = "vector-device"
DEVICES_DIR = Path(nmea.__file__).resolve().parent

Outcome = tuple[list[object], list[str]]  # the results, and the reasons of the rejects


def _zone(v: Vector) -> tzinfo:
    name = v.options.get("zone", "UTC")
    return UTC if name == "UTC" else ZoneInfo(name)


def _received(v: Vector) -> datetime:
    return datetime.fromisoformat(v.options.get("received", "2025-01-01T00:00:00Z").replace("Z", "+00:00"))


def _decoded(out: Decoded) -> Outcome:
    return list(out.events), [r.reason for r in out.rejects]


def run_attlog(v: Vector) -> Outcome:
    return _decoded(attlog.decode(v.text.encode(), DEVICE, _zone(v)))


def run_card_lines(v: Vector) -> Outcome:
    return _decoded(card_lines.decode(v.text.encode(), DEVICE, _zone(v), _received(v)))


def run_nmea(v: Vector) -> Outcome:
    """Options: `earlier`, sentences of earlier epochs (a date to borrow), fed and flushed first;
    `same_epoch`, sentences of this input's epoch sent before it. Only what the input's own
    line and the final flush yield is the result."""
    reader = nmea.NmeaReader(DEVICE, tz=_zone(v))
    received = _received(v)
    for earlier in v.options.get("earlier", []):
        reader.feed(earlier.encode() + b"\r\n", received)
        reader.flush()
    for sentence in v.options.get("same_epoch", []):
        assert reader.feed(sentence.encode() + b"\r\n", received).events == []
    fed = reader.feed(v.text.encode() + b"\r\n", received)
    flushed = reader.flush()
    return list(fed.events) + list(flushed.events), [r.reason for r in fed.rejects + flushed.rejects]


def run_mqtt_json(v: Vector) -> Outcome:
    return _decoded(mqtt_json.decode(v.text.encode(), DEVICE, _zone(v)))


def run_owntracks(v: Vector) -> Outcome:
    return _decoded(owntracks.decode(v.text.encode(), DEVICE, _zone(v)))


def run_mqtt_device(v: Vector) -> Outcome:
    decode = mqtt_device.decode_status if v.options["topic"] == "status" else mqtt_device.decode_command_result
    return _decoded(decode(v.text.encode(), DEVICE, _received(v)))


def run_zk_adms(v: Vector) -> Outcome:
    """`body`: the table posted to /iclock/cdata (OPERLOG, ATTLOG) or the devicecmd endpoint."""
    body = v.text.encode()
    if v.options["body"] == "ATTLOG":  # the pipeline's iclock/ATTLOG channel decodes these
        return _decoded(attlog.decode(body, DEVICE, _zone(v)))
    if v.options["body"] == "OPERLOG":
        operlog = zk_adms.parse_operlog(body)
        return list(operlog.entries), [r.reason for r in operlog.rejects]
    devicecmd = zk_adms.parse_devicecmd(body)
    return list(devicecmd.replies), [r.reason for r in devicecmd.rejects]


def _wiegand_input(text: str) -> tuple[bytes, int]:
    """`<bit count>:<hex>` as a reader hands the bits over, or the bits as 0/1 (spaces for reading)."""
    if ":" in text:
        count, hex_data = text.split(":")
        return bytes.fromhex(hex_data), int(count)
    bits = text.replace(" ", "")
    if not bits or set(bits) - {"0", "1"}:
        raise VectorFileError(f"wiegand input {text!r} is neither <bits>:<hex> nor a bit string")
    size = (len(bits) + 7) // 8
    return (int(bits, 2) << (size * 8 - len(bits))).to_bytes(size, "big"), len(bits)


def run_wiegand(v: Vector) -> Outcome:
    data, bits = _wiegand_input(v.text)
    return [wiegand.decode(data, bits, v.options.get("format"))], []


_FRAME_FIELDS = (
    "msg_id",
    "version",
    "protocol_version",
    "phone",
    "serial",
    "body",
    "encryption",
    "sub_package",
    "checksum_ok",
    "length_ok",
    "phone_bytes",
)


def run_jt808(v: Vector) -> Outcome:
    """One delimited frame as hex: the frame's header fields, and what its body holds
    (`register`, `auth`, or the location `fixes`)."""
    frames = jt808.Deframer().feed(bytes.fromhex(v.text))
    if len(frames) != 1:
        raise VectorFileError(f"{v.id}: {len(frames)} frames on the line, a vector is one 7E..7E frame")
    frame = jt808.parse_frame(frames[0])
    result: dict[str, object] = {name: getattr(frame, name) for name in _FRAME_FIELDS}
    rejects: list[str] = []
    try:  # a body the parsers refuse leaves the header readable: both are checked
        if frame.msg_id == jt808.REGISTER:
            result["register"] = jt808.parse_register(frame.body, frame.version)
        elif frame.msg_id == jt808.AUTHENTICATE:
            result["auth"] = jt808.parse_auth(frame.body, frame.version)
        elif frame.msg_id in (jt808.LOCATION, jt808.BATCH_LOCATION):
            result["fixes"], rejects = _decoded(jt808_location.decode(frame, DEVICE, _zone(v)))
    except DecodeError as exc:
        rejects = [exc.reason]
    return [result], rejects


RUNNERS: dict[str, Callable[[Vector], Outcome]] = {
    "attlog": run_attlog,
    "card_lines": run_card_lines,
    "jt808": run_jt808,
    "mqtt_device": run_mqtt_device,
    "mqtt_json": run_mqtt_json,
    "nmea": run_nmea,
    "owntracks": run_owntracks,
    "wiegand": run_wiegand,
    "zk_adms": run_zk_adms,
}

# Modules that read wire input but whose vectors live in another file, and modules that read none.
COVERED_BY: dict[str, str] = {
    "jt808_location": "jt808",
    "jt808_session": "jt808",
    "zk_commands": "zk_adms",
    "zk_session": "zk_adms",
}
NOT_WIRE_INPUT: dict[str, str] = {
    "access_log": "the gateway's own door-decision record, not device input",
    "base": "shared helpers (Decoded, parse_json)",
}


def _all_vectors() -> list[Vector]:
    # A missing file fails test_every_vector_file_has_a_runner_and_vectors, not the collection.
    return [v for codec in RUNNERS if (VECTOR_DIR / f"{codec}.txt").exists() for v in load(codec)]


ALL = _all_vectors()


def _param(v: Vector) -> object:
    if v.known_bug is None:
        return pytest.param(v, id=v.id)
    # strict: once the decoder is fixed the test fails, so the known-bug line gets removed.
    return pytest.param(v, id=v.id, marks=pytest.mark.xfail(strict=True, reason=v.known_bug))


@pytest.mark.parametrize("vector", [_param(v) for v in ALL])
def test_vector(vector: Vector) -> None:
    runner = RUNNERS[Path(vector.file).stem]
    try:
        results, rejects = runner(vector)
    except DecodeError as exc:
        results, rejects = [], [exc.reason]
    assert rejects == list(vector.rejects), f"{vector.id}: rejects {rejects}, expected {list(vector.rejects)}"
    if not vector.has_expect:
        assert results == [], f"{vector.id}: expected only rejects, got {results!r}"
        return
    expected = vector.expect if isinstance(vector.expect, list) else [vector.expect]
    problems = mismatches(expected, results)
    assert not problems, f"{vector.id}:\n  " + "\n  ".join(problems)


def _reads_wire_input(path: Path) -> bool:
    """A public `decode`, `decode_*` or `parse_*` function, or a class with a `feed` method: the module
    takes device input."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and (node.name == "decode" or node.name.startswith(("decode_", "parse_"))):
            return True
        if isinstance(node, ast.ClassDef) and any(
            isinstance(item, ast.FunctionDef) and item.name == "feed" for item in node.body
        ):
            return True
    return False


def _vector_file_for(module: str) -> str | None:
    if module in COVERED_BY:
        return COVERED_BY[module]
    if (VECTOR_DIR / f"{module}.txt").exists():
        return module
    # A codec split into parts (nmea_fields beside nmea) shares the family's file.
    family = module.split("_", 1)[0]
    return family if (VECTOR_DIR / f"{family}.txt").exists() else None


def test_every_codec_module_has_a_vector_file() -> None:
    missing = []
    for path in sorted(DEVICES_DIR.glob("*.py")):
        module = path.stem
        if module == "__init__" or module in NOT_WIRE_INPUT or not _reads_wire_input(path):
            continue
        codec = _vector_file_for(module)
        if codec is None or codec not in RUNNERS:
            missing.append(module)
    assert not missing, (
        f"gateway/devices/{{{', '.join(missing)}}} read device input but have no vectors: add "
        "tests/vectors/<module>.txt with a runner in tests/devices/test_vectors.py (or map the module "
        "in COVERED_BY to the file that covers it)"
    )


def test_every_vector_file_has_a_runner_and_vectors() -> None:
    files = {path.stem for path in VECTOR_DIR.glob("*.txt")}
    assert files == set(RUNNERS)
    for codec in RUNNERS:
        vectors = load(codec)
        assert vectors, f"{codec}.txt has no vectors"
        assert any(v.has_expect for v in vectors), f"{codec}.txt has no input a decoder accepts"
        # attlog.txt holds only good lines: tests/devices/test_attlog.py decodes the whole file as one batch.
        assert any(v.rejects for v in vectors) or codec == "attlog", f"{codec}.txt has no reject"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("101\t2025-08-27 08:57:49\t0\t1\n", "without an expect or reject"),
        ("# expect: {}\n", "no input after it"),
        ("# expect: {}\n# expect: {}\nx\n", "a second expect"),
        ("# expect: {oops}\nx\n", "not JSON"),
        ("# reject:\nx\n", "without a reason"),
        ("# known-bug:\n# expect: {}\nx\n", "without a reason"),
        ("# known-bug: the decoder is wrong\n", "no input after it"),
        ("# with: []\n# expect: {}\nx\n", "must be a JSON object"),
    ],
)
def test_format_errors_are_named_with_their_line(text: str, problem: str) -> None:
    with pytest.raises(VectorFileError, match=problem):
        parse(text, "x.txt")


def test_format_reads_options_expectations_and_tabs() -> None:
    text = (
        "# prose\n"
        '# defaults: {"zone": "Asia/Shanghai"}\n'
        '# with: {"format": "H10304"}\n'
        '# expect: {"a": 1}\n'
        "first\tline\n"
        "\n"
        "# reject: bad_value\n"
        "# reject: bad_time\n"
        "# known-bug: refuses it twice\n"
        "second\n"
    )
    first, second = parse(text, "x.txt")
    assert (first.line, first.text, first.expect, first.rejects) == (5, "first\tline", {"a": 1}, ())
    assert first.options == {"zone": "Asia/Shanghai", "format": "H10304"}
    assert (second.id, second.has_expect, second.rejects) == ("x.txt:10", False, ("bad_value", "bad_time"))
    assert second.options == {"zone": "Asia/Shanghai"}
    assert (first.known_bug, second.known_bug) == (None, "refuses it twice")


def test_matcher_rules() -> None:
    when = datetime(2025, 8, 27, 0, 57, 49, tzinfo=UTC)
    assert mismatches({"time": "2025-08-27T08:57:49+08:00"}, {"time": when}) == []
    assert mismatches({"time": "2025-08-27T00:57:50Z"}, {"time": when})
    assert mismatches({"lat": 22.51488}, {"lat": 22.514880000000001}) == []
    assert mismatches({"lat": 22.51488}, {"lat": 22.514881})
    assert mismatches({"msg_id": "0x0200", "body": "0A0B"}, {"msg_id": 512, "body": b"\x0a\x0b"}) == []
    assert mismatches({"valid": False}, {"valid": 0})
    assert mismatches({"heading": None}, {"heading": 0.0})
    assert mismatches([{"a": 1}], [{"a": 1}, {"a": 2}])
    assert mismatches({"missing": 1}, {"a": 1})
