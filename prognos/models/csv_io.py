"""Files of the onboarding detector: CSV tables in (validated, with errors that name the file,
line and column), score CSVs out, and the model directory (model.json plus a MODEL.md card).

Every problem with the input is a ConfigError with one readable line; nothing here prints.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from prognos import __version__
from prognos.edge.features import FloatArray
from prognos.errors import ConfigError
from prognos.models.onboarding import Detector, from_dict, to_dict

SEPARATORS = {"auto": "", ",": ",", ";": ";", "tab": "\t"}
MODEL_FILE = "model.json"
CARD_FILE = "MODEL.md"
SCORE_HEADER = ("timestamp", "score", "flag")


@dataclass(frozen=True)
class Table:
    """Rows of a CSV file in time order: the timestamps as written, and numeric columns."""

    path: Path
    timestamp_column: str
    timestamps: tuple[str, ...]
    columns: tuple[str, ...]
    values: FloatArray  # shape (rows, columns)
    seconds: FloatArray  # POSIX times of the rows (a timestamp without a zone is read as UTC)

    def column(self, name: str) -> FloatArray:
        return self.values[:, self.columns.index(name)]


@dataclass(frozen=True)
class SavedModel:
    detector: Detector
    timestamp_column: str
    metadata: dict[str, Any]


def detect_separator(header: str) -> str:
    """`;`, tab or `,`: whichever the header line holds most of (`,` when it holds none)."""
    counts = {sep: header.count(sep) for sep in (";", "\t", ",")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] > 0 else ","


def read_table(
    path: Path,
    *,
    timestamp_column: str | None = None,
    columns: Sequence[str] | None = None,
    separator: str = "auto",
) -> Table:
    """Read `path`: a header line, then one row per line. `timestamp_column` (default: the first
    column) must hold ISO 8601 date-times in time order; `columns` (default: every other column)
    must hold numbers."""
    path = Path(path)
    if separator not in SEPARATORS:
        raise ConfigError(f"separator {separator!r} is not one of {', '.join(SEPARATORS)}")
    header, rows, line_numbers = _read_rows(path, SEPARATORS[separator])
    where = {name: i for i, name in enumerate(header)}
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise ConfigError(f"{path}: column {duplicates[0]!r} appears more than once in the header")
    time_name = header[0] if timestamp_column is None else timestamp_column
    if time_name not in where:
        raise ConfigError(
            f"{path}: no timestamp column {time_name!r} in the header (columns: {_listing(header)})"
        )
    names = [name for name in header if name != time_name] if columns is None else list(columns)
    missing = [name for name in names if name not in where]
    if missing:
        raise ConfigError(
            f"{path}: no column {', '.join(map(repr, missing))} in the header (columns: {_listing(header)})"
        )
    if time_name in names:
        raise ConfigError(f"{path}: {time_name!r} is the timestamp column and cannot be a sensor column")
    if not names:
        raise ConfigError(f"{path}: no numeric column besides the timestamp column {time_name!r}")
    if not rows:
        raise ConfigError(f"{path}: no data rows after the header")

    stamps = [row[where[time_name]] for row in rows]
    seconds = _check_times(path, time_name, stamps, line_numbers)
    values = np.empty((len(rows), len(names)))
    for j, name in enumerate(names):
        values[:, j] = _numbers(path, name, [row[where[name]] for row in rows], line_numbers)
    return Table(path, time_name, tuple(stamps), tuple(names), values, seconds)


def _read_rows(path: Path, separator: str) -> tuple[list[str], list[list[str]], list[int]]:
    if not path.exists():
        raise ConfigError(f"{path}: no such file")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a CSV file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            first = file.readline()
            if not first.strip():
                raise ConfigError(f"{path}: empty, expected a header line")
            file.seek(0)
            reader = csv.reader(file, delimiter=separator or detect_separator(first))
            header = [name.strip() for name in next(reader)]
            rows: list[list[str]] = []
            line_numbers: list[int] = []
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != len(header):
                    raise ConfigError(
                        f"{path} line {reader.line_num}: {len(row)} fields, the header has {len(header)}"
                    )
                rows.append(row)
                line_numbers.append(reader.line_num)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file") from exc
    except csv.Error as exc:
        raise ConfigError(f"{path}: not a readable CSV file ({exc})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    return header, rows, line_numbers


def _listing(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _check_times(path: Path, name: str, stamps: Sequence[str], line_numbers: Sequence[int]) -> FloatArray:
    previous = -math.inf
    seconds = np.empty(len(stamps))
    for i, (text, line) in enumerate(zip(stamps, line_numbers, strict=True)):
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ConfigError(
                f"{path} line {line}: {text!r} in column {name!r} is not an ISO 8601 date and time"
            ) from None
        moment_s = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
        if moment_s < previous:
            raise ConfigError(
                f"{path} line {line}: timestamp {text!r} is earlier than the row before; "
                "rows must be in time order"
            )
        previous = seconds[i] = moment_s
    return seconds


def _numbers(path: Path, name: str, texts: Sequence[str], line_numbers: Sequence[int]) -> FloatArray:
    try:
        numbers = np.array(texts, dtype=np.float64)
    except ValueError:
        numbers = np.array([_float_or_nan(text) for text in texts])
    bad = np.flatnonzero(~np.isfinite(numbers))
    if bad.size:
        first = int(bad[0])
        raise ConfigError(
            f"{path} line {line_numbers[first]}: column {name!r} holds {texts[first]!r}, not a number"
        )
    return numbers


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def write_scores(
    path: Path, timestamps: Sequence[str], scores: FloatArray, flags: npt.NDArray[np.int8]
) -> None:
    """One row per input row: timestamp, score (empty while the first window fills), flag."""
    rows = (
        (stamp, "" if math.isnan(value) else f"{value:.4f}", int(flag))
        for stamp, value, flag in zip(timestamps, scores.tolist(), flags.tolist(), strict=True)
    )
    _write_lines(Path(path), SCORE_HEADER, rows)


def _write_lines(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    try:
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write ({exc.strerror})") from exc


def save_model(directory: Path, detector: Detector, *, source: Table) -> None:
    """Write `directory`/model.json (the parameters) and `directory`/MODEL.md (the card)."""
    directory = Path(directory)
    data = {
        **to_dict(detector),
        "timestamp_column": source.timestamp_column,
        "calibration": {
            "file": source.path.name,
            "first": source.timestamps[0],
            "last": source.timestamps[-1],
        },
        "prognos_version": __version__,
    }
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MODEL_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        (directory / CARD_FILE).write_text(model_card(detector, source), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{directory}: cannot write the model ({exc.strerror})") from exc


def load_model(directory: Path) -> SavedModel:
    """The model `save_model` wrote into `directory`."""
    directory = Path(directory)
    path = directory / MODEL_FILE
    if not directory.is_dir():
        raise ConfigError(f"{directory}: no such model directory")
    if not path.is_file():
        raise ConfigError(
            f"{directory}: not a model directory (no {MODEL_FILE}); make one with `prognos models fit`"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a model file (not valid JSON: {exc})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        detector = from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    timestamp_column = data.get("timestamp_column")
    if not isinstance(timestamp_column, str):
        raise ConfigError(f"{path}: the model names no timestamp column")
    return SavedModel(detector, timestamp_column, data)


SCORER_WORDS = {
    "sensor": "per sensor, how far its residual (raw, and the trailing mean) is from its normal "
    "range; the sensor that moved most decides",
    "cusum": "per sensor, a two-sided CUSUM of the residual, which adds up small persistent shifts",
    "pca": "Hotelling's T-squared and the Q residual of a principal-component model of the "
    "trailing means: a broken correlation between sensors counts even inside each sensor's range",
    "mset": "the error of a similarity model that estimates each row from remembered calibration rows",
    "autoencoder": "the reconstruction error of a small network trained on the calibration rows",
}


def model_card(detector: Detector, source: Table) -> str:
    """A short human-readable account of a calibrated detector."""
    s = detector.settings
    w = s.window_rows
    lines = [
        "# Onboarding detector",
        "",
        f"Calibrated with `prognos models fit` (Prognos {__version__}) on {detector.calibration_rows} "
        f"rows of normal operation from `{source.path.name}`, "
        f"{source.timestamps[0]} to {source.timestamps[-1]}.",
        "",
        "## What it does",
        "",
        "For each sensor below it learned what normal looks like: a fixed level, or a daily or "
        "weekly cycle found in the calibration rows, with a reference that follows slow drift where "
        "the level wandered. The residual is the value minus that normal. Residuals are smoothed "
        f"by the mean of the last {w} rows (that row and the {w - 1} before it, never a later one), "
        "and scored by:",
        "",
        *(f"- **{name}**: {SCORER_WORDS[name]}." for name in detector.scorers),
        "",
        "| sensor | normal | variance ratio of the level |",
        "| --- | --- | --- |",
        *(
            f"| {name} | {baseline.describe()} | {baseline.variance_ratio:.1f} |"
            for name, baseline in zip(detector.columns, detector.baselines, strict=True)
        ),
        "",
    ]
    if detector.excluded:
        lines += [
            "Left out:",
            "",
            *(f"- {name}: {why}" for name, why in detector.excluded.items()),
            "",
        ]
    lines += [
        "## Calibration",
        "",
        f"Each scorer's unit is the {100 * (1 - s.false_alarm_rate):g}th percentile of its scores on "
        f"the calibration rows. A row is flagged when a score is above **{s.margin:g}** units, and the "
        f"alarm holds until the score falls to {s.release * s.margin:g} units. "
        f"{100 * detector.calibration_alarm_rate:.2f}% of the calibration rows are flagged.",
        "",
        *(f"Note: {note}." for note in detector.notes),
        "## Limits",
        "",
        "- A level shift (after maintenance, say) in a sensor followed for drift is flagged for a "
        f"while and then becomes its new normal (time constant {s.drift_rows} rows); a steady "
        "sensor's level is fixed: calibrate again after maintenance that moves it.",
        "- A cycle is only learned if the calibration rows hold at least three of it.",
        f"- Rows are scored in file order; the first {w - 1} rows of a scored file have no score and "
        "are not flagged.",
        "",
        "Score a CSV: `prognos models score --model DIR --input CSV --out CSV`.",
        "",
    ]
    return "\n".join(lines)
