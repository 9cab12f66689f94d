"""Every dashboard page against a real InfluxDB, rendered server-side by Streamlit's AppTest.

One database is seeded for the module the way production fills it: diagnostic records,
gateway status, ingest metrics and dead letters as ingest writes them, the DMS exports through
the importer (registry, work orders, surveys, stock, finance; dealer DLR-05 slipping), and then
the real analytics job, whose snapshot the fleet, campaign and parts pages read. Each page is
also shown an empty database ("no data yet") and an unreachable one."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from prognos.cloud.analytics.job import RunSummary, run_once
from prognos.cloud.analytics.reading import rfc3339
from prognos.cloud.dealers.dms_import import import_files
from prognos.cloud.ingest.points import (
    dead_letter_line,
    gateway_status_line,
    ingest_metrics_line,
    record_lines,
)
from prognos.cloud.storage.client import InfluxClient, quote_identifier
from prognos.dashboard import charts
from prognos.ops.state import StackInfo
from prognos.record import DiagnosticRecord, FaultHypothesis, SubsystemState, Trigger
from prognos.sim.dealers import MASTER, make_dms, write_dms

APP = str(Path(__file__).resolve().parents[2] / "prognos" / "dashboard" / "app.py")
PAGES = {
    "fleet": "screens/fleet_health.py",
    "vehicle": "screens/vehicle.py",
    "campaigns": "screens/campaigns.py",
    "conditions": "screens/conditions.py",
    "dealers": "screens/dealers.py",
    "parts": "screens/parts.py",
    "system": "screens/system.py",
}
HOUR_MS = 3_600_000
SUBSYSTEMS = ("battery", "tires", "brakes", "bearings", "motor")
DRIFT = "battery.module_temperature_drift"
PAD_WEAR = "brakes.pad_wear"
PADS = "PG-BRK-3100"  # the part of PAD_WEAR (prognos/cloud/parts/plan.py)
BAD_LOT = "L002"
BAD_LOT_AFFECTED = 6  # of its 10 vehicles


@dataclass(frozen=True)
class SeededFleet:
    """What the seed wrote, for the assertions."""

    database: str
    now_ms: int
    vins: tuple[str, ...]
    urgent: str  # P1: brake pads due in 9 days
    watch: str  # P2: tires health 0.35
    lot_affected: tuple[str, ...]  # battery drift, all in BAD_LOT
    offline: tuple[str, ...]  # gateways whose latest status is offline
    centers: dict[str, str]  # vin -> home service center
    summary: RunSummary


def _record(
    vin: str, seq: int, end_ms: int, health: dict[str, float], faults: tuple[FaultHypothesis, ...] = ()
) -> DiagnosticRecord:
    scores = {name: (1.3 if faults and faults[0].code.startswith(name) else 0.2) for name in SUBSYSTEMS}
    return DiagnosticRecord(
        vin=vin,
        seq=seq,
        window_start_ms=end_ms - 600_000,
        window_end_ms=end_ms,
        model_id="rules",
        model_version="1",
        trigger=Trigger.ANOMALY if faults else Trigger.HEARTBEAT,
        subsystems={name: SubsystemState(health.get(name, 0.9), scores[name]) for name in SUBSYSTEMS},
        faults=faults,
    )


DMS_ARGS: dict[str, Any] = {"seed": 11, "months": 7, "order_scale": 0.35, "vehicles": 40}


def seed_fleet(influx: InfluxClient, database: str, work_dir: Path) -> SeededFleet:
    """Fill `database` as ingest, the DMS import and the analytics job would (module docstring)."""
    now_ms = int(time.time()) * 1000
    rows = make_dms(**DMS_ARGS)
    registry = rows["vehicle"]
    vins = tuple(r["vin"] for r in registry)
    centers = {r["vin"]: r["service_center"] for r in registry}
    in_lot = [r["vin"] for r in registry if r["lot"] == BAD_LOT]
    lot_affected = tuple(in_lot[:BAD_LOT_AFFECTED])
    orders = pd.Series([r["vin"] for r in rows["work_order"]]).value_counts()
    urgent, watch = [v for v in orders.index if v not in in_lot][:2]  # vehicles with services
    for stock in rows["parts_stock"]:  # the urgent vehicle's workshop has no brake pads left
        if (stock["service_center"], stock["part"]) == (centers[urgent], PADS):
            stock.update(on_hand="0", on_order="0")
    import_files(influx, database, list(write_dms(rows, work_dir / "dms").values()))

    pad_wear = FaultHypothesis(PAD_WEAR, 0.8, 9.0, 6.0, 14.0)
    drift = FaultHypothesis(DRIFT, 0.7, 40.0, 25.0, 60.0)
    lines: list[str] = []
    for vin in vins:
        for seq, age_h in enumerate((50, 26, 2), start=1):
            health: dict[str, float] = {}
            faults: tuple[FaultHypothesis, ...] = ()
            if vin == urgent:
                health, faults = {"brakes": 0.5 - 0.05 * seq}, (pad_wear,)
            elif vin == watch and seq == 3:
                health = {"tires": 0.35}
            elif vin in lot_affected and seq >= 2:
                faults = (drift,)
            record = _record(vin, seq, now_ms - age_h * HOUR_MS, health, faults)
            lines += record_lines("demo", record)
    influx.write(database, lines)

    offline = vins[-2:]
    statuses = []
    for index, vin in enumerate(vins[:30]):
        model: dict[str, object] = {
            "state": "online",
            "model_id": "bundle",
            "model_version": "2026.11.27" if index % 3 else "1",
        }
        statuses.append(gateway_status_line("demo", vin, model, now_ms - 1_800_000 + index))
    for vin in offline:
        statuses.append(gateway_status_line("demo", vin, {"state": "offline"}, now_ms - 600_000))
    influx.write(database, statuses)

    now_ns = now_ms * 1_000_000
    metrics = [
        ingest_metrics_line(
            worker,
            {"records_per_s": 2.5 + w, "records_written": 100 + i, "lag_s": 4.0, "queue_depth": 3},
            now_ns - (i * 10 + w) * 1_000_000_000,
        )
        for w, worker in enumerate(("ingest-a", "ingest-b"))
        for i in range(180)
    ]
    letters = [
        dead_letter_line(
            "prognos/v1/demo/PRG0BAD/diag", "undecodable payload: not CBOR", b"\x00\x01", now_ns - 7
        ),
        dead_letter_line(f"prognos/v1/demo/{vins[0]}/diag", "field type conflict", b"\x02", now_ns - 5),
    ]
    influx.write(database, metrics + letters, precision="ns")

    # A plan four weeks before the work orders end (the first of this month), kept, so that the
    # run now compares its weeks with what the orders used.
    month = datetime.fromtimestamp(now_ms / 1000, UTC).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    run_once(influx, database, as_of_ms=int(month.timestamp() * 1000) - 28 * 24 * HOUR_MS)
    summary = run_once(influx, database, as_of_ms=now_ms)
    return SeededFleet(database, now_ms, vins, urgent, watch, lot_affected, offline, centers, summary)


@pytest.fixture(scope="module")
def seeded(stack: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededFleet]:
    client = InfluxClient(stack.influx_url, timeout_s=30.0)
    name = f"dash_{uuid.uuid4().hex[:12]}"
    client.create_database(name)
    try:
        yield seed_fleet(client, name, tmp_path_factory.mktemp("seed"))
    finally:
        client.query("DROP DATABASE " + quote_identifier(name), database=None, method="POST")
        client.close()


def _use(monkeypatch: pytest.MonkeyPatch, url: str, database: str) -> None:
    monkeypatch.setenv("PROGNOS_INFLUX_URL", url)
    monkeypatch.setenv("PROGNOS_DATABASE", database)
    st.cache_data.clear()


@pytest.fixture
def seeded_app(
    monkeypatch: pytest.MonkeyPatch, stack: StackInfo, seeded: SeededFleet
) -> Iterator[SeededFleet]:
    _use(monkeypatch, stack.influx_url, seeded.database)
    yield seeded
    st.cache_data.clear()


def open_page(page: str, **query: str) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=30)
    for key, value in query.items():
        app.query_params[key] = value
    if page != "fleet":
        app.switch_page(PAGES[page])
    app.run()
    assert not app.exception, app.exception
    return app


def texts(app: AppTest) -> str:
    """Everything the page wrote as text: markdown, captions and the message boxes."""
    boxes = [*app.markdown, *app.caption, *app.info, *app.success, *app.warning, *app.error]
    return "\n".join(str(box.value) for box in boxes)


def plotly_values(values: list[Any] | dict[str, str]) -> list[Any]:
    """A trace's values from a figure's JSON: a list, or Plotly's typed array (dtype, base64)."""
    if isinstance(values, dict):
        return list(np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]))
    return values


def metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


# ---------------------------------------------------------------- pages with data


def test_fleet_page_counts_bands_and_lists_alerts_by_urgency(seeded_app: SeededFleet) -> None:
    app = open_page("fleet")
    counts = seeded_app.summary.counts
    assert counts["vehicles_observed"] == 40
    assert metrics(app) == {
        "Vehicles monitored": "40",
        "Healthy": str(40 - 1 - BAD_LOT_AFFECTED - 1),
        "Watch": "1",
        "Act": str(1 + BAD_LOT_AFFECTED),
        "Open alerts": str(int(counts["alerts"])),
    }
    table = app.table[0].value.reset_index()
    first = table.iloc[0]
    assert first["Vehicle"] == f"[{seeded_app.urgent}](vehicle?vin={seeded_app.urgent})"
    assert first["Priority"] == "P1" and first["Fault"] == "brakes: pad wear"  # PAD_WEAR in words
    assert first["Days to threshold (80% interval)"] == "8.9 (5.9-13.9)"  # 9 (6-14) days, 2 h before
    assert "Replace the brake pads" in first["What to do"]
    assert "@" in first["Owner and contact"] and first["Service center"].startswith("SC-")  # the registry's
    assert list(table["Rank"]) == sorted(table["Rank"])
    watch = table[table["Vehicle"].str.contains(seeded_app.watch)].iloc[0]
    assert (watch["Priority"], watch["Fault"]) == ("P2", "tires: low health")
    assert watch["Days to threshold (80% interval)"].startswith("—")  # no trend: said so, not blank
    assert "None" not in table.to_string()


