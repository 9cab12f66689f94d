"""Window features: the single feature code that the agent, training and evaluation share.

Every function works on the last axis, so one window (shape (m,)) and a batch of windows
(shape (n, m)) go through the same code. NaN samples (a sensor that did not report) are left
out; a window with no samples has count 0 and NaN features.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

FEATURE_NAMES = ("count", "mean", "std", "min", "max", "rms", "slope_per_day")
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class WindowFeatures:
    """Summary of one signal over one window. slope_per_day is a least-squares trend."""

    count: int
    mean: float
    std: float
    min: float
    max: float
    rms: float
    slope_per_day: float

    @classmethod
    def from_row(cls, row: FloatArray) -> WindowFeatures:
        """From one row of feature_matrix."""
        return cls(int(row[0]), *(float(x) for x in row[1:]))


def feature_matrix(times_s: FloatArray, values: FloatArray) -> FloatArray:
    """Features of samples `values` taken at `times_s` along the last axis: shape (..., 7) in
    the order of FEATURE_NAMES."""
    values = np.asarray(values, dtype=np.float64)
    times_s = np.broadcast_to(np.asarray(times_s, dtype=np.float64), values.shape)
    if values.shape[-1] == 0:  # numpy's nan-reductions refuse a zero-length axis
        empty = np.full((*values.shape[:-1], len(FEATURE_NAMES)), np.nan)
        empty[..., 0] = 0.0
        return empty
    present = np.isfinite(values)
    count = present.sum(axis=-1).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN, on purpose
        mean = np.nanmean(np.where(present, values, np.nan), axis=-1)
        std = np.nanstd(np.where(present, values, np.nan), axis=-1)
        low = np.nanmin(np.where(present, values, np.nan), axis=-1)
        high = np.nanmax(np.where(present, values, np.nan), axis=-1)
        rms = np.sqrt(np.nanmean(np.where(present, values * values, np.nan), axis=-1))
        t_mean = np.nanmean(np.where(present, times_s, np.nan), axis=-1)
        centred_t = np.where(present, times_s - t_mean[..., None], 0.0)
        centred_v = np.where(present, values - mean[..., None], 0.0)
        sxx = (centred_t * centred_t).sum(axis=-1)
        slope = np.where(sxx > 0, (centred_t * centred_v).sum(axis=-1) / np.where(sxx > 0, sxx, 1.0), 0.0)
    slope = np.where(count > 0, slope * SECONDS_PER_DAY, np.nan)
    return np.stack([count, mean, std, low, high, rms, slope], axis=-1)


def window_features(times_s: FloatArray, values: FloatArray) -> WindowFeatures:
    """Features of one window of one signal."""
    return WindowFeatures.from_row(feature_matrix(times_s, values))


def trailing_mean(values: FloatArray, window: int) -> FloatArray:
    """Mean of each sample and the `window - 1` samples before it, along the last axis.

    Causal: an output never depends on a later sample, so the agent can compute it as samples
    arrive and training sees exactly what the agent would have seen. NaN samples are left out;
    the first `window - 1` outputs average the fewer samples there are, and an output whose
    window holds no sample is NaN.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    values = np.asarray(values, dtype=np.float64)
    present = np.isfinite(values)
    zeros = np.zeros((*values.shape[:-1], 1))
    sums = np.concatenate([zeros, np.cumsum(np.where(present, values, 0.0), axis=-1)], axis=-1)
    counts = np.concatenate([zeros, np.cumsum(present, axis=-1, dtype=np.float64)], axis=-1)
    n = values.shape[-1]
    end = np.arange(1, n + 1)
    start = np.maximum(end - window, 0)
    window_sum = sums[..., end] - sums[..., start]
    window_count = counts[..., end] - counts[..., start]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(window_count > 0, window_sum / np.where(window_count > 0, window_count, 1.0), np.nan)
