"""HIL bench scenarios: one TOML file says which vehicles drive for how long, which faults they
develop, through which interfaces their signals reach the agent, how the agent is configured,
and what the bench expects of it. docs/hil.md documents every key.

`load_scenario(path)` reads and checks a file completely before anything runs; every mistake is
a ConfigError that names the file, the table and the key (`tire.toml: [[fault]] 1 onset_day:
must be a number, not str`), from the TomlTable that checks the gateway's configuration too
(prognos/config.py). The loader does no other I/O than reading the file and checking that the
files it names exist.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path

from prognos.config import TomlTable, parse_toml
from prognos.edge import SHIPPED_BUNDLE
from prognos.errors import ConfigError
from prognos.sim.fleet import MODELS, REGIONS, make_fleet
from prognos.sim.vehicle import FAULT_KINDS, FAULT_PARTS, FAULT_TARGETS, Fault, VehicleSpec
from prognos.topics import SEGMENT_PATTERN, VIN_SEGMENT_PATTERN

HIL_DIR = Path(__file__).resolve().parent
BENCH_DBC = HIL_DIR / "dbc" / "prognos_sim.dbc"
BENCH_CATALOG = HIL_DIR / "catalogs" / "bench.toml"

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")
DEFAULT_START = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
CAN_KINDS = ("virtual", "slcan", "socketcan", "replay", "none")
UART_KINDS = ("pty", "none")
EXPECT_KINDS = ("detect", "no_alert", "false_alarms", "uplink")
SUBSYSTEMS = tuple(FAULT_PARTS.values())
MAX_VEHICLES = 2000
MAX_DAYS = 3650.0
# The gateway's sample buffers hold 4096 samples per signal, and the 1-Hz speed of the window
# being filled and of the one being assessed must fit at once.
WINDOW_S_RANGE = (10.0, 1800.0)
VEHICLE_KEYS = (
    "vin",
    "model",
    "lot",
    "climate",
    "aggressiveness",
    "km_per_day",
    "trips_per_day",
    "urban_share",
    "pad_wear_percent",
    "odometer_km",
)


@dataclass(frozen=True)
class TimePlan:
    """Simulated time. `start` is None for "now" (taken when the run starts), in which case
    `start_days_ago` days are taken off it; `speedup` None runs as fast as the bench can."""

    start: dt.datetime | None
    start_days_ago: float
    duration_days: float
    window_s: float
    speedup: float | None

    def start_ms(self, now_s: float) -> int:
        """Day 0 in ms since the epoch, at a multiple of window_s (the gateway cuts its windows there)."""
        start_s = now_s - self.start_days_ago * 86_400.0 if self.start is None else self.start.timestamp()
        return int(math.floor(start_s / self.window_s) * self.window_s * 1000)

    @property
    def realtime(self) -> bool:
        """Sample time is wall-clock time: the run starts now and goes at 1x."""
        return self.start is None and self.start_days_ago == 0.0 and self.speedup == 1.0

    @property
    def windows(self) -> int:
        return max(1, round(self.duration_days * 86_400.0 / self.window_s))


@dataclass(frozen=True)
class Interfaces:
    can: str = "virtual"
    can_channel: str = "can0"  # socketcan only
    log: Path | None = None  # replay only: a recorded log to play instead of the simulated traffic
    uart: str = "pty"
    bus_sleep: bool = True


@dataclass(frozen=True)
class AgentPlan:
    """How the agent is configured: the model bundle (None: threshold rules only), the signal
    catalog and DBC it reads with, its window and heartbeat."""

    models: Path | None
    catalog: Path
    dbc: Path
    heartbeat_s: float


@dataclass(frozen=True)
class Expectation:
    kind: str
    where: str  # "[[expect]] 2", for messages
    fault: str | None = None  # detect: a fault kind; None for every injected fault
    vehicles: tuple[str, ...] | None = None  # VINs; None: the kind's default
    subsystems: tuple[str, ...] | None = None  # no_alert: None for all
    within_days_of_onset: float | None = None
    min_lead_days: float | None = None
    min_share: float = 1.0
    max_per_1000_vehicle_days: float | None = None
    max_bytes_per_vehicle_day: float | None = None

    def describe(self) -> str:
        if self.kind == "detect":
            what = f"{self.fault} faults" if self.fault else "every injected fault"
            terms = []
            if self.within_days_of_onset is not None:
                terms.append(f"within {self.within_days_of_onset:g} days of onset")
            if self.min_lead_days is not None:
                terms.append(f"at least {self.min_lead_days:g} days before failure")
            share = "" if self.min_share == 1.0 else f" ({self.min_share:.0%} of them)"
            return f"detect {what}{share}" + (f", {' and '.join(terms)}" if terms else " before failure")
        if self.kind == "no_alert":
            who = "healthy vehicles" if self.vehicles is None else ", ".join(self.vehicles)
            which = "" if self.subsystems is None else f" ({', '.join(self.subsystems)})"
            return f"no alert on {who}{which}"
        if self.kind == "false_alarms":
            return f"at most {self.max_per_1000_vehicle_days:g} false alarms per 1,000 vehicle-days"
        return f"at most {self.max_bytes_per_vehicle_day:g} uplink bytes per vehicle-day"


@dataclass(frozen=True)
class Scenario:
    name: str
    origin: str
    description: str
    seed: int
    fleet: str | None
    time: TimePlan
    vehicles: tuple[VehicleSpec, ...]
    interfaces: Interfaces
    agent: AgentPlan
    expectations: tuple[Expectation, ...]

    def vehicle(self, vin: str) -> VehicleSpec:
        return next(spec for spec in self.vehicles if spec.vin == vin)


def load_scenario(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read scenario {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"scenario {path} is not UTF-8 text: {exc.reason}") from exc
    return parse_scenario(text, origin=str(path), base=path.parent)


def parse_scenario(text: str, *, origin: str = "<scenario>", base: Path = Path(".")) -> Scenario:
    """Relative paths in the text are relative to `base`, the scenario file's directory."""
    top = TomlTable(parse_toml(text, origin), origin, "", entry_label="[[{key}]] {number}")
    top.only(
        "name",
        "description",
        "seed",
        "fleet",
        "time",
        "vehicles",
        "vehicle",
        "fault",
        "interfaces",
        "agent",
        "expect",
    )
    name = top.text("name", required=True)
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"{top.where('name')}: must be 1-48 of a-z 0-9 _ - (starting with a letter or digit)"
        )
    seed = top.integer("seed", 1, 0, 2**31 - 1)
    fleet = top.text("fleet") or None
    if fleet is not None and not SEGMENT_PATTERN.fullmatch(fleet):
        raise ConfigError(f"{top.where('fleet')}: must be 1-64 characters A-Z, a-z, 0-9, _ or -")

    time_plan = _time(top.table("time", required=True))
    interfaces = _interfaces(top.table("interfaces"), base, time_plan)
    specs = _vehicles(top, seed)
    specs = _faults(top.tables("fault"), specs)
    if interfaces.log is not None and len(specs) != 1:
        raise ConfigError(
            f"{origin}: [interfaces] log: a recorded log is one vehicle's; give exactly one [[vehicle]]"
        )
    agent = _agent(top.table("agent"), base, time_plan)
    expectations = tuple(_expectation(t, specs) for t in top.tables("expect"))
    if not expectations:
        raise ConfigError(f"{origin}: no [[expect]]: a scenario must say what it expects of the agent")
    return Scenario(
        name=name,
        origin=origin,
        description=top.text("description"),
        seed=seed,
        fleet=fleet,
        time=time_plan,
        vehicles=tuple(specs),
        interfaces=interfaces,
        agent=agent,
        expectations=expectations,
    )