def test_fleet_filters_narrow_counts_and_alerts_to_the_selection(seeded_app: SeededFleet) -> None:
    app = open_page("fleet")
    app.multiselect(key="fleet_lot").set_value([BAD_LOT]).run()
    assert not app.exception
    assert metrics(app)["Vehicles monitored"] == "10"
    assert metrics(app)["Act"] == str(BAD_LOT_AFFECTED)
    assert metrics(app)["Healthy"] == str(10 - BAD_LOT_AFFECTED)
    shown = {link.split("=", 1)[1].rstrip(")") for link in app.table[0].value["Vehicle"]}
    assert shown == set(seeded_app.lot_affected)


def test_vehicle_page_from_a_link_shows_scores_faults_records_services_and_action(
    seeded_app: SeededFleet,
) -> None:
    app = open_page("vehicle", vin=seeded_app.urgent)
    assert app.selectbox(key="vehicle_vin").value == seeded_app.urgent
    assert any("Replace the brake pads" in e.value for e in app.error)  # P1: shown as an error box
    faults = app.dataframe[0].value
    assert list(faults["code"]) == [PAD_WEAR]
    assert bool(faults.iloc[0]["open"])
    assert faults.iloc[0]["days_left"] == pytest.approx(9.0 - 2 / 24, abs=0.05)  # estimated 2 h ago
    assert faults.iloc[0]["interval_80"] == f"{6 - 2 / 24:.1f}-{14 - 2 / 24:.1f}"
    records = app.dataframe[1].value
    assert list(records["seq"]) == [3, 2, 1] and set(records["trigger"]) == {"anomaly"}
    orders = app.table[-1].value.reset_index()
    assert len(orders) > 0 and list(orders["Opened (UTC)"]) == sorted(orders["Opened (UTC)"], reverse=True)
    assert (
        "None" not in orders.to_string() and orders["Amount"].str.match(r"^[\d,]+\.\d\d( [A-Z]{3})?$").all()
    )
    assert any(h.value == "Maintenance intervals" for h in app.subheader)
    # the seeded snapshot has no interval for it: the page says why instead of an empty table
    assert all("Wear part" not in t.value.reset_index().columns for t in app.table)
    assert any("No personalised interval yet" in m.value for m in app.markdown)
    charts = app.get("plotly_chart")
    assert len(charts) == 3  # scores (with the threshold line), health, records per day
    assert '"y0":1.0' in charts[0].proto.spec.replace(" ", "")


