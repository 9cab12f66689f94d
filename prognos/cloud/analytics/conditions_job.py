"""The condition-mining run (docs/analytics.md, "Condition mining"): reads the exposure (each
vehicle's data in SLICE_HOURS slices, with the mean ambient temperature and humidity its records
carried) and the fault onsets (each vehicle and code's first fault point in the window, with its
conditions) from InfluxDB, adds region, model and lot from the registry and the mileage band
from the vehicle's highest work-order odometer reading in the window, mines them
(prognos.cloud.analytics.conditions) and writes the tests and a run marker."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from prognos.cloud.analytics.conditions import DEFAULT_FDR, binned, mine_conditions
from prognos.cloud.analytics.reading import job_writer, query_rows, read_registry, rfc3339, window_pieces
from prognos.cloud.storage import schema
from prognos.cloud.storage.client import InfluxClient
from prognos.cloud.storage.encode import encode_row

DAY_MS = 86_400_000
SLICE_HOURS = 3
Q_EXPOSURE = (
    'SELECT count("seq") AS records, mean("ambient_c") AS ambient_c, mean("humidity_pct") AS humidity_pct '
    f'FROM "diag" WHERE {{where}} GROUP BY time({SLICE_HOURS}h), "vin" fill(none)'
)
Q_ONSETS = 'SELECT "ambient_c", "humidity_pct" FROM "fault" WHERE {where} GROUP BY "vin", "code" LIMIT 1'
Q_MILEAGE = (
    'SELECT "vin", "mileage_km" FROM "work_order" WHERE time > $lo AND time <= $hi AND "mileage_km" >= 0'
)
REGISTRY_COLUMNS = ("region", "model", "lot")


@dataclass(frozen=True)
class ConditionRun:
    as_of_ms: int
    findings: pd.DataFrame  # prognos.cloud.analytics.conditions.FINDING_COLUMNS
    vehicles: int
    exposure_months: float
    onsets: int


def read_exposure(influx: InfluxClient, database: str, start_ms: int, end_ms: int) -> pd.DataFrame:
    """vin, hours, ambient_c, humidity_pct: one row per vehicle and slice with records."""
    rows = []
    for piece in window_pieces(start_ms, end_ms):
        where, params = piece.where()
        for row in query_rows(influx, database, Q_EXPOSURE.format(where=where), params):
            if row.get("records"):
                rows.append(row)
    frame = pd.DataFrame(rows, columns=["vin", "records", "ambient_c", "humidity_pct"])
    return frame.assign(hours=float(SLICE_HOURS))[["vin", "hours", "ambient_c", "humidity_pct"]]


def read_onsets(influx: InfluxClient, database: str, start_ms: int, end_ms: int) -> pd.DataFrame:
    """vin, code, time, ambient_c, humidity_pct: the first fault point of each vehicle and code
    in the window (a fault already open when the window starts counts there too)."""
    where = "time >= $lo AND time <= $hi"
    params = {"lo": rfc3339(start_ms), "hi": rfc3339(end_ms)}
    rows = query_rows(influx, database, Q_ONSETS.format(where=where), params)
    return pd.DataFrame(rows, columns=["vin", "code", "time", "ambient_c", "humidity_pct"])


def read_mileage(influx: InfluxClient, database: str, start_ms: int, end_ms: int) -> pd.Series:
    """Each vehicle's odometer (km) by its highest work-order reading in the window: its mileage
    band for the run (records carry no odometer)."""
    params = {"lo": rfc3339(start_ms), "hi": rfc3339(end_ms)}
    frame = pd.DataFrame(query_rows(influx, database, Q_MILEAGE, params), columns=["vin", "mileage_km"])
    if frame.empty:
        return pd.Series(dtype=float)
    return pd.to_numeric(frame["mileage_km"], errors="coerce").groupby(frame["vin"].astype(str)).max()


def with_registry(frame: pd.DataFrame, registry: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the registry's region, model and lot of its vin ("" when unknown)."""
    if registry.empty:
        return frame.assign(**{column: "" for column in REGISTRY_COLUMNS})
    known = registry.drop_duplicates("vin").set_index("vin")
    out = frame.copy()
    for column in REGISTRY_COLUMNS:
        values = known[column] if column in known else pd.Series(dtype=object)
        out[column] = frame["vin"].map(values).fillna("").astype(str)
    return out


def mine(
    influx: InfluxClient, database: str, *, as_of_ms: int, lookback_days: float, fdr: float = DEFAULT_FDR
) -> ConditionRun:
    start_ms = as_of_ms - int(lookback_days * DAY_MS)
    registry = read_registry(influx, database)
    mileage = read_mileage(influx, database, start_ms, as_of_ms)
    exposure = with_registry(read_exposure(influx, database, start_ms, as_of_ms), registry)
    onsets = with_registry(read_onsets(influx, database, start_ms, as_of_ms), registry)
    exposure["odometer_km"] = exposure["vin"].map(mileage)
    onsets["odometer_km"] = onsets["vin"].map(mileage)
    findings = mine_conditions(binned(exposure), binned(onsets), fdr=fdr)
    return ConditionRun(
        as_of_ms=as_of_ms,
        findings=findings,
        vehicles=int(exposure["vin"].nunique()),
        exposure_months=float(exposure["hours"].sum()) / (365 * 24 / 12),
        onsets=len(onsets),
    )


def run_lines(run: ConditionRun, *, lookback_days: float, fdr: float = DEFAULT_FDR) -> list[str]:
    """The tests as `condition_finding` points and the `condition_run` marker last, all stamped
    with the run's time."""
    lines = [
        line
        for row in run.findings.to_dict("records")
        if (line := encode_row(schema.CONDITION_FINDING, row, run.as_of_ms)) is not None
    ]
    marker = {
        "lookback_days": lookback_days,
        "vehicles": run.vehicles,
        "exposure_months": run.exposure_months,
        "onsets": run.onsets,
        "tests": len(run.findings),
        "findings": int(run.findings["finding"].sum()) if not run.findings.empty else 0,
        "fdr": fdr,
    }
    line = encode_row(schema.CONDITION_RUN, marker, run.as_of_ms)
    assert line is not None  # every marker field has a value
    return [*lines, line]


def write_run(
    influx: InfluxClient, database: str, run: ConditionRun, *, lookback_days: float, fdr: float
) -> None:
    """The run's tests, then its marker (run_lines), through the analytics job's writer."""
    job_writer(influx, database).write(
        run_lines(run, lookback_days=lookback_days, fdr=fdr), precision=schema.CONDITION_RUN.precision
    )
