"""Demand tables: wide CSV tables of demand per period and series, parsed with their period
labels, and forecasts written back in the same shape (docs/forecast.md). Pure: text in, text out."""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from prognos.cloud.parts.forecast import (
    DEFAULT_LEVEL,
    MIN_PERIODS,
    Fit,
    FloatArray,
    fit_forecaster,
    forecast_intervals,
    forecast_point,
)
from prognos.errors import ConfigError


def parse_csv(text: str, *, source: str = "table") -> pd.DataFrame:
    """A CSV table from its text, every cell kept as text (empty cells as ""); ConfigError
    when it is empty or not a table."""
    if not text.strip():
        raise ConfigError(f"{source} is empty")
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise ConfigError(f"{source} is empty") from exc
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise ConfigError(f"{source} is not a CSV table: {detail}") from exc


def format_csv(frame: pd.DataFrame) -> str:
    """The CSV text of a table: no index, floats to 6 significant digits, unknowns empty."""
    text: str = frame.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    return text


@dataclass(frozen=True)
class DemandTable:
    """A wide demand table: one row per period, a label column, one column per series."""

    label_name: str
    labels: tuple[str, ...]
    names: tuple[str, ...]
    values: FloatArray  # (periods, series), NaN where empty


def demand_table(frame: pd.DataFrame, *, source: str = "history") -> DemandTable:
    """Validate a wide table read with every cell as text (empty cells are unknown periods).
    Raises ConfigError naming the first problem."""
    columns = [str(c) for c in frame.columns]
    if len(columns) < 2:
        raise ConfigError(
            f"{source}: needs a period column and at least one numeric series column; found {columns}"
        )
    if len(frame) < MIN_PERIODS:
        raise ConfigError(f"{source}: has {len(frame)} periods; a forecast needs at least {MIN_PERIODS}")
    text = frame.astype(str).to_numpy()
    labels = tuple(s.strip() for s in text[:, 0])
    cells = np.char.strip(text[:, 1:].astype(str))
    empty = (cells == "") | (np.char.lower(cells) == "nan") | (np.char.upper(cells) == "NA")
    values = np.full(cells.shape, np.nan)
    numbers = pd.to_numeric(pd.Series(np.where(empty, "nan", cells).ravel()), errors="coerce").to_numpy(float)
    bad = np.isnan(numbers).reshape(cells.shape) & ~empty
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ConfigError(
            f"{source}: row {row + 2}, column {columns[col + 1]!r}: {str(cells[row, col])!r} is not a number"
        )
    values = numbers.reshape(cells.shape)
    if (~np.isfinite(values) & ~np.isnan(values)).any():
        raise ConfigError(f"{source}: holds an infinite value")
    if (values < 0).any():
        row, col = (int(i) for i in np.argwhere(values < 0)[0])
        raise ConfigError(
            f"{source}: row {row + 2}, column {columns[col + 1]!r}: demand {values[row, col]:g} is negative"
        )
    return DemandTable(columns[0], labels, tuple(columns[1:]), values)


@dataclass(frozen=True)
class DemandForecast:
    point: pd.DataFrame  # label column, one column per series
    intervals: pd.DataFrame  # label column, then NAME_lower, NAME_upper per series
    fit: Fit


def forecast_table(table: DemandTable, horizon: int, *, level: float = DEFAULT_LEVEL) -> DemandForecast:
    """The forecaster on a demand table: point forecasts and intervals as tables whose period
    labels continue the history's (continue_labels)."""
    if horizon <= 0:
        raise ConfigError(f"the horizon must be a positive number of periods, not {horizon}")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"the interval level must be between 0 and 1, not {level}")
    fit = fit_forecaster(table.values, horizon)
    point = forecast_point(table.values, fit.params, horizon)
    lower, upper = forecast_intervals(table.values, fit.params, horizon, level=level)
    labels = continue_labels(table.labels, horizon)
    point_frame = pd.DataFrame(point, columns=list(table.names))
    point_frame.insert(0, table.label_name, labels)
    bounds: dict[str, object] = {table.label_name: labels}
    for j, name in enumerate(table.names):
        bounds[f"{name}_lower"] = lower[:, j]
        bounds[f"{name}_upper"] = upper[:, j]
    return DemandForecast(point_frame, pd.DataFrame(bounds), fit)


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_ISO_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_INTEGER = re.compile(r"^-?\d+$")


def continue_labels(labels: Sequence[str], count: int) -> list[str]:
    """The `count` labels after `labels` when they are consecutive periods of one kind: months
    (YYYY-MM), ISO weeks (YYYY-Www), dates a week apart or first days of consecutive months
    (YYYY-MM-DD), or consecutive whole numbers; otherwise "1" ... "count"."""
    ordinals = period_ordinals(labels)
    if ordinals is not None and len(labels) >= 2:
        kind, values = ordinals
        step = PERIOD_STEPS[kind]
        if all(b - a == step for a, b in itertools.pairwise(values)):
            return [format_period(kind, values[-1] + step * (i + 1)) for i in range(count)]
    return [str(i + 1) for i in range(count)]


# One period in the units of period_ordinals: a month, a week in days, a whole number.
PERIOD_STEPS = {"month": 1, "month-date": 1, "week": 7, "date": 7, "integer": 1}


def period_ordinals(labels: Sequence[str]) -> tuple[str, list[int]] | None:
    """("month", months since year 0) for YYYY-MM labels, ("week", days since 0001-01-01 of each
    week's Monday) for YYYY-Www, ("date", day ordinals) for YYYY-MM-DD, ("integer", the numbers);
    None when the labels are not all of one of these kinds."""
    texts = [str(label).strip() for label in labels]
    if not texts:
        return None
    try:
        if all(_MONTH.match(t) for t in texts):
            months = [int(t[:4]) * 12 + int(t[5:7]) - 1 for t in texts]
            if all(1 <= int(t[5:7]) <= 12 for t in texts):
                return "month", months
        if all(_ISO_WEEK.match(t) for t in texts):
            return "week", [date.fromisocalendar(int(t[:4]), int(t[6:8]), 1).toordinal() for t in texts]
        if all(_DATE.match(t) for t in texts):
            days = [date.fromisoformat(t).toordinal() for t in texts]
            if len(days) >= 2 and all(_months_apart(a, b) for a, b in itertools.pairwise(days)):
                return "month-date", [_month_index(d) for d in days]
            return "date", days
        if all(_INTEGER.match(t) for t in texts):
            return "integer", [int(t) for t in texts]
    except ValueError:
        return None
    return None


def format_period(kind: str, value: int) -> str:
    if kind == "month":
        return f"{value // 12:04d}-{value % 12 + 1:02d}"
    if kind == "week":
        year, week, _ = date.fromordinal(value).isocalendar()
        return f"{year:04d}-W{week:02d}"
    if kind == "date":
        return date.fromordinal(value).isoformat()
    if kind == "month-date":
        return date(value // 12, value % 12 + 1, 1).isoformat()
    return str(value)


def _month_index(day: int) -> int:
    d = date.fromordinal(day)
    return d.year * 12 + d.month - 1


def _months_apart(a: int, b: int) -> bool:
    first, second = date.fromordinal(a), date.fromordinal(b)
    return first.day == 1 and second.day == 1 and _month_index(b) - _month_index(a) == 1
