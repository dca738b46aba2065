"""The ZK ADMS request handling alone: each request's conversation run by hand; no HTTP, no store."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from gateway.devices import zk_adms
from gateway.devices.zk_session import (
    AdmsSession,
    Alert,
    Answer,
    Binding,
    Conversation,
    Finish,
    FinishCommands,
    Heartbeat,
    Piece,
    Pin,
    QueuedCommand,
    Refuse,
    SentCommands,
    Store,
    TakeCommands,
    Terminal,
)

SN = "CKJ1234567"
TERMINALS = {SN: Terminal("zk-1", ZoneInfo("Asia/Shanghai"))}
NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
PEER = "192.0.2.10"


def adms(max_piece: int = 1024) -> AdmsSession:
    return AdmsSession(TERMINALS.get, ZoneInfo("America/New_York"), max_piece, sample=64)


def run(
    conversation: Conversation, answer=lambda action: None, pinned: str | None = PEER, comm_key: str | None = None
) -> tuple[list[object], object]:
    """Every action up to the last, each question answered by `answer`; (the actions, the last).
    The terminal is bound to `pinned` (None: not yet; the pin then takes the sender's address);
    the binding's questions are answered here and left out of the actions."""
    actions: list[object] = []
    for action in conversation:
        if isinstance(action, Binding):
            action.address, action.comm_key = pinned, comm_key
            continue
        if isinstance(action, Pin):
            action.pinned = action.address
            continue
        actions.append(action)
        if isinstance(action, (Answer, Refuse)):
            return actions[:-1], action
        answer(action)
    raise AssertionError("no answer")


def options(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_a_bad_serial_number_is_refused_by_every_request() -> None:
    s = adms()
    for conversation in (
        s.handshake("bad sn\n", True, NOW, PEER),
        s.cdata("bad sn\n", "ATTLOG", b"", PEER),
        s.getrequest("x" * 65, PEER),
        s.devicecmd("", b"", PEER),
    ):
        actions, last = run(conversation)
        assert actions == [] and last == Refuse(400, "SN: 1-64 letters, digits, _ or -")


def test_the_handshake_gives_the_device_zone_or_the_site_zone_for_an_unknown_terminal() -> None:
    actions, last = run(adms().handshake(SN, True, NOW, PEER))
    assert actions == [Heartbeat("zk-1")]
    assert isinstance(last, Answer) and options(last.text)["TimeZone"] == "8"
    actions, last = run(adms().handshake("NOBODY1", False, NOW, PEER))
    assert actions == [] and isinstance(last, Answer) and options(last.text)["TimeZone"] == "-5"


def test_punches_are_stored_in_pieces_and_answered_with_what_the_writer_accepted() -> None:
    body = b"".join(b"%d\t2026-11-27 09:00:00\t0\t1\t0\t0\n" % pin for pin in range(1000, 1100))
    stores: list[Store] = []

    def answer(action: object) -> None:
        if isinstance(action, Store):
            stores.append(action)
            action.accepted = [len(p.payload.splitlines()) for p in action.pieces]

    actions, last = run(adms(max_piece=1024).cdata(SN, "ATTLOG", body, PEER), answer)
    assert actions[0] == Heartbeat("zk-1") and len(stores) == 1
    pieces = stores[0].pieces
    assert len(pieces) > 1 and all(len(p.payload) <= 1024 for p in pieces)
    assert b"".join(p.payload for p in pieces) == body
    assert {(p.channel, p.device_id, p.reject) for p in pieces} == {("iclock/ATTLOG", "zk-1", None)}
    assert last == Answer("OK:100")


def test_an_oper_log_is_answered_with_the_lines_read() -> None:
    body = b"USER PIN=1\tName=Ann\nUSER PIN=2\tName=Bo\n"
    _, last = run(adms().cdata(SN, "OPERLOG", body, PEER))
    assert last == Answer(zk_adms.cdata_reply(len(zk_adms.parse_operlog(body).entries)))


def test_tables_the_gateway_keeps_nothing_of_are_answered_ok_and_not_stored() -> None:
    actions, last = run(adms().cdata(SN, "ATTPHOTO", b"\xff" * 10, PEER))
    assert actions == [Heartbeat("zk-1")] and last == Answer("OK")


def test_data_from_an_unknown_terminal_is_dead_lettered_then_answered_ok_0() -> None:
    body = b"1\t2026-11-27 09:00:00\t0\t1\t0\t0\n" * 10
    actions, last = run(adms().cdata("NOBODY1", "ATTLOG", body, PEER))
    (store,) = actions
    assert isinstance(store, Store)
    (piece,) = store.pieces  # a sample only: anyone can send this
    assert (piece.reject, piece.device_id, piece.payload) == ("unknown_device", None, body[:64])
    assert f"{len(body)} bytes, first 64 kept" in piece.note
    assert last == Answer("OK:0")


def test_a_poll_takes_the_queued_commands_and_fails_one_that_cannot_be_sent() -> None:
    ok_id, bad_id = "c-0000000000000001", "c-0000000000000002"

    def answer(action: object) -> None:
        if isinstance(action, TakeCommands):
            assert action.device_id == "zk-1" and action.key is zk_adms.wire_id
            action.taken = [QueuedCommand(ok_id, "info", {}), QueuedCommand(bad_id, "no_such_command", {})]

    actions, last = run(adms().getrequest(SN, PEER), answer)
    assert actions[0] == Heartbeat("zk-1") and isinstance(actions[1], TakeCommands)
    (finish,) = actions[2:]
    assert isinstance(finish, FinishCommands) and [(r.command_id, r.ok) for r in finish.results] == [(bad_id, False)]
    assert last == Answer(zk_adms.getrequest_reply([(zk_adms.wire_id(ok_id), "INFO")]))


def test_a_poll_of_an_unknown_terminal_is_ok_and_touches_nothing() -> None:
    assert run(adms().getrequest("NOBODY1", PEER)) == ([], Answer("OK"))


def test_command_results_finish_the_commands_they_name() -> None:
    waiting = "c-00000000000000ff"
    body = f"ID={zk_adms.wire_id(waiting)}&Return=0&CMD=INFO\nID=999&Return=-1&CMD=INFO\nnonsense=1\n".encode()

    def answer(action: object) -> None:
        if isinstance(action, SentCommands):
            action.ids = [waiting]

    actions, last = run(adms().devicecmd(SN, body, PEER), answer)
    assert actions[0] == Heartbeat("zk-1") and isinstance(actions[1], SentCommands)
    finish = actions[2]
    assert isinstance(finish, FinishCommands)
    assert finish.results[0] == Finish(waiting, True, "Return=0 CMD=INFO", zk_adms.wire_id(waiting))
    late = finish.results[1]
    assert late.command_id is None and not late.ok and late.answered_id == "999"  # not waiting: only logged
    assert last == Answer("OK")


def test_an_unreadable_result_post_is_dead_lettered_naming_the_device() -> None:
    actions, last = run(adms().devicecmd(SN, b"\xff\xfe", PEER))
    assert actions[0] == Heartbeat("zk-1")
    (store,) = actions[1:]
    assert isinstance(store, Store)
    assert store.pieces == [Piece("iclock/devicecmd", b"\xff\xfe", reject="bad_utf8", note=" (device zk-1)")]
    assert last == Answer("OK")


# --- trust: the address a terminal is pinned to, its comm key ----------------------------------------


def requests(s: AdmsSession, peer: str) -> list[Conversation]:
    body = b"1\t2026-11-27 09:00:00\t0\t1\t0\t0\n" * 10
    return [
        s.handshake(SN, True, NOW, peer),
        s.cdata(SN, "ATTLOG", body, peer),
        s.getrequest(SN, peer),
        s.devicecmd(SN, b"ID=1&Return=0&CMD=INFO\n" * 10, peer),
    ]


def test_the_first_request_pins_the_sender_and_is_served() -> None:
    for conversation in requests(adms(), PEER):
        pins: list[str] = []
        for action in conversation:
            if isinstance(action, Binding):
                action.address = None
            elif isinstance(action, Pin):
                pins.append(action.address)
                action.pinned = action.address
            elif isinstance(action, Store):
                action.accepted = [1]
            elif isinstance(action, (Answer, Refuse)):
                assert isinstance(action, Answer)
                break
        assert pins == [PEER]


def test_every_request_from_another_address_is_refused_with_a_sample_and_an_alert() -> None:
    for conversation in requests(adms(), "::ffff:198.51.100.7"):
        actions, last = run(conversation)
        store, alert = actions  # no heartbeat, no command taken or finished
        assert isinstance(store, Store) and isinstance(alert, Alert)
        (piece,) = store.pieces
        assert (piece.reject, piece.device_id) == ("address_mismatch", "zk-1") and len(piece.payload) <= 64
        assert "from ::ffff:198.51.100.7, pinned to 192.0.2.10" in piece.note
        assert (alert.device_id, alert.reason) == ("zk-1", "address_mismatch")
        assert isinstance(last, Refuse) and last.status == 403


def test_a_lost_pin_race_is_refused() -> None:
    actions: list[object] = []
    for action in adms().getrequest(SN, PEER):
        actions.append(action)
        if isinstance(action, Pin):
            action.pinned = "192.0.2.99"  # another request pinned first
        if isinstance(action, (Answer, Refuse)):
            break
    assert isinstance(actions[-1], Refuse) and not any(isinstance(a, (Heartbeat, TakeCommands)) for a in actions)


def test_the_same_address_in_another_spelling_is_the_same_terminal() -> None:
    _, last = run(adms().getrequest(SN, "::ffff:192.0.2.10"), lambda a: None)
    assert last == Answer("OK")


def test_a_wrong_comm_key_is_refused_and_the_right_one_or_none_is_served() -> None:
    actions, last = run(adms().handshake(SN, True, NOW, PEER, "9999"), comm_key="1234")
    assert isinstance(last, Refuse) and last.status == 403
    assert isinstance(actions[0], Store) and actions[0].pieces[0].reject == "not_authorized"
    for key in ("1234", None):
        actions, last = run(adms().handshake(SN, True, NOW, PEER, key), comm_key="1234")
        assert actions == [Heartbeat("zk-1")] and isinstance(last, Answer)
    # No comm key set: whatever the terminal sends is not checked.
    assert isinstance(run(adms().handshake(SN, True, NOW, PEER, "9999"))[1], Answer)
