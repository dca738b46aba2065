"""The audit log, read-only: who changed what, when, before and after."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Engine, select

from gateway.api.deps import Page, allow, engine, page, paginated, within
from gateway.core.timeutil import iso_utc
from gateway.store.models import AuditEntry

router = APIRouter(prefix="/api/v1", tags=["audit"])
read_audit = allow("auditor")


def shape(r: Any) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "time": iso_utc(r.time),
        "actor": r.actor,
        "action": r.action,
        "target_type": r.target_type,
        "target_id": r.target_id,
        "before": r.before,
        "after": r.after,
    }


@router.get("/audit", dependencies=[Depends(read_audit)])
def list_audit(
    p: Page = Depends(page),
    eng: Engine = Depends(engine),
    actor: Annotated[str | None, Query(max_length=100, description='e.g. "bootstrap-admin" or "token:<name>"')] = None,
    action: Annotated[str | None, Query(max_length=32, description="create|update|delete|import|revoke")] = None,
    target_type: Annotated[str | None, Query(max_length=32, description="person|token|device|...")] = None,
    target_id: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[str | None, Query(max_length=64, description="RFC 3339, inclusive")] = None,
    until: Annotated[str | None, Query(max_length=64, description="RFC 3339, exclusive")] = None,
) -> dict[str, Any]:
    table = AuditEntry.__table__
    t = table.c
    # Oldest first, by id: the order the changes were committed in.
    query = select(table).where(t.id > p.after_id).order_by(t.id).limit(p.limit + 1)
    for column, value in ((t.actor, actor), (t.action, action), (t.target_type, target_type), (t.target_id, target_id)):
        if value is not None:
            query = query.where(column == value)
    query = within(query, t.time, since, until)
    with eng.connect() as conn:
        rows = conn.execute(query).all()
    return paginated(rows, p.limit, shape)
