"""Every query the dashboard makes, cached, with bound parameters: pages import only this,
charts and widgets.

Where the database is comes from PROGNOS_INFLUX_URL, or else from the stack in PROGNOS_HOME;
the database name from PROGNOS_DATABASE (default prognos).

Rules kept here:
- Query text is fixed. Values (VINs, cohort ids, snapshot times) are bound parameters; time
  ranges and buckets come from the fixed tables RANGES and HISTORY_RANGES, never from text a
  user typed.
- The fleet-wide pages read the analytics job's latest snapshot (docs/analytics.md): one
  `analytics_run` marker and the result points stamped with its time. Raw measurements are read
  per vehicle (one VIN's series, in time buckets), or over short windows with LAST() and GROUP
  BY, so a page's cost grows with what it shows (alerts, one vehicle, the last hour of gateway
  status), not with the records stored.
- A database that cannot be reached raises DataUnavailableError; a database that does not
  exist (yet) answers as empty, which the pages show as "no data yet".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from prognos.cloud.dealers.data import DealerReport, dealer_report
from prognos.cloud.storage import schema
from prognos.cloud.storage.client import InfluxClient
from prognos.errors import ConfigError, PrognosError, RejectedError
from prognos.ops.state import default_home, load_stack

LOOKBACK = "30d"  # the window of the per-vehicle raw queries
DEALER_MONTHS = 13  # months of DMS data the dealer page reads: a year and the month under way
RECORDS_LIMIT = 2000  # records of one vehicle read for its history
DEAD_LETTERS_LIMIT = 100
GATEWAY_WINDOW = "1h"  # a gateway not heard from for this long is silent (docs/dashboard.md)

# Choices offered by the pages, each with the text it puts into a query (never user text).
# label -> (range, bucket of the downsampled series)
RANGES: dict[str, tuple[str, str]] = {
    "1 hour": ("1h", "1m"),
    "24 hours": ("24h", "15m"),
    "7 days": ("7d", "2h"),
    "30 days": ("30d", "6h"),
}
HISTORY_RANGES: dict[str, tuple[str, str]] = {
    "7 days": ("7d", "1h"),
    "30 days": ("30d", "3h"),
}
TTL_SNAPSHOT_S = 30  # how soon a new analytics snapshot shows
TTL_RESULTS_S = 600  # results of one snapshot (they do not change once the marker is written)
TTL_REGISTRY_S = 300
TTL_VEHICLE_S = 60
TTL_DEALERS_S = 600
TTL_SYSTEM_S = 15
TTL_GATEWAYS_S = 60  # gateways refresh their status once a minute


class DataUnavailableError(PrognosError):
    """The database cannot be reached or asked; the message says why, for the page to show."""


@dataclass(frozen=True)
class Snapshot:
    """The latest complete analytics snapshot: its time and its counts (analytics_run fields)."""

    time_ms: int
    counts: dict[str, float]

    @property
    def at(self) -> str:
        """The snapshot time as RFC 3339, the bound parameter of `time = $t`."""
        return rfc3339(self.time_ms)

    def count(self, name: str) -> int:
        value = self.counts.get(name)
        return int(value) if value is not None and value == value else 0


def rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def database() -> str:
    return os.environ.get("PROGNOS_DATABASE", "prognos")


def influx_login() -> tuple[str, str | None, str | None]:
    """URL, user and password of the database: PROGNOS_INFLUX_URL (with PROGNOS_INFLUX_USER and
    PROGNOS_INFLUX_PASSWORD) or the stack in PROGNOS_HOME, logged in as its read-only role."""
    url = os.environ.get("PROGNOS_INFLUX_URL")
    if url:
        return url, os.environ.get("PROGNOS_INFLUX_USER"), os.environ.get("PROGNOS_INFLUX_PASSWORD")
    home = Path(os.environ["PROGNOS_HOME"]) if "PROGNOS_HOME" in os.environ else default_home()
    try:
        info = load_stack(home)
        credentials = info.influx_credentials("dashboard")
    except ConfigError as exc:
        raise DataUnavailableError(str(exc)) from exc
    if credentials is None:
        return info.influx_url, None, None
    return info.influx_url, credentials.username, credentials.password


@st.cache_resource
def _client(url: str, username: str | None, password: str | None) -> InfluxClient:
    return InfluxClient(url, timeout_s=10.0, username=username, password=password)


def _rows(text: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    client = _client(*influx_login())
    try:
        series = client.query(text, database=database(), params=params)
    except RejectedError as exc:
        if "database not found" in str(exc):
            return []
        raise DataUnavailableError(f"the database refused the query: {exc}") from exc
    except PrognosError as exc:
        raise DataUnavailableError(str(exc)) from exc
    return [row for s in series for row in s.rows()]


def _frame(text: str, params: dict[str, Any] | None = None, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """The answer as a DataFrame, with at least `columns` (empty ones when absent)."""
    frame = pd.DataFrame(_rows(text, params))
    for column in columns:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype=object)
    return frame


# ---------------------------------------------------------------- analytics snapshot


@st.cache_data(ttl=TTL_SNAPSHOT_S, show_spinner=False)
def latest_snapshot() -> Snapshot | None:
    """The latest complete snapshot, or None before the analytics job has run."""
    rows = _rows('SELECT * FROM "analytics_run" ORDER BY time DESC LIMIT 1')
    if not rows:
        return None
    row = rows[0]
    counts = {k: float(v) for k, v in row.items() if k != "time" and isinstance(v, int | float)}
    return Snapshot(int(row["time"]), counts)


@st.cache_data(ttl=TTL_SNAPSHOT_S, show_spinner=False)
def snapshot_history() -> pd.DataFrame:
    """Band and alert counts of every kept snapshot of the last 30 days, oldest first."""
    return _frame(
        'SELECT "vehicles_observed", "vehicles_act", "vehicles_watch", "vehicles_healthy", "alerts", '
        f'"alerts_p1", "alerts_p2", "alerts_p3" FROM "analytics_run" WHERE time > now() - {LOOKBACK}',
        columns=("time", "vehicles_act", "vehicles_watch", "vehicles_healthy"),
    )


ALERT_COLUMNS = schema.ALERT.column_names(first=("rank", "priority", "vin", "fleet", "code"))


@st.cache_data(ttl=TTL_RESULTS_S, show_spinner=False)
def alerts(at: str) -> pd.DataFrame:
    """The snapshot's alerts, most urgent first (rank 1)."""
    frame = _frame('SELECT * FROM "alert" WHERE time = $t', {"t": at}, ALERT_COLUMNS)
    return frame.sort_values("rank", kind="stable")[list(ALERT_COLUMNS)].reset_index(drop=True)


