"""The onboarding detector on SKAB, the Skoltech Anomaly Benchmark, by its published protocol.

For each experiment file the first TRAIN_ROWS rows calibrate a detector (the same `fit` and
`score` as `prognos models fit` / `score`, reading the file with the same CSV code); the rest
are test rows. Flags on the test rows of all files are pooled and compared with the `anomaly`
column point by point: F1 = TP / (TP + (FP + FN) / 2), FAR = FP / (FP + TN),
MAR = FN / (FN + TP). Two naive baselines run beside it: all-anomaly (every test row flagged)
and a per-sensor z-score (a row is flagged when any sensor is more than ZSCORE_LIMIT standard
deviations of its calibration rows from their mean).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from prognos.edge.features import FloatArray
from prognos.errors import ConfigError
from prognos.models.csv_io import Table as CsvTable
from prognos.models.csv_io import read_table
from prognos.models.detectors import SCORERS
from prognos.models.footprint import Footprint, per_scorer
from prognos.models.onboarding import Detector, combine, fit, flags, score_parts
from prognos.models.selection import (
    DEFAULT_GRID,
    Case,
    Grid,
    IntArray,
    Outcome,
    Report,
    Table,
    evaluate,
    report,
)
from prognos.models.settings import DEFAULTS, Settings

TRAIN_ROWS = 400
TIMESTAMP_COLUMN = "datetime"
LABEL_COLUMN = "anomaly"
NOT_SENSORS = (LABEL_COLUMN, "changepoint")
ANOMALY_FREE_DIR = "anomaly-free"
LEADERBOARD_FILES = 34
ANOMALY_FREE_PIECE_ROWS = 1150
ZSCORE_LIMIT = 3.0


def counts(predicted: npt.NDArray[np.integer], actual: npt.NDArray[np.integer]) -> Outcome:
    """Point-by-point confusion counts of one row of flags against the labels."""
    return Outcome.of(point_counts(np.asarray(predicted)[None, :], actual)[0])


def point_counts(predicted: npt.NDArray[np.integer], actual: npt.NDArray[np.integer]) -> IntArray:
    """One outcome row (selection.FIELDS) per row of `predicted` (candidates x rows)."""
    p = (np.asarray(predicted) == 1).astype(np.int64)
    a = (np.asarray(actual) == 1).astype(np.int64)
    tp = p @ a
    fp = p.sum(axis=1) - tp
    fn = int(a.sum()) - tp
    tn = a.size - tp - fp - fn
    zeros = np.zeros_like(tp)
    return np.column_stack([tp, fp, fn, tn, zeros, zeros, zeros])


@dataclass(frozen=True)
class ExperimentFile:
    """One experiment: its sensors, the rows, their times and labels."""

    name: str  # relative to the data directory, e.g. "valve1/3.csv"
    sensors: tuple[str, ...]
    matrix: FloatArray
    seconds: FloatArray
    labels: npt.NDArray[np.int8]

    @property
    def test_labels(self) -> npt.NDArray[np.int8]:
        return self.labels[TRAIN_ROWS:]


@dataclass(frozen=True)
class FileResult:
    name: str
    detector: Outcome
    all_anomaly: Outcome
    zscore: Outcome
    excluded: tuple[str, ...]  # sensors the calibration left out
    drift_followed: tuple[str, ...]  # sensors scored against a drift-aware reference


@dataclass(frozen=True)
class SkabResult:
    files: tuple[FileResult, ...]

    @property
    def detector(self) -> Outcome:
        return sum((f.detector for f in self.files), Outcome())

    @property
    def all_anomaly(self) -> Outcome:
        return sum((f.all_anomaly for f in self.files), Outcome())

    @property
    def zscore(self) -> Outcome:
        return sum((f.zscore for f in self.files), Outcome())


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


def load_experiment(path: Path, name: str) -> ExperimentFile:
    table = read_table(path, timestamp_column=TIMESTAMP_COLUMN)
    if LABEL_COLUMN not in table.columns:
        raise ConfigError(f"{path}: no {LABEL_COLUMN!r} column, so not a SKAB experiment file")
    if len(table.timestamps) <= TRAIN_ROWS:
        raise ConfigError(f"{path}: {len(table.timestamps)} rows; the protocol needs more than {TRAIN_ROWS}")
    return _experiment(table, name, table.column(LABEL_COLUMN).astype(np.int8))


def _experiment(table: CsvTable, name: str, labels: npt.NDArray[np.int8]) -> ExperimentFile:
    sensors = tuple(c for c in table.columns if c not in NOT_SENSORS)
    matrix = table.values[:, [table.columns.index(c) for c in sensors]]
    return ExperimentFile(name, sensors, matrix, table.seconds, labels)


def load_experiments(data_dir: Path) -> list[ExperimentFile]:
    return [load_experiment(p, p.relative_to(data_dir).as_posix()) for p in experiment_files(data_dir)]


def protocol_parts(experiment: ExperimentFile, settings: Settings) -> tuple[dict[str, FloatArray], Detector]:
    """Calibrate on the first TRAIN_ROWS rows; each scorer's scores of the test rows (scored
    after the last `window_rows - 1` calibration rows, as a running detector would have them),
    and the detector."""
    try:
        detector = fit(
            experiment.matrix[:TRAIN_ROWS],
            experiment.sensors,
            seconds=experiment.seconds[:TRAIN_ROWS],
            settings=settings,
        )
    except ConfigError as exc:
        raise ConfigError(f"{experiment.name}: {exc}") from exc
    lead = settings.window_rows - 1
    used = [experiment.sensors.index(c) for c in detector.columns]
    rows = experiment.matrix[TRAIN_ROWS - lead :, used]
    parts = score_parts(detector, rows, experiment.seconds[TRAIN_ROWS - lead :])
    return {name: scores[lead:] for name, scores in parts.items()}, detector


def run_skab(data_dir: Path, settings: Settings = DEFAULTS) -> SkabResult:
    """Run the protocol with `settings` on every experiment file under `data_dir`."""
    return SkabResult(tuple(evaluate_file(e, settings) for e in load_experiments(data_dir)))


def evaluate_file(experiment: ExperimentFile, settings: Settings = DEFAULTS) -> FileResult:
    """One experiment file through the protocol, with the naive baselines beside it."""
    parts, detector = protocol_parts(experiment, settings)
    predicted = flags(detector, combine(parts))
    actual = experiment.test_labels
    return FileResult(
        name=experiment.name,
        detector=counts(predicted, actual),
        all_anomaly=counts(np.ones_like(actual), actual),
        zscore=counts(zscore_flags(experiment.matrix[:TRAIN_ROWS], experiment.matrix[TRAIN_ROWS:]), actual),
        excluded=tuple(detector.excluded),
        drift_followed=tuple(
            c for c, b in zip(detector.columns, detector.baselines, strict=True) if b.drift_rows
        ),
    )


def zscore_flags(
    calibration: FloatArray, rows: FloatArray, limit: float = ZSCORE_LIMIT
) -> npt.NDArray[np.int8]:
    """The naive per-sensor z-score detector: 1 where any sensor is more than `limit`
    calibration standard deviations from its calibration mean (constant sensors ignored)."""
    mean = calibration.mean(axis=0)
    spread = calibration.std(axis=0)
    live = spread > 0
    z = np.abs(rows[:, live] - mean[live]) / spread[live]
    flags: npt.NDArray[np.int8] = (z > limit).any(axis=1).astype(np.int8)
    return flags


def skab_cases(data_dir: Path) -> list[Case]:
    """Every experiment file as a selection case (prognos.models.selection)."""
    return [_case(e) for e in load_experiments(data_dir)]


def _case(experiment: ExperimentFile) -> Case:
    def scores(settings: Settings) -> dict[str, FloatArray]:
        return protocol_parts(experiment, settings)[0]

    def judge(predicted: npt.NDArray[np.int8]) -> IntArray:
        return point_counts(predicted, experiment.test_labels)

    return Case(name=experiment.name, benchmark="skab", scores=scores, judge=judge)


def anomaly_free_alarms(
    data_dir: Path, settings: Settings = DEFAULTS, *, piece_rows: int = ANOMALY_FREE_PIECE_ROWS
) -> Outcome | None:
    """A false-alarm check on normal data only: anomaly-free.csv cut into pieces of
    `piece_rows` rows (about an experiment's length), each run through the same protocol, so
    every flag is a false alarm. None when the file is not there."""
    path = Path(data_dir) / ANOMALY_FREE_DIR / "anomaly-free.csv"
    if not path.is_file():
        return None
    table = read_table(path, timestamp_column=TIMESTAMP_COLUMN)
    total = Outcome()
    for start in range(0, len(table.timestamps) - piece_rows + 1, piece_rows):
        piece = replace(
            table,
            timestamps=table.timestamps[start : start + piece_rows],
            values=table.values[start : start + piece_rows],
            seconds=table.seconds[start : start + piece_rows],
        )
        experiment = _experiment(piece, f"anomaly-free.csv@{start}", np.zeros(piece_rows, dtype=np.int8))
        parts, detector = protocol_parts(experiment, settings)
        predicted = flags(detector, combine(parts))
        total += counts(predicted, experiment.test_labels)
    return total


@dataclass(frozen=True)
class SkabEvaluation:
    """Everything `prognos models eval-skab` reports."""

    table: Table
    report: Report
    shipped: SkabResult  # the defaults of `prognos models fit`, file by file
    anomaly_free: Outcome | None
    footprints: tuple[Footprint, ...]


@functools.lru_cache(maxsize=4)
def skab_table(data_dir: Path, grid: Grid = DEFAULT_GRID) -> Table:
    """Every candidate of `grid` on every experiment file (kept for the life of the process:
    the evaluation takes about a minute)."""
    return evaluate(skab_cases(data_dir), grid)


def evaluate_skab(data_dir: Path, grid: Grid = DEFAULT_GRID) -> SkabEvaluation:
    data_dir = Path(data_dir).resolve()
    table = skab_table(data_dir, grid)
    experiments = load_experiments(data_dir)
    first = experiments[0]
    footprints = per_scorer(
        first.matrix[:TRAIN_ROWS],
        first.matrix[TRAIN_ROWS:],
        first.sensors,
        DEFAULTS,
        SCORERS,
        seconds=first.seconds[:TRAIN_ROWS],
        row_seconds=first.seconds[TRAIN_ROWS:],
    )
    return SkabEvaluation(
        table=table,
        report=report(table),
        shipped=SkabResult(tuple(evaluate_file(e) for e in experiments)),
        anomaly_free=anomaly_free_alarms(data_dir),
        footprints=tuple(footprints),
    )
