"""The parts demand history from DMS work orders, and how it joins the predicted failures."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd

from prognos.cloud.analytics.analyse import Inputs, parts_plan
from prognos.cloud.parts.history import demand_history, iso_week, part_uses, unrepaired
from prognos.cloud.parts.plan import plan_parts
from prognos.sim.dealers import make_dms


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


NOW = ms("2024-07-10T12:00:00")  # a Wednesday of ISO week 2024-W28


def orders(rows: list[tuple[str, str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(d, v, c, p, ms(t)) for d, v, c, p, t in rows],
        columns=["dealer_id", "vin", "service_center", "parts", "time"],
    )


def test_part_uses_are_one_row_per_unit_and_a_missing_center_is_the_dealer() -> None:
    uses = part_uses(
        orders(
            [
                ("DLR-01", "A", "SC-01", "P1;P1;P2", "2024-07-01T08:00:00"),
                ("DLR-02", "B", "", "P2", "2024-07-02T08:00:00"),
                ("DLR-01", "C", "SC-01", "", "2024-07-02T09:00:00"),  # no parts: nothing
            ]
        )
    )
    assert uses[["vin", "service_center", "part"]].values.tolist() == [
        ["A", "SC-01", "P1"],
        ["A", "SC-01", "P1"],
        ["A", "SC-01", "P2"],
        ["B", "DLR-02", "P2"],
    ]
    assert part_uses(orders([])).empty


def test_history_counts_units_per_iso_week_and_leaves_the_running_week_out() -> None:
    uses = part_uses(
        orders(
            [
                ("D", "A", "SC-01", "P1;P1", "2024-06-24T08:00:00"),  # Monday of W26
                ("D", "B", "SC-01", "P1", "2024-06-30T23:59:00"),  # Sunday of W26
                ("D", "C", "SC-01", "P1", "2024-07-01T00:00:00"),  # Monday of W27
                ("D", "C", "SC-02", "P2", "2024-07-03T10:00:00"),
                ("D", "E", "SC-01", "P1", "2024-07-08T10:00:00"),  # W28, still running at NOW
            ]
        )
    )
    history = demand_history(uses, before_ms=NOW)
    assert history.values.tolist() == [
        ["2024-W26", "SC-01", "P1", 3.0],
        ["2024-W27", "SC-01", "P1", 1.0],
        ["2024-W27", "SC-02", "P2", 1.0],
    ]
    assert iso_week(NOW) == "2024-W28"
    assert demand_history(uses.iloc[5:], before_ms=NOW).empty


def test_a_fault_whose_part_was_fitted_since_is_repaired_not_a_failure_to_come() -> None:
    faults = pd.DataFrame(
        {
            "vin": ["A", "A", "B", "C"],
            "code": ["brakes.pad_wear", "tires.pressure_loss", "brakes.pad_wear", "x.unknown"],
            "time": [ms("2024-07-01T00:00:00")] * 4,
        }
    )
    uses = part_uses(
        orders(
            [
                ("D", "A", "SC-01", "PG-BRK-3100", "2024-07-02T08:00:00"),  # A's brakes repaired
                ("D", "B", "SC-01", "PG-BRK-3100", "2024-06-20T08:00:00"),  # before B's fault: open
            ]
        )
    )
    left = unrepaired(faults, uses)
    assert left[["vin", "code"]].values.tolist() == [
        ["A", "tires.pressure_loss"],
        ["B", "brakes.pad_wear"],
        ["C", "x.unknown"],
    ]


def test_the_repair_counts_once_in_the_history_and_no_longer_as_a_failure() -> None:
    registry = pd.DataFrame({"vin": ["A"], "service_center": ["SC-01"]})
    opened = pd.DataFrame(
        {
            "vin": ["A"],
            "code": ["brakes.pad_wear"],
            "time": [ms("2024-06-20T00:00:00")],
            "days_to_threshold": [3.0],
            "days_low": [1.0],
            "days_high": [6.0],
            "estimated_at": [ms("2024-06-20T00:00:00")],
        }
    )
    empty = pd.DataFrame(columns=["service_center", "part", "on_hand", "on_order", "lead_time_weeks"])

    def inputs(uses: pd.DataFrame) -> Inputs:
        none = pd.DataFrame()
        return Inputs(registry, none, none, none, none, none, none, none, empty, part_uses=uses)

    before = parts_plan(inputs(part_uses(orders([]))), opened, NOW, horizon_weeks=2).weekly
    assert before["from_failures"].sum() > 0.9 and before["baseline"].sum() == 0
    repaired = part_uses(orders([("D", "A", "SC-01", "PG-BRK-3100", "2024-06-25T08:00:00")]))
    after = parts_plan(inputs(repaired), opened, NOW, horizon_weeks=2).weekly
    assert after["from_failures"].sum() == 0 and after["baseline"].sum() > 0
    assert after["week"].tolist() == ["1", "2"]


def test_the_demo_dealers_history_gives_a_plan_with_baselines_and_reorders() -> None:
    rows = make_dms(seed=5, months=6, end=date(2024, 7, 1), vehicles=60)
    frame = pd.DataFrame(rows["work_order"])
    frame["time"] = [ms(t.rstrip("Z")) for t in frame["opened_at"]]
    history = demand_history(part_uses(frame), before_ms=ms("2024-07-01T00:00:00"))
    stock = pd.DataFrame(rows["parts_stock"])
    stock = stock[stock["as_of"] == stock["as_of"].max()]
    vins = pd.DataFrame(rows["vehicle"])[["vin", "service_center"]].head(10)
    failures = pd.DataFrame(
        {
            "vin": vins["vin"],
            "service_center": vins["service_center"],
            "code": "brakes.pad_wear",
            "days_to_failure": 10.0,
            "days_low": 5.0,
            "days_high": 20.0,
        }
    )
    plan = plan_parts(failures, history, stock, horizon_weeks=8)
    baselines = plan.weekly.groupby(["service_center", "part"])["baseline"].max()
    assert (baselines > 1.0).sum() >= 20  # 5 service centers, 8 parts
    assert (plan.reorder["order_qty"] > 0).any()
    assert plan.weekly["from_failures"].sum() > 5