SERVICE_COLUMNS = schema.SERVICE_LIST.column_names(first=("rank", "vin"))


@st.cache_data(ttl=TTL_RESULTS_S, show_spinner=False)
def service_list(at: str) -> pd.DataFrame:
    """The snapshot's proactive service list: vehicles with a predicted failure, earliest due
    first (docs/analytics.md)."""
    frame = _frame('SELECT * FROM "service_list" WHERE time = $t', {"t": at}, SERVICE_COLUMNS)
    return frame.sort_values("rank", kind="stable")[list(SERVICE_COLUMNS)].reset_index(drop=True)


BAND_COLUMNS = schema.VEHICLE_BAND.column_names(first=("vin", "band"))


@st.cache_data(ttl=TTL_RESULTS_S, show_spinner=False)
def vehicle_bands(at: str) -> pd.DataFrame:
    """Every vehicle with data in the snapshot's window, with its band (the counts' basis)."""
    return _frame('SELECT * FROM "vehicle_band" WHERE time = $t', {"t": at}, BAND_COLUMNS)[list(BAND_COLUMNS)]


FINDING_COLUMNS = schema.CONDITION_FINDING.column_names(first=("code", "condition"))


@st.cache_data(ttl=TTL_RESULTS_S, show_spinner=False)
def condition_run() -> dict[str, Any] | None:
    """The latest condition-mining run's marker (its time as `time`, ms), or None before the first."""
    rows = _rows('SELECT * FROM "condition_run" ORDER BY time DESC LIMIT 1')
    return rows[0] if rows else None


@st.cache_data(ttl=TTL_RESULTS_S, show_spinner=False)
def condition_findings(at: str) -> pd.DataFrame:
    """Every test of the run at `at`: findings first, then by lift."""
    frame = _frame('SELECT * FROM "condition_finding" WHERE time = $t', {"t": at}, FINDING_COLUMNS)
    if frame.empty:
        return frame[list(FINDING_COLUMNS)]
    frame = frame.sort_values(["finding", "lift"], ascending=[False, False], kind="stable")
    return frame[list(FINDING_COLUMNS)].reset_index(drop=True)


