"""Part-demand forecasting: intermittent-demand baselines (all-zero, Croston, SBA), the project's
forecaster, prediction intervals and the RMSSE/MASE backtest. Pure: arrays and DataFrames in,
arrays and DataFrames out; no I/O.

A history is a 2-D float array, one row per period (oldest first) and one column per series.
NaN is an unknown period (the part was not sold through this channel yet, or any more, or the
period was not recorded): it is left out of every fit and every score, never read as zero.

The project's forecaster (docs/forecast.md): a flat forecast per series, the mean over its
members of the demand of the series' last `level_window` observed periods times a multiplier
chosen by its demand class (how many of its last 12 periods had demand). The multipliers are
learned on the history itself: every 12-period window of the past is a small backtest, and each
class gets the multiplier with the least mean RMSSE over those windows. Which members (one level
window, or the average of several) is chosen on rolling validation origins inside the history:
at each origin the multipliers are learned on the periods before it and scored on the periods
after it, and the candidate with the least mean validation RMSSE over the origins wins.

backtest() also scores benchmark forecasters it is given (benchmarks/forecast_carparts.py gives
it statsforecast's ADIDA, IMAPA and TSB) on the same split, the same series and the same RMSSE;
validation_splits() and validation_rmsse() let such a benchmark choose its own parameters on
the same origins the forecaster uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from prognos.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
# A forecaster as backtest() and validation_rmsse() call it: (history, horizon) -> forecast
# (horizon x series), NaN for a series it makes no forecast for.
Forecaster = Callable[[FloatArray, int], FloatArray]

CROSTON_ALPHA = 0.1  # the smoothing constant of Croston's method and SBA in the literature's comparisons
MIN_OBSERVED = 12  # a series is scored only with at least this many observed in-sample periods
MIN_ACTIVE_DEMANDS = 10  # the "active" subset: at least this many in-sample periods with demand
CLASS_WINDOW = 12  # demand classes count the periods with demand among the last 12
CLASS_EDGES = (2, 3, 4, 6)  # classes: <=1, 2, 3, 4-5, >=6 periods with demand of the last 12
TARGET_WINDOW = 12  # learning windows score the next min(horizon, 12) periods
LEVEL_WINDOWS = (6, 9, 12, 18)  # candidate level windows, chosen on the validation origins
VALIDATION_ORIGINS = 3  # rolling validation origins, a quarter of the target window apart
RATE_WINDOW = 12  # the predictive mean is the rate factor times the mean of this many periods
MIN_CLASS_EXAMPLES = 30  # fewer learning examples in a class: keep its default multiplier
MIN_RATE_EXAMPLES = 100  # fewer learning examples: keep the neutral rate factor 1.0
MAX_MULTIPLIER = 2.0
MIN_PERIODS = 4  # the least history a forecast accepts
DEFAULT_LEVEL = 0.9  # central prediction interval: 5% and 95% quantiles
MAX_COUNT = 1 << 22  # the longest count distribution computed
NORMAL_ABOVE_MEAN = 1000.0  # count quantiles above this mean per period use the normal approximation


@dataclass(frozen=True)
class Member:
    """One level window and its multiplier per demand class (len(CLASS_EDGES) + 1 of them)."""

    level_window: int
    multipliers: tuple[float, ...]


@dataclass(frozen=True)
class ForecasterParams:
    """What the forecaster learned (module docstring, docs/forecast.md): its members, whose
    forecasts it averages, and the rate factor (expected demand / mean of the last RATE_WINDOW
    periods) that intervals and stock planning use."""

    members: tuple[Member, ...]
    rate_factor: float


# The level-12 member fit_forecaster learns on carparts months 1-39 (rounded): the multipliers
# used where a history is too short to learn its own. The rate factor stays neutral (1.0): a
# short history cannot say whether demand is declining.
DEFAULT_PARAMS = ForecasterParams(members=(Member(12, (0.0, 0.17, 0.46, 0.54, 0.51)),), rate_factor=1.0)


@dataclass(frozen=True)
class Fit:
    """The parameters and where they came from."""

    params: ForecasterParams
    source: str  # "validated", "learned" (too short to validate) or "defaults" (too short to learn)
    validation_rmsse: dict[str, float] = field(default_factory=dict)  # candidate -> mean over origins
    chosen: str = ""
    examples: int = 0  # learning windows x series behind each member's multipliers
    validation_origins: tuple[int, ...] = ()  # each validation origin: the periods before it
    validation_by_origin: dict[str, tuple[float, ...]] = field(default_factory=dict)  # per origin


def as_history(values: npt.ArrayLike) -> FloatArray:
    history = np.asarray(values, dtype=np.float64)
    if history.ndim == 1:
        history = history[:, None]
    if history.ndim != 2:
        raise ValueError(f"a history is 2-D (periods x series), not {history.ndim}-D")
    return history


def naive_scale(train: npt.ArrayLike, *, squared: bool = True) -> FloatArray:
    """Per series, the in-sample one-step naive error: the mean squared (or absolute) difference
    between consecutive observed periods, from the series' first demand on (as in the M5
    competition). NaN where there is no such pair."""
    history = as_history(train)
    started = np.cumsum(np.nan_to_num(history) > 0, axis=0) > 0
    diffs = np.diff(np.where(started, history, np.nan), axis=0)
    errors = diffs**2 if squared else np.abs(diffs)
    count = np.isfinite(errors).sum(axis=0)
    total = np.nansum(errors, axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def scorable(train: npt.ArrayLike, test: npt.ArrayLike, *, min_observed: int = MIN_OBSERVED) -> BoolArray:
    """The series a mean over series includes: at least `min_observed` observed in-sample
    periods, a positive naive scale, and at least one observed held-out period."""
    history, future = as_history(train), as_history(test)
    scale = naive_scale(history)
    keep: BoolArray = (
        (np.isfinite(history).sum(axis=0) >= min_observed)
        & np.isfinite(scale)
        & (np.nan_to_num(scale) > 0)
        & (np.isfinite(future).sum(axis=0) > 0)
    )
    return keep


def active(train: npt.ArrayLike, *, min_demands: int = MIN_ACTIVE_DEMANDS) -> BoolArray:
    """Series with at least `min_demands` in-sample periods with demand."""
    demands: IntArray = (np.nan_to_num(as_history(train)) > 0).sum(axis=0)
    return demands >= min_demands


def rmsse(train: npt.ArrayLike, test: npt.ArrayLike, forecast: npt.ArrayLike) -> FloatArray:
    """Root mean squared scaled error per series: sqrt(mean over observed held-out periods of
    (actual - forecast)^2 / naive_scale(train)). NaN where undefined."""
    return _scaled_error(train, test, forecast, squared=True)


def mase(train: npt.ArrayLike, test: npt.ArrayLike, forecast: npt.ArrayLike) -> FloatArray:
    """Mean absolute scaled error per series, scaled by the absolute naive error."""
    return _scaled_error(train, test, forecast, squared=False)


def _scaled_error(
    train: npt.ArrayLike, test: npt.ArrayLike, forecast: npt.ArrayLike, *, squared: bool
) -> FloatArray:
    future = as_history(test)
    predicted = np.broadcast_to(as_history(forecast), future.shape)
    scale = naive_scale(train, squared=squared)
    errors = (future - predicted) ** 2 if squared else np.abs(future - predicted)
    count = np.isfinite(errors).sum(axis=0)
    mean_error = np.where(count > 0, np.nansum(errors, axis=0) / np.maximum(count, 1), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(np.nan_to_num(scale) > 0, mean_error / scale, np.nan)
    return np.sqrt(ratio) if squared else ratio


def mean_rmsse(train: npt.ArrayLike, test: npt.ArrayLike, forecast: npt.ArrayLike) -> float:
    """Mean RMSSE over the series scorable() keeps; NaN when it keeps none."""
    keep = scorable(train, test)
    if not keep.any():
        return math.nan
    return float(np.mean(rmsse(train, test, forecast)[keep]))


def zero_forecast(history: npt.ArrayLike, horizon: int) -> FloatArray:
    return np.zeros((horizon, as_history(history).shape[1]))


def croston(series: npt.ArrayLike, *, alpha: float = CROSTON_ALPHA, sba: bool = False) -> float:
    """Croston's method (1972) on one series, unknown periods left out.

    The size z starts at the first demand and the interval p at the periods up to and including
    it; at each later demand z += alpha (y - z) and p += alpha (q - p), q being the periods since
    the previous demand. The forecast is z / p; SBA (Syntetos and Boylan, 2005) multiplies it
    by 1 - alpha / 2. 0.0 for a series without demand, NaN for one without observations."""
    values = np.asarray(series, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan
    demands = np.flatnonzero(values > 0)
    if demands.size == 0:
        return 0.0
    size, interval = float(values[demands[0]]), float(demands[0] + 1)
    previous = int(demands[0])
    for index in demands[1:]:
        size += alpha * (float(values[index]) - size)
        interval += alpha * (float(index - previous) - interval)
        previous = int(index)
    rate = size / interval
    return rate * (1.0 - alpha / 2.0) if sba else rate


def croston_forecast(
    history: npt.ArrayLike, horizon: int, *, alpha: float = CROSTON_ALPHA, sba: bool = False
) -> FloatArray:
    values = as_history(history)
    rates = np.array([croston(values[:, j], alpha=alpha, sba=sba) for j in range(values.shape[1])])
    return np.tile(rates, (horizon, 1))


def demand_class(history: npt.ArrayLike) -> IntArray:
    """Per series, its class by the periods with demand among the last CLASS_WINDOW (scaled up to
    CLASS_WINDOW when some are unknown): 0 for at most one, then 2, 3, 4-5, and 6 or more."""
    recent = as_history(history)[-CLASS_WINDOW:]
    observed = np.isfinite(recent).sum(axis=0)
    demands = (np.nan_to_num(recent) > 0).sum(axis=0)
    count = np.where(observed > 0, demands * CLASS_WINDOW / np.maximum(observed, 1), 0.0)
    return np.searchsorted(np.asarray(CLASS_EDGES, dtype=np.float64), count, side="right").astype(np.int64)


def recent_level(history: npt.ArrayLike, window: int) -> FloatArray:
    """Per series, the mean of its last `window` periods, unknown ones left out (NaN if all are)."""
    recent = as_history(history)[-window:]
    count = np.isfinite(recent).sum(axis=0)
    return np.where(count > 0, np.nansum(recent, axis=0) / np.maximum(count, 1), np.nan)


def forecast_point(history: npt.ArrayLike, params: ForecasterParams, horizon: int) -> FloatArray:
    """The point forecast (horizon x series), flat: the mean over members of the member's
    multiplier for the series' class times its level."""
    values = as_history(history)
    classes = demand_class(values)
    levels = [
        recent_level(values, m.level_window) * np.asarray(m.multipliers, dtype=np.float64)[classes]
        for m in params.members
    ]
    return np.tile(np.mean(levels, axis=0), (horizon, 1))


