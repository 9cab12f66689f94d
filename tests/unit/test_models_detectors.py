"""The pure pieces of the onboarding detector on synthetic data where the answer is known:
seasonal baselines find a daily cycle and do not alarm on it, a drift-aware reference absorbs a
level shift after a while, CUSUM and Page-Hinkley detect a step, PCA (and MSET, and the
autoencoder) flag a broken correlation that each sensor alone does not show, the alarm logic,
and leave-one-file-out selection on a toy table."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from prognos.models import detectors
from prognos.models.onboarding import fit, flags, score
from prognos.models.seasonal import (
    MAX_VARIANCE_RATIO,
    find_period,
    fit_baseline,
    leave_one_out_medians,
    residuals,
    variance_ratio,
)
from prognos.models.selection import Case, Grid, IntArray, Outcome, evaluate, report, select
from prognos.models.settings import Settings

FIVE_MINUTES_S = 300.0
DAY_ROWS = 288


def daily_temperature(days: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Outdoor-like temperature every 5 minutes: a 6 degC daily swing around 20 degC, a
    wandering weather term and sensor noise; and the rows' POSIX times."""
    rng = np.random.default_rng(seed)
    rows = int(days * DAY_ROWS)
    seconds = 1_700_000_000.0 + FIVE_MINUTES_S * np.arange(rows)
    phase = 2 * np.pi * (seconds % 86400) / 86400
    weather = np.convolve(rng.normal(size=rows + 99), np.ones(100) / 10, mode="valid")[:rows] * 0.3
    return 20 + 6 * np.sin(phase) + weather + rng.normal(size=rows) * 0.2, seconds


def test_variance_ratio_is_about_one_for_noise_and_large_for_a_trend() -> None:
    noise = np.random.default_rng(6).normal(size=(4000, 1))
    trend = np.linspace(0.0, 1.0, 4000)[:, None]
    ratios = variance_ratio(np.hstack([noise, trend]), 10)
    assert 0.2 < ratios[0] < 3
    assert ratios[1] > 300


def test_leave_one_out_medians_match_a_plain_loop() -> None:
    rng = np.random.default_rng(0)
    for cycles in (3, 4, 5, 8, 11):
        matrix = rng.integers(0, 5, size=(cycles, 7)).astype(float)
        plain = np.array([np.median(np.delete(matrix, i, axis=0), axis=0) for i in range(cycles)])
        np.testing.assert_array_equal(leave_one_out_medians(matrix), plain)


def test_the_daily_period_is_found_and_noise_has_none() -> None:
    values, _ = daily_temperature(10)
    period = find_period(values)
    assert period is not None and period.rows == DAY_ROWS and period.error < 0.2
    assert find_period(np.random.default_rng(1).normal(size=3000)) is None


def test_a_daily_cycle_calibrates_and_does_not_alarm_but_a_step_does() -> None:
    values, seconds = daily_temperature(11)
    calibration = slice(0, 7 * DAY_ROWS)
    # once refused: "no column has a steady level in the calibration rows (variance ratio 30.0 > 10)"
    assert variance_ratio(values[calibration, None])[0] > MAX_VARIANCE_RATIO
    detector = fit(values[calibration, None], ["temp_c"], seconds=seconds[calibration])
    assert detector.baselines[0].period_rows == DAY_ROWS
    assert "cycle of 1 day (288 rows)" in detector.baselines[0].describe()
    later = slice(7 * DAY_ROWS, None)  # four more days, starting where calibration stopped
    normal = flags(detector, score(detector, values[later, None], seconds[later]))
    assert normal.mean() < 0.01
    stepped = values[later].copy()
    stepped[DAY_ROWS : DAY_ROWS + 72] += 3.0  # six hours 3 degC warmer than the usual day
    alarm = flags(detector, score(detector, stepped[:, None], seconds[later]))
    assert alarm[DAY_ROWS + 30 : DAY_ROWS + 72].mean() > 0.9


def test_a_scored_file_can_start_at_another_time_of_day() -> None:
    values, seconds = daily_temperature(14)
    detector = fit(values[: 10 * DAY_ROWS, None], ["temp_c"], seconds=seconds[: 10 * DAY_ROWS])
    start = 10 * DAY_ROWS + 100  # 8 h 20 min into a day
    assert flags(detector, score(detector, values[start:, None], seconds[start:])).mean() < 0.01


def test_a_level_shift_is_flagged_then_becomes_the_new_normal() -> None:
    rng = np.random.default_rng(3)
    level = np.cumsum(rng.normal(size=6000)) * 0.05  # a level that wanders: followed for drift
    baseline = fit_baseline(level[:2000], None, drift_rows=300)
    assert baseline.wanders and baseline.drift_rows == 300
    after = level[2000:] + np.where(np.arange(4000) >= 1000, 5.0, 0.0)  # maintenance moved it
    residual = residuals(baseline, after, None)
    assert abs(residual[1010]) > 4  # the shift shows at first
    assert abs(np.mean(residual[3000:])) < 0.5  # and is the normal three time constants later


