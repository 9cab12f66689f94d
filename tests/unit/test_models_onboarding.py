"""The onboarding detector on synthetic data where the answer is known: the trailing mean is
causal, a shifted sensor is flagged, normal rows are flagged at about the target rate, drifting
sensors are followed (or left out when asked) and constant ones left out, calibration is refused
only when no sensor can be calibrated, and the model survives a round trip through its dict."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from prognos.edge.features import trailing_mean
from prognos.errors import ConfigError
from prognos.models.onboarding import MIN_CALIBRATION_ROWS, fit, flags, from_dict, score, to_dict
from prognos.models.settings import DEFAULTS, Settings

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


@pytest.mark.parametrize(
    "scorers, normal_share",
    [
        (("pca",), 0.01),
        (("sensor",), 0.01),
        (("sensor", "cusum"), 0.01),
        (("autoencoder",), 0.01),
        (("mset",), 0.06),  # the noisiest scorer here: its estimate of a row is not smooth
    ],
)
def test_a_shifted_sensor_is_flagged_and_normal_rows_are_not(
    scorers: tuple[str, ...], normal_share: float
) -> None:
    detector = fit(normal_rows(2000), COLUMNS, settings=Settings(scorers=scorers))
    test = normal_rows(3000, seed=2)
    test[1000:2000, 2] += 1.0  # flow up by 2.5 noise sd for 1000 rows
    flagged = flags(detector, score(detector, test))
    assert flagged[1000 + detector.window_rows : 2000].mean() > 0.99
    assert flagged[:1000].mean() <= normal_share
    assert flagged[2000 + 2 * detector.window_rows :].mean() <= normal_share


def test_normal_rows_are_flagged_at_about_the_target_rate() -> None:
    rate = 0.05
    one_sensor = Settings(scorers=("sensor",), window_rows=1, false_alarm_rate=rate, margin=1.0, release=1.0)
    detector = fit(normal_rows(5000)[:, :1], COLUMNS[:1], settings=one_sensor)
    assert detector.calibration_alarm_rate == pytest.approx(rate, abs=0.005)
    observed = flags(detector, score(detector, normal_rows(50_000, seed=3)[:, :1])).mean()
    assert rate / 2 < observed < rate * 2
    with_margin = fit(normal_rows(5000), COLUMNS)
    assert flags(with_margin, score(with_margin, normal_rows(50_000, seed=3))).mean() < 0.001


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


def test_an_alarm_holds_until_the_score_falls_to_the_release() -> None:
    detector = fit(normal_rows(1000), COLUMNS, settings=Settings(scorers=("sensor",), window_rows=1))
    scores = np.array([0.0, 5.0, 3.0, 2.1, 1.9, 3.0, 5.0])  # margin 4, release 0.5: off at <= 2
    assert flags(detector, scores).tolist() == [0, 1, 1, 1, 0, 0, 1]


def drifting_matrix() -> np.ndarray:
    rows = normal_rows(1000)
    drifting = np.linspace(70.0, 80.0, 1000) + np.random.default_rng(5).normal(size=1000) * 0.2
    constant = np.full(1000, 7.0)
    return np.column_stack([rows, drifting, constant])


def test_a_drifting_sensor_is_followed_and_a_constant_one_left_out() -> None:
    detector = fit(drifting_matrix(), [*COLUMNS, "temp_c", "gear"])
    assert detector.columns == (*COLUMNS, "temp_c")
    followed = detector.baselines[-1]
    assert followed.wanders and followed.drift_rows == DEFAULTS.drift_rows
    assert not any(b.drift_rows for b in detector.baselines[:-1])
    assert "constant in the calibration rows" in detector.excluded["gear"]
    # the drift goes on after calibration at the same pace: no alarm
    later = np.column_stack(
        [
            normal_rows(1000, seed=6),
            np.linspace(80.0, 90.0, 1000) + np.random.default_rng(7).normal(size=1000) * 0.2,
        ]
    )
    assert flags(detector, score(detector, later)).mean() < 0.01


def test_a_drifting_sensor_is_left_out_when_asked_and_steady_ones_remain() -> None:
    detector = fit(drifting_matrix(), [*COLUMNS, "temp_c", "gear"], settings=Settings(follow_drift=False))
    assert detector.columns == tuple(COLUMNS)
    assert "level wanders in the calibration rows" in detector.excluded["temp_c"]
    alone = fit(drifting_matrix()[:, 3:4], ["temp_c"], settings=Settings(follow_drift=False))
    assert alone.columns == ("temp_c",) and alone.baselines[0].drift_rows > 0


@pytest.mark.parametrize(
    "matrix, kwargs, message",
    [
        (normal_rows(MIN_CALIBRATION_ROWS - 1), {}, f"needs at least {MIN_CALIBRATION_ROWS}"),
        (
            np.full((500, 3), 1.0),
            {},
            "no sensor can be calibrated: pressure_kpa: constant in the calibration rows",
        ),
        (
            np.column_stack([np.full(500, 1.0), np.r_[np.zeros(497), np.ones(3)], np.full(500, 2.0)]),
            {},
            "current_a: its residual is the same in 95% or more of the calibration rows",
        ),
        (np.where(np.arange(500)[:, None] == 7, np.nan, normal_rows(500)), {}, "missing or non-finite"),
        (normal_rows(500), {"settings": Settings(false_alarm_rate=0.0)}, "between 0 and 0.5"),
        (normal_rows(500), {"settings": Settings(margin=0.5)}, "at least 1"),
        (normal_rows(500), {"settings": Settings(release=1.5)}, "at most 1"),
        (normal_rows(500), {"settings": Settings(scorers=("magic",))}, "unknown scorer magic"),
    ],
)
def test_what_cannot_be_calibrated_is_refused_with_the_reason(
    matrix: np.ndarray, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        fit(matrix, COLUMNS, **kwargs)


def test_multivariate_scorers_on_one_sensor_fall_back_to_the_sensor_scorer() -> None:
    detector = fit(normal_rows(500)[:, :1], COLUMNS[:1], settings=Settings(scorers=("pca", "mset")))
    assert list(detector.scorers) == ["sensor"]
    assert "two sensors or more" in detector.notes[0]


@pytest.mark.parametrize("scorers", [("pca",), ("sensor", "cusum"), ("mset",), ("autoencoder",)])
def test_round_trip_through_json(scorers: tuple[str, ...]) -> None:
    seconds = np.arange(1000.0) * 60
    detector = fit(normal_rows(1000), COLUMNS, seconds=seconds, settings=Settings(scorers=scorers))
    again = from_dict(json.loads(json.dumps(to_dict(detector))))
    rows = normal_rows(300, seed=7)
    np.testing.assert_array_equal(score(again, rows, seconds[:300]), score(detector, rows, seconds[:300]))
    assert again.settings == detector.settings and again.baselines == detector.baselines


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(format="something else"), "not a prognos-onboarding-detector model"),
        (lambda d: d.update(version=1), "version 1; this Prognos reads 2: calibrate again"),
        (lambda d: d.pop("settings"), "no 'settings'"),
        (lambda d: d.update(baselines=d["baselines"][:1]), "differ in length"),
        (lambda d: d["baselines"][0].update(level="high"), "malformed"),
        (lambda d: d["baselines"][0].update(step_s=0.0), "not positive"),
        (lambda d: d["settings"].update(margin=0.2), "margin must be at least 1"),
        (lambda d: d.update(scorers={"magic": {}}), "unknown scorer 'magic'"),
        (lambda d: d["scorers"]["pca"].update(components=[[1.0]]), "do not fit its 3 columns"),
    ],
)
def test_a_damaged_model_is_a_config_error(edit: Callable[[dict[str, Any]], object], message: str) -> None:
    data = to_dict(fit(normal_rows(1000), COLUMNS))
    edit(data)
    with pytest.raises(ConfigError, match=message):
        from_dict(data)
