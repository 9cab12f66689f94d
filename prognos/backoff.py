"""Exponential backoff with full jitter, pure: no I/O, no clock, no sleeping.

Attempt n (counting from 0) waits a delay drawn uniformly from [0, min(cap_s, base_s * 2**n)].
Full jitter spreads a fleet's retries over the whole window, so gateways that lost the broker
together do not come back in lockstep. `reset()` after a success starts again at attempt 0.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from prognos.errors import ConfigError

Uniform = Callable[[float, float], float]


class Backoff:
    """Delays for successive retries; the caller sleeps, this only counts and draws."""

    def __init__(self, *, base_s: float, cap_s: float, uniform: Uniform = random.uniform) -> None:
        if not base_s > 0:
            raise ConfigError(f"backoff base_s must be > 0, got {base_s}")
        if not cap_s >= base_s:
            raise ConfigError(f"backoff cap_s ({cap_s}) must be >= base_s ({base_s})")
        self.base_s = base_s
        self.cap_s = cap_s
        self._uniform = uniform
        self._attempt = 0
        # The attempt from which the window is the cap; counting stops there, so 2**attempt
        # never grows without bound however long an outage lasts.
        self._last_attempt = 0
        while base_s * 2.0**self._last_attempt < cap_s:
            self._last_attempt += 1

    @property
    def attempt(self) -> int:
        """How many delays were drawn since the last reset (saturates once the cap is reached)."""
        return self._attempt

    def window_s(self) -> float:
        """The upper bound of the next delay: min(cap_s, base_s * 2**attempt)."""
        return min(self.cap_s, self.base_s * 2.0**self._attempt)

    def next_delay_s(self) -> float:
        """Draw the delay before the next retry and count the attempt."""
        delay = self._uniform(0.0, self.window_s())
        self._attempt = min(self._attempt + 1, self._last_attempt)
        return delay

    def reset(self) -> None:
        """The operation succeeded: the next failure starts again from base_s."""
        self._attempt = 0