@dataclass(frozen=True)
class _Examples:
    """Learning windows: per (origin, series) the scaled level, the class, the scaled targets."""

    level: FloatArray  # (n,)
    classes: IntArray  # (n,)
    targets: FloatArray  # (window, n), NaN where unknown
    raw_level: FloatArray
    raw_target_mean: FloatArray


def _examples(history: FloatArray, level_window: int, window: int) -> _Examples:
    levels, classes, targets, raw_levels, raw_means = [], [], [], [], []
    for origin in range(CLASS_WINDOW, history.shape[0] - window + 1):
        past, future = history[:origin], history[origin : origin + window]
        level = recent_level(past, level_window)
        keep = scorable(past, future) & np.isfinite(level)
        if not keep.any():
            continue
        scale = np.sqrt(naive_scale(past)[keep])
        levels.append(level[keep] / scale)
        classes.append(demand_class(past)[keep])
        targets.append(future[:, keep] / scale)
        raw_levels.append(level[keep])
        raw_means.append(np.nanmean(future[:, keep], axis=0))
    if not levels:
        empty = np.zeros(0)
        return _Examples(empty, np.zeros(0, dtype=np.int64), np.zeros((window, 0)), empty, empty)
    return _Examples(
        np.concatenate(levels),
        np.concatenate(classes),
        np.concatenate(targets, axis=1),
        np.concatenate(raw_levels),
        np.concatenate(raw_means),
    )


