"""Fleet analytics: alerts with priorities, cohorts and campaigns, the proactive service list,
personalised maintenance intervals and the parts plan. Pure: DataFrames in, DataFrames out;
prognos/cloud/analytics_job.py reads the inputs from InfluxDB and writes the results back.
docs/analytics.md states every rule and formula.

Input frames (times are epoch milliseconds, UTC):

- registry: the `vehicle` kind of prognos.cloud.dms (vin, model, lot, *_supplier, owner_name,
  owner_contact, service_center, fleet, ...); one row per vehicle.
- states: fleet, vin, subsystem, time, health, anomaly_score: each subsystem's latest state in
  the lookback window (the frame prognos.cloud.fleet_health takes).
- last_seen: fleet, vin, time: the end of each vehicle's latest record.
- faults: fleet, vin, code, time, confidence, days_to_threshold, days_low, days_high,
  estimated_at: per vehicle and fault code its latest `fault` point (time, confidence) and the
  latest days-to-threshold estimate with its 80% interval, stamped `estimated_at` (NaN when the
  fault never carried one).
- fault_counts: vin, code, points: fault points per vehicle and code in the window.
- peaks: vin, subsystem, max_score: the highest anomaly score per subsystem in the window.
- baseline: vin, subsystem, health: mean health over the first days of the window.
- wear: vin, subsystem, time, health: daily mean health of the wear subsystems (WEAR_ITEMS).
- stock: service_center, part, on_hand, on_order, lead_time_weeks (prognos.cloud.parts.check_stock).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
import pandas as pd

from prognos.cloud.fleet_health import ACT_HEALTH, WATCH_HEALTH, WATCH_SCORE, vehicle_table
from prognos.cloud.parts import (
    DAYS_INTERVAL,
    DEFAULT_LOG_SIGMA,
    FAULT_PARTS,
    REORDER_COLUMNS,
    WEEKLY_COLUMNS,
    failures_from_faults,
    plan_parts,
)
from prognos.cloud.storage import schema

DAY_MS = 86_400_000
Z_INTERVAL = NormalDist().inv_cdf((1.0 + DAYS_INTERVAL) / 2.0)  # 1.2816: the 10% / 90% quantiles

# What to tell the workshop per fault code, in a service manager's words.
RECOMMENDED_ACTIONS: dict[str, str] = {
    "battery.module_temperature_drift": "Book a battery check: compare the module temperatures under "
    "load, inspect the module cooling, and replace the module temperature sensor if it reads off.",
    "tires.pressure_loss": "Inspect the tire for a puncture or a leaking valve; repair or replace it "
    "and check the TPMS sensor.",
    "brakes.pad_wear": "Replace the brake pads on the worn axle and check the discs while the "
    "wheels are off.",
    "bearings.wheel_bearing_wear": "Road-test for wheel bearing noise and check the bearing play; "
    "replace the wheel bearing hub unit.",
    "motor.noise": "Inspect the drive motor for bearing noise and moisture in the housing; replace "
    "the motor bearing kit.",
}
# What a campaign checks on every vehicle of a cohort, per fault code.
CAMPAIGN_CHECKS: dict[str, str] = {
    "battery.module_temperature_drift": "Read the battery module temperatures under load and "
    "inspect the module temperature sensors and cooling.",
    "tires.pressure_loss": "Check the tire pressures, valves and TPMS sensors.",
    "brakes.pad_wear": "Measure the brake pad thickness on both axles.",
    "bearings.wheel_bearing_wear": "Check the wheel bearings for play and noise.",
    "motor.noise": "Listen to the drive motor under load and check its housing for moisture.",
}
# How a subsystem is named in advice.
SUBSYSTEM_WORDS: dict[str, str] = {
    "battery": "the traction battery",
    "tires": "the tires",
    "brakes": "the brakes",
    "bearings": "the wheel bearings",
    "motor": "the drive motor",
}
# The registry column naming the supplier of each subsystem's part.
SUPPLIER_OF: dict[str, str] = {
    "battery": "battery_supplier",
    "tires": "tire_supplier",
    "brakes": "brake_supplier",
    "bearings": "bearing_supplier",
    "motor": "motor_supplier",
}
COHORT_ATTRIBUTES = (
    "lot",
    "model",
    "battery_supplier",
    "tire_supplier",
    "brake_supplier",
    "bearing_supplier",
    "motor_supplier",
)
ANOMALY_SUFFIX = ".anomaly"  # signature of a subsystem anomaly that names no fault code
REPLACEMENT_JUMP = 0.15  # a daily health rise this large is a part replaced: the trend restarts there


@dataclass(frozen=True)
class WearItem:
    """A wear part whose service interval follows the wear rate of its subsystem's health."""

    subsystem: str
    code: str  # the fault code of the worn part (its FAULT_PARTS entry names the part)
    standard_interval_days: float  # the interval a vehicle wearing at the fleet's typical rate gets


