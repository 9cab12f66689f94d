"""Alerts with priorities: the open faults of each vehicle, its remaining days to the threshold
with their interval, and the recommended action (docs/analytics.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from prognos.cloud.analytics.common import (
    ALERT_COLUMNS,
    DAY_MS,
    DEFAULT_SETTINGS,
    RECOMMENDED_ACTIONS,
    SUBSYSTEM_WORDS,
    AnalyticsSettings,
    empty_frame,
    finite,
)
from prognos.cloud.analytics.fleet_health import ACT_HEALTH, WATCH_HEALTH, WATCH_SCORE, vehicle_table


def open_faults(faults: pd.DataFrame, last_seen: pd.DataFrame) -> pd.DataFrame:
    """The faults in each vehicle's latest record (the dashboard's meaning of open)."""
    if faults.empty:
        return faults.copy()
    latest = last_seen.groupby("vin")["time"].max() if not last_seen.empty else pd.Series(dtype=float)
    seen = faults["vin"].map(latest)
    return faults[seen.notna() & (faults["time"] >= seen)].reset_index(drop=True)


def remaining_days(faults: pd.DataFrame, now_ms: int) -> pd.DataFrame:
    """days_to_threshold, days_low and days_high counted from `now_ms` instead of from the
    record that estimated them: days_left, days_low_left, days_high_left (NaN when unknown)."""
    out = faults.copy()
    if out.empty:
        for name in ("days_left", "days_low_left", "days_high_left"):
            out[name] = pd.Series(dtype=float)
        return out
    estimated = pd.to_numeric(out.get("estimated_at", out["time"]), errors="coerce")
    elapsed = (now_ms - estimated) / DAY_MS
    for source, target in (
        ("days_to_threshold", "days_left"),
        ("days_low", "days_low_left"),
        ("days_high", "days_high_left"),
    ):
        values = pd.to_numeric(out[source], errors="coerce") if source in out else np.nan
        out[target] = values - elapsed
    return out


def _days(count: int) -> str:
    return "1 day" if count == 1 else f"{count} days"


def days_text(days: float, low: float, high: float) -> str:
    """The days to failure in words, with the 80 % interval where there is one: never "0 days"
    or a negative count."""
    whole = round(days)
    if whole < 0:
        return f"failure was expected {_days(-whole)} ago"
    if whole == 0:
        return "failure expected within a day"
    text = f"failure expected in {_days(whole)}"
    if finite(low) and finite(high):
        text += f" (80 % interval {max(round(low), 0)}-{max(round(high), 0)} days)"
    return text


PRIORITIES = ("P1", "P2", "P3")  # most urgent first


@dataclass(frozen=True)
class Condition:
    """Why a vehicle alerts on one code: its kind (fault, low_health, anomaly, drift), its
    priority and the reason in words."""

    kind: str
    priority: str
    reason: str


def more_urgent(priority: str, than: str) -> bool:
    """Whether `priority` comes before `than` in PRIORITIES (an unknown priority never does)."""
    rank = {p: i for i, p in enumerate(PRIORITIES)}
    return rank.get(priority, len(PRIORITIES)) < rank.get(than, len(PRIORITIES))


def fault_condition(
    code: str,
    confidence: float,
    *,
    days: float,
    low: float,
    high: float,
    health: float,
    cause: tuple[str, float] | None = None,
    settings: AnalyticsSettings = DEFAULT_SETTINGS,
) -> Condition:
    """An open fault: P1 when it is due within p1_days or its subsystem's health is below
    ACT_HEALTH, else P2. days, low, high and health are NaN when unknown; `cause` is the
    classifier's first cause and its probability, when the record had one."""
    subsystem = code.split(".", 1)[0]
    reasons = [f"{code} open (confidence {confidence:.2f})"]
    if cause is not None:
        reasons.append(f"classified cause {cause[0]} ({cause[1]:.0%})")
    if finite(days):
        reasons.append(days_text(days, low, high))
    if finite(health):
        reasons.append(f"{subsystem} health {health:.2f}")
    urgent = (finite(days) and days < settings.p1_days) or (finite(health) and health < ACT_HEALTH)
    return Condition("fault", "P1" if urgent else "P2", "; ".join(reasons))


def subsystem_condition(
    subsystem: str,
    health: float,
    score: float,
    *,
    earlier: float = math.nan,
    settings: AnalyticsSettings = DEFAULT_SETTINGS,
) -> Condition | None:
    """A subsystem without an open fault, by its worst condition: health below ACT_HEALTH (P1)
    or WATCH_HEALTH (P2), anomaly score at or above WATCH_SCORE (P2), health fallen by
    drift_drop or more since `earlier` (P3); None when none holds."""
    if health < ACT_HEALTH:
        return Condition("low_health", "P1", f"{subsystem} health {health:.2f}, below {ACT_HEALTH}")
    if health < WATCH_HEALTH:
        return Condition("low_health", "P2", f"{subsystem} health {health:.2f}, below {WATCH_HEALTH}")
    if score >= WATCH_SCORE:
        return Condition("anomaly", "P2", f"{subsystem} anomaly score {score:.2f}, at or above {WATCH_SCORE}")
    if finite(earlier) and earlier - health >= settings.drift_drop:
        return Condition("drift", "P3", f"{subsystem} health fell from {earlier:.2f} to {health:.2f}")
    return None


def alert_code(subsystem: str, kind: str) -> str:
    """The code of an alert on a subsystem without a fault: SUBSYSTEM.low_health and so on."""
    return f"{subsystem}.{kind}"


