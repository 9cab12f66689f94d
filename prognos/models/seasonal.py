"""What normal looks like for one sensor, learned from its calibration rows: a fixed level, a
seasonal profile (a daily or weekly cycle found in the rows), and a drift-aware reference that
follows slow drift and level shifts. Pure: arrays in, arrays out.

A sensor's residual is its value minus this baseline; the detectors score residuals.

- Period: candidate lags are the highest peaks of the autocorrelation of the rows less their
  linear trend, and of their first differences (where a wandering level would hide a cycle),
  up to a third of the rows (three cycles at least), and an hour, a day and a week. A candidate
  is kept only if a per-phase median profile predicts cycles it was not built from:
  leave-one-cycle-out, its mean squared error must be below MAX_PROFILE_ERROR of the sensor's
  spread about its median. The best such lag is the period, a clock period if it is nearly as
  good. Phases come from the timestamps, so a scored file need not start where the calibration
  did.
- Drift: when the level still wanders after the profile (variance ratio above
  MAX_VARIANCE_RATIO, see `variance_ratio`), the residual is taken against an exponentially
  weighted reference of the rows before it, with a time constant of `drift_rows`. A slow
  drift then stays within the normal spread, and a level shift (after maintenance, say) is
  flagged for a while and then becomes the new normal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from prognos.edge.features import FloatArray

MIN_CYCLES = 3
MIN_AUTOCORRELATION = 0.1
PERIOD_CANDIDATES = 5
MAX_PROFILE_ERROR = 0.5
CALENDAR_S = (3600.0, 86400.0, 604800.0)
CALENDAR_TOLERANCE = 1.1
STEADINESS_BLOCKS = 10
MAX_VARIANCE_RATIO = 10.0
REGULAR_STEP_SHARE = 0.9


@dataclass(frozen=True)
class Period:
    rows: int
    error: float  # leave-one-cycle-out mean squared error / spread about the median


@dataclass(frozen=True)
class Baseline:
    """Normal behaviour of one sensor. `profile` is empty without a period; `drift_rows` is
    0 for a fixed reference. `reference` is the drift reference at the end of the calibration
    rows, where scoring continues from."""

    level: float
    step_s: float = 1.0
    origin_s: float = 0.0
    profile: tuple[float, ...] = ()
    drift_rows: int = 0
    reference: float = 0.0
    variance_ratio: float = 1.0  # of the calibration residual before any drift reference

    @property
    def wanders(self) -> bool:
        return self.variance_ratio > MAX_VARIANCE_RATIO

    @property
    def period_rows(self) -> int:
        return len(self.profile)

    def describe(self) -> str:
        parts = []
        if self.profile:
            parts.append(f"cycle of {_duration(self.period_rows * self.step_s)} ({self.period_rows} rows)")
        else:
            parts.append("fixed level")
        if self.drift_rows:
            parts.append(f"drift followed over {self.drift_rows} rows")
        return ", ".join(parts)


def variance_ratio(matrix: FloatArray, blocks: int = STEADINESS_BLOCKS) -> FloatArray:
    """Per column: variance of the means of `blocks` consecutive blocks of rows, divided by
    what independent noise of the column's variance would give. About 1 for a steady level with
    noise; up to the block length for a level that wanders. NaN for a constant column."""
    matrix = np.asarray(matrix, dtype=np.float64)
    length = matrix.shape[0] // blocks
    if length < 2:
        raise ValueError(f"{matrix.shape[0]} rows are too few for {blocks} blocks")
    means = matrix[: blocks * length].reshape(blocks, length, -1).mean(axis=1)
    variance = matrix.var(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        result: FloatArray = means.var(axis=0) * length / variance
    return result


def regular_step(seconds: FloatArray) -> float | None:
    """The sampling step when at least REGULAR_STEP_SHARE of the steps are the median step
    (within 1%), else None."""
    steps = np.diff(np.asarray(seconds, dtype=np.float64))
    if steps.size == 0:
        return None
    step = float(np.median(steps))
    if step <= 0:
        return None
    regular = np.abs(steps - step) <= 0.01 * step
    return step if regular.mean() >= REGULAR_STEP_SHARE else None


def autocorrelation(values: FloatArray, max_lag: int) -> FloatArray:
    """Autocorrelation of `values` at lags 0..max_lag (FFT, biased estimator)."""
    x = np.asarray(values, dtype=np.float64)
    x = x - x.mean()
    n = x.size
    spectrum = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(spectrum * np.conj(spectrum))[: max_lag + 1]
    result: FloatArray = acf / acf[0] if acf[0] > 0 else np.zeros(max_lag + 1)
    return result


def profile_error(values: FloatArray, rows: int) -> float:
    """Leave-one-cycle-out mean squared error of the per-phase median profile of period
    `rows`, over the full cycles in `values`."""
    cycles = values.size // rows
    if cycles < MIN_CYCLES:
        return math.inf
    matrix = np.asarray(values[: cycles * rows], dtype=np.float64).reshape(cycles, rows)
    return float(np.mean((matrix - leave_one_out_medians(matrix)) ** 2))


def leave_one_out_medians(matrix: FloatArray) -> FloatArray:
    """Element (i, k): the median of column k without row i."""
    count = matrix.shape[0]
    order = np.argsort(matrix, axis=0, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(count)[:, None].repeat(matrix.shape[1], axis=1), axis=0)
    ordered = np.take_along_axis(matrix, order, axis=0)

    def kth_without(k: int) -> FloatArray:
        # the k-th smallest of the others: the k-th overall below the removed rank, else the next
        below = ordered[min(k, count - 1)][None, :]
        above = ordered[min(k + 1, count - 1)][None, :]
        result: FloatArray = np.where(ranks > k, below, above)
        return result

    remaining = count - 1
    if remaining % 2:
        return kth_without(remaining // 2)
    return (kth_without(remaining // 2 - 1) + kth_without(remaining // 2)) / 2


def find_period(values: FloatArray, step_s: float | None = None) -> Period | None:
    """The cycle in `values` (rows at a regular step of `step_s` seconds) that a profile
    predicts best, or None when no candidate predicts held-out cycles well enough (see the
    module docstring). An hour, a day or a week is preferred when it predicts within
    CALENDAR_TOLERANCE of the best: real cycles follow the clock, and a lag one row off fits
    about as well by chance."""
    x = np.asarray(values, dtype=np.float64)
    max_lag = x.size // MIN_CYCLES
    if max_lag < 3:
        return None
    steps = np.arange(x.size)
    detrended = x - np.polyval(np.polyfit(steps, x, 1), steps)
    candidates: set[int] = set()
    for series in (detrended, np.diff(x)):
        acf = autocorrelation(series, max_lag)
        peaks = [
            lag
            for lag in range(2, max_lag)
            if acf[lag] > MIN_AUTOCORRELATION and acf[lag] > acf[lag - 1] and acf[lag] >= acf[lag + 1]
        ]
        candidates.update(sorted(peaks, key=lambda lag: -acf[lag])[:PERIOD_CANDIDATES])
    calendar = set()
    if step_s is not None:
        for cycle_s in CALENDAR_S:
            lag = round(cycle_s / step_s)
            if 2 <= lag <= max_lag and abs(lag * step_s - cycle_s) < 1e-6 * cycle_s:
                calendar.add(lag)
    candidates |= calendar
    spread = float(np.mean((x - np.median(x)) ** 2))
    if spread == 0 or not candidates:
        return None
    scored = [Period(rows=lag, error=profile_error(x, lag) / spread) for lag in sorted(candidates)]
    best = min(scored, key=lambda p: p.error)
    clock = [p for p in scored if p.rows in calendar and p.error <= best.error * CALENDAR_TOLERANCE]
    if clock:
        best = min(clock, key=lambda p: p.error)
    return best if best.error < MAX_PROFILE_ERROR else None


def fit_baseline(values: FloatArray, seconds: FloatArray | None, *, drift_rows: int) -> Baseline:
    """The baseline of one sensor from its calibration rows (`seconds`: their POSIX times, None
    for rows one second apart)."""
    x = np.asarray(values, dtype=np.float64)
    times = np.arange(x.size, dtype=np.float64) if seconds is None else np.asarray(seconds, np.float64)
    step = regular_step(times)
    baseline = Baseline(level=float(np.median(x)), step_s=step or 1.0, origin_s=float(times[0]))
    if step is not None:
        period = find_period(x, step)
        if period is not None:
            phases = np.arange(x.size) % period.rows
            profile = tuple(float(np.median(x[phases == k])) for k in range(period.rows))
            baseline = Baseline(level=0.0, step_s=step, origin_s=float(times[0]), profile=profile)
    residual = _against_level_or_profile(baseline, x, times)
    ratio = float(variance_ratio(residual[:, None])[0])
    baseline = replace(baseline, variance_ratio=ratio)
    if drift_rows > 0 and ratio > MAX_VARIANCE_RATIO:
        start = float(np.median(residual[: min(drift_rows, residual.size)]))
        references = ewma_reference(residual, drift_rows, start)
        end = float(references[-1] + (residual[-1] - references[-1]) / drift_rows)
        baseline = replace(baseline, drift_rows=drift_rows, reference=end)
    return baseline


def calibration_residuals(baseline: Baseline, values: FloatArray, seconds: FloatArray | None) -> FloatArray:
    """Residuals of the calibration rows themselves: the drift reference starts where
    `fit_baseline` started it, not at its end state."""
    x = np.asarray(values, dtype=np.float64)
    times = np.arange(x.size, dtype=np.float64) if seconds is None else np.asarray(seconds, np.float64)
    residual = _against_level_or_profile(baseline, x, times)
    if baseline.drift_rows:
        start = float(np.median(residual[: min(baseline.drift_rows, residual.size)]))
        residual = residual - ewma_reference(residual, baseline.drift_rows, start)
    return residual


def residuals(baseline: Baseline, values: FloatArray, seconds: FloatArray | None) -> FloatArray:
    """Value minus normal for each row of `values` (rows in time order that follow, or come
    later than, the calibration rows); the drift reference continues from its end state."""
    x = np.asarray(values, dtype=np.float64)
    if baseline.profile and seconds is None:
        raise ValueError("a seasonal baseline needs the rows' timestamps")
    times = np.arange(x.size, dtype=np.float64) if seconds is None else np.asarray(seconds, np.float64)
    residual = _against_level_or_profile(baseline, x, times)
    if baseline.drift_rows:
        residual = residual - ewma_reference(residual, baseline.drift_rows, baseline.reference)
    return residual


def ewma_reference(values: FloatArray, rows: int, start: float) -> FloatArray:
    """Reference of each row from the rows before it: an exponentially weighted mean with time
    constant `rows`, starting at `start`. NaN rows leave it unchanged."""
    x = np.asarray(values, dtype=np.float64)
    out = np.empty_like(x)
    alpha = 1.0 / rows
    level = start
    for i, value in enumerate(x.tolist()):
        out[i] = level
        if value == value:  # not NaN
            level += alpha * (value - level)
    return out


def _against_level_or_profile(baseline: Baseline, values: FloatArray, seconds: FloatArray) -> FloatArray:
    if not baseline.profile:
        return values - baseline.level
    phase = np.round((seconds - baseline.origin_s) / baseline.step_s).astype(np.int64) % baseline.period_rows
    result: FloatArray = values - np.asarray(baseline.profile)[phase]
    return result


def _duration(seconds: float) -> str:
    for unit, size in (("week", 604800.0), ("day", 86400.0), ("hour", 3600.0), ("minute", 60.0)):
        if seconds >= size and abs(seconds / size - round(seconds / size)) < 1e-6:
            count = round(seconds / size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} s"