WEAR_ITEMS: tuple[WearItem, ...] = (WearItem("brakes", "brakes.pad_wear", 365.0),)


@dataclass(frozen=True, kw_only=True)
class AnalyticsSettings:
    """The thresholds of docs/analytics.md; the defaults are the documented values."""

    p1_days: float = 14.0  # a fault due within this many days is P1
    drift_drop: float = 0.15  # health fallen by this much over the window is drift (P3)
    service_margin_days: float = 3.0  # a service is due this long before the 10% failure bound
    cohort_attributes: tuple[str, ...] = COHORT_ATTRIBUTES
    min_affected: int = 3  # a cohort needs at least this many affected vehicles
    min_lift: float = 2.0  # ... an affected share at least this many times the base rate
    fdr: float = 0.05  # ... and a Benjamini-Hochberg q-value at most this
    nested_alpha: float = 0.05  # significance of the comparisons between nested cohorts
    wear_items: tuple[WearItem, ...] = WEAR_ITEMS
    min_trend_days: int = 5  # days of data a wear trend needs
    min_fleet_rates: int = 3  # vehicles with a wear trend needed for a fleet typical rate
    rate_clip: float = 4.0  # a relative wear rate is kept within [1/rate_clip, rate_clip]


DEFAULT_SETTINGS = AnalyticsSettings()

# The result tables have the columns their measurements store (prognos.cloud.storage.schema),
# but for what the job adds: the rank (a row's place), a cohort's campaign counts; a campaign
# vehicle's cohort is the tag `cohort`.
ALERT_COLUMNS = schema.ALERT.column_names(without=("rank",))
COHORT_COLUMNS = schema.COHORT.column_names(
    first=("cohort_id",), without=("campaign_vehicles", "not_yet_affected")
)
CAMPAIGN_COLUMNS = ("cohort_id", *schema.CAMPAIGN_VEHICLE.column_names(without=("cohort",)))
SERVICE_COLUMNS = schema.SERVICE_LIST.column_names(without=("rank",))
INTERVAL_COLUMNS = schema.MAINTENANCE_INTERVAL.column_names(first=("vin", "subsystem"))


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def _day(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000.0, UTC).date().isoformat()