def test_vehicle_page_without_a_vin_offers_the_alerted_vehicles_first(seeded_app: SeededFleet) -> None:
    app = open_page("vehicle")
    box = app.selectbox(key="vehicle_vin")
    assert box.options[0] == seeded_app.urgent
    assert "Pick a vehicle" in texts(app)
    box.set_value(seeded_app.watch).run()
    assert app.query_params["vin"] == seeded_app.watch
    assert any("tires" in w.value for w in app.warning)


def test_vehicle_page_refuses_text_that_is_not_a_vin(seeded_app: SeededFleet) -> None:
    app = open_page("vehicle", vin="X' OR 1=1 --")
    assert "is not a VIN" in app.error[0].value


def test_campaign_page_lists_the_bad_lot_and_exports_its_vehicles(seeded_app: SeededFleet) -> None:
    app = open_page("campaigns")
    cohorts = app.dataframe[0].value
    campaign = cohorts[cohorts["status"] == "campaign"].iloc[0]
    assert campaign["cohort_id"] == f"lot={BAD_LOT}:{DRIFT}"
    assert (campaign["affected"], campaign["cohort_size"]) == (BAD_LOT_AFFECTED, 10)
    assert metrics(app)["Not yet affected"] == str(10 - BAD_LOT_AFFECTED)
    vehicles = app.dataframe[1].value
    assert len(vehicles) == 10
    affected = vehicles[vehicles["status"] == "affected"]["vin"]  # links to the vehicle pages
    assert set(affected) == {f"vehicle?vin={vin}" for vin in seeded_app.lot_affected}
    download = app.get("download_button")
    assert [d.proto.label for d in download] == [
        "Download cohorts (CSV)",
        "Download this campaign's vehicles (CSV)",
    ]


def test_dealer_page_shows_kpis_and_the_risky_dealers_reasons(seeded_app: SeededFleet) -> None:
    app = open_page("dealers")
    flagged = [e.value for e in app.error]
    assert any(text.startswith("**DLR-05**") and "at risk" in text for text in flagged)
    assert "complaints are rising" in "\n".join(flagged)
    risk = app.table[0].value  # static tables: long reasons wrap instead of being cut off
    assert risk.index[0] == "DLR-05" and risk.iloc[0]["Risk"] == "at risk"
    assert "complaints are rising" in risk.iloc[0]["Reasons"]
    ranking = app.table[1].value
    assert set(ranking.index) == {f"DLR-0{i}" for i in range(1, 6)}
    assert list(ranking["Rank"]) == [1, 2, 3, 4, 5]
    assert ranking["SLA compliance (%)"].is_monotonic_decreasing  # ranked by SLA compliance, in %
    assert 50 < ranking["SLA compliance (%)"].iloc[0] <= 100
    assert (ranking["SLA compliance (%)"].dropna() == ranking["SLA compliance (%)"].dropna().round(1)).all()
    now = datetime.now(UTC)
    chosen = app.selectbox(key="dealer_ranking_period").value
    assert charts.period_complete(chosen, now)  # the latest complete month, not the one under way
    assert [d.proto.label for d in app.get("download_button")] == [
        "Download the risk list (CSV)",
        "Download the dealer ranking (CSV)",
        "Download the region ranking (CSV)",
    ]
    regions = app.table[2].value
    assert regions.index.name == "Region" and len(regions) >= 1
    app.selectbox(key="dealer_kpi").set_value("csat").run()
    assert app.table[1].value["CSAT (1-5)"].is_monotonic_decreasing
    app.radio(key="dealer_period").set_value("week").run()
    assert "-W" in app.subheader[1].value  # ranking of the latest complete ISO week


