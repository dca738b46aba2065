"""Visitors end to end: invitations through the API, their credentials at a real door (libosdp's PD as the
reader on a pty pair), check-in and check-out, the roll call, the blocklist, revocation and retention."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta

import osdp
import pytest
from sqlmodel import Session

from firmware_stubs.osdp_reader import ReaderBus, SimulatedReader
from gateway.store.db import make_engine
from gateway.store.models import Visit
from gateway.visitors.service import CARD_POOL, RETENTION_MS, Visitors
from gateway.visitors.views import door_rows
from tests.conftest import wait_for
from tests.system.test_serial import PtyPair

GREEN, RED = osdp.CommandLEDColor.Green, osdp.CommandLEDColor.Red
STRIKE = 5  # OSDP output control code of a timed pulse: the door opens


def at(**delta: float) -> str:
    """An RFC 3339 time relative to now, whole seconds."""
    return (datetime.now(UTC).replace(microsecond=0) + timedelta(**delta)).isoformat()


def invitation(name: str = "Vera Visitor", start: str | None = None, end: str | None = None, **extra) -> dict:
    return {
        "name": name,
        "host": "H1",
        "window": {"start": start or at(minutes=10), "end": end or at(hours=2)},
        "doors": ["front", "front-exit"],
        **extra,
    }


def invite(gw, **kw) -> dict:
    response = gw.http.post("/api/v1/visitors/invitations", json=invitation(**kw))
    assert response.status_code == 201, response.text
    return response.json()


def visit(gw, visit_id: str) -> dict:
    return next(v for v in gw.all_items("/api/v1/visits") if v["id"] == visit_id)


def on_site(gw) -> set[str]:
    return {v["id"] for v in gw.all_items("/api/v1/visits", on_site="true")}


def reasons(gw, door: str) -> list[tuple[str, str, str | None]]:
    return [(e["decision"], e["reason"], e["visitor_id"]) for e in gw.all_items("/api/v1/access/events", door=door)]


def notifications(gw, visit_id: str) -> list[tuple]:
    with sqlite3.connect(gw.workdir / "gateway.db") as db:
        return db.execute(
            "SELECT host_person_id, kind, delivered FROM visit_notification WHERE visit_id = ?", (int(visit_id),)
        ).fetchall()


@pytest.fixture
def site(gateway_factory, tmp_path):
    """(gateway, entry reader, exit reader): door "front" at address 1, its exit reader "front-exit" at
    address 2 on the same line; host H1 (no door access of their own)."""
    pty = PtyPair(tmp_path)
    extra = f'[[serial]]\nport = "{pty.gateway_end}"\nprotocol = "osdp"\nbaudrate = 115200\n'
    gw = gateway_factory("embedded", extra=extra).start()
    keys = {}
    for address, door, direction in ((1, "front", "in"), (2, "front-exit", "out")):
        keys[address] = gw.register(
            f"reader-{door}",
            kind="access",
            protocol="osdp",
            config={
                "line": str(pty.gateway_end),
                "address": address,
                "door": door,
                "strike_ms": 1000,
                "direction": direction,
            },
        )["credentials"]["scbk"]
    gw.http.post("/api/v1/people", json={"id": "H1", "name": "Hannah Host"}).raise_for_status()
    gw.terminate()  # the line takes the readers registered when it starts
    gw.start()
    bus = ReaderBus(str(pty.device_end))
    entry, exit_ = SimulatedReader(bus, 1, keys[1]), SimulatedReader(bus, 2, keys[2])
    bus.start()
    wait_for(lambda: entry.secure and exit_.secure, 30, 0.1, what="both secure channels")
    yield gw, entry, exit_
    entry.stop()
    exit_.stop()
    bus.stop()
    pty.unplug()


def test_a_visit_checked_in_at_the_door_and_out_at_the_exit(site):
    gw, entry, exit_ = site
    now_ms = int(time.time() * 1000)
    today = invite(gw, credential="pin", phone="+86 138 0000 0001", company="Acme")  # starts in 10 min: lead 15
    later = invite(gw, name="Larry Later", start=at(hours=2), end=at(hours=3), credential="pin")
    pin, later_pin = today["credential"]["value"], later["credential"]["value"]
    assert len(pin) == 6 and pin.isdigit() and pin != later_pin
    assert today["status"] == "valid" and later["status"] == "not_yet_valid"
    valid_from = datetime.fromisoformat(today["valid_from"])
    assert valid_from == datetime.fromisoformat(today["window"]["start"]) - timedelta(minutes=15)
    assert "value" not in gw.all_items("/api/v1/visitors/invitations")[0]["credential"]  # shown once

    entry.enter_keys(later_pin + "#")  # two hours early: outside the lead time
    assert entry.wait_for("led", lambda c: c["on_color"] == RED, timeout=10) is not None
    assert entry.outputs() == []
    entry.clear()
    entry.enter_keys(pin + "#")
    assert entry.wait_for("output", lambda c: c["control_code"] == STRIKE, timeout=10) is not None
    wait_for(lambda: today["id"] in on_site(gw), 10, 0.1, what="the visitor on the roll call")
    assert later["id"] not in on_site(gw)
    arrived = visit(gw, today["id"])
    assert arrived["visitor_name"] == "Vera Visitor" and arrived["company"] == "Acme"
    assert arrived["host"] == "H1" and arrived["host_name"] == "Hannah Host" and arrived["checked_out_at"] is None
    checked_in = datetime.fromisoformat(arrived["checked_in_at"])
    assert abs(checked_in.timestamp() * 1000 - now_ms) < 30_000
    assert notifications(gw, today["id"]) == [("H1", "visitor_arrived", 0)]
    wait_for(
        lambda: reasons(gw, "front") == [("denied", "not_yet_valid", later["id"]), ("granted", "granted", today["id"])],
        10,
        0.2,
        what="both reads",
    )

    exit_.enter_keys(pin + "#")  # leaving through the exit reader
    assert exit_.wait_for("output", lambda c: c["control_code"] == STRIKE, timeout=10) is not None
    wait_for(lambda: today["id"] not in on_site(gw), 10, 0.1, what="the check-out at the exit")
    left = visit(gw, today["id"])
    assert left["checked_out_at"] is not None and left["checkout_reason"] == "exit_reader" and not left["on_site"]

    entry.clear()
    entry.enter_keys(pin + "#")  # back from lunch: on site again, the host is not told twice
    assert entry.wait_for("output", lambda c: c["control_code"] == STRIKE, timeout=10) is not None
    wait_for(lambda: today["id"] in on_site(gw), 10, 0.1, what="the visitor back on the roll call")
    assert visit(gw, today["id"])["checked_in_at"] == arrived["checked_in_at"]
    assert len(notifications(gw, today["id"])) == 1
    assert {v["id"] for v in gw.all_items("/api/v1/visits", on_site="false")} == {later["id"]}


def test_a_temporary_card_stops_at_the_window_end_and_the_visitor_is_checked_out(site):
    gw, entry, _ = site
    end = at(seconds=8)
    card = invite(gw, start=at(minutes=-1), end=end, credential="card")
    number = int(card["credential"]["value"])
    assert CARD_POOL[0] <= number <= CARD_POOL[1]
    entry.present_h10301(42, number)  # a temporary card matches on its number, any facility
    assert entry.wait_for("output", lambda c: c["control_code"] == STRIKE, timeout=10) is not None
    wait_for(lambda: card["id"] in on_site(gw), 10, 0.1, what="the check-in")
    time.sleep(max(0.0, datetime.fromisoformat(end).timestamp() - time.time()) + 0.2)
    entry.clear()
    entry.present_h10301(42, number)
    assert entry.wait_for("led", lambda c: c["on_color"] == RED, timeout=10) is not None
    assert entry.outputs() == []
    wait_for(lambda: card["id"] not in on_site(gw), 10, 0.2, what="the automatic check-out")
    gone = visit(gw, card["id"])
    assert gone["checkout_reason"] == "window_end" and gone["checked_out_at"] == card["window"]["end"]
    wait_for(
        lambda: reasons(gw, "front") == [("granted", "granted", card["id"]), ("denied", "expired", card["id"])],
        10,
        0.2,
        what="both reads",
    )
    assert card["window"]["end"] == datetime.fromisoformat(end).astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_a_revoked_invitation_is_refused_at_the_door_within_a_second(site):
    gw, entry, _ = site
    pin = invite(gw, credential="pin")
    gw.http.delete(f"/api/v1/visitors/invitations/{pin['id']}").raise_for_status()
    entry.enter_keys(pin["credential"]["value"] + "#")
    assert entry.wait_for("led", lambda c: c["on_color"] == RED, timeout=10) is not None
    assert entry.outputs() == []
    wait_for(lambda: reasons(gw, "front") == [("denied", "revoked", pin["id"])], 10, 0.2, what="the denial")
    assert gw.all_items("/api/v1/visitors/invitations")[0]["status"] == "revoked"
    assert gw.http.delete(f"/api/v1/visitors/invitations/{pin['id']}").status_code == 204  # again: no change
    revokes = gw.all_items("/api/v1/audit", target_type="visitor_invitation", action="revoke")
    assert [a["target_id"] for a in revokes] == [pin["id"]]
    assert gw.http.delete("/api/v1/visitors/invitations/999999").status_code == 404


@pytest.fixture
def gw(gateway_factory):
    gateway = gateway_factory("embedded").start()
    gateway.http.post("/api/v1/people", json={"id": "H1", "name": "Hannah Host"}).raise_for_status()
    return gateway


def test_the_blocklist_refuses_an_invitation_by_name_or_phone(gw):
    by_name = gw.http.post("/api/v1/visitors/blocklist", json={"name": "Mallory  Malice", "reason": "trespass"})
    assert by_name.status_code == 201, by_name.text
    by_phone = gw.http.post("/api/v1/visitors/blocklist", json={"phone": "+86 138-0000-0002"}).json()
    refused = gw.http.post("/api/v1/visitors/invitations", json=invitation(name="mallory malice"))
    assert refused.status_code == 409
    assert f"entry {by_name.json()['id']}" in refused.json()["detail"] and "trespass" in refused.json()["detail"]
    refused = gw.http.post("/api/v1/visitors/invitations", json=invitation(name="Pat", phone="+8613800000002"))
    assert refused.status_code == 409 and f"entry {by_phone['id']}" in refused.json()["detail"]
    assert gw.all_items("/api/v1/visitors/invitations") == []
    assert gw.http.post("/api/v1/visitors/blocklist", json={"reason": "nobody"}).status_code == 422
    assert len(gw.all_items("/api/v1/visitors/blocklist")) == 2

    gw.http.delete(f"/api/v1/visitors/blocklist/{by_phone['id']}").raise_for_status()
    assert (
        gw.http.post("/api/v1/visitors/invitations", json=invitation(name="Pat", phone="+8613800000002")).status_code
        == 201
    )
    changes = [(a["action"], a["target_type"]) for a in gw.all_items("/api/v1/audit") if "visitor" in a["target_type"]]
    assert changes == [
        ("create", "visitor_blocklist"),
        ("create", "visitor_blocklist"),
        ("delete", "visitor_blocklist"),
        ("create", "visitor_invitation"),
    ]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (invitation(start=at(hours=2), end=at(hours=1)), 422, "end must be after start"),
        (invitation(start=at(hours=1), end=at(days=8)), 422, "at most 7 days"),
        (invitation(start=at(hours=-2), end=at(minutes=-1)), 422, "already ended"),
        (invitation(start="2026-01-01T09:00:00", end="2026-01-01T10:00:00"), 422, "window.start"),
        ({**invitation(), "host": "nobody"}, 404, "nobody"),
        ({**invitation(), "doors": []}, 422, "doors"),
        ({**invitation(), "credential": "face"}, 422, "credential"),
    ],
)
def test_invitations_the_gateway_refuses(gw, body, status, words):
    response = gw.http.post("/api/v1/visitors/invitations", json=body)
    assert response.status_code == status and words in response.json()["detail"], response.text


def test_credentials_are_distinct_and_a_qr_is_the_default(gw):
    pins = {invite(gw, name=f"P{i}", credential="pin")["credential"]["value"] for i in range(20)}
    assert len(pins) == 20
    cards = [invite(gw, name=f"C{i}", credential="card")["credential"]["value"] for i in range(3)]
    assert cards == [str(CARD_POOL[0] + i) for i in range(3)]
    qr = invite(gw)["credential"]
    assert qr["kind"] == "qr" and len(qr["value"]) >= 24
    audit = gw.all_items("/api/v1/audit", target_type="visitor_invitation")
    assert audit and all("value" not in a["after"]["credential"] for a in audit)  # the credential is not logged


def test_personal_data_is_anonymised_after_the_retention_and_visits_still_count(gw):
    first = invite(gw, name="Olga Old", phone="+44 20 7946 0000", company="Oldco", credential="pin")
    invite(gw, name="Nina New", credential="qr")
    before = gw.all_items("/api/v1/visits")
    engine = make_engine(f"sqlite:///{gw.workdir}/gateway.db")
    try:
        visitors = Visitors(engine)
        end_ms = int(datetime.fromisoformat(first["window"]["end"]).timestamp() * 1000)
        assert visitors.housekeeping(now=end_ms + RETENTION_MS - 1000)["anonymised"] == 0
        assert visitors.housekeeping(now=end_ms + RETENTION_MS + 1000)["anonymised"] == 2
        assert visitors.housekeeping(now=end_ms + RETENTION_MS + 2000)["anonymised"] == 0
    finally:
        engine.dispose()
    after = gw.all_items("/api/v1/visits")
    assert len(after) == len(before) == 2
    assert {v["visitor_name"] for v in after} == {"anonymised"} and {v["company"] for v in after} == {None}
    assert all(v["anonymised"] and v["host"] == "H1" for v in after)
    olga = next(i for i in gw.all_items("/api/v1/visitors/invitations") if i["id"] == first["id"])
    assert (olga["name"], olga["phone"], olga["company"], olga["status"]) == ("anonymised", None, None, "anonymised")
    with sqlite3.connect(gw.workdir / "gateway.db") as db:
        assert db.execute("SELECT credential_value FROM visit WHERE id = ?", (int(first["id"]),)).fetchone() == (None,)
    logged = gw.all_items("/api/v1/audit", target_type="visitor_invitation", target_id=first["id"])
    assert logged and all(a["after"]["name"] == "anonymised" and a["after"]["phone"] is None for a in logged)


def test_the_doors_know_an_open_invitation_before_a_closed_one_with_the_same_pin(engine):
    now = 1_800_000_000_000
    common = {
        "host_person_id": "H1",
        "doors": ["front"],
        "credential_kind": "pin",
        "credential_value": "123456",
        "created_at": now,
        "created_by": "test",
    }
    with Session(engine) as session:
        for i, (start, end, revoked) in enumerate(
            [(-7200, -3600, None), (-60, 3600, None), (-60, 3600, now), (-10 * 86400, -9 * 86400, None)]
        ):
            session.add(
                Visit(
                    id=i + 1,
                    name=f"V{i}",
                    window_start=now + start * 1000,
                    window_end=now + end * 1000,
                    valid_from=now + start * 1000,
                    valid_until=now + end * 1000,
                    revoked_at=revoked,
                    **common,
                )
            )
        session.commit()
    with engine.connect() as conn:
        rows = door_rows(conn, now)
    assert [(r["id"], r["revoked"]) for r in rows] == [("2", False)]  # the expired, revoked and old ones yield
