"""The onboarding detector on synthetic data where the answer is known: the trailing mean is
causal, a shifted sensor is flagged, normal rows are flagged at about the target rate, drifting
and constant sensors are left out, and the model survives a round trip through its dict."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from prognos.edge.features import trailing_mean
from prognos.errors import ConfigError
from prognos.models.onboarding import (
    MIN_CALIBRATION_ROWS,
    calibrate_threshold,
    fit,
    flags,
    from_dict,
    score,
    to_dict,
    variance_ratio,
)

COLUMNS = ["pressure_kpa", "current_a", "flow_lpm"]


def normal_rows(rows: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([300.0, 12.0, 32.0]) + rng.normal(size=(rows, 3)) * np.array([5.0, 0.5, 0.4])


def test_trailing_mean_matches_a_plain_loop_and_skips_nan() -> None:
    values = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0])
    expected = [1.0, 1.5, 1.5, 3.0, 4.5, 5.0]
    np.testing.assert_allclose(trailing_mean(values, 3), expected)
    assert np.isnan(trailing_mean(np.array([np.nan, 1.0]), 1)[0])
    batch = np.vstack([values, values * 2])
    np.testing.assert_allclose(trailing_mean(batch, 3)[1], np.array(expected) * 2)


def test_trailing_mean_is_causal() -> None:
    values = np.random.default_rng(1).normal(size=200)
    changed = values.copy()
    changed[120:] += 100.0
    np.testing.assert_array_equal(trailing_mean(values, 15)[:120], trailing_mean(changed, 15)[:120])


def test_trailing_mean_rejects_an_empty_window() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        trailing_mean(np.ones(3), 0)


def test_a_shifted_sensor_is_flagged_and_normal_rows_are_not() -> None:
    detector = fit(normal_rows(2000), COLUMNS)
    test = normal_rows(3000, seed=2)
    test[1000:2000, 2] += 1.0  # flow up by 2.5 noise sd for 1000 rows
    flagged = flags(detector, score(detector, test))
    assert flagged[1000 + detector.window_rows : 2000].mean() > 0.99
    assert flagged[:1000].mean() < 0.01
    assert flagged[2000 + detector.window_rows :].mean() < 0.01


def test_normal_rows_are_flagged_at_about_the_target_rate() -> None:
    rate = 0.05
    without_margin = fit(normal_rows(5000), COLUMNS, false_alarm_rate=rate, margin=1.0)
    fresh = score(without_margin, normal_rows(50_000, seed=3))
    observed = flags(without_margin, fresh)[without_margin.window_rows - 1 :].mean()
    assert rate / 2 < observed < rate * 2
    assert without_margin.calibration_alarm_rate == pytest.approx(rate, abs=0.005)
    with_margin = fit(normal_rows(5000), COLUMNS, false_alarm_rate=rate)
    assert flags(with_margin, score(with_margin, normal_rows(50_000, seed=3))).mean() < rate


def test_scores_are_causal_and_the_first_rows_have_none() -> None:
    detector = fit(normal_rows(1000), COLUMNS)
    rows = normal_rows(500, seed=4)
    changed = rows.copy()
    changed[300:] += 50.0
    before, after = score(detector, rows), score(detector, changed)
    np.testing.assert_array_equal(before[:300], after[:300])
    assert np.isnan(before[: detector.window_rows - 1]).all()
    assert np.isfinite(before[detector.window_rows - 1 :]).all()
    assert flags(detector, before)[: detector.window_rows - 1].sum() == 0


def test_drifting_and_constant_sensors_are_left_out() -> None:
    rows = normal_rows(1000)
    drifting = np.linspace(70.0, 80.0, 1000) + np.random.default_rng(5).normal(size=1000) * 0.2
    constant = np.full(1000, 7.0)
    matrix = np.column_stack([rows, drifting, constant])
    detector = fit(matrix, [*COLUMNS, "temp_c", "gear"])
    assert detector.columns == tuple(COLUMNS)
    assert "level not steady" in detector.excluded["temp_c"]
    assert detector.excluded["gear"] == "constant in the calibration rows"


def test_variance_ratio_is_about_one_for_noise_and_large_for_a_trend() -> None:
    noise = np.random.default_rng(6).normal(size=(4000, 1))
    trend = np.linspace(0.0, 1.0, 4000)[:, None]
    ratios = variance_ratio(np.hstack([noise, trend]), 10)
    assert 0.2 < ratios[0] < 3
    assert ratios[1] > 300


def test_calibrate_threshold_is_margin_times_the_quantile() -> None:
    scores = np.append(np.arange(100.0), np.nan)
    assert calibrate_threshold(scores, 0.1, 1.0) == pytest.approx(np.quantile(np.arange(100.0), 0.9))
    assert calibrate_threshold(scores, 0.1, 2.0) == pytest.approx(2 * np.quantile(np.arange(100.0), 0.9))
    with pytest.raises(ConfigError):
        calibrate_threshold(np.array([np.nan]), 0.1, 1.0)


@pytest.mark.parametrize(
    "matrix, kwargs, message",
    [
        (normal_rows(MIN_CALIBRATION_ROWS - 1), {}, f"needs at least {MIN_CALIBRATION_ROWS}"),
        (np.full((500, 3), 1.0), {}, "no column has a steady level"),
        (normal_rows(500), {"false_alarm_rate": 0.0}, "between 0 and 0.5"),
        (normal_rows(500), {"margin": 0.5}, "at least 1"),
    ],
)
def test_bad_calibrations_are_config_errors(matrix: np.ndarray, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        fit(matrix, COLUMNS, **kwargs)


def test_round_trip_through_json() -> None:
    detector = fit(normal_rows(1000), COLUMNS)
    again = from_dict(json.loads(json.dumps(to_dict(detector))))
    assert again == detector
    rows = normal_rows(300, seed=7)
    np.testing.assert_array_equal(score(again, rows), score(detector, rows))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(format="something else"), "not a prognos-onboarding-detector model"),
        (lambda d: d.update(version=99), "version 99"),
        (lambda d: d.pop("threshold"), "no 'threshold'"),
        (lambda d: d.update(center=[1.0]), "differ in length"),
        (lambda d: d.update(scale="wide"), "malformed"),
        (lambda d: d.update(scale=[1.0, 0.0, 1.0]), "not positive"),
    ],
)
def test_a_damaged_model_is_a_config_error(edit: Callable[[dict[str, Any]], object], message: str) -> None:
    data = to_dict(fit(normal_rows(1000), COLUMNS))
    edit(data)
    with pytest.raises(ConfigError, match=message):
        from_dict(data)
