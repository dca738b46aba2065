"""The dashboard in headless Chromium (Playwright), against the gateway as its own process with a real mosquitto.

Chromium is Debian's (`/usr/bin/chromium`, or `CHROMIUM`); Playwright never
downloads a browser here. Without it the tests fail (./scripts/test installs
it). With DASHBOARD_SCREENSHOTS set, the devices and live-feed pages are saved
there as PNGs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TOKEN, Mosquitto, wait_for
from tests.mqtt_helpers import close, publish_all, publisher

CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
WAIT_MS = 15_000


def _unavailable(reason: str) -> None:
    # Like mosquitto or socat elsewhere: a missing part fails the test (./scripts/test installs it).
    pytest.fail(f"{reason}: the dashboard's browser tests need it")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def office(mosquitto: Mosquitto, gateway_factory: Any) -> Any:
    """A gateway with an attendance terminal, a door controller and a host for visitors."""
    gw = gateway_factory(mosquitto.url).start()
    gw.register("att-01")
    gw.register("door-01", kind="access")
    gw.http.post("/api/v1/people", json={"id": "H1", "name": "Hannah Host"}).raise_for_status()
    gw.broker_port = mosquitto.port
    return gw


def url(gw: Any, path: str) -> str:
    return str(gw.http.base_url).rstrip("/") + path


def screenshot(page: Any, name: str) -> None:
    folder = os.environ.get("DASHBOARD_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def sign_in(browser: Any, gw: Any, token: str) -> Any:
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.set_default_timeout(WAIT_MS)
    page.problems = []  # script errors and console errors (a CSP violation is one)
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    page.goto(url(gw, "/login"))
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(url(gw, "/"))
    return page


def publish(gw: Any, messages: list[tuple[str, bytes]], retain: bool = False) -> None:
    client = publisher(gw.broker_port, "dashboard-test-device")
    if retain:
        infos = [client.publish(topic, payload, qos=1, retain=True) for topic, payload in messages]
        wait_for(lambda: all(i.is_published() for i in infos), 10, what="retained PUBACKs")
    else:
        publish_all(client, messages)
    close(client)


def test_a_wrong_token_is_refused(chromium, office):
    page = chromium.new_page()
    page.goto(url(office, "/login"))
    page.fill("#token", "gwt_not-a-token-of-this-gateway")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/login")) as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 401
    assert "not valid" in page.locator("#login-error").inner_text()
    page.goto(url(office, "/"))
    assert page.url.endswith("/login")  # still not signed in
    page.context.close()


def test_admin_sees_devices_online_watches_the_feed_invites_a_visitor_and_signs_out(chromium, office):
    page = sign_in(chromium, office, TOKEN)
    publish(office, [("devices/att-01/status", b"online"), ("devices/door-01/status", b"online")], retain=True)

    def both_online() -> bool:
        page.reload()
        return page.locator('#devices [data-state="online"]').count() == 2

    wait_for(both_online, 20, 0.5, what="both devices online on the devices page")
    assert page.locator("#devices tbody tr").count() == 2
    screenshot(page, "devices")

    page.click("nav >> text=Live feed")
    page.wait_for_selector("#feed-state.online")  # the page has polled at least once
    page.evaluate("window.stillTheSamePage = true")
    publish(
        office,
        [
            (
                "devices/att-01/events",
                b'{"type":"punch","user":"E1001","time":"2026-11-27T08:59:03+08:00",'
                b'"verify":"fingerprint","direction":"in"}',
            )
        ],
    )
    page.locator("#feed li", has_text="E1001 punched in").wait_for()
    assert "E1001" in page.locator("#feed li").first.inner_text()  # newest first
    assert page.evaluate("window.stillTheSamePage") is True  # arrived without a reload
    screenshot(page, "feed")

    page.click("nav >> text=Visitors")
    page.fill("input[name=name]", "Vera Visitor")
    page.select_option("select[name=host]", "H1")
    page.check("input[name=doors][value=door-01]")
    page.click("#invite button[type=submit]")
    page.wait_for_url("**/dashboard/visitors")
    assert "shown this once" in page.locator(".flash-ok").inner_text()
    assert "Vera Visitor" in page.locator("#expected").inner_text()

    assert page.problems == []
    page.click("#sign-out")
    page.wait_for_url("**/login")
    page.goto(url(office, "/dashboard/feed"))
    assert page.url.endswith("/login")
    page.context.close()


def test_an_auditor_sees_no_command_buttons(chromium, office):
    auditor_token = office.http.post("/api/v1/tokens", json={"name": "audit", "role": "auditor"}).json()["token"]
    admin = sign_in(chromium, office, TOKEN)
    admin.goto(url(office, "/dashboard/devices/door-01"))
    assert admin.locator("[data-command]").count() == 2  # open_door and sync_time: the page does draw them
    auditor = sign_in(chromium, office, auditor_token)
    auditor.goto(url(office, "/dashboard/devices/door-01"))
    assert "door-01" in auditor.locator("h1").inner_text()
    assert auditor.locator("[data-command]").count() == 0
    for page, forms in ((admin, 1), (auditor, 0)):  # nor the invitation form: auditors read, they do not invite
        page.click("nav >> text=Visitors")
        assert page.locator("#invite form").count() == forms
    for page in (admin, auditor):
        page.context.close()
