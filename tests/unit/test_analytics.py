"""The pure analytics (prognos/cloud/analytics/analyse.py) on hand-made frames: priorities, cohort statistics
and false-discovery control, nested cohorts, the service list's dates, maintenance intervals,
the parts failures, the snapshot's points and the schema page."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prognos.cloud.analytics.alerts import open_faults, vehicle_alerts
from prognos.cloud.analytics.analyse import Inputs, analyse, parts_failures
from prognos.cloud.analytics.cohorts import (
    benjamini_hochberg,
    campaign_vehicles,
    enrichment_p,
    find_cohorts,
    signatures,
)
from prognos.cloud.analytics.common import DAY_MS
from prognos.cloud.analytics.job import parse_duration_s, parse_time_ms, snapshot
from prognos.cloud.analytics.service import maintenance_intervals, service_list, theil_sen_slope
from prognos.cloud.parts.plan import FAULT_PARTS
from prognos.cloud.storage import schema
from prognos.cloud.storage.encode import encode_row
from prognos.errors import ConfigError

NOW = int(datetime(2024, 6, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
DRIFT = "battery.module_temperature_drift"
SUBSYSTEMS = ("battery", "tires", "brakes", "bearings", "motor")


def day(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()


# ---------------------------------------------------------------- fleets


def registry(
    lots: int = 11, per_lot: int = 40, *, seed: int = 0, extra: dict[str, int] | None = None
) -> pd.DataFrame:
    """Vehicle i is in lot i % lots; a lot is one model and one supplier per part (like
    prognos.sim.fleet.make_fleet). `extra` adds registered vehicles without data to a lot."""
    rng = np.random.default_rng(seed)
    suppliers = {
        part: rng.choice(["Alpha", "Beta"], lots) for part in ("battery", "tire", "brake", "bearing", "motor")
    }
    suppliers["battery"] = np.array(["Alpha" if lot % 3 == 0 else "Beta" for lot in range(lots)])
    rows = []
    for i in range(lots * per_lot):
        lot = i % lots
        rows.append(_vehicle(f"VIN{i:05d}", lot, suppliers))
    for lot_name, count in (extra or {}).items():
        lot = int(lot_name[1:]) - 1
        rows += [_vehicle(f"NODATA{lot:02d}{j:03d}", lot, suppliers) for j in range(count)]
    return pd.DataFrame(rows)


def _vehicle(vin: str, lot: int, suppliers: dict[str, np.ndarray]) -> dict[str, object]:
    row: dict[str, object] = {
        "vin": vin,
        "model": "EV-1" if lot % 2 == 0 else "EV-2",
        "lot": f"L{lot + 1:03d}",
        "owner_name": f"Owner {vin}",
        "owner_contact": f"{vin.lower()}@example.com",
        "service_center": f"SC-0{lot % 3 + 1}",
        "fleet": "demo",
    }
    for part, names in suppliers.items():
        row[f"{part}_supplier"] = str(names[lot])
    return row


def lot_vins(reg: pd.DataFrame, lot: str, *, with_data: bool = True) -> list[str]:
    vins = reg.loc[reg["lot"] == lot, "vin"].tolist()
    return [v for v in vins if not v.startswith("NODATA")] if with_data else vins


def counts(pairs: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame([(v, c, 3) for v, c in pairs], columns=["vin", "code", "points"])


def observed(reg: pd.DataFrame) -> list[str]:
    return [v for v in reg["vin"] if not v.startswith("NODATA")]


def batch_defect_fleet() -> tuple[pd.DataFrame, pd.DataFrame]:
    """12 of the 40 vehicles of lot L007 (plus 3 registered without data) show the battery
    drift, against 2 of the 400 others."""
    reg = registry(extra={"L007": 3})
    l7 = lot_vins(reg, "L007")
    others = [v for v in observed(reg) if v not in l7]
    return reg, counts([(v, DRIFT) for v in l7[:12]] + [(v, DRIFT) for v in others[5:400:200]])


# ---------------------------------------------------------------- statistics


def test_enrichment_p_is_the_exact_hypergeometric_tail() -> None:
    def brute(k: int, n: int, big_k: int, total: int) -> float:
        return sum(
            math.comb(big_k, x) * math.comb(total - big_k, n - x) for x in range(k, min(n, big_k) + 1)
        ) / math.comb(total, n)

    for k, n, big_k, total in [
        (3, 10, 5, 50),
        (0, 10, 5, 50),
        (5, 10, 5, 50),
        (12, 40, 14, 440),
        (1, 3, 1, 4),
    ]:
        assert enrichment_p(k, n, big_k, total) == pytest.approx(brute(k, n, big_k, total), rel=1e-9)
    assert enrichment_p(6, 10, 5, 50) == 0.0  # more affected than exist
    assert enrichment_p(12, 40, 14, 440) < 1e-10


def test_benjamini_hochberg_matches_the_step_up_rule() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5])
    # sorted: 0.005, 0.01, 0.03, 0.04, 0.5 -> x5/1, x5/2, x5/3, x5/4, x5/5, then running minimum from the top
    expected = np.array([0.025, 0.05, 0.05, 0.025, 0.5])
    assert benjamini_hochberg(p) == pytest.approx(expected)
    assert benjamini_hochberg([]).size == 0


# ---------------------------------------------------------------- cohorts


def test_a_batch_defect_is_found_with_its_not_yet_affected_vehicles() -> None:
    reg, shown = batch_defect_fleet()
    found = find_cohorts(reg, signatures(shown), observed(reg))
    campaigns = found.cohorts[found.cohorts["status"] == "campaign"]
    assert campaigns[["attribute", "value", "code"]].values.tolist() == [["lot", "L007", DRIFT]]
    row = campaigns.iloc[0]
    assert (row["affected"], row["cohort_size"], row["registered"]) == (12, 40, 43)
    assert row["share"] == pytest.approx(0.3) and row["base_rate"] == pytest.approx(2 / 400)
    assert row["lift"] > 30 and row["p_value"] < 1e-9 and row["q_value"] < 1e-6
    assert row["part"] == FAULT_PARTS[DRIFT].part and "temperature" in row["check"]
    # L007's battery supplier (and others of its suppliers) are elevated too, only through L007.
    covered = found.cohorts[found.cohorts["status"] == "covered"]
    assert "battery_supplier" in set(covered["attribute"])
    assert set(covered["covered_by"]) == {row["cohort_id"]}

    campaign = campaign_vehicles(found.cohorts, reg, signatures(shown), observed(reg))
    assert len(campaign) == 43
    assert campaign["status"].value_counts().to_dict() == {
        "not yet affected": 28,
        "affected": 12,
        "no recent data": 3,
    }
    assert set(campaign["vin"]) == set(lot_vins(reg, "L007", with_data=False))
    assert campaign["owner_contact"].str.endswith("@example.com").all()
    assert campaign["status"].iloc[0] == "affected"  # affected first, then the rest


def random_fleet(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """No batch defect: every vehicle shows each signature with probability 3 %."""
    reg = registry(seed=seed)
    rng = np.random.default_rng(seed + 1000)
    pairs = [(v, code) for code in FAULT_PARTS for v in reg["vin"][rng.random(len(reg)) < 0.03]]
    return reg, counts(pairs)


def test_random_fleets_yield_no_cohort_though_raw_p_values_would() -> None:
    fleets_with_cohorts, fleets_with_raw_hits = 0, 0
    for seed in range(20):
        reg, shown = random_fleet(seed)
        found = find_cohorts(reg, signatures(shown), reg["vin"])
        assert found.tested == 5 * (11 + 2 + 10)  # codes x (lots, models, two suppliers per part)
        fleets_with_cohorts += not found.cohorts.empty
        tests = found.tests
        raw = tests[(tests["p_value"] <= 0.05) & (tests["affected"] >= 3) & (tests["lift"] >= 2.0)]
        fleets_with_raw_hits += not raw.empty
    assert fleets_with_cohorts <= 1  # Benjamini-Hochberg at 5 %: at most about one fleet in 20
    assert fleets_with_raw_hits >= 10  # without the correction most fleets would show a "cohort"


def test_two_bad_lots_of_one_supplier_are_two_campaigns_not_the_supplier() -> None:
    reg = registry(lots=12, per_lot=30)
    reg["brake_supplier"] = [
        "Ferro" if lot in ("L001", "L002", "L003", "L004") else "Other" for lot in reg["lot"]
    ]
    bad = lot_vins(reg, "L001")[:10] + lot_vins(reg, "L002")[:10]
    found = find_cohorts(reg, signatures(counts([(v, "brakes.pad_wear") for v in bad])), observed(reg))
    campaigns = found.cohorts[found.cohorts["status"] == "campaign"]
    assert sorted(campaigns["value"]) == ["L001", "L002"]
    supplier = found.cohorts[found.cohorts["attribute"] == "brake_supplier"]
    assert supplier["status"].tolist() == ["covered"]


def test_a_bad_supplier_across_its_lots_is_one_campaign() -> None:
    reg = registry(lots=12, per_lot=30)
    reg["brake_supplier"] = [
        "Ferro" if lot in ("L001", "L002", "L003", "L004") else "Other" for lot in reg["lot"]
    ]
    ferro = reg.loc[reg["brake_supplier"] == "Ferro", "vin"].tolist()
    hit = np.random.default_rng(5).choice(ferro, 36, replace=False)  # 30 % of each of its lots, about
    found = find_cohorts(reg, signatures(counts([(str(v), "brakes.pad_wear") for v in hit])), observed(reg))
    campaigns = found.cohorts[found.cohorts["status"] == "campaign"]
    assert campaigns[["attribute", "value"]].values.tolist() == [["brake_supplier", "Ferro"]]
    lots = found.cohorts[found.cohorts["attribute"] == "lot"]
    assert (lots["status"] == "covered").all() and (
        lots["covered_by"] == campaigns.iloc[0]["cohort_id"]
    ).all()


def test_subsystem_anomalies_without_a_fault_code_are_signatures_too() -> None:
    faults = counts([("V1", "brakes.pad_wear")])
    peaks = pd.DataFrame(
        [("V1", "brakes", 1.4), ("V2", "brakes", 1.2), ("V3", "motor", 0.9), ("V3", "battery", 1.0)],
        columns=["vin", "subsystem", "max_score"],
    )
    assert signatures(faults, peaks).values.tolist() == [
        ["V1", "brakes.pad_wear"],
        ["V2", "brakes.anomaly"],
        ["V3", "battery.anomaly"],
    ]


# ---------------------------------------------------------------- alerts


def states_frame(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [("demo", vin, sub, NOW - 3_600_000, h, s) for vin, sub, h, s in rows],
        columns=["fleet", "vin", "subsystem", "time", "health", "anomaly_score"],
    )


FaultRow = tuple[str, str, float | None, float | None, float | None, int | None]


def faults_frame(rows: list[FaultRow]) -> pd.DataFrame:
    """vin, code, days, low, high, estimated_at; the fault point itself is an hour old."""
    return pd.DataFrame(
        [
            ("demo", vin, code, NOW - 3_600_000, 0.8, days, low, high, at)
            for vin, code, days, low, high, at in rows
        ],
        columns=[
            "fleet",
            "vin",
            "code",
            "time",
            "confidence",
            "days_to_threshold",
            "days_low",
            "days_high",
            "estimated_at",
        ],
    ).astype({"days_to_threshold": float, "days_low": float, "days_high": float})


def test_priorities_follow_the_documented_rules() -> None:
    states = states_frame(
        [
            ("SOON", "brakes", 0.5, 1.2),
            ("ESTIMATED_LONG_AGO", "tires", 0.6, 1.1),
            ("LATER", "bearings", 0.6, 1.1),
            ("WORN", "motor", 0.3, 1.5),
            ("LOW", "battery", 0.15, 0.4),
            ("WATCH", "battery", 0.35, 0.2),
            ("SCORE", "motor", 0.9, 0.75),
            ("DRIFT", "brakes", 0.75, 0.2),
            ("FINE", "brakes", 0.9, 0.1),
        ]
    )
    faults = faults_frame(
        [
            ("SOON", "brakes.pad_wear", 10.0, 7.0, 15.0, NOW - 3_600_000),
            ("ESTIMATED_LONG_AGO", "tires.pressure_loss", 20.0, 15.0, 30.0, NOW - 8 * DAY_MS),  # 12 left
            ("LATER", "bearings.wheel_bearing_wear", 40.0, 30.0, 60.0, NOW - DAY_MS),
            ("WORN", "motor.noise", None, None, None, None),  # no estimate, but health 0.3
        ]
    )
    baseline = pd.DataFrame(
        [("DRIFT", "brakes", 0.95), ("FINE", "brakes", 0.92)], columns=["vin", "subsystem", "health"]
    )
    alerts = vehicle_alerts(states, faults, NOW, baseline=baseline)
    got = {(r.vin, r.code): r.priority for r in alerts.itertuples()}
    assert got == {
        ("SOON", "brakes.pad_wear"): "P1",
        ("ESTIMATED_LONG_AGO", "tires.pressure_loss"): "P1",
        ("LATER", "bearings.wheel_bearing_wear"): "P2",
        ("WORN", "motor.noise"): "P2",
        ("LOW", "battery.low_health"): "P1",
        ("WATCH", "battery.low_health"): "P2",
        ("SCORE", "motor.anomaly"): "P2",
        ("DRIFT", "brakes.drift"): "P3",
    }
    assert alerts["priority"].tolist() == sorted(alerts["priority"])  # most urgent first
    assert alerts.iloc[0]["vin"] == "SOON"  # P1 with the fewest days left
    long_ago = alerts.set_index("vin").loc["ESTIMATED_LONG_AGO"]
    assert long_ago["days_left"] == pytest.approx(12.0)
    assert long_ago["days_low_left"] == pytest.approx(7.0)
    assert "puncture" in long_ago["action"]
    assert alerts.set_index("vin").loc["LOW", "band"] == "act"
    assert alerts.set_index("vin").loc["DRIFT", "action"].startswith("No action yet")


def test_a_fault_alert_carries_the_classified_cause_of_its_latest_record() -> None:
    states = states_frame(
        [("PADS", "brakes", 0.5, 1.2), ("TIRE", "tires", 0.6, 1.1), ("LOW", "battery", 0.15, 0.4)]
    )
    faults = faults_frame(
        [
            ("PADS", "brakes.pad_wear", 10.0, 7.0, 15.0, NOW - 3_600_000),
            ("TIRE", "tires.pressure_loss", 20.0, 15.0, 30.0, NOW - DAY_MS),
        ]
    ).assign(cause_code=["brakes.pad_wear", None], cause_probability=[0.8203125, math.nan])
    alerts = vehicle_alerts(states, faults, NOW).set_index("vin")
    assert alerts.loc["PADS", "cause_code"] == "brakes.pad_wear"
    assert alerts.loc["PADS", "cause_probability"] == 0.8203125
    assert "classified cause brakes.pad_wear (82%)" in alerts.loc["PADS", "reason"]
    for vin in ("TIRE", "LOW"):  # a record without causes, an alert without a fault
        assert alerts.loc[vin, "cause_code"] is None and math.isnan(alerts.loc[vin, "cause_probability"])
        assert "cause" not in alerts.loc[vin, "reason"]
    without = vehicle_alerts(states, faults.drop(columns=["cause_code", "cause_probability"]), NOW)
    assert without["cause_code"].isna().all()


def test_a_fault_is_open_only_in_the_latest_record() -> None:
    faults = faults_frame(
        [("A", "tires.pressure_loss", 5.0, 3.0, 8.0, NOW), ("B", "tires.pressure_loss", 5.0, 3.0, 8.0, NOW)]
    )
    last_seen = pd.DataFrame(
        [("demo", "A", NOW - 3_600_000), ("demo", "B", NOW)], columns=["fleet", "vin", "time"]
    )
    assert open_faults(faults, last_seen)["vin"].tolist() == ["A"]


# ---------------------------------------------------------------- service list


def test_service_dates_come_from_the_lower_bound_minus_the_margin() -> None:
    reg = pd.DataFrame(
        [
            {"vin": "A", "owner_name": "Ana", "owner_contact": "+49 1", "service_center": "SC-01"},
            {"vin": "B", "owner_name": "Ben", "owner_contact": "ben@example.com", "service_center": "SC-02"},
            {"vin": "C", "owner_name": "Cem", "owner_contact": "cem@example.com", "service_center": "SC-01"},
        ]
    )
    faults = faults_frame(
        [
            ("A", "brakes.pad_wear", 20.0, 12.0, 30.0, NOW - 2 * DAY_MS),  # due 2024-06-07
            ("B", "tires.pressure_loss", 5.0, 1.0, 9.0, NOW - 2 * DAY_MS),  # due in the past: today
            ("C", "motor.noise", 40.0, None, None, NOW),  # no interval: 10% bound 40 x 0.527
            ("C", "bearings.wheel_bearing_wear", 60.0, 50.0, 80.0, NOW),
            ("D", "battery.module_temperature_drift", 30.0, 25.0, 40.0, NOW),  # not registered
            ("E", "motor.noise", None, None, None, None),  # no prediction: not on the list
        ]
    )
    table = service_list(faults, reg, NOW)
    assert table["vin"].tolist() == ["B", "A", "C", "D"]
    rows = table.set_index("vin")
    assert rows.loc["B", "due_date"] == "2024-06-01"  # today, not in the past
    assert rows.loc["A", "due_date"] == day(NOW - 2 * DAY_MS + (12 - 3) * DAY_MS) == "2024-06-08"
    assert rows.loc["A", "failure_date"] == "2024-06-19"
    assert rows.loc["A", "days_left"] == pytest.approx(18.0)
    assert rows.loc["C", "due_date"] == day(NOW + (40 * math.exp(-1.2816 * 0.5) - 3) * DAY_MS)
    assert rows.loc["C", "codes"] == "motor.noise, bearings.wheel_bearing_wear"  # earliest due first
    assert rows.loc["C", "parts"] == "PG-MOT-5100, PG-WBR-4100"
    assert (rows.loc["A", "owner_name"], rows.loc["A", "owner_contact"], rows.loc["A", "service_center"]) == (
        "Ana",
        "+49 1",
        "SC-01",
    )
    assert not rows.loc["D", "registered"] and rows.loc["D", "owner_name"] == ""
    assert "brake pad set" in rows.loc["A", "reason"] and "18 days" in rows.loc["A", "reason"]


# ---------------------------------------------------------------- maintenance intervals


def wear_frame(rates: dict[str, float], days: int = 20, *, start_health: float = 0.9) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for vin, rate in rates.items():
        for d in range(days):
            noise = float(rng.normal(0, 0.0005))
            rows.append((vin, "brakes", NOW - (days - d) * DAY_MS, start_health - rate * d + noise))
    return pd.DataFrame(rows, columns=["vin", "subsystem", "time", "health"])


def test_harder_braking_gives_shorter_pad_intervals() -> None:
    rates = {f"GENTLE{i}": 0.002 for i in range(4)} | {f"NORMAL{i}": 0.004 for i in range(3)}
    rates |= {f"HARD{i}": 0.008 for i in range(3)}
    table = maintenance_intervals(wear_frame(rates), states_frame([]), faults_frame([]), NOW).set_index("vin")
    assert set(table.index) == set(rates)
    assert (
        table.loc["HARD0", "interval_days"]
        < table.loc["NORMAL0", "interval_days"]
        < table.loc["GENTLE0", "interval_days"]
    )
    typical = table.loc["HARD0", "fleet_rate_per_day"]
    assert typical == pytest.approx(0.004, rel=0.05)  # the median vehicle
    assert table.loc["HARD0", "wear_rate_per_day"] == pytest.approx(0.008, rel=0.05)
    assert table.loc["HARD0", "interval_days"] == pytest.approx(
        365 * typical / table.loc["HARD0", "wear_rate_per_day"]
    )
    assert table.loc["HARD0", "interval_days"] == pytest.approx(182.5, rel=0.06)
    assert (table["part"] == "PG-BRK-3100").all() and (table["method"] == "trend").all()
    health = table.loc["HARD0", "health"]
    assert table.loc["HARD0", "next_service_days"] == pytest.approx((health - 0.2) / 0.008, rel=0.06)


def test_a_pad_change_restarts_the_trend_and_faults_fill_in() -> None:
    wear = pd.concat(
        [wear_frame({"A": 0.004, "B": 0.004, "C": 0.004}), wear_frame({"CHANGED": 0.02}, start_health=0.6)]
    )
    changed = wear["vin"] == "CHANGED"  # worn to about 0.3, new pads 8 days ago, then wearing 0.01 a day
    late = changed & (wear["time"] >= NOW - 8 * DAY_MS)
    wear.loc[late, "health"] = 0.95 - 0.01 * (wear.loc[late, "time"] - (NOW - 8 * DAY_MS)) / DAY_MS
    states = states_frame([("FAULTY", "brakes", 0.1, 1.2)])
    faults = faults_frame([("FAULTY", "brakes.pad_wear", 5.0, 3.0, 8.0, NOW)])
    table = maintenance_intervals(wear, states, faults, NOW).set_index("vin")
    assert table.loc["CHANGED", "wear_rate_per_day"] == pytest.approx(0.01, rel=0.05)  # after the change only
    assert table.loc["CHANGED", "days_of_data"] == 8
    assert table.loc["FAULTY", "method"] == "fault"
    assert table.loc["FAULTY", "wear_rate_per_day"] == pytest.approx(0.1 / 5.0)
    assert table.loc["FAULTY", "relative_rate"] == 4.0  # clipped
    assert table.loc["FAULTY", "next_service_days"] == 0.0


def test_theil_sen_ignores_an_outlier() -> None:
    days = np.arange(10.0)
    values = 1.0 - 0.01 * days
    values[4] = 0.2
    assert theil_sen_slope(days, values) == pytest.approx(-0.01)


# ---------------------------------------------------------------- parts and the whole run


def test_parts_failures_count_days_from_now() -> None:
    reg = pd.DataFrame([{"vin": "A", "service_center": "SC-01"}, {"vin": "B", "service_center": None}])
    faults = faults_frame(
        [
            ("A", "brakes.pad_wear", 20.0, 12.0, 30.0, NOW - 5 * DAY_MS),
            ("A", "wipers.streaks", 20.0, 12.0, 30.0, NOW),  # no part: left out
            ("B", "tires.pressure_loss", 9.0, 5.0, 12.0, NOW),  # no service center: left out
        ]
    )
    failures = parts_failures(faults, reg, NOW)
    assert failures[["vin", "service_center", "part"]].values.tolist() == [["A", "SC-01", "PG-BRK-3100"]]
    assert failures[["days_to_failure", "days_low", "days_high"]].values.tolist()[0] == pytest.approx(
        [15, 7, 25]
    )


def inputs_for(reg: pd.DataFrame, shown: pd.DataFrame) -> Inputs:
    vins = observed(reg)
    states = states_frame([(v, s, 0.9, 0.1) for v in vins for s in SUBSYSTEMS])
    faults = faults_frame([(v, c, 20.0, 10.0, 30.0, NOW) for v, c in shown[["vin", "code"]].values])
    return Inputs(
        registry=reg,
        states=states,
        last_seen=pd.DataFrame({"fleet": "demo", "vin": vins, "time": NOW - 3_600_000}),
        faults=faults,
        fault_counts=shown,
        peaks=pd.DataFrame(columns=["vin", "subsystem", "max_score"]),
        baseline=pd.DataFrame(columns=["vin", "subsystem", "health"]),
        wear=pd.DataFrame(columns=["vin", "subsystem", "time", "health"]),
        stock=pd.DataFrame(
            [("SC-01", "PG-BAT-1100", 2.0, 0.0, 3.0)],
            columns=["service_center", "part", "on_hand", "on_order", "lead_time_weeks"],
        ),
    )


def test_the_whole_run_and_its_points_are_deterministic() -> None:
    reg, shown = batch_defect_fleet()
    results = analyse(inputs_for(reg, shown), NOW)
    assert (results.registered, results.observed, results.unregistered) == (443, 440, 0)
    assert len(results.alerts) == 14 and set(results.alerts["priority"]) == {"P2"}
    assert len(results.service) == 14
    assert set(results.parts_reorder["part"]) == {"PG-BAT-1100"}
    sc1 = results.parts_reorder.set_index("service_center").loc["SC-01"]
    assert sc1["on_hand"] == 2.0 and sc1["lead_time_weeks"] == 3.0
    assert len(results.parts_weekly) == 8 * len(results.parts_reorder)
    lines, run = snapshot(results, NOW, lookback_days=30, horizon_weeks=8)
    again, _ = snapshot(analyse(inputs_for(reg, shown), NOW), NOW, lookback_days=30, horizon_weeks=8)
    assert lines == again
    assert all(line.endswith(f" {NOW}") for line in lines)
    assert run["campaigns"] == 1 and run["campaign_vehicles"] == 43 and run["alerts_p2"] == 14
    cohort = next(line for line in lines if line.startswith("cohort,"))
    assert "affected=12i" in cohort and "campaign_vehicles=43i" in cohort and "not_yet_affected=28i" in cohort
    assert cohort.startswith(f"cohort,attribute=lot,code={DRIFT},value=L007 ")
    week = next(line for line in lines if line.startswith("parts_forecast,"))
    assert re.search(r",week=01 .*week_index=1i,week_start_ms=\d+i,week_start=\"2024-06-01\"", week)


def test_a_point_writes_each_field_as_its_schema_type_and_skips_unknowns() -> None:
    line = encode_row(
        schema.ALERT,
        {
            "fleet": "",
            "vin": "V 1",
            "code": "a.b",
            "priority": "P1",
            "rank": 3.0,
            "health": 1,
            "days_left": math.nan,
            "reason": 'say "hi"',
            "band": None,
        },
        1000,
    )
    assert line == 'alert,code=a.b,priority=P1,vin=V\\ 1 rank=3i,health=1.0,reason="say \\"hi\\"" 1000'
    assert encode_row(schema.ALERT, {"vin": "V"}, 1) is None


def test_durations_and_times_parse_or_say_why() -> None:
    assert (
        parse_duration_s("15m") == 900
        and parse_duration_s("30d") == 30 * 86400
        and parse_duration_s("90") == 90
    )
    for bad in ("0m", "soon", "-1h", "", "inf"):
        with pytest.raises(ConfigError, match="not a positive length of time"):
            parse_duration_s(bad)
    assert parse_time_ms("2024-06-01T12:00:00Z") == NOW == parse_time_ms("2024-06-01 12:00")
    with pytest.raises(ConfigError, match="not an ISO 8601 time"):
        parse_time_ms("yesterday")


def test_the_schema_page_lists_every_measurement_tag_and_field() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "analytics.md").read_text(encoding="utf-8")
    for measurement in (*schema.ANALYTICS_RESULTS, schema.ANALYTICS_RUN):
        section = text.split(f"### `{measurement.name}`", 1)[1].split("\n### ", 1)[0]
        for name in (*measurement.tags, *measurement.fields):
            assert f"| `{name}` |" in section, (measurement.name, name)
        for name, kind in measurement.fields.items():
            row = section.split(f"| `{name}` |", 1)[1].split("\n", 1)[0]
            assert row.strip().startswith(f"{kind} |"), (measurement.name, name, kind)


def test_days_to_failure_read_as_words_never_zero_days() -> None:
    from prognos.cloud.analytics.alerts import days_text

    assert days_text(9.2, 6.0, 14.4) == "failure expected in 9 days (80 % interval 6-14 days)"
    assert days_text(1.0, 0.6, 1.8) == "failure expected in 1 day (80 % interval 1-2 days)"
    assert days_text(0.3, -0.1, 0.4) == "failure expected within a day"
    assert days_text(-2.2, -3.0, -1.0) == "failure was expected 2 days ago"
    assert days_text(5.0, float("nan"), 7.0) == "failure expected in 5 days"
