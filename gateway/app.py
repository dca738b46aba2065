"""The composition root: builds every part from the settings, starts and stops them in order."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import uvicorn
from fastapi import FastAPI
from sqlmodel import Session

from gateway import __version__
from gateway.access import mqtt_doors
from gateway.access.schedule_service import Schedules
from gateway.access.service import AccessControl
from gateway.api import create_app
from gateway.attendance.service import Attendance
from gateway.auth import secretbox
from gateway.auth.credentials import verify_secret
from gateway.auth.token_service import Tokens
from gateway.config import SerialLineSettings, Settings
from gateway.core.metrics import Metrics
from gateway.dashboard import router as dashboard_router
from gateway.devices.families import family
from gateway.devices.zk_session import AdmsSession
from gateway.devices.zk_session import Terminal as ZkTerminal
from gateway.management.broker_logins import BrokerAuth
from gateway.management.commands import Commands
from gateway.management.jt808_bindings import Jt808Bindings
from gateway.management.liveness import Liveness
from gateway.management.provisioning import Provisioner
from gateway.management.registry import Registry
from gateway.people.index import PeopleIndex
from gateway.people.service import People
from gateway.pipeline import IngestQueue, Pipeline, deadletters
from gateway.services import Services
from gateway.store.db import make_engine, upgrade
from gateway.store.models import Device
from gateway.transports import http_listener
from gateway.transports.broker_auth import CONTROL, DynsecAuth, EmbeddedAuth, NoBrokerAuth
from gateway.transports.embedded_broker import EmbeddedBroker
from gateway.transports.jt808_server import Jt808Server
from gateway.transports.mqtt import MqttTransport
from gateway.transports.serial_line import SerialLine
from gateway.transports.zk_http import ZkAdmsHttp
from gateway.transports.zk_trust import AllowList, ZkBindings
from gateway.uplink.outbox import Outbox
from gateway.uplink.service import Uplink
from gateway.vehicles.fixes import TripSettings
from gateway.vehicles.fleet import Fleet
from gateway.vehicles.service import Vehicles
from gateway.visitors.service import DAY_MS, HOUSEKEEPING_S, MINUTE_MS, Visitors
from gateway.visitors.views import door_rows

if TYPE_CHECKING:
    from gateway.access.readers import DoorReaders

log = logging.getLogger(__name__)
STOP_TIMEOUT = 4.0  # of the 5 s a clean stop may take
TRIPS_EVERY_S = 2.0  # how soon new fixes show up in trips
PEOPLE_REFRESH_WAIT_S = 2.0
HTTP_MAX_CONNECTIONS = 200  # per listener (API, ZK ADMS)
HTTP_MAX_HEADER_BYTES = 16 * 1024


def build_app(services: Services) -> FastAPI:
    """The REST API with the dashboard's pages (session cookie, left out of the OpenAPI document) beside it."""
    app = create_app(services)
    app.include_router(dashboard_router)
    return app


