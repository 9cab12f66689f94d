"""The dashboard against a real InfluxDB: Streamlit's AppTest renders the page server-side."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from prognos.cloud.analytics.job import run_once
from prognos.cloud.analytics.reading import latest_snapshot_ms, snapshot_alerts
from prognos.cloud.ingest.points import record_lines
from prognos.cloud.storage.client import InfluxClient
from prognos.dashboard import charts
from prognos.ops.state import StackInfo
from prognos.record import DiagnosticRecord, FaultHypothesis, SubsystemState, Trigger

APP = str(Path(__file__).resolve().parents[2] / "prognos" / "dashboard" / "app.py")


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, stack: StackInfo, database: str) -> Iterator[None]:
    monkeypatch.setenv("PROGNOS_INFLUX_URL", stack.influx_url)
    monkeypatch.setenv("PROGNOS_DATABASE", database)
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def record(
    vin: str, seq: int, end_ms: int, health: float, faults: tuple[FaultHypothesis, ...] = ()
) -> DiagnosticRecord:
    return DiagnosticRecord(
        vin=vin,
        seq=seq,
        window_start_ms=end_ms - 600_000,
        window_end_ms=end_ms,
        model_id="rules",
        model_version="1",
        trigger=Trigger.ANOMALY if faults else Trigger.HEARTBEAT,
        subsystems={"battery": SubsystemState(health, 0.1), "tires": SubsystemState(0.95, 0.2)},
        faults=faults,
    )


def run_app() -> AppTest:
    app = AppTest.from_file(APP, default_timeout=30)
    app.run()
    assert not app.exception, app.exception
    return app


def test_fleet_page_shows_the_analytics_snapshot_of_the_latest_records(
    app_env: None, influx: InfluxClient, database: str
) -> None:
    now = int(time.time()) * 1000
    drift = FaultHypothesis("battery.module_temperature_drift", 0.75, 12.0, 8.0, 20.0)
    records = [
        record("HEALTHY0000000001", 1, now - 7_200_000, 0.9),
        record("HEALTHY0000000001", 2, now - 3_600_000, 0.95),
        record("WATCH000000000002", 1, now - 3_600_000, 0.35),
        # An old fault that cleared: the latest record has none, so the vehicle is not "act".
        record("ACT00000000000003", 1, now - 7_200_000, 0.9, (drift,)),
        record("ACT00000000000003", 2, now - 3_600_000, 0.2, (drift,)),
        record("CLEARED0000000004", 1, now - 7_200_000, 0.9, (drift,)),
        record("CLEARED0000000004", 2, now - 3_600_000, 0.9),
    ]
    influx.write(database, [line for r in records for line in record_lines("f1", r)])

    app = run_app()
    assert "No data yet" in app.info[0].value  # records, but no analytics snapshot yet
    run_once(influx, database, as_of_ms=now)
    st.cache_data.clear()

    app = run_app()
    metrics = {m.label: m.value for m in app.metric}
    assert metrics == {
        "Vehicles monitored": "4",
        "Healthy": "2",
        "Watch": "1",
        "Act": "1",
        "Open alerts": "2",
    }
    assert "No vehicle registry imported" in app.info[0].value
    table = app.table[0].value.reset_index()
    assert list(table["Vehicle"]) == [
        "[ACT00000000000003](vehicle?vin=ACT00000000000003)",
        "[WATCH000000000002](vehicle?vin=WATCH000000000002)",
    ]
    act = table.iloc[0]
    assert (act["Priority"], act["Fault"]) == ("P1", "battery: module temperature drift")
    assert (
        act["Days to threshold (80% interval)"] == "12.0 (8.0-20.0)"
    )  # 12 (8-20), an hour before the snapshot
    assert act["Owner and contact"] == "— (not in the registry)"
    snapshot_ms = latest_snapshot_ms(influx, database)
    assert snapshot_ms is not None
    csv = charts.alert_table(
        snapshot_alerts(influx, database, snapshot_ms), None, links=False
    )  # the CSV's rows
    assert (
        csv.iloc[0]["Last report (UTC)"]
        == f"{pd.Timestamp(now - 3_600_000, unit='ms', tz='UTC'):%Y-%m-%d %H:%M}"
    )


def test_empty_database_says_no_data_yet(app_env: None) -> None:
    app = run_app()
    assert "No data yet" in app.info[0].value
    assert not app.dataframe


def test_unreachable_database_is_explained(monkeypatch: pytest.MonkeyPatch, app_env: None) -> None:
    monkeypatch.setenv("PROGNOS_INFLUX_URL", "http://127.0.0.1:9")
    app = run_app()
    assert "Database unreachable" in app.error[0].value
