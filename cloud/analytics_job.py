"""The analytics job: read InfluxDB, run cloud.analytics, write the results back as one snapshot.

Every query is fixed text with bound parameters; aggregation runs in InfluxDB (the latest
point per vehicle and subsystem or fault code, maxima, counts, daily means), so the job's cost
grows with vehicles x subsystems, not with raw records.

A run at time T writes a snapshot: every result point is stamped T, and an `analytics_run`
point at T, written last, says the snapshot is complete. Running again at the same T first
deletes that snapshot, so nothing is duplicated and nothing stale is left; a run at a new T
adds a new snapshot. Snapshots older than `keep_days` are deleted. docs/analytics.md is the
schema the dashboard reads.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from cloud.analytics import (
    DAY_MS,
    DEFAULT_SETTINGS,
    AnalyticsSettings,
    Inputs,
    Results,
    analyse,
    open_faults,
    parts_failures,
)
from cloud.dealer_data import vehicles
from cloud.influx import BatchTooLargeError, InfluxClient, quote_identifier
from cloud.lineprotocol import escape_key, string_field
from cloud.parts import DEFAULT_LEAD_TIME_WEEKS
from prognos.errors import ConfigError, RejectedError, TransientError

log = logging.getLogger(__name__)

DEFAULT_LOOKBACK_DAYS = 30.0
DEFAULT_HORIZON_WEEKS = 8
DEFAULT_KEEP_DAYS = 30.0
BASELINE_DAYS = 7.0  # the drift baseline: mean health over the window's first days
BATCH_LINES = 5000

FieldType = str  # "float", "integer", "string" or "boolean", as SHOW FIELD KEYS names them


@dataclass(frozen=True)
class Measurement:
    name: str
    tags: tuple[str, ...]
    fields: Mapping[str, FieldType]


def _measurement(name: str, tags: tuple[str, ...], **fields: FieldType) -> Measurement:
    return Measurement(name, tags, fields)


FLOAT, INTEGER, STRING, BOOLEAN = "float", "integer", "string", "boolean"

ALERT = _measurement(
    "alert",
    ("fleet", "vin", "code", "priority"),
    rank=INTEGER,
    kind=STRING,
    subsystem=STRING,
    health=FLOAT,
    anomaly_score=FLOAT,
    confidence=FLOAT,
    days_left=FLOAT,
    days_low_left=FLOAT,
    days_high_left=FLOAT,
    band=STRING,
    vehicle_health=FLOAT,
    last_seen_ms=INTEGER,
    action=STRING,
    reason=STRING,
)
COHORT = _measurement(
    "cohort",
    ("attribute", "value", "code"),
    cohort_id=STRING,
    affected=INTEGER,
    cohort_size=INTEGER,
    registered=INTEGER,
    share=FLOAT,
    base_rate=FLOAT,
    lift=FLOAT,
    p_value=FLOAT,
    q_value=FLOAT,
    status=STRING,
    covered_by=STRING,
    part=STRING,
    part_name=STRING,
    check=STRING,
    campaign_vehicles=INTEGER,
    not_yet_affected=INTEGER,
)
CAMPAIGN_VEHICLE = _measurement(
    "campaign_vehicle",
    ("cohort", "vin"),
    attribute=STRING,
    value=STRING,
    code=STRING,
    status=STRING,
    affected=BOOLEAN,
    model=STRING,
    lot=STRING,
    owner_name=STRING,
    owner_contact=STRING,
    service_center=STRING,
    part=STRING,
    check=STRING,
)
SERVICE_LIST = _measurement(
    "service_list",
    ("vin",),
    rank=INTEGER,
    fleet=STRING,
    owner_name=STRING,
    owner_contact=STRING,
    service_center=STRING,
    registered=BOOLEAN,
    due_date=STRING,
    due_ms=INTEGER,
    failure_date=STRING,
    failure_ms=INTEGER,
    days_left=FLOAT,
    codes=STRING,
    parts=STRING,
    reason=STRING,
)
MAINTENANCE_INTERVAL = _measurement(
    "maintenance_interval",
    ("vin", "part"),
    subsystem=STRING,
    method=STRING,
    days_of_data=INTEGER,
    health=FLOAT,
    wear_rate_per_day=FLOAT,
    fleet_rate_per_day=FLOAT,
    relative_rate=FLOAT,
    standard_interval_days=FLOAT,
    interval_days=FLOAT,
    next_service_days=FLOAT,
    next_service_date=STRING,
)
PARTS_FORECAST = _measurement(
    "parts_forecast",
    ("service_center", "part", "week"),
    week_index=INTEGER,
    week_start_ms=INTEGER,
    week_start=STRING,
    baseline=FLOAT,
    from_failures=FLOAT,
    forecast=FLOAT,
    low=INTEGER,
    high=INTEGER,
)
PARTS_REORDER = _measurement(
    "parts_reorder",
    ("service_center", "part"),
    on_hand=FLOAT,
    on_order=FLOAT,
    lead_time_weeks=FLOAT,
    review_weeks=FLOAT,
    protection_demand=FLOAT,
    safety_stock=FLOAT,
    reorder_point=INTEGER,
    order_qty=INTEGER,
)
ANALYTICS_RUN = _measurement(
    "analytics_run",
    (),
    window_start_ms=INTEGER,
    lookback_days=FLOAT,
    horizon_weeks=INTEGER,
    vehicles_registered=INTEGER,
    vehicles_observed=INTEGER,
    vehicles_unregistered=INTEGER,
    vehicles_act=INTEGER,
    vehicles_watch=INTEGER,
    vehicles_healthy=INTEGER,
    alerts=INTEGER,
    alerts_p1=INTEGER,
    alerts_p2=INTEGER,
    alerts_p3=INTEGER,
    cohorts_tested=INTEGER,
    cohorts=INTEGER,
    campaigns=INTEGER,
    campaign_vehicles=INTEGER,
    service_list=INTEGER,
    maintenance_intervals=INTEGER,
    parts_forecast=INTEGER,
    parts_reorder=INTEGER,
    duration_s=FLOAT,
)
RESULT_MEASUREMENTS = (
    ALERT,
    COHORT,
    CAMPAIGN_VEHICLE,
    SERVICE_LIST,
    MAINTENANCE_INTERVAL,
    PARTS_FORECAST,
    PARTS_REORDER,
)
SCHEMA: dict[str, Measurement] = {m.name: m for m in (*RESULT_MEASUREMENTS, ANALYTICS_RUN)}


# ---------------------------------------------------------------- points (pure)


def point(measurement: Measurement, values: Mapping[str, Any], ts_ms: int) -> str | None:
    """One line of line protocol: the measurement's tags and fields taken from `values`, each
    field as its schema type. Unknown values (None, NaN) and empty tags are left out; a point
    without any field is None."""
    tags = "".join(
        f",{escape_key(tag)}={escape_key(str(values[tag]))}"
        for tag in sorted(measurement.tags)
        if values.get(tag) is not None and str(values[tag]) != ""
    )
    parts = []
    for name, kind in measurement.fields.items():
        value = values.get(name)
        if value is None or (isinstance(value, float | np.floating) and not math.isfinite(float(value))):
            continue
        if kind == FLOAT:
            text = repr(float(value))
        elif kind == INTEGER:
            text = f"{int(value)}i"
        elif kind == BOOLEAN:
            text = "true" if bool(value) else "false"
        else:
            text = string_field(str(value))
        parts.append(f"{escape_key(name)}={text}")
    if not parts:
        return None
    return f"{escape_key(measurement.name)}{tags} {','.join(parts)} {ts_ms}"


def _lines(measurement: Measurement, frame: pd.DataFrame, ts_ms: int) -> list[str]:
    lines = []
    for record in frame.to_dict("records"):
        line = point(measurement, record, ts_ms)
        if line is not None:
            lines.append(line)
    return lines


@dataclass(frozen=True)
class RunSummary:
    """What a run computed, as the analytics_run point holds it."""

    as_of_ms: int
    counts: dict[str, float]

    def __getitem__(self, name: str) -> float:
        return self.counts[name]


def snapshot(
    results: Results, as_of_ms: int, *, lookback_days: float, horizon_weeks: int
) -> tuple[list[str], dict[str, float]]:
    """The result points of one run, all stamped `as_of_ms`, and the run's counts."""
    alerts = results.alerts.assign(rank=np.arange(1, len(results.alerts) + 1))
    service = results.service.assign(rank=np.arange(1, len(results.service) + 1))
    cohorts = results.cohorts.copy()
    campaign = results.campaign.rename(columns={"cohort_id": "cohort"})
    if not cohorts.empty:
        per_cohort = campaign.groupby("cohort")["status"]
        cohorts["campaign_vehicles"] = cohorts["cohort_id"].map(per_cohort.size()).fillna(0)
        not_yet = campaign[campaign["status"] == "not yet affected"].groupby("cohort").size()
        cohorts["not_yet_affected"] = cohorts["cohort_id"].map(not_yet).fillna(0)
    weekly = results.parts_weekly.rename(columns={"lower": "low", "upper": "high"})
    if not weekly.empty:
        index = weekly["week"].astype(int)
        weekly = weekly.assign(
            week=[f"{k:02d}" for k in index],
            week_index=index,
            week_start_ms=as_of_ms + (index - 1) * 7 * DAY_MS,
            week_start=[
                datetime.fromtimestamp((as_of_ms + (k - 1) * 7 * DAY_MS) / 1000, UTC).date().isoformat()
                for k in index
            ],
        )
    lines = [
        *_lines(ALERT, alerts, as_of_ms),
        *_lines(COHORT, cohorts, as_of_ms),
        *_lines(CAMPAIGN_VEHICLE, campaign, as_of_ms),
        *_lines(SERVICE_LIST, service, as_of_ms),
        *_lines(MAINTENANCE_INTERVAL, results.intervals, as_of_ms),
        *_lines(PARTS_FORECAST, weekly, as_of_ms),
        *_lines(PARTS_REORDER, results.parts_reorder, as_of_ms),
    ]
    bands = results.vehicles["band"].value_counts() if not results.vehicles.empty else pd.Series(dtype=int)
    priorities = (
        results.alerts["priority"].value_counts() if not results.alerts.empty else pd.Series(dtype=int)
    )
    campaigns = results.cohorts[results.cohorts["status"] == "campaign"] if not results.cohorts.empty else []
    counts: dict[str, float] = {
        "window_start_ms": as_of_ms - int(lookback_days * DAY_MS),
        "lookback_days": float(lookback_days),
        "horizon_weeks": horizon_weeks,
        "vehicles_registered": results.registered,
        "vehicles_observed": results.observed,
        "vehicles_unregistered": results.unregistered,
        "vehicles_act": int(bands.get("act", 0)),
        "vehicles_watch": int(bands.get("watch", 0)),
        "vehicles_healthy": int(bands.get("healthy", 0)),
        "alerts": len(results.alerts),
        "alerts_p1": int(priorities.get("P1", 0)),
        "alerts_p2": int(priorities.get("P2", 0)),
        "alerts_p3": int(priorities.get("P3", 0)),
        "cohorts_tested": results.cohorts_tested,
        "cohorts": len(results.cohorts),
        "campaigns": len(campaigns),
        "campaign_vehicles": len(results.campaign),
        "service_list": len(results.service),
        "maintenance_intervals": len(results.intervals),
        "parts_forecast": len(results.parts_weekly),
        "parts_reorder": len(results.parts_reorder),
    }
    return lines, counts


