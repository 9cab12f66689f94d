"""The settings of the onboarding detector and their shipped defaults. No numpy here, so the
command line can show the defaults without loading it.

The defaults are what prognos.models.selection chose leave-one-file-out on the SKAB benchmark
(docs/models.md "Choosing without peeking"); tests/integration/test_models_benchmarks.py checks
that they still are.
"""

from __future__ import annotations

from dataclasses import dataclass

from prognos.errors import ConfigError

SCORERS = ("sensor", "cusum", "pca", "mset", "autoencoder")
MULTIVARIATE = frozenset({"pca", "mset", "autoencoder"})

DEFAULT_SCORERS: tuple[str, ...] = ("pca",)
DEFAULT_WINDOW_ROWS = 40
DEFAULT_FALSE_ALARM_RATE = 0.05
DEFAULT_MARGIN = 4.0
DEFAULT_RELEASE = 0.5
DEFAULT_DRIFT_ROWS = 300
DEFAULT_FOLLOW_DRIFT = True


@dataclass(frozen=True)
class Settings:
    """How a detector is calibrated. `scorers` are names from SCORERS (prognos.models.detectors
    says what each does); each scorer's unit is the (1 - `false_alarm_rate`) quantile of its
    calibration scores; an alarm starts above `margin` units and ends when the score falls to
    `release` x margin (1.0: no hysteresis). `drift_rows` is the time constant of the
    drift-aware reference: a sensor whose level wanders in the calibration rows is followed with
    it when `follow_drift`, and otherwise left out unless no steady sensor remains."""

    scorers: tuple[str, ...] = DEFAULT_SCORERS
    window_rows: int = DEFAULT_WINDOW_ROWS
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE
    margin: float = DEFAULT_MARGIN
    release: float = DEFAULT_RELEASE
    drift_rows: int = DEFAULT_DRIFT_ROWS
    follow_drift: bool = DEFAULT_FOLLOW_DRIFT

    def check(self) -> None:
        """ConfigError naming the first setting out of range."""
        unknown = [name for name in self.scorers if name not in SCORERS]
        if not self.scorers or unknown:
            raise ConfigError(
                f"unknown scorer {', '.join(unknown) or '(none)'}; choose from {', '.join(SCORERS)}"
            )
        if not 0 < self.false_alarm_rate < 0.5:
            raise ConfigError(f"the false-alarm rate must be between 0 and 0.5, got {self.false_alarm_rate}")
        if self.margin < 1:
            raise ConfigError(f"the margin must be at least 1, got {self.margin}")
        if not 0 < self.release <= 1:
            raise ConfigError(f"the release must be above 0 and at most 1, got {self.release}")
        if self.window_rows < 1:
            raise ConfigError(f"the window must be at least 1 row, got {self.window_rows}")
        if self.drift_rows < 1:
            raise ConfigError(f"the drift time constant must be at least 1 row, got {self.drift_rows}")

    def describe(self) -> str:
        drift = f"followed over {self.drift_rows} rows" if self.follow_drift else "left out"
        return (
            f"scorers {'+'.join(self.scorers)}, window {self.window_rows} rows, "
            f"rate {self.false_alarm_rate:g}, margin {self.margin:g}, release {self.release:g}, "
            f"drift {drift}"
        )


DEFAULTS = Settings()