def test_cusum_detects_a_step_and_falls_back_after_it_when_capped() -> None:
    z = np.random.default_rng(4).normal(size=600)
    z[200:400] += 1.5
    sums = detectors.cusum(z, 0.5)
    assert sums[150:200].max() < 8 < sums[230]
    capped = detectors.cusum(z, 0.5, cap=10.0)
    assert capped.max() == 10.0 and capped[440:].max() < 8 < sums[440]
    np.testing.assert_array_equal(detectors.cusum(z[:, None], 0.5)[:, 0], sums)


def test_page_hinkley_detects_an_upward_step() -> None:
    x = np.random.default_rng(5).normal(size=600)
    x[300:] += 1.0
    statistic = detectors.page_hinkley(x, 0.25)
    assert statistic[:300].max() < 10 < statistic[330]


def correlated(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    common = rng.normal(size=rows)
    return np.column_stack([common, common + 0.1 * rng.normal(size=rows), rng.normal(size=rows)])


@pytest.mark.parametrize("scorer", ["pca", "mset", "autoencoder"])
def test_a_broken_correlation_is_flagged_where_each_sensor_is_in_range(scorer: str) -> None:
    calibration = correlated(2000, 0)
    test = correlated(1000, 1)
    test[500:, 1] = -test[500:, 0]  # same range, opposite sign: the correlation is broken
    per_sensor = fit(calibration, list("abc"), settings=Settings(scorers=("sensor",), window_rows=1))
    assert flags(per_sensor, score(per_sensor, test))[500:].mean() < 0.05
    detector = fit(calibration, list("abc"), settings=Settings(scorers=(scorer,), window_rows=1, margin=2))
    flagged = flags(detector, score(detector, test))
    assert flagged[:500].mean() < 0.04  # below the 5% a unit stands for: margin 2
    assert flagged[500:].mean() > 0.5


def test_pca_t2_and_q_are_one_at_their_calibration_quantiles() -> None:
    calibration = correlated(2000, 2)
    params = detectors.fit_pca(calibration, 0.05)
    t2, q = detectors._pca_parts(params, calibration)
    assert np.mean(t2 / params["t2_scale"] > 1) == pytest.approx(0.05, abs=0.002)
    assert np.mean(q / params["q_scale"] > 1) == pytest.approx(0.05, abs=0.002)


def test_hysteresis_and_onsets() -> None:
    scores = np.array([0, 3, 5, 3, 2, 1, 5, np.nan, 5, 0])
    assert detectors.hysteresis(scores, 4, 2).tolist() == [0, 0, 1, 1, 0, 0, 1, 0, 1, 0]
    assert detectors.hysteresis(scores, 4, 4).tolist() == [0, 0, 1, 0, 0, 0, 1, 0, 1, 0]
    many = detectors.hysteresis_many(scores, np.array([4.0, 2.5]), np.array([2.0, 2.5]))
    assert many[1].tolist() == [0, 1, 1, 1, 0, 0, 1, 0, 1, 0]
    assert detectors.onsets(np.array([0, 1, 1, 0, 1, 0, 0, 1])).tolist() == [1, 4, 7]


def toy_case(name: str, best_margin: float) -> Case:
    """A SKAB-like file whose anomaly is found best by one margin: rows score `best_margin`
    inside the anomaly and half of it outside."""
    labels = np.r_[np.zeros(50), np.ones(50)].astype(np.int8)
    scores = np.where(labels == 1, best_margin + 0.1, best_margin / 2 + 0.1)

    def run(settings: Settings) -> dict[str, np.ndarray]:
        return {"sensor": scores}

    def judge(predicted: npt.NDArray[np.int8]) -> IntArray:
        tp = predicted @ labels
        fp = predicted.sum(axis=1) - tp
        zeros = np.zeros_like(tp)
        return np.column_stack([tp, fp, 50 - tp, 50 - fp, zeros, zeros, zeros]).astype(np.int64)

    return Case(name=name, benchmark="skab", scores=run, judge=judge)


def test_leave_one_out_scores_each_file_with_settings_chosen_on_the_others() -> None:
    grid = Grid(
        scorer_sets=(("sensor",),),
        window_rows=(1,),
        false_alarm_rates=(0.01,),
        margins=(2.0, 4.0),
        releases=(1.0,),
        drift=((True, 300),),
    )
    # three files favour margin 4 (margin 2 flags their normal rows too), one favours margin 2
    cases = [toy_case("a", 4.0), toy_case("b", 4.0), toy_case("c", 4.0), toy_case("odd", 2.0)]
    table = evaluate(cases, grid)
    selection = select(table)
    assert selection.chosen.margin == 4.0
    odd_pick, odd_outcome = selection.held_out["odd"]
    assert odd_pick.margin == 4.0 and odd_outcome.tp == 0  # chosen without it, so it misses
    assert selection.in_sample["a"] == Outcome(tp=50, fn=0, fp=0, tn=50)
    assert selection.stable == 4
    assert report(table).shipped.chosen == selection.chosen
