"""The fleet service on its own (no HTTP): each change audited in its transaction, the registry told which
device is in which vehicle, fixes linked, trips marked for recomputation, refusals typed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from gateway.store.db import make_engine, upgrade
from gateway.store.models import AuditEntry, Device, FixRecord
from gateway.vehicles.fixes import TripSettings
from gateway.vehicles.fleet import Conflict, Fleet, FleetError, NotFound
from gateway.vehicles.service import Vehicles

T0 = 1_795_827_543_000


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    upgrade(engine)
    with Session(engine) as session:
        session.add(Device(id="gps-1", kind="gps", protocol="jt808", created_at=T0, updated_at=T0))
        session.add(Device(id="att-1", kind="attendance", protocol="attlog", created_at=T0, updated_at=T0))
        session.add(
            FixRecord(
                key=b"\x01" * 16,
                device_id="gps-1",
                time=T0,
                utc_offset_min=480,
                lat=31.23,
                lon=121.47,
                source="jt808",
                raw_ref="j:1",
                stored_at=T0,
            )
        )
        session.commit()
    yield engine
    engine.dispose()


class Links:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    def __call__(self, vehicle_id: str, device_id: str | None) -> None:
        self.calls.append((vehicle_id, device_id))


def _fleet(engine: Engine) -> tuple[Fleet, Vehicles, Links]:
    vehicles = Vehicles(engine, TripSettings())
    links = Links()
    return Fleet(engine, vehicles, links), vehicles, links


def _audit(engine: Engine) -> list[tuple[str, str, str]]:
    with Session(engine) as session:
        rows = session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars()
        return [(a.action, a.target_type, a.target_id) for a in rows]


def test_a_vehicle_with_its_device_links_the_fixes_and_is_audited(engine: Engine) -> None:
    fleet, vehicles, links = _fleet(engine)
    answer = fleet.create_vehicle("admin", {"id": "van-1", "plate": "A1", "device_id": "gps-1"})
    assert answer["id"] == "van-1" and answer["device_id"] == "gps-1"
    assert links.calls == [("van-1", "gps-1")]
    with Session(engine) as session:
        assert session.execute(select(FixRecord.vehicle_id)).scalar_one() == "van-1"
    assert vehicles._dirty == {"van-1": 0}  # its trips are redone from the start
    assert _audit(engine) == [("create", "vehicle", "van-1")]
    fleet.delete_vehicle("admin", "van-1")
    assert links.calls[-1] == ("van-1", None)
    assert _audit(engine)[-1] == ("delete", "vehicle", "van-1")


def test_refusals_are_typed_and_change_nothing(engine: Engine) -> None:
    fleet, _, links = _fleet(engine)
    with pytest.raises(FleetError, match="no device") as refused:
        fleet.create_vehicle("admin", {"id": "van-1", "plate": "A1", "device_id": "nope"})
    assert refused.value.status == 422
    with pytest.raises(FleetError, match="not gps"):
        fleet.create_vehicle("admin", {"id": "van-1", "plate": "A1", "device_id": "att-1"})
    fleet.create_vehicle("admin", {"id": "van-1", "plate": "A1", "device_id": "gps-1"})
    with pytest.raises(Conflict):
        fleet.create_vehicle("admin", {"id": "van-1", "plate": "A2"})
    with pytest.raises(Conflict, match="already in vehicle 'van-1'"):
        fleet.create_vehicle("admin", {"id": "van-2", "plate": "A2", "device_id": "gps-1"})
    with pytest.raises(FleetError, match="plate: may not be null"):
        fleet.update_vehicle("admin", "van-1", {"plate": None})
    with pytest.raises(NotFound) as missing:
        fleet.update_vehicle("admin", "van-9", {"plate": "X"})
    assert missing.value.status == 404
    with pytest.raises(FleetError, match="vertex out of range"):
        fleet.create_geofence("admin", "yard", "", {"polygon": [[1, 1], [1, 2], [95, 3]]})
    assert _audit(engine) == [("create", "vehicle", "van-1")]
    assert links.calls == [("van-1", "gps-1")]


def test_a_booking_marks_the_trips_it_covers_and_lists_as_pending(engine: Engine) -> None:
    fleet, vehicles, _ = _fleet(engine)
    fleet.create_vehicle("admin", {"id": "van-1", "plate": "A1"})
    vehicles._dirty.clear()
    start, end = T0 + 3_600_000, T0 + 7_200_000
    booking = fleet.create_booking("operator", "van-1", "Ann", start, end, "site visit")
    assert booking["status"] == "pending" and booking["person"] == "Ann"
    assert vehicles._dirty == {"van-1": start}
    [(row, status)] = fleet.bookings("van-1", None, None, 0, 10)
    assert str(row.id) == booking["id"] and status == "no_trip"  # it ended in the past with no trip
    assert _audit(engine)[-1] == ("create", "booking", booking["id"])
    with pytest.raises(NotFound):
        fleet.bookings("van-9", None, None, 0, 10)
