"""A seedable vehicle simulator: sensor signals of one vehicle over any window of time.

Effects, each with its physical reason:
- Ambient temperature and humidity follow the vehicle's climate with a daily cycle.
- The vehicle drives in a morning and an evening slot; aggressive drivers drive faster and
  brake harder. Parked, it reports no vibration or motor noise (its sensors sleep).
- Battery modules sit at ambient plus Joule heating that grows with the square of the load
  (speed), minus what the cooling loop removes; each module has a small fixed offset.
  A drifting module sensor or failing cell adds a growing offset to one module.
- Tire pressure follows the ideal gas law with tire temperature (ambient plus rolling heat);
  healthy tires lose about 1.5 kPa a month by permeation; a slow leak adds a growing loss.
- Brake pads wear with distance, faster with hard braking (aggressive drivers); a dragging
  caliper adds wear of its own.
- Wheel-bearing vibration RMS grows with speed; a worn bearing adds energy that grows with wear.
- Drive-motor noise grows with speed; a motor fault adds noise.

A fault has an onset day and a failure day; its severity grows from 0 at onset to 1 at the
failure day (severity = progress ** growth), the ground-truth day of functional failure.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from edge.features import FloatArray
from prognos.catalog import Catalog

FAULT_KINDS = ("battery_drift", "tire_leak", "pad_wear", "bearing_wear", "motor_noise")
WHEELS = ("Row1.Wheel.Left", "Row1.Wheel.Right", "Row2.Wheel.Left", "Row2.Wheel.Right")
NOMINAL_PRESSURE_KPA = 240.0
PERMEATION_KPA_PER_DAY = 0.05


@dataclass(frozen=True)
class Fault:
    kind: str
    onset_day: float
    failure_day: float
    target: int = 0  # which module or wheel
    growth: float = 1.5

    def severity(self, day: FloatArray) -> FloatArray:
        progress = np.clip((day - self.onset_day) / (self.failure_day - self.onset_day), 0.0, None)
        return np.asarray(progress**self.growth, dtype=np.float64)


@dataclass(frozen=True)
class VehicleSpec:
    vin: str
    model: str = "EV-1"
    lot: str = "L001"
    region: str = "north"
    climate_c: float = 12.0
    humidity_percent: float = 65.0
    aggressiveness: float = 0.3  # 0 gentle ... 1 aggressive
    pad_wear_percent: float = 20.0  # at day 0
    faults: tuple[Fault, ...] = field(default_factory=tuple)


class VehicleSimulator:
    """Signals of one vehicle; day 0 is `epoch_ms`. Deterministic for a given seed and window."""

    def __init__(self, spec: VehicleSpec, catalog: Catalog, *, seed: int, epoch_ms: int) -> None:
        self.spec = spec
        self.catalog = catalog
        self.seed = seed
        self.epoch_ms = epoch_ms
        self._module_offsets = np.random.default_rng([seed, 1]).normal(0.0, 0.25, 8)

    def window(self, start_ms: int, duration_s: float) -> dict[str, tuple[FloatArray, FloatArray]]:
        """Samples of every catalog signal in [start_ms, start_ms + duration): path -> (times_s, values)."""
        rng = np.random.default_rng([self.seed, start_ms % 2**63])
        out: dict[str, tuple[FloatArray, FloatArray]] = {}
        for path, signal in self.catalog.items():
            count = max(1, int(duration_s * signal.rate_hz))
            times_s = start_ms / 1000.0 + np.arange(count) / signal.rate_hz
            values = self._signal(path, times_s, rng)
            out[path] = (times_s, values)
        return out

    def _day(self, times_s: FloatArray) -> FloatArray:
        return np.asarray((times_s * 1000.0 - self.epoch_ms) / 86_400_000.0, dtype=np.float64)

    def _fault(self, kind: str, target: int, day: FloatArray) -> FloatArray:
        total = np.zeros_like(day)
        for fault in self.spec.faults:
            if fault.kind == kind and fault.target == target:
                total = total + fault.severity(day)
        return total

    def speed_kmh(self, times_s: FloatArray) -> FloatArray:
        hour = (times_s / 3600.0) % 24.0
        driving = ((hour >= 7.5) & (hour < 8.5)) | ((hour >= 17.0) & (hour < 18.25))
        cruise = 45.0 + 50.0 * self.spec.aggressiveness
        wave = np.sin(times_s / 97.0) * 25.0 + np.sin(times_s / 23.0) * 10.0
        return np.where(driving, np.clip(cruise + wave, 0.0, 180.0), 0.0)

    def ambient_c(self, times_s: FloatArray) -> FloatArray:
        hour = (times_s / 3600.0) % 24.0
        return self.spec.climate_c + 6.0 * np.sin(2 * math.pi * (hour - 9.0) / 24.0)

    def _signal(self, path: str, t: FloatArray, rng: np.random.Generator) -> FloatArray:
        day = self._day(t)
        speed = self.speed_kmh(t)
        moving = speed > 0.0
        ambient = self.ambient_c(t)
        noise = rng.normal(0.0, 1.0, t.size)
        if path == "Vehicle.Speed":
            return np.clip(speed + 0.5 * noise * moving, 0.0, None)
        if path == "Vehicle.Exterior.AirTemperature":
            return ambient + 0.2 * noise
        if path == "Vehicle.Exterior.Humidity":
            hour = (t / 3600.0) % 24.0
            humid = self.spec.humidity_percent - 12.0 * np.sin(2 * math.pi * (hour - 9.0) / 24.0)
            return np.asarray(np.clip(humid + noise, 0.0, 100.0))
        if ".TractionBattery.Module" in path:
            module = int(path.split(".Module")[1].split(".")[0]) - 1
            joule = 9.0 * (speed / 100.0) ** 2
            drift = 8.0 * self._fault("battery_drift", module, day)
            offset = float(self._module_offsets[module])
            return ambient + 4.0 + joule + offset + drift + 0.1 * noise
        for wheel_index, wheel in enumerate(WHEELS):
            if wheel not in path:
                continue
            if path.endswith("Tire.Pressure"):
                tire_c = ambient + 0.12 * speed
                cold_kpa = (
                    NOMINAL_PRESSURE_KPA
                    - PERMEATION_KPA_PER_DAY * day
                    - 60.0 * self._fault("tire_leak", wheel_index, day)
                )
                # Gauge pressure from absolute: p_abs scales with absolute temperature (20 C fill).
                absolute = (cold_kpa + 101.3) * (tire_c + 273.15) / 293.15
                return absolute - 101.3 + 0.3 * noise
            if path.endswith("Brake.PadWear"):
                km = day * 60.0
                wear = self.spec.pad_wear_percent + km * 0.0012 * (1.0 + 2.5 * self.spec.aggressiveness)
                wear = wear + 60.0 * self._fault("pad_wear", wheel_index, day)
                return np.asarray(np.clip(wear + 0.05 * noise, 0.0, 100.0))
            if path.endswith("Bearing.VibrationRMS"):
                wear = self._fault("bearing_wear", wheel_index, day)
                rms = 0.2 + 0.15 * speed / 100.0 + 1.8 * wear * (0.5 + speed / 200.0) + 0.03 * noise
                return np.where(moving, np.clip(rms, 0.0, None), np.nan)
        if path.endswith("ElectricMotor.Temperature"):
            return ambient + 15.0 + 40.0 * (speed / 150.0) + 0.3 * noise
        if path.endswith("ElectricMotor.Noise"):
            db = 58.0 + 8.0 * speed / 150.0 + 22.0 * self._fault("motor_noise", 0, day) + 0.5 * noise
            return np.where(moving, db, np.nan)
        return np.full(t.size, np.nan)


def vin_for(fleet_seed: int, index: int) -> str:
    """A VIN-shaped identifier, stable for a fleet seed and vehicle index."""
    digest = zlib.crc32(f"{fleet_seed}:{index}".encode())
    return f"PRG{fleet_seed % 1000:03d}S{digest % 100000:05d}{index % 100000:05d}"


def make_fleet(size: int, *, seed: int, fault_share: float = 0.4) -> list[VehicleSpec]:
    """A fleet of `size` vehicles: models, production lots, regions, climates, drivers and faults.

    One lot carries a batch defect (drifting battery module sensors); other faults are spread
    at random, motor faults more often in cold and humid climates.
    """
    rng = np.random.default_rng(seed)
    regions = {"north": (6.0, 75.0), "south": (20.0, 55.0), "coast": (14.0, 85.0)}
    specs = []
    for index in range(size):
        region = str(rng.choice(list(regions)))
        climate_c, humidity = regions[region]
        lot = f"L{1 + index % 4:03d}"
        faults: list[Fault] = []
        if lot == "L002" and rng.random() < 0.7:
            onset = float(rng.uniform(-5.0, 10.0))
            faults.append(
                Fault(
                    "battery_drift", onset, onset + float(rng.uniform(20, 40)), target=int(rng.integers(0, 4))
                )
            )
        elif rng.random() < fault_share:
            motor_weight = 1.0 + (humidity > 70) + (climate_c < 10)
            weights = np.array([1.0, 1.0, 1.0, 1.0, motor_weight])  # order of FAULT_KINDS
            kind = str(rng.choice(FAULT_KINDS, p=weights / weights.sum()))
            onset = float(rng.uniform(-10.0, 20.0))
            faults.append(
                Fault(
                    kind,
                    onset,
                    onset + float(rng.uniform(15, 45)),
                    target=int(rng.integers(0, 2 if kind == "pad_wear" else 4)),
                )
            )
        specs.append(
            VehicleSpec(
                vin=vin_for(seed, index),
                model=str(rng.choice(["EV-1", "EV-2"])),
                lot=lot,
                region=region,
                climate_c=climate_c + float(rng.normal(0, 2)),
                humidity_percent=humidity,
                aggressiveness=float(rng.uniform(0, 1)),
                pad_wear_percent=float(rng.uniform(5, 50)),
                faults=tuple(faults),
            )
        )
    return specs