@dataclass
class Gateway:
    settings: Settings
    version: str = __version__
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        s = self.settings
        self.engine = make_engine(s.database.url.get_secret_value(), s.database.sqlite_synchronous)
        self.registry = Registry(self.engine, s.site.timezone)
        self.queue = IngestQueue(s.pipeline.queue_size, s.pipeline.batch_size)
        self.people_index = PeopleIndex(self.engine)
        self.pipeline = Pipeline(
            self.engine,
            self.registry,
            self.queue,
            self.metrics,
            batch_ms=s.pipeline.batch_ms,
            max_payload=s.mqtt.max_payload,
            people=self.people_index,
        )
        self.liveness = Liveness(self.engine, s.liveness, self.metrics)
        box = secretbox.load(s)
        self.access = AccessControl(self.engine, s.site.timezone, self.queue)
        self.access.pin_digest = box.digest
        self.access.anti_passback = list(s.access.anti_passback)
        self.access.door_groups = s.access.door_groups
        self.schedules = Schedules(self.engine, self.access.reload)
        self.people = People(self.engine, box.digest, self.people_changed)
        self.attendance = Attendance(self.engine, s.site.timezone, on_holidays_changed=self.access.reload)
        self.tokens = Tokens(self.engine)
        self.visitors = Visitors(
            self.engine,
            self.access,
            lead_ms=s.visitors.lead_minutes * MINUTE_MS,
            retention_ms=s.visitors.retention_days * DAY_MS,
            card_pool=s.visitors.card_pool,
        )
        self.access.visitor_rows = door_rows  # invited visitors' credentials are in the doors' snapshot
        self.access.on_decision.append(self.visitors.on_decision)  # check-in/out after the door has its answer
        self.commands = Commands(self.engine, self.metrics)
        self.outbox = Outbox(self.engine, s.uplink.routes())
        v = s.vehicles
        self.vehicles = Vehicles(
            self.engine,
            TripSettings(
                min_distance_m=v.min_distance_m,
                stop_window_s=v.stop_window_s,
                max_gap_s=v.max_gap_s,
                max_speed_kmh=v.max_speed_kmh,
                future_s=v.future_s,
                filters=frozenset(v.filters),
                settle_radius_m=min(50.0, v.min_distance_m / 2),  # trip ends are trimmed to the parking place
            ),
            self.outbox,
            v.geofence_dwell_s,
        )
        self.fleet = Fleet(self.engine, self.vehicles, self.registry.link_vehicle)
        self.pipeline.decide_access = self.access.decide_request
        self.pipeline.on_commit += [
            self.liveness.on_commit,
            self.commands.on_commit,
            partial(mqtt_doors.answer_requests, self.commands),
            self.vehicles.on_commit,
        ]
        self.broker: EmbeddedBroker | None = None
        self.mqtt: MqttTransport | None = None
        broker_auth: BrokerAuth = NoBrokerAuth()
        if s.mqtt.embedded:
            self.broker = EmbeddedBroker(s.mqtt.listen, self.queue, self.metrics, self._check_login)
            broker_auth = EmbeddedAuth(self.broker.kick_blocking)
        else:
            self.mqtt = MqttTransport(s.mqtt, self.queue, self.metrics)
            if s.mqtt.device_auth == "dynsec":
                dynsec = DynsecAuth(
                    lambda topic, payload: self.mqtt.publish(topic, payload),
                    s.mqtt.username,
                    north_prefix=s.uplink.mqtt.topic_prefix,
                )
                self.mqtt.control[CONTROL + "/response"] = dynsec.on_response
                self.mqtt.on_connected.append(self._ensure_gateway_role(dynsec))
                broker_auth = dynsec
        self.serial_lines = [
            SerialLine(line.port, line.baudrate, line.protocol, line.device_id, self.queue)
            for line in s.serial
            if family(line.protocol).serial == "text_lines"
        ]
        self.door_readers: DoorReaders | None = None
        self.jt808: Jt808Server | None = None
        if s.jt808.listen:
            self.jt808 = Jt808Server(
                s.jt808.listen,
                self.queue,
                self.registry,
                self.metrics,
                bindings=Jt808Bindings(self.engine, box),
                heartbeat=self.liveness.heartbeat,
                accept_bad_checksum=s.jt808.accept_bad_checksum,
                idle_timeout=s.jt808.idle_timeout_s,
                allow=s.jt808.allow,
            )
        self.zk_adms = ZkAdmsHttp(
            AdmsSession(self._zk_terminal, ZoneInfo(s.site.timezone), self.pipeline.max_payload),
            self.queue,
            self.liveness.heartbeat,
            self.commands,
            ZkBindings(self.engine),
            AllowList(s.zk.allow),
        )
        self.provisioner = Provisioner(self.engine, self.registry, self.liveness, box, broker_auth)
        self.pipeline.outbox = self.outbox
        self.visitors.outbox = self.outbox
        publish_north = self.broker.publish if self.broker is not None else self._publish_north
        self.uplink = Uplink(self.engine, s, self.metrics, self.outbox, self.queue, publish_north)
        self.pipeline.on_commit.append(self.uplink.on_commit)
        self._listeners: list[tuple[http_listener.Listener, asyncio.Task[Any]]] = []  # ZK ADMS's (if apart), API
        self._tasks: list[asyncio.Task[Any]] = []
        self.stopped = asyncio.Event()

    def mqtt_connected(self) -> bool | None:
        return self.mqtt.connected.is_set() if self.mqtt is not None else None

    async def _check_login(self, username: str | None, password: str | bytes | None) -> str | None:
        """Embedded broker logins: the gateway's own, or a registered device's."""
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        own = self.settings.mqtt
        if own.username and username == own.username:
            expected = own.password.get_secret_value()
            return "gateway" if password is not None and hmac.compare_digest(password, expected) else None
        if not username or not password:
            return None
        stored = await asyncio.to_thread(self._credential_hash, username)
        return "device" if await asyncio.to_thread(verify_secret, password, stored) else None

    def people_changed(self) -> None:
        """After a change to people: the doors decide with it at once; new punches resolve with
        it, stored ones are re-mapped."""
        self.access.reload()

        def refresh() -> None:
            self.people_index.load()
            self.people_index.remap()

        done = self.pipeline.run_in_writer(refresh)
        if self.pipeline.alive and not self.pipeline.on_writer_thread():
            # Answer the change only once punches arriving after it resolve with it.
            done.wait(PEOPLE_REFRESH_WAIT_S)

    async def _publish_north(self, topic: str, payload: bytes) -> None:
        assert self.mqtt is not None
        await self.mqtt.publish_confirmed(topic, payload)

    def _zk_terminal(self, sn: str) -> ZkTerminal | None:
        device = self.registry.by_zk_sn(sn)
        return ZkTerminal(device.id, device.tz) if device is not None else None

    def _credential_hash(self, device_id: str) -> str | None:
        with Session(self.engine) as session:
            device = session.get(Device, device_id)
            return device.credential_hash if device is not None else None

    def _ensure_gateway_role(self, dynsec: DynsecAuth) -> Any:
        def ensure() -> None:
            try:
                dynsec.ensure_gateway_role()
            except Exception as exc:
                log.error("could not give the gateway its broker role for commands: %s", exc)

        return ensure

    async def start(self) -> None:
        s = self.settings
        await asyncio.to_thread(upgrade, self.engine)
        await asyncio.to_thread(self.registry.load)
        await asyncio.to_thread(self.liveness.load)
        await asyncio.to_thread(self.people_index.load)
        await asyncio.to_thread(self.access.reload)
        self.pipeline.start()
        self.visitors.start()
        if self.broker is not None:
            await self.broker.start()
            self.commands.bind(asyncio.get_running_loop(), self.broker.publish)
        if self.mqtt is not None:
            self.mqtt.start()
            self.commands.bind(asyncio.get_running_loop(), self.mqtt.publish_confirmed)
        for line in self.serial_lines:
            line.start()
        if self.jt808 is not None:
            await self.jt808.start()
        self.uplink.start()
        osdp_lines = [line for line in s.serial if line.protocol == "osdp"]
        if osdp_lines:
            from gateway.access.readers import DoorReaders

            self.door_readers = DoorReaders(self.engine, self.access, self.provisioner, self.liveness)
            await asyncio.to_thread(_start_door_lines, osdp_lines, self.door_readers)
        for configured in s.serial:
            if family(configured.protocol).serial is None:
                log.warning(
                    "serial line %s: protocol %r is not supported yet; ignored", configured.port, configured.protocol
                )
        self._tasks = [
            asyncio.create_task(_every(1.0, self.liveness.sweep, "liveness sweep")),
            asyncio.create_task(_every(0.5, self.commands.expire, "command expiry")),
            asyncio.create_task(_every(HOUSEKEEPING_S, self.visitors.housekeeping, "visitor housekeeping")),
            asyncio.create_task(_every(TRIPS_EVERY_S, self.vehicles.recompute_dirty, "trip recomputation")),
            asyncio.create_task(_every(deadletters.EVERY_S, self._prune_dead_letters, "dead-letter housekeeping")),
        ]
        if self.door_readers is not None:
            self._tasks.append(asyncio.create_task(_every(5.0, self.door_readers.heartbeat, "reader heartbeat")))
        app = build_app(self)
        if s.zk.listen:  # ZK ADMS terminals on their own listener: the device network need not reach the API
            zk_app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
            zk_app.include_router(self.zk_adms.router)
            self._listeners.append(await http_listener.serve(_http(zk_app, *s.zk.host_port()), s.zk.listen))
            log.info("ZK ADMS (/iclock) on http://%s", s.zk.listen)
        else:
            app.include_router(self.zk_adms.router)  # ZK ADMS terminals: no bearer token, identified by SN
        self._listeners.append(await http_listener.serve(_http(app, *s.api.host_port()), s.api.listen))
        log.info("gateway ready: API on http://%s", s.api.listen)

    def _prune_dead_letters(self) -> None:
        d = self.settings.deadletters
        deadletters.prune(self.engine, self.metrics, d.retention_days, d.max_mb * 1024 * 1024)

    async def stop(self) -> None:
        """Stop intake, commit and acknowledge what is queued, then close everything."""
        for task in self._tasks:
            task.cancel()
        await self.uplink.stop()
        for transport in (self.broker, self.mqtt):
            if transport is not None:
                transport.pause()
        if self.jt808 is not None:
            await self.jt808.stop()
        for line in self.serial_lines:
            await asyncio.to_thread(line.stop, 0.5)
        if self.door_readers is not None:
            await asyncio.to_thread(self.door_readers.stop)
        await asyncio.to_thread(self.visitors.stop, 0.5)
        await asyncio.to_thread(self.pipeline.stop, STOP_TIMEOUT - 1.0)
        if self.mqtt is not None:
            await self.mqtt.stop()
        if self.broker is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.broker.stop(), 1.0)
        await http_listener.stop(self._listeners, 1.0)
        self.engine.dispose()
        self.stopped.set()

    async def run_until_signal(self, seconds: float | None = None) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await asyncio.wait_for(stop.wait(), seconds) if seconds else await stop.wait()
        except TimeoutError:
            pass
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def _start_door_lines(lines: list[SerialLineSettings], readers: DoorReaders) -> None:
    """One OSDP line per port, carrying the readers registered on it; its card reads and keypresses
    go to the door logic, which answers on the same line."""
    from gateway.transports.osdp_cp import OsdpLine  # libosdp is loaded only where doors are

    keys = readers.load([line.port for line in lines])
    for line in lines:
        if not keys[line.port]:
            log.warning("OSDP line %s has no readers registered; not started", line.port)
            continue
        on_event = partial(readers.on_event, line.port)
        readers.attach(
            line.port, OsdpLine(line.port, keys[line.port], baudrate=line.baudrate, on_event=on_event).start()
        )


def _http(app: FastAPI, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        log_level="warning",
        access_log=False,
        server_header=False,
        limit_concurrency=HTTP_MAX_CONNECTIONS,  # beyond this, 503 instead of more memory
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=HTTP_MAX_HEADER_BYTES,
    )


async def _every(interval: float, job: Any, what: str) -> None:
    """Run a blocking housekeeping job on a worker thread every `interval` seconds, for ever."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(job)
        except Exception:
            log.exception("%s failed", what)


def run_loop(main: Any) -> Any:
    """Run a coroutine on uvloop (the asyncio default loop where uvloop is missing)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        return asyncio.run(main)
    return uvloop.run(main)