def _day_start(ms: float) -> int:
    return int(ms // DAY_MS * DAY_MS)


def _finite(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and math.isfinite(float(value))


# ---------------------------------------------------------------- faults and alerts


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


def _action(code: str, kind: str, priority: str) -> str:
    if kind == "fault":
        subsystem = code.split(".", 1)[0]
        return RECOMMENDED_ACTIONS.get(
            code, f"Inspect {SUBSYSTEM_WORDS.get(subsystem, subsystem)} for the reported fault {code}."
        )
    subsystem = code.split(".", 1)[0]
    what = SUBSYSTEM_WORDS.get(subsystem, f"the {subsystem}")
    if kind == "low_health":
        when = "at the earliest possible visit" if priority == "P1" else "at the next visit"
        return f"Inspect {what} {when}: its health is close to the failure threshold."
    if kind == "anomaly":
        return f"Inspect {what} at the next visit: its readings are near the alert level, no fault named yet."
    return f"No action yet; check {what} at the next scheduled service: its health is falling."


def _days_text(days: float, low: float, high: float) -> str:
    text = f"failure expected in {max(days, 0.0):.0f} days"
    if _finite(low) and _finite(high):
        text += f" (80%: {max(low, 0.0):.0f}-{max(high, 0.0):.0f})"
    return text


def vehicle_alerts(
    states: pd.DataFrame,
    faults: pd.DataFrame,
    now_ms: int,
    *,
    baseline: pd.DataFrame | None = None,
    settings: AnalyticsSettings = DEFAULT_SETTINGS,
) -> pd.DataFrame:
    """One alert per vehicle and code, most urgent first (ALERT_COLUMNS).

    faults: the open faults (open_faults). A fault is P1 when it is due within p1_days or its
    subsystem's health is below ACT_HEALTH, else P2. A subsystem without an open fault alerts
    by its worst condition: health below ACT_HEALTH (P1) or WATCH_HEALTH (P2), code
    SUBSYSTEM.low_health; anomaly score at or above WATCH_SCORE (P2), SUBSYSTEM.anomaly; health
    fallen by drift_drop or more since `baseline` (P3), SUBSYSTEM.drift."""
    if states.empty and faults.empty:
        return _empty(ALERT_COLUMNS)
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
        reasons = [f"{code} open (confidence {float(f.confidence):.2f})"]
        if _finite(days):
            reasons.append(_days_text(days, low, high))
        if _finite(health):
            reasons.append(f"{subsystem} health {health:.2f}")
        urgent = (_finite(days) and days < settings.p1_days) or (_finite(health) and health < ACT_HEALTH)
        priority = "P1" if urgent else "P2"
        rows.append(
            {
                **base(vin, getattr(f, "fleet", "")),
                "code": code,
                "priority": priority,
                "kind": "fault",
                "subsystem": subsystem,
                "health": health,
                "anomaly_score": score,
                "confidence": float(f.confidence),
                "days_left": days,
                "days_low_left": low,
                "days_high_left": high,
                "action": _action(code, "fault", priority),
                "reason": "; ".join(reasons),
            }
        )
    for s in states.itertuples(index=False):
        vin, subsystem = str(s.vin), str(s.subsystem)
        if (vin, subsystem) in covered:
            continue
        health, score = float(s.health), float(s.anomaly_score)
        earlier = then.get((vin, subsystem), math.nan)
        if health < ACT_HEALTH:
            kind, priority = "low_health", "P1"
            reason = f"{subsystem} health {health:.2f}, below {ACT_HEALTH}"
        elif health < WATCH_HEALTH:
            kind, priority = "low_health", "P2"
            reason = f"{subsystem} health {health:.2f}, below {WATCH_HEALTH}"
        elif score >= WATCH_SCORE:
            kind, priority = "anomaly", "P2"
            reason = f"{subsystem} anomaly score {score:.2f}, at or above {WATCH_SCORE}"
        elif _finite(earlier) and earlier - health >= settings.drift_drop:
            kind, priority = "drift", "P3"
            reason = f"{subsystem} health fell from {earlier:.2f} to {health:.2f}"
        else:
            continue
        code = f"{subsystem}.{kind}"
        rows.append(
            {
                **base(vin, s.fleet),
                "code": code,
                "priority": priority,
                "kind": kind,
                "subsystem": subsystem,
                "health": health,
                "anomaly_score": score,
                "confidence": math.nan,
                "days_left": math.nan,
                "days_low_left": math.nan,
                "days_high_left": math.nan,
                "action": _action(code, kind, priority),
                "reason": reason,
            }
        )
    if not rows:
        return _empty(ALERT_COLUMNS)
    table = pd.DataFrame(rows)
    table = table.sort_values(
        ["priority", "days_left", "health", "vin", "code"], na_position="last", kind="stable"
    )
    return table[list(ALERT_COLUMNS)].reset_index(drop=True)


# ---------------------------------------------------------------- cohorts


def log_factorials(n: int) -> npt.NDArray[np.float64]:
    """log(k!) for k = 0..n."""
    values: npt.NDArray[np.float64] = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1)))))
    return values


