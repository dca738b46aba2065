"""The command line: bad config names the key and exits 2; secrets are never printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def gateway_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    full_env.update(PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60
    )


def test_config_check_with_no_file_prints_the_defaults(tmp_path):
    result = gateway_cli("config", "check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert '"broker": "embedded"' in result.stdout
    assert '"url": "sqlite:///data/gateway.db"' in result.stdout


def test_config_check_masks_secrets(tmp_path):
    (tmp_path / "gateway.toml").write_text(
        '[api]\nadmin_token = "very-secret-token"\n[mqtt]\npassword = "mqtt-pass"\n'
        '[database]\nurl = "postgresql+psycopg://gw:db-pass@127.0.0.1/gw"\n'
        '[uplink.dingtalk]\napp_secret = "ding-secret"\n'
    )
    result = gateway_cli("config", "check", cwd=tmp_path, env={"GATEWAY_UPLINK__WEBHOOK__SECRET": "hook-secret"})
    assert result.returncode == 0, result.stderr
    for secret in ("very-secret-token", "mqtt-pass", "db-pass", "ding-secret", "hook-secret"):
        assert secret not in result.stdout + result.stderr
    assert result.stdout.count("********") == 5
    assert "postgresql+psycopg://gw:********@127.0.0.1/gw" in result.stdout


def test_bad_value_in_the_file_exits_2_naming_the_key(tmp_path):
    (tmp_path / "gateway.toml").write_text('[mqtt]\nbroker = "amqp://somewhere"\n')
    result = gateway_cli("config", "check", cwd=tmp_path)
    assert result.returncode == 2
    assert "mqtt.broker" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_value_from_the_environment_exits_2_naming_the_key(tmp_path):
    result = gateway_cli("config", "check", cwd=tmp_path, env={"GATEWAY_API__LISTEN": "nowhere"})
    assert result.returncode == 2
    assert "api.listen" in result.stderr and "host:port" in result.stderr


def test_environment_overrides_the_file(tmp_path):
    (tmp_path / "gateway.toml").write_text('[site]\nid = "from-file"\n')
    result = gateway_cli("config", "check", cwd=tmp_path, env={"GATEWAY_SITE__ID": "from-env"})
    assert result.returncode == 0
    assert '"id": "from-env"' in result.stdout


def test_unknown_key_and_unknown_zone_are_named(tmp_path):
    (tmp_path / "gateway.toml").write_text('[site]\ntimezon = "UTC"\n')
    result = gateway_cli("config", "check", cwd=tmp_path)
    assert result.returncode == 2 and "site.timezon" in result.stderr and "unknown key" in result.stderr
    (tmp_path / "gateway.toml").write_text('[site]\ntimezone = "Mars/Olympus"\n')
    result = gateway_cli("config", "check", cwd=tmp_path)
    assert result.returncode == 2 and "site.timezone" in result.stderr and "Mars/Olympus" in result.stderr


def test_broken_toml_and_missing_file_exit_2(tmp_path):
    (tmp_path / "gateway.toml").write_text("[site\n")
    assert gateway_cli("config", "check", cwd=tmp_path).returncode == 2
    result = gateway_cli("config", "check", "--config", "nope.toml", cwd=tmp_path)
    assert result.returncode == 2 and "file not found" in result.stderr


def test_run_refuses_to_start_without_an_admin_token(tmp_path):
    result = gateway_cli("run", cwd=tmp_path)
    assert result.returncode == 2
    assert "api.admin_token" in result.stderr


def test_db_upgrade_creates_the_schema(tmp_path):
    result = gateway_cli("db", "upgrade", cwd=tmp_path, env={"GATEWAY_DATABASE__URL": f"sqlite:///{tmp_path}/x/gw.db"})
    assert result.returncode == 0, result.stderr
    import sqlite3

    with sqlite3.connect(tmp_path / "x" / "gw.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"device", "journal", "dead_letter", "punch", "access_event", "fix", "device_status"} <= tables


def test_demo_runs_and_stores_punches_from_its_simulated_terminals(tmp_path):
    from tests.conftest import free_port

    env = {
        "GATEWAY_MQTT__LISTEN": f"127.0.0.1:{free_port()}",
        "GATEWAY_API__LISTEN": f"127.0.0.1:{free_port()}",
        "GATEWAY_DATABASE__URL": f"sqlite:///{tmp_path}/demo.db",
    }
    result = gateway_cli("demo", "--seconds", "10", "--rate", "10", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Admin token:" in result.stdout
    import sqlite3

    with sqlite3.connect(tmp_path / "demo.db") as db:
        sources = dict(db.execute("SELECT source, count(*) FROM punch GROUP BY source").fetchall())
    assert sources.get("mqtt-json", 0) > 5 and sources.get("attlog", 0) > 5 and sources.get("zk-adms", 0) >= 5
    with sqlite3.connect(tmp_path / "demo.db") as db:
        unmapped = db.execute("SELECT count(*) FROM punch WHERE person_id IS NULL").fetchone()[0]
        doors = set(
            db.execute(
                "SELECT reason, person_id IS NOT NULL, visitor_id IS NOT NULL FROM access_event WHERE source = 'osdp'"
            ).fetchall()
        )
    assert unmapped == 0, "every demo punch belongs to a demo person"
    # The doors' readers (libosdp PDs on pty links) presented an employee's card, an unknown one and the visitor's.
    assert {("granted", 1, 0), ("unknown_credential", 0, 0), ("granted", 0, 1)} <= doors


def test_the_example_config_lists_every_key_and_loads():
    import tomllib

    from gateway.config import Settings

    example = tomllib.loads((ROOT / "gateway.example.toml").read_text())
    Settings(**example)  # every value in it is valid

    def keys(node: dict, prefix: str = "") -> set[str]:
        out = set()
        for name, value in node.items():
            path = f"{prefix}{name}"
            out |= keys(value, path + ".") if isinstance(value, dict) and name not in ("door_groups",) else {path}
        return out

    defaults = Settings().model_dump(mode="json")
    defaults.pop("serial")  # a list of tables, shown commented out
    assert keys(defaults) == keys(example)
