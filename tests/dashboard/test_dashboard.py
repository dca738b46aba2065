"""The dashboard over HTTP, without a browser: sessions, CSRF, roles, every page, the feed, the track drawing.

The gateway here is the real Gateway object and app, served by uvicorn on a
loopback socket in this process (so fake vehicles and uplink services can be
attached to it) and driven with httpx, which keeps the session cookie as a
browser does. Nothing starts the transports: records enter through the ingest
queue, as a transport would put them there.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn

from gateway.app import Gateway, build_app
from gateway.config import Settings
from gateway.dashboard import auth, queries, track
from gateway.dashboard.figures import RateMeter
from gateway.pipeline.queue import Inbound
from gateway.store.db import upgrade
from tests.api.test_roles import ROLE_TABLE
from tests.conftest import TOKEN, free_port, wait_for

ZONE = ZoneInfo("Asia/Shanghai")
PAGES = [
    "/",
    "/dashboard/feed",
    "/dashboard/attendance",
    "/dashboard/visitors",
    "/dashboard/vehicles",
    "/dashboard/uplink",
    "/dashboard/health",
]
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class FakeVehicles:
    """Stands in for services.vehicles, which is being built elsewhere: only the interface the dashboard uses."""

    def __init__(self, points: list[list[float]]) -> None:
        self.points, self.asked = points, []

    def overview(self) -> list[dict[str, Any]]:
        return [
            {
                "id": "van-1",
                "plate": "沪A·12345",
                "device_id": "gps-01",
                "driver": "Dana Driver",
                "last_fix": {"time_ms": int(self.points[-1][0]), "lat": 31.23, "lon": 121.47, "speed_kmh": 30.0},
            }
        ]

    def track(self, vehicle_id: str, since_ms: int, until_ms: int) -> dict[str, Any]:
        if vehicle_id != "van-1":
            raise KeyError(vehicle_id)
        self.asked.append((since_ms, until_ms))
        trips = [
            {
                "id": "t1",
                "start_ms": since_ms,
                "end_ms": since_ms + 3_600_000,
                "distance_km": 12.5,
                "booking_id": None,
                "flags": ["no_booking"],
            }
        ]
        return {"points": self.points, "trips": trips}


class FakeUplink:
    """Stands in for services.uplink (not built yet): two sinks' status, parked records, retry."""

    def __init__(self) -> None:
        self.retried: list[int] = []

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "sink": "webhook",
                "backlog": 3,
                "delivered": 40,
                "parked": 1,
                "failed": 2,
                "last_error": "HTTP 502",
                "rate": 1.5,
            }
        ]

    def parked(self, limit: int) -> list[dict[str, Any]]:
        return [
            {
                "id": 7,
                "sink": "webhook",
                "record_type": "visit",
                "reason": "rejected: 400",
                "time_ms": 1_795_000_000_000,
            }
        ]

    def retry(self, parked_id: int) -> bool:
        self.retried.append(parked_id)
        return parked_id == 7


class Site:
    def __init__(self, gw: Gateway, base_url: str) -> None:
        self.gw, self.base_url = gw, base_url
        self.api = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)

    def browser(self, token: str | None = TOKEN) -> httpx.Client:
        """A client holding a session cookie (signed in with `token`), or none (token None)."""
        client = httpx.Client(base_url=self.base_url, timeout=10, follow_redirects=False)
        if token is not None:
            assert client.post("/login", data={"token": token}).status_code == 303
        return client

    def token(self, role: str) -> str:
        return self.api.post("/api/v1/tokens", json={"name": role, "role": role}).raise_for_status().json()["token"]

    def register(self, device_id: str, kind: str = "attendance") -> None:
        body = {"id": device_id, "kind": kind, "protocol": "mqtt-json"}
        assert self.api.post("/api/v1/devices", json=body).status_code == 201

    def publish(self, device_id: str, channel: str, payload: bytes) -> None:
        self.gw.queue.put(Inbound("mqtt", f"devices/{device_id}/{channel}", payload))


