"""What a device's registration holds for its protocol (`Device.config`), one model per protocol."""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, field_validator, model_serializer


class DeviceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoConfig(DeviceConfig):
    pass


class OwnTracksConfig(DeviceConfig):
    user: str = Field(min_length=1, max_length=64, pattern=r"^[^/#+]+$")
    device: str = Field(min_length=1, max_length=64, pattern=r"^[^/#+]+$")


class ZkAdmsConfig(DeviceConfig):
    sn: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    # The address the terminal pushes from: pinned at its first request unless set here; requests
    # from any other address are refused. Unbinding removes it (pinned again at the next request).
    address: str | None = Field(None, description="IPv4 or IPv6 address")
    # The terminal's comm key, checked when it sends `pushcommkey` on its handshake.
    comm_key: str | None = Field(None, min_length=1, max_length=64)

    @field_validator("address")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        return str(ipaddress.ip_address(value)) if value is not None else None

    @model_serializer(mode="wrap")
    def _given_keys_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}  # no "address": null before a pin


class OsdpConfig(DeviceConfig):
    line: str = Field(min_length=1, max_length=200)
    address: int = Field(ge=0, le=126)
    format: Literal["H10301", "H10306", "C1000", "H10302", "H10304"] = "H10301"
    door: str = Field("", max_length=64, pattern=r"^[A-Za-z0-9._-]*$", description="door id; empty = the device id")
    strike_ms: int = Field(3000, ge=100, le=25500, description="how long a grant pulses the strike")
    direction: Literal["in", "out"] = Field(
        "in", description='"out" for an exit reader: a visitor leaving is checked out'
    )


class SerialConfig(DeviceConfig):
    line: str = Field(min_length=1, max_length=200)


class Jt808Config(DeviceConfig):
    phone: str = Field(pattern=r"^[1-9][0-9]{0,19}$", description="digits as on the wire, no leading zeros")
    # What the terminal's 0x0100 must say when set: a phone number alone is no secret.
    terminal_id: str = Field("", max_length=30, pattern=r"^[\x21-\x7e]*$", description="empty = not checked")
    plate: str = Field("", max_length=32, description="plate (VIN when unplated); empty = not checked")