# ---------------------------------------------------------------- reading


def rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


WINDOW = "time > $start AND time <= $end"
Q_STATES = (
    'SELECT last("health") AS health, "anomaly_score" FROM vehicle_health '
    f"WHERE {WINDOW} GROUP BY fleet, vin, subsystem"
)
Q_LAST_SEEN = f'SELECT last("seq") AS seq FROM diag WHERE {WINDOW} GROUP BY fleet, vin'
Q_FAULTS = f'SELECT last("confidence") AS confidence FROM fault WHERE {WINDOW} GROUP BY fleet, vin, code'
Q_ESTIMATES = (
    'SELECT last("days_to_threshold") AS days_to_threshold, "days_low", "days_high" FROM fault '
    f"WHERE {WINDOW} GROUP BY vin, code"
)
Q_FAULT_COUNTS = f'SELECT count("confidence") AS points FROM fault WHERE {WINDOW} GROUP BY vin, code'
Q_PEAKS = (
    f'SELECT max("anomaly_score") AS max_score FROM vehicle_health WHERE {WINDOW} GROUP BY vin, subsystem'
)
Q_BASELINE = (
    'SELECT mean("health") AS health FROM vehicle_health '
    "WHERE time > $start AND time <= $baseline_end GROUP BY vin, subsystem"
)
Q_WEAR = (
    'SELECT mean("health") AS health FROM vehicle_health '
    f'WHERE "subsystem" = $subsystem AND {WINDOW} GROUP BY time(1d), vin fill(none)'
)
Q_STOCK = (
    'SELECT last("on_hand") AS on_hand, "on_order", "lead_time_weeks" FROM parts_stock '
    "GROUP BY dealer_id, service_center, part"
)


