"""The demo office in a real browser: `gateway demo` as its own process, the dashboard in headless Chromium.

While the demo runs: sign in, the devices it simulates are online, the live feed moves by itself, a visitor
invited through the form is expected. Then the demo stops and the gateway runs on the same database with
nothing live: every page still renders, without script errors, and a van's track has one vertex per fix.
With DASHBOARD_SCREENSHOTS set the pages are saved there (the README's pictures come from this test).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.browser.test_dashboard_pages import chromium, screenshot, sign_in  # noqa: F401 - the fixture is used by name
from tests.conftest import ROOT, free_port, wait_for

TOKEN = "demo-browser-token-0123456789"
PAGES = [
    "/",
    "/dashboard/feed",
    "/dashboard/attendance",
    "/dashboard/visitors",
    "/dashboard/vehicles",
    "/dashboard/vehicles/van-1",
    "/dashboard/uplink",
    "/dashboard/health",
]


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.api = free_port()
        self.base = f"http://127.0.0.1:{self.api}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        self.env.update(
            PYTHONPATH=str(ROOT),
            GATEWAY_API__LISTEN=f"127.0.0.1:{self.api}",
            GATEWAY_API__ADMIN_TOKEN=TOKEN,
            GATEWAY_MQTT__LISTEN=f"127.0.0.1:{free_port()}",
            GATEWAY_DATABASE__URL=f"sqlite:///{workdir}/demo.db",
        )
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.api}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        self.proc: subprocess.Popen | None = None

    def start(self, *args: str) -> Demo:
        log = open(self.workdir / f"{args[0]}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._ready, 60, 0.2, what=f"gateway {args[0]} to answer /healthz")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, "the gateway exited"
        try:
            return self.http.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)

    def items(self, path: str, **params: object) -> list[dict]:
        out, cursor = [], None
        while True:
            page = self.http.get(path, params={**params, "limit": 1000, **({"cursor": cursor} if cursor else {})})
            page.raise_for_status()
            out += page.json()["items"]
            cursor = page.json()["next"]
            if not cursor:
                return out


@pytest.fixture
def demo(tmp_path):
    office = Demo(tmp_path)
    yield office
    office.stop()
    office.http.close()


def test_the_demo_office_in_the_dashboard_live_and_then_stopped(chromium, demo):  # noqa: F811
    demo.start("demo", "--rate", "2")
    simulated = {
        "att-json-01",
        "att-attlog-01",
        "zk-lobby",
        "reader-front",
        "reader-lab",
        "gps-van-1",
        "gps-van-2",
        "gps-car-3",
    }
    wait_for(
        lambda: simulated <= {d["id"] for d in demo.items("/api/v1/devices") if d["online"]},
        60,
        0.5,
        what="every simulated device online",
    )

    page = sign_in(chromium, demo, TOKEN)
    online = page.locator('#devices [data-state="online"]')
    assert page.locator("#devices tbody tr").count() == len(demo.items("/api/v1/devices"))
    assert online.count() >= len(simulated)
    screenshot(page, "devices")

    page.click("nav >> text=Live feed")
    page.wait_for_selector("#feed li")
    first = page.locator("#feed li").first.inner_text()
    page.evaluate("window.stillTheSamePage = true")
    wait_for(lambda: page.locator("#feed li").first.inner_text() != first, 20, 0.3, what="a new event in the feed")
    assert page.evaluate("window.stillTheSamePage") is True
    screenshot(page, "feed")

    page.click("nav >> text=Visitors")
    page.fill("input[name=name]", "Grace Guest")
    page.select_option("select[name=host]", "E1000")
    page.check("input[name=doors][value=front]")
    page.click("#invite button[type=submit]")
    page.wait_for_url("**/dashboard/visitors")
    assert "Grace Guest" in page.locator("#expected").inner_text()
    screenshot(page, "visitors")
    wait_for(
        lambda: any(t["complete"] for t in demo.items("/api/v1/vehicles/van-1/trips")),
        120,
        1.0,
        what="the van's first trip, ended at its stop",
    )
    page.goto(f"{demo.base}/dashboard/vehicles/van-1")
    screenshot(page, "vehicle")
    assert page.problems == []
    page.click("#sign-out")
    page.wait_for_url("**/login")
    page.context.close()

    demo.stop()  # nothing live from here on: the same database under `gateway run`
    demo.start("run")
    page = sign_in(chromium, demo, TOKEN)
    for path in PAGES:
        answer = page.goto(f"{demo.base}{path}")
        assert answer is not None and answer.status == 200, path
    fixes = [f for f in demo.items("/api/v1/vehicles/van-1/fixes") if f["valid"]]
    days = Counter(f["local_time"][:10] for f in fixes)
    day, count = days.most_common(1)[0]
    page.goto(f"{demo.base}/dashboard/vehicles/van-1?day={day}")
    vertices = page.locator("#track-line").get_attribute("points").split()
    assert len(vertices) == count
    assert page.problems == []
    page.context.close()
