"""Degradation trend: a least-squares line through recent window values, and the days until it
crosses a failure threshold, with an interval from the slope's standard error.

Faults accelerate (docs/simulator.md: severity grows as a power of time), so a line reaches
the threshold later than the fault does, and the slope's error says nothing about that. A
bundle therefore ships a calibration per fault (`DaysCalibration`): quantiles of log(true
days / trend days) measured on a labelled training fleet. Applied to a trend estimate they
give a bias-corrected estimate and an 80% interval with the coverage measured in training
(split-conformal prediction).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

Z_80 = 1.2816  # two-sided 80% normal quantile
MIN_SPAN_DAYS = 0.5
MIN_POINTS = 8


@dataclass(frozen=True)
class DaysToThreshold:
    days: float
    low: float
    high: float


@dataclass(frozen=True)
class DaysCalibration:
    """Quantiles of log(true days to failure / trend days) for one fault."""

    log_q10: float
    log_q50: float
    log_q90: float

    def apply(self, estimate: DaysToThreshold) -> DaysToThreshold:
        return DaysToThreshold(
            estimate.days * math.exp(self.log_q50),
            estimate.days * math.exp(self.log_q10),
            estimate.days * math.exp(self.log_q90),
        )


class Trend:
    """Bounded history of (day, value) points; oldest points drop first."""

    def __init__(self, *, max_points: int = 500, max_span_days: float = 30.0) -> None:
        self._points: deque[tuple[float, float]] = deque(maxlen=max_points)
        self._max_span_days = max_span_days

    def add(self, day: float, value: float) -> None:
        if not math.isfinite(value):
            return
        self._points.append((day, value))
        while self._points and day - self._points[0][0] > self._max_span_days:
            self._points.popleft()

    def days_to(self, threshold: float) -> DaysToThreshold | None:
        """Days from the newest point until the trend reaches `threshold`, or None if it does
        not head there or the history is too short to tell."""
        if len(self._points) < MIN_POINTS:
            return None
        days = np.array([p[0] for p in self._points])
        values = np.array([p[1] for p in self._points])
        span = days.max() - days.min()
        if span < MIN_SPAN_DAYS:
            return None
        centred = days - days.mean()
        sxx = float(np.dot(centred, centred))
        slope = float(np.dot(centred, values - values.mean()) / sxx)
        intercept = float(values.mean())
        now = float(days[-1])
        level = intercept + slope * (now - float(days.mean()))
        gap = threshold - level
        if gap == 0:
            return DaysToThreshold(0.0, 0.0, 0.0)
        residuals = values - (intercept + slope * centred)
        slope_se = math.sqrt(float(np.dot(residuals, residuals)) / max(len(values) - 2, 1) / sxx)
        # Windows of one day share its weather and load, so they are not independent: count
        # about one independent point a day, which widens the interval accordingly.
        independent = max(span, 2.0)
        if len(values) > independent:
            slope_se *= math.sqrt(len(values) / independent)
        if slope == 0 or math.copysign(1, slope) != math.copysign(1, gap):
            return None
        if abs(slope) < 2 * slope_se:
            return None  # not distinguishable from no trend
        fast = abs(slope) + Z_80 * slope_se
        slow = max(abs(slope) - Z_80 * slope_se, 1e-12)
        return DaysToThreshold(abs(gap / slope), abs(gap) / fast, min(abs(gap) / slow, 1e5))
