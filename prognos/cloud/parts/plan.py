"""Parts planning: the demand per service center, part and week from predicted failures plus the
demand history's baseline, with intervals, and a reorder recommendation per service center and
part. Pure: DataFrames in, DataFrames out (docs/forecast.md gives the formulas).

Weeks: week 1 starts now (the week after the last history week when there is a history), and
every predicted failure's days count from the start of week 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
import pandas as pd

from prognos.cloud.parts.forecast import (
    DEFAULT_LEVEL,
    FloatArray,
    count_pmf,
    fit_forecaster,
    pmf_quantile,
    predictive_moments,
)
from prognos.cloud.parts.tables import format_period, period_ordinals
from prognos.errors import ConfigError

DAYS_INTERVAL = 0.8  # days_low and days_high bound an 80% interval (prognos.record.Fault)
DEFAULT_LOG_SIGMA = 0.5  # spread of a failure without an interval: its 80% interval is x/÷ 1.9
MIN_LOW_FRACTION = 0.05  # a days_low at or below zero counts as this fraction of the days
DEFAULT_SERVICE_LEVEL = 0.95
DEFAULT_REVIEW_WEEKS = 1.0
DEFAULT_LEAD_TIME_WEEKS = 2.0


@dataclass(frozen=True)
class PartSpec:
    part: str  # part number
    name: str
    units_per_failure: int


# The part each fault code of the gateway's rules (prognos/edge/rules.py) needs. The one place this
# mapping lives; docs/forecast.md lists it.
FAULT_PARTS: dict[str, PartSpec] = {
    "battery.module_temperature_drift": PartSpec("PG-BAT-1100", "battery module temperature sensor", 1),
    "tires.pressure_loss": PartSpec("PG-TYR-2100", "tire, with valve and TPMS sensor", 1),
    "brakes.pad_wear": PartSpec("PG-BRK-3100", "brake pad set, one axle", 1),
    "bearings.wheel_bearing_wear": PartSpec("PG-WBR-4100", "wheel bearing hub unit", 1),
    "motor.noise": PartSpec("PG-MOT-5100", "drive motor bearing kit", 1),
}

FAILURE_COLUMNS = ("vin", "service_center", "part", "days_to_failure", "days_low", "days_high")
HISTORY_COLUMNS = ("week", "service_center", "part", "units")
STOCK_COLUMNS = ("service_center", "part", "on_hand", "lead_time_weeks")
WEEKLY_COLUMNS = (
    "service_center",
    "part",
    "week",
    "baseline",
    "from_failures",
    "forecast",
    "lower",
    "upper",
)
REORDER_COLUMNS = (
    "service_center",
    "part",
    "on_hand",
    "on_order",
    "lead_time_weeks",
    "review_weeks",
    "baseline_per_week",
    "failures_due",
    "from_failures",
    "protection_demand",
    "protection_low",
    "protection_high",
    "safety_stock",
    "reorder_point",
    "order_qty",
)


def part_for_fault(code: str) -> PartSpec:
    try:
        return FAULT_PARTS[code]
    except KeyError:
        known = ", ".join(sorted(FAULT_PARTS))
        raise ConfigError(f"fault code {code!r} has no part in the table (known: {known})") from None


def failures_from_faults(faults: pd.DataFrame, vehicles: pd.DataFrame) -> pd.DataFrame:
    """Predicted failures from the `fault` points (vin, code, days_to_threshold, days_low,
    days_high) and the vehicle registry (vin, service_center): one row per fault with the
    part it needs (FAULT_PARTS) and its units. Faults without days_to_threshold predict no
    failure date and are left out; vehicles without a service center are left out."""
    joined = faults.merge(vehicles[["vin", "service_center"]], on="vin", how="inner")
    joined = joined[pd.to_numeric(joined["days_to_threshold"], errors="coerce").notna()]
    specs = [part_for_fault(str(code)) for code in joined["code"]]
    return pd.DataFrame(
        {
            "vin": joined["vin"].astype(str).to_numpy(),
            "service_center": joined["service_center"].astype(str).to_numpy(),
            "part": [s.part for s in specs],
            "days_to_failure": pd.to_numeric(joined["days_to_threshold"]).to_numpy(float),
            "days_low": _optional_numbers(joined, "days_low"),
            "days_high": _optional_numbers(joined, "days_high"),
            "units": [s.units_per_failure for s in specs],
        }
    )


def _optional_numbers(frame: pd.DataFrame, column: str) -> FloatArray:
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    values: FloatArray = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
    return values


# ---------------------------------------------------------------- failure timing


def failure_cdf(
    days: npt.ArrayLike,
    days_low: npt.ArrayLike,
    days_high: npt.ArrayLike,
    at_days: npt.ArrayLike,
    *,
    interval: float = DAYS_INTERVAL,
) -> FloatArray:
    """P(failure before each of `at_days`) per failure (rows: failures, columns: at_days).

    Days to failure are split log-normal: median `days`; below it the log spread that puts
    `days_low` at the (1 - interval) / 2 quantile, above it the one that puts `days_high` at
    the (1 + interval) / 2 quantile (the edge's calibrated interval is asymmetric in days).
    A missing bound uses DEFAULT_LOG_SIGMA; a days_low at or below zero counts as
    MIN_LOW_FRACTION of the days. A failure at or before day 0 is certain before any later day."""
    median = np.asarray(days, dtype=np.float64)[:, None]
    low = np.asarray(days_low, dtype=np.float64)[:, None]
    high = np.asarray(days_high, dtype=np.float64)[:, None]
    at = np.asarray(at_days, dtype=np.float64)[None, :]
    z = NormalDist().inv_cdf((1.0 + interval) / 2.0)
    positive = median > 0
    safe_median = np.where(positive, median, 1.0)
    low = np.where(np.isfinite(low), np.maximum(low, MIN_LOW_FRACTION * safe_median), np.nan)
    low = np.minimum(low, safe_median)
    high = np.where(np.isfinite(high), np.maximum(high, safe_median), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma_low = np.where(
            np.isfinite(low) & (low < safe_median), np.log(safe_median / low) / z, DEFAULT_LOG_SIGMA
        )
        sigma_high = np.where(
            np.isfinite(high) & (high > safe_median), np.log(high / safe_median) / z, DEFAULT_LOG_SIGMA
        )
        log_ratio = np.log(np.maximum(at, 1e-300) / safe_median)
    sigma = np.where(log_ratio < 0, sigma_low, sigma_high)
    cdf = _normal_cdf(log_ratio / sigma)
    cdf = np.where(at > 0, cdf, 0.0)
    return np.where(positive, cdf, np.where(at >= 0, 1.0, 0.0))


def _normal_cdf(x: FloatArray) -> FloatArray:
    erf = np.vectorize(math.erf, otypes=[np.float64])
    result: FloatArray = 0.5 * (1.0 + erf(x / math.sqrt(2.0)))
    return result


def week_probabilities(
    days: npt.ArrayLike, days_low: npt.ArrayLike, days_high: npt.ArrayLike, weeks: int
) -> FloatArray:
    """P(failure in week k) for k = 1..weeks per failure: week k holds days [7(k-1), 7k); a
    failure due already (days <= 0) falls in week 1. The rest of the probability falls after
    the last week."""
    ends = 7.0 * np.arange(1, weeks + 1, dtype=np.float64)
    cdf = failure_cdf(days, days_low, days_high, ends)
    probabilities: FloatArray = np.diff(cdf, axis=1, prepend=0.0)
    return probabilities


# ---------------------------------------------------------------- demand distributions


def bernoulli_sum_pmf(probabilities: Sequence[float], units: Sequence[int], base: FloatArray) -> FloatArray:
    """The distribution of base + sum_i units_i * B_i, B_i independent Bernoulli(p_i)."""
    pmf = np.asarray(base, dtype=np.float64)
    for p, u in zip(probabilities, units, strict=True):
        if p <= 0 or u <= 0:
            continue
        shifted = np.concatenate((np.zeros(u), pmf))
        pmf = np.concatenate((pmf, np.zeros(u))) * (1.0 - p) + shifted * min(p, 1.0)
    return pmf


@dataclass(frozen=True)
class _Pair:
    """One service center and part: its baseline moments per week and its predicted failures."""

    service_center: str
    part: str
    baseline_mean: float
    baseline_variance: float
    days: FloatArray
    days_low: FloatArray
    days_high: FloatArray
    units: npt.NDArray[np.int64]
    probability: FloatArray


def _pair(center: str, part: str, moments: tuple[float, float], group: pd.DataFrame | None) -> _Pair:
    if group is None:
        group = pd.DataFrame(
            {c: [] for c in ("days_to_failure", "days_low", "days_high", "units", "probability")}
        )
    return _Pair(
        center,
        part,
        moments[0],
        moments[1],
        group["days_to_failure"].to_numpy(np.float64),
        group["days_low"].to_numpy(np.float64),
        group["days_high"].to_numpy(np.float64),
        group["units"].to_numpy(np.int64),
        group["probability"].to_numpy(np.float64),
    )


def _demand_pmf(pair: _Pair, baseline_weeks: float, failure_probabilities: FloatArray) -> FloatArray:
    base = count_pmf(pair.baseline_mean * baseline_weeks, pair.baseline_variance * baseline_weeks)
    return bernoulli_sum_pmf(
        [float(p) for p in failure_probabilities * pair.probability], [int(u) for u in pair.units], base
    )


# ---------------------------------------------------------------- reorder policy


@dataclass(frozen=True)
class Reorder:
    protection_demand: float  # expected demand over lead time + review period
    safety_stock: float
    reorder_point: int
    order_qty: int


def reorder(
    pmf: npt.ArrayLike, on_hand: float, on_order: float = 0.0, *, service_level: float = DEFAULT_SERVICE_LEVEL
) -> Reorder:
    """Periodic review, order up to the reorder point: the reorder point is the service-level
    quantile of the demand over the protection interval (lead time + review period, whose
    distribution `pmf` is), the safety stock what it holds above that demand's mean, and the
    order what lifts the inventory position (on hand + on order) up to the reorder point."""
    probabilities = np.asarray(pmf, dtype=np.float64)
    mean = float(np.dot(np.arange(probabilities.size), probabilities))
    point = pmf_quantile(probabilities, service_level)
    position = on_hand + on_order
    quantity = max(0, math.ceil(point - position))
    return Reorder(mean, point - mean, point, quantity)


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class PartsPlan:
    weekly: pd.DataFrame  # WEEKLY_COLUMNS, one row per service center, part and week
    reorder: pd.DataFrame  # REORDER_COLUMNS, one row per service center and part
    week_labels: tuple[str, ...]


def plan_parts(
    failures: pd.DataFrame,
    history: pd.DataFrame | None = None,
    stock: pd.DataFrame | None = None,
    *,
    horizon_weeks: int,
    service_level: float = DEFAULT_SERVICE_LEVEL,
    review_weeks: float = DEFAULT_REVIEW_WEEKS,
    default_lead_time_weeks: float = DEFAULT_LEAD_TIME_WEEKS,
    level: float = DEFAULT_LEVEL,
) -> PartsPlan:
    """The weekly forecast with intervals and the reorder recommendation (module docstring).

    failures: FAILURE_COLUMNS, optional `units` (default 1) and `probability` (the chance the
    failure needs the part, default 1). history: HISTORY_COLUMNS, weekly units sold per service
    center and part (a pair counts from its first row on; weeks without a row are zero).
    stock: STOCK_COLUMNS, optional `on_order`; pairs without a row have nothing on hand and
    `default_lead_time_weeks`."""
    if horizon_weeks <= 0:
        raise ConfigError(f"the horizon must be a positive number of weeks, not {horizon_weeks}")
    if not 0.0 < service_level < 1.0:
        raise ConfigError(f"the service level must be between 0 and 1, not {service_level}")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"the interval level must be between 0 and 1, not {level}")
    if review_weeks < 0 or default_lead_time_weeks < 0:
        raise ConfigError("review and lead times must not be negative")
    failures = check_failures(failures)
    history = check_history(history if history is not None else pd.DataFrame(columns=HISTORY_COLUMNS))
    stock = check_stock(stock if stock is not None else pd.DataFrame(columns=STOCK_COLUMNS))

    labels, baselines = _baselines(history, horizon_weeks)
    keys = sorted(
        set(zip(failures["service_center"], failures["part"], strict=True))
        | set(baselines)
        | set(zip(stock["service_center"], stock["part"], strict=True))
    )
    by_pair = {key: group for key, group in failures.groupby(["service_center", "part"], sort=False)}
    stock_rows = {(r.service_center, r.part): r for r in stock.itertuples(index=False)}
    lo_q, hi_q = (1.0 - level) / 2.0, (1.0 + level) / 2.0

    weekly_rows: list[tuple[object, ...]] = []
    reorder_rows: list[tuple[object, ...]] = []
    for center, part in keys:
        pair = _pair(center, part, baselines.get((center, part), (0.0, 0.0)), by_pair.get((center, part)))
        mean = pair.baseline_mean
        weeks = week_probabilities(pair.days, pair.days_low, pair.days_high, horizon_weeks)
        for k in range(horizon_weeks):
            from_failures = float(np.sum(weeks[:, k] * pair.probability * pair.units))
            pmf = _demand_pmf(pair, 1.0, weeks[:, k])
            weekly_rows.append(
                (
                    center,
                    part,
                    labels[k],
                    round(mean, 4),
                    round(from_failures, 4),
                    round(mean + from_failures, 4),
                    pmf_quantile(pmf, lo_q),
                    pmf_quantile(pmf, hi_q),
                )
            )
        row = stock_rows.get((center, part))
        on_hand = float(row.on_hand) if row is not None else 0.0
        on_order = float(row.on_order) if row is not None else 0.0
        lead = float(row.lead_time_weeks) if row is not None else default_lead_time_weeks
        protection = lead + review_weeks
        due = failure_cdf(pair.days, pair.days_low, pair.days_high, [7.0 * protection])[:, 0]
        pmf = _demand_pmf(pair, protection, due)
        result = reorder(pmf, on_hand, on_order, service_level=service_level)
        reorder_rows.append(
            (
                center,
                part,
                on_hand,
                on_order,
                lead,
                review_weeks,
                round(mean, 4),
                int(np.sum((pair.days <= 7.0 * protection) & (pair.probability > 0))),
                round(float(np.sum(due * pair.probability * pair.units)), 4),
                round(result.protection_demand, 4),
                pmf_quantile(pmf, lo_q),
                pmf_quantile(pmf, hi_q),
                round(result.safety_stock, 4),
                result.reorder_point,
                result.order_qty,
            )
        )
    return PartsPlan(
        pd.DataFrame(weekly_rows, columns=list(WEEKLY_COLUMNS)),
        pd.DataFrame(reorder_rows, columns=list(REORDER_COLUMNS)),
        tuple(labels),
    )


def _baselines(
    history: pd.DataFrame, horizon_weeks: int
) -> tuple[list[str], dict[tuple[str, str], tuple[float, float]]]:
    """Week labels for the horizon and, per pair, the forecaster's weekly mean and variance."""
    if history.empty:
        return [str(k + 1) for k in range(horizon_weeks)], {}
    weeks = sorted(set(history["week"]))
    found = period_ordinals(weeks)
    if found is None or found[0] not in ("date", "week", "integer"):
        raise ConfigError(
            "history: week labels must all be dates (YYYY-MM-DD, 7 days apart), ISO weeks "
            "(YYYY-Www) or whole numbers"
        )
    kind, ordinals = found
    step = 7 if kind in ("date", "week") else 1
    position = dict(zip(weeks, ordinals, strict=True))
    if any((o - ordinals[0]) % step for o in ordinals):
        raise ConfigError("history: week dates must be whole weeks apart")
    first, last = min(ordinals), max(ordinals)
    periods = (last - first) // step + 1
    keys = sorted(set(zip(history["service_center"], history["part"], strict=True)))
    column = {key: j for j, key in enumerate(keys)}
    values = np.zeros((periods, len(keys)))
    rows = ((np.array([position[w] for w in history["week"]]) - first) // step).astype(int)
    cols = np.array([column[k] for k in zip(history["service_center"], history["part"], strict=True)])
    np.add.at(values, (rows, cols), history["units"].to_numpy(float))
    starts = np.full(len(keys), periods)
    np.minimum.at(starts, cols, rows)
    values[np.arange(periods)[:, None] < starts[None, :]] = np.nan  # before a pair's first row: unknown
    fit = fit_forecaster(values, horizon_weeks)
    mean, variance = predictive_moments(values, fit.params)
    labels = [format_period(kind, last + step * (k + 1)) for k in range(horizon_weeks)]
    moments = {
        key: (float(np.nan_to_num(mean[j])), float(np.nan_to_num(variance[j]))) for key, j in column.items()
    }
    return labels, moments


# ---------------------------------------------------------------- input checks


def _require(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"{source}: missing column(s) {', '.join(missing)}; it needs {', '.join(columns)}")


def _numbers(frame: pd.DataFrame, column: str, source: str, *, required: bool = True) -> pd.Series:
    text = frame[column].astype(str).str.strip()
    blank = text.isin(["", "nan", "NaN", "None", "NA"])
    values = pd.to_numeric(text.where(~blank), errors="coerce")
    bad = values.isna() & ~blank
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ConfigError(f"{source}: row {row + 2}, column {column!r}: {text.iloc[row]!r} is not a number")
    if required and blank.any():
        row = int(np.flatnonzero(blank.to_numpy())[0])
        raise ConfigError(f"{source}: row {row + 2}, column {column!r} is empty")
    return values.astype(float)


def _text(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    text = frame[column].astype(str).str.strip()
    empty = text.isin(["", "nan", "None"])
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise ConfigError(f"{source}: row {row + 2}, column {column!r} is empty")
    return text


def check_failures(frame: pd.DataFrame, source: str = "failures") -> pd.DataFrame:
    """Validated failures: a `code` column instead of `part` is mapped through FAULT_PARTS."""
    frame = frame.copy()
    if "part" not in frame.columns and "code" in frame.columns:
        specs = [part_for_fault(str(c).strip()) for c in frame["code"]]
        frame["part"] = [s.part for s in specs]
        if "units" not in frame.columns:
            frame["units"] = [s.units_per_failure for s in specs]
    _require(frame, FAILURE_COLUMNS, source)
    out = pd.DataFrame(
        {
            "vin": _text(frame, "vin", source) if len(frame) else pd.Series(dtype=str),
            "service_center": _text(frame, "service_center", source) if len(frame) else pd.Series(dtype=str),
            "part": _text(frame, "part", source) if len(frame) else pd.Series(dtype=str),
            "days_to_failure": _numbers(frame, "days_to_failure", source),
            "days_low": _numbers(frame, "days_low", source, required=False),
            "days_high": _numbers(frame, "days_high", source, required=False),
        }
    )
    out["units"] = _numbers(frame, "units", source) if "units" in frame.columns else 1.0
    out["probability"] = _numbers(frame, "probability", source) if "probability" in frame.columns else 1.0
    if (out["units"] < 0).any() or (out["units"] % 1 != 0).any():
        raise ConfigError(f"{source}: units must be whole numbers, not negative")
    if ((out["probability"] < 0) | (out["probability"] > 1)).any():
        raise ConfigError(f"{source}: probability must be between 0 and 1")
    out["units"] = out["units"].astype(np.int64)
    return out


def check_history(frame: pd.DataFrame, source: str = "history") -> pd.DataFrame:
    _require(frame, HISTORY_COLUMNS, source)
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=float if c == "units" else str) for c in HISTORY_COLUMNS})
    units = _numbers(frame, "units", source)
    if (units < 0).any():
        raise ConfigError(f"{source}: units must not be negative")
    return pd.DataFrame(
        {
            "week": _text(frame, "week", source),
            "service_center": _text(frame, "service_center", source),
            "part": _text(frame, "part", source),
            "units": units,
        }
    )


def check_stock(frame: pd.DataFrame, source: str = "stock") -> pd.DataFrame:
    _require(frame, STOCK_COLUMNS, source)
    if frame.empty:
        return pd.DataFrame(
            {
                c: pd.Series(dtype=str if c in ("service_center", "part") else float)
                for c in (*STOCK_COLUMNS, "on_order")
            }
        )
    out = pd.DataFrame(
        {
            "service_center": _text(frame, "service_center", source),
            "part": _text(frame, "part", source),
            "on_hand": _numbers(frame, "on_hand", source),
            "lead_time_weeks": _numbers(frame, "lead_time_weeks", source),
        }
    )
    out["on_order"] = _numbers(frame, "on_order", source) if "on_order" in frame.columns else 0.0
    if (out[["on_hand", "lead_time_weeks", "on_order"]] < 0).any().any():
        raise ConfigError(f"{source}: on_hand, on_order and lead_time_weeks must not be negative")
    duplicated = out.duplicated(["service_center", "part"])
    if duplicated.any():
        row = out[duplicated].iloc[0]
        raise ConfigError(f"{source}: {row['service_center']} / {row['part']} appears more than once")
    return out