def recommended_action(code: str, kind: str, priority: str) -> str:
    """What to tell the workshop: RECOMMENDED_ACTIONS for a known fault, else by kind."""
    subsystem = code.split(".", 1)[0]
    if kind == "fault":
        return RECOMMENDED_ACTIONS.get(
            code, f"Inspect {SUBSYSTEM_WORDS.get(subsystem, subsystem)} for the reported fault {code}."
        )
    what = SUBSYSTEM_WORDS.get(subsystem, f"the {subsystem}")
    if kind == "low_health":
        when = "at the earliest possible visit" if priority == "P1" else "at the next visit"
        return f"Inspect {what} {when}: its health is close to the failure threshold."
    if kind == "anomaly":
        return f"Inspect {what} at the next visit: its readings are near the alert level, no fault named yet."
    return f"No action yet; check {what} at the next scheduled service: its health is falling."


def vehicle_alerts(
    states: pd.DataFrame,
    faults: pd.DataFrame,
    now_ms: int,
    *,
    baseline: pd.DataFrame | None = None,
    settings: AnalyticsSettings = DEFAULT_SETTINGS,
) -> pd.DataFrame:
    """One alert per vehicle and code, most urgent first (ALERT_COLUMNS).

    faults: the open faults (open_faults). Each is prioritised by fault_condition; a subsystem
    without an open fault alerts by its worst condition (subsystem_condition, its drift measured
    against `baseline`), under the code alert_code gives. The diagnosis-report worker applies the
    same two rules to each record as it arrives (prognos.cloud.reports.alerting).

    A fault's alert carries the cause the gateway's classifier ranked first, when `faults` has
    it (cause_code, cause_probability)."""
    if states.empty and faults.empty:
        return empty_frame(ALERT_COLUMNS)
    fault_frame = remaining_days(faults, now_ms)
    vehicles = vehicle_table(
        states, fault_frame[["vin", "code", "time"]] if not fault_frame.empty else fault_frame
    )
    band = vehicles.set_index("vin")["band"].to_dict() if not vehicles.empty else {}
    vehicle_health = vehicles.set_index("vin")["health"].to_dict() if not vehicles.empty else {}
    last_seen = states.groupby("vin")["time"].max().to_dict() if not states.empty else {}
    fleet_of = states.groupby("vin")["fleet"].first().to_dict() if not states.empty else {}
    state_of = {
        (r.vin, r.subsystem): (float(r.health), float(r.anomaly_score))
        for r in states.itertuples(index=False)
    }
    then = (
        {(r.vin, r.subsystem): float(r.health) for r in baseline.itertuples(index=False)}
        if baseline is not None and not baseline.empty
        else {}
    )
    rows: list[dict[str, object]] = []
    covered: set[tuple[str, str]] = set()

    def base(vin: str, fleet: object) -> dict[str, object]:
        return {
            "fleet": str(fleet) if isinstance(fleet, str) and fleet else str(fleet_of.get(vin, "")),
            "vin": vin,
            "band": band.get(vin, "act"),
            "vehicle_health": vehicle_health.get(vin, math.nan),
            "last_seen_ms": last_seen.get(vin, math.nan),
        }

    for f in fault_frame.itertuples(index=False):
        vin, code = str(f.vin), str(f.code)
        subsystem = code.split(".", 1)[0]
        covered.add((vin, subsystem))
        health, score = state_of.get((vin, subsystem), (math.nan, math.nan))
        days, low, high = float(f.days_left), float(f.days_low_left), float(f.days_high_left)
        cause, probability = getattr(f, "cause_code", None), getattr(f, "cause_probability", math.nan)
        cause_probability = float(probability) if finite(probability) else math.nan
        if not (isinstance(cause, str) and cause and finite(cause_probability)):
            cause, cause_probability = None, math.nan
        condition = fault_condition(
            code,
            float(f.confidence),
            days=days,
            low=low,
            high=high,
            health=health,
            cause=(cause, cause_probability) if cause is not None else None,
            settings=settings,
        )
        rows.append(
            {
                **base(vin, getattr(f, "fleet", "")),
                "code": code,
                "priority": condition.priority,
                "kind": "fault",
                "subsystem": subsystem,
                "health": health,
                "anomaly_score": score,
                "confidence": float(f.confidence),
                "days_left": days,
                "days_low_left": low,
                "days_high_left": high,
                "cause_code": cause,
                "cause_probability": cause_probability,
                "action": recommended_action(code, "fault", condition.priority),
                "reason": condition.reason,
            }
        )
    for s in states.itertuples(index=False):
        vin, subsystem = str(s.vin), str(s.subsystem)
        if (vin, subsystem) in covered:
            continue
        health, score = float(s.health), float(s.anomaly_score)
        found = subsystem_condition(
            subsystem, health, score, earlier=then.get((vin, subsystem), math.nan), settings=settings
        )
        if found is None:
            continue
        code = alert_code(subsystem, found.kind)
        rows.append(
            {
                **base(vin, s.fleet),
                "code": code,
                "priority": found.priority,
                "kind": found.kind,
                "subsystem": subsystem,
                "health": health,
                "anomaly_score": score,
                "confidence": math.nan,
                "days_left": math.nan,
                "days_low_left": math.nan,
                "days_high_left": math.nan,
                "cause_code": None,
                "cause_probability": math.nan,
                "action": recommended_action(code, found.kind, found.priority),
                "reason": found.reason,
            }
        )
    if not rows:
        return empty_frame(ALERT_COLUMNS)
    table = pd.DataFrame(rows)
    table = table.sort_values(
        ["priority", "days_left", "health", "vin", "code"], na_position="last", kind="stable"
    )
    return table[list(ALERT_COLUMNS)].reset_index(drop=True)