def _time(table: TomlTable) -> TimePlan:
    table.only("start", "start_days_ago", "duration_days", "window_s", "speedup")
    start: dt.datetime | None = DEFAULT_START
    if "start" in table.data:
        value = table.data["start"]
        if value == "now":
            start = None
        elif isinstance(value, dt.datetime) and value.tzinfo is not None:
            start = value.astimezone(dt.UTC)
        else:
            raise ConfigError(
                f"{table.where('start')}: must be a date-time with its UTC offset "
                f'(start = 2026-09-01T00:00:00Z) or "now"'
            )
    days_ago = table.number("start_days_ago", 0.0, low=0.0, high=MAX_DAYS)
    if "start_days_ago" in table.data:
        if "start" in table.data and start is not None:
            raise ConfigError(f"{table.where('start_days_ago')}: give either start or start_days_ago")
        start = None
    duration = table.number("duration_days", None, low=0.0, high=MAX_DAYS, above_low=True)
    window_s = table.number("window_s", 600.0, low=WINDOW_S_RANGE[0], high=WINDOW_S_RANGE[1])
    speedup: float | None = None
    if isinstance(table.data.get("speedup"), str) and table.data["speedup"] != "max":
        raise ConfigError(f'{table.where("speedup")}: must be a number >= 1 or "max"')
    if "speedup" in table.data and table.data["speedup"] != "max":
        speedup = table.number("speedup", None, low=1.0, high=1e9)
    if duration * 86_400.0 < window_s:
        raise ConfigError(f"{table.where('duration_days')}: shorter than one window ({window_s:g} s)")
    return TimePlan(start, days_ago, duration, window_s, speedup)