def enrichment_p(
    k: int, n: int, affected: int, total: int, logf: npt.NDArray[np.float64] | None = None
) -> float:
    """One-sided Fisher exact test: P(X >= k) for X hypergeometric, drawing n of `total`
    vehicles of which `affected` are affected. The chance that a group of n holds k or more
    affected vehicles if being affected had nothing to do with the group."""
    if logf is None or logf.size <= total:
        logf = log_factorials(total)
    low = max(k, n + affected - total, 0)
    high = min(n, affected)
    if k <= max(0, n + affected - total):
        return 1.0
    if low > high:
        return 0.0
    x = np.arange(low, high + 1)

    def log_choose(a: int | npt.NDArray[np.int64], b: int | npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        result: npt.NDArray[np.float64] = logf[a] - logf[b] - logf[np.subtract(a, b)]
        return result

    terms = log_choose(affected, x) + log_choose(total - affected, n - x) - log_choose(total, n)
    top = float(np.max(terms))
    return float(min(1.0, math.exp(top) * float(np.sum(np.exp(terms - top)))))


def benjamini_hochberg(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Benjamini-Hochberg adjusted p-values (q-values): reject those <= the FDR level."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(ranked, 1.0)
    return q


def signatures(fault_counts: pd.DataFrame, peaks: pd.DataFrame | None = None) -> pd.DataFrame:
    """vin, code: the anomaly signatures each vehicle showed in the window: every fault code
    it reported, and SUBSYSTEM.anomaly for a subsystem whose anomaly score reached 1 (the alert
    threshold) without any fault code of that subsystem."""
    rows = []
    named: set[tuple[str, str]] = set()
    if not fault_counts.empty:
        for r in fault_counts.itertuples(index=False):
            if float(getattr(r, "points", 1) or 0) > 0:
                rows.append((str(r.vin), str(r.code)))
                named.add((str(r.vin), str(r.code).split(".", 1)[0]))
    if peaks is not None and not peaks.empty:
        for r in peaks.itertuples(index=False):
            if float(r.max_score) >= 1.0 and (str(r.vin), str(r.subsystem)) not in named:
                rows.append((str(r.vin), f"{r.subsystem}{ANOMALY_SUFFIX}"))
    return pd.DataFrame(sorted(set(rows)), columns=["vin", "code"])


def cohort_id(attribute: str, value: str, code: str) -> str:
    return f"{attribute}={value}:{code}"


TEST_COLUMNS = ("attribute", "value", "code", "affected", "cohort_size", "lift", "p_value", "q_value")


@dataclass(frozen=True)
class CohortFindings:
    cohorts: pd.DataFrame  # COHORT_COLUMNS: the significant cohorts, campaigns first
    tests: pd.DataFrame  # TEST_COLUMNS: every (attribute, value, code) group tested

    @property
    def tested(self) -> int:
        """The m of Benjamini-Hochberg."""
        return len(self.tests)


@dataclass
class _Group:
    attribute: str
    value: str
    code: str
    members: frozenset[str]
    affected: int
    p_value: float
    q_value: float = 1.0
    share: float = 0.0
    base_rate: float = 0.0
    lift: float = 0.0
    status: str = "campaign"
    covered_by: str = ""

    @property
    def id(self) -> str:
        return cohort_id(self.attribute, self.value, self.code)


def _lift(k: int, n: int, k_rest: int, n_rest: int) -> float:
    """share / base rate, the base rate estimated as (k_rest + 0.5) / (n_rest + 1) so a rest
    without any affected vehicle gives a finite lift."""
    if n <= 0:
        return 0.0
    return (k / n) / ((k_rest + 0.5) / (n_rest + 1.0))


def _preference(attribute: str, code: str) -> int:
    """Which of several cohorts with the same vehicles names the campaign: the lot, then the
    supplier of the code's part, then other suppliers, then the model."""
    if attribute == "lot":
        return 0
    if attribute == SUPPLIER_OF.get(code.split(".", 1)[0]):
        return 1
    return 3 if attribute == "model" else 2


def find_cohorts(
    registry: pd.DataFrame,
    affected: pd.DataFrame,
    observed: Iterable[str],
    *,
    settings: AnalyticsSettings = DEFAULT_SETTINGS,
) -> CohortFindings:
    """Cohorts whose vehicles show a signature more often than the rest of the fleet.

    The fleet is the registered vehicles with data in the window (`observed`); `affected` is
    signatures(). For every attribute, value and signature: k affected of the cohort's n
    vehicles, K of the fleet's N. One-sided Fisher test of k against the rest of the fleet,
    Benjamini-Hochberg over all groups tested; a cohort is significant when q <= fdr,
    k >= min_affected and lift >= min_lift. Nested significant cohorts of one signature are
    then resolved (docs/analytics.md): a cohort whose excess lies wholly in smaller significant
    cohorts inside it, or that is no worse than the larger cohort around it, or that has the
    same vehicles as a preferred one, is `covered` by that cohort instead of a campaign."""
    seen = set(map(str, observed))
    fleet = registry[registry["vin"].astype(str).isin(seen)].drop_duplicates("vin")
    total = len(fleet)
    if total == 0 or affected.empty:
        return CohortFindings(_empty(COHORT_COLUMNS), _empty(TEST_COLUMNS))
    fleet_vins = set(fleet["vin"].astype(str))
    by_code = {
        str(code): frozenset(str(v) for v in group["vin"] if str(v) in fleet_vins)
        for code, group in affected.groupby("code")
    }
    by_code = {code: vins for code, vins in by_code.items() if vins}
    logf = log_factorials(total)
    groups: list[_Group] = []
    for attribute in settings.cohort_attributes:
        if attribute not in fleet.columns:
            continue
        values = fleet[attribute].astype(object).where(fleet[attribute].notna(), "").astype(str).str.strip()
        for value, members_frame in fleet.assign(_value=values.to_numpy()).groupby("_value"):
            members = frozenset(members_frame["vin"].astype(str))
            n = len(members)
            if not value or n >= total:
                continue
            for code, vins in sorted(by_code.items()):
                k = len(members & vins)
                big_k = len(vins)
                group = _Group(
                    attribute, str(value), code, members, k, enrichment_p(k, n, big_k, total, logf)
                )
                group.share = k / n
                group.base_rate = (big_k - k) / (total - n)
                group.lift = _lift(k, n, big_k - k, total - n)
                groups.append(group)
    q_values = benjamini_hochberg([g.p_value for g in groups])
    for group, q in zip(groups, q_values, strict=True):
        group.q_value = float(q)
    tests = pd.DataFrame(
        [
            (g.attribute, g.value, g.code, g.affected, len(g.members), g.lift, g.p_value, g.q_value)
            for g in groups
        ],
        columns=list(TEST_COLUMNS),
    )
    significant = [
        g
        for g in groups
        if g.q_value <= settings.fdr and g.affected >= settings.min_affected and g.lift >= settings.min_lift
    ]
    for code in sorted({g.code for g in significant}):
        _resolve_nesting(
            [g for g in significant if g.code == code], by_code[code], fleet_vins, logf, settings
        )
    registered = {
        attribute: registry[attribute]
        .astype(object)
        .where(registry[attribute].notna(), "")
        .astype(str)
        .str.strip()
        for attribute in settings.cohort_attributes
        if attribute in registry.columns
    }
    rows = []
    for g in significant:
        spec = FAULT_PARTS.get(g.code)
        subsystem = g.code.split(".", 1)[0]
        what = SUBSYSTEM_WORDS.get(subsystem, f"the {subsystem}")
        rows.append(
            {
                "cohort_id": g.id,
                "attribute": g.attribute,
                "value": g.value,
                "code": g.code,
                "affected": g.affected,
                "cohort_size": len(g.members),
                "registered": int((registered[g.attribute] == g.value).sum()),
                "share": g.share,
                "base_rate": g.base_rate,
                "lift": g.lift,
                "p_value": g.p_value,
                "q_value": g.q_value,
                "status": g.status,
                "covered_by": g.covered_by,
                "part": spec.part if spec else "",
                "part_name": spec.name if spec else "",
                "check": CAMPAIGN_CHECKS.get(
                    g.code, f"Inspect {what}: the detector flags unusual readings in this cohort."
                ),
            }
        )
    if not rows:
        return CohortFindings(_empty(COHORT_COLUMNS), tests)
    table = pd.DataFrame(rows)
    table = table.assign(_campaign=table["status"] != "campaign").sort_values(
        ["_campaign", "p_value", "cohort_id"], kind="stable"
    )
    return CohortFindings(table[list(COHORT_COLUMNS)].reset_index(drop=True), tests)


def _elevated(
    k: int, n: int, k_rest: int, n_rest: int, logf: npt.NDArray[np.float64], settings: AnalyticsSettings
) -> bool:
    """Is the share k/n clearly above k_rest/n_rest (same rules as a cohort, unadjusted)?"""
    if n <= 0 or n_rest <= 0 or k < settings.min_affected:
        return False
    p = enrichment_p(k, n, k + k_rest, n + n_rest, logf)
    return p <= settings.nested_alpha and _lift(k, n, k_rest, n_rest) >= settings.min_lift


def _resolve_nesting(
    groups: list[_Group],
    affected: frozenset[str],
    fleet: set[str],
    logf: npt.NDArray[np.float64],
    settings: AnalyticsSettings,
) -> None:
    """Mark which significant cohorts of one signature are campaigns and which are covered."""
    # 1. The same vehicles under several names: keep the preferred name.
    by_members: dict[frozenset[str], list[_Group]] = {}
    for g in groups:
        by_members.setdefault(g.members, []).append(g)
    for same in by_members.values():
        same.sort(key=lambda g: (_preference(g.attribute, g.code), g.id))
        for g in same[1:]:
            g.status, g.covered_by = "covered", same[0].id
    live = [g for g in groups if g.status == "campaign"]
    # 2. A cohort whose excess lies in the significant cohorts inside it (a model whose only
    #    bad lot is significant on its own) is covered by the one of them with most affected.
    for outer in sorted(live, key=lambda g: len(g.members)):
        inner = [g for g in live if g is not outer and g.members < outer.members and g.status == "campaign"]
        if not inner:
            continue
        rest = outer.members - frozenset().union(*(g.members for g in inner))
        outside = fleet - outer.members
        if not _elevated(
            len(rest & affected), len(rest), len(outside & affected), len(outside), logf, settings
        ):
            outer.status = "covered"
            outer.covered_by = max(inner, key=lambda g: (g.affected, -len(g.members))).id
    live = [g for g in groups if g.status == "campaign"]
    # 3. A cohort no worse than the rest of a larger campaign around it (one lot of a bad
    #    supplier) is covered by that campaign.
    for small in sorted(live, key=lambda g: len(g.members)):
        for outer in sorted(live, key=lambda g: len(g.members)):
            if outer is small or not small.members < outer.members or outer.status != "campaign":
                continue
            rest = outer.members - small.members
            if not _elevated(
                small.affected, len(small.members), len(rest & affected), len(rest), logf, settings
            ):
                small.status, small.covered_by = "covered", outer.id
                break
    # A cover that was covered in turn hands its vehicles on: point at the campaign.
    by_id = {g.id: g for g in groups}
    for g in groups:
        target, steps = g.covered_by, 0
        while target and by_id[target].status != "campaign" and steps < len(groups):
            target, steps = by_id[target].covered_by, steps + 1
        g.covered_by = target


def campaign_vehicles(
    cohorts: pd.DataFrame, registry: pd.DataFrame, affected: pd.DataFrame, observed: Iterable[str]
) -> pd.DataFrame:
    """Every registered vehicle of every campaign cohort (CAMPAIGN_COLUMNS): status
    `affected`, `not yet affected` (data in the window, signature not shown: the vehicles a
    campaign is for), or `no recent data`. Per cohort: affected first, then by VIN."""
    if cohorts.empty:
        return _empty(CAMPAIGN_COLUMNS)
    seen = set(map(str, observed))
    shown = (
        {(str(r.vin), str(r.code)) for r in affected.itertuples(index=False)} if not affected.empty else set()
    )
    rows = []
    for c in cohorts[cohorts["status"] == "campaign"].itertuples(index=False):
        column = str(c.attribute)
        values = registry[column].astype(object).where(registry[column].notna(), "").astype(str).str.strip()
        for v in registry[values == str(c.value)].itertuples(index=False):
            vin = str(v.vin)
            hit = (vin, str(c.code)) in shown
            status = "affected" if hit else ("not yet affected" if vin in seen else "no recent data")
            rows.append(
                {
                    "cohort_id": c.cohort_id,
                    "vin": vin,
                    "attribute": c.attribute,
                    "value": c.value,
                    "code": c.code,
                    "status": status,
                    "affected": hit,
                    "model": _text(getattr(v, "model", "")),
                    "lot": _text(getattr(v, "lot", "")),
                    "owner_name": _text(getattr(v, "owner_name", "")),
                    "owner_contact": _text(getattr(v, "owner_contact", "")),
                    "service_center": _text(getattr(v, "service_center", "")),
                    "part": c.part,
                    "check": c.check,
                }
            )
    if not rows:
        return _empty(CAMPAIGN_COLUMNS)
    table = pd.DataFrame(rows)
    order = {"affected": 0, "not yet affected": 1, "no recent data": 2}
    table = table.assign(_order=table["status"].map(order)).sort_values(["cohort_id", "_order", "vin"])
    return table[list(CAMPAIGN_COLUMNS)].reset_index(drop=True)


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


# ---------------------------------------------------------------- proactive service


def _ten_percent_days(days: float, low: float) -> float:
    """The 10% quantile of the days to failure: the record's days_low, or without one the
    split log-normal default spread of prognos.cloud.parts (days x exp(-1.2816 x 0.5))."""
    if _finite(low):
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
        return _empty(SERVICE_COLUMNS)
    frame = faults[pd.to_numeric(faults["days_to_threshold"], errors="coerce").notna()]
    if frame.empty:
        return _empty(SERVICE_COLUMNS)
    today = _day_start(now_ms)
    people = registry.drop_duplicates("vin").set_index(registry.drop_duplicates("vin")["vin"].astype(str))
    per_vin: dict[str, list[tuple[int, float, float, str]]] = {}
    fleets: dict[str, str] = {}
    for f in frame.itertuples(index=False):
        estimated = float(f.estimated_at) if _finite(getattr(f, "estimated_at", math.nan)) else float(f.time)
        elapsed = (now_ms - estimated) / DAY_MS
        days = float(f.days_to_threshold)
        low = _ten_percent_days(days, float(f.days_low) if _finite(f.days_low) else math.nan)
        high = float(f.days_high) if _finite(f.days_high) else math.nan
        failure_ms = estimated + days * DAY_MS
        due_ms = max(int(estimated + (low - settings.service_margin_days) * DAY_MS), today)
        days_left = days - elapsed
        spec = FAULT_PARTS.get(str(f.code))
        text = f"{f.code}: {_days_text(days_left, low - elapsed, high - elapsed)}"
        if spec is not None:
            text += f", {spec.name} ({spec.part})"
        per_vin.setdefault(str(f.vin), []).append((due_ms, failure_ms, days_left, f"{f.code}\t{text}"))
        fleets[str(f.vin)] = _text(getattr(f, "fleet", ""))
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
                "fleet": fleets.get(vin, "") or (_text(person.get("fleet")) if person is not None else ""),
                "owner_name": _text(person.get("owner_name")) if person is not None else "",
                "owner_contact": _text(person.get("owner_contact")) if person is not None else "",
                "service_center": _text(person.get("service_center")) if person is not None else "",
                "registered": known,
                "due_ms": first[0],
                "due_date": _day(first[0]),
                "failure_ms": int(min(item[1] for item in items)),
                "failure_date": _day(min(item[1] for item in items)),
                "days_left": min(item[2] for item in items),
                "codes": ", ".join(codes),
                "parts": ", ".join(parts),
                "reason": "; ".join(item[3].split("\t", 1)[1] for item in items),
            }
        )
    table = pd.DataFrame(rows).sort_values(["due_ms", "failure_ms", "vin"], kind="stable")
    return table[list(SERVICE_COLUMNS)].reset_index(drop=True)


