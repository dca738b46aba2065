"""The JT/T 808 session alone: frames in, actions out, questions answered by hand; no socket, no store."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from firmware_stubs.jt808_terminal import Point, auth_body, location_body, register_body
from gateway.core.events import Fix
from gateway.devices import jt808
from gateway.devices.jt808_session import (
    Bind,
    CheckCode,
    Counted,
    DeadLetter,
    Heartbeat,
    Send,
    Session,
    Store,
    Terminal,
    Unbind,
)

PHONE = "13912345678"
CODE = "K3y-0001"
SHANGHAI = ZoneInfo("Asia/Shanghai")
TERMINALS = {PHONE: Terminal("van-1", SHANGHAI)}


def frame(msg_id: int, body: bytes = b"", serial: int = 1, phone: str = PHONE, version: int = 2013) -> bytes:
    return jt808.build_frame(msg_id, phone, serial, body, version)


def location(lat: float = 31.2304, lon: float = 121.4737) -> bytes:
    local = datetime(2026, 11, 27, 8, 30, 0)
    return frame(jt808.LOCATION, location_body(Point(lat, lon, local, speed_kmh=40.0), local), serial=7)


def reply(action: object) -> tuple[int, int, int]:
    """(message id, platform serial, result) of a Send holding a 0x8001 or 0x8100."""
    assert isinstance(action, Send)
    sent = jt808.parse_frame(action.data.strip(b"\x7e"))
    if sent.msg_id == jt808.REGISTER_REPLY:
        return sent.msg_id, sent.serial, sent.body[2]
    return sent.msg_id, sent.serial, sent.body[4]


def kinds(actions: list[object]) -> list[str]:
    return [type(action).__name__ for action in actions]


def session(**kwargs: bool) -> Session:
    return Session(TERMINALS.get, **kwargs)


def authenticated() -> Session:
    s = session()
    s.feed(frame(jt808.AUTHENTICATE, auth_body(2013, CODE)))
    s.checked(True)
    assert s.authenticated
    return s


def test_registration_asks_for_a_binding_and_answers_with_its_code() -> None:
    s = session()
    actions = s.feed(frame(jt808.REGISTER, register_body(2013, "T1")))
    assert actions == [Counted("none"), Bind("van-1")]
    assert s.waiting == Bind("van-1")
    answer = s.bound(CODE)
    assert [reply(a) for a in answer] == [(jt808.REGISTER_REPLY, 1, jt808.REGISTERED)]
    sent = jt808.parse_frame(answer[0].data.strip(b"\x7e"))  # type: ignore[union-attr]
    assert sent.body[3:].decode() == CODE
    assert s.waiting is None


def test_an_unknown_terminal_is_dead_lettered_refused_and_closed() -> None:
    s = session()
    raw = frame(jt808.REGISTER, register_body(2013, "T1"), phone="13900000000")
    actions = s.feed(raw + location())
    assert kinds(actions) == ["Counted", "DeadLetter", "Send", "Close"]
    dead = actions[1]
    assert isinstance(dead, DeadLetter) and dead.reason == "unknown_device" and dead.device_id is None
    assert dead.frame == raw.strip(b"\x7e")
    assert reply(actions[2]) == (jt808.REGISTER_REPLY, 1, jt808.NO_SUCH_TERMINAL)
    assert s.closed and s.feed(location()) == []  # nothing after the close is read


def test_nothing_but_registration_and_authentication_before_authenticating() -> None:
    s = session()
    actions = s.feed(location())
    assert kinds(actions) == ["Counted", "DeadLetter", "Send"]
    assert isinstance(actions[1], DeadLetter) and actions[1].reason == "not_authenticated"
    assert reply(actions[2]) == (jt808.PLATFORM_REPLY, 1, jt808.FAILED)
    assert not s.closed


def test_a_wrong_code_is_refused_and_closes() -> None:
    s = session()
    asked = s.feed(frame(jt808.AUTHENTICATE, auth_body(2013, CODE)))[-1]
    assert asked == CheckCode("van-1", CODE) and CODE not in repr(asked)  # the code stays out of logs
    actions = s.checked(False)
    assert kinds(actions) == ["DeadLetter", "Send", "Close"]
    assert isinstance(actions[0], DeadLetter) and actions[0].reason == "not_authorized"
    assert reply(actions[1])[2] == jt808.FAILED and not s.authenticated and s.closed


def test_an_unreadable_auth_body_is_a_bad_message() -> None:
    actions = session().feed(frame(jt808.AUTHENTICATE, b""))
    assert kinds(actions) == ["Counted", "DeadLetter", "Send"]
    assert isinstance(actions[1], DeadLetter) and actions[1].reason == "bad_body"
    assert reply(actions[2])[2] == jt808.BAD_MESSAGE


def test_the_right_code_authenticates_and_counts_as_a_heartbeat() -> None:
    s = session()
    s.feed(frame(jt808.AUTHENTICATE, auth_body(2019, CODE), version=2019))
    actions = s.checked(True)
    assert actions[0] == Heartbeat("van-1") and reply(actions[1]) == (jt808.PLATFORM_REPLY, 1, jt808.OK)
    beat = s.feed(frame(jt808.HEARTBEAT, serial=2))
    assert beat[:2] == [Counted("none"), Heartbeat("van-1")] and reply(beat[2]) == (jt808.PLATFORM_REPLY, 2, jt808.OK)


def test_frames_after_a_question_wait_for_its_answer() -> None:
    s = session()
    actions = s.feed(frame(jt808.AUTHENTICATE, auth_body(2013, CODE)) + frame(jt808.HEARTBEAT, serial=2))
    assert actions == [Counted("none"), CheckCode("van-1", CODE)]  # the heartbeat is not read yet
    after = s.checked(True)
    assert kinds(after) == ["Heartbeat", "Send", "Counted", "Heartbeat", "Send"]
    assert [reply(a)[1] for a in after if isinstance(a, Send)] == [1, 2]  # the platform's serials, in order


def test_a_location_is_decoded_once_and_answered_only_after_the_commit() -> None:
    s = authenticated()
    raw = location()
    actions = s.feed(raw)
    assert kinds(actions) == ["Counted", "Store"]
    store = actions[1]
    assert isinstance(store, Store) and store.device_id == "van-1" and store.frame == raw.strip(b"\x7e")
    (fix,) = store.decoded.events
    assert isinstance(fix, Fix) and fix.device_id == "van-1" and fix.flags == []
    assert fix.time == datetime(2026, 11, 27, 0, 30, tzinfo=UTC)  # the terminal's Shanghai clock
    assert s.feed(location()) == []  # no reply and no next frame before the answer
    answered = s.stored(True)
    assert reply(answered[0]) == (jt808.PLATFORM_REPLY, 2, jt808.OK)
    assert kinds(answered[1:]) == ["Counted", "Store"]  # then the frame that waited is read


def test_a_failed_commit_is_answered_failed() -> None:
    s = authenticated()
    s.feed(location())
    assert [reply(a)[2] for a in s.stored(False)] == [jt808.FAILED]


def test_a_batch_with_a_bad_item_stores_the_good_ones_and_the_reject() -> None:
    s = authenticated()
    good = location_body(Point(31.2, 121.4, datetime(2026, 11, 27, 8, 0)), datetime(2026, 11, 27, 8, 0))
    body = struct.pack(">HB", 2, 1) + struct.pack(">H", len(good)) + good + struct.pack(">H", 3) + b"abc"
    (_, store) = s.feed(frame(jt808.BATCH_LOCATION, body))
    assert isinstance(store, Store)
    assert len(store.decoded.events) == 1 and [r.reason for r in store.decoded.rejects] == ["bad_body"]
    assert store.decoded.events[0].flags == ["blind_area"]  # type: ignore[union-attr]


def test_an_undecodable_location_is_stored_as_a_reject_so_it_is_dead_lettered_and_answered() -> None:
    s = authenticated()
    (_, store) = s.feed(frame(jt808.LOCATION, b"short"))
    assert isinstance(store, Store) and store.decoded.events == []
    assert [r.reason for r in store.decoded.rejects] == ["bad_body"]
    assert reply(s.stored(True)[0])[2] == jt808.OK


def bad_checksum(data: bytes) -> bytes:
    return data[:-2] + bytes([data[-2] ^ 0x01]) + data[-1:] if data[-2] not in (0x7C, 0x7D, 0x7E, 0x7F) else data


def test_a_bad_checksum_is_flagged_by_default_and_refused_when_the_site_says_so() -> None:
    raw = bad_checksum(location())
    assert not jt808.parse_frame(raw.strip(b"\x7e")).checksum_ok
    s = authenticated()
    counted, store = s.feed(raw)
    assert counted == Counted("bad_checksum")
    assert isinstance(store, Store) and store.decoded.events[0].flags == ["bad_checksum"]  # type: ignore[union-attr]

    strict = Session(TERMINALS.get, accept_bad_checksum=False)
    strict.feed(frame(jt808.AUTHENTICATE, auth_body(2013, CODE)))
    strict.checked(True)
    actions = strict.feed(raw)
    assert kinds(actions) == ["Counted", "DeadLetter", "Send"]
    assert isinstance(actions[1], DeadLetter) and actions[1].reason == "bad_checksum"
    assert reply(actions[2])[2] == jt808.BAD_MESSAGE


def test_an_unparseable_frame_is_dead_lettered_and_the_stream_goes_on() -> None:
    s = authenticated()
    actions = s.feed(b"\x7e\x01\x02\x7e" + frame(jt808.HEARTBEAT, serial=3))
    assert kinds(actions) == ["Counted", "DeadLetter", "Counted", "Heartbeat", "Send"]
    assert actions[0] == Counted("unparseable")
    assert isinstance(actions[1], DeadLetter) and actions[1].reason == "bad_frame" and actions[1].device_id == "van-1"


def test_deregistration_unbinds_answers_then_closes_and_unknown_messages_are_unsupported() -> None:
    s = authenticated()
    assert reply(s.feed(frame(0x0900, b"\x01"))[1])[2] == jt808.UNSUPPORTED
    actions = s.feed(frame(jt808.LOGOUT) + frame(jt808.HEARTBEAT))
    assert kinds(actions) == ["Counted", "Unbind", "Send", "Close"] and s.closed
    assert actions[1] == Unbind("van-1")


def test_an_answer_nobody_asked_for_is_a_bug() -> None:
    s = authenticated()
    with pytest.raises(RuntimeError):
        s.stored(True)
    s.feed(location())
    with pytest.raises(RuntimeError):
        s.checked(True)
