"""How far the parts plan's forecast can be trusted: each plan's weekly forecast is kept, and when
its weeks have passed it is held against the part units the work orders actually used, with
bias, RMSSE and interval coverage per service center and part family; the same on history by
replaying the plan's forecaster at earlier origins (backtest_plan). Pure: DataFrames in,
DataFrames out (docs/forecast.md, "Accuracy").

- kept: one row per plan, service center, part and lead (weeks ahead): KEPT_COLUMNS. The plan of
  an ISO week is the last one made in it (`origin_ms`: that week's Monday).
- uses: prognos.cloud.parts.history.part_uses (vin, service_center, part, time in epoch ms).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from prognos.cloud.parts.history import week_start_ms
from prognos.cloud.parts.plan import FAILURE_COLUMNS, plan_parts
from prognos.cloud.parts.tables import format_period, period_ordinals

WEEK_MS = 7 * 86_400_000
TRACK_WEEKS = 26  # the kept plans the analytics job compares: those of the last half year
REFRESH_WEEKS = 8  # a week's actual is written again while it is this recent (late DMS imports)
KEPT_COLUMNS = (
    "origin_ms",
    "service_center",
    "part",
    "lead",
    "name",
    "made_ms",
    "window_start_ms",
    "window_end_ms",
    "forecast",
    "low",
    "high",
    "scale",
)
ACCURACY_COLUMNS = (
    "service_center",
    "family",
    "pairs",
    "weeks",
    "forecast_units",
    "actual_units",
    "bias",
    "rmsse",
    "coverage",
)
ALL = "all"  # the service_center and family of the row over every center and part


def family(part: str) -> str:
    """A part's family: its number without the trailing number (`PG-BRK-3100` -> `PG-BRK`,
    `WIPER-600` -> `WIPER`); a number without one is its own family."""
    stem = re.sub(r"[-_ ./]*\d+$", "", str(part).strip())
    return stem or str(part).strip()


def naive_scale(weekly: np.ndarray) -> float:
    """RMSSE's scale: the mean squared week-to-week change of a pair's weekly units (NaN before
    its first week), NaN with fewer than two weeks."""
    values = np.asarray(weekly, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return math.nan
    return float(np.mean(np.diff(values) ** 2))


def weekly_matrix(history: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """Per pair of a weekly history (HISTORY_COLUMNS, ISO weeks or dates), its units from its first
    week to the history's last (weeks without a row are zero)."""
    if history.empty:
        return {}
    weeks = sorted(set(history["week"].astype(str)))
    found = period_ordinals(weeks)
    if found is None:
        return {}
    kind, ordinals = found
    step = 7 if kind in ("week", "date") else 1
    position = {w: (o - ordinals[0]) // step for w, o in zip(weeks, ordinals, strict=True)}
    periods = max(position.values()) + 1
    out: dict[tuple[str, str], np.ndarray] = {}
    for (center, part), group in history.groupby(["service_center", "part"], sort=False):
        series = np.zeros(periods)
        rows = np.array([position[str(w)] for w in group["week"]])
        np.add.at(series, rows, group["units"].to_numpy(float))
        series[: rows.min()] = np.nan
        out[(str(center), str(part))] = series
    return out


def kept_forecast(weekly: pd.DataFrame, history: pd.DataFrame, made_ms: int) -> pd.DataFrame:
    """KEPT_COLUMNS from a plan's weekly forecast (service_center, part, name, week_index,
    forecast, low, high; week k covering [made + 7(k-1) days, made + 7k days)) and the weekly
    history it was made on (each pair's RMSSE scale)."""
    if weekly.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in KEPT_COLUMNS})
    scales = {key: naive_scale(series) for key, series in weekly_matrix(history).items()}
    lead = weekly["week_index"].astype(int)
    start = made_ms + (lead - 1) * WEEK_MS
    return pd.DataFrame(
        {
            "origin_ms": week_start_ms(made_ms),
            "service_center": weekly["service_center"].astype(str),
            "part": weekly["part"].astype(str),
            "lead": lead,
            "name": weekly["name"].astype(str) if "name" in weekly.columns else weekly["part"].astype(str),
            "made_ms": made_ms,
            "window_start_ms": start,
            "window_end_ms": start + WEEK_MS,
            "forecast": weekly["forecast"].astype(float),
            "low": weekly["low"],
            "high": weekly["high"],
            "scale": [
                scales.get((str(c), str(p)), math.nan)
                for c, p in zip(weekly["service_center"], weekly["part"], strict=True)
            ],
        }
    )[list(KEPT_COLUMNS)].reset_index(drop=True)


def with_actuals(kept: pd.DataFrame, uses: pd.DataFrame, *, now_ms: int, since_ms: int) -> pd.DataFrame:
    """The kept rows whose week ended by `now_ms` and began at or after `since_ms` (the start of
    the uses known), with `actual`: the part units the work orders used at the pair in the week."""
    if kept.empty:
        return kept.assign(actual=pd.Series(dtype=float))
    ended = kept[
        (pd.to_numeric(kept["window_end_ms"]) <= now_ms)
        & (pd.to_numeric(kept["window_start_ms"]) >= since_ms)
    ].reset_index(drop=True)
    times: dict[tuple[str, str], np.ndarray] = {
        (str(c), str(p)): np.sort(group["time"].to_numpy(float))
        for (c, p), group in uses.groupby(["service_center", "part"], sort=False)
    }
    actual = []
    for center, part, start, end in zip(
        ended["service_center"], ended["part"], ended["window_start_ms"], ended["window_end_ms"], strict=True
    ):
        stamps = times.get((str(center), str(part)), np.empty(0))
        actual.append(
            float(
                np.searchsorted(stamps, float(end), side="left")
                - np.searchsorted(stamps, float(start), "left")
            )
        )
    return ended.assign(actual=actual)