# ---------------------------------------------------------------- maintenance intervals


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
                days = float(f.days_to_threshold) if _finite(f.days_to_threshold) else math.nan
                if vin in found or not (_finite(health) and _finite(days) and days > 0):
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
                    "next_service_date": _day(now_ms + next_days * DAY_MS) if _finite(next_days) else "",
                }
            )
    if not rows:
        return _empty(INTERVAL_COLUMNS)
    table = pd.DataFrame(rows).sort_values(["interval_days", "vin"], kind="stable")
    return table[list(INTERVAL_COLUMNS)].reset_index(drop=True)


# ---------------------------------------------------------------- parts plan


def parts_failures(faults: pd.DataFrame, registry: pd.DataFrame, now_ms: int) -> pd.DataFrame:
    """The failures table of prognos.cloud.parts from the open faults: days counted from `now_ms`
    (week 1 starts now), codes without a part left out, vehicles placed at their home service
    center (prognos.cloud.parts.failures_from_faults)."""
    columns = ["vin", "code", "days_to_threshold", "days_low", "days_high"]
    if faults.empty or registry.empty:
        return failures_from_faults(_empty(columns), _empty(["vin", "service_center"]))
    left = remaining_days(faults[faults["code"].isin(list(FAULT_PARTS))], now_ms)
    frame = pd.DataFrame(
        {
            "vin": left["vin"].astype(str),
            "code": left["code"].astype(str),
            "days_to_threshold": left["days_left"],
            "days_low": left["days_low_left"],
            "days_high": left["days_high_left"],
        }
    )
    centers = registry[["vin", "service_center"]].copy()
    centers["service_center"] = centers["service_center"].map(_text).str.strip()
    centers = centers[centers["service_center"] != ""]
    return failures_from_faults(frame, centers)


