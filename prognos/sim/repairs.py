"""Synthetic diagnoses for the simulated work orders: which root cause lies behind a fault code,
what the customer and technician observe, what the workshop repairs first and whether that
fixes it. The history guided diagnosis (prognos.desk.guide) learns from and is backtested on.

The fault code alone does not determine the root cause. Each code has several causes; how
likely each is depends on the vehicle's model, its mileage (smoothly, not in the guide's
bands), the root cause of its previous repair for the code, and on things no work order
records (a driver's habits), which is left to chance. Each cause makes some symptoms likely;
any symptom of the code may also be reported for another cause (NOISE). Workshops repair the
code's usual cause first (the first of FAULTS[code]) out of habit, except HABIT_BREAK of the
time when they try another; a wrong first repair brings the vehicle back within 2 to 20 days
(prognos.sim.dealers), where the real cause is found and repaired.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class Cause:
    name: str
    repair: str  # steps, ";" between them
    weight: float  # how common it is for its code, before the vehicle is considered
    per_100k_km: float = 0.0  # change of its log-odds per 100,000 km on the odometer
    models: Mapping[str, float] = field(default_factory=dict)  # odds factor per model (default 1)
    symptoms: Mapping[str, float] = field(default_factory=dict)  # tag -> chance it is reported
    recurs: float = 1.0  # odds factor when the vehicle's previous repair for the code was this cause


FAULTS: dict[str, tuple[Cause, ...]] = {  # fault code -> its causes, the habitual repair first
    "brakes.pad_wear": (
        Cause(
            "pads_worn",
            "replace_pads",
            0.75,
            1.0,
            symptoms={"squeal": 0.5, "grinding": 0.35, "wear_warning": 0.8},
            recurs=0.5,
        ),
        Cause(
            "caliper_sticking",
            "overhaul_caliper;replace_pads",
            0.10,
            0.5,
            models={"EV-2": 1.8},
            symptoms={"pulls_to_side": 0.6, "hot_wheel": 0.5, "burning_smell": 0.3, "wear_warning": 0.8},
            recurs=1.5,
        ),
        Cause(
            "wear_sensor_fault",
            "replace_wear_sensor",
            0.09,
            -1.5,
            symptoms={"wear_warning": 0.95, "intermittent_warning": 0.6},
            recurs=2.0,
        ),
        Cause(
            "disc_corrosion",
            "replace_discs;replace_pads",
            0.06,
            -1.0,
            models={"EV-1": 1.5},
            symptoms={"grinding": 0.5, "vibration_braking": 0.6},
        ),
    ),
    "tires.pressure_loss": (
        Cause("puncture", "repair_puncture", 0.75, symptoms={"one_tire_low": 0.85, "steady_loss": 0.6}),
        Cause("valve_leak", "replace_valve", 0.10, 0.8, symptoms={"one_tire_low": 0.7, "slow_leak": 0.6}),
        Cause(
            "tpms_sensor_fault",
            "replace_tpms_sensor",
            0.08,
            1.5,
            symptoms={"intermittent_warning": 0.7, "pressure_ok_on_check": 0.75},
            recurs=1.5,
        ),
        Cause(
            "bead_leak",
            "reseat_tire_bead",
            0.07,
            models={"EV-2": 1.6},
            symptoms={"loss_when_cold": 0.6, "slow_leak": 0.5},
        ),
    ),
    "battery.module_temperature_drift": (
        Cause(
            "temp_sensor_fault",
            "replace_module_temp_sensor",
            0.75,
            symptoms={"single_module_reading": 0.7},
            recurs=1.3,
        ),
        Cause(
            "coolant_pump_weak",
            "replace_coolant_pump",
            0.10,
            1.2,
            symptoms={"derate_fast_charge": 0.6, "pump_noise": 0.5},
        ),
        Cause(
            "coolant_leak",
            "repair_coolant_leak;refill_coolant",
            0.08,
            symptoms={"coolant_warning": 0.7, "derate_fast_charge": 0.3},
        ),
        Cause(
            "cell_imbalance",
            "balance_module",
            0.07,
            1.5,
            models={"EV-1": 1.5},
            symptoms={"range_loss": 0.6, "single_module_reading": 0.3},
        ),
    ),
    "bearings.wheel_bearing_wear": (
        Cause(
            "wheel_bearing_worn",
            "replace_wheel_bearing",
            0.75,
            1.0,
            symptoms={"hum_rising_with_speed": 0.75, "play_in_wheel": 0.4},
        ),
        Cause(
            "tire_cupping",
            "rotate_and_balance_tires",
            0.15,
            -0.5,
            symptoms={"hum_rising_with_speed": 0.5, "uneven_tire_wear": 0.65},
        ),
        Cause(
            "cv_joint_wear",
            "replace_drive_shaft",
            0.10,
            models={"EV-2": 2.0},
            symptoms={"clicking_when_turning": 0.75},
        ),
    ),
    "motor.noise": (
        Cause("motor_bearing_worn", "replace_motor_bearings", 0.75, 1.2, symptoms={"whine_under_load": 0.65}),
        Cause("motor_mount_worn", "replace_motor_mount", 0.10, symptoms={"clunk_on_takeoff": 0.7}),
        Cause(
            "reducer_gear_wear",
            "overhaul_reducer",
            0.08,
            0.8,
            models={"EV-2": 2.0},
            symptoms={"whine_when_coasting": 0.65, "whine_under_load": 0.3},
        ),
        Cause("loose_heat_shield", "secure_heat_shield", 0.07, -0.3, symptoms={"rattle_low_speed": 0.7}),
    ),
}
CODE_SHARE = {  # how often each code brings a vehicle in, among the visits with a fault code
    "brakes.pad_wear": 0.30,
    "tires.pressure_loss": 0.25,
    "battery.module_temperature_drift": 0.15,
    "bearings.wheel_bearing_wear": 0.15,
    "motor.noise": 0.15,
}
FAULT_VISITS = 0.35  # share of a dealer's work orders that repair a reported fault
NOISE = 0.05  # chance a symptom of the code is reported although the cause is another
HABIT_BREAK = 0.15  # share of first repairs that try a cause other than the habitual one
CHANCE = 0.5  # spread of the log-odds of each cause from what no work order records
KM_PER_DAY = (45.0, 0.5, 10.0, 200.0)  # lognormal median, sigma, bounds (as prognos.sim.fleet)


@dataclass(frozen=True)
class Diagnosis:
    code: str
    cause: Cause  # the real root cause
    first: Cause  # what the workshop repaired at the first visit
    symptoms: tuple[str, ...]

    @property
    def fixed_first_time(self) -> bool:
        return self.first is self.cause

    def visit_columns(self, mileage_km: int, *, comeback: bool = False) -> dict[str, str]:
        """The DMS work_order columns of the first visit, or of the comeback that fixes it."""
        done = self.cause if comeback else self.first
        return {
            "fault_code": self.code,
            "symptoms": ";".join(self.symptoms),
            "mileage_km": str(mileage_km),
            "root_cause": done.name,
            "repair": done.repair,
        }


@functools.lru_cache(maxsize=65_536)
def km_per_day(vin: str) -> float:
    """How far a vehicle is driven a day, stable for its VIN."""
    median, sigma, low, high = KM_PER_DAY
    draw = np.random.default_rng(zlib.crc32(vin.encode())).lognormal(math.log(median), sigma)
    return float(np.clip(draw, low, high))


def mileage_km(vin: str, days_on_road: float) -> int:
    """The odometer of a vehicle on the road for so many days (delivery kilometres before)."""
    return round(30 + km_per_day(vin) * max(0.0, days_on_road))


class Diagnoser:
    """Draws diagnoses, remembering each vehicle's last root cause per code (its past repair)."""

    def __init__(self, *, seed: int, stream: int = 0) -> None:
        self._rng = np.random.default_rng([seed, 40_000 + stream])
        self._last: dict[tuple[str, str], str] = {}

    def fault_code(self) -> str | None:
        """The fault code of a dealer's next visit, or None for a visit without one."""
        draw = float(self._rng.random())
        if draw >= FAULT_VISITS:
            return None
        return _pick(list(CODE_SHARE), list(CODE_SHARE.values()), draw / FAULT_VISITS)

    def diagnose(self, *, vin: str, model: str, code: str, mileage_km: int) -> Diagnosis:
        """A vehicle comes in with `code` at `mileage_km`; visits of a vehicle come in time order."""
        causes = FAULTS[code]
        tags = sorted({tag for c in causes for tag in c.symptoms})
        previous = self._last.get((vin, code))
        unknown = self._rng.normal(0.0, CHANCE, len(causes))
        draws = self._rng.random(2 + len(tags))
        odds = [
            math.log(c.weight)
            + c.per_100k_km * mileage_km / 100_000
            + math.log(c.models.get(model, 1.0))
            + (math.log(c.recurs) if c.name == previous else 0.0)
            + float(noise)
            for c, noise in zip(causes, unknown, strict=True)
        ]
        top = max(odds)
        cause = _pick(causes, [math.exp(o - top) for o in odds], float(draws[0]))
        symptoms = tuple(
            tag for tag, u in zip(tags, draws[2:], strict=True) if u < cause.symptoms.get(tag, NOISE)
        )
        first = causes[0]
        if draws[1] < HABIT_BREAK:
            first = causes[min(len(causes) - 1, int(draws[1] / HABIT_BREAK * len(causes)))]
        self._last[(vin, code)] = cause.name
        return Diagnosis(code, cause, first, symptoms)


def _pick(items: Sequence[T], weights: Sequence[float], draw: float) -> T:
    """The item a uniform draw in [0, 1) falls on, each taking its share of the weights."""
    total = sum(weights)
    running = 0.0
    for item, weight in zip(items, weights, strict=True):
        running += weight / total
        if draw < running:
            return item
    return items[-1]
