"""What the dashboard's pages read from the store: devices with today's counts, recent events, the live feed,
visitors. Read-only; times stay epoch milliseconds until a template formats them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from gateway.store.columns import Table
from gateway.store.models import (
    AccessRecord,
    Command,
    DeadLetter,
    Device,
    FixRecord,
    Person,
    PunchRecord,
    StatusRecord,
    Visit,
)

# The normalised records, by the name the feed gives their kind.
RECORD_TABLES: dict[str, type[Table]] = {
    "punch": PunchRecord,
    "access": AccessRecord,
    "fix": FixRecord,
    "status": StatusRecord,
}
EVENT_KINDS = ("punch", "access", "fix")  # what "events today" counts; status rows are mostly liveness
FEED_BATCH = 200  # rows per kind in one poll; a busier second is caught up by the next polls


def day_bounds(zone: ZoneInfo, day: date | None = None) -> tuple[int, int]:
    """[start, end) of a day in the site's calendar, as epoch ms."""
    day = day or datetime.now(zone).date()
    start = datetime.combine(day, time(), zone)
    end = datetime.combine(day + timedelta(days=1), time(), zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def _counts_by_device(conn: Any, table: Any, since_ms: int) -> dict[str, int]:
    t = table.__table__.c
    query = select(t.device_id, func.count()).where(t.time >= since_ms).group_by(t.device_id)
    return {device_id: count for device_id, count in conn.execute(query) if device_id is not None}


def devices_overview(engine: Engine, since_ms: int) -> list[dict[str, Any]]:
    """Every device with what it sent since `since_ms` (events, dead letters)."""
    with engine.connect() as conn:
        devices = conn.execute(select(Device.__table__).order_by(Device.id)).all()
        events: dict[str, int] = {}
        for kind in EVENT_KINDS:
            for device_id, count in _counts_by_device(conn, RECORD_TABLES[kind], since_ms).items():
                events[device_id] = events.get(device_id, 0) + count
        dead = _counts_by_device(conn, DeadLetter, since_ms)
    return [
        {
            "id": d.id,
            "name": d.name,
            "kind": d.kind,
            "protocol": d.protocol,
            "online": d.online,
            "last_seen": d.last_seen,
            "firmware": d.firmware,
            "events_today": events.get(d.id, 0),
            "dead_today": dead.get(d.id, 0),
            "errors_total": d.errors_total,
        }
        for d in devices
    ]


def describe(kind: str, r: Any) -> str:
    """One line a person can read; never a credential's value (a visitor's PIN or QR is a secret)."""
    if kind == "punch":
        who = f"{r.user} ({r.person_id})" if r.person_id and r.person_id != r.user else r.user
        how = "" if r.verify.startswith("other") else f", {r.verify}"  # "other:<raw>": the device did not say
        return f"{who} punched {r.direction}{how}"
    if kind == "access":
        who = r.person_id or (f"visitor {r.visitor_id}" if r.visitor_id else f"unknown {r.credential_kind}")
        return f"door {r.door}: {r.decision} ({r.reason}) for {who}"
    if kind == "fix":
        speed = f", {r.speed_kmh:g} km/h" if r.speed_kmh is not None else ""
        return f"position {r.lat:.5f}, {r.lon:.5f}{speed}" + ("" if r.valid else " (invalid)")
    state = {True: "online", False: "offline"}.get(r.online, "status")
    detail = r.detail or {}
    if not r.raw_ref:  # written by the gateway's liveness tracking, not sent by the device
        return f"went {state} ({str(detail.get('reason', '')).replace('_', ' ')})"
    return f"reported {state}" + (f", firmware {detail['firmware']}" if detail.get("firmware") else "")


def feed_item(kind: str, r: Any) -> dict[str, Any]:
    return {
        "key": f"{kind}-{r.id}",
        "kind": kind,
        "id": r.id,
        "device_id": r.device_id,
        "time_ms": r.time,
        "stored_ms": r.stored_at,
        "summary": describe(kind, r),
    }


def device_detail(engine: Engine, device_id: str, limit: int = 20) -> dict[str, Any] | None:
    with Session(engine) as session:
        device = session.get(Device, device_id)
        if device is None:
            return None
        events: list[dict[str, Any]] = []
        with engine.connect() as conn:
            for kind, table in RECORD_TABLES.items():
                t = table.__table__.c
                rows = conn.execute(
                    select(table.__table__).where(t.device_id == device_id).order_by(t.time.desc()).limit(limit)
                )
                events += [feed_item(kind, r) for r in rows]
            d = DeadLetter.__table__.c
            dead = conn.execute(
                select(d.id, d.time, d.reason, d.detail, d.topic, d.size)
                .where(d.device_id == device_id)
                .order_by(d.id.desc())
                .limit(limit)
            ).all()
        commands = (
            session.execute(
                select(Command).where(col(Command.device_id) == device_id).order_by(col(Command.id).desc()).limit(limit)
            )
            .scalars()
            .all()
        )
        return {
            "device": device.model_dump(exclude={"credential_hash", "secret_enc"}),
            "events": sorted(events, key=lambda e: (e["time_ms"], e["key"]), reverse=True)[:limit],
            "dead": [dict(r._mapping) for r in dead],
            "commands": [c.model_dump() for c in commands],
        }


@dataclass(frozen=True)
class FeedCursor:
    """The newest row id of each record table the viewer has been sent."""

    last: dict[str, int]

    def encode(self) -> str:
        return ".".join(str(self.last.get(kind, 0)) for kind in RECORD_TABLES)

    @classmethod
    def decode(cls, text: str | None) -> FeedCursor | None:
        parts = (text or "").split(".")
        if len(parts) != len(RECORD_TABLES) or not all(p.isascii() and p.isdigit() and len(p) <= 18 for p in parts):
            return None  # not a cursor this endpoint gave out: start afresh
        return cls(dict(zip(RECORD_TABLES, map(int, parts))))


def feed(
    engine: Engine, kinds: tuple[str, ...], cursor: FeedCursor | None, limit: int = 50
) -> tuple[list[dict[str, Any]], FeedCursor]:
    """Records stored after `cursor`, newest first; without a cursor the newest `limit`.

    Row ids grow with every insert, so "after the cursor" is exactly what arrived
    since the last poll, whatever time the device put on its record.
    """
    items: list[dict[str, Any]] = []
    last: dict[str, int] = {}
    with engine.connect() as conn:
        for kind, table in RECORD_TABLES.items():
            t = table.__table__.c
            if cursor is None:
                last[kind] = conn.execute(select(func.max(t.id))).scalar() or 0
                if kind in kinds:
                    rows = conn.execute(select(table.__table__).order_by(t.id.desc()).limit(limit)).all()
                    items += [feed_item(kind, r) for r in rows]
                continue
            last[kind] = cursor.last.get(kind, 0)
            if kind not in kinds:
                continue
            rows = conn.execute(select(table.__table__).where(t.id > last[kind]).order_by(t.id).limit(FEED_BATCH)).all()
            if rows:
                last[kind] = rows[-1].id
            items += [feed_item(kind, r) for r in rows]
    items.sort(key=lambda i: (i["stored_ms"], i["time_ms"], i["key"]), reverse=True)
    return (items[:limit] if cursor is None else items), FeedCursor(last)


def people_names(session: Session, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    return dict(session.execute(select(col(Person.id), col(Person.name)).where(col(Person.id).in_(ids))).all())


def _visit_row(v: Visit, hosts: dict[str, str]) -> dict[str, Any]:
    return {
        "id": v.id,
        "name": v.name,
        "company": v.company,
        "host": v.host_person_id,
        "host_name": hosts.get(v.host_person_id),
        "start_ms": v.window_start,
        "end_ms": v.window_end,
        "checked_in_ms": v.checked_in_at,
        "checked_out_ms": v.checked_out_at,
        "doors": list(v.doors),
        "credential_kind": v.credential_kind,
    }


def visitors_today(engine: Engine, start_ms: int, end_ms: int) -> dict[str, list[dict[str, Any]]]:
    """Expected today (window overlaps the day, not revoked) and on site now (the evacuation roll call)."""
    t = Visit.__table__.c
    live = (t.anonymised_at.is_(None),)
    with Session(engine) as session:
        expected = (
            session.execute(
                select(Visit)
                .where(
                    *live,
                    t.revoked_at.is_(None),
                    t.window_start < end_ms,
                    t.window_end > start_ms,
                )
                .order_by(t.window_start, t.id)
            )
            .scalars()
            .all()
        )
        on_site = (
            session.execute(
                select(Visit)
                .where(
                    *live,
                    t.checked_in_at.is_not(None),
                    t.checked_out_at.is_(None),
                )
                .order_by(t.name, t.id)
            )
            .scalars()
            .all()
        )
        hosts = people_names(session, {v.host_person_id for v in [*expected, *on_site]})
        return {
            "expected": [_visit_row(v, hosts) for v in expected],
            "on_site": [_visit_row(v, hosts) for v in on_site],
        }


def invite_choices(engine: Engine, limit: int = 2000) -> dict[str, list[Any]]:
    """Hosts and door ids to offer in the invitation form."""
    with engine.connect() as conn:
        p, d, a = Person.__table__.c, Device.__table__.c, AccessRecord.__table__.c
        hosts = conn.execute(select(p.id, p.name).order_by(p.name).limit(limit)).all()
        configured = conn.execute(select(d.id, d.config).where(d.kind == "access")).all()
        seen = conn.execute(select(a.door).distinct().limit(200)).scalars().all()
    doors = {str(config.get("door") or device_id) for device_id, config in configured if isinstance(config, dict)}
    return {"hosts": [(h.id, h.name) for h in hosts], "doors": sorted(doors | set(seen))}
