"""Condition mining: is a fault more frequent under some conditions (cold, humid, a region, a
model, a lot, a mileage band)? Pure: exposure and fault onsets in, findings out
(docs/analytics.md, "Condition mining").

For each fault code and each condition (one attribute's bin, or a temperature bin together with
a humidity bin), the onset rate inside the condition is compared with the rate outside it:

    rate  = onsets / exposure (vehicle-months)
    lift  = rate inside / rate outside
    95% CI of the lift: exp(log lift +- 1.96 sqrt(1/onsets inside + 1/onsets outside))
    p     = P(X >= onsets inside), X ~ Binomial(all onsets of the code, share of exposure inside)

The binomial test is the exact test of a rate ratio conditional on the total count. The p-values
of every (code, condition) tested go through Benjamini-Hochberg together; a finding is a lift
above MIN_LIFT with q <= the FDR level and at least MIN_ONSETS onsets inside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from prognos.cloud.analytics.cohorts import benjamini_hochberg

HOURS_PER_MONTH = 730.0  # 365 x 24 / 12
Z95 = 1.959963984540054
MIN_ONSETS = 5  # onsets inside a condition before it can be a finding
MIN_LIFT = 1.5
DEFAULT_FDR = 0.05
MIN_EXPOSURE_MONTHS = 10.0  # a condition with less exposure is not tested

# Bins: (upper bound, label); the last bound is infinite.
TEMPERATURE_BINS: tuple[tuple[float, str], ...] = (
    (5.0, "below 5 °C"),
    (15.0, "5-15 °C"),
    (25.0, "15-25 °C"),
    (math.inf, "above 25 °C"),
)
HUMIDITY_BINS: tuple[tuple[float, str], ...] = (
    (50.0, "below 50% RH"),
    (80.0, "50-80% RH"),
    (math.inf, "above 80% RH"),
)
MILEAGE_BINS: tuple[tuple[float, str], ...] = (
    (20_000.0, "below 20,000 km"),
    (60_000.0, "20,000-60,000 km"),
    (120_000.0, "60,000-120,000 km"),
    (math.inf, "above 120,000 km"),
)
ATTRIBUTE_WORDS = {"region": "in region", "model": "on model", "lot": "in lot"}
FINDING_COLUMNS = (
    "code",
    "condition",
    "lift",
    "lift_low",
    "lift_high",
    "onsets",
    "exposure_months",
    "rate_per_1000",
    "rate_elsewhere_per_1000",
    "p_value",
    "q_value",
    "finding",
)


def bin_label(value: float, bins: Sequence[tuple[float, str]]) -> str:
    """The label of the bin holding `value` ("" for a missing value)."""
    if value is None or not math.isfinite(value):
        return ""
    for upper, label in bins:
        if value < upper:
            return label
    return bins[-1][1]


def binned(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the condition columns the mining groups by: temperature (from ambient_c),
    humidity (from humidity_pct), mileage (from odometer_km), and region, model and lot as they
    are. Missing inputs give "" (not tested)."""
    out = frame.copy()
    sources = (
        ("temperature", "ambient_c", TEMPERATURE_BINS),
        ("humidity", "humidity_pct", HUMIDITY_BINS),
        ("mileage", "odometer_km", MILEAGE_BINS),
    )
    for name, column, bins in sources:
        values = pd.to_numeric(frame[column], errors="coerce") if column in frame else None
        out[name] = [bin_label(float(v), bins) for v in values] if values is not None else ""
    for name in ATTRIBUTE_WORDS:
        out[name] = frame[name].fillna("").astype(str) if name in frame else ""
    return out


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    x = np.arange(k, n + 1)
    log_terms = (
        math.lgamma(n + 1)
        - np.array([math.lgamma(i + 1) + math.lgamma(n - i + 1) for i in x])
        + x * math.log(p)
        + (n - x) * math.log1p(-p)
    )
    top = float(log_terms.max())
    return float(min(1.0, math.exp(top) * float(np.exp(log_terms - top).sum())))


@dataclass(frozen=True)
class Condition:
    """A condition: (column, bin) pairs that must all hold."""

    parts: tuple[tuple[str, str], ...]

    @property
    def words(self) -> str:
        texts = []
        for column, value in self.parts:
            prefix = ATTRIBUTE_WORDS.get(column)
            texts.append(f"{prefix} {value}" if prefix else value)
        return " and ".join(texts)