def _interfaces(table: TomlTable, base: Path, time_plan: TimePlan) -> Interfaces:
    table.only("can", "can_channel", "log", "uart", "bus_sleep")
    can = table.choice("can", CAN_KINDS, "virtual")
    uart = table.choice("uart", UART_KINDS, "pty")
    channel = table.text("can_channel") or "can0"
    if "can_channel" in table.data and can != "socketcan":
        raise ConfigError(f'{table.where("can_channel")}: only for can = "socketcan"')
    log = table.path("log", base)
    if log is not None:
        if can != "replay":
            raise ConfigError(f'{table.where("log")}: only for can = "replay"')
        if not _is_file(log, table.where("log")):
            raise ConfigError(f"{table.where('log')}: no such file {log}")
    if can == "replay" and uart != "none":
        raise ConfigError(
            f"{table.where('uart')}: a replay runs as fast as the log can be read, ahead of any live "
            f'UART; set uart = "none" with can = "replay"'
        )
    if can == "none" and uart == "none":
        raise ConfigError(f'{table.where("can")}: with uart = "none" too the agent would get no signal')
    if can == "socketcan" and not time_plan.realtime:
        raise ConfigError(
            f"{table.where('can')}: the kernel dates socketcan frames with the wall clock, so a bench on "
            f'socketcan runs in real time: set [time] start = "now" and speedup = 1'
        )
    return Interfaces(can, channel, log, uart, table.boolean("bus_sleep", True))


def _vehicles(top: TomlTable, seed: int) -> list[VehicleSpec]:
    explicit = top.tables("vehicle")
    if "vehicles" in top.data:
        if explicit:
            raise ConfigError(f"{top.origin}: give either [vehicles] count or [[vehicle]] entries, not both")
        table = top.table("vehicles")
        table.only("count", "fault_share", "batch_defects")
        count = table.integer("count", None, 1, MAX_VEHICLES)
        share = table.number("fault_share", 0.4, low=0.0, high=1.0)
        if table.boolean("batch_defects", True):
            return make_fleet(count, seed=seed, fault_share=share)
        return make_fleet(count, seed=seed, fault_share=share, batch_defects=())
    if not explicit:
        raise ConfigError(f"{top.origin}: no vehicles: give [vehicles] count = N or [[vehicle]] entries")
    if len(explicit) > MAX_VEHICLES:
        raise ConfigError(f"{top.origin}: at most {MAX_VEHICLES} [[vehicle]] entries")
    specs: list[VehicleSpec] = []
    for table in explicit:
        table.only(*VEHICLE_KEYS)
        vin = table.text("vin", required=True)
        if not VIN_SEGMENT_PATTERN.fullmatch(vin):
            raise ConfigError(f"{table.where('vin')}: must be 1-32 characters A-Z or 0-9")
        if any(spec.vin == vin for spec in specs):
            raise ConfigError(f"{table.where('vin')}: {vin} is given twice")
        model = table.choice("model", tuple(MODELS), "EV-1")
        region = table.choice("climate", tuple(REGIONS), "north")
        climate = REGIONS[region]
        specs.append(
            VehicleSpec(
                vin=vin,
                model=model,
                lot=table.text("lot") or "L001",
                region=region,
                climate_c=climate.mean_c,
                humidity_percent=climate.humidity_percent,
                seasonal_amplitude_c=climate.seasonal_amplitude_c,
                daily_amplitude_c=climate.daily_amplitude_c,
                utc_offset_h=climate.utc_offset_h,
                mass_kg=MODELS[model] + 75.0,
                aggressiveness=table.number("aggressiveness", 0.3, low=0.0, high=1.0),
                km_per_day=table.number("km_per_day", 45.0, low=1.0, high=1000.0),
                trips_per_day=table.number("trips_per_day", 2.5, low=0.5, high=4.0),
                urban_share=table.number("urban_share", 0.6, low=0.0, high=1.0),
                pad_wear_percent=table.number("pad_wear_percent", 20.0, low=0.0, high=100.0),
                odometer_km=table.number("odometer_km", 15_000.0, low=0.0, high=1_000_000.0),
            )
        )
    return specs


def _faults(tables: list[TomlTable], specs: list[VehicleSpec]) -> list[VehicleSpec]:
    faults: dict[str, list[Fault]] = {spec.vin: list(spec.faults) for spec in specs}
    for table in tables:
        table.only("kind", "vehicles", "onset_day", "failure_day", "growth", "target")
        kind = table.choice("kind", FAULT_KINDS, None)
        vins = _vehicle_refs(table, specs, required=True)
        assert vins is not None
        onset = table.number("onset_day", None, low=-MAX_DAYS, high=MAX_DAYS)
        failure = table.number("failure_day", None, low=-MAX_DAYS, high=MAX_DAYS)
        target = table.integer("target", 0, 0, FAULT_TARGETS[kind] - 1)
        growth = table.number("growth", 1.5, low=0.0, high=10.0, above_low=True)
        try:
            fault = Fault(kind, onset, failure, target=target, growth=growth)
        except ConfigError as exc:
            raise table.fail(str(exc)) from None
        for vin in vins:
            if any(f.kind == kind for f in faults[vin]):
                raise ConfigError(f"{table.where('vehicles')}: {vin} already has a {kind} fault")
            faults[vin].append(fault)
    return [dataclasses.replace(spec, faults=tuple(faults[spec.vin])) for spec in specs]


