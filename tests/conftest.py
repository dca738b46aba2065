"""Shared parts for the tests: a migrated store, a real mosquitto broker, the gateway as its own process.

Tests that run processes, brokers, serial ptys or a browser are marked `system` (by folder:
tests/system/ and tests/browser/, or by the fixtures they use), so `pytest -m "not system"`
runs the fast half: codecs, sessions, rules and services on a real SQLite file.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from gateway.store.db import make_engine, upgrade

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "test-admin-token-0123456789abcdef"
SYSTEM_FOLDERS = ("system", "browser")
SYSTEM_FIXTURES = frozenset({"gateway_factory", "mosquitto", "secured_mosquitto", "secured", "chromium"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.path)).relative_to(ROOT / "tests").parts[0]
        if folder in SYSTEM_FOLDERS or SYSTEM_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.system)
        if folder == "browser":
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite store in the test's own folder, migrated to the newest schema (tmp_path / "gw.db")."""
    store = make_engine(f"sqlite:///{tmp_path}/gw.db")
    upgrade(store)
    yield store
    store.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Any, timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Mosquitto:
    """A real mosquitto on a loopback port, with persistence so a restart keeps queued messages.

    `user` is the test's own: started as root, mosquitto would otherwise switch
    to the `mosquitto` user and fail to write its persistence file here.
    """

    def __init__(self, workdir: Path, dynsec_admin: tuple[str, str] | None = None) -> None:
        binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        if binary is None:
            pytest.fail("mosquitto is not installed (apt-get install mosquitto); these tests need a real broker")
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            textwrap.dedent(f"""\
            listener {self.port} 127.0.0.1
            user {getpass.getuser()}
            allow_anonymous true
            persistence true
            persistence_location {workdir}/
            autosave_interval 1
            max_queued_messages 1000000
            max_queued_bytes 0
            max_inflight_messages 4000
            log_dest file {workdir}/mosquitto.log
            """)
        )
        if dynsec_admin is not None:
            self._enable_dynsec(*dynsec_admin)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def _enable_dynsec(self, username: str, password: str) -> None:
        """mosquitto's dynamic security plugin, with `username` as its admin (what `mosquitto_ctrl dynsec init` makes)."""
        plugins = sorted(Path("/usr/lib").glob("*/mosquitto_dynamic_security.so")) + sorted(
            Path("/usr/lib").glob("mosquitto_dynamic_security.so")
        )
        if not plugins:
            pytest.fail("mosquitto's dynamic security plugin is missing (Debian package mosquitto >= 2.0)")
        salt = os.urandom(12)
        digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
        admin_acls = [
            {"acltype": t, "topic": topic, "allow": True}
            for t, topic in (
                ("publishClientSend", "$CONTROL/dynamic-security/#"),
                ("publishClientReceive", "$CONTROL/dynamic-security/#"),
                ("subscribePattern", "$CONTROL/dynamic-security/#"),
                ("publishClientReceive", "#"),
                ("subscribePattern", "#"),
                ("unsubscribePattern", "#"),
            )
        ]
        (self.workdir / "dynsec.json").write_text(
            json.dumps(
                {
                    "clients": [
                        {
                            "username": username,
                            "password": base64.b64encode(digest).decode(),
                            "salt": base64.b64encode(salt).decode(),
                            "iterations": 101,
                            "roles": [{"rolename": "admin"}],
                        }
                    ],
                    "roles": [{"rolename": "admin", "acls": admin_acls}],
                    "defaultACLAccess": {
                        "publishClientSend": False,
                        "publishClientReceive": True,
                        "subscribe": False,
                        "unsubscribe": True,
                    },
                }
            )
        )
        conf = self.conf.read_text().replace("allow_anonymous true\n", "allow_anonymous false\n")
        self.conf.write_text(conf + f"plugin {plugins[0]}\nplugin_opt_config_file {self.workdir}/dynsec.json\n")

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(lambda: _port_open(self.port), 10, what="mosquitto to listen")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: mosquitto saves its persistence file
            self.proc.wait(10)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    broker = Mosquitto(broker_dir)
    yield broker
    broker.stop()


