"""The uplink to the office platform: per-sink status, parked records and their retry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path

from gateway.api.deps import Actor, Page, admin_only, page, paginated, read_devices, read_records, services
from gateway.services import Services

router = APIRouter(prefix="/api/v1/uplink", tags=["uplink"])


@router.get("/status", dependencies=[Depends(read_devices)])
def uplink_status(svc: Services = Depends(services)) -> dict[str, Any]:
    """Per enabled sink: `backlog` (waiting), `delivered`, `parked`, `failed` attempts since start,
    `last_error`, `rate` (records/s over the last 10 s) and whether device input is being refused
    because the backlog is full."""
    return {row["sink"]: row for row in svc.uplink.status()}


@router.get("/parked", dependencies=[Depends(read_records)])
def parked_records(p: Page = Depends(page), svc: Services = Depends(services)) -> dict[str, Any]:
    """Records the platform refused as wrong (an unknown user, say), with its reason; fix the data, then retry."""
    rows = svc.uplink.parked(p.limit + 1, p.after_id)
    return paginated(rows, p.limit, lambda r: {**r, "id": str(r["id"])}, key=lambda r: r["id"])


@router.post("/parked/{entry_id}/retry", status_code=202)
def retry_parked(
    entry_id: Annotated[int, Path(ge=1, le=2**62)],
    actor: Actor = Depends(admin_only),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    if not svc.uplink.retry(entry_id):
        raise HTTPException(404, f"no parked record {entry_id}")
    return {"id": str(entry_id), "state": "pending"}
