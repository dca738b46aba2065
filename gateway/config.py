"""Settings: one TOML file, overridden per key by GATEWAY_<SECTION>__<KEY>."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateway.core.masking import mask_url, secret_key
from gateway.core.timeutil import check_zone
from gateway.devices.families import SerialProtocolName

DEFAULT_CONFIG = Path("gateway.toml")


class ConfigError(Exception):
    """A bad config: names the key and says why."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _host_port(value: str, key: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {value!r}")
    return value


class SiteSettings(Section):
    id: str = "hq"
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if not value:
            raise ValueError("a time zone is needed, e.g. Asia/Shanghai")
        return check_zone(value)


class DatabaseSettings(Section):
    url: SecretStr = SecretStr("sqlite:///data/gateway.db")
    sqlite_synchronous: Literal["full", "normal"] = "full"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: SecretStr) -> SecretStr:
        scheme = value.get_secret_value().split(":", 1)[0]
        if not (scheme == "sqlite" or scheme.startswith("postgresql")):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        return value


class MqttSettings(Section):
    broker: str = "embedded"
    listen: str = "127.0.0.1:1883"
    username: str = ""
    password: SecretStr = SecretStr("")
    client_id: str = "gateway-hq"
    tls_ca: str = ""
    keepalive: int = Field(30, ge=5, le=3600)
    session_expiry: int = Field(604800, ge=86400)
    max_payload: int = Field(262144, ge=1024, le=16 * 1024 * 1024)
    receive_maximum: int = Field(2000, ge=1, le=65535)
    # How device logins are enforced at an external broker: "dynsec" = the gateway manages
    # mosquitto's dynamic security plugin; "off" = the broker's own files do (see README).
    # The embedded broker always checks logins against the registry.
    device_auth: Literal["dynsec", "off"] = "dynsec"

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        if value == "embedded":
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError('expected "embedded", "mqtt://host:port" or "mqtts://host:port"')
        try:
            _ = parts.port
        except ValueError:
            raise ValueError(f"bad port in {value!r}") from None
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _host_port(value, "mqtt.listen")

    @model_validator(mode="after")
    def _dynsec_needs_a_login(self) -> MqttSettings:
        if not self.embedded and self.device_auth == "dynsec" and not self.username:
            raise ValueError(
                "device_auth = \"dynsec\" needs the gateway's broker login (mqtt.username), the plugin's admin; "
                'or set mqtt.device_auth = "off" if the broker manages logins itself'
            )
        return self

    @property
    def embedded(self) -> bool:
        return self.broker == "embedded"

    def endpoint(self) -> tuple[str, int, bool]:
        """Where the gateway's own client connects: host, port, TLS."""
        if self.embedded:
            host, _, port = self.listen.rpartition(":")
            return ("127.0.0.1" if host in ("0.0.0.0", "::", "") else host), int(port), False
        parts = urlsplit(self.broker)
        tls = parts.scheme == "mqtts"
        return parts.hostname or "localhost", parts.port or (8883 if tls else 1883), tls


MIN_ADMIN_TOKEN_CHARS = 24  # `gateway run` refuses a shorter bootstrap token (the demo makes a longer one)


class ApiSettings(Section):
    listen: str = "127.0.0.1:8080"
    admin_token: SecretStr = SecretStr("")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _host_port(value, "api.listen")

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class SecuritySettings(Section):
    # Encrypts the device secrets a protocol needs in clear (OSDP keys, JT/T 808 auth codes).
    # Empty: a random key is kept in `secret.key` beside the SQLite database (or the working directory).
    secret_key: SecretStr = SecretStr("")


class AccessSettings(Section):
    # Door pairs (entry, exit) where a holder must leave before entering again.
    anti_passback: list[tuple[str, str]] = []
    # Named groups of doors a person's access may list instead of each door.
    door_groups: dict[str, list[str]] = {}


