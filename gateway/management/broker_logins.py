"""What provisioning needs of the MQTT broker: a login per device, changed with the device.

The transports implement it (the embedded broker's own check, mosquitto's dynamic security
plugin, or nothing when devices do not log in); provisioning knows only this port.
"""

from __future__ import annotations

from typing import Protocol


class BrokerAuthError(RuntimeError):
    """The broker did not take the change; the API answers 503 and changes nothing."""


class BrokerAuth(Protocol):
    def add_device(self, device_id: str, password: str, topics: tuple[str, ...] = ()) -> None: ...
    def set_password(self, device_id: str, password: str) -> None: ...
    def remove_device(self, device_id: str) -> None: ...
