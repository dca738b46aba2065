"""The health panel: queue depth, ingest rate, dead letters by reason - the figures /metrics serves."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response

from gateway.dashboard.auth import Viewer, allowed, services
from gateway.dashboard.figures import health_figures, ingest_meter
from gateway.dashboard.web import PAGE_HEADERS, page_router, render
from gateway.services import Services

router = page_router()


@router.get("/dashboard/health")
def health_page(
    request: Request, viewer: Viewer = Depends(allowed("read_health")), svc: Services = Depends(services)
) -> Response:
    figures = health_figures(svc, ingest_meter(request.app.state))
    return render(request, viewer, "health.html", title="Health", figures=figures)


@router.get("/dashboard/health.json")
def health_json(
    request: Request, viewer: Viewer = Depends(allowed("read_health")), svc: Services = Depends(services)
) -> Response:
    """Polled by the health page every few seconds; each poll is also a reading for the ingest rate."""
    return JSONResponse(health_figures(svc, ingest_meter(request.app.state)), headers=PAGE_HEADERS)