def conditions(exposure: pd.DataFrame) -> list[Condition]:
    """Every single bin of each condition column that occurs, and every temperature x humidity
    pair."""
    found: list[Condition] = []
    for column in ("temperature", "humidity", "mileage", *ATTRIBUTE_WORDS):
        if column not in exposure:
            continue
        for value in sorted(v for v in exposure[column].unique() if v):
            found.append(Condition(((column, str(value)),)))
    if "temperature" in exposure and "humidity" in exposure:
        pairs = exposure[(exposure["temperature"] != "") & (exposure["humidity"] != "")]
        for t, h in sorted(set(zip(pairs["temperature"], pairs["humidity"], strict=True))):
            found.append(Condition((("temperature", str(t)), ("humidity", str(h)))))
    return found


def _inside(frame: pd.DataFrame, condition: Condition) -> pd.Series:
    mask = pd.Series(True, index=frame.index)
    for column, value in condition.parts:
        mask &= frame[column] == value
    return mask


def mine_conditions(
    exposure: pd.DataFrame,
    onsets: pd.DataFrame,
    *,
    fdr: float = DEFAULT_FDR,
    min_onsets: int = MIN_ONSETS,
    min_lift: float = MIN_LIFT,
    min_exposure_months: float = MIN_EXPOSURE_MONTHS,
) -> pd.DataFrame:
    """Every (code, condition) tested, findings first then by lift (FINDING_COLUMNS).

    exposure: one row per slice of driving with its conditions (binned, see `binned`) and
    `hours`; onsets: one row per fault onset with `code` and its conditions (binned). A
    condition is tested only where both its inside and outside hold at least
    min_exposure_months."""
    if exposure.empty or onsets.empty:
        return pd.DataFrame(columns=list(FINDING_COLUMNS))
    months = pd.to_numeric(exposure["hours"], errors="coerce").fillna(0.0) / HOURS_PER_MONTH
    total_months = float(months.sum())
    rows = []
    for condition in conditions(exposure):
        inside_months = float(months[_inside(exposure, condition)].sum())
        outside_months = total_months - inside_months
        if inside_months < min_exposure_months or outside_months < min_exposure_months:
            continue
        share = inside_months / total_months
        inside_onsets = _inside(onsets, condition)
        for code, group in onsets.groupby("code", sort=True):
            k = int(inside_onsets[group.index].sum())
            n = len(group)
            rate_in = k / inside_months
            rate_out = (n - k) / outside_months
            lift = rate_in / rate_out if rate_out > 0 else math.inf
            if 0 < k < n:
                spread = Z95 * math.sqrt(1 / k + 1 / (n - k))
                low, high = lift * math.exp(-spread), lift * math.exp(spread)
            else:
                low, high = math.nan, math.nan
            rows.append(
                {
                    "code": str(code),
                    "condition": condition.words,
                    "lift": lift,
                    "lift_low": low,
                    "lift_high": high,
                    "onsets": k,
                    "exposure_months": inside_months,
                    "rate_per_1000": 1000 * rate_in,
                    "rate_elsewhere_per_1000": 1000 * rate_out,
                    "p_value": binomial_upper_tail(k, n, share),
                }
            )
    if not rows:
        return pd.DataFrame(columns=list(FINDING_COLUMNS))
    table = pd.DataFrame(rows)
    table["q_value"] = benjamini_hochberg(table["p_value"].to_numpy())
    table["finding"] = (
        (table["q_value"] <= fdr) & (table["onsets"] >= min_onsets) & (table["lift"] >= min_lift)
    )
    table = table.sort_values(["finding", "lift", "onsets"], ascending=[False, False, False], kind="stable")
    return table[list(FINDING_COLUMNS)].reset_index(drop=True)


def finding_text(row: pd.Series, code_words: dict[str, str] | None = None) -> str:
    """A finding in words: "motor.noise 3.2x more frequent below 5 °C and above 80% RH (95% CI
    2.1-4.8; 14 onsets in 412 vehicle-months)"."""
    what = (code_words or {}).get(str(row["code"]), str(row["code"]))
    ci = (
        f"95% CI {row['lift_low']:.1f}-{row['lift_high']:.1f}; "
        if math.isfinite(float(row["lift_low"]))
        else ""
    )
    return (
        f"{what} {row['lift']:.1f}x more frequent {row['condition']} "
        f"({ci}{int(row['onsets'])} onsets in {row['exposure_months']:,.0f} vehicle-months)"
    )
