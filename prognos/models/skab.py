"""The onboarding detector on SKAB, the Skoltech Anomaly Benchmark, by its published protocol.

For each experiment file the first TRAIN_ROWS rows calibrate a detector (the same `fit` and
`score` as `prognos models fit` / `score`, reading the file with the same CSV code); the rest
are test rows. Flags on the test rows of all files are pooled and compared with the `anomaly`
column point by point: F1 = TP / (TP + (FP + FN) / 2), FAR = FP / (FP + TN),
MAR = FN / (FN + TP). The all-anomaly baseline flags every test row.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from prognos.errors import ConfigError
from prognos.models.csv_io import Table, read_table
from prognos.models.onboarding import (
    DEFAULT_FALSE_ALARM_RATE,
    DEFAULT_MARGIN,
    DEFAULT_WINDOW_ROWS,
    fit,
    flags,
    score,
)

TRAIN_ROWS = 400
TIMESTAMP_COLUMN = "datetime"
LABEL_COLUMN = "anomaly"
NOT_SENSORS = (LABEL_COLUMN, "changepoint")
ANOMALY_FREE_DIR = "anomaly-free"
LEADERBOARD_FILES = 34
ANOMALY_FREE_PIECE_ROWS = 1150


@dataclass(frozen=True)
class Counts:
    """Point-by-point confusion counts and the benchmark's metrics."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    @property
    def f1(self) -> float:
        return _ratio(self.tp, self.tp + (self.fp + self.fn) / 2)

    @property
    def far(self) -> float:
        return _ratio(self.fp, self.fp + self.tn)

    @property
    def mar(self) -> float:
        return _ratio(self.fn, self.fn + self.tp)

    @property
    def rows(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @classmethod
    def of(cls, predicted: npt.NDArray[np.integer], actual: npt.NDArray[np.integer]) -> Counts:
        p = np.asarray(predicted) == 1
        a = np.asarray(actual) == 1
        return cls(int(np.sum(p & a)), int(np.sum(p & ~a)), int(np.sum(~p & a)), int(np.sum(~p & ~a)))


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


@dataclass(frozen=True)
class FileResult:
    name: str  # relative to the data directory, e.g. "valve1/3.csv"
    detector: Counts
    all_anomaly: Counts
    excluded: tuple[str, ...]  # sensors the calibration left out


@dataclass(frozen=True)
class SkabResult:
    files: tuple[FileResult, ...]

    @property
    def detector(self) -> Counts:
        return sum((f.detector for f in self.files), Counts())

    @property
    def all_anomaly(self) -> Counts:
        return sum((f.all_anomaly for f in self.files), Counts())


def default_skab_dir() -> Path:
    """../shared/data/skab beside the project root (found from this package's location)."""
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "skab"


def experiment_files(data_dir: Path) -> list[Path]:
    """Every experiment CSV under `data_dir` (one folder per experiment kind), anomaly-free
    data left out, in a stable order (folder, then file number)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ConfigError(f"{data_dir}: no SKAB data directory there; pass --data DIR")
    files = [p for p in data_dir.glob("*/*.csv") if p.parent.name != ANOMALY_FREE_DIR]
    if not files:
        raise ConfigError(f"{data_dir}: no SKAB experiment files (expected e.g. valve1/0.csv)")

    def order(path: Path) -> tuple[str, int, str]:
        return (path.parent.name, int(path.stem) if path.stem.isdigit() else -1, path.stem)

    return sorted(files, key=order)


@dataclass(frozen=True)
class Settings:
    """Detector settings for a run; the defaults are those of `prognos models fit`."""

    window_rows: int = DEFAULT_WINDOW_ROWS
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE
    margin: float = DEFAULT_MARGIN


def run_skab(data_dir: Path, settings: Settings = Settings()) -> SkabResult:
    """Run the protocol on every experiment file under `data_dir`."""
    return SkabResult(
        tuple(
            evaluate_file(path, name=path.relative_to(data_dir).as_posix(), settings=settings)
            for path in experiment_files(data_dir)
        )
    )


def evaluate_file(path: Path, *, name: str, settings: Settings = Settings()) -> FileResult:
    """One experiment file through the protocol."""
    table = read_table(path, timestamp_column=TIMESTAMP_COLUMN)
    if LABEL_COLUMN not in table.columns:
        raise ConfigError(f"{path}: no {LABEL_COLUMN!r} column, so not a SKAB experiment file")
    if len(table.timestamps) <= TRAIN_ROWS:
        raise ConfigError(f"{path}: {len(table.timestamps)} rows; the protocol needs more than {TRAIN_ROWS}")
    try:
        predicted, excluded = _protocol_flags(table, settings)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    actual = table.column(LABEL_COLUMN)[TRAIN_ROWS:].astype(np.int8)
    return FileResult(
        name=name,
        detector=Counts.of(predicted, actual),
        all_anomaly=Counts.of(np.ones_like(actual), actual),
        excluded=excluded,
    )


def anomaly_free_alarms(
    data_dir: Path, settings: Settings = Settings(), *, piece_rows: int = ANOMALY_FREE_PIECE_ROWS
) -> Counts | None:
    """A false-alarm check on normal data only: anomaly-free.csv cut into pieces of
    `piece_rows` rows (about an experiment's length), each run through the same protocol, so
    every flag is a false alarm. None when the file is not there."""
    path = Path(data_dir) / ANOMALY_FREE_DIR / "anomaly-free.csv"
    if not path.is_file():
        return None
    table = read_table(path, timestamp_column=TIMESTAMP_COLUMN)
    total = Counts()
    for start in range(0, len(table.timestamps) - piece_rows + 1, piece_rows):
        piece = replace(
            table,
            timestamps=table.timestamps[start : start + piece_rows],
            values=table.values[start : start + piece_rows],
        )
        predicted, _ = _protocol_flags(piece, settings)
        total += Counts.of(predicted, np.zeros_like(predicted))
    return total


def _protocol_flags(table: Table, settings: Settings) -> tuple[npt.NDArray[np.int8], tuple[str, ...]]:
    """Calibrate on the first TRAIN_ROWS rows; flags of the rows after them, and the sensors
    the calibration left out."""
    sensors = [c for c in table.columns if c not in NOT_SENSORS]
    matrix = table.values[:, [table.columns.index(c) for c in sensors]]
    detector = fit(
        matrix[:TRAIN_ROWS],
        sensors,
        window_rows=settings.window_rows,
        false_alarm_rate=settings.false_alarm_rate,
        margin=settings.margin,
    )
    used = matrix[:, [sensors.index(c) for c in detector.columns]]
    return flags(detector, score(detector, used))[TRAIN_ROWS:], tuple(detector.excluded)
