"""Attacks on the admin surface: the API and the dashboard on a real socket, and the command line.

Each attack checks that nothing was stored or changed and that the legitimate caller keeps working.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from openpyxl import load_workbook

from gateway.app import Gateway, build_app
from gateway.attendance import report
from gateway.auth.throttle import Throttle
from gateway.config import Settings
from gateway.store.db import upgrade
from tests.conftest import ROOT, TOKEN, free_port, wait_for

OTHER_HOST = "127.0.0.2"


class Api:
    def __init__(self, gw: Gateway, port: int) -> None:
        self.gw, self.port = gw, port
        self.base_url = f"http://127.0.0.1:{port}"

    def client(self, token: str | None = TOKEN, source: str = "127.0.0.1") -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = httpx.HTTPTransport(local_address=source)
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers=headers, timeout=10, transport=transport)

    def healthy(self) -> bool:
        return self.client().get("/healthz").status_code == 200


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    port = free_port()
    settings = Settings(
        site={"timezone": "Asia/Shanghai"},
        database={"url": f"sqlite:///{tmp_path}/gateway.db"},
        api={"admin_token": TOKEN, "listen": f"127.0.0.1:{port}"},
    )
    gw = Gateway(settings)
    upgrade(gw.engine)
    for part in (gw.registry, gw.liveness, gw.people_index):
        part.load()
    gw.pipeline.start()
    server = uvicorn.Server(
        uvicorn.Config(build_app(gw), host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 10, what="uvicorn to listen")
    yield Api(gw, port)
    server.should_exit = True
    thread.join(5)
    gw.pipeline.stop(1.0)
    gw.engine.dispose()


# -- sign-in throttling ---------------------------------------------------------------------------


def test_wrong_api_tokens_are_throttled_per_address(api: Api) -> None:
    attacker = api.client("gwt_" + "x" * 43)
    answers = [attacker.get("/api/v1/devices").status_code for _ in range(60)]
    assert answers[0] == 401 and answers[-1] == 429
    assert answers.count(401) < 20
    blocked = attacker.get("/api/v1/devices")
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
    # the right token from the same address waits too; from another address it is unaffected
    assert api.client(TOKEN).get("/api/v1/devices").status_code == 429
    assert api.client(TOKEN, OTHER_HOST).get("/api/v1/devices").status_code == 200
    assert api.healthy()


def test_wrong_dashboard_sign_ins_are_throttled_per_address(api: Api) -> None:
    attacker = api.client(None)
    answers = [attacker.post("/login", data={"token": f"guess-{n}"}).status_code for n in range(40)]
    assert answers[0] == 401 and answers[-1] == 429 and answers.count(401) < 20
    refused = attacker.post("/login", data={"token": TOKEN})
    assert refused.status_code == 429 and "set-cookie" not in refused.headers
    assert int(refused.headers["retry-after"]) >= 1
    other = api.client(None, OTHER_HOST).post("/login", data={"token": TOKEN})
    assert other.status_code == 303 and "set-cookie" in other.headers


def test_throttle_backs_off_and_forgets_beyond_its_capacity() -> None:
    now = [1000.0]
    throttle = Throttle(max_failures=3, window_s=60, base_block_s=2, max_block_s=30, capacity=100, clock=lambda: now[0])
    for _ in range(3):
        throttle.failed("a")
    first = throttle.retry_after("a")
    now[0] += first
    assert throttle.retry_after("a") == 0
    for _ in range(3):
        throttle.failed("a")
    assert throttle.retry_after("a") == 2 * first
    for _ in range(20):  # never beyond the cap
        now[0] += 100
        for _ in range(3):
            throttle.failed("a")
    assert throttle.retry_after("a") <= 30
    throttle.succeeded("a")
    assert throttle.retry_after("a") == 0
    for n in range(1000):
        throttle.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(throttle) == 100


# -- admin token strength --------------------------------------------------------------------------


def _gateway_cli(tmp_path: Path, *args: str, config: str = "", env: dict[str, str] | None = None):
    file = tmp_path / "gateway.toml"
    file.write_text(config)
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args, "--config", str(file)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **(env or {})},
    )


def test_run_refuses_a_short_admin_token(tmp_path: Path) -> None:
    config = (
        f'[database]\nurl = "sqlite:///{tmp_path}/g.db"\n[mqtt]\nlisten = "127.0.0.1:{free_port()}"\n'
        f'[api]\nlisten = "127.0.0.1:{free_port()}"\nadmin_token = "short-token-16chr"\n'
    )
    done = _gateway_cli(tmp_path, "run", config=config)
    assert done.returncode == 2 and "api.admin_token" in done.stderr and "24" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "g.db").exists()
    assert len(TOKEN) >= 24


# -- config check --------------------------------------------------------------------------------


def test_config_check_masks_secrets_in_every_url(tmp_path: Path) -> None:
    config = (
        f'[database]\nurl = "sqlite:///{tmp_path}/g.db"\n'
        "[uplink.webhook]\n"
        'url = "https://hookuser:hookpass@hooks.example/in?key=querysecret&x=1&access_token=tok3n"\n'
        "[uplink.dingtalk]\n"
        'base_url = "https://dtuser:dtpass@oapi.example/?secret=s3cret"\n'
    )
    done = _gateway_cli(tmp_path, "config", "check", config=config)
    assert done.returncode == 0, done.stderr
    for secret in ("hookpass", "querysecret", "tok3n", "dtpass", "s3cret"):
        assert secret not in done.stdout + done.stderr
    assert "hooks.example" in done.stdout and "x=1" in done.stdout


def test_database_errors_never_echo_the_password(tmp_path: Path) -> None:
    config = '[database]\nurl = "postgresql+psycopg://dbuser:dbpassword99@127.0.0.1:1/gw"\n'
    done = _gateway_cli(tmp_path, "db", "upgrade", config=config)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "dbpassword99" not in done.stdout + done.stderr
    bad = '[database]\nurl = "nosuchdb://dbuser:dbpassword99@host/x"\n'
    done = _gateway_cli(tmp_path, "db", "upgrade", config=bad)
    assert done.returncode != 0 and "dbpassword99" not in done.stdout + done.stderr


# -- cursors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/devices", "/api/v1/tokens", "/api/v1/audit", "/api/v1/deadletters", "/api/v1/people"]
)
def test_malformed_cursors_answer_422(api: Api, path: str) -> None:
    admin = api.client()
    for raw in (str(10**24), "-1", "1e9", "٣", "9" * 60, "\x00", "x:y"):
        cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
        answer = admin.get(path, params={"cursor": cursor})
        assert answer.status_code in (200, 422), (path, raw, answer.status_code, answer.text)
    assert admin.get(path, params={"cursor": "!!!"}).status_code == 422
    assert api.healthy()


# -- unique token names --------------------------------------------------------------------------


def test_token_names_are_unique(api: Api) -> None:
    admin = api.client()
    assert admin.post("/api/v1/tokens", json={"name": "door-ops", "role": "operator"}).status_code == 201
    again = admin.post("/api/v1/tokens", json={"name": "door-ops", "role": "admin"})
    assert again.status_code == 409
    names = [t["name"] for t in admin.get("/api/v1/tokens").json()["items"]]
    assert names == ["door-ops"]


# -- exports -------------------------------------------------------------------------------------

HOSTILE = ['=HYPERLINK("http://x","y")', "+1+2", "-2+3", "@SUM(1)", "\tcmd", "\rcmd"]


def test_csv_and_xlsx_cells_are_never_formulas(tmp_path: Path) -> None:
    records = [
        {"date": "2026-11-27", "person_id": bad, "name": bad, "department": "-", "worked_minutes": -15}
        for bad in HOSTILE
    ]
    text = report.to_csv(records)
    rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
    for row, bad in zip(rows, HOSTILE):
        assert row[1] == "'" + bad and row[2] == "'" + bad
        assert row[8] == "-15"  # a negative number stays a number
    out = tmp_path / "r.xlsx"
    report.write_xlsx(records, out)
    sheet = load_workbook(out)["2026-11"]
    for cells, bad in zip(sheet.iter_rows(min_row=2, values_only=True), HOSTILE):
        assert cells[1].startswith("'") and cells[1][2:] == bad[1:]  # XML reads a CR back as LF
        assert cells[8] == -15
    for row in sheet.iter_rows(min_row=2):
        assert all(cell.data_type != "f" for cell in row)


# -- request bodies ------------------------------------------------------------------------------


def _raw_post(port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """Sends the headers and `body` (possibly a part of what Content-Length says); the answer's first line."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + body)
        return sock.recv(65536).split(b"\r\n", 1)[0]


