"""Turning per-window anomaly scores into alerts that do not flicker.

Scores are smoothed with an exponentially weighted moving average whose weight depends on
the time between windows (time constant `tau_days`), so the result does not depend on how
many windows a day the agent sees. An alert starts when the smoothed score reaches 1.0 and
ends when it falls below `release` (hysteresis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class ScoreSmoother:
    tau_days: float = 0.5
    release: float = 0.7
    value: float | None = None
    last_day: float | None = None
    alerting: bool = False

    def update(self, day: float, score: float) -> float:
        """Add one window's score (ignored when NaN); the smoothed score."""
        if not math.isfinite(score):
            return self.value if self.value is not None else math.nan
        if self.value is None or self.last_day is None:
            self.value = score
        else:
            weight = 1.0 - math.exp(-max(day - self.last_day, 0.0) / self.tau_days)
            self.value += weight * (score - self.value)
        self.last_day = day
        if self.value >= 1.0:
            self.alerting = True
        elif self.value < self.release:
            self.alerting = False
        return self.value
