"""Device logins at the broker: each device may speak only as itself.

Three ways, chosen by the broker in use:
- `DynsecAuth`: mosquitto's dynamic security plugin, managed by the gateway over
  `$CONTROL/dynamic-security/v1`: one client and one role per device; the role
  lets it publish under `devices/<id>/` and subscribe to its own commands.
- `EmbeddedAuth`: the embedded broker checks logins against the registry at
  connect time (see embedded_broker.py); here it only drops live sessions.
- `NoBrokerAuth`: the broker's own password and ACL files do it.
All calls are blocking (the API calls them from its worker threads).
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any

import orjson

from gateway.management.broker_logins import BrokerAuthError

log = logging.getLogger(__name__)

CONTROL = "$CONTROL/dynamic-security/v1"
GATEWAY_ROLE = "gateway-commands"


class NoBrokerAuth:
    def add_device(self, device_id: str, password: str, topics: tuple[str, ...] = ()) -> None:
        pass

    def set_password(self, device_id: str, password: str) -> None:
        pass

    def remove_device(self, device_id: str) -> None:
        pass


class EmbeddedAuth:
    """The embedded broker reads logins from the registry; a change only has to drop live sessions."""

    def __init__(self, kick: Any) -> None:
        self._kick = kick  # (username) -> None, blocking

    def add_device(self, device_id: str, password: str, topics: tuple[str, ...] = ()) -> None:
        pass

    def set_password(self, device_id: str, password: str) -> None:
        self._kick(device_id)

    def remove_device(self, device_id: str) -> None:
        self._kick(device_id)


def device_role(device_id: str) -> str:
    return f"device-{device_id}"


class DynsecAuth:
    def __init__(
        self, publish: Any, gateway_username: str, timeout: float = 5.0, north_prefix: str = "platform"
    ) -> None:
        self._publish = publish  # (topic, payload) -> None, through the gateway's own MQTT client
        self._gateway_username = gateway_username
        self._north_prefix = north_prefix  # where the MQTT uplink publishes records
        self._timeout = timeout
        self._ids = itertools.count(1)
        self._waiting: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._lock = threading.Lock()

    # -- request / response ---------------------------------------------------

    def on_response(self, payload: bytes) -> None:
        """Called by the MQTT transport for each message on the response topic."""
        try:
            responses = orjson.loads(payload).get("responses", [])
        except (orjson.JSONDecodeError, AttributeError):
            log.warning("unreadable dynamic-security response: %r", payload[:200])
            return
        for response in responses:
            correlation = str(response.get("correlationData", ""))
            with self._lock:
                waiting = self._waiting.get(correlation)
            if waiting is not None:
                waiting[1].append(response)
                waiting[0].set()

    def _call(self, commands: list[dict[str, Any]], tolerate: tuple[str, ...] = ()) -> None:
        events = []
        for command in commands:
            correlation = f"gw-{next(self._ids)}"
            command["correlationData"] = correlation
            entry: tuple[threading.Event, list[dict[str, Any]]] = (threading.Event(), [])
            with self._lock:
                self._waiting[correlation] = entry
            events.append((correlation, command["command"], entry))
        try:
            self._publish(CONTROL, orjson.dumps({"commands": commands}))
            for _correlation, name, (event, result) in events:
                if not event.wait(self._timeout):
                    raise BrokerAuthError(
                        f"the broker did not answer {name}: is mosquitto's dynamic security plugin loaded and "
                        f'the gateway\'s login its admin? (or set mqtt.device_auth = "off")'
                    )
                error = result[0].get("error")
                if error and not any(t in error for t in tolerate):
                    raise BrokerAuthError(f"broker refused {name}: {error}")
        finally:
            with self._lock:
                for correlation, _, _ in events:
                    self._waiting.pop(correlation, None)

    # -- the gateway's own rights ---------------------------------------------

    def ensure_gateway_role(self) -> None:
        """Let the gateway publish commands to devices and records to the platform (dynsec's admin role cannot)."""
        self._call(
            [
                {
                    "command": "createRole",
                    "rolename": GATEWAY_ROLE,
                    "acls": [
                        {"acltype": "publishClientSend", "topic": "devices/+/commands", "allow": True},
                    ],
                },
                {"command": "addClientRole", "username": self._gateway_username, "rolename": GATEWAY_ROLE},
            ],
            tolerate=("already exists", "already has"),
        )
        self._add_acls(GATEWAY_ROLE, (f"{self._north_prefix}/#",))

    def _add_acls(self, role: str, topics: tuple[str, ...]) -> None:
        """Publish rights on `topics`, also for a role made by an earlier run (creating it again changes nothing)."""
        for topic in topics:
            self._call(
                [
                    {
                        "command": "addRoleACL",
                        "rolename": role,
                        "acltype": "publishClientSend",
                        "topic": topic,
                        "allow": True,
                    }
                ],
                tolerate=("already",),
            )

    # -- devices --------------------------------------------------------------

    def add_device(self, device_id: str, password: str, topics: tuple[str, ...] = ()) -> None:
        """A login for the device; it may publish under devices/<id>/ and on `topics` (an OwnTracks phone's own)."""
        role = device_role(device_id)
        self._call(
            [
                {
                    "command": "createRole",
                    "rolename": role,
                    "acls": [
                        {"acltype": "publishClientSend", "topic": f"devices/{device_id}/#", "allow": True},
                        {"acltype": "subscribePattern", "topic": f"devices/{device_id}/commands", "allow": True},
                    ],
                },
            ],
            tolerate=("already exists",),
        )
        self._add_acls(role, topics)
        self._call([{"command": "deleteClient", "username": device_id}], tolerate=("not found",))
        self._call(
            [
                {"command": "createClient", "username": device_id, "password": password, "roles": [{"rolename": role}]},
            ]
        )

    def set_password(self, device_id: str, password: str) -> None:
        # Disabling drops the live connection, so the old password stops working at once.
        self._call(
            [
                {"command": "setClientPassword", "username": device_id, "password": password},
                {"command": "disableClient", "username": device_id},
                {"command": "enableClient", "username": device_id},
            ]
        )

    def remove_device(self, device_id: str) -> None:
        self._call(
            [
                {"command": "deleteClient", "username": device_id},
                {"command": "deleteRole", "rolename": device_role(device_id)},
            ],
            tolerate=("not found",),
        )
