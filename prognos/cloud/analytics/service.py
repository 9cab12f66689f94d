"""The proactive service list (whom to call in, by when) and personalised maintenance
intervals from each vehicle's own wear rate (docs/analytics.md)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd

from prognos.cloud.analytics.alerts import days_text, remaining_days
from prognos.cloud.analytics.cohorts import as_text
from prognos.cloud.analytics.common import (
    DAY_MS,
    DEFAULT_SETTINGS,
    FAULT_WORDS,
    INTERVAL_COLUMNS,
    REPLACEMENT_JUMP,
    SERVICE_COLUMNS,
    Z_INTERVAL,
    AnalyticsSettings,
    day_start,
    day_text,
    empty_frame,
    finite,
)
from prognos.cloud.analytics.fleet_health import ACT_HEALTH
from prognos.cloud.parts.plan import (
    DEFAULT_LOG_SIGMA,
    FAULT_PARTS,
)


def _ten_percent_days(days: float, low: float) -> float:
    """The 10% quantile of the days to failure: the record's days_low, or without one the
    split log-normal default spread of prognos.cloud.parts.plan (days x exp(-1.2816 x 0.5))."""
    if finite(low):
        return low
    return days * math.exp(-Z_INTERVAL * DEFAULT_LOG_SIGMA) if days > 0 else days


def service_list(
    faults: pd.DataFrame,
    registry: pd.DataFrame,
    now_ms: int,
    *,
    settings: AnalyticsSettings = DEFAULT_SETTINGS,
) -> pd.DataFrame:
    """One row per vehicle with a predicted failure (an open fault with days to threshold),
    most urgent first (SERVICE_COLUMNS).

    Per fault, counted from the record that estimated it: failure at the median days; due at
    the 10% bound (days_low) minus service_margin_days, but not before today (UTC). A vehicle's
    visit is due at its earliest fault's due date; the owner, contact and service center come
    from the registry (empty, registered false, for a vehicle it does not hold)."""
    if faults.empty:
        return empty_frame(SERVICE_COLUMNS)
    frame = faults[pd.to_numeric(faults["days_to_threshold"], errors="coerce").notna()]
    if frame.empty:
        return empty_frame(SERVICE_COLUMNS)
    today = day_start(now_ms)
    people = registry.drop_duplicates("vin").set_index(registry.drop_duplicates("vin")["vin"].astype(str))
    per_vin: dict[str, list[tuple[int, float, float, str]]] = {}
    fleets: dict[str, str] = {}
    for f in frame.itertuples(index=False):
        estimated = float(f.estimated_at) if finite(getattr(f, "estimated_at", math.nan)) else float(f.time)
        elapsed = (now_ms - estimated) / DAY_MS
        days = float(f.days_to_threshold)
        low = _ten_percent_days(days, float(f.days_low) if finite(f.days_low) else math.nan)
        high = float(f.days_high) if finite(f.days_high) else math.nan
        failure_ms = estimated + days * DAY_MS
        due_ms = max(int(estimated + (low - settings.service_margin_days) * DAY_MS), today)
        days_left = days - elapsed
        spec = FAULT_PARTS.get(str(f.code))
        what = FAULT_WORDS.get(str(f.code), str(f.code))
        text = f"{what[:1].upper()}{what[1:]}: {days_text(days_left, low - elapsed, high - elapsed)}"
        if spec is not None:
            text += f", {spec.name} ({spec.part})"
        per_vin.setdefault(str(f.vin), []).append((due_ms, failure_ms, days_left, f"{f.code}\t{text}"))
        fleets[str(f.vin)] = as_text(getattr(f, "fleet", ""))
    rows = []
    for vin, items in per_vin.items():
        items.sort()
        codes = [item[3].split("\t", 1)[0] for item in items]
        parts = [FAULT_PARTS[c].part for c in codes if c in FAULT_PARTS]
        known = vin in people.index
        person = people.loc[vin] if known else None
        first = items[0]
        rows.append(
            {
                "vin": vin,
                "fleet": fleets.get(vin, "") or (as_text(person.get("fleet")) if person is not None else ""),
                "owner_name": as_text(person.get("owner_name")) if person is not None else "",
                "owner_contact": as_text(person.get("owner_contact")) if person is not None else "",
                "service_center": as_text(person.get("service_center")) if person is not None else "",
                "registered": known,
                "due_ms": first[0],
                "due_date": day_text(first[0]),
                "failure_ms": int(min(item[1] for item in items)),
                "failure_date": day_text(min(item[1] for item in items)),
                "days_left": min(item[2] for item in items),
                "codes": ", ".join(codes),
                "parts": ", ".join(parts),
                "reason": "; ".join(item[3].split("\t", 1)[1] for item in items),
            }
        )
    table = pd.DataFrame(rows).sort_values(["due_ms", "failure_ms", "vin"], kind="stable")
    return table[list(SERVICE_COLUMNS)].reset_index(drop=True)


def theil_sen_slope(days: npt.ArrayLike, values: npt.ArrayLike) -> float:
    """The median of the slopes between every pair of points (robust to a few odd days)."""
    x = np.asarray(days, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    i, j = np.triu_indices(x.size, k=1)
    dx = x[j] - x[i]
    keep = dx > 0
    if not keep.any():
        return math.nan
    return float(np.median((y[j] - y[i])[keep] / dx[keep]))


def wear_rates(wear: pd.DataFrame, subsystem: str, *, min_days: int) -> pd.DataFrame:
    """vin, rate (health lost per day, Theil-Sen), days (days of data used), health (latest
    daily mean). Only the days after the latest part replacement (a daily rise of
    REPLACEMENT_JUMP or more) count; vehicles with fewer than min_days such days are left out.

    Vectorised over vehicles (one row of days per vehicle); the same numbers as
    theil_sen_slope on each vehicle's days."""
    columns = ["vin", "rate", "days", "health"]
    frame = wear[wear["subsystem"] == subsystem] if not wear.empty else wear
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame.sort_values(["vin", "time"], kind="stable")
    codes, vins = pd.factorize(frame["vin"].astype(str), sort=True)
    counts = np.bincount(codes)
    position = frame.groupby(codes, sort=False).cumcount().to_numpy()
    width = int(counts.max())
    health = np.full((vins.size, width), np.nan)
    days = np.full((vins.size, width), np.nan)
    health[codes, position] = frame["health"].to_numpy(np.float64)
    days[codes, position] = frame["time"].to_numpy(np.float64) / DAY_MS
    steps = np.arange(width)
    rises = np.zeros((vins.size, width), dtype=bool)
    rises[:, 1:] = np.diff(health, axis=1) >= REPLACEMENT_JUMP  # a rise into day k starts anew at k
    start = np.where(rises, steps, 0).max(axis=1)
    valid = (steps >= start[:, None]) & (steps < counts[:, None])
    used = valid.sum(axis=1)
    latest = health[np.arange(vins.size), counts - 1]
    rates = np.full(vins.size, np.nan)
    first, second = np.triu_indices(width, k=1)
    chunk = max(1, 4_000_000 // max(first.size, 1))
    for at in range(0, vins.size, chunk):
        rows = slice(at, at + chunk)
        dx = days[rows][:, second] - days[rows][:, first]
        ok = valid[rows][:, first] & valid[rows][:, second] & (dx > 0)
        slopes = np.full(dx.shape, np.inf)
        np.divide(health[rows][:, second] - health[rows][:, first], dx, out=slopes, where=ok)
        slopes.sort(axis=1)  # the pairs that do not count (inf) go last
        n = ok.sum(axis=1)
        have = n > 0
        index = np.arange(len(slopes))[have]
        low, high = slopes[index, (n[have] - 1) // 2], slopes[index, n[have] // 2]
        median = np.where(n[have] % 2 == 1, high, (low + high) / 2)
        part = rates[rows]
        part[have] = median
        rates[rows] = part
    keep = (used >= min_days) & np.isfinite(rates)
    return pd.DataFrame(
        {
            "vin": vins[keep].astype(str),
            "rate": -rates[keep],
            "days": used[keep].astype(int),
            "health": latest[keep],
        },
        columns=columns,
    ).reset_index(drop=True)


def maintenance_intervals(
    wear: pd.DataFrame,
    states: pd.DataFrame,
    faults: pd.DataFrame,
    now_ms: int,
    *,
    settings: AnalyticsSettings = DEFAULT_SETTINGS,
) -> pd.DataFrame:
    """Personalised service intervals of the wear parts (INTERVAL_COLUMNS), per vehicle.

    A vehicle's wear rate is the health its subsystem loses per day: the Theil-Sen slope of its
    daily mean health (method `trend`), or, with too few days, its latest health divided by
    the open wear fault's days to threshold (health reaches 0 at the threshold; method
    `fault`). The fleet's typical rate is the median of the trend rates (at least
    min_fleet_rates of them). interval = standard interval x typical / rate, the ratio kept
    within [1/rate_clip, rate_clip]; the next service falls where health reaches ACT_HEALTH."""
    rows = []
    open_days = remaining_days(faults, now_ms) if not faults.empty else faults
    for item in settings.wear_items:
        spec = FAULT_PARTS.get(item.code)
        rates = wear_rates(wear, item.subsystem, min_days=settings.min_trend_days)
        typical_pool = rates["rate"][rates["rate"] > 0]
        if len(typical_pool) < settings.min_fleet_rates:
            continue
        typical = float(typical_pool.median())
        latest = (
            states[states["subsystem"] == item.subsystem].set_index("vin")["health"].to_dict()
            if not states.empty
            else {}
        )
        found = {r.vin: ("trend", float(r.rate), int(r.days), float(r.health)) for r in rates.itertuples()}
        if not open_days.empty:
            for f in open_days[open_days["code"] == item.code].itertuples(index=False):
                vin = str(f.vin)
                health = latest.get(vin, math.nan)
                days = float(f.days_to_threshold) if finite(f.days_to_threshold) else math.nan
                if vin in found or not (finite(health) and finite(days) and days > 0):
                    continue
                found[vin] = ("fault", float(health) / days, 0, float(health))
        for vin, (method, rate, days_of_data, trend_health) in sorted(found.items()):
            health = float(latest.get(vin, trend_health))
            relative = rate / typical if rate > 0 else 0.0
            relative = min(max(relative, 1.0 / settings.rate_clip), settings.rate_clip)
            next_days = max(0.0, (health - ACT_HEALTH) / rate) if rate > 0 else math.nan
            rows.append(
                {
                    "vin": vin,
                    "subsystem": item.subsystem,
                    "part": spec.part if spec else item.code,
                    "method": method,
                    "days_of_data": days_of_data,
                    "health": health,
                    "wear_rate_per_day": rate,
                    "fleet_rate_per_day": typical,
                    "relative_rate": relative,
                    "standard_interval_days": item.standard_interval_days,
                    "interval_days": item.standard_interval_days / relative,
                    "next_service_days": next_days,
                    "next_service_date": day_text(now_ms + next_days * DAY_MS) if finite(next_days) else "",
                }
            )
    if not rows:
        return empty_frame(INTERVAL_COLUMNS)
    table = pd.DataFrame(rows).sort_values(["interval_days", "vin"], kind="stable")
    return table[list(INTERVAL_COLUMNS)].reset_index(drop=True)