def test_parts_page_opens_on_the_decisions_with_reasons_and_exports_the_order_list(
    seeded_app: SeededFleet, influx: InfluxClient
) -> None:
    app = open_page("parts")
    center = seeded_app.centers[seeded_app.urgent]
    at = {"t": rfc3339(seeded_app.summary.as_of_ms)}
    stored = [
        row
        for s in influx.query(
            'SELECT * FROM "parts_decision" WHERE time = $t', database=seeded_app.database, params=at
        )
        for row in s.rows()
    ]
    orders = [row for row in stored if row["action"] == "order"]
    transfers = [row for row in stored if row["action"] == "transfer"]
    assert orders and transfers  # the demo's stock: short at some centers, plentiful at neighbours
    shown = metrics(app)
    assert shown["Order lines to place"] == str(len(orders))
    assert shown["Transfers to make"] == str(len(transfers))
    assert shown["Cost of the orders"].endswith(" EUR")
    # The page opens on the decisions, most urgent first, each with its part's name and reason.
    decisions = app.table[0].value
    assert list(decisions.reset_index().columns) == list(charts.DECISION_HEADINGS)
    assert len(decisions) == min(25, len(stored))
    assert all(len(str(why)) > 40 for why in decisions["Why"])
    cells = decisions.reset_index().astype(str).to_numpy().ravel()
    assert not any(cell in ("None", "nan", "NaN") for cell in cells)
    # The urgent vehicle's pads: none in stock at its center, a failure in 9 days.
    pads = [row for row in stored if (row["service_center"], row["part"]) == (center, PADS)]
    assert pads and "1 predicted failure at " + center in pads[0]["reason"]
    label = charts.part_label(MASTER[PADS].name, PADS)
    assert label in set(app.table[0].value.index) or len(stored) > 25
    assert len(app.get("download_button")) == 4  # the order list as CSV and XLSX, the plan, the forecast
    series = influx.query(  # the detail chart shows the pair with the most expected units
        'SELECT sum("forecast") AS units FROM parts_forecast WHERE time = $t GROUP BY service_center, part',
        database=seeded_app.database,
        params=at,
    )
    busiest = max(series, key=lambda s: s.values[0][1]).tags
    assert app.selectbox(key="parts_pair").value == (busiest["service_center"], busiest["part"])
    figures = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    assert len(figures) == 4  # stock against need, demand per part, the pair's weeks, forecast against use
    stock = figures[0]["data"][0]
    assert stock["orientation"] == "h" and any(MASTER[PADS].name in label for label in stock["y"])
    assert any(trace["name"].startswith("reorder point") for trace in figures[0]["data"])

    app.multiselect(key="parts_centers").set_value([center])
    app.multiselect(key="parts_parts").set_value([PADS]).run()
    assert not app.exception
    decisions = app.table[0].value
    assert set(decisions["Deliver to"]) == {center} and set(decisions.index) == {label}
    plan = app.table[-2].value  # the plan, then the weekly forecast (in its expander)
    assert len(plan) == 1 and plan.iloc[0]["Service center"] == center
    weekly_shown = app.table[-1].value
    assert len(weekly_shown) == seeded_app.summary.counts["horizon_weeks"]
    weekly = pd.DataFrame(
        [
            row
            for s in influx.query(
                'SELECT * FROM "parts_forecast" WHERE time = $t AND "service_center" = $c AND "part" = $p',
                database=seeded_app.database,
                params={**at, "c": center, "p": PADS},
            )
            for row in s.rows()
        ]
    )
    # The urgent vehicle's pads fail in 9 days (80%: 6-14): almost surely within the horizon,
    # most likely in week 2.
    assert weekly["from_failures"].sum() == pytest.approx(1.0, abs=0.02)
    assert weekly.sort_values("from_failures")["week_index"].iloc[-1] == 2
    week2 = weekly[weekly["week_index"] == 2].iloc[0]
    # The seeded work orders give the pads a baseline; the 90% interval holds it and the failure.
    assert (weekly["baseline"] > 0).all() and weekly["baseline"].nunique() == 1
    assert week2["forecast"] == pytest.approx(week2["baseline"] + week2["from_failures"], abs=1e-3)
    assert week2["low"] <= week2["baseline"] and week2["high"] >= week2["forecast"] + 1


