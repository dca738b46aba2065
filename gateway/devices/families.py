"""One entry per device protocol: everything the rest of the gateway needs to know about it.

A family declares its registration config, what identifies a device on its own
wire, the pipeline channels it speaks on and the decoder of each, the
credentials it is issued, how commands reach it, and whether it sits on a
serial line. The API's protocol list, provisioning, the registry's lookups,
the pipeline's decoders, the app's serial lines and the command routing are
all derived from `FAMILIES`. Adding a protocol: one entry here, its codec, its
test vectors and its tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Literal

from gateway.devices import (
    access_log,
    attlog,
    card_lines,
    jt808,
    jt808_location,
    mqtt_device,
    mqtt_json,
    owntracks,
    zk_adms,
)
from gateway.devices.base import Decoded
from gateway.devices.configs import (
    DeviceConfig,
    Jt808Config,
    NoConfig,
    OsdpConfig,
    OwnTracksConfig,
    SerialConfig,
    ZkAdmsConfig,
)
from gateway.devices.nmea import NmeaReader

# (payload, device id, the device's time zone, time received) -> what the codec made of it
Decode = Callable[[bytes, str, tzinfo, datetime], Decoded]
# Called once per pipeline: a decoder that keeps per-device state keeps it for that pipeline only.
DecoderFactory = Callable[[], Decode]

Credentials = Literal["mqtt_login", "scbk", "auth_code"]
# push: published on devices/{id}/commands; pull: the device fetches them when it polls.
CommandRoute = Literal["push", "pull"]
# text_lines: the serial transport hands over what the port had; osdp: a libosdp control panel owns the port.
SerialKind = Literal["text_lines", "osdp"]

# Terminals dated more than this ahead of the gateway have a wrong clock (ZKTeco's own server does the same).
FUTURE_LIMIT = timedelta(days=1)


@dataclass(frozen=True)
class Family:
    protocol: str
    config: type[DeviceConfig]
    # pipeline channel -> its decoder. MQTT channels are topics under devices/{id}/; other transports
    # name the channel themselves and set the device id.
    channels: Mapping[str, DecoderFactory]
    # Config values no two devices of the protocol may share.
    identity_keys: tuple[str, ...] = ()
    # Config values (joined by "/") the device is known by on its wire, where that is not its id.
    wire_key: tuple[str, ...] = ()
    credentials: Credentials | None = None
    commands: CommandRoute | None = None
    # Refuses (DecodeError) a command the device could never be sent: (name, args).
    check_command: Callable[[str, dict[str, Any]], object] | None = None
    serial: SerialKind | None = None
    # Topics outside devices/<id>/ the device publishes on: "<root>/<wire key>"; the root is its channel.
    own_topic_root: str | None = None


def _stateless(decode: Decode) -> DecoderFactory:
    return lambda: decode


class _NmeaLines:
    """A GPS receiver's fix spans several sentences (RMC, GGA, VTG): one reader per device keeps the
    epoch being assembled. One instance per pipeline; only its writer thread decodes, so no lock."""

    def __init__(self) -> None:
        self._readers: dict[str, NmeaReader] = {}

    def __call__(self, payload: bytes, device_id: str, tz: tzinfo, now: datetime) -> Decoded:
        reader = self._readers.get(device_id)
        if reader is None:
            reader = self._readers[device_id] = NmeaReader(device_id, tz=tz)
        return reader.feed(payload, now)


def _jt808_location(content: bytes, device_id: str, tz: tzinfo, now: datetime) -> Decoded:
    """A 0x0200 or 0x0704 frame submitted without its fixes (the JT/T 808 session hands them over decoded)."""
    return jt808_location.decode(jt808.parse_frame(content), device_id, tz)


def _attlog(payload: bytes, device_id: str, tz: tzinfo, now: datetime) -> Decoded:
    return attlog.decode(payload, device_id, tz, not_after=now + FUTURE_LIMIT)


# Every MQTT device may report its status and answer its commands.
_MQTT_DEVICE: dict[str, DecoderFactory] = {
    "status": _stateless(lambda p, dev, tz, now: mqtt_device.decode_status(p, dev, now)),
    "commands/result": _stateless(lambda p, dev, tz, now: mqtt_device.decode_command_result(p, dev, now)),
}

_TABLE = (
    # JSON punches, access events and fixes over MQTT.
    Family(
        "mqtt-json",
        NoConfig,
        {**_MQTT_DEVICE, "events": _stateless(lambda p, dev, tz, now: mqtt_json.decode(p, dev, tz))},
        credentials="mqtt_login",
        commands="push",
    ),
    # ZKTeco ATTLOG lines over MQTT or a serial line.
    Family(
        "attlog",
        NoConfig,
        {**_MQTT_DEVICE, "attlog": _stateless(_attlog), "serial/attlog": _stateless(_attlog)},
        credentials="mqtt_login",
        commands="push",
        serial="text_lines",
    ),
    # The OwnTracks phone app's locations on owntracks/{user}/{device}.
    Family(
        "owntracks",
        OwnTracksConfig,
        {**_MQTT_DEVICE, "owntracks": _stateless(lambda p, dev, tz, now: owntracks.decode(p, dev, tz))},
        identity_keys=("user", "device"),
        wire_key=("user", "device"),
        credentials="mqtt_login",
        commands="push",
        own_topic_root="owntracks",
    ),
    # ZKTeco terminals pushing over HTTP (ADMS /iclock) and polling for commands.
    Family(
        "zk-adms",
        ZkAdmsConfig,
        {
            "iclock/ATTLOG": _stateless(
                lambda p, dev, tz, now: attlog.decode(p, dev, tz, "zk-adms", not_after=now + FUTURE_LIMIT)
            ),
            # User and enrolment lines: kept in the journal only.
            "iclock/OPERLOG": _stateless(lambda p, dev, tz, now: Decoded()),
        },
        identity_keys=("sn",),
        wire_key=("sn",),
        commands="pull",
        check_command=zk_adms.command_text,
    ),
    # Door readers on an RS-485 OSDP line.
    Family(
        "osdp",
        OsdpConfig,
        # The door logic decides each read and hands the decided record over on this channel.
        {"access/decided": _stateless(lambda p, dev, tz, now: access_log.decode(p, dev, tz))},
        identity_keys=("line", "address"),
        credentials="scbk",
        serial="osdp",
    ),
    # A GNSS receiver's NMEA 0183 sentences on a serial line.
    Family(
        "nmea",
        SerialConfig,
        {"serial/nmea": _NmeaLines},
        identity_keys=("line",),
        wire_key=("line",),
        serial="text_lines",
    ),
    # Badge readers printing one card number a line on a serial port.
    Family(
        "card-lines",
        SerialConfig,
        {"serial/card-lines": _stateless(card_lines.decode)},
        identity_keys=("line",),
        wire_key=("line",),
        serial="text_lines",
    ),
    # JT/T 808 vehicle terminals over TCP.
    Family(
        "jt808",
        Jt808Config,
        {"jt808/location": _stateless(_jt808_location)},
        identity_keys=("phone",),
        wire_key=("phone",),
        credentials="auth_code",
    ),
)

FAMILIES: Mapping[str, Family] = {f.protocol: f for f in _TABLE}
PROTOCOLS: tuple[str, ...] = tuple(FAMILIES)
SERIAL_PROTOCOLS: tuple[str, ...] = tuple(p for p, f in FAMILIES.items() if f.serial is not None)
LINE_PROTOCOLS: tuple[str, ...] = tuple(p for p, f in FAMILIES.items() if f.serial == "text_lines")
MQTT_PROTOCOLS: frozenset[str] = frozenset(p for p, f in FAMILIES.items() if f.credentials == "mqtt_login")
PULL_PROTOCOLS: frozenset[str] = frozenset(p for p, f in FAMILIES.items() if f.commands == "pull")

if TYPE_CHECKING:
    ProtocolName = str
    SerialProtocolName = str
else:  # for pydantic models: the API's and the config's choices are exactly the table's
    ProtocolName = Literal[PROTOCOLS]
    SerialProtocolName = Literal[SERIAL_PROTOCOLS]


def _channel_owners() -> dict[str, Family]:
    owners: dict[str, Family] = {}
    for family in _TABLE:
        for channel, factory in family.channels.items():
            other = owners.get(channel)
            if other is not None and other.channels[channel] is not factory:
                raise AssertionError(f"channel {channel!r}: {other.protocol} and {family.protocol} decode it apart")
            owners.setdefault(channel, family)
        if family.serial == "text_lines" and f"serial/{family.protocol}" not in family.channels:
            raise AssertionError(f"{family.protocol}: a serial text line speaks on serial/{family.protocol}")
    return owners


# channel -> the family that first declared it (shared MQTT channels are declared alike by every MQTT family)
CHANNELS: Mapping[str, Family] = _channel_owners()
# own topic root -> its family
OWN_TOPICS: Mapping[str, Family] = {f.own_topic_root: f for f in _TABLE if f.own_topic_root is not None}


def family(protocol: str) -> Family:
    """The protocol's family; KeyError for a protocol the gateway does not speak."""
    return FAMILIES[protocol]