def test_bodies_are_refused_before_they_are_read(api: Api) -> None:
    json_type = {"Content-Type": "application/json"}
    # unauthenticated: 401 without waiting for (or parsing) 100 MB
    status = _raw_post(api.port, "/api/v1/devices", {**json_type, "Content-Length": str(100 * 2**20)}, b"[")
    assert b" 401 " in status, status
    # authenticated but too large: 413 without reading it
    auth = {**json_type, "Authorization": f"Bearer {TOKEN}"}
    status = _raw_post(api.port, "/api/v1/devices", {**auth, "Content-Length": str(100 * 2**20)}, b"[")
    assert b" 413 " in status, status
    # chunked without a length: cut off once over the limit
    big = json.dumps({"id": "x" * (2 * 2**20)}).encode()
    answer = api.client().post("/api/v1/devices", content=iter([big]), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    assert api.client().get("/api/v1/devices").json()["items"] == []
    assert (
        api.client()
        .post("/api/v1/devices", json={"id": "ok-1", "kind": "attendance", "protocol": "mqtt-json"})
        .status_code
        == 201
    )
    assert api.healthy()


def test_the_upgrade_renames_tokens_that_share_a_name(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import text

    from gateway.store.db import alembic_config, make_engine

    engine = make_engine(f"sqlite:///{tmp_path}/old.db")
    command.upgrade(alembic_config(engine), "0008")
    with engine.begin() as conn:
        for n, token_id in enumerate(("b2", "a1", "c3")):
            conn.execute(
                text(
                    "INSERT INTO api_token (id, name, role, token_hash, created_at, created_by)"
                    " VALUES (:id, 'ops', 'operator', :hash, :at, 'bootstrap-admin')"
                ),
                {"id": token_id, "hash": token_id * 32, "at": 1000 + n},
            )
    upgrade(engine)
    with engine.connect() as conn:
        names = dict(conn.execute(text("SELECT id, name FROM api_token")).all())
    assert names == {"b2": "ops", "a1": "ops~a1", "c3": "ops~c3"}
    engine.dispose()


def test_the_gateway_refuses_oversized_headers_and_bodies_and_stays_healthy(gateway) -> None:
    port = gateway.api_port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /api/v1/devices HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 64 * 1024 + b"\r\n\r\n")
        first = sock.recv(65536).split(b"\r\n", 1)[0]
    assert first == b"" or b" 4" in first  # refused or closed, never served
    status = _raw_post(port, "/api/v1/devices", {"Content-Length": str(100 * 2**20)}, b"{")
    assert b" 401 " in status
    assert gateway.http.get("/api/v1/devices").json()["items"] == []
    assert gateway.http.get("/healthz").status_code == 200


# -- commands: audited, secrets masked below admin, privilege raises for admins only ---------------

SECRET_USER = {"pin": "7", "name": "Bo", "password": "80417", "card": "99887766"}


def test_commands_are_audited_masked_and_privilege_is_for_admins(api: Api) -> None:
    admin = api.client()
    body = {"id": "zk-1", "kind": "attendance", "protocol": "zk-adms", "config": {"sn": "ZKSN0001"}}
    assert admin.post("/api/v1/devices", json=body).status_code == 201
    tokens = {
        role: admin.post("/api/v1/tokens", json={"name": f"t-{role}", "role": role}).json()["token"]
        for role in ("installer", "operator", "auditor")
    }
    installer = api.client(tokens["installer"])
    for privilege in ("14", 14, "6", "2"):
        refused = installer.post(
            "/api/v1/devices/zk-1/commands", json={"name": "sync_user", "args": {**SECRET_USER, "privilege": privilege}}
        )
        assert refused.status_code == 403, refused.text
    assert admin.get("/api/v1/devices/zk-1/commands").json()["items"] == []
    plain = installer.post("/api/v1/devices/zk-1/commands", json={"name": "sync_user", "args": SECRET_USER})
    assert plain.status_code == 202 and plain.json()["args"]["password"] == "***"
    raised = admin.post(
        "/api/v1/devices/zk-1/commands", json={"name": "sync_user", "args": {**SECRET_USER, "privilege": "14"}}
    )
    assert raised.status_code == 202 and raised.json()["args"]["password"] == "80417"
    # the audit log has both, secrets masked
    entries = [e for e in admin.get("/api/v1/audit").json()["items"] if e["target_type"] == "command"]
    assert {e["target_id"] for e in entries} == {plain.json()["id"], raised.json()["id"]}
    assert {e["actor"] for e in entries} == {"token:t-installer", "bootstrap-admin"}
    text = json.dumps(entries)
    assert "80417" not in text and "99887766" not in text and '"privilege": "14"' in text
    # views below admin mask the same secrets; admins see them
    for role in ("installer", "operator", "auditor"):
        viewer = api.client(tokens[role])
        listed = viewer.get("/api/v1/devices/zk-1/commands").json()["items"]
        one = viewer.get(f"/api/v1/devices/zk-1/commands/{raised.json()['id']}").json()
        assert "80417" not in json.dumps(listed) + json.dumps(one) and "99887766" not in json.dumps(one)
    assert admin.get(f"/api/v1/devices/zk-1/commands/{raised.json()['id']}").json()["args"]["card"] == "99887766"
    page = api.client(None, OTHER_HOST)
    assert page.post("/login", data={"token": tokens["auditor"]}).status_code == 303
    html = page.get("/dashboard/devices/zk-1").text
    assert "zk-1" in html and "80417" not in html and "99887766" not in html