def accuracy_table(compared: pd.DataFrame) -> pd.DataFrame:
    """ACCURACY_COLUMNS per service center and part family, and over everything (`all`, `all`):
    - weeks: pair-weeks compared; forecast_units, actual_units: their sums;
    - bias: (forecast - actual) / actual, summed over the weeks (positive: the plan expected more
      than was used); NaN when nothing was used;
    - rmsse: the mean over the pairs of sqrt(mean((actual - forecast)^2) / scale), pairs with a
      scale above zero;
    - coverage: the share of weeks whose actual fell within the 90 % interval [low, high]."""
    if compared.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ACCURACY_COLUMNS})
    frame = compared.assign(
        family=[family(p) for p in compared["part"]],
        error2=(compared["actual"] - compared["forecast"]) ** 2,
        inside=(compared["actual"] >= compared["low"]) & (compared["actual"] <= compared["high"]),
    )
    pairs = frame.groupby(["service_center", "family", "part"], as_index=False).agg(
        error2=("error2", "mean"), scale=("scale", "last")
    )
    scaled = pairs["scale"] > 0
    pairs["rmsse"] = np.where(scaled, np.sqrt(pairs["error2"] / pairs["scale"].where(scaled, 1.0)), np.nan)
    rows = []
    for (center, fam), group in [
        *frame.groupby(["service_center", "family"], sort=True),
        ((ALL, ALL), frame),
    ]:
        in_pairs = (
            pairs if center == ALL else pairs[(pairs["service_center"] == center) & (pairs["family"] == fam)]
        )
        forecast, actual = float(group["forecast"].sum()), float(group["actual"].sum())
        rows.append(
            (
                center,
                fam,
                int(group[["service_center", "part"]].drop_duplicates().shape[0]),
                len(group),
                round(forecast, 2),
                round(actual, 2),
                round((forecast - actual) / actual, 4) if actual > 0 else math.nan,
                round(float(np.nanmean(in_pairs["rmsse"])), 4)
                if in_pairs["rmsse"].notna().any()
                else math.nan,
                round(float(group["inside"].mean()), 4),
            )
        )
    return pd.DataFrame(rows, columns=list(ACCURACY_COLUMNS))


def backtest_plan(history: pd.DataFrame, *, origins: int = 12, horizon_weeks: int = 8) -> pd.DataFrame:
    """The plan's baseline forecast replayed on a weekly history (HISTORY_COLUMNS): at each of the
    last `origins` weeks that leave a whole horizon after them, plan_parts on the weeks before
    it, each forecast week held against what was used. KEPT_COLUMNS with `actual`, `origin_ms`
    and the windows in week numbers from the history's first week (no clock involved)."""
    matrix = weekly_matrix(history)
    if not matrix:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in (*KEPT_COLUMNS, "actual")})
    weeks = sorted(set(history["week"].astype(str)))
    periods = len(next(iter(matrix.values())))
    labels = _labels(weeks, periods)
    last_origin = periods - horizon_weeks
    first_origin = max(2, last_origin - origins + 1)
    frames = []
    for origin in range(first_origin, last_origin + 1):
        train = history[history["week"].astype(str).isin(labels[:origin])]
        if train.empty:
            continue
        plan = plan_parts(
            pd.DataFrame(columns=list(FAILURE_COLUMNS)), train, None, horizon_weeks=horizon_weeks
        )
        weekly = plan.weekly
        index = {label: i for i, label in enumerate(labels)}
        rows = []
        for center, part, week, forecast, low, high in zip(
            weekly["service_center"],
            weekly["part"],
            weekly["week"],
            weekly["forecast"],
            weekly["lower"],
            weekly["upper"],
            strict=True,
        ):
            series = matrix.get((str(center), str(part)))
            at = index.get(str(week))
            if series is None or at is None or not np.isfinite(series[at]):
                continue
            rows.append(
                (
                    origin,
                    str(center),
                    str(part),
                    at - origin + 1,
                    str(part),
                    origin,
                    at,
                    at + 1,
                    float(forecast),
                    low,
                    high,
                    naive_scale(series[:origin]),
                    float(series[at]),
                )
            )
        frames.append(pd.DataFrame(rows, columns=[*KEPT_COLUMNS, "actual"]))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in (*KEPT_COLUMNS, "actual")})
    return pd.concat(frames, ignore_index=True)


def _labels(weeks: list[str], periods: int) -> list[str]:
    """The labels of `periods` consecutive weeks from the first of `weeks`, gaps filled."""
    found = period_ordinals(weeks)
    if found is None:
        return weeks[:periods]
    kind, ordinals = found
    step = 7 if kind in ("week", "date") else 1
    return [format_period(kind, ordinals[0] + step * i) for i in range(periods)]