def decoders() -> dict[str, Decode]:
    """A fresh decoder per channel, for one pipeline (its per-device reader state is its own)."""
    return {channel: owner.channels[channel]() for channel, owner in CHANNELS.items()}


def identity(protocol: str, config: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The config values no other device of the protocol may share; None if the protocol has none."""
    keys = FAMILIES[protocol].identity_keys if protocol in FAMILIES else ()
    return tuple(config.get(k) for k in keys) if keys else None


def wire_key(protocol: str, config: object) -> str | None:
    """What a device is known by on its own wire, where that is not its id: the ZK terminal's serial
    number, the JT/T 808 terminal's phone, OwnTracks' "user/device", the serial line it is on."""
    found = FAMILIES.get(protocol)
    if found is None or not found.wire_key or not isinstance(config, dict):
        return None
    values = [config.get(k) for k in found.wire_key]
    if not all(isinstance(v, str) and v for v in values):
        return None
    return "/".join(str(v) for v in values)


def own_topics(protocol: str, config: Mapping[str, Any]) -> tuple[str, ...]:
    """Topics outside devices/<id>/ a device publishes on: an OwnTracks phone names its own."""
    found = FAMILIES.get(protocol)
    if found is None or found.own_topic_root is None:
        return ()
    key = wire_key(protocol, dict(config))
    return (f"{found.own_topic_root}/{key}",) if key is not None else ()