INTERVAL_COLUMNS = schema.MAINTENANCE_INTERVAL.column_names(first=("vin", "part"))


@st.cache_data(ttl=TTL_RESULTS_S, show_spinner=False)
def vehicle_intervals(at: str, vin: str) -> pd.DataFrame:
    """The vehicle's personalised maintenance intervals in the snapshot, one row per wear part."""
    frame = _frame(
        'SELECT * FROM "maintenance_interval" WHERE time = $t AND "vin" = $vin',
        {"t": at, "vin": vin},
        INTERVAL_COLUMNS,
    )
    return frame.sort_values("next_service_days", kind="stable").reset_index(drop=True)


COHORT_COLUMNS = schema.COHORT.column_names(
    first=("cohort_id", "attribute", "value", "code", "status", "covered_by")
)


@st.cache_data(ttl=TTL_RESULTS_S, show_spinner=False)
def cohorts(at: str) -> pd.DataFrame:
    """The snapshot's significant cohorts: campaigns first, then by affected vehicles."""
    frame = _frame('SELECT * FROM "cohort" WHERE time = $t', {"t": at}, COHORT_COLUMNS)
    if frame.empty:
        return frame[list(COHORT_COLUMNS)]
    frame = frame.assign(_campaign=frame["status"] != "campaign")
    frame = frame.sort_values(["_campaign", "affected", "cohort_id"], ascending=[True, False, True])
    return frame[list(COHORT_COLUMNS)].reset_index(drop=True)


# What the campaign page lists of each vehicle.
CAMPAIGN_COLUMNS = schema.CAMPAIGN_VEHICLE.select(
    "vin",
    "status",
    "model",
    "lot",
    "owner_name",
    "owner_contact",
    "service_center",
    "part",
    "check",
    "cohort",
)
STATUS_ORDER = {"affected": 0, "not yet affected": 1, "no recent data": 2}


@st.cache_data(ttl=TTL_RESULTS_S, show_spinner=False)
def campaign_vehicles(at: str, cohort: str) -> pd.DataFrame:
    """Every registered vehicle of one campaign cohort: affected first, then by VIN."""
    frame = _frame(
        'SELECT * FROM "campaign_vehicle" WHERE time = $t AND "cohort" = $cohort',
        {"t": at, "cohort": cohort},
        CAMPAIGN_COLUMNS,
    )
    if frame.empty:
        return frame[list(CAMPAIGN_COLUMNS)]
    order = frame["status"].map(STATUS_ORDER).fillna(len(STATUS_ORDER))
    frame = frame.assign(_order=order).sort_values(["_order", "vin"])
    return frame[list(CAMPAIGN_COLUMNS)].reset_index(drop=True)


FORECAST_COLUMNS = schema.PARTS_FORECAST.column_names(
    first=("service_center", "part", "name"), without=("week_start_ms",)
)


@st.cache_data(ttl=TTL_RESULTS_S, show_spinner=False)
def parts_forecast(at: str) -> pd.DataFrame:
    """Weekly part demand per service center and part, with its 90% interval."""
    frame = _frame('SELECT * FROM "parts_forecast" WHERE time = $t', {"t": at}, FORECAST_COLUMNS)
    frame["name"] = frame["name"].fillna(frame["part"])  # a snapshot from before the parts master
    frame = frame.sort_values(["service_center", "part", "week"])
    return frame[list(FORECAST_COLUMNS)].reset_index(drop=True)


REORDER_COLUMNS = schema.PARTS_REORDER.column_names(first=("service_center", "part", "name"))


@st.cache_data(ttl=TTL_RESULTS_S, show_spinner=False)
def parts_reorder(at: str) -> pd.DataFrame:
    """The reorder recommendation per service center and part, with the part's name and the
    order's cost (prognos.cloud.parts.master): largest orders first."""
    frame = _frame('SELECT * FROM "parts_reorder" WHERE time = $t', {"t": at}, REORDER_COLUMNS)
    frame["name"] = frame["name"].fillna(frame["part"])
    for column in ("transfer_from", "transfer_to", "reason", "supplier", "currency"):
        frame[column] = frame[column].fillna("")  # absent from a snapshot from before the decisions
    frame = frame.sort_values(["order_qty", "service_center", "part"], ascending=[False, True, True])
    return frame[list(REORDER_COLUMNS)].reset_index(drop=True)


