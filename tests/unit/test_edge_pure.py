"""The agent's pure parts: features, smoothing, trends, the assessor's record decisions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prognos.edge.agent import VehicleAssessor
from prognos.edge.features import FEATURE_NAMES, feature_matrix, window_features
from prognos.edge.smoothing import ScoreSmoother
from prognos.edge.trend import Trend
from prognos.record import Trigger


def test_features_match_their_definitions_and_skip_missing_samples() -> None:
    times = np.arange(0.0, 600.0, 10.0)
    values = 20.0 + times / 86_400.0 * 3.0 + np.sin(times)  # trend of 3 units a day
    values[5] = np.nan
    f = window_features(times, values)
    kept = np.delete(values, 5)
    assert f.count == 59
    assert f.mean == pytest.approx(kept.mean())
    assert f.std == pytest.approx(kept.std())
    assert (f.min, f.max) == (kept.min(), kept.max())
    assert f.rms == pytest.approx(math.sqrt(np.mean(kept**2)))
    assert f.slope_per_day == pytest.approx(3.0, abs=600.0)  # the sine dominates a short window
    steady = window_features(np.arange(0.0, 86_400.0, 600.0), 5.0 + np.arange(144) * 600.0 / 86_400.0 * 2.0)
    assert steady.slope_per_day == pytest.approx(2.0)


def test_a_batch_of_windows_gives_the_same_features_as_one_at_a_time() -> None:
    rng = np.random.default_rng(3)
    times = np.tile(np.arange(60.0), (5, 1))
    values = rng.normal(size=(5, 60))
    values[2, :] = np.nan
    values[3, ::2] = np.nan
    batch = feature_matrix(times, values)
    assert batch.shape == (5, len(FEATURE_NAMES))
    for row in range(5):
        np.testing.assert_array_equal(batch[row], feature_matrix(times[row], values[row]))
    assert batch[2, 0] == 0 and np.isnan(batch[2, 1:]).all()


def test_a_window_without_samples_has_count_zero_and_nan_features() -> None:
    empty = feature_matrix(np.array([]), np.array([]))
    assert empty.shape == (len(FEATURE_NAMES),)
    assert empty[0] == 0 and np.isnan(empty[1:]).all()
    assert feature_matrix(np.zeros((3, 0)), np.zeros((3, 0))).shape == (3, len(FEATURE_NAMES))


def test_smoothing_does_not_depend_on_how_often_windows_come() -> None:
    def smoothed(windows_per_day: int) -> float:
        smoother = ScoreSmoother(tau_days=0.5)
        value = math.nan
        for k in range(windows_per_day * 3):
            day = k / windows_per_day
            value = smoother.update(day, 2.0 if day >= 1.0 else 0.0)
        return value

    assert smoothed(24) == pytest.approx(smoothed(144), abs=0.02)
    assert smoothed(144) == pytest.approx(2.0 - 2.0 * math.exp(-2.0 / 0.5), abs=0.02)


def test_alert_has_hysteresis_and_ignores_missing_scores() -> None:
    smoother = ScoreSmoother(tau_days=0.01, release=0.7)
    smoother.update(0.0, 0.5)
    assert not smoother.alerting
    smoother.update(1.0, 1.2)
    assert smoother.alerting
    smoother.update(2.0, 0.8)
    assert smoother.alerting, "0.8 is above the release level"
    assert smoother.update(2.5, float("nan")) == pytest.approx(0.8)
    smoother.update(3.0, 0.5)
    assert not smoother.alerting


def test_trend_estimates_days_to_threshold_with_an_interval() -> None:
    rng = np.random.default_rng(1)
    trend = Trend()
    for k in range(200):
        day = k * 0.05
        trend.add(day, 10.0 + 0.5 * day + rng.normal(0, 0.05))
    estimate = trend.days_to(20.0)
    assert estimate is not None
    truth = (20.0 - (10.0 + 0.5 * 9.95)) / 0.5
    assert estimate.days == pytest.approx(truth, rel=0.05)
    assert estimate.low <= truth <= estimate.high
    assert trend.days_to(5.0) is None, "the trend heads away from 5"


def test_trend_needs_history_before_it_answers() -> None:
    trend = Trend()
    for k in range(5):
        trend.add(k * 0.01, float(k))
    assert trend.days_to(100.0) is None


def window(vin_assessor: VehicleAssessor, start_ms: int, module_offsets: list[float]) -> object:
    times = start_ms / 1000.0 + np.arange(600.0)
    samples = {
        f"Vehicle.Powertrain.TractionBattery.Module{m + 1}.Temperature": (times, np.full(600, 25.0 + off))
        for m, off in enumerate(module_offsets)
    }
    return vin_assessor.window(start_ms, start_ms + 600_000, samples, {"frames_seen": 1})


def test_assessor_sends_anomalies_changes_and_heartbeats_only() -> None:
    assessor = VehicleAssessor(vin="TEST0000000000001", heartbeat_s=3600.0)
    first = window(assessor, 0, [0.0, 0.1, 0.0, 0.1])
    assert first is not None and first.trigger == Trigger.HEARTBEAT
    quiet = [window(assessor, k * 600_000, [0.0, 0.1, 0.0, 0.1]) for k in range(1, 6)]
    assert quiet == [None] * 5, "nothing changed within the heartbeat interval"
    beat = window(assessor, 6 * 600_000, [0.0, 0.1, 0.0, 0.1])
    assert beat is not None and beat.trigger == Trigger.HEARTBEAT
    hot = window(assessor, 7 * 600_000, [0.0, 0.1, 5.0, 0.1])
    assert hot is not None and hot.trigger == Trigger.ANOMALY
    assert [f.code for f in hot.faults] == ["battery.module_temperature_drift"]
    assert hot.subsystems["battery"].anomaly_score > 1.0
    assert hot.seq == 3