def _frame(
    influx: InfluxClient, database: str, text: str, params: Mapping[str, str], columns: tuple[str, ...]
) -> pd.DataFrame:
    try:
        series = influx.query(text, database=database, params=dict(params))
    except RejectedError as exc:
        if "database not found" in str(exc):
            raise ConfigError(f"database {database!r} does not exist in InfluxDB") from exc
        raise
    frame = pd.DataFrame([row for s in series for row in s.rows()])
    for column in columns:
        if column not in frame.columns:
            frame[column] = pd.Series(
                dtype=object if column in ("fleet", "vin", "code", "subsystem") else float
            )
    return frame[list(columns)].reset_index(drop=True)


def _window(as_of_ms: int, lookback_days: float) -> dict[str, str]:
    return {"start": rfc3339(as_of_ms - int(lookback_days * DAY_MS)), "end": rfc3339(as_of_ms)}


def read_faults(influx: InfluxClient, database: str, as_of_ms: int, lookback_days: float) -> pd.DataFrame:
    """Per vehicle and fault code: the latest point and the latest days estimate (the `faults`
    frame of cloud.analytics)."""
    window = _window(as_of_ms, lookback_days)
    latest = _frame(influx, database, Q_FAULTS, window, ("fleet", "vin", "code", "time", "confidence"))
    estimates = _frame(
        influx,
        database,
        Q_ESTIMATES,
        window,
        ("vin", "code", "time", "days_to_threshold", "days_low", "days_high"),
    ).rename(columns={"time": "estimated_at"})
    if latest.empty:
        return latest.assign(
            **{
                c: pd.Series(dtype=float)
                for c in ("days_to_threshold", "days_low", "days_high", "estimated_at")
            }
        )
    latest = latest.groupby(["vin", "code"], as_index=False).agg(
        fleet=("fleet", "last"), time=("time", "max"), confidence=("confidence", "last")
    )
    merged = latest.merge(estimates, on=["vin", "code"], how="left")
    return merged[
        [
            "fleet",
            "vin",
            "code",
            "time",
            "confidence",
            "days_to_threshold",
            "days_low",
            "days_high",
            "estimated_at",
        ]
    ]