@dataclass(frozen=True)
class Inputs:
    """Everything the analytics read (the frames of the module docstring)."""

    registry: pd.DataFrame
    states: pd.DataFrame
    last_seen: pd.DataFrame
    faults: pd.DataFrame
    fault_counts: pd.DataFrame
    peaks: pd.DataFrame
    baseline: pd.DataFrame
    wear: pd.DataFrame
    stock: pd.DataFrame


@dataclass(frozen=True)
class Results:
    vehicles: pd.DataFrame  # prognos.cloud.fleet_health.vehicle_table
    alerts: pd.DataFrame  # ALERT_COLUMNS
    cohorts: pd.DataFrame  # COHORT_COLUMNS
    campaign: pd.DataFrame  # CAMPAIGN_COLUMNS
    service: pd.DataFrame  # SERVICE_COLUMNS
    intervals: pd.DataFrame  # INTERVAL_COLUMNS
    parts_weekly: pd.DataFrame  # prognos.cloud.parts.WEEKLY_COLUMNS
    parts_reorder: pd.DataFrame  # prognos.cloud.parts.REORDER_COLUMNS
    cohorts_tested: int
    registered: int  # vehicles in the registry
    observed: int  # vehicles with data in the window
    unregistered: int  # vehicles with data that the registry does not hold