def _mean_rmsse(targets: FloatArray, forecast: FloatArray) -> float:
    """Mean over examples of sqrt(mean over known periods of (target - forecast)^2), in scaled
    units (so it is the mean RMSSE)."""
    errors = (targets - forecast[None, :]) ** 2
    count = np.isfinite(errors).sum(axis=0)
    return float(np.mean(np.sqrt(np.nansum(errors, axis=0) / np.maximum(count, 1))))


def _best_multiplier(level: FloatArray, targets: FloatArray) -> float:
    """The multiplier g in [0, MAX_MULTIPLIER] with the least mean RMSSE of g * level. The loss
    is convex in g (a sum of norms of affine functions), so a golden-section search finds it."""
    lo, hi = 0.0, MAX_MULTIPLIER
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = _mean_rmsse(targets, a * level), _mean_rmsse(targets, b * level)
    for _ in range(48):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = _mean_rmsse(targets, a * level)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = _mean_rmsse(targets, b * level)
    best = round((lo + hi) / 2.0, 4)
    # Forecasting nothing (g = 0) is common for rare parts; the search only comes near it.
    if _mean_rmsse(targets, 0.0 * level) <= _mean_rmsse(targets, best * level):
        return 0.0
    return best


def _learn_member(history: FloatArray, level_window: int, window: int) -> tuple[Member, _Examples] | None:
    """One member's multipliers from every learning window of `history`; None without any."""
    examples = _examples(history, level_window, window)
    if examples.level.size == 0:
        return None
    defaults = DEFAULT_PARAMS.members[0].multipliers
    multipliers = []
    for cls, default in enumerate(defaults):
        members = examples.classes == cls
        if members.sum() < MIN_CLASS_EXAMPLES:
            multipliers.append(default)
        else:
            multipliers.append(_best_multiplier(examples.level[members], examples.targets[:, members]))
    return Member(level_window, tuple(multipliers)), examples