@pytest.fixture
def site(tmp_path) -> Iterator[Site]:
    port = free_port()
    settings = Settings(
        site={"timezone": str(ZONE)},
        database={"url": f"sqlite:///{tmp_path}/gateway.db"},
        api={"admin_token": TOKEN, "listen": f"127.0.0.1:{port}"},
    )
    gw = Gateway(settings)
    upgrade(gw.engine)
    for part in (gw.registry, gw.liveness, gw.people_index):
        part.load()
    gw.access.reload()
    gw.pipeline.start()
    server = uvicorn.Server(
        uvicorn.Config(build_app(gw), host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 10, what="uvicorn to listen")
    yield Site(gw, f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(5)
    gw.pipeline.stop(1.0)
    gw.engine.dispose()


def csrf_of(client: httpx.Client, page: str) -> str:
    response = client.get(page)
    assert response.status_code == 200, response.text
    return CSRF.search(response.text)[1]


def test_without_a_session_only_the_login_page_answers(site):
    anonymous = site.browser(None)
    assert 'name="token"' in anonymous.get("/login").text
    for page in [*PAGES, "/dashboard/devices/x", "/dashboard/attendance/p-1", "/dashboard/vehicles/van-1"]:
        response = anonymous.get(page)
        assert response.status_code == 303 and response.headers["location"] == "/login", page
    assert anonymous.get("/dashboard/feed.json").status_code == 401
    assert anonymous.post("/dashboard/devices/x/commands", data={"command": "open_door"}).status_code == 303


def test_a_wrong_token_gets_the_login_page_again_with_401_and_no_cookie(site):
    client = site.browser(None)
    for wrong in ("not-a-token", "gwt_" + "x" * 43, ""):
        response = client.post("/login", data={"token": wrong})
        assert response.status_code == 401 and 'id="login-error"' in response.text
        assert "set-cookie" not in response.headers
    assert client.get("/").status_code == 303


def test_signing_in_sets_an_httponly_strict_cookie_that_is_not_the_token(site):
    token = site.token("auditor")
    response = site.browser(None).post("/login", data={"token": token})
    cookie = response.headers["set-cookie"]
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert token not in cookie and TOKEN not in cookie
    signed_in = site.browser(token)
    assert signed_in.get("/").status_code == 200
    assert "token:auditor · auditor" in signed_in.get("/").text


def test_every_page_renders_its_empty_state_when_nothing_is_live(site):
    admin = site.browser()
    assert 'id="no-vehicles"' in admin.get("/dashboard/vehicles").text  # the real services, still empty
    assert "No sink is enabled" in admin.get("/dashboard/uplink").text
    site.gw.vehicles = site.gw.uplink = None  # not part of the gateway
    texts = {page: admin.get(page) for page in PAGES}
    assert all(r.status_code == 200 for r in texts.values()), {p: r.status_code for p, r in texts.items()}
    assert 'id="no-devices"' in texts["/"].text
    assert "Nothing has arrived yet" in texts["/dashboard/feed"].text
    assert 'id="no-attendance"' in texts["/dashboard/attendance"].text
    assert "No visitor is on site" in texts["/dashboard/visitors"].text
    for page in ("/dashboard/vehicles", "/dashboard/uplink"):
        assert 'data-panel="not-configured"' in texts[page].text
    assert "No dead letters since the gateway started" in texts["/dashboard/health"].text
    assert admin.get("/dashboard/feed.json").json()["items"] == []


def test_devices_feed_and_health_show_what_arrived(site):
    site.register("att-01")
    site.register("door-01", kind="access")
    admin = site.browser()
    cursor = admin.get("/dashboard/feed.json").json()["cursor"]
    site.publish("att-01", "status", b"online")
    site.publish("att-01", "events", b'{"type":"punch","user":"E1001","time":"2026-11-27T08:59:03+08:00"}')
    site.publish("ghost-9", "events", b"{}")  # an unregistered device: a dead letter
    wait_for(lambda: "E1001" in admin.get("/dashboard/feed").text, 10, what="the punch in the feed")
    new = admin.get("/dashboard/feed.json", params={"after": cursor}).json()
    punches = [i["summary"] for i in new["items"] if i["kind"] == "punch"]
    assert len(punches) == 1 and punches[0].startswith("E1001 punched")
    again = admin.get("/dashboard/feed.json", params={"after": new["cursor"]}).json()["items"]
    assert not [i for i in again if i["kind"] == "punch"]  # each record is sent once

    def att_01_row() -> str:
        return re.search(r'<tr data-device="att-01">.*?</tr>', admin.get("/").text, re.S)[0]

    wait_for(lambda: 'data-state="online"' in att_01_row(), 10, what="att-01 online on the devices page")
    assert 'data-state="unknown"' in re.search(r'<tr data-device="door-01">.*?</tr>', admin.get("/").text, re.S)[0]
    health = admin.get("/dashboard/health.json").json()
    assert health["deadletters"].get("unknown_device") == 1 and health["stored"]["punch"] == 1
    assert "unknown_device" in admin.get("/dashboard/health").text
    device = admin.get("/dashboard/devices/att-01").text
    assert "E1001 punched" in device and 'data-command="sync_time"' in device
    assert admin.get("/dashboard/devices/nope").status_code == 404


def test_command_buttons_follow_the_roles_and_queue_through_the_api(site):
    site.register("door-01", kind="access")
    buttons = {}
    for role in ("admin", "installer", "operator", "auditor"):
        client = site.browser(TOKEN if role == "admin" else site.token(role))
        buttons[role] = set(re.findall(r'data-command="(\w+)"', client.get("/dashboard/devices/door-01").text))
    assert buttons == {
        "admin": {"open_door", "sync_time"},
        "installer": {"open_door", "sync_time"},
        "operator": {"open_door"},
        "auditor": set(),
    }
    admin = site.browser()
    response = admin.post(
        "/dashboard/devices/door-01/commands",
        data={"command": "open_door", "csrf": csrf_of(admin, "/dashboard/devices/door-01")},
    )
    assert response.status_code == 303
    commands = site.api.get("/api/v1/devices/door-01/commands").json()["items"]
    assert [(c["name"], c["created_by"]) for c in commands] == [("open_door", "bootstrap-admin")]
    assert "Open door queued for door-01" in admin.get("/dashboard/devices/door-01").text


def test_an_auditor_cannot_post_a_command_even_with_its_own_csrf_token(site):
    site.register("door-01", kind="access")
    auditor = site.browser(site.token("auditor"))
    csrf = csrf_of(auditor, "/dashboard/devices/door-01")
    response = auditor.post("/dashboard/devices/door-01/commands", data={"command": "open_door", "csrf": csrf})
    assert response.status_code == 403
    operator = site.browser(site.token("operator"))
    refused = operator.post(
        "/dashboard/devices/door-01/commands",
        data={"command": "sync_time", "csrf": csrf_of(operator, "/dashboard/devices/door-01")},
    )
    assert refused.status_code == 403
    assert site.api.get("/api/v1/devices/door-01/commands").json()["items"] == []


def test_forms_without_the_sessions_csrf_token_or_from_another_site_are_refused(site):
    site.register("door-01", kind="access")
    admin, other = site.browser(), site.browser()
    others_token = csrf_of(other, "/")
    for data in (
        {"command": "open_door"},
        {"command": "open_door", "csrf": "forged"},
        {"command": "open_door", "csrf": others_token},
    ):
        assert admin.post("/dashboard/devices/door-01/commands", data=data).status_code == 403
    cross_site = admin.post(
        "/dashboard/devices/door-01/commands",
        headers={"Origin": "http://evil.example"},
        data={"command": "open_door", "csrf": csrf_of(admin, "/")},
    )
    assert cross_site.status_code == 403
    assert admin.post("/logout", data={"csrf": ""}).status_code == 403  # signing out is a form too
    assert admin.get("/").status_code == 200
    assert site.api.get("/api/v1/devices/door-01/commands").json()["items"] == []


def test_signing_out_or_revoking_the_token_ends_the_session(site):
    admin = site.browser()
    stolen = dict(admin.cookies)
    response = admin.post("/logout", data={"csrf": csrf_of(admin, "/")})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert admin.get("/").status_code == 303
    replay = httpx.Client(base_url=site.base_url, cookies=stolen, follow_redirects=False)
    assert replay.get("/").status_code == 303
    made = site.api.post("/api/v1/tokens", json={"name": "temp", "role": "operator"}).json()
    operator = site.browser(made["token"])
    assert operator.get("/").status_code == 200
    assert site.api.delete(f"/api/v1/tokens/{made['id']}").status_code == 204
    assert operator.get("/").status_code == 303


def test_pages_a_role_may_not_read_are_403_and_missing_from_the_menu(site):
    installer = site.browser(site.token("installer"))
    for page in ("/dashboard/attendance", "/dashboard/visitors", "/dashboard/vehicles"):
        assert installer.get(page).status_code == 403
        assert f'href="{page}"' not in installer.get("/").text
    assert installer.get("/dashboard/uplink").status_code == 200  # sink status, as GET /api/v1/uplink/status
    site.register("att-01")
    site.publish("att-01", "status", b"online")  # first: committed by the time the punch shows
    site.publish("att-01", "events", b'{"type":"punch","user":"E7","time":"2026-11-27T09:00:00+08:00"}')
    wait_for(lambda: "E7" in site.browser().get("/dashboard/feed").text, 10, what="the punch")
    kinds = {i["kind"] for i in installer.get("/dashboard/feed.json").json()["items"]}
    assert kinds == {"status"}  # punches are records: installers read devices, not records


def test_the_invite_form_creates_an_invitation_for_roles_that_may_invite(site):
    site.api.post("/api/v1/people", json={"id": "H1", "name": "Hannah Host"}).raise_for_status()
    auditor = site.browser(site.token("auditor"))
    assert 'id="invite"' not in auditor.get("/dashboard/visitors").text
    assert auditor.post("/dashboard/visitors/invite", data={"csrf": csrf_of(auditor, "/")}).status_code == 403
    operator = site.browser(site.token("operator"))
    start = datetime.now(ZONE).replace(second=0, microsecond=0)
    form = {
        "csrf": csrf_of(operator, "/dashboard/visitors"),
        "name": "Vera Visitor",
        "company": "Acme",
        "host": "H1",
        "start": f"{start:%Y-%m-%dT%H:%M}",
        "end": f"{start + timedelta(hours=1):%Y-%m-%dT%H:%M}",
        "more_doors": "front, front-exit",
        "credential": "pin",
        "phone": "",
    }
    missing_doors = operator.post("/dashboard/visitors/invite", data={**form, "more_doors": ""})
    assert missing_doors.status_code == 422 and "doors" in missing_doors.text and "Vera Visitor" in missing_doors.text
    assert operator.post("/dashboard/visitors/invite", data=form).status_code == 303
    page = operator.get("/dashboard/visitors").text
    shown = re.search(r"pin credential, shown this once: (\d{6})", page)
    expected = re.search(r'<table id="expected">.*?</table>', page, re.S)[0]
    assert shown and "Vera Visitor" in expected and "Hannah Host" in expected
    invitations = site.api.get("/api/v1/visitors/invitations").json()["items"]
    assert [(i["name"], i["created_by"], i["doors"]) for i in invitations] == [
        ("Vera Visitor", "token:operator", ["front", "front-exit"])
    ]
    assert shown[1] not in operator.get("/dashboard/visitors").text  # shown once


def test_attendance_today_and_a_persons_month(site):
    api = site.api
    api.post("/api/v1/people", json={"id": "E1", "name": "Erin Early", "department": "Sales"}).raise_for_status()
    every_day = list(range(7))
    api.post(
        "/api/v1/attendance/shifts",
        json={"id": "day", "name": "Day", "start": "00:00", "end": "23:59", "workdays": every_day},
    ).raise_for_status()
    api.put(
        "/api/v1/attendance/assignments", json={"target_type": "person", "target_id": "E1", "shift_id": "day"}
    ).raise_for_status()
    admin = site.browser()
    page = admin.get("/dashboard/attendance").text
    assert "Erin Early" in page and "<td>Sales</td>" in page
    today = datetime.now(ZONE).date()
    month = admin.get("/dashboard/attendance/E1", params={"month": f"{today:%Y-%m}"}).text
    assert f'data-date="{today.isoformat()}"' in month and month.count("<tr>") >= 5
    assert admin.get("/dashboard/attendance/E1", params={"month": "13-2026"}).status_code == 400
    assert admin.get("/dashboard/attendance/nobody").status_code == 404


def test_vehicle_track_draws_one_vertex_per_point_and_trips(site):
    points = [[1_795_000_000_000 + i * 10_000, 31.2304 + i * 0.0007, 121.4737 + i * 0.0011] for i in range(37)]
    site.gw.vehicles = FakeVehicles(points)
    admin = site.browser()
    assert "沪A·12345" in admin.get("/dashboard/vehicles").text
    page = admin.get("/dashboard/vehicles/van-1").text
    vertices = re.search(r'<polyline id="track-line" class="track-line" points="([^"]*)"', page)[1].split()
    assert len(vertices) == len(points)
    assert 'class="track-start"' in page and 'class="track-end"' in page and page.count('class="grid"') >= 4
    assert '<span class="badge offline">no booking</span>' in page and "12.5 km" in page
    since, until = site.gw.vehicles.asked[-1]
    assert until - since == 24 * 3_600_000  # one day of the site's calendar (Shanghai has no DST)
    assert admin.get("/dashboard/vehicles/lorry-9").status_code == 404


def test_the_real_vehicles_service_draws_todays_fixes(site):
    site.register("gps-01", kind="gps")
    site.api.post("/api/v1/vehicles", json={"id": "van-2", "plate": "B-42", "device_id": "gps-01"}).raise_for_status()
    start, _ = queries.day_bounds(ZONE)
    for i in range(12):
        fix = {
            "type": "fix",
            "time": start + 60_000 + i * 10_000,
            "lat": 31.23 + i * 0.001,
            "lon": 121.47,
            "speed_kmh": 40,
        }
        site.publish("gps-01", "events", json.dumps(fix).encode())
    admin = site.browser()

    def vertices() -> int:
        found = re.search(
            r'<polyline id="track-line" class="track-line" points="([^"]*)"',
            admin.get("/dashboard/vehicles/van-2").text,
        )
        return len(found[1].split()) if found else 0

    wait_for(lambda: vertices() == 12, 10, what="12 vertices on the track")
    assert "B-42" in admin.get("/dashboard/vehicles").text


def test_uplink_status_for_device_readers_parked_records_for_record_readers_retry_for_admins(site):
    site.gw.uplink = uplink = FakeUplink()
    installer = site.browser(site.token("installer")).get("/dashboard/uplink").text
    assert "HTTP 502" in installer and "rejected: 400" not in installer
    operator = site.browser(site.token("operator"))
    page = operator.get("/dashboard/uplink").text
    assert "HTTP 502" in page and "rejected: 400" in page and "data-retry" not in page
    assert operator.post("/dashboard/uplink/parked/7/retry", data={"csrf": csrf_of(operator, "/")}).status_code == 403
    admin = site.browser()
    assert 'data-retry="7"' in admin.get("/dashboard/uplink").text
    assert admin.post("/dashboard/uplink/parked/7/retry", data={"csrf": csrf_of(admin, "/")}).status_code == 303
    assert uplink.retried == [7]
    assert "queued for delivery again" in admin.get("/dashboard/uplink").text


def test_dashboard_permissions_are_the_api_role_table():
    def api_roles(method: str, path: str) -> frozenset[str]:
        return frozenset({"admin", *ROLE_TABLE[(method, path)]})

    assert auth.PERMISSIONS["read_devices"] == api_roles("GET", "/api/v1/devices")
    assert auth.PERMISSIONS["read_devices"] == api_roles("GET", "/api/v1/deadletters")
    assert auth.PERMISSIONS["read_records"] == api_roles("GET", "/api/v1/attendance/punches")
    assert auth.PERMISSIONS["read_records"] == api_roles("GET", "/api/v1/visits")
    assert auth.PERMISSIONS["send_commands"] == api_roles("POST", "/api/v1/devices/{device_id}/commands")
    assert auth.PERMISSIONS["invite_visitors"] == api_roles("POST", "/api/v1/visitors/invitations")
    assert auth.PERMISSIONS["read_vehicles"] == api_roles("GET", "/api/v1/vehicles/{vehicle_id}/fixes")
    assert auth.PERMISSIONS["read_uplink"] == api_roles("GET", "/api/v1/uplink/status")
    assert auth.PERMISSIONS["read_parked"] == api_roles("GET", "/api/v1/uplink/parked")
    assert auth.PERMISSIONS["retry_uplink"] == api_roles("POST", "/api/v1/uplink/parked/{entry_id}/retry")


def test_sessions_expire_when_idle():
    store = auth.SessionStore(idle_s=60, capacity=2)
    first = store.create(auth.Actor("a", "admin"))
    used = store.get(first).last_used
    assert store.get(first, now=used + 59) is not None  # using it keeps it alive
    assert store.get(first, now=used + 59 + 61) is None
    ids = [store.create(auth.Actor(f"u{i}", "auditor")) for i in range(3)]
    assert store.get(ids[0]) is None and store.get(ids[2]) is not None  # least recently used goes first


def test_track_projection_keeps_north_up_and_equal_scales():
    square = [[0, 0.0, 0.0], [1, 0.0, 0.01], [2, 0.01, 0.01], [3, 0.01, 0.0]]  # ~1.1 km a side at the equator
    drawing = track.draw(square)
    (x0, y0), (x1, y1), (x2, y2) = [tuple(map(float, v.split(","))) for v in drawing.points.split()[:3]]
    assert x1 > x0 and y1 == y0  # east is right
    assert y2 < y1 and x2 == x1  # north is up
    assert abs((x1 - x0) - (y1 - y2)) < 1  # a square stays square
    assert track.draw([[0, float("nan"), 1.0]]) is None


def test_rate_meter_averages_over_its_window():
    meter = RateMeter(window_s=10, min_span_s=1)
    assert meter.observe(100, now=0.0) is None
    assert meter.observe(150, now=0.5) is None
    assert meter.observe(200, now=2.0) == 50.0
    assert meter.observe(1200, now=22.0) == pytest.approx(1000 / 20)  # the reading at 2 s is kept as the base