def analyse(
    inputs: Inputs,
    now_ms: int,
    *,
    horizon_weeks: int = 8,
    settings: AnalyticsSettings = DEFAULT_SETTINGS,
) -> Results:
    """Every analysis of this module on one set of inputs, as of `now_ms`."""
    registry = inputs.registry
    opened = open_faults(inputs.faults, inputs.last_seen)
    vehicles = vehicle_table(inputs.states, opened[["vin", "code", "time"]] if not opened.empty else opened)
    alerts = vehicle_alerts(inputs.states, opened, now_ms, baseline=inputs.baseline, settings=settings)
    observed = set(inputs.states["vin"].astype(str)) if not inputs.states.empty else set()
    shown = signatures(inputs.fault_counts, inputs.peaks)
    findings = find_cohorts(registry, shown, observed, settings=settings)
    campaign = campaign_vehicles(findings.cohorts, registry, shown, observed)
    service = service_list(opened, registry, now_ms, settings=settings)
    intervals = maintenance_intervals(inputs.wear, inputs.states, opened, now_ms, settings=settings)
    failures = parts_failures(opened, registry, now_ms)
    planned = {spec.part for spec in FAULT_PARTS.values()}  # other parts have no predicted demand
    stock = inputs.stock[inputs.stock["part"].isin(planned)] if not inputs.stock.empty else None
    stock = stock if stock is not None and not stock.empty else None
    if failures.empty and stock is None:
        weekly, reorder = _empty(WEEKLY_COLUMNS), _empty(REORDER_COLUMNS)
    else:
        plan = plan_parts(failures, None, stock, horizon_weeks=horizon_weeks)
        weekly, reorder = plan.weekly, plan.reorder
    known = set(registry["vin"].astype(str)) if not registry.empty else set()
    return Results(
        vehicles=vehicles,
        alerts=alerts,
        cohorts=findings.cohorts,
        campaign=campaign,
        service=service,
        intervals=intervals,
        parts_weekly=weekly,
        parts_reorder=reorder,
        cohorts_tested=findings.tested,
        registered=len(known),
        observed=len(observed),
        unregistered=len(observed - known),
    )
