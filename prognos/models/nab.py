"""The onboarding detector on NAB series (Numenta Anomaly Benchmark) with labelled windows.

NAB's convention: the first PROBATION_SHARE of each file is the probationary period, here the
calibration rows, never scored. A window is hit when at least one flag of a scored row falls
inside it; an alarm that starts outside every window is a false-alarm onset (an alarm is a run
of flagged rows, so a long alarm counts once). Because one endless alarm is a single onset, the
share of the rows outside every window that are flagged is counted too (the outcome's
tp/fp/fn/tn are rows inside/outside the windows). Two naive baselines run beside the detector:
all-anomaly (every scored row flagged: one alarm) and the per-sensor z-score of
prognos.models.skab.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from prognos.edge.features import FloatArray
from prognos.errors import ConfigError
from prognos.models.csv_io import read_table
from prognos.models.onboarding import Detector, combine, fit, flags, score_parts
from prognos.models.selection import (
    UNIVARIATE_GRID,
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
from prognos.models.skab import zscore_flags

PROBATION_SHARE = 0.15
WINDOWS_FILE = "windows.json"
TIMESTAMP_COLUMN = "timestamp"
VALUE_COLUMN = "value"


@dataclass(frozen=True)
class Series:
    name: str  # the CSV file name
    seconds: FloatArray
    values: FloatArray
    windows: tuple[tuple[float, float], ...]  # POSIX seconds, both ends inside

    @property
    def probation_rows(self) -> int:
        return math.floor(PROBATION_SHARE * self.values.size)


@dataclass(frozen=True)
class FileResult:
    name: str
    rows: int
    probation_rows: int
    detector: Outcome
    all_anomaly: Outcome
    zscore: Outcome
    baseline: str  # how the calibration described normal, in words


@dataclass(frozen=True)
class NabResult:
    files: tuple[FileResult, ...]


def default_nab_dir() -> Path:
    """../shared/data/nab beside the project root (found from this package's location)."""
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "nab"


def load_series(data_dir: Path) -> list[Series]:
    """Every series of `data_dir`/windows.json with its CSV beside it, in name order."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ConfigError(f"{data_dir}: no NAB data directory there; pass --data DIR")
    labels = data_dir / WINDOWS_FILE
    try:
        windows = json.loads(labels.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{data_dir}: no {WINDOWS_FILE} with the labelled windows") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{labels}: not a readable windows file ({exc})") from exc
    if not isinstance(windows, dict):
        raise ConfigError(f"{labels}: expected an object of file -> windows")
    series = []
    for key in sorted(windows, key=lambda k: Path(k).name):
        path = data_dir / Path(key).name
        if not path.is_file():
            continue
        table = read_table(path, timestamp_column=TIMESTAMP_COLUMN, columns=[VALUE_COLUMN])
        try:
            spans = tuple((_seconds(a), _seconds(b)) for a, b in windows[key])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{labels}: the windows of {key!r} are not pairs of date-times") from exc
        series.append(Series(path.name, table.seconds, table.column(VALUE_COLUMN), spans))
    if not series:
        raise ConfigError(f"{data_dir}: none of the files {WINDOWS_FILE} names is there")
    return series


def _seconds(text: object) -> float:
    moment = datetime.fromisoformat(str(text))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def judge(series: Series, scored_flags: npt.NDArray[np.integer]) -> Outcome:
    """Windows hit and false-alarm onsets of flags on the scored rows (after probation)."""
    return Outcome.of(judge_many(series, np.asarray(scored_flags)[None, :])[0])


def judge_many(series: Series, scored_flags: npt.NDArray[np.integer]) -> IntArray:
    """`judge` for one row of flags per candidate: one outcome row (selection.FIELDS) each."""
    seconds = series.seconds[series.probation_rows :]
    flagged = np.asarray(scored_flags) == 1
    windows = np.array([(seconds >= low) & (seconds <= high) for low, high in series.windows])
    inside = windows.any(axis=0)
    hits = ((flagged.astype(np.int64) @ windows.T.astype(np.int64)) > 0).sum(axis=1)
    starts = flagged & ~np.concatenate([np.zeros((flagged.shape[0], 1), dtype=bool), flagged[:, :-1]], axis=1)
    false_onsets = (starts & ~inside).sum(axis=1)
    tp = (flagged & inside).sum(axis=1)
    fp = (flagged & ~inside).sum(axis=1)
    fn = int(inside.sum()) - tp
    tn = int((~inside).sum()) - fp
    count = np.full(flagged.shape[0], len(series.windows), dtype=np.int64)
    return np.column_stack([tp, fp, fn, tn, count, hits, false_onsets])


def protocol_parts(series: Series, settings: Settings) -> tuple[dict[str, FloatArray], Detector]:
    """Calibrate on the probationary rows; each scorer's scores of the rows after them."""
    start = series.probation_rows
    matrix = series.values[:, None]
    try:
        detector = fit(matrix[:start], [VALUE_COLUMN], seconds=series.seconds[:start], settings=settings)
    except ConfigError as exc:
        raise ConfigError(f"{series.name}: {exc}") from exc
    lead = min(settings.window_rows - 1, start)
    parts = score_parts(detector, matrix[start - lead :], series.seconds[start - lead :])
    return {name: scores[lead:] for name, scores in parts.items()}, detector


def evaluate_series(series: Series, settings: Settings = DEFAULTS) -> FileResult:
    parts, detector = protocol_parts(series, settings)
    start = series.probation_rows
    scored = series.values.size - start
    matrix = series.values[:, None]
    return FileResult(
        name=series.name,
        rows=series.values.size,
        probation_rows=start,
        detector=judge(series, flags(detector, combine(parts))),
        all_anomaly=judge(series, np.ones(scored, dtype=np.int8)),
        zscore=judge(series, zscore_flags(matrix[:start], matrix[start:])),
        baseline=detector.baselines[0].describe() if detector.baselines else "-",
    )


def run_nab(data_dir: Path, settings: Settings = DEFAULTS) -> NabResult:
    return NabResult(tuple(evaluate_series(s, settings) for s in load_series(data_dir)))


def nab_cases(data_dir: Path) -> list[Case]:
    """Every series as a selection case (prognos.models.selection)."""
    return [_case(s) for s in load_series(data_dir)]


def _case(series: Series) -> Case:
    def scores(settings: Settings) -> dict[str, FloatArray]:
        return protocol_parts(series, settings)[0]

    def judge_flags(predicted: npt.NDArray[np.int8]) -> IntArray:
        return judge_many(series, predicted)

    return Case(name=series.name, benchmark="nab", scores=scores, judge=judge_flags)


@dataclass(frozen=True)
class NabEvaluation:
    """Everything `prognos models eval-nab` reports."""

    shipped: NabResult  # the defaults of `prognos models fit` (chosen on SKAB, never on NAB)
    table: Table
    report: Report  # settings chosen on the other NAB files


@functools.lru_cache(maxsize=4)
def nab_table(data_dir: Path, grid: Grid = UNIVARIATE_GRID) -> Table:
    return evaluate(nab_cases(data_dir), grid)


def evaluate_nab(data_dir: Path, grid: Grid = UNIVARIATE_GRID) -> NabEvaluation:
    data_dir = Path(data_dir).resolve()
    table = nab_table(data_dir, grid)
    return NabEvaluation(shipped=run_nab(data_dir), table=table, report=report(table))