def read_last_seen(influx: InfluxClient, database: str, as_of_ms: int, lookback_days: float) -> pd.DataFrame:
    return _frame(influx, database, Q_LAST_SEEN, _window(as_of_ms, lookback_days), ("fleet", "vin", "time"))


def read_registry(influx: InfluxClient, database: str) -> pd.DataFrame:
    try:
        return vehicles(influx, database)
    except RejectedError as exc:
        if "database not found" in str(exc):
            raise ConfigError(f"database {database!r} does not exist in InfluxDB") from exc
        raise


def read_stock(
    influx: InfluxClient, database: str, *, default_lead_time_weeks: float = DEFAULT_LEAD_TIME_WEEKS
) -> pd.DataFrame:
    """The latest count of every store and part imported from DMS `parts_stock`, as the stock
    table of cloud.parts: a row without a service center is the dealer's one store (named by
    the dealer id); a missing lead time is `default_lead_time_weeks`, a missing on_order 0."""
    frame = _frame(
        influx,
        database,
        Q_STOCK,
        {},
        ("dealer_id", "service_center", "part", "on_hand", "on_order", "lead_time_weeks"),
    )
    columns = ["service_center", "part", "on_hand", "on_order", "lead_time_weeks"]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=str if c in columns[:2] else float) for c in columns})
    center = frame["service_center"].fillna("").astype(str).str.strip()
    frame["service_center"] = center.where(center != "", frame["dealer_id"].astype(str))
    frame["on_order"] = pd.to_numeric(frame["on_order"], errors="coerce").fillna(0.0)
    frame["lead_time_weeks"] = pd.to_numeric(frame["lead_time_weeks"], errors="coerce").fillna(
        default_lead_time_weeks
    )
    frame["on_hand"] = pd.to_numeric(frame["on_hand"], errors="coerce").fillna(0.0)
    grouped = frame.groupby(["service_center", "part"], as_index=False).agg(
        on_hand=("on_hand", "sum"), on_order=("on_order", "sum"), lead_time_weeks=("lead_time_weeks", "max")
    )
    return grouped[columns]


