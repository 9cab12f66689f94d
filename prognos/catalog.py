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
    {
        "celsius",
        "kPa",
        "bar",
        "percent",
        "km/h",
        "km",
        "mm",
        "g",
        "m/s^2",
        "dB",
        "V",
        "A",
        "rpm",
        "ratio",
        "count",
        "Hz",
    }
)
SUBSYSTEM_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
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

    def __init__(self, signals: list[Signal], origin: str = "<catalog>") -> None:
        self._by_path: dict[str, Signal] = {}
        self.by_dbc: dict[tuple[str, str], Signal] = {}
        self.by_node: dict[tuple[int, str], Signal] = {}
        for sig in signals:
            if sig.path in self._by_path:
                raise ConfigError(f"{origin}: signal {sig.path} is defined twice")
            self._by_path[sig.path] = sig
            if sig.dbc:
                key = (sig.dbc.message, sig.dbc.signal)
                if key in self.by_dbc:
                    raise ConfigError(f"{origin}: DBC signal {key[0]}.{key[1]} feeds two paths")
                self.by_dbc[key] = sig
            if sig.node:
                node_key = (sig.node.node_id, sig.node.channel)
                if node_key in self.by_node:
                    raise ConfigError(f"{origin}: node {node_key[0]} channel {node_key[1]} feeds two paths")
                self.by_node[node_key] = sig

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
    return Catalog([_signal(entry, f"{origin}: signal {i + 1}") for i, entry in enumerate(entries)], origin)


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
    if not (math.isfinite(rate_hz) and rate_hz > 0):
        raise ConfigError(f"{where}: rate_hz must be a positive number")
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"{where}: min and max must be finite, min below max")
    subsystem = _required(entry, "subsystem", str, where)
    if not SUBSYSTEM_PATTERN.fullmatch(subsystem):
        raise ConfigError(f"{where}: subsystem {subsystem!r} must match {SUBSYSTEM_PATTERN.pattern}")
    dbc = node = None
    if "dbc" in entry:
        table = _table(entry, "dbc", {"message", "signal"}, {"scale", "offset"}, where)
        dbc = DbcSource(
            _required(table, "message", str, where),
            _required(table, "signal", str, where),
            _number(table, "scale", 1.0, where),
            _number(table, "offset", 0.0, where),
        )
    if "node" in entry:
        table = _table(entry, "node", {"id", "channel"}, set(), where)
        node_id = _required(table, "id", int, where)
        if not 0 <= node_id <= 255:
            raise ConfigError(f"{where}: node id must be 0-255")
        node = NodeSource(node_id, _required(table, "channel", str, where))
    return Signal(path, unit, rate_hz, low, high, subsystem, dbc, node)


def _table(
    entry: dict[str, Any], key: str, required: set[str], optional: set[str], where: str
) -> dict[str, Any]:
    table = entry[key]
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {key} must be a table")
    missing = required - set(table)
    if missing:
        raise ConfigError(f"{where}: {key} needs {', '.join(sorted(missing))}")
    unknown = set(table) - required - optional
    if unknown:
        raise ConfigError(f"{where}: unknown key {key}.{sorted(unknown)[0]}")
    return table


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
