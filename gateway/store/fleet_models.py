"""Fleet tables: vehicles, their bookings, the trips and geofence events computed from their fixes.

Re-exported by `gateway.store.models`, where every table can be imported from. The fixes
themselves are `FixRecord` there, with the other device records.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field

from gateway.store.columns import Table, epoch_ms


class Vehicle(Table, table=True):
    id: str = Field(primary_key=True, max_length=64)
    plate: str = Field(max_length=32)
    device_id: str | None = Field(default=None, max_length=64, sa_column_kwargs={"unique": True})
    driver: str | None = Field(default=None, max_length=100)  # a person id, or a name
    name: str = Field(default="", max_length=200)
    created_at: int = epoch_ms()
    updated_at: int = epoch_ms()


class TripRow(Table, table=True):
    """A trip as last computed from the vehicle's fixes; recomputed when late fixes land inside it."""

    __tablename__ = "trip"
    __table_args__ = (Index("ix_trip_vehicle_start", "vehicle_id", "start_time"),)

    id: int | None = Field(default=None, primary_key=True)
    vehicle_id: str = Field(max_length=64)
    start_time: int = epoch_ms()
    end_time: int = epoch_ms()
    start_lat: float
    start_lon: float
    end_lat: float
    end_lon: float
    distance_km: float
    distance_source: str = Field(max_length=16)
    max_speed_kmh: float | None = None
    avg_speed_kmh: float | None = None
    point_count: int
    booking_id: int | None = None
    flags: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    computed_at: int = epoch_ms()


class Booking(Table, table=True):
    __table_args__ = (Index("ix_booking_vehicle_start", "vehicle_id", "start_time"),)

    id: int | None = Field(default=None, primary_key=True)
    vehicle_id: str = Field(max_length=64)
    person: str = Field(max_length=100)
    start_time: int = epoch_ms()
    end_time: int = epoch_ms()
    purpose: str = Field(default="", max_length=500)
    created_at: int = epoch_ms()
    created_by: str = Field(default="", max_length=100)


class Geofence(Table, table=True):
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(default="", max_length=200)
    shape: dict = Field(sa_column=Column(JSON, nullable=False))  # {"circle": {...}} or {"polygon": [...]}
    dwell_s: int = 60


class GeofenceEventRow(Table, table=True):
    __tablename__ = "geofence_event"
    __table_args__ = (Index("ix_geofence_event_vehicle_time", "vehicle_id", "time"),)

    id: int | None = Field(default=None, primary_key=True)
    vehicle_id: str = Field(max_length=64)
    fence_id: str = Field(max_length=64)
    kind: str = Field(max_length=8)  # enter | exit
    time: int = epoch_ms()
    lat: float
    lon: float