DECISION_COLUMNS = schema.PARTS_DECISION.column_names(
    first=("rank", "action", "service_center", "part", "from_center", "name")
)


@st.cache_data(ttl=TTL_RESULTS_S, show_spinner=False)
def parts_decisions(at: str) -> pd.DataFrame:
    """This week's transfers and orders (prognos.cloud.parts.decisions), most urgent first."""
    frame = _frame('SELECT * FROM "parts_decision" WHERE time = $t', {"t": at}, DECISION_COLUMNS)
    frame["from_center"] = frame["from_center"].fillna("")
    frame["supplier"] = frame["supplier"].fillna("")
    frame = frame.sort_values("rank")
    return frame[list(DECISION_COLUMNS)].reset_index(drop=True)


CAMPAIGN_STOCK_COLUMNS = schema.PARTS_CAMPAIGN.column_names(
    first=("cohort", "service_center", "part", "name")
)


@st.cache_data(ttl=TTL_RESULTS_S, show_spinner=False)
def parts_campaign(at: str) -> pd.DataFrame:
    """The campaigns' parts to pre-stock per cohort, service center and part: most units first."""
    frame = _frame('SELECT * FROM "parts_campaign" WHERE time = $t', {"t": at}, CAMPAIGN_STOCK_COLUMNS)
    frame = frame.sort_values(["to_stock", "cohort", "service_center"], ascending=[False, True, True])
    return frame[list(CAMPAIGN_STOCK_COLUMNS)].reset_index(drop=True)


ACCURACY_COLUMNS = schema.PARTS_ACCURACY.column_names()


@st.cache_data(ttl=TTL_RESULTS_S, show_spinner=False)
def parts_accuracy(at: str) -> pd.DataFrame:
    """The kept plans' forecast against actual per service center and part family, the row over
    everything (`all`, `all`) first (prognos.cloud.parts.accuracy)."""
    frame = _frame('SELECT * FROM "parts_accuracy" WHERE time = $t', {"t": at}, ACCURACY_COLUMNS)
    frame = frame.assign(_all=frame["service_center"] != "all").sort_values(
        ["_all", "service_center", "family"]
    )
    return frame[list(ACCURACY_COLUMNS)].reset_index(drop=True)


KEPT_COLUMNS = ("service_center", "part", "name", "window_start_ms", "forecast", "low", "high", "actual")
KEPT_WEEKS = 26  # the kept plans the page compares (prognos.cloud.parts.accuracy.TRACK_WEEKS)


@st.cache_data(ttl=TTL_RESULTS_S, show_spinner=False)
def parts_forecast_actual(at: str) -> pd.DataFrame:
    """The kept forecasts one week ahead of the plans of the last KEPT_WEEKS weeks whose week has
    passed, with what was used (`at`, the snapshot, only renews the cache)."""
    frame = _frame(
        'SELECT "name", "window_start_ms", "forecast", "low", "high", "actual" FROM "parts_forecast_kept" '
        f'WHERE "lead" = $lead AND time > now() - {KEPT_WEEKS}w GROUP BY "service_center", "part"',
        {"lead": "01"},
        KEPT_COLUMNS,
    )
    frame = frame[pd.to_numeric(frame["actual"], errors="coerce").notna()]
    return frame[list(KEPT_COLUMNS)].sort_values("window_start_ms").reset_index(drop=True)


def pairs_by_demand(weekly: pd.DataFrame) -> list[tuple[str, str]]:
    """The (service center, part) pairs of the weekly forecast, most expected units first."""
    totals = weekly.groupby(["service_center", "part"], as_index=False)["forecast"].sum()
    totals = totals.sort_values(["forecast", "service_center", "part"], ascending=[False, True, True])
    return [(str(c), str(p)) for c, p in zip(totals["service_center"], totals["part"], strict=True)]


def order_cost_text(orders: pd.DataFrame, column: str = "order_cost") -> str:
    """The summed cost of the orders per currency ("1,234.50 EUR"); "-" when no order has a
    cost (parts without a parts master row)."""
    costs = pd.to_numeric(orders[column], errors="coerce")
    known = orders.assign(cost=costs)[costs.notna()]
    if known.empty:
        return "-"
    sums = known.groupby(known["currency"].fillna("").astype(str))["cost"].sum()
    return ", ".join(f"{total:,.2f} {currency}".strip() for currency, total in sums.items())


