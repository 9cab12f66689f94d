"""Window features of one signal: the single feature code that the agent and training share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


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


def window_features(times_s: FloatArray, values: FloatArray) -> WindowFeatures:
    """Features of samples `values` taken at `times_s`; NaN samples are ignored."""
    keep = np.isfinite(values)
    times_s, values = times_s[keep], values[keep]
    n = int(values.size)
    if n == 0:
        nan = float("nan")
        return WindowFeatures(0, nan, nan, nan, nan, nan, nan)
    slope = 0.0
    if n > 1 and np.ptp(times_s) > 0:
        centred = times_s - times_s.mean()
        slope = float(np.dot(centred, values - values.mean()) / np.dot(centred, centred)) * 86_400.0
    return WindowFeatures(
        count=n,
        mean=float(values.mean()),
        std=float(values.std()),
        min=float(values.min()),
        max=float(values.max()),
        rms=float(np.sqrt(np.mean(values * values))),
        slope_per_day=slope,
    )
