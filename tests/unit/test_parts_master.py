"""The parts master: a DMS kind the demo generates, joined into the parts plan."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd

from prognos.cloud.dealers.dms import parse_row
from prognos.cloud.dealers.kinds import KINDS, detect_kind
from prognos.cloud.parts.master import order_units, with_costs, with_lead_times, with_names
from prognos.sim.dealers import PARTS, make_dms

MASTER = pd.DataFrame(
    {
        "part": ["P1", "P2"],
        "name": ["Brake pad set, front axle", "Cabin air filter"],
        "unit_cost": [48.5, 18.9],
        "currency": ["EUR", "EUR"],
        "pack_size": [1, 10],
        "min_order": [2, 10],
        "lead_time_days": [14, None],
    }
)


def test_orders_are_whole_packs_and_at_least_the_minimum() -> None:
    assert order_units(0, 10, 10) == 0
    assert order_units(1) == 1
    assert order_units(1, 1, 2) == 2
    assert order_units(3, 1, 2) == 3
    assert order_units(3, 10, 10) == 10
    assert order_units(11, 10, 10) == 20
    assert order_units(3, 4, 5) == 8  # the minimum, rounded up to whole packs


def test_the_plan_rows_get_names_and_the_orders_their_cost() -> None:
    reorder = pd.DataFrame(
        {"service_center": ["SC-01"] * 3, "part": ["P1", "P2", "P9"], "order_qty": [1, 3, 4]}
    )
    costed = with_costs(reorder, MASTER)
    assert list(costed.columns[:3]) == ["service_center", "part", "name"]
    assert costed["name"].tolist() == ["Brake pad set, front axle", "Cabin air filter", "P9"]
    assert costed["order_units"].tolist() == [2, 10, 4]  # P9 has no master row: the need as is
    assert costed["order_cost"].tolist()[:2] == [97.0, 189.0] and math.isnan(costed["order_cost"].iloc[2])
    assert costed["currency"].tolist() == ["EUR", "EUR", ""]
    weekly = pd.DataFrame({"service_center": ["SC-01"], "part": ["P2"], "week": ["1"]})
    assert with_names(weekly, None)["name"].tolist() == ["P2"]
    assert with_names(weekly, MASTER)["name"].tolist() == ["Cabin air filter"]


def test_a_planned_pair_without_stock_gets_the_masters_lead_time() -> None:
    stock = pd.DataFrame(
        [("SC-01", "P1", 5.0, 1.0, 4.0)],
        columns=["service_center", "part", "on_hand", "on_order", "lead_time_weeks"],
    )
    pairs = [("SC-01", "P1"), ("SC-02", "P1"), ("SC-02", "P2"), ("SC-02", "P9")]
    out = with_lead_times(stock, pairs, MASTER)
    assert out is not None
    assert out.values.tolist() == [["SC-01", "P1", 5.0, 1.0, 4.0], ["SC-02", "P1", 0.0, 0.0, 2.0]]
    assert with_lead_times(None, pairs, None) is None  # no master: the plan's default lead time
    alone = with_lead_times(None, [("SC-03", "P1")], MASTER)
    assert alone is not None and alone["lead_time_weeks"].tolist() == [2.0]


def test_the_demo_dms_has_a_valid_parts_master_for_every_part_it_uses() -> None:
    rows = make_dms(seed=3, months=1, end=date(2024, 7, 1), order_scale=0.05, vehicles=4)["part"]
    assert [row["part"] for row in rows] == list(PARTS)
    kind = detect_kind(rows[0].keys(), "part.csv")
    assert kind is KINDS["part"]
    records = [parse_row(kind, row) for row in rows]
    assert all(isinstance(r["name"], str) and r["name"][0].isupper() for r in records)
    assert all(isinstance(r["unit_cost"], float) and r["unit_cost"] > 0 for r in records)
