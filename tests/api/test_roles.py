"""Every API operation: 401 without a valid token, 403 for a role that may not use it, allowed otherwise.

The table is the role model: admin may do everything; installer manages devices;
operator reads records and sends door commands; auditor reads everything.
A new operation fails the completeness check until it is added here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

pytestmark = pytest.mark.system  # runs the gateway (or the platform stand-in) as its own process

INSTALLER, OPERATOR, AUDITOR = "installer", "operator", "auditor"
READ_DEVICES = {INSTALLER, OPERATOR, AUDITOR}

# (method, path template) -> roles besides admin that may call it
ROLE_TABLE: dict[tuple[str, str], set[str]] = {
    ("GET", "/api/v1/devices"): READ_DEVICES,
    ("POST", "/api/v1/devices"): {INSTALLER},
    ("GET", "/api/v1/devices/{device_id}"): READ_DEVICES,
    ("PATCH", "/api/v1/devices/{device_id}"): {INSTALLER},
    ("DELETE", "/api/v1/devices/{device_id}"): {INSTALLER},
    ("POST", "/api/v1/devices/{device_id}/credentials/rotate"): {INSTALLER},
    ("POST", "/api/v1/devices/{device_id}/install"): {INSTALLER},
    ("POST", "/api/v1/devices/{device_id}/unbind"): {INSTALLER},
    ("POST", "/api/v1/devices/{device_id}/commands"): {INSTALLER, OPERATOR},
    ("GET", "/api/v1/devices/{device_id}/commands"): READ_DEVICES,
    ("GET", "/api/v1/devices/{device_id}/commands/{command_id}"): READ_DEVICES,
    ("GET", "/api/v1/attendance/punches"): {OPERATOR, AUDITOR},
    ("GET", "/api/v1/deadletters"): READ_DEVICES,
    ("GET", "/api/v1/people"): READ_DEVICES,
    ("POST", "/api/v1/people"): set(),
    ("GET", "/api/v1/people/{person_id}"): READ_DEVICES,
    ("PATCH", "/api/v1/people/{person_id}"): set(),
    ("DELETE", "/api/v1/people/{person_id}"): set(),
    ("POST", "/api/v1/people/import"): set(),
    ("GET", "/api/v1/tokens"): set(),
    ("POST", "/api/v1/tokens"): set(),
    ("GET", "/api/v1/tokens/{token_id}"): set(),
    ("DELETE", "/api/v1/tokens/{token_id}"): set(),
    ("GET", "/api/v1/audit"): {AUDITOR},
    ("GET", "/api/v1/attendance/days"): {OPERATOR, AUDITOR},
    ("GET", "/api/v1/access/events"): {OPERATOR, AUDITOR},
    ("GET", "/api/v1/access/schedules"): {OPERATOR, AUDITOR},
    ("POST", "/api/v1/access/schedules"): set(),
    ("DELETE", "/api/v1/access/schedules/{schedule_id}"): set(),
    ("GET", "/api/v1/attendance/shifts"): {OPERATOR, AUDITOR},
    ("POST", "/api/v1/attendance/shifts"): set(),
    ("DELETE", "/api/v1/attendance/shifts/{shift_id}"): set(),
    ("GET", "/api/v1/attendance/assignments"): {OPERATOR, AUDITOR},
    ("PUT", "/api/v1/attendance/assignments"): set(),
    ("GET", "/api/v1/attendance/holidays"): {OPERATOR, AUDITOR},
    ("POST", "/api/v1/attendance/holidays"): set(),
    ("POST", "/api/v1/attendance/leaves"): set(),
    ("POST", "/api/v1/visitors/invitations"): {OPERATOR},
    ("GET", "/api/v1/visitors/invitations"): {OPERATOR, AUDITOR},
    ("DELETE", "/api/v1/visitors/invitations/{invitation_id}"): {OPERATOR},
    ("GET", "/api/v1/visits"): {OPERATOR, AUDITOR},
    ("POST", "/api/v1/visitors/blocklist"): set(),
    ("GET", "/api/v1/visitors/blocklist"): {OPERATOR, AUDITOR},
    ("DELETE", "/api/v1/visitors/blocklist/{entry_id}"): set(),
    ("POST", "/api/v1/vehicles"): set(),
    ("GET", "/api/v1/vehicles"): {OPERATOR, AUDITOR},
    ("GET", "/api/v1/vehicles/{vehicle_id}"): {OPERATOR, AUDITOR},
    ("PATCH", "/api/v1/vehicles/{vehicle_id}"): set(),
    ("DELETE", "/api/v1/vehicles/{vehicle_id}"): set(),
    ("GET", "/api/v1/vehicles/{vehicle_id}/fixes"): {OPERATOR, AUDITOR},
    ("GET", "/api/v1/vehicles/{vehicle_id}/trips"): {OPERATOR, AUDITOR},
    ("GET", "/api/v1/vehicles/{vehicle_id}/trips.gpx"): {OPERATOR, AUDITOR},
    ("GET", "/api/v1/vehicles/{vehicle_id}/trips.geojson"): {OPERATOR, AUDITOR},
    ("GET", "/api/v1/vehicles/{vehicle_id}/stops"): {OPERATOR, AUDITOR},
    ("POST", "/api/v1/vehicles/{vehicle_id}/bookings"): {OPERATOR},
    ("GET", "/api/v1/vehicles/{vehicle_id}/bookings"): {OPERATOR, AUDITOR},
    ("GET", "/api/v1/vehicles/{vehicle_id}/geofence-events"): {OPERATOR, AUDITOR},
    ("POST", "/api/v1/geofences"): set(),
    ("GET", "/api/v1/geofences"): {OPERATOR, AUDITOR},
    ("GET", "/api/v1/uplink/status"): READ_DEVICES,
    ("GET", "/api/v1/uplink/parked"): {OPERATOR, AUDITOR},
    ("POST", "/api/v1/uplink/parked/{entry_id}/retry"): set(),
}
PUBLIC = {("GET", "/healthz"), ("GET", "/metrics")}
BODIES = {
    ("POST", "/api/v1/devices"): {"id": "made-by-role-test", "kind": "attendance", "protocol": "mqtt-json"},
    ("POST", "/api/v1/devices/{device_id}/commands"): {"name": "open_door"},
    ("PATCH", "/api/v1/devices/{device_id}"): {"name": "x"},
    ("POST", "/api/v1/people"): {"id": "p-role", "name": "Role Test"},
    ("PATCH", "/api/v1/people/{person_id}"): {"name": "x"},
    ("POST", "/api/v1/tokens"): {"name": "t", "role": "auditor"},
    ("POST", "/api/v1/attendance/shifts"): {"id": "s", "name": "S", "start": "09:00", "end": "18:00"},
    ("POST", "/api/v1/access/schedules"): {"id": "office", "windows": {"mon": [["08:00", "19:00"]]}},
    ("PUT", "/api/v1/attendance/assignments"): {"target_type": "person", "target_id": "p-1", "shift_id": "s"},
    ("POST", "/api/v1/attendance/holidays"): {"date": "2026-01-01"},
    ("POST", "/api/v1/attendance/leaves"): {"person_id": "p-1", "date": "2026-01-02"},
    ("POST", "/api/v1/visitors/invitations"): {
        "name": "Role Visitor",
        "host": "p-1",
        "doors": ["front"],
        "window": {
            "start": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
            "end": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
        },
    },
    ("POST", "/api/v1/visitors/blocklist"): {"name": "Role Blocked", "reason": "role test"},
    ("POST", "/api/v1/vehicles"): {"id": "v-role", "plate": "R1"},
    ("PATCH", "/api/v1/vehicles/{vehicle_id}"): {"name": "x"},
    ("POST", "/api/v1/vehicles/{vehicle_id}/bookings"): {
        "person": "p-1",
        "start": "2026-11-27T09:00:00+08:00",
        "end": "2026-11-27T10:00:00+08:00",
    },
    ("POST", "/api/v1/geofences"): {"id": "yard", "circle": {"lat": 31.2, "lon": 121.4, "radius_m": 100}},
}


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    from tests.conftest import GatewayProcess

    workdir = tmp_path_factory.mktemp("roles")
    gateway = GatewayProcess(workdir, "embedded").start()
    gateway.register("att-01")
    gateway.http.post("/api/v1/people", json={"id": "p-1", "name": "P One"}).raise_for_status()
    gateway.http.post("/api/v1/vehicles", json={"id": "v-1", "plate": "V1"}).raise_for_status()
    yield gateway
    gateway.close()


@pytest.fixture(scope="module")
def tokens(gw):
    return {
        role: gw.http.post("/api/v1/tokens", json={"name": role, "role": role}).raise_for_status().json()["token"]
        for role in (INSTALLER, OPERATOR, AUDITOR)
    }


def call(gw, method: str, template: str, token: str | None, source: str = "127.0.0.1") -> httpx.Response:
    path = template.format(
        device_id="att-01",
        person_id="p-1",
        token_id="nope",
        command_id="nope",
        shift_id="nope",
        schedule_id="nope",
        invitation_id="nope",
        entry_id="nope",
        vehicle_id="v-1",
    )
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kwargs = {}
    if (method, template) == ("POST", "/api/v1/people/import"):
        kwargs = {"content": b"id,name\np-2,Two\n", "headers": {**headers, "Content-Type": "text/csv"}}
    else:
        kwargs = {"json": BODIES.get((method, template)), "headers": headers}
    with httpx.Client(timeout=10, transport=httpx.HTTPTransport(local_address=source)) as client:
        return client.request(method, str(gw.http.base_url) + path, **kwargs)


def test_the_table_covers_every_operation(gw):
    spec = gw.http.get("/openapi.json").json()
    operations = {(m.upper(), path) for path, item in spec["paths"].items() for m in item}
    assert operations - PUBLIC == set(ROLE_TABLE)


@pytest.mark.parametrize(("n", "method", "template"), [(n, *op) for n, op in enumerate(sorted(ROLE_TABLE))])
def test_401_without_or_with_a_wrong_token(gw, n, method, template):
    # Each operation's wrong token from its own address: wrong tokens are throttled per address.
    source = f"127.0.{1 + n // 250}.{1 + n % 250}"
    assert call(gw, method, template, None, source).status_code == 401
    assert call(gw, method, template, "gwt_not-a-real-token", source).status_code == 401


@pytest.mark.parametrize(("method", "template"), sorted(ROLE_TABLE))
def test_each_role_is_refused_or_served_as_the_table_says(gw, tokens, method, template):
    for role, token in tokens.items():
        status = call(gw, method, template, token).status_code
        if role in ROLE_TABLE[(method, template)]:
            assert status not in (401, 403), f"{role} refused {method} {template}"
        else:
            assert status == 403, f"{role} got {status} for {method} {template}"


def test_an_operator_may_open_doors_but_not_reboot(gw, tokens):
    gw.register("door-01", kind="access")
    headers = {"Authorization": f"Bearer {tokens[OPERATOR]}"}
    url = str(gw.http.base_url) + "/api/v1/devices/door-01/commands"
    assert httpx.post(url, json={"name": "open_door"}, headers=headers).status_code == 202
    refused = httpx.post(url, json={"name": "reboot"}, headers=headers)
    assert refused.status_code == 403 and "open_door" in refused.json()["detail"]
