"""What the API and the dashboard may use of the running gateway.

`app.Gateway` builds these parts and satisfies this protocol; routers and
pages are typed against it, so they see the services, never the composition
root (and tests can hand them a smaller stand-in).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from gateway.access.readers import DoorReaders
    from gateway.access.schedule_service import Schedules
    from gateway.access.service import AccessControl
    from gateway.attendance.service import Attendance
    from gateway.auth.token_service import Tokens
    from gateway.config import Settings
    from gateway.core.metrics import Metrics
    from gateway.management.commands import Commands
    from gateway.management.liveness import Liveness
    from gateway.management.provisioning import Provisioner
    from gateway.management.registry import Registry
    from gateway.people.service import People
    from gateway.pipeline import IngestQueue, Pipeline
    from gateway.uplink.service import Uplink
    from gateway.vehicles.fleet import Fleet
    from gateway.vehicles.service import Vehicles
    from gateway.visitors.service import Visitors


class Services(Protocol):
    settings: Settings
    version: str
    engine: Engine
    metrics: Metrics
    registry: Registry
    queue: IngestQueue
    pipeline: Pipeline
    liveness: Liveness
    commands: Commands
    provisioner: Provisioner
    access: AccessControl
    schedules: Schedules
    people: People
    attendance: Attendance
    tokens: Tokens
    visitors: Visitors
    vehicles: Vehicles
    fleet: Fleet
    uplink: Uplink
    door_readers: DoorReaders | None

    def mqtt_connected(self) -> bool | None: ...

    def people_changed(self) -> None: ...
