"""Simulated fleets: vehicles drawn from regions, models, production lots and suppliers, with
faults at random and production-lot (batch) defects. Same seed, same fleet; the VINs are
derived from the seed, so the dealer data (prognos.sim.dealers) can name the same vehicles."""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from prognos.errors import ConfigError
from prognos.sim.vehicle import FAULT_KINDS, FAULT_PARTS, FAULT_TARGETS, Fault, VehicleSpec

# A motor fault is likelier in cold, humid climates (condensation).
MOTOR_FAULT_REF_C = 12.0
MOTOR_FAULT_REF_HUMIDITY = 65.0
MOTOR_FAULT_COLD_PER_C = 0.06  # log hazard per degree colder than the reference
MOTOR_FAULT_HUMID_PER_PERCENT = 0.03  # log hazard per percent more humid


@dataclass(frozen=True)
class Climate:
    mean_c: float
    humidity_percent: float
    seasonal_amplitude_c: float
    daily_amplitude_c: float
    utc_offset_h: float


REGIONS = {
    "north": Climate(5.0, 80.0, 9.0, 4.0, 1.0),
    "south": Climate(19.0, 55.0, 7.0, 7.0, 1.0),
    "coast": Climate(13.0, 84.0, 5.0, 3.0, 0.0),
}
MODELS = {"EV-1": 1850.0, "EV-2": 2300.0}  # model -> laden mass, kg
SUPPLIERS = {
    "battery": ("Voltacell", "Kessler Energy"),
    "tires": ("Rondo", "Trackway"),
    "brakes": ("Ferodur", "Bremka"),
    "bearings": ("Lagerwerk", "RollTec"),
    "motor": ("Elmot", "Statora"),
}


@dataclass(frozen=True)
class BatchDefect:
    """A defect that hits a share of one production lot and/or one supplier's parts."""

    kind: str
    lot: str | None = None
    supplier: str | None = None  # of the part the fault kind affects
    share: float = 0.7
    onset_days: tuple[float, float] = (-5.0, 10.0)
    time_to_failure_days: tuple[float, float] = (20.0, 40.0)
    target: int | None = None  # None: a random module or wheel per vehicle

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ConfigError(f"batch defect kind {self.kind!r} is not one of {', '.join(FAULT_KINDS)}")

    def hits(self, spec: VehicleSpec) -> bool:
        return (self.lot is None or spec.lot == self.lot) and (
            self.supplier is None or spec.supplier(FAULT_PARTS[self.kind]) == self.supplier
        )


DEFAULT_BATCH_DEFECTS = (BatchDefect("battery_drift", lot="L002"),)


def motor_fault_factor(climate_c: float, humidity_percent: float) -> float:
    """How much likelier a motor fault is in this climate than at 12 C and 65 % (condensation
    in the housing corrodes bearings and wets windings; cold makes it condense more often)."""
    return math.exp(
        MOTOR_FAULT_COLD_PER_C * (MOTOR_FAULT_REF_C - climate_c)
        + MOTOR_FAULT_HUMID_PER_PERCENT * (humidity_percent - MOTOR_FAULT_REF_HUMIDITY)
    )


def vin_for(fleet_seed: int, index: int) -> str:
    """A VIN-shaped identifier, stable for a fleet seed and vehicle index."""
    digest = zlib.crc32(f"{fleet_seed}:{index}".encode())
    return f"PRG{fleet_seed % 1000:03d}S{digest % 100000:05d}{index % 100000:05d}"


