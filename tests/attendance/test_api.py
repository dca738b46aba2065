"""Daily attendance end to end: punches over MQTT, rules through the API, records and reports out."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

from tests.conftest import ROOT, wait_for
from tests.mqtt_helpers import close, publish_all, publisher

# Monday 2025-03-03 .. Friday 2025-03-07, Asia/Shanghai (the test gateway's site zone)
PUNCHES = [
    "2025-03-03T08:55:00",
    "2025-03-03T18:05:00",  # on time
    "2025-03-04T09:20:00",
    "2025-03-04T18:00:00",  # 20 min late
    "2025-03-05T09:00:00",  # one punch only
    "2025-03-07T09:00:00",
    "2025-03-07T12:00:00",
]  # a holiday


def setup_office(gw) -> dict:
    creds = gw.register("att-01")["credentials"]
    admin = gw.http
    admin.post(
        "/api/v1/people",
        json={"id": "E1", "name": "Li Lei", "department": "Sales", "device_user_ids": {"att-01": "101"}},
    ).raise_for_status()
    admin.post(
        "/api/v1/attendance/shifts", json={"id": "day", "name": "Day", "start": "09:00", "end": "18:00"}
    ).raise_for_status()
    admin.put(
        "/api/v1/attendance/assignments", json={"target_type": "department", "target_id": "Sales", "shift_id": "day"}
    ).raise_for_status()
    admin.post("/api/v1/attendance/holidays", json={"date": "2025-03-07", "name": "Test holiday"}).raise_for_status()
    client = publisher(gw.mqtt_port, "att-01", credentials=creds)
    publish_all(
        client, [("devices/att-01/events", f'{{"type":"punch","user":"101","time":"{t}"}}'.encode()) for t in PUNCHES]
    )
    close(client)
    wait_for(
        lambda: len(gw.all_items("/api/v1/attendance/punches", person="E1")) == len(PUNCHES),
        15,
        0.2,
        what="the punches",
    )
    return creds


def days(gw, **params) -> list[dict]:
    return gw.http.get("/api/v1/attendance/days", params={"from": "2025-03-03", "to": "2025-03-07", **params}).json()[
        "items"
    ]


def test_daily_records_follow_the_rules_and_become_final_when_every_terminal_synced(gateway_factory):
    gw = gateway_factory("embedded").start()
    setup_office(gw)
    records = days(gw)
    assert [(r["date"], r["status"]) for r in records] == [
        ("2025-03-03", "present"),
        ("2025-03-04", "late"),
        ("2025-03-05", "missing_punch"),
        ("2025-03-06", "absent"),
        ("2025-03-07", "holiday"),
    ]
    monday, tuesday = records[0], records[1]
    assert monday["first_in"] == "2025-03-03T00:55:00Z" and monday["last_out_local"] == "2025-03-03T18:05:00+08:00"
    assert monday["worked_minutes"] == 9 * 60 + 10
    assert tuesday["late_minutes"] == 20 and tuesday["name"] == "Li Lei"
    assert all(r["state"] == "final" for r in records)

    # A second terminal that has never reported keeps every day provisional until it syncs.
    slow = gw.register("att-02")["credentials"]
    assert {r["state"] for r in days(gw)} == {"provisional"}
    client = publisher(gw.mqtt_port, "att-02", credentials=slow)
    publish_all(client, [("devices/att-02/status", b"online")])
    close(client)
    wait_for(lambda: {r["state"] for r in days(gw)} == {"final"}, 10, 0.2, what="the days to become final")

    as_csv = gw.http.get("/api/v1/attendance/days", params={"from": "2025-03-03", "to": "2025-03-07", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["Status"] for r in rows] == ["present", "late", "missing_punch", "absent", "holiday"]


def test_a_late_punch_recomputes_its_day(gateway_factory):
    gw = gateway_factory("embedded").start()
    creds = setup_office(gw)
    client = publisher(gw.mqtt_port, "att-01", credentials=creds)
    publish_all(client, [("devices/att-01/events", b'{"type":"punch","user":"101","time":"2025-03-05T18:01:00"}')])
    close(client)
    wait_for(lambda: days(gw)[2]["status"] == "present", 10, 0.2, what="Wednesday to be recomputed")


def test_shift_and_day_requests_are_checked(gateway_factory):
    gw = gateway_factory("embedded").start()
    bad = gw.http.post("/api/v1/attendance/shifts", json={"id": "x", "name": "X", "start": "25:00", "end": "18:00"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("start")
    gw.http.post(
        "/api/v1/attendance/shifts", json={"id": "x", "name": "X", "start": "09:00", "end": "18:00"}
    ).raise_for_status()
    assert (
        gw.http.post(
            "/api/v1/attendance/shifts", json={"id": "x", "name": "X", "start": "09:00", "end": "18:00"}
        ).status_code
        == 409
    )
    unknown = gw.http.put(
        "/api/v1/attendance/assignments", json={"target_type": "person", "target_id": "E1", "shift_id": "nope"}
    )
    assert unknown.status_code == 422
    backwards = gw.http.get("/api/v1/attendance/days", params={"from": "2025-03-07", "to": "2025-03-03"})
    assert backwards.status_code == 422


def test_the_report_command_writes_table_csv_and_xlsx(gateway_factory, tmp_path):
    gw = gateway_factory("embedded").start()
    setup_office(gw)

    def report(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway",
                "attendance",
                "report",
                "--config",
                str(gw.config),
                "--from",
                "2025-02-28",
                "--to",
                "2025-03-07",
                *args,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    table = report()
    assert table.returncode == 0, table.stderr
    assert "late" in table.stdout and "Li Lei" in table.stdout
    as_csv = report("--format", "csv")
    assert [r["Status"] for r in csv.DictReader(io.StringIO(as_csv.stdout))] == [
        "absent",
        "present",
        "late",
        "missing_punch",
        "absent",
        "holiday",
    ]
    out = tmp_path / "attendance.xlsx"
    assert report("--format", "xlsx", "--out", str(out)).returncode == 0
    from openpyxl import load_workbook

    workbook = load_workbook(out)
    assert workbook.sheetnames == ["2025-02", "2025-03"]
    assert workbook["2025-03"]["F2"].value == "present" and workbook["2025-03"].max_row == 6
    assert report("--format", "pdf").returncode == 2
    assert report("--format", "xlsx").returncode == 2
