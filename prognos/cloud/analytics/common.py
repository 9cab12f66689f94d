"""What the fleet analytics share: the settings, the recommended actions and campaign checks,
the columns of the result tables (from the storage schema) and small helpers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import NormalDist

import numpy as np
import pandas as pd

from prognos.cloud.parts.plan import (
    DAYS_INTERVAL,
)
from prognos.cloud.storage import schema

DAY_MS = 86_400_000
Z_INTERVAL = NormalDist().inv_cdf((1.0 + DAYS_INTERVAL) / 2.0)  # 1.2816: the 10% / 90% quantiles

# What to tell the workshop per fault code, in a service manager's words.
RECOMMENDED_ACTIONS: dict[str, str] = {
    "battery.module_temperature_drift": "Book a battery check: compare the module temperatures under "
    "load, inspect the module cooling, and replace the module temperature sensor if it reads off.",
    "tires.pressure_loss": "Inspect the tire for a puncture or a leaking valve; repair or replace it "
    "and check the TPMS sensor.",
    "brakes.pad_wear": "Replace the brake pads on the worn axle and check the discs while the "
    "wheels are off.",
    "bearings.wheel_bearing_wear": "Road-test for wheel bearing noise and check the bearing play; "
    "replace the wheel bearing hub unit.",
    "motor.noise": "Inspect the drive motor for bearing noise and moisture in the housing; replace "
    "the motor bearing kit.",
}
# What a campaign checks on every vehicle of a cohort, per fault code.
CAMPAIGN_CHECKS: dict[str, str] = {
    "battery.module_temperature_drift": "Read the battery module temperatures under load and "
    "inspect the module temperature sensors and cooling.",
    "tires.pressure_loss": "Check the tire pressures, valves and TPMS sensors.",
    "brakes.pad_wear": "Measure the brake pad thickness on both axles.",
    "bearings.wheel_bearing_wear": "Check the wheel bearings for play and noise.",
    "motor.noise": "Listen to the drive motor under load and check its housing for moisture.",
}
# How a subsystem is named in advice.
SUBSYSTEM_WORDS: dict[str, str] = {
    "battery": "the traction battery",
    "tires": "the tires",
    "brakes": "the brakes",
    "bearings": "the wheel bearings",
    "motor": "the drive motor",
}

# What a fault code means, in a service advisor's words.
FAULT_WORDS: dict[str, str] = {
    "battery.module_temperature_drift": "a battery module running hot",
    "tires.pressure_loss": "a tire losing pressure",
    "brakes.pad_wear": "brake pads near their wear limit",
    "bearings.wheel_bearing_wear": "a wheel bearing wearing",
    "motor.noise": "drive motor noise rising",
}
# The registry column naming the supplier of each subsystem's part.
SUPPLIER_OF: dict[str, str] = {
    "battery": "battery_supplier",
    "tires": "tire_supplier",
    "brakes": "brake_supplier",
    "bearings": "bearing_supplier",
    "motor": "motor_supplier",
}
COHORT_ATTRIBUTES = (
    "lot",
    "model",
    "battery_supplier",
    "tire_supplier",
    "brake_supplier",
    "bearing_supplier",
    "motor_supplier",
)
ANOMALY_SUFFIX = ".anomaly"  # signature of a subsystem anomaly that names no fault code
REPLACEMENT_JUMP = 0.15  # a daily health rise this large is a part replaced: the trend restarts there


@dataclass(frozen=True)
class WearItem:
    """A wear part whose service interval follows the wear rate of its subsystem's health."""

    subsystem: str
    code: str  # the fault code of the worn part (its FAULT_PARTS entry names the part)
    standard_interval_days: float  # the interval a vehicle wearing at the fleet's typical rate gets


WEAR_ITEMS: tuple[WearItem, ...] = (WearItem("brakes", "brakes.pad_wear", 365.0),)


@dataclass(frozen=True, kw_only=True)
class AnalyticsSettings:
    """The thresholds of docs/analytics.md; the defaults are the documented values."""

    p1_days: float = 14.0  # a fault due within this many days is P1
    drift_drop: float = 0.15  # health fallen by this much over the window is drift (P3)
    service_margin_days: float = 3.0  # a service is due this long before the 10% failure bound
    cohort_attributes: tuple[str, ...] = COHORT_ATTRIBUTES
    min_affected: int = 3  # a cohort needs at least this many affected vehicles
    min_lift: float = 2.0  # ... an affected share at least this many times the base rate
    fdr: float = 0.05  # ... and a Benjamini-Hochberg q-value at most this
    nested_alpha: float = 0.05  # significance of the comparisons between nested cohorts
    wear_items: tuple[WearItem, ...] = WEAR_ITEMS
    min_trend_days: int = 5  # days of data a wear trend needs
    min_fleet_rates: int = 3  # vehicles with a wear trend needed for a fleet typical rate
    rate_clip: float = 4.0  # a relative wear rate is kept within [1/rate_clip, rate_clip]


DEFAULT_SETTINGS = AnalyticsSettings()

# The result tables have the columns their measurements store (prognos.cloud.storage.schema),
# but for what the job adds: the rank (a row's place), a cohort's campaign counts; a campaign
# vehicle's cohort is the tag `cohort`.
ALERT_COLUMNS = schema.ALERT.column_names(without=("rank",))
COHORT_COLUMNS = schema.COHORT.column_names(
    first=("cohort_id",), without=("campaign_vehicles", "not_yet_affected")
)
CAMPAIGN_COLUMNS = ("cohort_id", *schema.CAMPAIGN_VEHICLE.column_names(without=("cohort",)))
SERVICE_COLUMNS = schema.SERVICE_LIST.column_names(without=("rank",))
INTERVAL_COLUMNS = schema.MAINTENANCE_INTERVAL.column_names(first=("vin", "subsystem"))


def empty_frame(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def day_text(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000.0, UTC).date().isoformat()


def day_start(ms: float) -> int:
    return int(ms // DAY_MS * DAY_MS)


def finite(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and math.isfinite(float(value))
