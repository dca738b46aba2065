"""Tables. Times are UTC epoch milliseconds (BIGINT): portable, sortable, no zone ambiguity.

Every record has a unique `key` (the idempotency key of what the device sent)
so a resend is stored once, and `raw_ref`, "<journal segment>/<index>" of the
input that carried it.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field

from gateway.store.columns import Table, epoch_ms

# Every table is importable from here and registered when this module is (Alembic's env.py imports it).
from gateway.store.fleet_models import Booking, Geofence, GeofenceEventRow, TripRow, Vehicle  # noqa: F401


class Device(Table, table=True):
    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)
    protocol: str = Field(max_length=16)
    name: str = Field(default="", max_length=200)
    site: str = Field(default="", max_length=64)
    timezone: str = Field(default="", max_length=64)
    config: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: int = epoch_ms()
    updated_at: int = epoch_ms()
    online: bool | None = Field(default=None)
    last_seen: int | None = epoch_ms(nullable=True)
    firmware: str | None = Field(default=None, max_length=100)
    events_total: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    errors_total: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    # Salted hash of the device's MQTT password; the secret itself is shown once, at creation.
    credential_hash: str | None = Field(default=None, max_length=200)
    # A secret the protocol needs in clear (OSDP key, JT/T 808 auth code), encrypted with the site key.
    secret_enc: str | None = Field(default=None, max_length=400)


class Journal(Table, table=True):
    """Every accepted input, as received: one segment per committed batch (see store/journal.py)."""

    id: int | None = Field(default=None, primary_key=True)
    received_at: int = epoch_ms()
    transport: str = Field(max_length=16)
    count: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class DeadLetter(Table, table=True):
    __tablename__ = "dead_letter"

    id: int | None = Field(default=None, primary_key=True)
    time: int = epoch_ms()
    source: str = Field(max_length=16)
    device_id: str | None = Field(default=None, max_length=64, index=True)
    topic: str = Field(default="", max_length=256)
    reason: str = Field(max_length=64, index=True)
    detail: str = Field(default="", max_length=1000)
    size: int = Field(default=0)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class PunchRecord(Table, table=True):
    __tablename__ = "punch"
    # Time-ordered inserts make the time index cheap to keep; attendance reads punches by time range.
    __table_args__ = (Index("ix_punch_device_time", "device_id", "time"), Index("ix_punch_time", "time"))

    id: int | None = Field(default=None, primary_key=True)
    key: bytes = Field(sa_column=Column(LargeBinary(16), nullable=False, unique=True))
    device_id: str = Field(max_length=64)
    user: str = Field(max_length=64)
    person_id: str | None = Field(default=None, max_length=64)
    time: int = epoch_ms()
    utc_offset_min: int
    direction: str = Field(max_length=8)
    verify: str = Field(max_length=40)
    status_code: int | None = None
    verify_code: int | None = None
    workcode: str | None = Field(default=None, max_length=32)
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    source: str = Field(max_length=16)
    raw_ref: str = Field(max_length=40)
    stored_at: int = epoch_ms()


class AccessRecord(Table, table=True):
    __tablename__ = "access_event"
    __table_args__ = (Index("ix_access_door_time", "door", "time"),)

    id: int | None = Field(default=None, primary_key=True)
    key: bytes = Field(sa_column=Column(LargeBinary(16), nullable=False, unique=True))
    device_id: str = Field(max_length=64, index=True)
    door: str = Field(max_length=64)
    time: int = epoch_ms()
    utc_offset_min: int
    credential_kind: str = Field(max_length=8)
    credential_value: str = Field(max_length=128)
    credential_bits: int | None = None
    credential_format: str | None = Field(default=None, max_length=16)
    facility: int | None = None
    number: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    person_id: str | None = Field(default=None, max_length=64)
    visitor_id: str | None = Field(default=None, max_length=64)
    decision: str = Field(max_length=8)
    reason: str = Field(max_length=32)
    direction: str = Field(max_length=8)
    source: str = Field(max_length=16)
    raw_ref: str = Field(max_length=40)
    stored_at: int = epoch_ms()


class FixRecord(Table, table=True):
    __tablename__ = "fix"
    __table_args__ = (Index("ix_fix_device_time", "device_id", "time"),)

    id: int | None = Field(default=None, primary_key=True)
    key: bytes = Field(sa_column=Column(LargeBinary(16), nullable=False, unique=True))
    device_id: str = Field(max_length=64)
    vehicle_id: str | None = Field(default=None, max_length=64)
    time: int = epoch_ms()
    utc_offset_min: int
    lat: float
    lon: float
    speed_kmh: float | None = None
    heading: float | None = None
    alt: float | None = None
    sats: int | None = None
    hdop: float | None = None
    ignition: bool | None = None
    valid: bool = True
    flags: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    odometer_km: float | None = None
    source: str = Field(max_length=16)
    raw_ref: str = Field(max_length=40)
    stored_at: int = epoch_ms()


class StatusRecord(Table, table=True):
    __tablename__ = "device_status"
    __table_args__ = (Index("ix_status_device_time", "device_id", "time"),)

    id: int | None = Field(default=None, primary_key=True)
    key: bytes = Field(sa_column=Column(LargeBinary(16), nullable=False, unique=True))
    device_id: str = Field(max_length=64)
    time: int = epoch_ms()
    online: bool | None = None
    detail: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    raw_ref: str = Field(max_length=40)
    stored_at: int = epoch_ms()


class CommandResultRecord(Table, table=True):
    __tablename__ = "command_result"

    id: int | None = Field(default=None, primary_key=True)
    key: bytes = Field(sa_column=Column(LargeBinary(16), nullable=False, unique=True))
    device_id: str = Field(max_length=64, index=True)
    command_id: str = Field(max_length=64, index=True)
    ok: bool
    detail: str = Field(default="", max_length=2000)
    time: int = epoch_ms()
    raw_ref: str = Field(max_length=40)


class ApiToken(Table, table=True):
    """An API token: only its SHA-256 is kept (tokens are long random strings, so a fast hash is enough)."""

    __tablename__ = "api_token"
    __table_args__ = (Index("ux_api_token_name", "name", unique=True),)  # the audit log names tokens by name

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=100)
    role: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: int = epoch_ms()
    created_by: str = Field(max_length=100)
    revoked_at: int | None = epoch_ms(nullable=True)


class AuditEntry(Table, table=True):
    """One change made through the API: who, what, when, before and after (never a secret)."""

    __tablename__ = "audit"

    id: int | None = Field(default=None, primary_key=True)
    time: int = epoch_ms()
    actor: str = Field(max_length=100, index=True)
    action: str = Field(max_length=32)
    target_type: str = Field(max_length=32, index=True)
    target_id: str = Field(max_length=100)
    before: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class Person(Table, table=True):
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    department: str = Field(default="", max_length=100)
    platform_user_id: str | None = Field(default=None, max_length=100)
    cards: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    pins: list = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )  # keyed digests
    device_user_ids: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    access: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: int = epoch_ms()
    updated_at: int = epoch_ms()


class Command(Table, table=True):
    """A command queued down to a device: queued -> sent -> succeeded | failed | timed_out."""

    id: str = Field(primary_key=True, max_length=32)
    device_id: str = Field(max_length=64, index=True)
    name: str = Field(max_length=32)
    args: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: str = Field(max_length=16, index=True)
    detail: str = Field(default="", max_length=2000)
    created_by: str = Field(max_length=100)
    created_at: int = epoch_ms()
    sent_at: int | None = epoch_ms(nullable=True)
    finished_at: int | None = epoch_ms(nullable=True)
    timeout_s: int = 30


class ShiftRow(Table, table=True):
    """A shift rule (see gateway/attendance): local wall-clock times in the site's zone."""

    __tablename__ = "shift"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    start: str = Field(max_length=5)  # "HH:MM"
    end: str = Field(max_length=5)  # "HH:MM"; not after start = crosses midnight
    rules: dict = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )  # margins, grace, thresholds, modes
    workdays: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    updated_at: int = epoch_ms()


