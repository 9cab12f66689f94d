"""The evaluation's bookkeeping, on hand-made alert episodes where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from prognos.models.dataset import FleetWindows
from prognos.models.evaluate import Episode, evaluate
from prognos.sim.vehicle import Fault, VehicleSpec


def fleet(*specs: VehicleSpec) -> FleetWindows:
    empty = np.zeros(0)
    return FleetWindows(
        vehicle=empty, day=empty, features={}, fault_kind=empty, severity=empty, specs=list(specs)
    )


def test_detections_misses_false_alarms_and_lead_time() -> None:
    data = fleet(
        VehicleSpec(vin="A0000000000000001", faults=(Fault("tire_leak", 10.0, 40.0, target=0),)),
        VehicleSpec(vin="B0000000000000002", faults=(Fault("tire_leak", 20.0, 50.0, target=1),)),
        VehicleSpec(vin="C0000000000000003"),
        VehicleSpec(vin="D0000000000000004", faults=(Fault("tire_leak", 50.0, 90.0, target=1),)),
    )
    found = [
        Episode(0, "tires", 5.0),  # before onset: a false alarm
        Episode(0, "tires", 15.0),  # detection, lead 25 days
        Episode(0, "tires", 30.0),  # a later episode of the same fault: neither
        Episode(0, "tires", 45.0),  # after failure: neither
        Episode(2, "tires", 12.0),  # healthy vehicle: a false alarm
        Episode(2, "battery", 12.0),  # healthy vehicle, other subsystem: a false alarm
        Episode(3, "tires", 55.0),  # fault still developing at the end: not counted against
    ]
    result = evaluate(data, found, days=60.0)
    tires = result.by_fault["tire_leak"]
    assert (tires.faults, tires.detected, tires.missed, tires.false_alarms) == (2, 1, 1, 2)
    assert tires.lead_days == [25.0]
    assert tires.precision == pytest.approx(1 / 3)
    assert tires.recall == pytest.approx(0.5)
    assert tires.f1 == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))
    assert result.by_fault["battery_drift"].false_alarms == 1
    assert result.vehicle_days == 240.0
    assert result.false_alarms_per_1000_vehicle_days == pytest.approx(1000 * 3 / 240)


def test_days_calibration_corrects_bias_and_covers_80_percent() -> None:
    from prognos.models.evaluate import DaysReport, days_to_failure_accuracy, fit_days_calibration

    rng = np.random.default_rng(5)
    # A trend that reports twice the true days, with a spread: the truth comes sooner.
    truths = rng.uniform(2.0, 40.0, 2000)
    reported = 2.0 * truths * np.exp(rng.normal(0.0, 0.3, truths.size))
    raw = [
        DaysReport("tires.pressure_loss", d, d * 0.9, d * 1.1, t)
        for d, t in zip(reported, truths, strict=True)
    ]
    calibration = fit_days_calibration(raw)["tires.pressure_loss"]
    assert calibration.log_q50 == pytest.approx(np.log(0.5), abs=0.05)
    assert calibration.log_q10 < calibration.log_q50 < calibration.log_q90
    corrected = []
    for r in raw:
        from prognos.edge.trend import DaysToThreshold

        c = calibration.apply(DaysToThreshold(r.days, 0.0, 0.0))
        corrected.append(DaysReport(r.code, c.days, c.low, c.high, r.truth))
    before, after = days_to_failure_accuracy(raw, 1), days_to_failure_accuracy(corrected, 1)
    assert before.interval_coverage < 0.1
    assert after.interval_coverage == pytest.approx(0.8, abs=0.03)
    assert after.median_abs_error_days < 0.5 * before.median_abs_error_days
    assert fit_days_calibration(raw[:10]) == {}  # too few reports to calibrate
