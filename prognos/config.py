"""The gateway's configuration: one TOML file, validated as a whole at start.

Every mistake is reported as a ConfigError that names the file and the key, so an operator
fixes it from the message alone. docs/gateway.md documents every key; examples/gateway.toml
is a complete example.
"""

from __future__ import annotations

import datetime as dt
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from prognos.errors import ConfigError
from prognos.security import BrokerAuth, Credentials
from prognos.topics import topic

LOG_LEVELS = ("debug", "info", "warning", "error")
SOURCE_KINDS = ("can", "replay", "uart")
CAN_INTERFACES = ("socketcan", "slcan", "virtual", "pcan", "kvaser", "vector", "gs_usb")


RECEIPT_TIMEOUT_S = 60.0  # what provisioned gateways wait for a storage receipt before sending again


@dataclass(frozen=True)
class BrokerConfig:
    host: str = "localhost"
    port: int = 1883
    keepalive_s: int = 30
    ca_file: Path | None = None  # TLS, trusting this CA only
    username: str | None = None
    password_file: Path | None = None
    # Keep records after the PUBACK until the cloud's storage receipt; send again after this long.
    receipt_timeout_s: float | None = None

    def auth(self) -> BrokerAuth:
        """TLS and login as configured; the files are read now (a ConfigError names the key)."""
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ConfigError(f"[broker] ca_file: no such file {self.ca_file}")
        credentials = None
        if self.password_file is not None:
            try:
                password = self.password_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"[broker] password_file: cannot read {self.password_file}: {exc.__class__.__name__}"
                ) from exc
            if not password:
                raise ConfigError(f"the broker password file {self.password_file} is empty")
            credentials = Credentials(self.username or "", password)
        return BrokerAuth(str(self.ca_file) if self.ca_file is not None else None, credentials)


@dataclass(frozen=True)
class SpoolConfig:
    path: Path
    max_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class CanSourceConfig:
    kind: ClassVar[str] = "can"  # its key in prognos.edge.sources.SOURCES
    dbc: Path
    interface: str = "socketcan"
    channel: str = "can0"
    bitrate: int | None = None


@dataclass(frozen=True)
class ReplaySourceConfig:
    kind: ClassVar[str] = "replay"
    path: Path
    dbc: Path
    realtime: bool = False


@dataclass(frozen=True)
class UartSourceConfig:
    kind: ClassVar[str] = "uart"
    port: str
    baudrate: int = 115_200


SourceConfig = CanSourceConfig | ReplaySourceConfig | UartSourceConfig


@dataclass(frozen=True)
class GatewayConfig:
    fleet: str
    vin: str
    broker: BrokerConfig
    spool: SpoolConfig
    sources: tuple[SourceConfig, ...]
    catalog: Path | None = None  # None: the catalog shipped with Prognos
    models: Path | None = None  # None: rules only
    trusted_keys: tuple[Path, ...] = ()
    window_s: float = 600.0
    heartbeat_s: float = 3600.0
    status_interval_s: float = 60.0
    log_level: str = "info"


def load_gateway_config(path: Path) -> GatewayConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read gateway config {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"gateway config {path} is not UTF-8 text: {exc.reason}") from exc
    return parse_gateway_config(text, origin=str(path), base=path.parent)