class ShiftAssignment(Table, table=True):
    """Who works which shift: a person, or everyone in a department (a person's own assignment wins)."""

    __tablename__ = "shift_assignment"
    __table_args__ = (Index("ix_assignment_target", "target_type", "target_id", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    target_type: str = Field(max_length=16)  # person | department
    target_id: str = Field(max_length=100)
    shift_id: str = Field(max_length=64)


class Holiday(Table, table=True):
    date: str = Field(primary_key=True, max_length=10)  # YYYY-MM-DD, the site's calendar
    name: str = Field(default="", max_length=200)


class LeaveDay(Table, table=True):
    __tablename__ = "leave_day"

    person_id: str = Field(primary_key=True, max_length=64)
    date: str = Field(primary_key=True, max_length=10)
    kind: str = Field(default="leave", max_length=32)


class Visit(Table, table=True):
    """A visitor's invitation and the visit it becomes (one row: the invitation id is the visitor id at the doors).

    The credential is stored in clear: the doors check it from memory. After the
    retention the personal fields are anonymised and the credential cleared; the
    row stays, so visits can still be counted.
    """

    __tablename__ = "visit"
    __table_args__ = (Index("ix_visit_valid_until", "valid_until"), Index("ix_visit_window_end", "window_end"))

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    company: str | None = Field(default=None, max_length=200)
    host_person_id: str = Field(max_length=64, index=True)  # no foreign key: the visit outlives its host's record
    window_start: int = epoch_ms()
    window_end: int = epoch_ms()
    doors: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    credential_kind: str = Field(max_length=8)  # pin | qr | card
    credential_value: str | None = Field(default=None, max_length=128)  # None once anonymised
    valid_from: int = epoch_ms()  # window_start less the lead time
    valid_until: int = epoch_ms()  # window_end
    revoked_at: int | None = epoch_ms(nullable=True)
    checked_in_at: int | None = epoch_ms(nullable=True)
    checked_out_at: int | None = epoch_ms(nullable=True)
    checkout_reason: str | None = Field(default=None, max_length=16)  # exit_reader | window_end
    anonymised_at: int | None = epoch_ms(nullable=True)
    created_at: int = epoch_ms()
    created_by: str = Field(max_length=100)


class VisitorBlock(Table, table=True):
    """A blocklist entry: an invitation whose visitor name or phone matches it is refused."""

    __tablename__ = "visitor_blocklist"

    id: int | None = Field(default=None, primary_key=True)
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    reason: str = Field(default="", max_length=500)
    created_at: int = epoch_ms()
    created_by: str = Field(max_length=100)


class VisitNotification(Table, table=True):
    """Tells a host their visitor has arrived; an uplink delivers it and sets `delivered`."""

    __tablename__ = "visit_notification"

    id: int | None = Field(default=None, primary_key=True)
    visit_id: int = Field(index=True)
    host_person_id: str = Field(max_length=64)
    time: int = epoch_ms()
    kind: str = Field(default="visitor_arrived", max_length=32)
    delivered: bool = Field(default=False, index=True)


class AccessSchedule(Table, table=True):
    """Weekly opening windows for people's access (local wall-clock times in the site's zone)."""

    __tablename__ = "access_schedule"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(default="", max_length=200)
    windows: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))  # weekday -> [[start, end]]
    holidays_closed: bool = True


class OutboxEntry(Table, table=True):
    """A record on its way to one uplink sink, written in the transaction that stored the record.

    pending -> sending (marked before the call, so after a crash the sink can check whether the lost
    call landed) -> delivered | parked (the platform refused the data itself; retried by hand).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("sink", "record_type", "record_key"),
        Index("ix_outbox_sink_state_id", "sink", "state", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    sink: str = Field(max_length=16)
    record_type: str = Field(max_length=24)
    record_key: str = Field(max_length=80)
    order_key: str = Field(default="", max_length=140)  # records of one person or vehicle go in order
    payload: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))  # None: read at send time
    state: str = Field(default="pending", max_length=12)
    attempts: int = 0
    next_attempt: int = epoch_ms(server_default="0")
    last_error: str = Field(default="", max_length=1000)
    created_at: int = epoch_ms()
    delivered_at: int | None = epoch_ms(nullable=True)