def read_inputs(
    influx: InfluxClient,
    database: str,
    as_of_ms: int,
    *,
    lookback_days: float = DEFAULT_LOOKBACK_DAYS,
    settings: AnalyticsSettings = DEFAULT_SETTINGS,
) -> Inputs:
    """Everything cloud.analytics.analyse needs, for the window (as_of - lookback, as_of]."""
    window = _window(as_of_ms, lookback_days)
    baseline_end = as_of_ms - int(max(lookback_days - BASELINE_DAYS, 0.0) * DAY_MS)
    states = _frame(
        influx, database, Q_STATES, window, ("fleet", "vin", "subsystem", "time", "health", "anomaly_score")
    )
    wear = [
        _frame(
            influx, database, Q_WEAR, {**window, "subsystem": item.subsystem}, ("vin", "time", "health")
        ).assign(subsystem=item.subsystem)
        for item in settings.wear_items
    ]
    return Inputs(
        registry=read_registry(influx, database),
        states=states,
        last_seen=read_last_seen(influx, database, as_of_ms, lookback_days),
        faults=read_faults(influx, database, as_of_ms, lookback_days),
        fault_counts=_frame(influx, database, Q_FAULT_COUNTS, window, ("vin", "code", "points")),
        peaks=_frame(influx, database, Q_PEAKS, window, ("vin", "subsystem", "max_score")),
        baseline=_frame(
            influx,
            database,
            Q_BASELINE,
            {"start": window["start"], "baseline_end": rfc3339(baseline_end)},
            ("vin", "subsystem", "health"),
        ),
        wear=pd.concat(wear, ignore_index=True)
        if wear
        else pd.DataFrame(columns=["vin", "time", "health", "subsystem"]),
        stock=read_stock(influx, database),
    )


def read_failures(
    influx: InfluxClient, database: str, as_of_ms: int, *, lookback_days: float = DEFAULT_LOOKBACK_DAYS
) -> pd.DataFrame:
    """The failures table of cloud.parts from the open faults and the registry, days counted
    from `as_of_ms` (for `prognos forecast parts` without --failures)."""
    faults = read_faults(influx, database, as_of_ms, lookback_days)
    opened = open_faults(faults, read_last_seen(influx, database, as_of_ms, lookback_days))
    return parts_failures(opened, read_registry(influx, database), as_of_ms)


# ---------------------------------------------------------------- writing


def _delete(
    influx: InfluxClient, database: str, measurement: str, condition: str, params: dict[str, str]
) -> None:
    influx.query(
        f"DELETE FROM {quote_identifier(measurement)} WHERE {condition}",
        database=database,
        params=params,
        method="POST",
    )


def _write(influx: InfluxClient, database: str, lines: list[str]) -> None:
    for start in range(0, len(lines), BATCH_LINES):
        _write_batch(influx, database, lines[start : start + BATCH_LINES])


def _write_batch(influx: InfluxClient, database: str, batch: list[str]) -> None:
    try:
        influx.write(database, batch, precision="ms")
    except BatchTooLargeError:
        if len(batch) == 1:
            raise
        half = len(batch) // 2
        _write_batch(influx, database, batch[:half])
        _write_batch(influx, database, batch[half:])


def write_snapshot(
    influx: InfluxClient,
    database: str,
    lines: list[str],
    counts: Mapping[str, float],
    as_of_ms: int,
    *,
    keep_days: float | None = DEFAULT_KEEP_DAYS,
) -> None:
    """Replace the snapshot at `as_of_ms`: delete its run marker and results, write the results,
    then the marker. A run that fails midway leaves no marker, so readers keep using the
    previous complete snapshot. Then delete the snapshots older than keep_days."""
    at = {"t": rfc3339(as_of_ms)}
    _delete(influx, database, ANALYTICS_RUN.name, "time >= $t AND time <= $t", at)
    for measurement in RESULT_MEASUREMENTS:
        _delete(influx, database, measurement.name, "time >= $t AND time <= $t", at)
    _write(influx, database, lines)
    marker = point(ANALYTICS_RUN, counts, as_of_ms)
    if marker is not None:
        _write(influx, database, [marker])
    if keep_days is not None and keep_days > 0:
        cutoff = {"cutoff": rfc3339(as_of_ms - int(keep_days * DAY_MS))}
        for measurement in (*RESULT_MEASUREMENTS, ANALYTICS_RUN):
            _delete(influx, database, measurement.name, "time < $cutoff", cutoff)


