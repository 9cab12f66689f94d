"""The analytics job against the real InfluxDB: records written as ingest writes them
(prognos.cloud.ingest.points.record_lines) and a registry as the DMS import writes it; the job's
snapshot read back through the documented queries."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from prognos.cli import main
from prognos.cloud.analytics.common import DAY_MS
from prognos.cloud.analytics.job import run_every, run_once
from prognos.cloud.analytics.reading import read_inputs, rfc3339
from prognos.cloud.dealers.dms import parse_row, point_line
from prognos.cloud.dealers.kinds import KINDS
from prognos.cloud.ingest.points import record_lines
from prognos.cloud.storage import schema
from prognos.cloud.storage.client import InfluxClient
from prognos.errors import ConfigError
from prognos.ops.state import StackInfo
from prognos.record import Cause, DiagnosticRecord, FaultHypothesis, SubsystemState
from tests.support.analytics_inputs import assert_same_inputs
from tests.unit.test_analytics import batch_defect_fleet, random_fleet

AS_OF = int(datetime(2024, 6, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
HOUR_MS = 3_600_000
DRIFT = "battery.module_temperature_drift"
HEALTHY = {name: (0.9, 0.1) for name in ("battery", "tires", "brakes", "bearings", "motor")}
Fault = tuple[str, float | None, float | None, float | None]  # code, days, low, high


def record(
    vin: str, end_ms: int, states: dict[str, tuple[float, float]], faults: Iterable[Fault] = ()
) -> DiagnosticRecord:
    return DiagnosticRecord(
        vin=vin,
        seq=end_ms // 600_000,
        window_start_ms=end_ms - 600_000,
        window_end_ms=end_ms,
        model_id="rules",
        model_version="1",
        subsystems={name: SubsystemState(h, s) for name, (h, s) in states.items()},
        faults=tuple(FaultHypothesis(code, 0.8, days, low, high) for code, days, low, high in faults),
    )


def write_records(influx: InfluxClient, database: str, records: Iterable[DiagnosticRecord]) -> None:
    lines = [line for r in records for line in record_lines("demo", r)]
    for start in range(0, len(lines), 5000):
        influx.write(database, lines[start : start + 5000], precision="ms")


def write_dms(influx: InfluxClient, database: str, kind: str, rows: Iterable[dict[str, Any]]) -> None:
    spec = KINDS[kind]
    lines = [
        point_line(spec, parse_row(spec, {k: v for k, v in row.items() if k in spec.names})) for row in rows
    ]
    influx.write(database, lines, precision="ns")


def snapshot_rows(
    influx: InfluxClient, database: str, measurement: str, as_of_ms: int = AS_OF
) -> list[dict[str, Any]]:
    series = influx.query(
        f'SELECT * FROM "{measurement}" WHERE time = $t', database=database, params={"t": rfc3339(as_of_ms)}
    )
    return [row for s in series for row in s.rows()]


def all_points(influx: InfluxClient, database: str) -> dict[str, int]:
    """Points per result measurement, over every snapshot."""
    found = {}
    for measurement in (*schema.ANALYTICS_RESULTS, schema.ANALYTICS_RUN):
        name = measurement.name
        key = next(iter(measurement.fields))
        series = influx.query(f'SELECT count("{key}") FROM "{name}"', database=database)
        found[name] = int(series[0].values[0][1]) if series else 0
    return found


def test_daily_rollups_give_the_inputs_the_raw_points_give(influx: InfluxClient, database: str) -> None:
    """Twelve days of records of a few vehicles, read once with every settled day rolled up
    and once from the raw points alone (nothing settled): the same inputs, to the last digit."""
    rng = np.random.default_rng(7)
    as_of = AS_OF - 5 * HOUR_MS - 123_456  # not at midnight: a partial day at each end
    records = []
    for v in range(6):
        for hour in range(12 * 24, 0, -3):
            end = as_of - hour * HOUR_MS + int(rng.integers(0, HOUR_MS))
            states = {
                name: (float(rng.uniform(0.2, 1.0)), float(rng.uniform(0.0, 1.5)))
                for name in ("battery", "brakes", "tires")[: 1 + v % 3]
            }
            faults: list[Fault] = [(DRIFT, float(rng.uniform(5, 40)), None, None)] if hour % 7 == v else []
            records.append(record(f"VIN{v:014d}", end, states, faults))
    write_records(influx, database, records)
    rolled = read_inputs(influx, database, as_of, lookback_days=11)  # the clock: every day settled
    raw = read_inputs(influx, database, as_of, lookback_days=11, now_ms=0)
    rows = assert_same_inputs(rolled, raw)
    assert rows["states"] == rows["peaks"] == rows["baseline"] == sum(1 + v % 3 for v in range(6))
    assert rows["last_seen"] == 6 and rows["faults"] > 0 and rows["wear"] > 6
    days = influx.query('SELECT count("done") FROM analytics_rollup_day', database=database)
    assert int(days[0].values[0][1]) >= 10, "the settled days were rolled up"


# ---------------------------------------------------------------- cohorts


def test_a_batch_defect_becomes_one_campaign_with_the_vehicles_still_to_check(
    stack: StackInfo, influx: InfluxClient, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    reg, shown = batch_defect_fleet()  # 12 of 40 in L007 against 2 of 400 elsewhere
    write_dms(influx, database, "vehicle", reg.to_dict("records"))
    faulty = set(shown["vin"])
    fault: list[Fault] = [(DRIFT, 25.0, 18.0, 35.0)]
    records = []
    for vin in (v for v in reg["vin"] if not v.startswith("NODATA")):
        states = {**HEALTHY, "battery": (0.6, 1.2)} if vin in faulty else HEALTHY
        for end in (AS_OF - 3 * DAY_MS, AS_OF - HOUR_MS):
            records.append(record(vin, end, states, fault if vin in faulty else ()))
    write_records(influx, database, records)
    stock = {"dealer_id": "DLR-02", "service_center": "SC-02", "part": "PG-BAT-1100", "on_hand": "1"}
    write_dms(influx, database, "parts_stock", [{**stock, "lead_time_weeks": "3", "as_of": "2024-05-20"}])

    argv = ["cloud", "analytics", "--home", stack.home, "--database", database, "--as-of", rfc3339(AS_OF)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "440 vehicles with data" in out and "1 campaigns (43 vehicles)" in out
    assert "14 on the service list" in out

    cohorts = snapshot_rows(influx, database, "cohort")
    campaigns = [c for c in cohorts if c["status"] == "campaign"]
    assert [(c["attribute"], c["value"], c["code"]) for c in campaigns] == [("lot", "L007", DRIFT)]
    l007 = campaigns[0]
    assert (l007["affected"], l007["cohort_size"], l007["registered"]) == (12, 40, 43)
    assert (l007["campaign_vehicles"], l007["not_yet_affected"]) == (43, 28)
    assert l007["share"] == pytest.approx(0.3) and l007["base_rate"] == pytest.approx(0.005)
    assert l007["p_value"] < 1e-9 and l007["part"] == "PG-BAT-1100"
    assert all(c["covered_by"] == l007["cohort_id"] for c in cohorts if c["status"] == "covered")

    series = influx.query(
        'SELECT * FROM "campaign_vehicle" WHERE time = $t AND "cohort" = $cohort',
        database=database,
        params={"t": rfc3339(AS_OF), "cohort": l007["cohort_id"]},
    )
    vehicles = [row for s in series for row in s.rows()]
    assert Counter(v["status"] for v in vehicles) == {
        "not yet affected": 28,
        "affected": 12,
        "no recent data": 3,
    }
    assert {v["vin"] for v in vehicles} == set(reg.loc[reg["lot"] == "L007", "vin"])
    waiting = next(v for v in vehicles if v["status"] == "not yet affected")
    assert waiting["affected"] is False and waiting["owner_contact"].endswith("@example.com")
    assert waiting["service_center"] == "SC-01" and waiting["part"] == "PG-BAT-1100"

    reorder = {(r["service_center"], r["part"]): r for r in snapshot_rows(influx, database, "parts_reorder")}
    assert reorder[("SC-02", "PG-BAT-1100")]["on_hand"] == 1.0
    assert reorder[("SC-02", "PG-BAT-1100")]["lead_time_weeks"] == 3.0
    assert sum(r["reorder_point"] for r in reorder.values()) >= 1
    weeks = snapshot_rows(influx, database, "parts_forecast")
    assert sorted({w["week"] for w in weeks}) == [f"{k:02d}" for k in range(1, 9)]
    assert sum(w["from_failures"] for w in weeks) == pytest.approx(14, abs=0.5)  # all fail within 8 weeks
    run = snapshot_rows(influx, database, "analytics_run")
    assert len(run) == 1 and run[0]["campaigns"] == 1 and run[0]["vehicles_observed"] == 440


def test_a_fleet_without_a_batch_defect_yields_no_cohort(influx: InfluxClient, database: str) -> None:
    reg, shown = random_fleet(3)
    write_dms(influx, database, "vehicle", reg.to_dict("records"))
    codes = shown.groupby("vin")["code"].apply(list).to_dict()
    records = [
        record(vin, AS_OF - HOUR_MS, HEALTHY, [(c, 30.0, 20.0, 45.0) for c in codes.get(vin, [])])
        for vin in reg["vin"]
    ]
    write_records(influx, database, records)
    summary = run_once(influx, database, as_of_ms=AS_OF)
    assert summary["cohorts_tested"] == 115 and summary["alerts"] == len(shown) > 50
    assert summary["cohorts"] == 0 and summary["campaigns"] == 0
    assert snapshot_rows(influx, database, "cohort") == []
    assert snapshot_rows(influx, database, "campaign_vehicle") == []


# ---------------------------------------------------------------- alerts and the service list


PEOPLE = {
    "SOON": "SC-01",
    "LATER": "SC-02",
    "OLDEST": "SC-01",
    "CLEARED": "SC-03",
    "LOW": "SC-02",
    "DRIFTING": "SC-03",
}


def hand_made(influx: InfluxClient, database: str) -> None:
    registry = [
        {
            "vin": vin,
            "model": "EV-1",
            "lot": "L001",
            "owner_name": f"Owner of {vin}",
            "owner_contact": f"{vin.lower()}@example.com",
            "service_center": center,
        }
        for vin, center in PEOPLE.items()
    ]
    write_dms(influx, database, "vehicle", registry)
    latest = AS_OF - HOUR_MS
    write_records(
        influx,
        database,
        [
            record("SOON", latest, {**HEALTHY, "brakes": (0.5, 1.2)}, [("brakes.pad_wear", 10.0, 7.0, 15.0)]),
            record(
                "LATER", latest, {**HEALTHY, "tires": (0.6, 1.1)}, [("tires.pressure_loss", 40.0, 30.0, 60.0)]
            ),
            record(
                "OLDEST",
                AS_OF - 8 * DAY_MS,
                {**HEALTHY, "bearings": (0.6, 1.1)},
                [("bearings.wheel_bearing_wear", 20.0, 15.0, 30.0)],
            ),
            record(
                "OLDEST",
                latest,
                {**HEALTHY, "bearings": (0.55, 1.2)},
                [("bearings.wheel_bearing_wear", None, None, None)],
            ),
            record(
                "CLEARED",
                AS_OF - 2 * DAY_MS,
                {**HEALTHY, "tires": (0.5, 1.3)},
                [("tires.pressure_loss", 3.0, 2.0, 5.0)],
            ),
            record("CLEARED", latest, HEALTHY),
            record("LOW", latest, {**HEALTHY, "battery": (0.15, 0.5)}),
            record("DRIFTING", AS_OF - 28 * DAY_MS, {**HEALTHY, "motor": (0.95, 0.1)}),
            record("DRIFTING", latest, {**HEALTHY, "motor": (0.75, 0.3)}),
        ],
    )


def test_priorities_and_service_dates_on_hand_made_vehicles(influx: InfluxClient, database: str) -> None:
    hand_made(influx, database)
    run_once(influx, database, as_of_ms=AS_OF)
    alerts = sorted(snapshot_rows(influx, database, "alert"), key=lambda a: a["rank"])
    assert [(a["vin"], a["code"], a["priority"]) for a in alerts] == [
        ("SOON", "brakes.pad_wear", "P1"),  # 10 days left
        ("OLDEST", "bearings.wheel_bearing_wear", "P1"),  # 20 days estimated 8 days ago: 12 left
        ("LOW", "battery.low_health", "P1"),
        ("LATER", "tires.pressure_loss", "P2"),
        ("DRIFTING", "motor.drift", "P3"),
    ]
    assert alerts[0]["days_left"] == pytest.approx(10 - 1 / 24, abs=1e-3)
    assert alerts[1]["days_left"] == pytest.approx(12.0, abs=1e-3) and alerts[1]["fleet"] == "demo"
    assert "brake pads" in alerts[0]["action"] and alerts[0]["band"] == "act"

    service = sorted(snapshot_rows(influx, database, "service_list"), key=lambda s: s["rank"])
    assert [(s["vin"], s["due_date"], s["failure_date"]) for s in service] == [
        ("SOON", "2024-06-05", "2024-06-11"),  # 1 h ago + 7 days (10 % bound) - 3 days margin
        ("OLDEST", "2024-06-05", "2024-06-13"),  # 8 days ago + 15 - 3
        ("LATER", "2024-06-28", "2024-07-11"),  # 1 h ago + 30 - 3
    ]
    assert service[0]["owner_contact"] == "soon@example.com" and service[0]["service_center"] == "SC-01"
    assert service[0]["registered"] is True and "PG-BRK-3100" in service[0]["reason"]


def test_an_alert_carries_the_classified_cause_of_its_fault_s_latest_record(
    influx: InfluxClient, database: str
) -> None:
    worn = {**HEALTHY, "brakes": (0.5, 1.2)}
    pads = [("brakes.pad_wear", 10.0, 7.0, 15.0)]
    write_records(
        influx,
        database,
        [
            dataclasses.replace(  # a day before: another verdict, in a rolled-up day
                record("PADS", AS_OF - DAY_MS, worn, pads),
                causes=(Cause("bearings.wheel_bearing_wear", 0.5),),
            ),
            dataclasses.replace(
                record("PADS", AS_OF - HOUR_MS, worn, pads),
                causes=(Cause("brakes.pad_wear", 0.8203125), Cause("bearings.wheel_bearing_wear", 0.125)),
                ambient_c=-3.5,
                humidity_pct=87.5,
            ),
            record(
                "TIRE",
                AS_OF - HOUR_MS,
                {**HEALTHY, "tires": (0.6, 1.1)},
                [("tires.pressure_loss", 40.0, 30.0, 60.0)],
            ),
        ],
    )
    run_once(influx, database, as_of_ms=AS_OF)
    alerts = {a["vin"]: a for a in snapshot_rows(influx, database, "alert")}
    assert (alerts["PADS"]["cause_code"], alerts["PADS"]["cause_probability"]) == (
        "brakes.pad_wear",
        0.8203125,
    )
    assert "classified cause brakes.pad_wear (82%)" in alerts["PADS"]["reason"]
    assert alerts["TIRE"]["cause_code"] is None and alerts["TIRE"]["cause_probability"] is None


def test_the_parts_plan_has_the_work_orders_history_and_leaves_out_repaired_faults(
    influx: InfluxClient, database: str
) -> None:
    hand_made(influx, database)
    order = {
        "dealer_id": "DLR-01",
        "promised_minutes": "60",
        "first_contact_resolved": "true",
        "fixed_first_time": "true",
        "labour_hours": "1.0",
        "amount": "200",
        "service_center": "SC-01",
    }
    two_pads = {**order, "vin": "OTHER", "parts": "PG-BRK-3100;PG-BRK-3100"}
    weekly = [
        {**two_pads, "order_id": f"WO{w}", "opened_at": rfc3339(AS_OF - w * 7 * DAY_MS)} for w in range(1, 11)
    ]
    repair = {**order, "order_id": "WO99", "vin": "LATER", "parts": "PG-TYR-2100"}
    write_dms(influx, database, "work_order", [*weekly, {**repair, "opened_at": rfc3339(AS_OF - 1_800_000)}])
    pads = {"part": "PG-BRK-3100", "name": "Brake pad set, front axle", "unit_cost": "48.50"}
    write_dms(
        influx,
        database,
        "part",
        [{**pads, "currency": "EUR", "pack_size": "2", "min_order": "4", "lead_time_days": "21"}],
    )
    run_once(influx, database, as_of_ms=AS_OF)
    reorder = {(r["service_center"], r["part"]): r for r in snapshot_rows(influx, database, "parts_reorder")}
    sc1 = reorder[("SC-01", "PG-BRK-3100")]
    assert sc1["name"] == "Brake pad set, front axle" and sc1["currency"] == "EUR"
    assert sc1["lead_time_weeks"] == 3.0 and sc1["on_hand"] == 0  # no stock row: the master's lead time
    assert sc1["order_qty"] > 0 and sc1["order_units"] >= max(4, sc1["order_qty"])
    assert sc1["order_units"] % 2 == 0 and sc1["order_cost"] == pytest.approx(48.5 * sc1["order_units"])
    assert reorder[("SC-01", "PG-WBR-4100")]["name"] == "PG-WBR-4100"  # no master row: its number
    weeks = snapshot_rows(influx, database, "parts_forecast")
    assert sorted({w["week"] for w in weeks}) == [f"{k:02d}" for k in range(1, 9)]
    brakes = [w for w in weeks if (w["service_center"], w["part"]) == ("SC-01", "PG-BRK-3100")]
    assert len(brakes) == 8 and all(w["baseline"] > 1.0 for w in brakes)
    assert {w["name"] for w in brakes} == {"Brake pad set, front axle"}
    assert sum(w["from_failures"] for w in brakes) == pytest.approx(1.0, abs=0.05)  # SOON's pads
    tyres = [w for w in weeks if w["part"] == "PG-TYR-2100"]
    assert sum(w["from_failures"] for w in tyres) == 0  # LATER's tyre was fitted after its fault
    assert all(w["baseline"] == 0 for w in tyres)  # in the week still running: not history yet


def test_each_weeks_plan_is_kept_and_compared_with_the_orders_once_its_weeks_pass(
    influx: InfluxClient, database: str
) -> None:
    order = {
        "dealer_id": "DLR-01",
        "vin": "OTHER",
        "promised_minutes": "60",
        "first_contact_resolved": "true",
        "fixed_first_time": "true",
        "labour_hours": "1.0",
        "amount": "200",
        "service_center": "SC-01",
        "parts": "PG-BRK-3100",
    }
    weeks = [*range(-10, 0), *range(0, 4)]  # ten weeks of history, then one pad set a week after AS_OF
    write_dms(
        influx,
        database,
        "work_order",
        [
            {**order, "order_id": f"WO{w + 20}", "opened_at": rfc3339(AS_OF + w * 7 * DAY_MS + DAY_MS)}
            for w in weeks
        ],
    )
    run_once(influx, database, as_of_ms=AS_OF)
    monday = rfc3339(int(datetime(2024, 5, 27, tzinfo=UTC).timestamp() * 1000))  # AS_OF's ISO week
    kept_query = 'SELECT * FROM "parts_forecast_kept" WHERE time = $t AND "part" = $p'
    kept = [
        r
        for s in influx.query(kept_query, database=database, params={"t": monday, "p": "PG-BRK-3100"})
        for r in s.rows()
    ]
    assert sorted(r["lead"] for r in kept) == [f"{k:02d}" for k in range(1, 9)]
    assert all(r.get("actual") is None for r in kept) and all(r["forecast"] > 0.5 for r in kept)
    later = AS_OF + 23 * DAY_MS  # the orders reach AS_OF + 22 days: three of the kept weeks are over
    run_once(influx, database, as_of_ms=later)
    run_once(influx, database, as_of_ms=later)  # again: the same points, nothing twice
    kept = [
        r
        for s in influx.query(kept_query, database=database, params={"t": monday, "p": "PG-BRK-3100"})
        for r in s.rows()
    ]
    assert len(kept) == 8
    assert [r["actual"] for r in sorted(kept, key=lambda r: r["lead"])][:4] == [1.0, 1.0, 1.0, None]
    accuracy = {
        (r["service_center"], r["family"]): r
        for r in snapshot_rows(influx, database, "parts_accuracy", later)
    }
    overall = accuracy[("all", "all")]
    assert (overall["pairs"], overall["weeks"], overall["actual_units"]) == (1, 3, 3.0)
    assert accuracy[("SC-01", "PG-BRK")]["bias"] == pytest.approx(overall["forecast_units"] / 3 - 1)
    plans = influx.query('SELECT count("forecast") FROM "parts_forecast_kept"', database=database)
    assert plans[0].values[0][1] == 16  # two ISO weeks' plans of 8 weeks


def test_running_again_replaces_the_snapshot_without_duplicates(influx: InfluxClient, database: str) -> None:
    hand_made(influx, database)
    first = run_once(influx, database, as_of_ms=AS_OF)
    points = all_points(influx, database)
    assert points["alert"] == 5 and points["service_list"] == 3 and points["analytics_run"] == 1
    again = run_once(influx, database, as_of_ms=AS_OF)
    assert all_points(influx, database) == points
    assert {k: v for k, v in again.counts.items() if k != "duration_s"} == {
        k: v for k, v in first.counts.items() if k != "duration_s"
    }
    # SOON's pads were changed: its latest record has no fault. The same snapshot again drops it.
    write_records(influx, database, [record("SOON", AS_OF - 600_000, HEALTHY)])
    run_once(influx, database, as_of_ms=AS_OF)
    assert {a["vin"] for a in snapshot_rows(influx, database, "alert")} == {
        "OLDEST",
        "LOW",
        "LATER",
        "DRIFTING",
    }
    assert {s["vin"] for s in snapshot_rows(influx, database, "service_list")} == {"OLDEST", "LATER"}
    assert all_points(influx, database)["alert"] == 4
    # A later run is a snapshot of its own; the earlier one stays until --keep.
    later = AS_OF + HOUR_MS
    run_once(influx, database, as_of_ms=later)
    assert len(snapshot_rows(influx, database, "alert", later)) == 4
    assert all_points(influx, database)["analytics_run"] == 2
    latest = influx.query('SELECT last("alerts") FROM analytics_run', database=database)[0].values[0]
    assert latest == [later, 4]
    run_once(influx, database, as_of_ms=AS_OF + 40 * DAY_MS, keep_days=30)  # prunes both
    assert all_points(influx, database)["analytics_run"] == 1


def test_the_loop_runs_until_stopped(influx: InfluxClient, database: str) -> None:
    hand_made(influx, database)
    stop = threading.Event()
    runs: list[int] = []

    def on_run(summary: Any) -> None:
        runs.append(summary.as_of_ms)
        if len(runs) == 2:
            stop.set()

    started = time.monotonic()
    assert run_every(influx, database, every_s=1.05, stop=stop, on_run=on_run) == 2
    assert 1.0 <= time.monotonic() - started < 10
    assert runs[1] > runs[0] and all_points(influx, database)["analytics_run"] == 2


def test_a_missing_database_is_a_config_error(influx: InfluxClient, database: str) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        run_once(influx, database + "_missing", as_of_ms=AS_OF)


# ---------------------------------------------------------------- maintenance intervals


def test_harder_braking_vehicles_get_shorter_pad_intervals(influx: InfluxClient, database: str) -> None:
    rates = {"GENTLE1": 0.002, "GENTLE2": 0.002, "NORMAL1": 0.004, "NORMAL2": 0.004, "NORMAL3": 0.004}
    rates |= {"HARD1": 0.009, "HARD2": 0.009}
    rng = np.random.default_rng(0)
    records = [
        record(
            vin,
            AS_OF - (20 - d) * DAY_MS + 3 * HOUR_MS,
            {"brakes": (0.9 - rate * d + rng.normal(0, 0.0005), 0.1)},
        )
        for vin, rate in rates.items()
        for d in range(20)
    ]
    write_records(influx, database, records)
    run_once(influx, database, as_of_ms=AS_OF)
    rows = {r["vin"]: r for r in snapshot_rows(influx, database, "maintenance_interval")}
    assert set(rows) == set(rates) and {r["part"] for r in rows.values()} == {"PG-BRK-3100"}
    interval = {vin: r["interval_days"] for vin, r in rows.items()}
    assert interval["HARD1"] < interval["NORMAL1"] < interval["GENTLE1"]
    assert interval["NORMAL1"] == pytest.approx(365, rel=0.05)  # the median vehicle
    assert interval["HARD1"] == pytest.approx(365 * 0.004 / 0.009, rel=0.06)
    assert rows["HARD1"]["wear_rate_per_day"] == pytest.approx(0.009, rel=0.05)
    assert rows["HARD1"]["method"] == "trend" and rows["HARD1"]["days_of_data"] >= 18


# ---------------------------------------------------------------- prognos forecast parts


def test_forecast_parts_reads_faults_registry_and_stock_from_influxdb(
    stack: StackInfo, influx: InfluxClient, database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = int(time.time() * 1000)
    write_dms(
        influx,
        database,
        "vehicle",
        [{"vin": f"V{i}", "model": "EV-1", "lot": "L001", "service_center": "SC-01"} for i in range(3)],
    )
    write_dms(
        influx,
        database,
        "parts_stock",
        [{"dealer_id": "DLR-01", "part": "PG-BRK-3100", "on_hand": "1", "as_of": "2024-05-01"}],
    )
    faults: list[Fault] = [("brakes.pad_wear", 10.0, 8.0, 12.0)]
    write_records(influx, database, [record(f"V{i}", now - HOUR_MS, HEALTHY, faults) for i in range(3)])
    out = tmp_path / "parts.csv"
    argv = ["forecast", "parts", "--home", stack.home, "--database", database, "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    assert "2 service center/part pairs over 8 weeks" in capsys.readouterr().out
    weekly = pd.read_csv(out)
    brakes = weekly[(weekly["service_center"] == "SC-01") & (weekly["part"] == "PG-BRK-3100")]
    assert brakes["from_failures"].iloc[1] == pytest.approx(3.0, abs=0.3)  # days 7-14: week 2
    reorder = pd.read_csv(tmp_path / "parts.reorder.csv").set_index(["service_center", "part"])
    assert reorder.loc[("DLR-01", "PG-BRK-3100"), "on_hand"] == 1  # a stock row without a store
    assert reorder.loc[("SC-01", "PG-BRK-3100"), "reorder_point"] == 3
