"""Condition mining against the real InfluxDB: records written as ingest writes them, with the
ambient temperature and humidity every record carries; motor noise starts three times as often
in the cold and damp. `prognos cloud conditions` finds it, says it in words, and stores every test
with a run marker the dashboard reads."""

from __future__ import annotations

import time

import numpy as np
import pytest
import streamlit as st

from prognos.cli import main
from prognos.cloud.analytics.conditions_job import mine
from prognos.cloud.analytics.reading import rfc3339
from prognos.cloud.ingest.points import record_lines
from prognos.cloud.storage.client import InfluxClient
from prognos.ops.state import StackInfo
from prognos.record import DiagnosticRecord, FaultHypothesis, SubsystemState
from tests.integration.test_analytics_job import write_dms
from tests.integration.test_dashboard_pages import metrics, open_page, texts

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
NOISE = "motor.noise"


def fleet_records(now_ms: int, *, vehicles: int = 150, days: int = 60) -> list[DiagnosticRecord]:
    """A record every 6 hours per vehicle, with a daily temperature cycle around each vehicle's
    own climate; a vehicle's motor noise starts at most once, three times as likely per slice
    below 5 °C above 80% RH."""
    rng = np.random.default_rng(3)
    records = []
    for v in range(vehicles):
        vin = f"CND{v:014d}"
        climate = rng.normal(10, 6)
        onset: int | None = None
        for step in range(days * 4):
            end = now_ms - (days * 4 - step) * 6 * HOUR_MS
            ambient = climate + 7 * np.sin(2 * np.pi * step / 4) + rng.normal(0, 2)
            humidity = float(np.clip(75 - 1.2 * (ambient - 10) + rng.normal(0, 8), 5, 100))
            cold_damp = ambient < 5 and humidity > 80
            if onset is None and rng.random() < (0.006 if cold_damp else 0.002):
                onset = step
            faults = (FaultHypothesis(NOISE, 0.7),) if onset is not None else ()
            records.append(
                DiagnosticRecord(
                    vin=vin,
                    seq=step + 1,
                    window_start_ms=end - 600_000,
                    window_end_ms=end,
                    model_id="rules",
                    model_version="1",
                    subsystems={"motor": SubsystemState(0.9, 0.2)},
                    faults=faults,
                    ambient_c=float(ambient),
                    humidity_pct=humidity,
                )
            )
    return records


@pytest.fixture(scope="module")
def now_ms() -> int:
    return int(time.time() * 1000)


def test_motor_noise_in_the_cold_and_damp_is_found_and_stored(
    stack: StackInfo,
    influx: InfluxClient,
    database: str,
    now_ms: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = [line for r in fleet_records(now_ms) for line in record_lines("demo", r)]
    for start in range(0, len(lines), 5000):
        influx.write(database, lines[start : start + 5000], precision="ms")
    # A service visit each, half of the fleet below 20,000 km: the mileage bands get tested too.
    orders = [
        {
            "dealer_id": "DLR-01",
            "order_id": f"WO{v}",
            "vin": f"CND{v:014d}",
            "opened_at": rfc3339(now_ms - 10 * DAY_MS),
            "promised_minutes": "60",
            "first_contact_resolved": "true",
            "fixed_first_time": "true",
            "labour_hours": "1.0",
            "amount": "100",
            "mileage_km": str(12_000 if v % 2 else 45_000),
        }
        for v in range(150)
    ]
    write_dms(influx, database, "work_order", orders)

    run = mine(influx, database, as_of_ms=now_ms, lookback_days=61)
    assert run.vehicles == 150
    assert run.exposure_months == pytest.approx(
        150 * 60 * 4 * 3 / 730, rel=0.02
    )  # 3-hour slices with a record
    top = run.findings.iloc[0]
    assert top["finding"] and top["code"] == NOISE
    assert "below 5 °C" in top["condition"]
    assert {"below 20,000 km", "20,000-60,000 km"} <= set(run.findings["condition"])  # tested, no effect
    assert not run.findings[run.findings["condition"].str.endswith(" km")]["finding"].any()
    assert top["lift"] > 1.5 and top["lift_low"] > 1.0

    argv = ["cloud", "conditions", "--home", stack.home, "--database", database, "--lookback", "61d"]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "150 vehicles" in out and "findings (FDR 0.05)" in out
    assert f"{NOISE} " in out and "more frequent below 5 °C" in out and "vehicle-months)" in out
    marker = influx.query('SELECT * FROM "condition_run"', database=database)[0].rows()
    assert len(marker) == 1 and marker[0]["vehicles"] == 150 and marker[0]["findings"] >= 1
    stored = influx.query(
        'SELECT * FROM "condition_finding" WHERE time = $t',
        database=database,
        params={"t": rfc3339(marker[0]["time"])},
    )[0].rows()
    assert len(stored) == marker[0]["tests"]
    assert any(row["finding"] and row["code"] == NOISE for row in stored)

    # The Fleet conditions page says the findings in words and lists every test.
    monkeypatch.setenv("PROGNOS_INFLUX_URL", stack.influx_url)
    monkeypatch.setenv("PROGNOS_DATABASE", database)
    st.cache_data.clear()
    try:
        app = open_page("conditions")
    finally:
        st.cache_data.clear()
    assert metrics(app)["Vehicles"] == "150" and metrics(app)["Findings"] == str(marker[0]["findings"])
    assert any(
        w.value.startswith("motor\\.noise ") and "more frequent below 5 °C" in w.value for w in app.warning
    )
    assert "None" not in texts(app) and "nan" not in texts(app)


def test_bad_fdr_is_refused(stack: StackInfo, database: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["cloud", "conditions", "--home", stack.home, "--database", database, "--fdr", "1.5"]
    assert main(argv) == 2
    assert "--fdr must be between 0 and 1" in capsys.readouterr().err
