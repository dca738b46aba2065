"""A holiday or a schedule changed through the API reaches the doors at once, without a restart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from gateway.access.decide import Credential
from gateway.app import Gateway, build_app
from gateway.config import Settings
from gateway.store.db import upgrade
from tests.conftest import TOKEN

ZONE = ZoneInfo("Asia/Shanghai")
CARD = Credential("card", "0x14088B", facility=10, number=1093)
EVERY_DAY = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


@pytest.fixture
def office(tmp_path) -> Iterator[tuple[Gateway, TestClient]]:
    settings = Settings(
        site={"timezone": str(ZONE)},
        database={"url": f"sqlite:///{tmp_path}/gateway.db"},
        api={"admin_token": TOKEN},
    )
    gw = Gateway(settings)
    upgrade(gw.engine)
    for part in (gw.registry, gw.liveness, gw.people_index):
        part.load()
    gw.access.reload()
    gw.pipeline.start()
    with TestClient(build_app(gw), headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        schedule = {"id": "office", "windows": EVERY_DAY, "holidays_closed": True}
        api.post("/api/v1/access/schedules", json=schedule).raise_for_status()
        holder = {"id": "E1", "name": "Card Holder", "cards": ["10:1093"]}
        api.post(
            "/api/v1/people", json={**holder, "access": {"doors": ["front"], "schedule": "office"}}
        ).raise_for_status()
        yield gw, api
    gw.pipeline.stop(1.0)
    gw.engine.dispose()


def test_a_holiday_added_through_the_api_closes_holidays_closed_doors_at_once(office):
    gw, api = office
    assert gw.access.read("reader-1", "front", CARD).reason == "granted"
    today = datetime.now(ZONE).date().isoformat()
    assert api.post("/api/v1/attendance/holidays", json={"date": today, "name": "Founders' day"}).status_code == 201
    assert gw.access.read("reader-1", "front", CARD).reason == "outside_schedule"


def test_a_schedule_removed_through_the_api_closes_its_doors_at_once(office):
    gw, api = office
    assert gw.access.read("reader-1", "front", CARD).reason == "granted"
    assert api.delete("/api/v1/access/schedules/office").status_code == 204
    assert gw.access.read("reader-1", "front", CARD).reason == "outside_schedule"  # fail closed
