"""The REST API: thin routers over the store and the domains."""

from __future__ import annotations

from fastapi import FastAPI

from gateway import __version__
from gateway.api import (
    access,
    attendance,
    audit,
    devices,
    errors,
    health,
    limits,
    people,
    records,
    tokens,
    uplink,
    vehicles,
    visitors,
)
from gateway.services import Services


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="Office hardware gateway",
        version=__version__,
        description="Provisioning, records and health of the office's attendance, door and vehicle devices.",
    )
    app.state.services = services
    errors.install(app)
    app.add_middleware(limits.BodyLimit)
    app.include_router(health.router)
    app.include_router(devices.router, responses=errors.RESPONSES)
    app.include_router(records.router, responses=errors.RESPONSES)
    app.include_router(attendance.router, responses=errors.RESPONSES)
    app.include_router(access.router, responses=errors.RESPONSES)
    app.include_router(people.router, responses=errors.RESPONSES)
    app.include_router(tokens.router, responses=errors.RESPONSES)
    app.include_router(audit.router, responses=errors.RESPONSES)
    app.include_router(visitors.router, responses=errors.RESPONSES)
    app.include_router(vehicles.router, responses=errors.RESPONSES)
    app.include_router(uplink.router, responses=errors.RESPONSES)
    return app