class GatewayProcess:
    """`python -m gateway run` in its own process, driven through its config, MQTT and HTTP."""

    def __init__(self, workdir: Path, broker: str, extra: str = "", mqtt_extra: str | None = None) -> None:
        if mqtt_extra is None:  # an external broker without login management unless a test asks for it
            mqtt_extra = "" if broker == "embedded" else 'device_auth = "off"'
        self.workdir = workdir
        self.api_port = free_port()
        self.mqtt_port = free_port()
        self.config = workdir / "gateway.toml"
        self.config.write_text(
            "\n".join(
                [
                    "[site]",
                    'timezone = "Asia/Shanghai"',
                    "[database]",
                    f'url = "sqlite:///{workdir}/gateway.db"',
                    "[mqtt]",
                    f'broker = "{broker}"',
                    f'listen = "127.0.0.1:{self.mqtt_port}"',
                    'client_id = "gateway-test"',
                    mqtt_extra,
                    "[api]",
                    f'listen = "127.0.0.1:{self.api_port}"',
                    f'admin_token = "{TOKEN}"',
                    extra,
                ]
            )
            + "\n"
        )
        self.log = workdir / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.api_port}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )

    def start(self, timeout: float = 30) -> GatewayProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "run", "--config", str(self.config)],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._ready, timeout, 0.1, what=f"gateway /healthz (log: {self.log})")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"gateway exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        try:
            return self.http.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 10) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout)

    def register(self, device_id: str, protocol: str = "mqtt-json", kind: str = "attendance", **extra: Any) -> dict:
        response = self.http.post(
            "/api/v1/devices", json={"id": device_id, "kind": kind, "protocol": protocol, **extra}
        )
        assert response.status_code == 201, response.text
        return response.json()

    def all_items(self, path: str, **params: Any) -> list[dict]:
        items, cursor = [], None
        while True:
            query = {"limit": 1000, **params, **({"cursor": cursor} if cursor else {})}
            body = self.http.get(path, params=query).raise_for_status().json()
            items += body["items"]
            cursor = body["next"]
            if not cursor:
                return items

    def metric(self, name: str, **labels: str) -> float:
        text = self.http.get("/metrics").text
        want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
        for line in text.splitlines():
            if line.startswith(want + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.http.close()


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[GatewayProcess] = []

    def make(broker: str, extra: str = "", mqtt_extra: str | None = None) -> GatewayProcess:
        workdir = tmp_path / f"gw{len(made)}"
        workdir.mkdir()
        gw = GatewayProcess(workdir, broker, extra, mqtt_extra)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.close()


BROKER_ADMIN = ("gateway", "gateway-broker-password")


@pytest.fixture
def secured_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """mosquitto with the dynamic security plugin; the gateway's login is its admin."""
    broker_dir = tmp_path / "secured-broker"
    broker_dir.mkdir()
    broker = Mosquitto(broker_dir, dynsec_admin=BROKER_ADMIN)
    yield broker
    broker.stop()


def dynsec_mqtt_settings() -> str:
    return f'device_auth = "dynsec"\nusername = "{BROKER_ADMIN[0]}"\npassword = "{BROKER_ADMIN[1]}"'


@pytest.fixture(params=["mosquitto-dynsec", "embedded"])
def secured(request: Any, gateway_factory: Any) -> tuple[GatewayProcess, int]:
    """(gateway, MQTT port) with device logins enforced: mosquitto's dynamic security plugin, or the
    embedded broker's own check."""
    if request.param == "embedded":
        gw = gateway_factory("embedded").start()
        return gw, gw.mqtt_port
    broker = request.getfixturevalue("secured_mosquitto")
    return gateway_factory(broker.url, mqtt_extra=dynsec_mqtt_settings()).start(), broker.port


@pytest.fixture
def gateway(mosquitto: Mosquitto, gateway_factory: Any) -> GatewayProcess:
    return gateway_factory(mosquitto.url).start()
