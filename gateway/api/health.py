from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.api.deps import services
from gateway.services import Services

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(svc: Services = Depends(services)) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": svc.version,
        "mqtt_connected": svc.mqtt_connected(),
        "queue_depth": len(svc.queue),
        "devices": len(svc.registry),
    }


@router.get("/metrics", response_class=Response)
def metrics(svc: Services = Depends(services)) -> Response:
    svc.metrics.queue_depth.set(len(svc.queue))
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