# ---------------------------------------------------------------- registry

# What the pages show of a registered vehicle: the tag vin and these fields.
REGISTRY_COLUMNS = schema.DMS["vehicle"].select(
    "vin",
    "model",
    "lot",
    "region",
    "service_center",
    "fleet",
    "owner_name",
    "owner_contact",
    "production_date_ms",
)


@st.cache_data(ttl=TTL_REGISTRY_S, show_spinner=False)
def registry() -> pd.DataFrame:
    """The vehicle registry imported from the DMS (docs/dms.md): one row per VIN."""
    columns = ", ".join(f'"{name}"' for name in REGISTRY_COLUMNS)  # the tag vin and the fields shown
    frame = _frame(f'SELECT {columns} FROM "vehicle"', columns=REGISTRY_COLUMNS)
    return frame[list(REGISTRY_COLUMNS)].sort_values("vin").reset_index(drop=True)


# ---------------------------------------------------------------- one vehicle


@st.cache_data(ttl=TTL_VEHICLE_S, show_spinner=False)
def vehicle_history(vin: str, range_label: str) -> pd.DataFrame:
    """Health (mean) and anomaly score (max) per subsystem in time buckets: downsampled so a
    month is a few hundred points per subsystem."""
    span, bucket = HISTORY_RANGES[range_label]
    return _frame(
        'SELECT mean("health") AS health, max("anomaly_score") AS anomaly_score FROM "vehicle_health" '
        f'WHERE "vin" = $vin AND time > now() - {span} GROUP BY time({bucket}), "subsystem" fill(none)',
        {"vin": vin},
        ("time", "subsystem", "health", "anomaly_score"),
    )


@st.cache_data(ttl=TTL_VEHICLE_S, show_spinner=False)
def vehicle_faults(vin: str) -> pd.DataFrame:
    """Per fault code: its latest point (time, confidence) and the latest days-to-threshold
    estimate with its 80% interval (estimated_at: that estimate's time)."""
    window = f'"vin" = $vin AND time > now() - {LOOKBACK}'
    latest = _frame(
        f'SELECT last("confidence") AS confidence FROM "fault" WHERE {window} GROUP BY "code"',
        {"vin": vin},
        ("code", "time", "confidence"),
    )
    estimates = _frame(
        'SELECT last("days_to_threshold") AS days_to_threshold, "days_low", "days_high" FROM "fault" '
        f'WHERE {window} GROUP BY "code"',
        {"vin": vin},
        ("code", "time", "days_to_threshold", "days_low", "days_high"),
    ).rename(columns={"time": "estimated_at"})
    if latest.empty:
        return latest.assign(days_to_threshold=None, days_low=None, days_high=None, estimated_at=None)
    return latest.merge(estimates, on="code", how="left").sort_values("time", ascending=False)


@st.cache_data(ttl=TTL_VEHICLE_S, show_spinner=False)
def vehicle_records(vin: str, range_label: str) -> pd.DataFrame:
    """The vehicle's records in the range, newest first (at most RECORDS_LIMIT)."""
    span, _ = HISTORY_RANGES[range_label]
    return _frame(
        'SELECT "seq", "trigger", "model_id", "model_version", "window_start_ms" FROM "diag" '
        f'WHERE "vin" = $vin AND time > now() - {span} ORDER BY time DESC LIMIT {RECORDS_LIMIT}',
        {"vin": vin},
        ("time", "seq", "trigger", "model_id", "model_version", "window_start_ms"),
    )


@st.cache_data(ttl=TTL_VEHICLE_S, show_spinner=False)
def vehicle_work_orders(vin: str) -> pd.DataFrame:
    """The vehicle's work orders from the DMS import, newest first."""
    frame = _frame(
        'SELECT * FROM "work_order" WHERE "vin" = $vin',
        {"vin": vin},
        ("dealer_id", "order_id", "opened_at_ms", "closed_at_ms", "service_center", "parts"),
    )
    return frame.sort_values("opened_at_ms", ascending=False).reset_index(drop=True)


# ---------------------------------------------------------------- dealers