def test_parts_page_shows_the_kept_plans_forecast_against_what_was_used(seeded_app: SeededFleet) -> None:
    app = open_page("parts")
    accuracy = [table.value for table in app.table if "Bias" in table.value.columns]
    assert len(accuracy) == 1
    shown = accuracy[0].reset_index()
    assert list(shown.columns) == list(charts.ACCURACY_HEADINGS)
    overall = shown.iloc[0]
    assert (overall["Service center"], overall["Part family"]) == ("all", "all")
    assert int(overall["Pairs"]) == 40 and int(overall["Weeks compared"]) >= 3 * 40
    assert overall["Bias"].endswith(" %") and float(overall["RMSSE"]) > 0
    figures = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    assert any(f["layout"]["title"]["text"] == "Forecast against what was used" for f in figures)
    assert "No forecast week has passed yet" not in texts(app)


def test_system_page_shows_ingest_dead_letters_gateways_and_models(seeded_app: SeededFleet) -> None:
    app = open_page("system")
    shown = metrics(app)
    assert shown["Records stored per second"] == "6.0"  # 2.5 + 3.5 from the workers' latest points
    assert shown["Workers reporting (last hour)"] == "2"
    assert shown["Online"] == "30" and shown["Offline"] == "2"
    assert shown["Silent"] == str(40 - 32)
    letters = app.dataframe[1].value
    assert list(letters["reason"]) == ["field type conflict", "undecodable payload: not CBOR"]
    charts = app.get("plotly_chart")
    assert len(charts) == 3  # ingest rate, dead letters, model versions
    versions = json.loads(charts[2].proto.spec)["data"][0]
    assert dict(zip(versions["x"], plotly_values(versions["y"]), strict=True)) == {
        "bundle 2026.11.27": 20,
        "bundle 1": 10,
        "not reported": 2,  # the offline gateways' Last Will names no model
    }
    offline = app.dataframe[2].value
    assert set(offline["vin"]) == set(seeded_app.offline)


# ---------------------------------------------------------------- empty and unreachable


@pytest.fixture
def empty_app(monkeypatch: pytest.MonkeyPatch, stack: StackInfo, database: str) -> Iterator[None]:
    _use(monkeypatch, stack.influx_url, database)
    yield
    st.cache_data.clear()


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_says_no_data_yet_on_an_empty_database(empty_app: None, page: str) -> None:
    app = open_page(page)
    assert "No data yet" in texts(app)
    assert not app.dataframe


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_explains_an_unreachable_database(monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    _use(monkeypatch, "http://127.0.0.1:9", "prognos")
    try:
        app = open_page(page, vin="PRG0000000000001") if page == "vehicle" else open_page(page)
    finally:
        st.cache_data.clear()
    assert "Database unreachable" in app.error[0].value
    assert not app.dataframe