def make_fleet(
    size: int,
    *,
    seed: int,
    fault_share: float = 0.4,
    lots: int = 4,
    batch_defects: Sequence[BatchDefect] = DEFAULT_BATCH_DEFECTS,
    onset_days: tuple[float, float] = (-10.0, 20.0),
    time_to_failure_days: tuple[float, float] = (15.0, 45.0),
) -> list[VehicleSpec]:
    """A fleet of `size` vehicles: models, production lots, suppliers, regions, usage, drivers
    and faults.

    Vehicle i goes to lot i % lots; a lot is one model with one supplier per part. A vehicle hit
    by a batch defect gets that fault; any other gets at most one random fault, each kind with
    probability fault_share / 5 at the reference climate, motor faults scaled by
    motor_fault_factor (likelier in cold and humid regions). Vehicle i's spec depends only on
    (seed, i, lots), not on the fleet size.
    """
    models = list(MODELS)
    lot_parts = []
    for lot_index in range(lots):
        rng = np.random.default_rng([seed % 2**63, 1_000_000 + lot_index])
        lot_parts.append(tuple((part, str(rng.choice(names))) for part, names in SUPPLIERS.items()))
    specs = []
    for index in range(size):
        rng = np.random.default_rng([seed % 2**63, index])
        lot_index = index % lots
        model = models[lot_index % len(models)]
        region = str(rng.choice(list(REGIONS)))
        climate = REGIONS[region]
        climate_c = climate.mean_c + float(rng.normal(0.0, 1.5))
        humidity = float(np.clip(climate.humidity_percent + rng.normal(0.0, 3.0), 20.0, 95.0))
        spec = VehicleSpec(
            vin=vin_for(seed, index),
            model=model,
            lot=f"L{1 + lot_index:03d}",
            region=region,
            climate_c=climate_c,
            humidity_percent=humidity,
            aggressiveness=float(rng.beta(2.0, 2.5)),
            pad_wear_percent=float(rng.uniform(5.0, 50.0)),
            seasonal_amplitude_c=climate.seasonal_amplitude_c,
            daily_amplitude_c=climate.daily_amplitude_c,
            utc_offset_h=climate.utc_offset_h,
            urban_share=float(rng.beta(3.0, 2.0)),
            trips_per_day=float(rng.uniform(1.5, 3.5)),
            km_per_day=float(np.clip(45.0 * rng.lognormal(-0.125, 0.5), 10.0, 200.0)),
            mass_kg=MODELS[model] + float(rng.uniform(0.0, 150.0)),
            odometer_km=float(rng.uniform(2_000.0, 60_000.0)),
            suppliers=lot_parts[lot_index],
        )
        fault = _batch_fault(spec, batch_defects, rng)
        if fault is None:
            fault = _random_fault(spec, fault_share, rng, onset_days, time_to_failure_days)
        specs.append(dataclasses.replace(spec, faults=() if fault is None else (fault,)))
    return specs


def _batch_fault(spec: VehicleSpec, defects: Sequence[BatchDefect], rng: np.random.Generator) -> Fault | None:
    for defect in defects:
        if defect.hits(spec) and rng.random() < defect.share:
            onset = float(rng.uniform(*defect.onset_days))
            target = defect.target
            if target is None:
                target = int(rng.integers(0, FAULT_TARGETS[defect.kind]))
            return Fault(
                defect.kind,
                onset,
                onset + float(rng.uniform(*defect.time_to_failure_days)),
                target=target,
                growth=float(rng.uniform(1.0, 2.5)),
            )
    return None


def _random_fault(
    spec: VehicleSpec,
    fault_share: float,
    rng: np.random.Generator,
    onset_days: tuple[float, float],
    time_to_failure_days: tuple[float, float],
) -> Fault | None:
    chances = np.full(len(FAULT_KINDS), fault_share / len(FAULT_KINDS))
    chances[FAULT_KINDS.index("motor_noise")] *= motor_fault_factor(spec.climate_c, spec.humidity_percent)
    if chances.sum() > 1.0:
        chances = chances / chances.sum()
    draw = rng.random()
    bounds = np.cumsum(chances)
    if draw >= bounds[-1]:
        return None
    kind = FAULT_KINDS[int(np.searchsorted(bounds, draw, side="right"))]
    onset = float(rng.uniform(*onset_days))
    return Fault(
        kind,
        onset,
        onset + float(rng.uniform(*time_to_failure_days)),
        target=int(rng.integers(0, FAULT_TARGETS[kind])),
        growth=float(rng.uniform(1.0, 2.5)),
    )
