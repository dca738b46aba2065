"""People, API tokens and the audit log over the wire, plus the pure CSV checks of gateway/people.py."""

from __future__ import annotations

import json

import httpx
import pytest

from gateway.people import rules as people

CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def gw(gateway_factory):
    return gateway_factory("embedded").start()


def as_token(gw, token: str | None, source: str = "127.0.0.1") -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=str(gw.http.base_url), headers=headers, timeout=10, transport=transport)


def audit_log(gw, **filters) -> list[dict]:
    return gw.all_items("/api/v1/audit", **filters)


def test_every_new_endpoint_answers_401_without_a_token_or_with_a_wrong_one(gw):
    endpoints = [
        ("GET", "/api/v1/people"),
        ("POST", "/api/v1/people"),
        ("GET", "/api/v1/people/x"),
        ("PATCH", "/api/v1/people/x"),
        ("DELETE", "/api/v1/people/x"),
        ("POST", "/api/v1/people/import"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        ("GET", "/api/v1/tokens/x"),
        ("DELETE", "/api/v1/tokens/x"),
        ("GET", "/api/v1/audit"),
    ]
    # Each endpoint from its own address: wrong tokens from one address are throttled (429) by design.
    for n, (method, path) in enumerate(endpoints):
        source = f"127.0.4.{n + 1}"
        assert as_token(gw, None, source).request(method, path).status_code == 401, (method, path)
        assert as_token(gw, "gwt_not-a-token", source).request(method, path).status_code == 401, (method, path)


def test_person_round_trip_is_audited(gw):
    body = {
        "id": "alice@hq",
        "name": "Alice",
        "department": "R&D",
        "cards": ["10:01093", "2001"],
        "device_user_ids": {"att-01": "101", "*": "E1001"},
    }
    created = gw.http.post("/api/v1/people", json=body)
    assert created.status_code == 201, created.text
    alice = created.json()
    assert alice["cards"] == ["10:1093", "2001"]  # stored canonical, so "10:01093" and "10:1093" are one card
    assert alice["platform_user_id"] is None and alice["access"] is None
    assert alice["created_at"].endswith("Z") and alice["updated_at"].endswith("Z")
    assert gw.http.get("/api/v1/people/alice@hq").json() == alice
    assert [p["id"] for p in gw.all_items("/api/v1/people")] == ["alice@hq"]

    access = {"doors": ["door-main"], "schedule": "always"}
    patched = gw.http.patch("/api/v1/people/alice@hq", json={"name": "Alice B", "access": access})
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "Alice B" and patched.json()["access"] == access
    assert patched.json()["cards"] == ["10:1093", "2001"]  # fields not given stay as they were
    for field in ("name", "cards", "device_user_ids"):
        response = gw.http.patch("/api/v1/people/alice@hq", json={field: None})
        assert response.status_code == 422 and response.json()["detail"].startswith(field)
    assert gw.http.patch("/api/v1/people/alice@hq", json={"id": "other"}).status_code == 422

    assert gw.http.delete("/api/v1/people/alice@hq").status_code == 204
    assert gw.http.get("/api/v1/people/alice@hq").status_code == 404

    log = audit_log(gw, target_type="person", target_id="alice@hq")
    assert [(e["action"], e["actor"]) for e in log] == [
        ("create", "bootstrap-admin"),
        ("update", "bootstrap-admin"),
        ("delete", "bootstrap-admin"),
    ]
    assert log[0]["before"] is None and log[0]["after"] == alice
    assert log[1]["before"]["name"] == "Alice" and log[1]["after"]["name"] == "Alice B"
    assert log[2]["before"]["name"] == "Alice B" and log[2]["after"] is None
    assert all(e["time"].endswith("Z") for e in log)


def test_unknown_person_is_404_with_a_reason(gw):
    for response in (
        gw.http.get("/api/v1/people/nobody"),
        gw.http.patch("/api/v1/people/nobody", json={"name": "x"}),
        gw.http.delete("/api/v1/people/nobody"),
    ):
        assert response.status_code == 404
        assert response.json()["detail"] == "no person 'nobody'"


def test_duplicate_id_and_card_are_409_and_bad_cards_422_naming_the_card(gw):
    assert (
        gw.http.post("/api/v1/people", json={"id": "alice", "name": "Alice", "cards": ["10:1093"]}).status_code == 201
    )
    duplicate = gw.http.post("/api/v1/people", json={"id": "alice", "name": "Other"})
    assert duplicate.status_code == 409 and "alice" in duplicate.json()["detail"]

    taken = gw.http.post("/api/v1/people", json={"id": "bob", "name": "Bob", "cards": ["2001", "10:01093"]})
    assert taken.status_code == 409
    assert "10:1093" in taken.json()["detail"] and "alice" in taken.json()["detail"]
    assert gw.http.get("/api/v1/people/bob").status_code == 404

    assert gw.http.post("/api/v1/people", json={"id": "bob", "name": "Bob", "cards": ["2001"]}).status_code == 201
    stolen = gw.http.patch("/api/v1/people/bob", json={"cards": ["10:1093"]})
    assert stolen.status_code == 409 and "alice" in stolen.json()["detail"]
    assert gw.http.get("/api/v1/people/bob").json()["cards"] == ["2001"]

    for card in ("10:abc", "70000:1", str(2**40 + 1), "-5", "1:2:3", ""):
        response = gw.http.post("/api/v1/people", json={"id": "carol", "name": "Carol", "cards": ["7", card]})
        assert response.status_code == 422, card
        assert response.json()["detail"].startswith("cards") and repr(card) in response.json()["detail"]
    for body in (
        {"id": "a/b", "name": "x"},
        {"id": "carol", "name": ""},
        {"id": "carol", "name": "x", "pin": 1},
        {"id": "carol", "name": "x", "access": {"doors": ["*", "door-main"], "schedule": "always"}},
    ):
        assert gw.http.post("/api/v1/people", json=body).status_code == 422, body


GOOD_CSV = """id,name,department,platform_user_id,cards,device_user_ids
alice,Alice Liu,Sales,ding-001,10:1093;2001,att-01=101;*=E1001
bob,Bob,,,3001,
"carol","Carol, Jr.",Ops,,,*=E1003
"""


def test_csv_import_creates_and_updates_in_one_go(gw):
    assert gw.http.post("/api/v1/people", json={"id": "alice", "name": "Alice", "cards": ["4001"]}).status_code == 201
    response = gw.http.post("/api/v1/people/import", content=GOOD_CSV.encode(), headers=CSV)
    assert response.status_code == 200, response.text
    assert response.json() == {"created": 2, "updated": 1}
    alice = gw.http.get("/api/v1/people/alice").json()
    assert alice["name"] == "Alice Liu" and alice["department"] == "Sales" and alice["platform_user_id"] == "ding-001"
    assert alice["cards"] == ["10:1093", "2001"]
    assert alice["device_user_ids"] == {"att-01": "101", "*": "E1001"}
    carol = gw.http.get("/api/v1/people/carol").json()
    assert carol["name"] == "Carol, Jr." and carol["cards"] == [] and carol["platform_user_id"] is None

    # Columns left out of a file leave those fields alone on update.
    again = gw.http.post("/api/v1/people/import", content=b"id,name\nalice,Alice L\n", headers=CSV)
    assert again.json() == {"created": 0, "updated": 1}
    assert gw.http.get("/api/v1/people/alice").json()["cards"] == ["10:1093", "2001"]

    log = audit_log(gw, action="import")
    assert {(e["target_id"], e["before"] is None) for e in log} >= {("alice", False), ("bob", True), ("carol", True)}
    first = next(e for e in log if e["target_id"] == "alice")
    assert first["before"]["cards"] == ["4001"] and first["after"]["cards"] == ["10:1093", "2001"]


def test_csv_with_one_bad_row_stores_nothing(gw):
    text = "id,name,cards\nalice,Alice,10:1093\nbob,Bob,10:x\ncarol,Carol,7\n\nbad/id,Dan,8\n"
    response = gw.http.post("/api/v1/people/import", content=text.encode(), headers=CSV)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["errors"] == [
        {"row": 3, "field": "cards", "message": answer["errors"][0]["message"]},
        {"row": 6, "field": "id", "message": answer["errors"][1]["message"]},
    ]
    assert answer["detail"].startswith("row 3, cards: ") and "row 6, id: " in answer["detail"]
    assert "10:x" in answer["detail"]
    assert gw.all_items("/api/v1/people") == []
    assert audit_log(gw, target_type="person") == []


def test_csv_duplicates_within_the_file_and_clashes_with_stored_people(gw):
    twice = gw.http.post("/api/v1/people/import", content=b"id,name\nalice,A\nbob,B\nalice,A2\n", headers=CSV)
    assert twice.status_code == 422
    assert twice.json()["errors"][0]["row"] == 4 and twice.json()["errors"][0]["field"] == "id"
    shared = gw.http.post("/api/v1/people/import", content=b"id,name,cards\nalice,A,5\nbob,B,0005\n", headers=CSV)
    assert shared.status_code == 422 and shared.json()["errors"][0]["row"] == 3
    assert gw.all_items("/api/v1/people") == []

    assert gw.http.post("/api/v1/people", json={"id": "zed", "name": "Zed", "cards": ["9"]}).status_code == 201
    clash = gw.http.post("/api/v1/people/import", content=b"id,name,cards\nalice,A,1\nbob,B,9\n", headers=CSV)
    assert clash.status_code == 409 and "'9'" in clash.json()["detail"] and "zed" in clash.json()["detail"]
    assert [p["id"] for p in gw.all_items("/api/v1/people")] == ["zed"]


def test_csv_files_that_cannot_be_read_are_rejected_with_a_reason(gw):
    def post(body: bytes, headers: dict = CSV) -> httpx.Response:
        return gw.http.post("/api/v1/people/import", content=body, headers=headers)

    unknown = post(b"id,name,badge,pin\nalice,A,1,2\n")
    assert unknown.status_code == 422 and "badge" in unknown.json()["detail"] and "pin" in unknown.json()["detail"]
    assert post(b"").status_code == 422 and "empty" in post(b"").json()["detail"]
    assert "UTF-8" in post("id,name\nalice,Zoë\n".encode("latin-1")).json()["detail"]
    assert post(b"name\nAlice\n").status_code == 422
    assert post(b'{"id": "a"}', {"Content-Type": "application/json"}).status_code == 415
    assert post(b"id,name\n" + b"x" * (10 * 1024 * 1024)).status_code == 413
    bom = post("\ufeffid,name\nzoe,Zoë\n".encode())  # Excel's "CSV UTF-8" starts with a BOM
    assert bom.status_code == 200 and gw.http.get("/api/v1/people/zoe").json()["name"] == "Zoë"


def test_tokens_roles_revocation_and_no_secret_anywhere(gw):
    made = {}
    for role in ("admin", "installer", "operator", "auditor"):
        response = gw.http.post("/api/v1/tokens", json={"name": f"{role}-bot", "role": role})
        assert response.status_code == 201, response.text
        made[role] = response.json()
        assert made[role]["token"].startswith("gwt_") and made[role]["revoked_at"] is None
        assert made[role]["created_at"].endswith("Z")
    assert gw.http.post("/api/v1/tokens", json={"name": "x", "role": "janitor"}).status_code == 422
    client = {role: as_token(gw, m["token"]) for role, m in made.items()}

    assert client["admin"].post("/api/v1/people", json={"id": "amy", "name": "Amy"}).status_code == 201
    for role in ("installer", "operator", "auditor"):
        assert client[role].get("/api/v1/people").status_code == 200
        assert client[role].get("/api/v1/people/amy").json()["name"] == "Amy"
    assert client["auditor"].post("/api/v1/people", json={"id": "x", "name": "X"}).status_code == 403
    assert client["operator"].patch("/api/v1/people/amy", json={"name": "Y"}).status_code == 403
    assert client["installer"].post("/api/v1/people/import", content=b"id,name\nx,X\n", headers=CSV).status_code == 403
    assert client["operator"].get("/api/v1/audit").status_code == 403
    assert client["installer"].post("/api/v1/tokens", json={"name": "mine", "role": "admin"}).status_code == 403
    assert client["auditor"].get("/api/v1/tokens").status_code == 403
    assert client["auditor"].get("/api/v1/audit").status_code == 200

    listed = gw.all_items("/api/v1/tokens")
    assert {t["role"] for t in listed} == {"admin", "installer", "operator", "auditor"}
    assert all(set(t) == {"id", "name", "role", "created_at", "created_by", "revoked_at"} for t in listed)
    text = json.dumps(listed)
    assert all(m["token"] not in text for m in made.values()) and "hash" not in text

    assert gw.http.delete(f"/api/v1/tokens/{made['operator']['id']}").status_code == 204
    assert client["operator"].get("/api/v1/people").status_code == 401  # at once, not at some later sync
    assert gw.http.get(f"/api/v1/tokens/{made['operator']['id']}").json()["revoked_at"].endswith("Z")
    assert gw.http.delete("/api/v1/tokens/nope").status_code == 404

    log = audit_log(gw)
    created = [e for e in log if e["target_type"] == "token" and e["action"] == "create"]
    assert {e["after"]["role"] for e in created} == {"admin", "installer", "operator", "auditor"}
    revoked = [e for e in log if e["action"] == "revoke"]
    assert len(revoked) == 1 and revoked[0]["target_id"] == made["operator"]["id"]
    assert revoked[0]["before"]["revoked_at"] is None and revoked[0]["after"]["revoked_at"]
    amy = audit_log(gw, actor="token:admin-bot")
    assert [(e["action"], e["target_id"]) for e in amy] == [("create", "amy")]
    everything = client["auditor"].get("/api/v1/audit", params={"limit": 1000}).text
    assert all(m["token"] not in everything for m in made.values()) and "token_hash" not in everything


def test_audit_filters_and_pages(gw):
    for i in range(3):
        assert gw.http.post("/api/v1/people", json={"id": f"p{i}", "name": f"P{i}"}).status_code == 201
    first = gw.http.get("/api/v1/audit", params={"limit": 2}).json()
    assert [e["target_id"] for e in first["items"]] == ["p0", "p1"] and first["next"]
    rest = gw.http.get("/api/v1/audit", params={"limit": 2, "cursor": first["next"]}).json()
    assert [e["target_id"] for e in rest["items"]] == ["p2"] and rest["next"] is None
    assert [e["target_id"] for e in audit_log(gw, target_id="p1")] == ["p1"]
    assert audit_log(gw, actor="someone-else") == []
    assert len(audit_log(gw, since="2000-01-01T00:00:00Z", until="2200-01-01T00:00:00+08:00")) == 3
    assert audit_log(gw, until="2000-01-01T00:00:00Z") == []
    assert gw.http.get("/api/v1/audit", params={"since": "last week"}).status_code == 422


# ---------------------------------------------------------------- the pure checks, without a gateway


def test_cards_are_checked_and_made_canonical():
    assert people.check_cards([" 010:0093 ", "0", "65535:1099511627776"]) == ["10:93", "0", "65535:1099511627776"]
    for bad in ("65536:1", "1:1099511627777", "1:", ":1", "0x14", "1 2", "²"):
        with pytest.raises(ValueError, match="card"):
            people.parse_card(bad)
    with pytest.raises(ValueError, match="twice"):
        people.check_cards(["10:93", "10:093"])


def test_csv_rows_are_numbered_as_a_spreadsheet_shows_them():
    text = 'id,name,cards\n"a","A\nsecond line",1\n\nb,,2;x\n'
    with pytest.raises(people.BadRows) as caught:
        people.parse_csv(text)
    # The quoted line break keeps "a" on row 2 (and is refused in a name); the blank line is row 3.
    assert [(e.row, e.field) for e in caught.value.errors] == [(2, "name"), (4, "name"), (4, "cards")]
    rows = people.parse_csv("ID , Name\nx,X\n")  # header names are trimmed and case-blind
    assert rows[0].id == "x" and rows[0].fields == {"name": "X"}
    with pytest.raises(people.BadFile, match="row 2"):
        people.parse_csv('id,name\n"a,A\nb,B\n')  # an unclosed quote would swallow every row after it


def test_cards_may_move_between_people_named_in_the_same_file():
    rows = people.parse_csv("id,name,cards\na,A,2\nb,B,1\n")
    assert people.import_conflict(rows, {"1": "a", "2": "b"}) is None
    assert people.import_conflict(rows, {"1": "c"})[1:] == ("1", "c")
    keep = people.parse_csv("id,name\na,A\n") + people.parse_csv("id,name,cards\nb,B,1\n")
    assert people.import_conflict(keep, {"1": "a"})[1:] == ("1", "a")  # a keeps its cards: no cards column