def _agent(table: TomlTable, base: Path, time_plan: TimePlan) -> AgentPlan:
    table.only("models", "catalog", "dbc", "heartbeat_s")
    models_text = table.text("models") or "default"
    models: Path | None
    if models_text == "none":
        models = None
    elif models_text == "default":
        models = SHIPPED_BUNDLE
    else:
        models = table.path("models", base)
        assert models is not None
        if not _is_file(models / "bundle.json", table.where("models")):
            raise ConfigError(f"{table.where('models')}: {models} is not a model bundle (no bundle.json)")
    catalog = BENCH_CATALOG if table.text("catalog") in ("", "bench") else table.path("catalog", base)
    dbc = BENCH_DBC if table.text("dbc") in ("", "bench") else table.path("dbc", base)
    assert catalog is not None and dbc is not None
    for key, path in (("catalog", catalog), ("dbc", dbc)):
        if not _is_file(path, table.where(key)):
            raise ConfigError(f"{table.where(key)}: no such file {path}")
    heartbeat_s = table.number("heartbeat_s", 3600.0, low=time_plan.window_s, high=30 * 86_400.0)
    return AgentPlan(models, catalog, dbc, heartbeat_s)


def _expectation(table: TomlTable, specs: list[VehicleSpec]) -> Expectation:
    kind = table.choice("kind", EXPECT_KINDS, None)
    where = table.label
    if kind == "detect":
        table.only("kind", "fault", "vehicles", "within_days_of_onset", "min_lead_days", "min_share")
        fault = table.choice("fault", FAULT_KINDS, "") or None
        return Expectation(
            kind,
            where,
            fault=fault,
            vehicles=_vehicle_refs(table, specs, required=False),
            within_days_of_onset=table.optional_number("within_days_of_onset", low=0.0, high=MAX_DAYS),
            min_lead_days=table.optional_number("min_lead_days", low=-MAX_DAYS, high=MAX_DAYS),
            min_share=table.number("min_share", 1.0, low=0.0, high=1.0, above_low=True),
        )
    if kind == "no_alert":
        table.only("kind", "vehicles", "subsystems")
        subsystems = None
        if "subsystems" in table.data:
            subsystems = tuple(table.strings("subsystems", SUBSYSTEMS))
        return Expectation(
            kind, where, vehicles=_vehicle_refs(table, specs, required=False), subsystems=subsystems
        )
    if kind == "false_alarms":
        table.only("kind", "max_per_1000_vehicle_days")
        limit = table.number("max_per_1000_vehicle_days", None, low=0.0, high=1e9)
        return Expectation(kind, where, max_per_1000_vehicle_days=limit)
    table.only("kind", "max_bytes_per_vehicle_day")
    limit = table.number("max_bytes_per_vehicle_day", None, low=0.0, high=1e12)
    return Expectation(kind, where, max_bytes_per_vehicle_day=limit)


def _vehicle_refs(table: TomlTable, specs: list[VehicleSpec], *, required: bool) -> tuple[str, ...] | None:
    """`vehicles`: "all", or a list of VINs and 0-based vehicle numbers; the VINs."""
    where = table.where("vehicles")
    if "vehicles" not in table.data:
        if required:
            raise ConfigError(f'{where}: missing ("all", or a list of VINs or vehicle numbers)')
        return None
    value = table.data["vehicles"]
    if value == "all":
        return tuple(spec.vin for spec in specs)
    if not isinstance(value, list) or not value:
        raise ConfigError(f'{where}: must be "all" or a non-empty list of VINs or vehicle numbers')
    vins: list[str] = []
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool):
            if not 0 <= item < len(specs):
                raise ConfigError(f"{where}: there is no vehicle number {item} (0-{len(specs) - 1})")
            vin = specs[item].vin
        elif isinstance(item, str):
            if not any(spec.vin == item for spec in specs):
                raise ConfigError(f"{where}: no vehicle has VIN {item!r}")
            vin = item
        else:
            raise ConfigError(f"{where}: {item!r} is neither a VIN nor a vehicle number")
        if vin not in vins:
            vins.append(vin)
    return tuple(vins)


def _is_file(path: Path, where: str) -> bool:
    """path.is_file(), with the OSError it may raise (a name too long, ...) as a ConfigError."""
    try:
        return path.is_file()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot use {path}: {exc.strerror or exc}") from None
