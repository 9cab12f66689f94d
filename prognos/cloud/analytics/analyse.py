"""Fleet analytics: alerts with priorities, cohorts and campaigns, the proactive service list,
personalised maintenance intervals and the parts plan. Pure: DataFrames in, DataFrames out;
prognos/cloud/analytics/job.py reads the inputs from InfluxDB and writes the results back.
docs/analytics.md states every rule and formula.

Input frames (times are epoch milliseconds, UTC):

- registry: the `vehicle` kind of prognos.cloud.dealers.dms (vin, model, lot, *_supplier, owner_name,
  owner_contact, service_center, fleet, ...); one row per vehicle.
- states: fleet, vin, subsystem, time, health, anomaly_score: each subsystem's latest state in
  the lookback window (the frame prognos.cloud.analytics.fleet_health takes).
- last_seen: fleet, vin, time: the end of each vehicle's latest record.
- faults: fleet, vin, code, time, confidence, days_to_threshold, days_low, days_high,
  estimated_at: per vehicle and fault code its latest `fault` point (time, confidence) and the
  latest days-to-threshold estimate with its 80% interval, stamped `estimated_at` (NaN when the
  fault never carried one).
- fault_counts: vin, code, points: fault points per vehicle and code in the window.
- peaks: vin, subsystem, max_score: the highest anomaly score per subsystem in the window.
- baseline: vin, subsystem, health: mean health over the first days of the window.
- wear: vin, subsystem, time, health: daily mean health of the wear subsystems (WEAR_ITEMS).
- stock: service_center, part, on_hand, on_order, lead_time_weeks (prognos.cloud.parts.plan.check_stock).
- part_uses: vin, service_center, part, time: one row per part unit fitted on a DMS work order
  (prognos.cloud.parts.history.part_uses), the parts plan's demand history.
- parts_master: the DMS `part` kind (part, name, unit_cost, currency, pack_size, min_order, ...).
- service_centers: the DMS `service_center` kind (service_center, dealer_id, lat, lon, ...):
  where stock may move between centers (prognos.cloud.parts.decisions.transfer_lanes).
- parts_kept: the kept weekly forecasts of earlier plans (prognos.cloud.parts.accuracy.KEPT_COLUMNS
  and `actual`), the last TRACK_WEEKS weeks of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from prognos.cloud.analytics.alerts import open_faults, remaining_days, vehicle_alerts
from prognos.cloud.analytics.cohorts import as_text, campaign_vehicles, find_cohorts, signatures
from prognos.cloud.analytics.common import DEFAULT_SETTINGS, AnalyticsSettings, empty_frame
from prognos.cloud.analytics.fleet_health import vehicle_table
from prognos.cloud.analytics.service import maintenance_intervals, service_list
from prognos.cloud.parts.accuracy import (
    KEPT_COLUMNS,
    REFRESH_WEEKS,
    TRACK_WEEKS,
    WEEK_MS,
    accuracy_table,
    kept_forecast,
    with_actuals,
)
from prognos.cloud.parts.decisions import (
    CAMPAIGN_STOCK_COLUMNS,
    DECISION_COLUMNS,
    campaign_stock,
    decide,
    transfer_lanes,
)
from prognos.cloud.parts.history import USE_COLUMNS, demand_history, unrepaired
from prognos.cloud.parts.master import MASTER_COLUMNS, with_costs, with_lead_times, with_names
from prognos.cloud.parts.plan import (
    FAULT_PARTS,
    REORDER_COLUMNS,
    WEEKLY_COLUMNS,
    failures_from_faults,
    plan_parts,
)

CENTER_COLUMNS = ("service_center", "dealer_id", "lat", "lon")


def parts_failures(faults: pd.DataFrame, registry: pd.DataFrame, now_ms: int) -> pd.DataFrame:
    """The failures table of prognos.cloud.parts.plan from the open faults: days counted from `now_ms`
    (week 1 starts now), codes without a part left out, vehicles placed at their home service
    center (prognos.cloud.parts.plan.failures_from_faults)."""
    columns = ["vin", "code", "days_to_threshold", "days_low", "days_high"]
    if faults.empty or registry.empty:
        return failures_from_faults(empty_frame(columns), empty_frame(["vin", "service_center"]))
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
    centers["service_center"] = centers["service_center"].map(as_text).str.strip()
    centers = centers[centers["service_center"] != ""]
    return failures_from_faults(frame, centers)


@dataclass(frozen=True)
class PartsResults:
    weekly: pd.DataFrame  # WEEKLY_COLUMNS with the part's name, weeks numbered 1..horizon
    reorder: pd.DataFrame  # REORDER_COLUMNS with the master's columns and the decisions' (decide)
    decisions: pd.DataFrame  # prognos.cloud.parts.decisions.DECISION_COLUMNS
    campaign: pd.DataFrame  # prognos.cloud.parts.decisions.CAMPAIGN_STOCK_COLUMNS
    kept: pd.DataFrame  # prognos.cloud.parts.accuracy.KEPT_COLUMNS: this plan, to keep
    actuals: pd.DataFrame  # KEPT_COLUMNS + actual: kept weeks that ended lately, to write again
    accuracy: pd.DataFrame  # prognos.cloud.parts.accuracy.ACCURACY_COLUMNS


def parts_plan(
    inputs: Inputs,
    opened: pd.DataFrame,
    now_ms: int,
    *,
    horizon_weeks: int,
    campaign: pd.DataFrame | None = None,
    cohorts: pd.DataFrame | None = None,
) -> PartsResults:
    """The weekly forecast, the reorder table, this week's transfers and orders, and the
    campaigns' pre-stock: the demand history of the work orders' part uses (whole ISO weeks
    before now) as the baseline, plus the predicted failures of the open faults not repaired
    since (prognos.cloud.parts.history.unrepaired). The weeks are numbered 1..horizon_weeks from
    now. Stock of a part with neither a predicted failure nor a history is left out. The parts
    master adds each part's name, each order's packs and cost and the lead time of a pair
    without a stock row (prognos.cloud.parts.master); the service centers' places where stock
    may move (prognos.cloud.parts.decisions)."""
    uses = inputs.part_uses
    failures = parts_failures(unrepaired(opened, uses), inputs.registry, now_ms)
    history = demand_history(uses, before_ms=now_ms)
    planned = {spec.part for spec in FAULT_PARTS.values()} | set(history["part"])
    stock = inputs.stock[inputs.stock["part"].isin(planned)] if not inputs.stock.empty else None
    stock = stock if stock is not None and not stock.empty else None
    compared = with_actuals(inputs.parts_kept, uses, now_ms=now_ms, since_ms=now_ms - TRACK_WEEKS * WEEK_MS)
    actuals = compared[compared["window_end_ms"] > now_ms - REFRESH_WEEKS * WEEK_MS].reset_index(drop=True)
    accuracy = accuracy_table(compared)
    if failures.empty and stock is None and history.empty:
        return PartsResults(
            empty_frame(WEEKLY_COLUMNS),
            empty_frame(REORDER_COLUMNS),
            empty_frame(DECISION_COLUMNS),
            empty_frame(CAMPAIGN_STOCK_COLUMNS),
            empty_frame(KEPT_COLUMNS),
            actuals,
            accuracy,
        )
    pairs = zip(
        [*failures["service_center"], *history["service_center"]],
        [*failures["part"], *history["part"]],
        strict=True,
    )
    stock = with_lead_times(stock, pairs, inputs.parts_master)
    plan = plan_parts(failures, history, stock, horizon_weeks=horizon_weeks)
    index = {label: str(k + 1) for k, label in enumerate(plan.week_labels)}
    weekly = with_names(plan.weekly.assign(week=plan.weekly["week"].map(index)), inputs.parts_master)
    lanes = transfer_lanes(inputs.service_centers)
    decided = decide(with_costs(plan.reorder, inputs.parts_master), weekly, lanes, now_ms=now_ms)
    stocked = campaign_stock(
        campaign if campaign is not None else empty_frame(("cohort_id", "vin", "service_center", "part")),
        cohorts if cohorts is not None else empty_frame(("cohort_id", "share")),
        failures,
        decided.plan,
        inputs.parts_master,
    )
    named = weekly.rename(columns={"lower": "low", "upper": "high"})
    kept = kept_forecast(named.assign(week_index=named["week"].astype(int)), history, now_ms)
    return PartsResults(weekly, decided.plan, decided.lines, stocked, kept, actuals, accuracy)


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
    part_uses: pd.DataFrame = field(default_factory=lambda: empty_frame(USE_COLUMNS))
    parts_master: pd.DataFrame = field(default_factory=lambda: empty_frame(MASTER_COLUMNS))
    service_centers: pd.DataFrame = field(default_factory=lambda: empty_frame(CENTER_COLUMNS))
    parts_kept: pd.DataFrame = field(default_factory=lambda: empty_frame((*KEPT_COLUMNS, "actual")))


@dataclass(frozen=True)
class Results:
    vehicles: pd.DataFrame  # prognos.cloud.analytics.fleet_health.vehicle_table
    alerts: pd.DataFrame  # ALERT_COLUMNS
    cohorts: pd.DataFrame  # COHORT_COLUMNS
    campaign: pd.DataFrame  # CAMPAIGN_COLUMNS
    service: pd.DataFrame  # SERVICE_COLUMNS
    intervals: pd.DataFrame  # INTERVAL_COLUMNS
    parts_weekly: pd.DataFrame  # prognos.cloud.parts.plan.WEEKLY_COLUMNS
    parts_reorder: pd.DataFrame  # prognos.cloud.parts.plan.REORDER_COLUMNS, costs, decisions
    parts_decisions: pd.DataFrame  # prognos.cloud.parts.decisions.DECISION_COLUMNS
    parts_campaign: pd.DataFrame  # prognos.cloud.parts.decisions.CAMPAIGN_STOCK_COLUMNS
    parts_kept: pd.DataFrame  # prognos.cloud.parts.accuracy.KEPT_COLUMNS, stamped origin_ms
    parts_actuals: pd.DataFrame  # kept weeks with their actual, stamped origin_ms
    parts_accuracy: pd.DataFrame  # prognos.cloud.parts.accuracy.ACCURACY_COLUMNS
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
    parts = parts_plan(
        inputs, opened, now_ms, horizon_weeks=horizon_weeks, campaign=campaign, cohorts=findings.cohorts
    )
    known = set(registry["vin"].astype(str)) if not registry.empty else set()
    return Results(
        vehicles=vehicles,
        alerts=alerts,
        cohorts=findings.cohorts,
        campaign=campaign,
        service=service,
        intervals=intervals,
        parts_weekly=parts.weekly,
        parts_reorder=parts.reorder,
        parts_decisions=parts.decisions,
        parts_campaign=parts.campaign,
        parts_kept=parts.kept,
        parts_actuals=parts.actuals,
        parts_accuracy=parts.accuracy,
        cohorts_tested=findings.tested,
        registered=len(known),
        observed=len(observed),
        unregistered=len(observed - known),
    )
