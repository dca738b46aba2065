"""Door events with their decision and reason."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from gateway.api.deps import Page, engine, page, paginated, query_time, read_records
from gateway.store.models import AccessRecord
from gateway.timeutil import iso_local, iso_utc

router = APIRouter(prefix="/api/v1/access", tags=["access"])


def shape_access(r: Any) -> dict[str, Any]:
    return {
        "id": str(r.id), "device_id": r.device_id, "door": r.door, "time": iso_utc(r.time),
        "local_time": iso_local(r.time, r.utc_offset_min),
        "credential": {"kind": r.credential_kind, "value": r.credential_value, "bits": r.credential_bits,
                       "format": r.credential_format, "facility": r.facility, "number": r.number},
        "person_id": r.person_id, "visitor_id": r.visitor_id, "decision": r.decision, "reason": r.reason,
        "direction": r.direction, "source": r.source,
    }  # fmt: skip


@router.get("/events", dependencies=[Depends(read_records)])
def list_access_events(
    p: Page = Depends(page),
    eng: Any = Depends(engine),
    door: Annotated[str | None, Query(max_length=64)] = None,
    device_id: Annotated[str | None, Query(max_length=64)] = None,
    decision: Annotated[str | None, Query(pattern="^(granted|denied)$")] = None,
    since: Annotated[str | None, Query(max_length=64, description="RFC 3339, inclusive")] = None,
    until: Annotated[str | None, Query(max_length=64, description="RFC 3339, exclusive")] = None,
) -> dict[str, Any]:
    t = AccessRecord.__table__.c
    query = select(t).where(t.id > p.after_id).order_by(t.id).limit(p.limit + 1)
    for column, value in ((t.door, door), (t.device_id, device_id), (t.decision, decision)):
        if value is not None:
            query = query.where(column == value)
    if (start := query_time("since", since)) is not None:
        query = query.where(t.time >= start)
    if (end := query_time("until", until)) is not None:
        query = query.where(t.time < end)
    with eng.connect() as conn:
        rows = conn.execute(query).all()
    return paginated(rows, p.limit, shape_access)
