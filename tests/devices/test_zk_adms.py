"""The ZK ADMS codec: handshake, commands down, results and OPERLOG up; bad input only ever raises DecodeError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.devices import zk_adms
from gateway.devices.errors import DecodeError
from tests.devices.codec_checks import only_decode_errors

SN = "CKJA193960001"


# --- handshake ------------------------------------------------------------------------------------


def test_handshake_new_firmware():
    text = zk_adms.handshake_reply(SN, 480)
    lines = text.splitlines()
    assert lines[0] == f"GET OPTION FROM: {SN}"
    assert lines[1:4] == ["ATTLOGStamp=None", "OPERLOGStamp=None", "ATTPHOTOStamp=None"]
    assert lines[4:] == [
        "ErrorDelay=30",
        "Delay=10",
        "TransTimes=00:00;14:05",
        "TransInterval=1",
        "TransFlag=TransData AttLog OpLog",
        "TimeZone=8",
        "Realtime=1",
        "Encrypt=0",
    ]
    assert not any(line.split("=")[0] in ("Stamp", "OpStamp", "PhotoStamp") for line in lines)


def test_handshake_old_firmware_gets_the_old_stamp_names_too():
    options = zk_adms.parse_options(zk_adms.handshake_reply(SN, -300, new_firmware=False, stamps={"ATTLOG": "123"}))
    assert options["GET OPTION FROM"] == SN
    assert (options["Stamp"], options["OpStamp"], options["PhotoStamp"]) == ("123", "None", "None")
    assert options["ATTLOGStamp"] == "123"
    assert options["TimeZone"] == "-5"


@pytest.mark.parametrize(
    "offset, value", [(0, "0"), (480, "8"), (-300, "-5"), (330, "330"), (345, "345"), (-570, "-570")]
)
def test_timezone_option(offset, value):
    assert zk_adms.timezone_option(offset) == value


@pytest.mark.parametrize("sn", ["", "A B", "A\nTimeZone=0", "x" * 65, "CK/1"])
def test_handshake_refuses_a_serial_number_that_could_break_the_reply(sn):
    assert not zk_adms.valid_sn(sn)
    with pytest.raises(DecodeError) as err:
        zk_adms.handshake_reply(sn, 0)
    assert err.value.reason == "bad_sn"


def test_handshake_refuses_a_stamp_that_is_not_a_number():
    with pytest.raises(DecodeError):
        zk_adms.handshake_reply(SN, 0, stamps={"ATTLOG": "1\nDelay=0"})


def test_tables():
    assert zk_adms.channel_for_table("ATTLOG") == "iclock/ATTLOG"
    assert zk_adms.channel_for_table("OPERLOG") == "iclock/OPERLOG"
    assert zk_adms.channel_for_table("ATTPHOTO") is None
    assert zk_adms.channel_for_table(None) is None
    assert zk_adms.cdata_reply(3) == "OK:3"
    assert zk_adms.cdata_reply(0) == "OK:0"


# --- commands down --------------------------------------------------------------------------------


def test_sync_user():
    assert zk_adms.command_text("sync_user", {"pin": "1001", "name": "Ann Lee", "card": "123456"}) == (
        "DATA UPDATE USERINFO PIN=1001\tName=Ann Lee\tCard=123456"
    )
    assert zk_adms.command_text("sync_user", {"pin": 7}) == "DATA UPDATE USERINFO PIN=7"
    assert zk_adms.command_text("sync_user", {"pin": "7", "name": "Bo", "privilege": 14, "password": "1234"}) == (
        "DATA UPDATE USERINFO PIN=7\tName=Bo\tPri=14\tPasswd=1234"
    )


def test_other_commands():
    assert zk_adms.command_text("delete_user", {"pin": "1001"}) == "DATA DELETE USERINFO PIN=1001"
    assert zk_adms.command_text("info") == "INFO"
    assert zk_adms.command_text("check", {}) == "CHECK"
    assert zk_adms.command_text("reboot") == "REBOOT"


def test_unknown_command_names_are_a_clear_error():
    with pytest.raises(DecodeError) as err:
        zk_adms.command_text("open_door", {"door": "main"})
    assert err.value.reason == "unknown_command"
    assert "sync_user" in err.value.detail


@pytest.mark.parametrize(
    "name, args",
    [
        ("sync_user", {}),  # no pin
        ("sync_user", {"pin": ""}),
        ("sync_user", {"pin": "1\tName=x"}),  # a TAB would add a field
        ("sync_user", {"pin": "1", "name": "Ann\nC:9:REBOOT"}),  # a line end would add a command
        ("sync_user", {"pin": "1", "name": "x" * 25}),
        ("sync_user", {"pin": "1", "card": "12ab"}),
        ("sync_user", {"pin": "1", "privilege": 3}),
        ("sync_user", {"pin": "1", "colour": "red"}),
        ("sync_user", {"pin": True}),
        ("sync_user", {"pin": ["1"]}),
        ("sync_user", {"pin": -1}),
        ("delete_user", {}),
        ("delete_user", {"pin": "1", "name": "x"}),
        ("reboot", {"now": True}),
    ],
)
def test_bad_command_args(name, args):
    with pytest.raises(DecodeError) as err:
        zk_adms.command_text(name, args)
    assert err.value.reason == "bad_args"


def test_wire_ids_are_small_numbers_from_the_random_part():
    command_id = "019a2b3c4d5e" + "ffffffff"
    assert zk_adms.wire_id(command_id) == str(0x7FFFFFFF)
    assert zk_adms.wire_id("019a2b3c4d5e0000002a") == "42"
    assert zk_adms.wire_id("abc") == "abc"


def test_getrequest_reply():
    assert zk_adms.getrequest_reply([]) == "OK"
    text = zk_adms.getrequest_reply([("42", "INFO"), ("43", "DATA UPDATE USERINFO PIN=1\tName=A")])
    assert text == "C:42:INFO\nC:43:DATA UPDATE USERINFO PIN=1\tName=A\n"
    assert zk_adms.parse_getrequest(text) == [("42", "INFO"), ("43", "DATA UPDATE USERINFO PIN=1\tName=A")]
    assert zk_adms.parse_getrequest("OK") == []
    with pytest.raises(DecodeError):
        zk_adms.getrequest_reply([("4:2", "INFO")])
    with pytest.raises(DecodeError):
        zk_adms.getrequest_reply([("42", "INFO\nC:1:REBOOT")])


def test_terminal_side_command_parse():
    assert zk_adms.parse_command("DATA UPDATE USERINFO PIN=1\tName=Ann Lee\tCard=5") == (
        "DATA UPDATE USERINFO",
        {"PIN": "1", "Name": "Ann Lee", "Card": "5"},
    )
    assert zk_adms.parse_command("INFO") == ("INFO", {})


# --- results up -----------------------------------------------------------------------------------


def test_devicecmd_results():
    out = zk_adms.parse_devicecmd(b"ID=42&Return=0&CMD=DATA\r\nID=43&Return=-1&CMD=DATA\nID=44&Return=2&CMD=INFO\n")
    assert out.rejects == []
    assert [(r.id, r.code, r.cmd, r.ok) for r in out.replies] == [
        ("42", 0, "DATA", True),
        ("43", -1, "DATA", False),
        ("44", 2, "INFO", True),
    ]
    assert out.replies[1].detail == "Return=-1 CMD=DATA"


def test_devicecmd_info_details_follow_their_result():
    out = zk_adms.parse_devicecmd(
        b"ID=7&Return=0&CMD=INFO\n~DeviceName=K40\nFWVersion=Ver 6.60\nID=8&Return=0&CMD=CHECK\n"
    )
    assert [r.id for r in out.replies] == ["7", "8"]
    assert out.replies[0].extra == "~DeviceName=K40\nFWVersion=Ver 6.60"
    assert "FWVersion=Ver 6.60" in out.replies[0].detail
    assert out.replies[1].extra == ""


def test_devicecmd_keeps_good_results_beside_bad_lines():
    out = zk_adms.parse_devicecmd(b"garbage\nID=1&Return=x&CMD=DATA\nID=&Return=0\nID=2&Return=0&CMD=DATA\n")
    assert [r.id for r in out.replies] == ["2"]
    assert [r.reason for r in out.rejects] == ["bad_line", "bad_value", "missing_field"]
    assert all(isinstance(r.raw, bytes) and r.raw for r in out.rejects)


@pytest.mark.parametrize("body, reason", [(b"", "empty"), (b"\n\r\n", "empty"), (b"\xff\xfe", "bad_utf8")])
def test_devicecmd_unusable_bodies(body, reason):
    with pytest.raises(DecodeError) as err:
        zk_adms.parse_devicecmd(body)
    assert err.value.reason == reason


def test_devicecmd_body_round_trip():
    body = zk_adms.devicecmd_body([("42", 0, "DATA"), ("43", -3, "DATA")])
    assert [(r.id, r.code) for r in zk_adms.parse_devicecmd(body.encode()).replies] == [("42", 0), ("43", -3)]


# --- OPERLOG ---------------------------------------------------------------------------------------


def test_operlog_users():
    body = (
        b"USER PIN=1001\tName=Ann Lee\tPri=0\tPasswd=\tCard=123456\tGrp=1\tTZ=0000000000000000\n"
        b"OPLOG 4\t0\t2025-08-27 08:57:49\t0\t0\t0\t0\n"
        b"FP PIN=1001\tFID=6\tSize=1184\tValid=1\tTMP=SnVzdCBhIHRlbXBsYXRl\n"
    )
    out = zk_adms.parse_operlog(body)
    assert out.rejects == []
    assert [e.kind for e in out.entries] == ["USER", "OPLOG", "FP"]
    assert out.users() == [
        {
            "PIN": "1001",
            "Name": "Ann Lee",
            "Pri": "0",
            "Passwd": "",
            "Card": "123456",
            "Grp": "1",
            "TZ": "0000000000000000",
        }
    ]
    assert out.entries[1].values[:3] == ("4", "0", "2025-08-27 08:57:49")


def test_operlog_bad_lines_are_rejects():
    out = zk_adms.parse_operlog(b"USER Name=NoPin\nuser PIN=1\nUSER PIN=2\tbroken\nUSER PIN=3\tName=C\n")
    assert [e.fields["PIN"] for e in out.entries] == ["3"]
    assert [r.reason for r in out.rejects] == ["missing_field", "bad_line", "bad_line"]


def test_operlog_line_round_trip():
    line = zk_adms.user_line({"PIN": "9", "Name": "Zed", "Card": "77"})
    assert zk_adms.parse_operlog(line.encode()).users() == [{"PIN": "9", "Name": "Zed", "Card": "77"}]


@pytest.mark.parametrize("body, reason", [(b"", "empty"), (b"\xc3\x28", "bad_utf8")])
def test_operlog_unusable_bodies(body, reason):
    with pytest.raises(DecodeError) as err:
        zk_adms.parse_operlog(body)
    assert err.value.reason == reason


# --- properties ------------------------------------------------------------------------------------


@settings(max_examples=400)
@given(st.binary(max_size=512))
def test_devicecmd_arbitrary_bytes_only_raise_decode_error(payload):
    only_decode_errors(zk_adms.parse_devicecmd, payload)


@settings(max_examples=400)
@given(st.binary(max_size=512))
def test_operlog_arbitrary_bytes_only_raise_decode_error(payload):
    only_decode_errors(zk_adms.parse_operlog, payload)


LINE_CHARS = st.sampled_from(list("ID=Return&CMD-0123456789\t\r\n USERPINName~x\u00e9"))


@settings(max_examples=400)
@given(st.lists(LINE_CHARS, max_size=200).map("".join))
def test_devicecmd_near_miss_text_only_raises_decode_error(text):
    only_decode_errors(zk_adms.parse_devicecmd, text.encode())


@settings(max_examples=300)
@given(
    st.text(max_size=40),
    st.dictionaries(
        st.sampled_from(["pin", "name", "card", "privilege", "password", "x"]),
        st.one_of(st.text(max_size=30), st.integers(), st.booleans(), st.none()),
    ),
)
def test_command_text_only_raises_decode_error_and_never_breaks_a_line(name, args):
    for command in (name, "sync_user", "delete_user"):
        try:
            text = zk_adms.command_text(command, args)
        except DecodeError:
            continue
        assert "\n" not in text and "\r" not in text
        # One field per TAB: no value may carry its own TAB.
        if text.startswith("DATA"):
            assert all("=" in part for part in text.split(" ", 3)[3].split("\t"))


@settings(max_examples=300)
@given(st.text(max_size=80), st.integers(min_value=-900, max_value=900), st.booleans())
def test_handshake_only_raises_decode_error(sn, offset, new):
    try:
        text = zk_adms.handshake_reply(sn, offset, new_firmware=new)
    except DecodeError:
        return
    assert text.splitlines()[0] == f"GET OPTION FROM: {sn}"
    assert len(text.splitlines()) == (12 if new else 15)


# --- large uploads ---------------------------------------------------------------------------------


def test_split_lines_cuts_at_line_ends():
    body = b"a\tb\n" * 10
    assert zk_adms.split_lines(body, 100) == [body]
    pieces = zk_adms.split_lines(body, 9)
    assert pieces == [b"a\tb\na\tb\n"] * 5
    assert zk_adms.split_lines(b"short\n" + b"x" * 30 + b"\nend", 10) == [b"short\n", b"x" * 30 + b"\n", b"end"]
    with pytest.raises(DecodeError):
        zk_adms.split_lines(body, 0)


@settings(max_examples=300)
@given(
    st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    st.integers(1, 120),
    st.booleans(),
)
def test_split_lines_keeps_every_byte_and_every_line_whole(lines, limit, trailing):
    body = b"\n".join(lines) + (b"\n" if trailing else b"")
    pieces = zk_adms.split_lines(body, limit)
    assert b"".join(pieces) == body
    for piece in pieces[:-1]:
        assert piece.endswith(b"\n")
        assert len(piece) <= limit or piece.count(b"\n") == 1