def _dealer_start(now: datetime) -> datetime:
    month = now.year * 12 + now.month - 1 - (DEALER_MONTHS - 1)
    return datetime(month // 12, month % 12 + 1, 1, tzinfo=UTC)


@st.cache_data(ttl=TTL_DEALERS_S, show_spinner=False)
def dealers(period: str, tickets: pd.DataFrame | None = None) -> DealerReport:
    """Dealer and region KPIs per period and the dealer-risk list (prognos.cloud.dealers.data), from the
    DMS data of the last DEALER_MONTHS months, and the service desk's ticket metrics when given."""
    client = _client(*influx_login())
    try:
        start = _dealer_start(datetime.now(UTC))
        return dealer_report(client, database(), period=period, start=start, tickets=tickets)
    except ConfigError as exc:
        if "does not exist" in str(exc):
            empty = pd.DataFrame()
            return DealerReport(empty, empty, empty)
        raise DataUnavailableError(str(exc)) from exc
    except PrognosError as exc:
        raise DataUnavailableError(str(exc)) from exc


# ---------------------------------------------------------------- system


@st.cache_data(ttl=TTL_SYSTEM_S, show_spinner=False)
def ingest_rate(range_label: str) -> pd.DataFrame:
    """Records stored per second per worker, averaged per bucket."""
    span, bucket = RANGES[range_label]
    return _frame(
        'SELECT mean("records_per_s") AS records_per_s, max("lag_s") AS lag_s FROM "ingest" '
        f'WHERE time > now() - {span} GROUP BY time({bucket}), "worker" fill(none)',
        columns=("time", "worker", "records_per_s", "lag_s"),
    )


@st.cache_data(ttl=TTL_SYSTEM_S, show_spinner=False)
def ingest_workers() -> pd.DataFrame:
    """Each worker's latest metrics point of the last hour (docs/ingest.md)."""
    return _frame(
        'SELECT last("records_written") AS records_written, "records_per_s", "received", "duplicates", '
        '"dead_letters", "write_retries", "lag_s", "queue_depth" FROM "ingest" '
        'WHERE time > now() - 1h GROUP BY "worker"',
        columns=("worker", "time", "records_per_s", "lag_s", "queue_depth", "dead_letters"),
    )


@st.cache_data(ttl=TTL_SYSTEM_S, show_spinner=False)
def dead_letters() -> pd.DataFrame:
    """The latest dead letters of the last 30 days with their reasons, newest first."""
    return _frame(
        'SELECT "reason", "size", "topic" FROM "dead_letter" '
        f"WHERE time > now() - {LOOKBACK} ORDER BY time DESC LIMIT {DEAD_LETTERS_LIMIT}",
        columns=("time", "topic", "reason", "size"),
    )


@st.cache_data(ttl=TTL_SYSTEM_S, show_spinner=False)
def dead_letter_counts(range_label: str) -> pd.DataFrame:
    """Dead letters per bucket of the range."""
    span, bucket = RANGES[range_label]
    return _frame(
        f'SELECT count("size") AS dead_letters FROM "dead_letter" WHERE time > now() - {span} '
        f"GROUP BY time({bucket}) fill(0)",
        columns=("time", "dead_letters"),
    )


@st.cache_data(ttl=TTL_GATEWAYS_S, show_spinner=False)
def gateways() -> pd.DataFrame:
    """Per gateway heard from in the last GATEWAY_WINDOW: its latest status (online, state,
    time) and the model it last reported running (an offline status names no model). A gateway
    refreshes its status every minute while online, so the window holds every online gateway;
    reading a short window keeps the query cheap at a status a minute from every vehicle."""
    status = _frame(
        'SELECT last("online") AS online, "state" FROM "gateway_status" '
        f'WHERE time > now() - {GATEWAY_WINDOW} GROUP BY "fleet", "vin"',
        columns=("fleet", "vin", "time", "online", "state"),
    )
    models = _frame(
        'SELECT last("model_version") AS model_version, "model_id" FROM "gateway_status" '
        f'WHERE time > now() - {GATEWAY_WINDOW} GROUP BY "vin"',
        columns=("vin", "model_id", "model_version"),
    )
    if status.empty:
        return status.assign(model_id=None, model_version=None)
    return status.merge(models[["vin", "model_id", "model_version"]], on="vin", how="left")