def parse_toml(text: str, origin: str) -> dict[str, Any]:
    """A TOML document; ConfigError naming `origin` for anything that is not one."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from exc
    except ValueError:  # tomllib lets Python's limit through: an integer of more than 4300 digits
        raise ConfigError(f"{origin}: not valid TOML: an integer with too many digits") from None
    except RecursionError:
        raise ConfigError(f"{origin}: not valid TOML: nested too deeply") from None


def parse_gateway_config(text: str, *, origin: str = "<config>", base: Path = Path(".")) -> GatewayConfig:
    """Relative paths in the file are relative to `base`, the directory the file is in."""
    top = TomlTable(parse_toml(text, origin), origin, "", entry_label="[{key} {number}]")
    top.only("gateway", "broker", "spool", "models", "source", "log")
    gateway = top.table("gateway", required=True)
    gateway.only("fleet", "vin", "catalog", "window_s", "heartbeat_s", "status_interval_s")
    fleet = gateway.text("fleet", required=True)
    vin = gateway.text("vin", required=True)
    try:
        topic(fleet, vin, "diag")
    except ConfigError as exc:
        raise ConfigError(f"{origin}: [gateway] {exc}") from exc
    window_s = gateway.number("window_s", 600.0, low=1.0)
    heartbeat_s = gateway.number("heartbeat_s", 3600.0, low=1.0)
    if heartbeat_s < window_s:
        raise ConfigError(f"{gateway.where('heartbeat_s')}: must be at least window_s ({window_s:g} s)")
    status_interval_s = gateway.number("status_interval_s", 60.0, low=1.0)
    catalog = gateway.path("catalog", base)

    broker_table = top.table("broker")
    broker_table.only(
        "host", "port", "keepalive_s", "ca_file", "username", "password_file", "receipt_timeout_s"
    )
    ca_file = broker_table.path("ca_file", base)
    password_file = broker_table.path("password_file", base)
    broker = BrokerConfig(
        host=broker_table.text("host") or "localhost",
        port=broker_table.integer("port", 8883 if ca_file is not None else 1883, 1, 65535),
        keepalive_s=broker_table.integer("keepalive_s", 30, 5, 3600),
        ca_file=ca_file,
        username=(broker_table.text("username") or vin) if password_file is not None else None,
        password_file=password_file,
        receipt_timeout_s=broker_table.optional_number("receipt_timeout_s", low=1.0, high=86_400.0),
    )

    spool_table = top.table("spool", required=True)
    spool_table.only("path", "max_mb")
    spool_path = spool_table.path("path", base, required=True)
    assert spool_path is not None
    spool = SpoolConfig(spool_path, int(spool_table.number("max_mb", 64.0, low=1.0) * 1024 * 1024))

    models_table = top.table("models")
    models_table.only("dir", "trusted_keys")
    models = models_table.path("dir", base)
    trusted_keys = tuple(models_table.paths("trusted_keys", base))

    log_table = top.table("log")
    log_table.only("level")
    log_level = log_table.text("level") or "info"
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"{log_table.where('level')}: must be one of {', '.join(LOG_LEVELS)}")

    sources = tuple(_source(entry, base) for entry in top.tables("source"))
    if not sources:
        raise ConfigError(f"{origin}: no [[source]]: the gateway needs at least one (can, replay or uart)")
    return GatewayConfig(
        fleet=fleet,
        vin=vin,
        broker=broker,
        spool=spool,
        sources=sources,
        catalog=catalog,
        models=models,
        trusted_keys=trusted_keys,
        window_s=window_s,
        heartbeat_s=heartbeat_s,
        status_interval_s=status_interval_s,
        log_level=log_level,
    )


def broker_toml(
    host: str,
    port: int,
    *,
    ca_file: Path | str | None = None,
    username: str | None = None,
    password_file: Path | str | None = None,
    receipt_timeout_s: float | None = None,
) -> str:
    """The [broker] table of a gateway.toml, as text ending in a newline."""
    lines = ["[broker]", f"host = {toml_string(host)}", f"port = {port}"]
    if ca_file is not None:
        lines.append(f"ca_file = {toml_string(ca_file)}")
    if username is not None:
        lines.append(f"username = {toml_string(username)}")
    if password_file is not None:
        lines.append(f"password_file = {toml_string(password_file)}")
    if receipt_timeout_s is not None:
        lines.append(f"receipt_timeout_s = {receipt_timeout_s!r}")
    return "\n".join(lines) + "\n"


# The quote, the backslash and the control characters, escaped. Not json.dumps: it writes
# characters beyond U+FFFF as surrogate-pair escapes, which TOML refuses.
_TOML_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\"} | {c: f"\\u{c:04x}" for c in (*range(0x20), 0x7F)}


def toml_string(value: str | Path) -> str:
    """`value` as a TOML basic string (in double quotes)."""
    return '"' + str(value).translate(_TOML_ESCAPES) + '"'


def _source(table: TomlTable, base: Path) -> SourceConfig:
    kind = table.text("kind", required=True)
    if kind == "can":
        table.only("kind", "dbc", "interface", "channel", "bitrate")
        interface = table.text("interface") or "socketcan"
        if interface not in CAN_INTERFACES:
            raise ConfigError(f"{table.where('interface')}: must be one of {', '.join(CAN_INTERFACES)}")
        bitrate = table.integer("bitrate", 0, 10_000, 1_000_000) or None
        dbc = table.path("dbc", base, required=True)
        assert dbc is not None
        return CanSourceConfig(dbc, interface, table.text("channel") or "can0", bitrate)
    if kind == "replay":
        table.only("kind", "path", "dbc", "realtime")
        log_path, dbc = table.path("path", base, required=True), table.path("dbc", base, required=True)
        assert log_path is not None and dbc is not None
        return ReplaySourceConfig(log_path, dbc, table.boolean("realtime", False))
    if kind == "uart":
        table.only("kind", "port", "baudrate")
        baudrate = table.integer("baudrate", 115_200, 300, 4_000_000)
        return UartSourceConfig(table.text("port", required=True), baudrate)
    raise ConfigError(f"{table.where('kind')}: {kind!r} is not one of {', '.join(SOURCE_KINDS)}")


class TomlTable:
    """One TOML table with its place in the file, for messages such as
    `gateway.toml: [broker] port: must be an integer` or `tire.toml: [[fault]] 2 onset_day:
    must be a number, not str`. `entry_label` names an entry of an array of tables in messages:
    a format string of its key and its number from 1."""

    def __init__(self, data: dict[str, Any], origin: str, label: str, *, entry_label: str) -> None:
        self.data, self.origin, self.label, self.entry_label = data, origin, label, entry_label

    def where(self, key: str) -> str:
        return f"{self.origin}: {self.label} {key}" if self.label else f"{self.origin}: {key}"

    def fail(self, message: str) -> ConfigError:
        """A ConfigError placed in this table."""
        return ConfigError(self.where(message))

    def only(self, *keys: str) -> None:
        for key in self.data:
            if key not in keys:
                place = self.label or "top level"
                raise ConfigError(f"{self.origin}: unknown key {key!r} in {place} (known: {', '.join(keys)})")

    def _child(self, data: dict[str, Any], label: str) -> TomlTable:
        return TomlTable(data, self.origin, label, entry_label=self.entry_label)

    def table(self, key: str, *, required: bool = False) -> TomlTable:
        value = self.data.get(key)
        if value is None:
            if required:
                raise ConfigError(f"{self.origin}: missing table [{key}]")
            return self._child({}, f"[{key}]")
        if not isinstance(value, dict):
            raise ConfigError(f"{self.origin}: {key} must be a table ([{key}])")
        return self._child(value, f"[{key}]")

    def tables(self, key: str) -> list[TomlTable]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ConfigError(f"{self.origin}: {key} must be an array of tables ([[{key}]])")
        return [self._child(v, self.entry_label.format(key=key, number=i + 1)) for i, v in enumerate(value)]

    def _get(self, key: str, kind: type | tuple[type, ...], what: str, required: bool) -> Any:
        if key not in self.data:
            if required:
                raise ConfigError(f"{self.where(key)}: missing")
            return None
        value = self.data[key]
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            raise ConfigError(f"{self.where(key)}: must be {what}, not {_type_name(value)}")
        return value

    def text(self, key: str, *, required: bool = False) -> str:
        value = self._get(key, str, "a string", required)
        if value is not None and not value.strip():
            raise ConfigError(f"{self.where(key)}: must not be empty")
        return "" if value is None else str(value)

    def choice(self, key: str, options: tuple[str, ...], default: str | None) -> str:
        """One of `options`; `default` if absent (None: required)."""
        value = self.text(key, required=default is None)
        if not value:
            return default or ""
        if value not in options:
            raise ConfigError(f"{self.where(key)}: {value!r} is not one of {', '.join(options)}")
        return value

    def strings(self, key: str, options: tuple[str, ...]) -> list[str]:
        value = self._get(key, list, "a list of strings", True)
        if not value or not all(isinstance(v, str) and v in options for v in value):
            raise ConfigError(f"{self.where(key)}: must be a non-empty list of {', '.join(options)}")
        return list(dict.fromkeys(value))

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, bool, "true or false", False)
        return default if value is None else bool(value)

    def integer(self, key: str, default: int | None, low: int, high: int) -> int:
        """An integer in [low, high]; `default` if absent (None: required)."""
        value = self._get(key, int, "an integer", default is None)
        if value is None:
            assert default is not None
            return default
        if not low <= value <= high:
            raise ConfigError(f"{self.where(key)}: must be between {low} and {high}, not {value}")
        return int(value)

    def optional_number(
        self, key: str, *, low: float, high: float = math.inf, above_low: bool = False
    ) -> float | None:
        """A finite number in [low, high] ((low, high] with above_low), or None if absent."""
        value = self._get(key, (int, float), "a number", False)
        if value is None:
            return None
        try:
            number = float(value)
        except OverflowError:  # an integer beyond a float's range
            number = math.inf if value > 0 else -math.inf
        if not math.isfinite(number) or number < low or number > high or (above_low and number == low):
            bounds = f"{'>' if above_low else '>='} {low:g}"
            if high < math.inf:
                bounds += f" and <= {high:g}"
            raise ConfigError(f"{self.where(key)}: must be a number {bounds}, not {value}")
        return number

    def number(
        self, key: str, default: float | None, *, low: float, high: float = math.inf, above_low: bool = False
    ) -> float:
        """The same with a default; None: required."""
        if default is None and key not in self.data:
            raise ConfigError(f"{self.where(key)}: missing")
        number = self.optional_number(key, low=low, high=high, above_low=above_low)
        if number is None:
            assert default is not None
            return default
        return number

    def path(self, key: str, base: Path, *, required: bool = False) -> Path | None:
        """A path; relative ones are relative to `base`, the directory of the file."""
        value = self.text(key, required=required)
        return _resolve(value, base) if value else None

    def paths(self, key: str, base: Path) -> list[Path]:
        value = self._get(key, list, "a list of paths", False) or []
        if not all(isinstance(v, str) and v.strip() for v in value):
            raise ConfigError(f"{self.where(key)}: must be a list of paths (strings)")
        return [_resolve(v, base) for v in value]


def _resolve(value: str, base: Path) -> Path:
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # "~name" of no such user: taken as written, as a shell does
        path = Path(value)
    return path if path.is_absolute() else base / path


def _type_name(value: object) -> str:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return "a date or time"
    return type(value).__name__
