"""The analytics job: read InfluxDB, run prognos.cloud.analytics, write the results back as one snapshot.

Every query is fixed text with bound parameters; aggregation runs in InfluxDB (the latest
point per vehicle and subsystem or fault code, maxima, counts, daily sums). Whole settled days
are read from daily rollups the job keeps in InfluxDB itself (SELECT ... INTO, one point per
series and day, in the `rollup` retention policy: `health_day`, `diag_day`, `fault_day`, each
day marked in `analytics_rollup_day`), the rest of the window from the raw points, so a run's cost grows with
vehicles x subsystems x days, not with raw records; the results are the same as from the raw
points alone (section "Daily rollups" below).

A run at time T writes a snapshot: every result point is stamped T, and an `analytics_run`
point at T, written last, says the snapshot is complete. Running again at the same T first
deletes that snapshot, so nothing is duplicated and nothing stale is left; a run at a new T
adds a new snapshot. Snapshots older than `keep_days` are deleted. The parts plan's kept
forecasts are not part of a snapshot: stamped with their plan's ISO week, they stay (kept_lines).
Every measurement written is declared in prognos.cloud.storage.schema and written through
prognos.cloud.storage.writer; docs/analytics.md says what the dashboard reads in them.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from prognos.cloud.analytics.analyse import Results, analyse
from prognos.cloud.analytics.common import DAY_MS, DEFAULT_SETTINGS, AnalyticsSettings
from prognos.cloud.analytics.reading import (
    DEFAULT_LOOKBACK_DAYS,
    PRECISION,
    job_writer,
    query_rows,
    read_inputs,
    rfc3339,
)
from prognos.cloud.storage import schema
from prognos.cloud.storage.client import InfluxClient, quote_identifier
from prognos.cloud.storage.encode import encode, encode_row
from prognos.cloud.storage.measurement import Measurement
from prognos.errors import ConfigError, TransientError

log = logging.getLogger(__name__)

DEFAULT_HORIZON_WEEKS = 8
DEFAULT_KEEP_DAYS = 30.0
QUERY_TIMEOUT_S = 120.0  # aggregates over a fleet's month may take a while on a busy server


def _lines_at(measurement: Measurement, frame: pd.DataFrame, time_column: str) -> list[str]:
    """One point per row with a field value, each stamped with its own `time_column`."""
    lines = []
    for record in frame.to_dict("records"):
        line = encode_row(measurement, record, int(record[time_column]))
        if line is not None:
            lines.append(line)
    return lines


def _lead_tags(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(lead=[f"{int(k):02d}" for k in frame["lead"]]) if not frame.empty else frame


def kept_lines(results: Results) -> list[str]:
    """The points kept across snapshots (prognos.cloud.parts.accuracy): this run's plan, stamped
    with the Monday of its ISO week (a later run of the week replaces it), and the actual of the
    kept weeks that ended lately, written into their points."""
    actuals = results.parts_actuals[["origin_ms", "service_center", "part", "lead", "actual"]]
    return [
        *_lines_at(schema.PARTS_FORECAST_KEPT, _lead_tags(results.parts_kept), "origin_ms"),
        *_lines_at(schema.PARTS_FORECAST_KEPT, _lead_tags(actuals), "origin_ms"),
    ]


def _lines(measurement: Measurement, frame: pd.DataFrame, ts_ms: int) -> list[str]:
    """One point per row with a field value (prognos.cloud.storage.encode.encode_row)."""
    lines = []
    for record in frame.to_dict("records"):
        line = encode_row(measurement, record, ts_ms)
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


def _bands(vehicles: pd.DataFrame) -> pd.DataFrame:
    """The vehicle table as `vehicle_band` points (the counts' basis, so the dashboard's charts
    group exactly the vehicles its counts hold)."""
    if vehicles.empty:
        return vehicles.reindex(columns=["vin", *schema.VEHICLE_BAND.fields])
    seen = pd.to_numeric(vehicles["last_seen"], errors="coerce")
    return vehicles.assign(last_seen_ms=seen)[["vin", *schema.VEHICLE_BAND.fields]]


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
    decisions = results.parts_decisions.assign(rank=np.arange(1, len(results.parts_decisions) + 1))
    lines = [
        *_lines(schema.ALERT, alerts, as_of_ms),
        *_lines(schema.COHORT, cohorts, as_of_ms),
        *_lines(schema.CAMPAIGN_VEHICLE, campaign, as_of_ms),
        *_lines(schema.SERVICE_LIST, service, as_of_ms),
        *_lines(schema.VEHICLE_BAND, _bands(results.vehicles), as_of_ms),
        *_lines(schema.MAINTENANCE_INTERVAL, results.intervals, as_of_ms),
        *_lines(schema.PARTS_FORECAST, weekly, as_of_ms),
        *_lines(schema.PARTS_REORDER, results.parts_reorder, as_of_ms),
        *_lines(schema.PARTS_DECISION, decisions, as_of_ms),
        *_lines(schema.PARTS_ACCURACY, results.parts_accuracy, as_of_ms),
        *_lines(
            schema.PARTS_CAMPAIGN, results.parts_campaign.rename(columns={"cohort_id": "cohort"}), as_of_ms
        ),
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
        "parts_orders": int((results.parts_decisions["action"] == "order").sum()),
        "parts_transfers": int((results.parts_decisions["action"] == "transfer").sum()),
        "parts_campaign": len(results.parts_campaign),
        "parts_kept": len(results.parts_kept),
        "parts_accuracy": len(results.parts_accuracy),
    }
    return lines, counts


def _delete(
    influx: InfluxClient, database: str, measurement: str, condition: str, params: dict[str, str]
) -> None:
    influx.query(
        f"DELETE FROM {quote_identifier(measurement)} WHERE {condition}",
        database=database,
        params=params,
        method="POST",
    )


BEGUN = schema.ANALYTICS_BEGUN.name  # one point per snapshot whose writing began: where results may lie


def _any(influx: InfluxClient, database: str, condition: str, params: dict[str, str]) -> bool:
    """Whether a snapshot was begun or completed at the times of `condition` (the two marker
    measurements are one series each: cheap to ask, unlike the results themselves)."""
    for name, field_key in ((BEGUN, "begun"), (schema.ANALYTICS_RUN.name, "alerts")):
        text = f"SELECT count({quote_identifier(field_key)}) FROM {quote_identifier(name)} WHERE {condition}"
        if any(row.get("count") for row in query_rows(influx, database, text, params)):
            return True
    return False


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
    previous complete snapshot. Then delete the snapshots older than keep_days.

    Deleting costs InfluxDB a pass over every series of a measurement, so it is done only where
    a snapshot was begun (an `analytics_begun` point, written before the results) or completed."""
    at = {"t": rfc3339(as_of_ms)}
    if _any(influx, database, "time >= $t AND time <= $t", at):
        _delete(influx, database, schema.ANALYTICS_RUN.name, "time >= $t AND time <= $t", at)
        for measurement in schema.ANALYTICS_RESULTS:
            _delete(influx, database, measurement.name, "time >= $t AND time <= $t", at)
    writer = job_writer(influx, database)
    writer.write([encode(schema.ANALYTICS_BEGUN, {}, {"begun": True}, as_of_ms)], precision=PRECISION)
    writer.write(lines, precision=PRECISION)
    marker = encode_row(schema.ANALYTICS_RUN, counts, as_of_ms)
    if marker is not None:
        writer.write([marker], precision=PRECISION)
    if keep_days is not None and keep_days > 0:
        cutoff = {"cutoff": rfc3339(as_of_ms - int(keep_days * DAY_MS))}
        if _any(influx, database, "time < $cutoff", cutoff):
            for name in (*(m.name for m in schema.ANALYTICS_RESULTS), schema.ANALYTICS_RUN.name, BEGUN):
                _delete(influx, database, name, "time < $cutoff", cutoff)


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
    now_ms: int | None = None,
) -> RunSummary:
    """One run: read, analyse, write the snapshot at `as_of_ms` (default: now, to the second).
    Days count as settled (rolled up) by `now_ms`, default the clock."""
    if lookback_days <= 0:
        raise ConfigError(f"the lookback must be a positive number of days, not {lookback_days:g}")
    if horizon_weeks <= 0:
        raise ConfigError(f"the horizon must be a positive number of weeks, not {horizon_weeks}")
    started = time.monotonic()
    now = as_of_ms if as_of_ms is not None else int(time.time()) * 1000
    inputs = read_inputs(influx, database, now, lookback_days=lookback_days, settings=settings, now_ms=now_ms)
    if inputs.registry.empty:
        log.warning(
            "the vehicle registry is empty: no cohorts, owners or parts plan (import it with import-dms)"
        )
    results = analyse(inputs, now, horizon_weeks=horizon_weeks, settings=settings)
    lines, counts = snapshot(results, now, lookback_days=lookback_days, horizon_weeks=horizon_weeks)
    counts["duration_s"] = round(time.monotonic() - started, 3)
    write_snapshot(influx, database, [*lines, *kept_lines(results)], counts, now, keep_days=keep_days)
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
