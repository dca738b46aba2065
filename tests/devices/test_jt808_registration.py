"""The JT/T 808 session's registration rules and what its dead letters keep, by hand: no socket, no store."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from firmware_stubs.jt808_terminal import auth_body, register_body
from gateway.devices import jt808
from gateway.devices.jt808_session import Bind, DeadLetter, Send, Session, Terminal

PHONE = "13912345678"
CODE = "K3y-0001"
VAN = Terminal("van-1", ZoneInfo("Asia/Shanghai"), terminal_id="SIM0001", plate="沪A12345")


def frame(msg_id: int, body: bytes = b"", phone: str = PHONE, version: int = 2013) -> bytes:
    return jt808.build_frame(msg_id, phone, 1, body, version)


def result(action: object) -> int:
    assert isinstance(action, Send)
    sent = jt808.parse_frame(action.data.strip(b"\x7e"))
    return sent.body[2] if sent.msg_id == jt808.REGISTER_REPLY else sent.body[4]


def session() -> Session:
    return Session({PHONE: VAN}.get)


def test_a_matching_registration_asks_for_a_binding_and_a_bound_phone_gets_result_3_and_no_code() -> None:
    s = session()
    assert s.feed(frame(jt808.REGISTER, register_body(2013, "SIM0001", "沪A12345")))[-1] == Bind("van-1")
    dead, answer = s.bound(None)
    assert isinstance(dead, DeadLetter) and dead.reason == "not_authorized"
    assert result(answer) == jt808.TERMINAL_TAKEN
    assert jt808.parse_frame(answer.data.strip(b"\x7e")).body[3:] == b""  # type: ignore[union-attr]
    assert not s.closed  # the real terminal may still authenticate with the code it kept


def test_a_registration_unlike_the_provisioned_terminal_is_refused_without_asking() -> None:
    for terminal_id, plate, expected in (
        ("OTHER01", "沪A12345", jt808.NO_SUCH_TERMINAL),
        ("SIM0001", "沪B99999", jt808.NO_SUCH_VEHICLE),
    ):
        actions = session().feed(frame(jt808.REGISTER, register_body(2013, terminal_id, plate)))
        assert [type(a).__name__ for a in actions] == ["Counted", "DeadLetter", "Send"]
        assert isinstance(actions[1], DeadLetter) and actions[1].reason == "not_authorized"
        assert result(actions[2]) == expected


def test_an_unreadable_registration_is_refused() -> None:
    actions = session().feed(frame(jt808.REGISTER, b"\x00\x01"))
    assert isinstance(actions[1], DeadLetter) and actions[1].reason == "bad_body"
    assert result(actions[2]) == jt808.NO_SUCH_TERMINAL


def test_a_connection_speaks_for_one_phone_only() -> None:
    other = "13900000002"
    s = Session({PHONE: VAN, other: Terminal("van-2", VAN.tz)}.get)
    s.feed(frame(jt808.AUTHENTICATE, auth_body(2013, CODE)))
    s.checked(True)
    actions = s.feed(frame(jt808.HEARTBEAT, phone=other))
    assert [type(a).__name__ for a in actions] == ["Counted", "DeadLetter", "Send", "Close"]
    assert isinstance(actions[1], DeadLetter) and actions[1].reason == "not_authorized" and s.closed


def test_dead_letters_of_authentication_keep_everything_but_the_code() -> None:
    for version in (2013, 2019):
        s = session()
        raw = frame(jt808.AUTHENTICATE, auth_body(version, CODE), version=version)
        s.feed(raw)
        dead = s.checked(False)[0]
        assert isinstance(dead, DeadLetter) and CODE.encode() not in jt808.unescape(dead.frame)
        kept = jt808.parse_frame(dead.frame)
        original = jt808.parse_frame(raw.strip(b"\x7e"))
        assert kept.checksum_ok and (kept.msg_id, kept.phone, len(kept.body)) == (0x0102, PHONE, len(original.body))
        assert jt808.parse_auth(kept.body, version) == "*" * len(CODE)
        if version == 2019:
            assert kept.body[1 + len(CODE) :] == original.body[1 + len(CODE) :]  # IMEI and software kept


def test_an_unreadable_authentication_keeps_only_its_message_id() -> None:
    assert jt808.redact(b"\x01\x02\x00\x08" + CODE.encode() + b"\x7d\x7d") == b"\x01\x02\x00\x08"