def _learn(
    history: FloatArray, level_windows: Sequence[int], window: int
) -> tuple[ForecasterParams, int] | None:
    """Members for `level_windows` and the rate factor; None when `history` holds no learning
    window."""
    members = []
    examples = 0
    for level_window in level_windows:
        learned = _learn_member(history, level_window, window)
        if learned is None:
            return None
        members.append(learned[0])
        examples = learned[1].level.size
    rate = _examples(history, RATE_WINDOW, window)
    total = float(rate.raw_level.sum())
    enough = rate.raw_level.size >= MIN_RATE_EXAMPLES and total > 0
    rate_factor = round(float(rate.raw_target_mean.sum()) / total, 4) if enough else 1.0
    return ForecasterParams(tuple(members), rate_factor), examples


def candidates(level_windows: Sequence[int] = LEVEL_WINDOWS) -> dict[str, tuple[int, ...]]:
    """The forecasters the validation split chooses from: each level window alone, and the
    average of all of them."""
    found: dict[str, tuple[int, ...]] = {f"level {w}": (w,) for w in level_windows}
    if len(level_windows) > 1:
        found["average of " + ", ".join(str(w) for w in level_windows)] = tuple(level_windows)
    return found


def validation_splits(history: npt.ArrayLike, horizon: int) -> list[tuple[FloatArray, FloatArray]]:
    """The rolling validation origins inside `history`, as (periods before, periods after) pairs.

    With a target window w = min(horizon, 12) and T periods, the first origin leaves the last w
    periods after it, and VALIDATION_ORIGINS - 1 more follow, each a quarter of w later (scored
    on the shorter remainder): on 39 months the origins are months 27, 30 and 33, scored on
    months 28-39, 31-39 and 34-39. Empty when the first origin leaves no learning window before
    it (T - w < 12 + w)."""
    values = as_history(history)
    if horizon <= 0:
        raise ValueError("the horizon must be positive")
    window = min(horizon, TARGET_WINDOW)
    periods = values.shape[0]
    first = periods - window
    if first < CLASS_WINDOW + window:
        return []
    step = max(1, window // 4)
    origins = sorted({first + k * step for k in range(VALIDATION_ORIGINS)} & set(range(first, periods)))
    return [(values[:origin], values[origin:]) for origin in origins]


def validation_rmsse(splits: Sequence[tuple[FloatArray, FloatArray]], forecaster: Forecaster) -> float:
    """Mean over the splits of the mean RMSSE of `forecaster(before, len(after))` on `after`."""
    scores = [mean_rmsse(before, after, forecaster(before, after.shape[0])) for before, after in splits]
    known = [score for score in scores if math.isfinite(score)]
    return float(np.mean(known)) if known else math.nan


def fit_forecaster(
    history: npt.ArrayLike, horizon: int, *, level_windows: Sequence[int] = LEVEL_WINDOWS
) -> Fit:
    """Learn the forecaster's parameters from `history` alone (module docstring).

    Validation: at each origin of validation_splits(), every candidate (each level window alone,
    and the average of all) learns its multipliers on the periods before the origin and is
    scored on the periods after it; the candidate with the least mean RMSSE over the origins is
    kept and learned again on the whole history. A history too short to validate keeps the
    default level window; one too short to learn keeps DEFAULT_PARAMS."""
    values = as_history(history)
    if horizon <= 0:
        raise ValueError("the horizon must be positive")
    window = min(horizon, TARGET_WINDOW)
    options = candidates(level_windows)
    origins: list[int] = []
    scores: dict[str, list[float]] = {name: [] for name in options}
    for train, held_out in validation_splits(values, horizon):
        keep = scorable(train, held_out)
        if not keep.any():
            continue
        origins.append(train.shape[0])
        learned_members = {w: _learn_member(train, w, window) for w in level_windows}
        for name, windows in options.items():
            found = [learned_members[w] for w in windows]
            members = tuple(f[0] for f in found if f is not None)
            if len(members) < len(windows):
                continue
            predicted = forecast_point(train, ForecasterParams(members, 1.0), held_out.shape[0])
            scores[name].append(float(np.mean(rmsse(train, held_out, predicted)[keep])))
    # A candidate is compared only on every origin (one that cannot learn at some origin drops out).
    by_origin = {name: tuple(s) for name, s in scores.items() if s and len(s) == len(origins)}
    validation = {name: float(np.mean(s)) for name, s in by_origin.items()}
    if validation:
        chosen = min(validation, key=lambda name: (validation[name], len(options[name])))
        learned = _learn(values, options[chosen], window)
        if learned is not None:
            return Fit(learned[0], "validated", validation, chosen, learned[1], tuple(origins), by_origin)
    default_window = DEFAULT_PARAMS.members[0].level_window
    learned = _learn(values, (default_window,), window)
    if learned is not None:
        return Fit(learned[0], "learned", {}, f"level {default_window}", learned[1])
    return Fit(DEFAULT_PARAMS, "defaults", {}, f"level {default_window}")


def dispersion(history: npt.ArrayLike) -> FloatArray:
    """Per series, the variance-to-mean ratio of its observed periods, at least 1 (Poisson)."""
    values = as_history(history)
    count = np.isfinite(values).sum(axis=0)
    mean = np.where(count > 0, np.nansum(values, axis=0) / np.maximum(count, 1), 0.0)
    squares = np.nansum((values - mean[None, :]) ** 2, axis=0)
    variance = np.where(count > 1, squares / np.maximum(count - 1, 1), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mean > 0, variance / mean, 1.0)
    return np.maximum(ratio, 1.0)


def predictive_moments(history: npt.ArrayLike, params: ForecasterParams) -> tuple[FloatArray, FloatArray]:
    """Per series, the expected demand of one future period (rate factor times the recent mean)
    and its variance (the series' dispersion times that mean: negative binomial, or Poisson
    when the series is not overdispersed). The point forecast is lower by design (RMSSE rewards
    undershooting rare parts); stock planning needs these moments instead."""
    values = as_history(history)
    mean = params.rate_factor * recent_level(values, RATE_WINDOW)
    return mean, dispersion(values) * mean


def count_pmf(mean: float, variance: float, size: int | None = None) -> FloatArray:
    """Probabilities of 0, 1, ... size - 1 for a count with this mean and variance: negative
    binomial when the variance exceeds the mean, else Poisson. Computed in logs by the
    recurrence between neighbouring counts, so large means do not underflow."""
    if not math.isfinite(mean) or mean <= 0:
        point_mass = np.zeros(max(size or 1, 1))
        point_mass[0] = 1.0
        return point_mass
    variance = max(variance, mean)
    if size is not None:
        return _count_pmf(mean, variance, size)
    size = math.ceil(mean + 12.0 * math.sqrt(variance) + 20.0)
    pmf = _count_pmf(mean, variance, size)
    while pmf.sum() < 1.0 - 1e-10 and size < MAX_COUNT:  # a long negative binomial tail
        size *= 2
        pmf = _count_pmf(mean, variance, size)
    return pmf


def _count_pmf(mean: float, variance: float, size: int) -> FloatArray:
    k = np.arange(1, size, dtype=np.float64)
    if variance <= mean * (1.0 + 1e-9):
        steps = np.log(mean / k)
        log_pmf = np.concatenate(([-mean], -mean + np.cumsum(steps)))
    else:
        r = mean * mean / (variance - mean)
        log_p, log_q = math.log(r / (r + mean)), math.log(mean / (r + mean))
        steps = np.log((k - 1.0 + r) / k) + log_q
        log_pmf = np.concatenate(([r * log_p], r * log_p + np.cumsum(steps)))
    pmf: FloatArray = np.exp(log_pmf)
    return pmf


def pmf_quantile(pmf: npt.ArrayLike, q: float) -> int:
    """The least count whose cumulative probability reaches q."""
    cdf = np.cumsum(np.asarray(pmf, dtype=np.float64))
    index = int(np.searchsorted(cdf, q - 1e-12, side="left"))
    return min(index, cdf.size - 1)


def count_quantile(mean: float, variance: float, q: float) -> float:
    """Quantile of the count distribution of count_pmf; the normal quantile above a mean of
    NORMAL_ABOVE_MEAN per period, where the two agree closely."""
    if not math.isfinite(mean):
        return math.nan
    if mean > NORMAL_ABOVE_MEAN:
        return float(max(0.0, math.ceil(mean + NormalDist().inv_cdf(q) * math.sqrt(max(variance, mean)))))
    return float(pmf_quantile(count_pmf(mean, variance), q))


def forecast_intervals(
    history: npt.ArrayLike, params: ForecasterParams, horizon: int, *, level: float = DEFAULT_LEVEL
) -> tuple[FloatArray, FloatArray]:
    """Central prediction intervals (horizon x series): the (1 - level) / 2 and (1 + level) / 2
    quantiles of the predictive distribution of predictive_moments."""
    if not 0.0 < level < 1.0:
        raise ValueError("the interval level is between 0 and 1")
    mean, variance = predictive_moments(history, params)
    lower = np.array([count_quantile(m, v, (1.0 - level) / 2.0) for m, v in zip(mean, variance, strict=True)])
    upper = np.array([count_quantile(m, v, (1.0 + level) / 2.0) for m, v in zip(mean, variance, strict=True)])
    return np.tile(lower, (horizon, 1)), np.tile(upper, (horizon, 1))


@dataclass(frozen=True)
class MethodScore:
    name: str
    rmsse: float  # mean over the scored series
    mase: float
    rmsse_active: float  # mean over the active subset
    mase_active: float


@dataclass(frozen=True)
class Coverage:
    level: float
    cells: int  # observed held-out periods of scored series
    inside: float  # share of them within [lower, upper]
    below: float
    above: float


@dataclass(frozen=True)
class Backtest:
    periods: int
    series: int
    holdout: int
    scored: int
    scored_active: int
    fit: Fit
    scores: tuple[MethodScore, ...]  # all-zero, Croston, SBA, any benchmarks, the project's forecaster
    coverage: Coverage

    def score(self, name: str) -> MethodScore:
        return next(s for s in self.scores if s.name == name)

    def improvement(self, *, subset: str = "all") -> float:
        """1 - forecaster RMSSE / the best RMSSE of every other method scored (0.05 = 5% better)."""

        def pick(score: MethodScore) -> float:
            return score.rmsse if subset == "all" else score.rmsse_active

        best = min(pick(s) for s in self.scores if s.name != FORECASTER)
        return 1.0 - pick(self.score(FORECASTER)) / best


FORECASTER = "prognos"
BASELINES = ("all-zero", "croston", "sba")


def backtest(
    history: npt.ArrayLike,
    *,
    holdout: int = 12,
    level: float = DEFAULT_LEVEL,
    benchmarks: Mapping[str, Forecaster] | None = None,
) -> Backtest:
    """Hold out the last `holdout` periods; fit every method on the periods before (the
    forecaster's parameters included: fit_forecaster sees only those) and make one forecast of
    horizon `holdout` from the last in-sample period; score it once. `benchmarks` are more
    methods to score the same way, on the same series, after the baselines."""
    values = as_history(history)
    periods = values.shape[0]
    if holdout <= 0:
        raise ConfigError("the holdout must be positive")
    if periods - holdout < CLASS_WINDOW + 2:
        raise ConfigError(
            f"a backtest holding out {holdout} periods needs at least {CLASS_WINDOW + 2 + holdout} "
            f"periods; the history has {periods}"
        )
    train, test = values[: periods - holdout], values[periods - holdout :]
    keep = scorable(train, test)
    if not keep.any():
        raise ConfigError("no series has enough history to score (see docs/forecast.md)")
    subset = keep & active(train)
    fit = fit_forecaster(train, holdout)
    forecasts = {
        "all-zero": zero_forecast(train, holdout),
        "croston": croston_forecast(train, holdout),
        "sba": croston_forecast(train, holdout, sba=True),
    }
    for name, forecaster in (benchmarks or {}).items():
        if name in forecasts or name == FORECASTER:
            raise ValueError(f"a benchmark may not be called {name!r}")
        forecasts[name] = forecaster(train.copy(), holdout)
    forecasts[FORECASTER] = forecast_point(train, fit.params, holdout)
    scores = []
    for name, predicted in forecasts.items():
        r, m = rmsse(train, test, predicted), mase(train, test, predicted)
        if not np.isfinite(r[keep]).all():
            raise ValueError(f"{name} made no forecast for some of the scored series")
        scores.append(
            MethodScore(
                name,
                float(np.mean(r[keep])),
                float(np.mean(m[keep])),
                float(np.mean(r[subset])) if subset.any() else math.nan,
                float(np.mean(m[subset])) if subset.any() else math.nan,
            )
        )
    lower, upper = forecast_intervals(train, fit.params, holdout, level=level)
    cells = np.isfinite(test) & keep[None, :]
    n = int(cells.sum())
    coverage = Coverage(
        level,
        n,
        float(((test >= lower) & (test <= upper))[cells].mean()),
        float((test < lower)[cells].mean()),
        float((test > upper)[cells].mean()),
    )
    return Backtest(
        periods, values.shape[1], holdout, int(keep.sum()), int(subset.sum()), fit, tuple(scores), coverage
    )