# ---------------------------------------------------------------- the job

_UNITS_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration_s(text: str, *, what: str = "duration") -> float:
    """`90s`, `15m`, `1h`, `30d`, `2w` (or a bare number of seconds) in seconds; ConfigError
    unless it is a positive length of time."""
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in _UNITS_S else "s"
    number = value[:-1] if value[-1:] in _UNITS_S else value
    try:
        seconds = float(number) * _UNITS_S[unit]
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{what} {text!r} is not a positive length of time (like 90s, 15m, 1h, 30d)")
    return seconds


def parse_time_ms(text: str) -> int:
    """An ISO 8601 time (UTC when it has no offset) in epoch milliseconds; ConfigError if not."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{text!r} is not an ISO 8601 time (like 2024-03-01T08:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def run_once(
    influx: InfluxClient,
    database: str,
    *,
    as_of_ms: int | None = None,
    lookback_days: float = DEFAULT_LOOKBACK_DAYS,
    horizon_weeks: int = DEFAULT_HORIZON_WEEKS,
    keep_days: float | None = DEFAULT_KEEP_DAYS,
    settings: AnalyticsSettings = DEFAULT_SETTINGS,
) -> RunSummary:
    """One run: read, analyse, write the snapshot at `as_of_ms` (default: now, to the second)."""
    if lookback_days <= 0:
        raise ConfigError(f"the lookback must be a positive number of days, not {lookback_days:g}")
    if horizon_weeks <= 0:
        raise ConfigError(f"the horizon must be a positive number of weeks, not {horizon_weeks}")
    started = time.monotonic()
    now = as_of_ms if as_of_ms is not None else int(time.time()) * 1000
    inputs = read_inputs(influx, database, now, lookback_days=lookback_days, settings=settings)
    if inputs.registry.empty:
        log.warning(
            "the vehicle registry is empty: no cohorts, owners or parts plan (import it with import-dms)"
        )
    results = analyse(inputs, now, horizon_weeks=horizon_weeks, settings=settings)
    lines, counts = snapshot(results, now, lookback_days=lookback_days, horizon_weeks=horizon_weeks)
    counts["duration_s"] = round(time.monotonic() - started, 3)
    write_snapshot(influx, database, lines, counts, now, keep_days=keep_days)
    log.info("analytics snapshot %s: %d points", rfc3339(now), len(lines) + 1)
    return RunSummary(now, counts)


def run_every(
    influx: InfluxClient,
    database: str,
    *,
    every_s: float,
    stop: threading.Event,
    on_run: Callable[[RunSummary], object] = lambda summary: None,
    on_error: Callable[[TransientError], object] = lambda error: None,
    lookback_days: float = DEFAULT_LOOKBACK_DAYS,
    horizon_weeks: int = DEFAULT_HORIZON_WEEKS,
    keep_days: float | None = DEFAULT_KEEP_DAYS,
    settings: AnalyticsSettings = DEFAULT_SETTINGS,
) -> int:
    """Run now and then every `every_s` seconds (counted from each run's start) until `stop`
    is set; returns the number of runs that completed. A run that finds the database
    unreachable is reported to `on_error` and the loop goes on; other errors end it."""
    if every_s <= 0:
        raise ConfigError("the interval must be positive")
    done = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            summary = run_once(
                influx,
                database,
                lookback_days=lookback_days,
                horizon_weeks=horizon_weeks,
                keep_days=keep_days,
                settings=settings,
            )
            on_run(summary)
            done += 1
        except TransientError as exc:
            log.warning("analytics run failed, next run in %.0f s: %s", every_s, exc)
            on_error(exc)
        stop.wait(max(0.0, every_s - (time.monotonic() - started)))
    return done
