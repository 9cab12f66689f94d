"""The signal catalog: which signals a vehicle has, named by COVESA VSS path, with unit, rate,
valid range and where each comes from (a DBC signal, a sensor-node channel, or neither for a
signal that a simulator or replay provides by its VSS path).

The format is TOML, documented in docs/signal-catalog.md:

    [[signal]]
    path = "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure"
    unit = "kPa"
    rate_hz = 1.0
    min = 0.0
    max = 600.0
    subsystem = "tires"
    dbc = { message = "TPMS11", signal = "PRESSURE_FL", scale = 1.0, offset = 0.0 }
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from prognos.errors import ConfigError

VSS_PATH_PATTERN = re.compile(r"Vehicle(\.[A-Z][A-Za-z0-9]*)+")
UNITS = frozenset(
    {"celsius", "kPa", "bar", "percent", "km/h", "km", "mm", "g", "m/s^2", "dB", "V", "A",
     "rpm", "ratio", "count", "Hz"}
)
SIGNAL_KEYS = frozenset({"path", "unit", "rate_hz", "min", "max", "subsystem", "dbc", "node"})


@dataclass(frozen=True)
class DbcSource:
    message: str
    signal: str
    scale: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class NodeSource:
    node_id: int
    channel: str


@dataclass(frozen=True)
class Signal:
    path: str
    unit: str
    rate_hz: float
    min: float
    max: float
    subsystem: str
    dbc: DbcSource | None = None
    node: NodeSource | None = None

    def in_range(self, value: float) -> bool:
        return math.isfinite(value) and self.min <= value <= self.max


class Catalog(Mapping[str, Signal]):
    """Signals by VSS path, with lookups by DBC signal and node channel."""

    def __init__(self, signals: list[Signal]) -> None:
        self._by_path: dict[str, Signal] = {}
        self.by_dbc: dict[tuple[str, str], Signal] = {}
        self.by_node: dict[tuple[int, str], Signal] = {}
        for sig in signals:
            if sig.path in self._by_path:
                raise ConfigError(f"signal {sig.path} is defined twice")
            self._by_path[sig.path] = sig
            if sig.dbc:
                self.by_dbc[(sig.dbc.message, sig.dbc.signal)] = sig
            if sig.node:
                self.by_node[(sig.node.node_id, sig.node.channel)] = sig

    def __getitem__(self, path: str) -> Signal:
        return self._by_path[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_path)

    def __len__(self) -> int:
        return len(self._by_path)

    def subsystem(self, name: str) -> list[Signal]:
        return [s for s in self._by_path.values() if s.subsystem == name]


def load_catalog_text(text: str, origin: str = "<catalog>") -> Catalog:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from exc
    entries = doc.get("signal")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{origin}: no [[signal]] entries")
    return Catalog([_signal(entry, f"{origin}: signal {i + 1}") for i, entry in enumerate(entries)])


def load_catalog(path: Path) -> Catalog:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read signal catalog {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"signal catalog {path} is not UTF-8 text: {exc.reason}") from exc
    return load_catalog_text(text, str(path))


def default_catalog() -> Catalog:
    """The catalog of the simulated vehicle, shipped with the package."""
    text = resources.files("prognos").joinpath("catalogs/default.toml").read_text(encoding="utf-8")
    return load_catalog_text(text, "default catalog")


def _signal(entry: Any, where: str) -> Signal:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = set(entry) - SIGNAL_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    path = _required(entry, "path", str, where)
    where = f"{where} ({path})"
    if not VSS_PATH_PATTERN.fullmatch(path):
        raise ConfigError(f"{where}: path must be a VSS path such as Vehicle.Speed")
    unit = _required(entry, "unit", str, where)
    if unit not in UNITS:
        raise ConfigError(f"{where}: unit {unit!r} is not one of {', '.join(sorted(UNITS))}")
    rate_hz = float(_required(entry, "rate_hz", (int, float), where))
    low = float(_required(entry, "min", (int, float), where))
    high = float(_required(entry, "max", (int, float), where))
    if not rate_hz > 0:
        raise ConfigError(f"{where}: rate_hz must be positive")
    if not low < high:
        raise ConfigError(f"{where}: min must be below max")
    subsystem = _required(entry, "subsystem", str, where)
    dbc = node = None
    if "dbc" in entry:
        table = entry["dbc"]
        if not isinstance(table, dict) or not {"message", "signal"} <= set(table):
            raise ConfigError(f"{where}: dbc needs message and signal")
        dbc = DbcSource(str(table["message"]), str(table["signal"]),
                        _number(table, "scale", 1.0, where), _number(table, "offset", 0.0, where))
    if "node" in entry:
        table = entry["node"]
        if not isinstance(table, dict) or not isinstance(table.get("id"), int) or "channel" not in table:
            raise ConfigError(f"{where}: node needs an integer id and a channel")
        node = NodeSource(table["id"], str(table["channel"]))
    return Signal(path, unit, rate_hz, low, high, subsystem, dbc, node)


def _number(table: dict[str, Any], key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: dbc {key} must be a number, not {type(value).__name__}")
    return float(value)


def _required(entry: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in entry:
        raise ConfigError(f"{where}: missing key {key!r}")
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{where}: {key} has the wrong type ({type(value).__name__})")
    return value
