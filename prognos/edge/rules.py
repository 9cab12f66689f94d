"""Threshold rules: window features of a vehicle's signals -> subsystem health and faults.

Each rule reads the signals of one subsystem, gives a health (1 as new, 0 at the failure
threshold) and an anomaly score (1.0 at the alert threshold), and names a fault when the score
reaches 1. Where a degradation trend exists it adds days until the failure threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prognos.edge.features import WindowFeatures
from prognos.edge.trend import DaysToThreshold
from prognos.record import FaultHypothesis, SubsystemState

DaysTo = Callable[[str, float], DaysToThreshold | None]


@dataclass(frozen=True)
class Limits:
    """nominal: a healthy value; alert: where the score is 1; failure: where health is 0."""

    nominal: float
    alert: float
    failure: float

    def health(self, value: float) -> float:
        return _clip((self.failure - value) / (self.failure - self.nominal))

    def score(self, value: float) -> float:
        return max(0.0, (value - self.nominal) / (self.alert - self.nominal))


BATTERY_SPREAD_C = Limits(nominal=0.5, alert=3.0, failure=8.0)
TIRE_PRESSURE_KPA = Limits(nominal=240.0, alert=205.0, failure=180.0)
PAD_WEAR_PERCENT = Limits(nominal=0.0, alert=70.0, failure=80.0)
BEARING_VIB_G = Limits(nominal=0.35, alert=1.0, failure=2.0)
MOTOR_NOISE_DB = Limits(nominal=66.0, alert=75.0, failure=85.0)

# Derived quantities that get a trend of their own, keyed like signals.
BATTERY_SPREAD = "derived.battery.module_temperature_spread"


@dataclass(frozen=True)
class Assessment:
    subsystems: dict[str, SubsystemState]
    faults: list[FaultHypothesis]
    trend_inputs: dict[str, float]


def assess(features: Mapping[str, WindowFeatures], days_to: DaysTo) -> Assessment:
    """Apply every rule to one window's features (keyed by VSS path)."""
    subsystems: dict[str, SubsystemState] = {}
    faults: list[FaultHypothesis] = []
    trend_inputs: dict[str, float] = {}

    def worst(subsystem: str, fault_code: str, limits: Limits, readings: dict[str, float]) -> None:
        """Rate a subsystem by its worst reading; `readings` maps trend keys to values."""
        if not readings:
            return
        trend_inputs.update(readings)
        key, value = max(readings.items(), key=lambda kv: limits.score(kv[1]))
        score = limits.score(value)
        subsystems[subsystem] = SubsystemState(health=limits.health(value), anomaly_score=score)
        if score >= 1.0:
            dtt = days_to(key, limits.failure)
            faults.append(
                FaultHypothesis(
                    code=fault_code,
                    confidence=_clip(0.5 + 0.5 * (score - 1.0)),
                    days_to_threshold=dtt.days if dtt else None,
                    days_low=dtt.low if dtt else None,
                    days_high=dtt.high if dtt else None,
                )
            )

    def means(suffix: str) -> dict[str, float]:
        return {p: f.mean for p, f in features.items() if p.endswith(suffix) and f.count > 0}

    module_temps = means(".Temperature")
    module_temps = {p: v for p, v in module_temps.items() if ".TractionBattery.Module" in p}
    if len(module_temps) >= 2:
        spread = max(module_temps.values()) - min(module_temps.values())
        worst("battery", "battery.module_temperature_drift", BATTERY_SPREAD_C, {BATTERY_SPREAD: spread})
    # Pressure falls toward failure, so rate its deficit below nominal on the rising scale.
    pressures = {p: v for p, v in means(".Tire.Pressure").items()}
    if pressures:
        inverted = Limits(
            0.0,
            TIRE_PRESSURE_KPA.nominal - TIRE_PRESSURE_KPA.alert,
            TIRE_PRESSURE_KPA.nominal - TIRE_PRESSURE_KPA.failure,
        )
        worst(
            "tires",
            "tires.pressure_loss",
            inverted,
            {p: TIRE_PRESSURE_KPA.nominal - v for p, v in pressures.items()},
        )
    worst("brakes", "brakes.pad_wear", PAD_WEAR_PERCENT, means(".Brake.PadWear"))
    worst("bearings", "bearings.wheel_bearing_wear", BEARING_VIB_G, means(".Bearing.VibrationRMS"))
    worst("motor", "motor.noise", MOTOR_NOISE_DB, means(".ElectricMotor.Noise"))
    return Assessment(subsystems, faults, trend_inputs)


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))