class VisitorsSettings(Section):
    # An invitation's credential works this long before its window starts.
    lead_minutes: int = Field(15, ge=0, le=24 * 60)
    # A visit's personal data (name, phone, company) is anonymised this long after its window; counts stay.
    retention_days: int = Field(180, ge=1, le=3650)
    # Temporary visitor cards: "<number>" (any facility) from this inclusive range.
    card_pool: tuple[int, int] = (60000, 65535)

    @field_validator("card_pool")
    @classmethod
    def _pool(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if not 0 <= low <= high <= 0xFFFFFFFF:
            raise ValueError("expected [low, high] with 0 <= low <= high")
        return value


class LivenessSettings(Section):
    """Seconds without any sign of life before a device of each kind counts as offline."""

    attendance: int = Field(600, ge=5)
    access: int = Field(120, ge=5)
    gps: int = Field(600, ge=5)


class Jt808Settings(Section):
    listen: str = ""
    # A frame whose checksum or length is wrong but whose body parses: stored with the fix flagged
    # (true), or refused and dead-lettered (false). Real terminals do send such frames.
    accept_bad_checksum: bool = True
    # A connection silent this long (no frame, no heartbeat) is closed.
    idle_timeout_s: int = Field(180, ge=10, le=86400)
    # CIDRs terminals may connect from; a connection from elsewhere is closed unread. Empty = any.
    allow: list[str] = []

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _host_port(value, "jt808.listen") if value else value

    @field_validator("allow")
    @classmethod
    def _allow(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"jt808.allow: {cidr!r} is not an address or CIDR") from None
        return value


class ZkSettings(Section):
    # Own listener for /iclock/* (the admin API need not be reachable from the device network); "" = [api] listen.
    listen: str = ""
    allow: list[
        IPvAnyNetwork
    ] = []  # where terminals may push from; [] = any. Others get 403 before their body is read.

    _listen = field_validator("listen")(lambda value: _host_port(value, "zk.listen") if value else value)

    def host_port(self) -> tuple[str, int]:
        return ApiSettings(listen=self.listen).host_port()


class DeadLettersSettings(Section):  # rejected input: kept this long and this much, oldest deleted first
    retention_days: int = Field(30, ge=1, le=3650)
    max_mb: int = Field(256, ge=1, le=1_000_000)


class VehiclesSettings(Section):
    """How trips are cut from fixes (see docs/vehicles.md)."""

    min_distance_m: float = Field(200, gt=0)  # moving once this far from where it stopped
    stop_window_s: float = Field(180, gt=0)  # stopped once it stayed within min_distance_m this long
    max_gap_s: float = Field(3600, gt=0)  # a longer silence ends a trip
    max_speed_kmh: float = Field(300, gt=0)  # a fix implying more is set aside
    future_s: float = Field(86400, ge=0)  # a fix dated more than this ahead is set aside
    # Which filters set fixes aside before trips are cut.
    filters: list[Literal["invalid", "zero_position", "future_time", "duplicate_time", "implausible_speed"]] = [
        "invalid",
        "zero_position",
        "future_time",
        "duplicate_time",
        "implausible_speed",
    ]
    # A geofence enter or exit counts once the vehicle stayed on the new side this long (no flapping).
    geofence_dwell_s: float = Field(60, ge=0)


class PipelineSettings(Section):
    batch_size: int = Field(2000, ge=1, le=100_000)
    batch_ms: int = Field(20, ge=1, le=10_000)
    queue_size: int = Field(20000, ge=10, le=10_000_000)


RecordType = Literal["punch", "access", "visit", "visitor_arrived", "trip"]


class DingTalkSettings(Section):
    enabled: bool = False
    base_url: str = "https://oapi.dingtalk.com"
    app_key: str = ""
    app_secret: SecretStr = SecretStr("")
    rate: float = Field(20, gt=0, le=1000)  # calls per second; DingTalk's standard limit is 20
    records: list[Literal["punch"]] = ["punch"]  # DingTalk's attendance upload takes punches only
    timeout_s: float = Field(10, gt=0, le=120)

    @model_validator(mode="after")
    def _complete(self) -> DingTalkSettings:
        if self.enabled and not (self.app_key and self.app_secret.get_secret_value()):
            raise ValueError("enabled needs app_key and app_secret")
        return self


class WebhookSettings(Section):
    enabled: bool = False
    url: str = ""
    secret: SecretStr = SecretStr("")
    records: list[RecordType] = ["visit", "trip"]
    batch_size: int = Field(100, ge=1, le=1000)
    timeout_s: float = Field(10, gt=0, le=120)

    @model_validator(mode="after")
    def _complete(self) -> WebhookSettings:
        if self.enabled and not (self.url.startswith(("http://", "https://")) and self.secret.get_secret_value()):
            raise ValueError("enabled needs an http(s) url and a secret")
        return self


class MqttNorthSettings(Section):
    """Records published QoS 1 to `{topic_prefix}/{site}/{record type}` on the gateway's broker."""

    enabled: bool = False
    records: list[RecordType] = ["visit", "trip"]
    topic_prefix: str = Field("platform", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


class UplinkSettings(Section):
    # Records waiting for one sink before the overflow policy applies: "refuse" stops taking device input
    # (the broker and the devices hold it) until the backlog drains; "drop_oldest" drops unsent records
    # (counted in gateway_uplink_dropped_total, logged as errors).
    max_backlog: int = Field(1_000_000, ge=100)
    overflow: Literal["refuse", "drop_oldest"] = "refuse"
    # Retries back off exponentially with jitter up to this many seconds.
    retry_max_s: float = Field(300, ge=1, le=86400)
    dingtalk: DingTalkSettings = DingTalkSettings()
    webhook: WebhookSettings = WebhookSettings()
    mqtt: MqttNorthSettings = MqttNorthSettings()

    def routes(self) -> dict[str, list[str]]:
        """Enabled sink -> the record types it takes."""
        sinks: dict[str, DingTalkSettings | WebhookSettings | MqttNorthSettings] = {
            "dingtalk": self.dingtalk,
            "webhook": self.webhook,
            "mqtt": self.mqtt,
        }
        return {name: list(sink.records) for name, sink in sinks.items() if sink.enabled}


class SerialLineSettings(Section):
    port: str
    protocol: SerialProtocolName  # the families that sit on a serial line
    baudrate: int = Field(115200, gt=0)
    device_id: str = ""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    site: SiteSettings = SiteSettings()
    database: DatabaseSettings = DatabaseSettings()
    mqtt: MqttSettings = MqttSettings()
    api: ApiSettings = ApiSettings()
    jt808: Jt808Settings = Jt808Settings()
    zk: ZkSettings = ZkSettings()
    deadletters: DeadLettersSettings = DeadLettersSettings()
    security: SecuritySettings = SecuritySettings()
    access: AccessSettings = AccessSettings()
    visitors: VisitorsSettings = VisitorsSettings()
    vehicles: VehiclesSettings = VehiclesSettings()
    liveness: LivenessSettings = LivenessSettings()
    pipeline: PipelineSettings = PipelineSettings()
    uplink: UplinkSettings = UplinkSettings()
    serial: list[SerialLineSettings] = []

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file, key by key.
        return (env_settings, init_settings)


def load(path: str | Path | None = None) -> Settings:
    """Read the TOML file (missing default file = all defaults) and the environment."""
    explicit = path is not None
    file = Path(path) if path is not None else DEFAULT_CONFIG
    data: dict[str, Any] = {}
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(file), f"not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(str(file), f"cannot read: {exc}") from None
    elif explicit:
        raise ConfigError(str(file), "file not found")
    try:
        return Settings(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "config"
        reason = first["msg"]
        if first["type"] == "extra_forbidden":
            reason = "unknown key"
        elif "input" in first and not isinstance(first["input"], dict) and not secret_key(key):
            shown = first["input"]
            reason = f"{reason} (got {mask_url(shown) if isinstance(shown, str) and '://' in shown else shown!r})"
        raise ConfigError(key, reason) from None
