"""This week's parts decisions, worked by hand on small cases: orders in whole packs and at
least the minimum, transfers before orders, the sentence that says why, the campaign's
pre-stock, the purchasing system's order list, and the demo's plan."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from prognos.cloud.analytics.analyse import Inputs, parts_plan
from prognos.cloud.parts.decisions import (
    CAMPAIGN_STOCK_COLUMNS,
    DECISION_COLUMNS,
    ORDER_LIST_HEADINGS,
    Decisions,
    campaign_stock,
    cover_days,
    decide,
    distance_km,
    order_list,
    reason_text,
    surplus,
    transfer_lanes,
    window_text,
)
from prognos.cloud.parts.history import part_uses
from prognos.cloud.parts.plan import plan_parts
from prognos.sim.dealers import MASTER, make_dms

NOW = int(datetime(2024, 7, 1, tzinfo=UTC).timestamp() * 1000)
DAY_MS = 86_400_000
# Hamburg, Bremen (95 km from Hamburg), Kiel (86 km from Hamburg, 163 km from Bremen), Munich
CENTERS = pd.DataFrame(
    {
        "service_center": ["SC-A", "SC-B", "SC-D", "SC-M"],
        "dealer_id": ["D1", "D2", "D3", "D4"],
        "lat": [53.551, 53.079, 54.323, 48.137],
        "lon": [9.994, 8.802, 10.123, 11.575],
    }
)


def plan_row(
    center: str,
    part: str = "P",
    *,
    on_hand: float,
    reorder_point: int,
    on_order: float = 0.0,
    lead_weeks: float = 2.0,
    pack: int = 1,
    minimum: int = 0,
    cost: float = 10.0,
    baseline: float = 1.0,
    due: int = 0,
    from_failures: float = 0.0,
) -> dict[str, object]:
    """A plan row as plan_parts and with_costs give it; order_qty lifts the position to the
    reorder point."""
    return {
        "service_center": center,
        "part": part,
        "name": f"part {part}",
        "on_hand": on_hand,
        "on_order": on_order,
        "lead_time_weeks": lead_weeks,
        "review_weeks": 1.0,
        "baseline_per_week": baseline,
        "failures_due": due,
        "from_failures": from_failures,
        "protection_demand": baseline * (lead_weeks + 1.0) + from_failures,
        "protection_low": 0,
        "protection_high": reorder_point + 1,
        "safety_stock": 1.0,
        "reorder_point": reorder_point,
        "order_qty": max(0, math.ceil(reorder_point - on_hand - on_order)),
        "unit_cost": cost,
        "currency": "EUR",
        "supplier": "Brembo",
        "pack_size": pack,
        "min_order": minimum,
    }


def weekly_for(plan: pd.DataFrame, per_week: dict[str, float] | None = None) -> pd.DataFrame:
    """Four weeks of forecast per pair: `per_week[center]` units a week (default 1)."""
    rows = [
        (c, p, (per_week or {}).get(c, 1.0))
        for c, p in zip(plan["service_center"], plan["part"], strict=True)
        for _ in range(4)
    ]
    return pd.DataFrame(rows, columns=["service_center", "part", "forecast"])


def decided(rows: list[dict[str, object]], lanes: pd.DataFrame | None = None, **per_week: float) -> Decisions:
    plan = pd.DataFrame(rows)
    return decide(plan, weekly_for(plan, per_week), lanes, now_ms=NOW)


# ---------------------------------------------------------------- orders


def test_orders_are_whole_packs_at_least_the_minimum_and_say_so() -> None:
    result = decided(
        [
            plan_row("SC-A", "P1", on_hand=2, reorder_point=5, pack=10, minimum=10),  # 3 short
            plan_row("SC-A", "P2", on_hand=1, reorder_point=12, pack=10, minimum=10),  # 11 short
            plan_row("SC-A", "P3", on_hand=0, reorder_point=3, pack=1, minimum=2),  # 3 short
            plan_row("SC-A", "P4", on_hand=9, reorder_point=3),  # enough
        ]
    )
    plan = result.plan.set_index("part")
    assert plan["order_units"].to_dict() == {"P1": 10, "P2": 20, "P3": 3, "P4": 0}
    assert plan["order_cost"].to_dict() == {"P1": 100.0, "P2": 200.0, "P3": 30.0, "P4": 0.0}
    assert "Order 10 (3 needed, rounded up to the minimum order of 10)." in plan.at["P1", "reason"]
    assert "Order 20 (11 needed, rounded up to packs of 10)." in plan.at["P2", "reason"]
    assert plan.at["P3", "reason"].endswith("Order 3. No stock left: expedite.")
    assert plan.at["P4", "reason"].endswith("Nothing to order.")
    lines = result.lines
    assert list(lines.columns) == list(DECISION_COLUMNS)
    assert sorted(lines["part"]) == ["P1", "P2", "P3"] and set(lines["action"]) == {"order"}
    assert (lines["quantity"] % lines["pack_size"] == 0).all()
    assert set(lines["unit"]) == {"EA"} and set(lines["supplier"]) == {"Brembo"}


def test_an_order_is_needed_by_when_its_stock_runs_out_at_the_latest_one_lead_time_away() -> None:
    # 7 units a week: 2 on hand last 2 days; 20 on hand last past the 14-day lead time.
    result = decided(
        [
            plan_row("SC-A", "P1", on_hand=2, reorder_point=30),
            plan_row("SC-B", "P1", on_hand=20, reorder_point=30),
        ],
        **{"SC-A": 7.0, "SC-B": 7.0},
    )
    lines = result.lines.set_index("service_center")
    assert lines.at["SC-A", "cover_days"] == pytest.approx(2.0)
    assert lines.at["SC-A", "need_by"] == "2024-07-03"
    assert lines.at["SC-B", "need_by"] == "2024-07-15"  # the lead time
    assert list(result.lines["service_center"]) == ["SC-A", "SC-B"]  # most urgent first
    assert "Stock lasts about 2 days, less than the lead time: expedite." in lines.at["SC-A", "reason"]
    assert "expedite" not in lines.at["SC-B", "reason"]


def test_cover_days_spread_each_weeks_demand_evenly() -> None:
    assert cover_days([7, 7, 7], 10) == pytest.approx(10.0)
    assert cover_days([0, 14], 7) == pytest.approx(10.5)
    assert cover_days([7, 7], 0) == 0.0
    assert math.isnan(cover_days([1, 1], 3))  # lasts past the forecast
    assert window_text(2.0) == "2 weeks" and window_text(1.0) == "1 week"
    assert window_text(10 / 7 + 1) == "17 days"


# ---------------------------------------------------------------- transfers


def test_lanes_join_centers_within_a_days_drive_or_of_one_dealer() -> None:
    assert distance_km(53.551, 9.994, 53.079, 8.802) == pytest.approx(95, abs=1)
    lanes = transfer_lanes(CENTERS)
    pairs = set(zip(lanes["from_center"], lanes["to_center"], strict=True))
    assert pairs == {
        ("SC-A", "SC-B"),
        ("SC-B", "SC-A"),
        ("SC-A", "SC-D"),
        ("SC-D", "SC-A"),
        ("SC-B", "SC-D"),
        ("SC-D", "SC-B"),
    }  # Munich is 600 km from all three
    assert set(lanes["transfer_days"]) == {2.0}
    unplaced = pd.DataFrame(
        {
            "service_center": ["X1", "X2", "Y1"],
            "dealer_id": ["DX", "DX", "DY"],
            "lat": [None] * 3,
            "lon": [None] * 3,
        }
    )
    lanes = transfer_lanes(unplaced)
    assert set(zip(lanes["from_center"], lanes["to_center"], strict=True)) == {("X1", "X2"), ("X2", "X1")}
    assert transfer_lanes(None).empty


def test_surplus_keeps_the_givers_own_reorder_point_and_only_ships_its_shelf() -> None:
    assert surplus(20, 0, 8) == 12
    assert surplus(3, 10, 6) == 3  # 7 above the reorder point, 3 on the shelf
    assert surplus(5, 0, 8) == 0


def test_a_neighbours_surplus_covers_the_need_before_any_order() -> None:
    lanes = transfer_lanes(CENTERS)
    result = decided(
        [
            plan_row("SC-A", on_hand=2, reorder_point=7),  # 5 short
            plan_row("SC-B", on_hand=20, reorder_point=8),  # 12 spare, 95 km away
            plan_row("SC-M", on_hand=50, reorder_point=5),  # 45 spare, too far
        ],
        lanes,
    )
    lines = result.lines
    assert lines[["action", "from_center", "service_center", "quantity"]].values.tolist() == [
        ["transfer", "SC-B", "SC-A", 5]
    ]
    assert lines.at[0, "need_by"] == "2024-07-03" and lines.at[0, "supplier"] == ""
    assert lines.at[0, "line_cost"] == 50.0  # what the moved units are worth
    plan = result.plan.set_index("service_center")
    assert plan.loc["SC-A", ["transfer_in", "transfer_from", "order_units"]].tolist() == [5, "SC-B", 0]
    assert plan.loc["SC-B", ["transfer_out", "transfer_to"]].tolist() == [5, "SC-A"]
    assert plan.at["SC-A", "reason"].endswith("Take 5 from SC-B.")
    assert plan.at["SC-B", "reason"].endswith("Send 5 spare to SC-A.")
    assert plan.at["SC-M", "transfer_out"] == 0


def test_a_partial_transfer_leaves_an_order_in_whole_packs() -> None:
    result = decided(
        [
            plan_row("SC-A", on_hand=1, reorder_point=10, pack=4),  # 9 short
            plan_row("SC-B", on_hand=3, on_order=10, reorder_point=6),  # 3 on the shelf to give
        ],
        transfer_lanes(CENTERS),
    )
    assert result.lines[["action", "service_center", "quantity"]].values.tolist() == [
        ["transfer", "SC-A", 3],
        ["order", "SC-A", 8],
    ]
    reason = result.plan.set_index("service_center").at["SC-A", "reason"]
    assert reason.endswith("Take 3 from SC-B; order 8 (6 needed, rounded up to packs of 4).")


def test_the_most_urgent_center_is_served_first_and_the_nearest_giver_gives_first() -> None:
    lanes = transfer_lanes(CENTERS)
    result = decided(
        [
            plan_row("SC-A", on_hand=1, reorder_point=4),  # 3 short, lasts 1 day
            plan_row("SC-D", on_hand=10, reorder_point=13),  # 3 short, lasts 10 days
            plan_row("SC-B", on_hand=12, reorder_point=8),  # 4 spare
        ],
        lanes,
        **{"SC-A": 7.0, "SC-D": 7.0},
    )
    lines = result.lines
    moved = lines[lines["action"] == "transfer"][["service_center", "from_center", "quantity"]]
    assert moved.values.tolist() == [["SC-A", "SC-B", 3], ["SC-D", "SC-B", 1]]
    assert lines[lines["action"] == "order"][["service_center", "quantity"]].values.tolist() == [["SC-D", 2]]
    # SC-A has two givers: Kiel (86 km) before Bremen (95 km)
    nearest = decided(
        [
            plan_row("SC-A", on_hand=0, reorder_point=2),
            plan_row("SC-B", on_hand=10, reorder_point=2),
            plan_row("SC-D", on_hand=10, reorder_point=2),
        ],
        lanes,
    )
    assert nearest.lines["from_center"].tolist() == ["SC-D"]


def test_no_transfer_when_the_supplier_is_as_quick_or_the_giver_is_short_itself() -> None:
    lanes = transfer_lanes(CENTERS)
    quick = decided(
        [
            plan_row("SC-A", on_hand=0, reorder_point=3, lead_weeks=2 / 7),  # delivered in 2 days
            plan_row("SC-B", on_hand=10, reorder_point=2, lead_weeks=2 / 7),
        ],
        lanes,
    )
    assert quick.lines["action"].tolist() == ["order"]
    short = decided(
        [
            plan_row("SC-A", on_hand=0, reorder_point=3),
            plan_row("SC-B", on_hand=1, on_order=9, reorder_point=12),
        ],
        lanes,
    )
    assert short.lines["action"].tolist() == ["order", "order"]
    alone = decided(
        [plan_row("SC-A", on_hand=0, reorder_point=3), plan_row("SC-M", on_hand=30, reorder_point=2)], lanes
    )
    assert alone.lines["action"].tolist() == ["order"]


# ---------------------------------------------------------------- the sentence


def test_the_reason_names_failures_baseline_need_stock_lead_time_and_decision() -> None:
    row = plan_row(
        "SC-02", on_hand=2, reorder_point=7, lead_weeks=10 / 7, baseline=1.2, due=3, from_failures=2.9
    )
    result = decide(pd.DataFrame([row]), weekly_for(pd.DataFrame([row])), None, now_ms=NOW)
    assert result.plan.at[0, "reason"] == (
        "3 predicted failures at SC-02 in the next 17 days plus a baseline of 1.2 a week: "
        "needs 7 for 95 % service (5.8 expected); stock 2; lead time 10 days. Order 5."
    )
    only_failures = {**row, "baseline_per_week": 0.0, "failures_due": 1, "on_order": 4, "order_units": 1}
    text = reason_text(only_failures)
    assert text.startswith("1 predicted failure at SC-02 in the next 17 days: needs 7")
    assert "stock 2, 4 on order" in text
    nothing = {**row, "baseline_per_week": 0.0, "failures_due": 0, "from_failures": 0.0, "order_units": 0}
    assert reason_text(nothing).startswith("No demand expected at SC-02 in the next 17 days")
    baseline_only = {**row, "failures_due": 0, "from_failures": 0.0, "order_units": 5}
    assert reason_text(baseline_only).startswith("A baseline of 1.2 a week at SC-02: needs 7")


# ---------------------------------------------------------------- the plan's new columns


def test_the_plan_reports_failures_due_their_units_and_the_protection_interval() -> None:
    failures = pd.DataFrame(
        {
            "vin": ["V1", "V2", "V3", "V4"],
            "service_center": "SC-01",
            "part": "P",
            "days_to_failure": [-1.0, 2.0, 5.0, 60.0],  # three certain within 2 weeks, one far off
            "days_low": [None, 1.9, 4.9, 50.0],
            "days_high": [None, 2.1, 5.1, 70.0],
        }
    )
    stock = pd.DataFrame(
        [("SC-01", "P", 1.0, 1.0)], columns=["service_center", "part", "on_hand", "lead_time_weeks"]
    )
    row = plan_parts(failures, None, stock, horizon_weeks=4).reorder.iloc[0]
    assert row["failures_due"] == 3 and row["baseline_per_week"] == 0.0
    assert row["from_failures"] == pytest.approx(3.0, abs=1e-3)
    assert (row["protection_low"], row["reorder_point"], row["protection_high"]) == (3, 3, 3)
    assert row["order_qty"] == 2


def test_a_repaired_failure_counts_once_in_the_plan_and_its_reason() -> None:
    """A vehicle's predicted pad failure, then the work order that fitted the pads: the repair is
    history (baseline), not a failure to come, and the reason no longer names a failure."""
    registry = pd.DataFrame({"vin": ["A"], "service_center": ["SC-01"]})
    opened = pd.DataFrame(
        {
            "fleet": ["demo"],
            "vin": ["A"],
            "code": ["brakes.pad_wear"],
            "time": [NOW - 30 * DAY_MS],
            "confidence": [0.8],
            "days_to_threshold": [35.0],
            "days_low": [30.0],
            "days_high": [40.0],
            "estimated_at": [NOW - 30 * DAY_MS],
        }
    )
    stock = pd.DataFrame(
        [("SC-01", "PG-BRK-3100", 0.0, 0.0, 1.0)],
        columns=["service_center", "part", "on_hand", "on_order", "lead_time_weeks"],
    )

    def plan_with(orders: list[tuple[str, int]]) -> pd.DataFrame:
        frame = pd.DataFrame(
            [("DLR-01", vin, "SC-01", "PG-BRK-3100", t) for vin, t in orders],
            columns=["dealer_id", "vin", "service_center", "parts", "time"],
        )
        none = pd.DataFrame()
        inputs = Inputs(registry, none, none, none, none, none, none, none, stock, part_uses=part_uses(frame))
        return parts_plan(inputs, opened, NOW, horizon_weeks=4).reorder.set_index("part")

    before = plan_with([]).loc["PG-BRK-3100"]
    assert before["failures_due"] == 1 and before["baseline_per_week"] == 0
    assert before["reason"].startswith("1 predicted failure at SC-01 in the next 2 weeks: needs 1")
    history = [("OTHER", NOW - w * 7 * DAY_MS) for w in range(2, 9)]
    after = plan_with([*history, ("A", NOW - 10 * DAY_MS)]).loc["PG-BRK-3100"]
    assert after["failures_due"] == 0 and after["from_failures"] == 0
    assert after["baseline_per_week"] > 0
    assert after["reason"].startswith("A baseline of")


# ---------------------------------------------------------------- campaigns


def test_a_campaign_pre_stocks_its_cohorts_parts_at_the_home_centers_counting_each_vehicle_once() -> None:
    cohort = "lot=L002:battery.module_temperature_drift"
    campaign = pd.DataFrame(
        [
            (cohort, "V1", "SC-01", True),  # shows the fault: needs the part
            (cohort, "V2", "SC-01", True),  # in the plan's predicted failures: counted there
            (cohort, "V3", "SC-01", False),  # not yet: half the cohort does
            (cohort, "V4", "SC-01", False),
            (cohort, "V5", "SC-02", False),
            ("model=EV-1:battery.module_temperature_drift", "V1", "SC-01", True),  # counted above
        ],
        columns=["cohort_id", "vin", "service_center", "affected"],
    ).assign(attribute="lot", value="L002", code="battery.module_temperature_drift", part="P")
    cohorts = pd.DataFrame({"cohort_id": [cohort], "share": [0.5]})
    failures = pd.DataFrame({"vin": ["V2"], "part": ["P"]})
    plan = pd.DataFrame(
        [
            {
                **plan_row("SC-01", on_hand=10, reorder_point=8),
                "order_units": 0,
                "transfer_in": 0,
                "transfer_out": 0,
            }
        ]
    )
    master = pd.DataFrame(
        {
            "part": ["P"],
            "name": ["Battery sensor"],
            "unit_cost": [80.0],
            "currency": ["EUR"],
            "pack_size": [4],
        }
    )
    table = campaign_stock(campaign, cohorts, failures, plan, master)
    assert list(table.columns) == list(CAMPAIGN_STOCK_COLUMNS)
    assert table["cohort_id"].tolist() == [cohort, cohort]
    sc1, sc2 = table.iloc[0], table.iloc[1]
    # SC-01: V1 surely, V3 and V4 with 1/2 each: 1 + Bin(2, 1/2), 95 % need 3; 2 spare above the
    # reorder point; 1 to pre-stock, a pack of 4.
    assert (sc1["vehicles"], sc1["affected"], sc1["in_plan"]) == (4, 1, 1)
    assert sc1["expected_units"] == 2.0 and sc1["units_needed"] == 3
    assert (sc1["available"], sc1["to_stock"], sc1["order_units"], sc1["order_cost"]) == (2, 1, 4, 320.0)
    assert sc1["name"] == "Battery sensor"
    assert sc1["reason"].startswith("4 vehicles of lot=L002 (battery.module_temperature_drift) come to SC-01")
    assert sc1["reason"].endswith("2 spare after this week's plan: pre-stock 4.")
    # SC-02: V5 with 1/2, nothing there: need 1
    assert (sc2["service_center"], sc2["units_needed"], sc2["available"], sc2["order_units"]) == (
        "SC-02",
        1,
        0,
        4,
    )
    assert campaign_stock(campaign.iloc[0:0], cohorts, failures, plan).empty


# ---------------------------------------------------------------- the order list


def test_the_order_list_is_one_row_per_order_line_in_the_purchasing_layout() -> None:
    result = decided(
        [
            plan_row("SC-A", "P1", on_hand=1, reorder_point=10, pack=4),
            plan_row("SC-B", "P1", on_hand=3, on_order=10, reorder_point=6),
            plan_row("SC-B", "P2", on_hand=0, reorder_point=2, minimum=5),
        ],
        transfer_lanes(CENTERS),
    )
    table = order_list(result.lines)
    assert list(table.columns) == list(ORDER_LIST_HEADINGS.values())
    assert table[["Deliver to", "Part number", "Quantity", "Unit", "Line cost"]].values.tolist() == [
        ["SC-B", "P2", 5, "EA", 50.0],  # none left: needed first
        ["SC-A", "P1", 8, "EA", 80.0],
    ]  # the transfer is no order line


# ---------------------------------------------------------------- the demo


def test_the_demo_dealers_plan_has_orders_and_transfers() -> None:
    """The demo's DMS (prognos.sim.dealers.make_dms with its defaults) gives a plan a planner acts
    on: orders at some centers, transfers between neighbours at others, quantities in whole packs."""
    end = date(2024, 7, 1)
    rows = make_dms(end=end)
    orders = pd.DataFrame(rows["work_order"])
    orders["time"] = [int(datetime.fromisoformat(t).timestamp() * 1000) for t in orders["opened_at"]]
    stock = pd.DataFrame(rows["parts_stock"])
    stock = stock[stock["as_of"] == stock["as_of"].max()]
    numbers = ["on_hand", "on_order", "lead_time_weeks"]
    stock = stock[["service_center", "part", *numbers]].astype(dict.fromkeys(numbers, float))
    none = pd.DataFrame()
    inputs = Inputs(
        pd.DataFrame(rows["vehicle"]),
        none,
        none,
        none,
        none,
        none,
        none,
        none,
        stock.reset_index(drop=True),
        part_uses=part_uses(orders),
        parts_master=pd.DataFrame(rows["part"]),
        service_centers=pd.DataFrame(rows["service_center"]),
    )
    now = int(datetime(end.year, end.month, end.day, tzinfo=UTC).timestamp() * 1000)
    plan = parts_plan(inputs, none, now, horizon_weeks=8)
    lines = plan.decisions
    ordered, moved = lines[lines["action"] == "order"], lines[lines["action"] == "transfer"]
    assert len(ordered) >= 5 and len(moved) >= 3, lines[["action", "service_center", "part"]]
    assert set(ordered["supplier"]) <= {m.supplier for m in MASTER.values()}
    packs = ordered["part"].map({part: m.pack_size for part, m in MASTER.items()})
    assert (ordered["quantity"] % packs == 0).all() and (ordered["quantity"] > 0).all()
    assert (ordered["line_cost"] > 0).all() and lines["reason"].str.len().min() > 40
    # a transfer joins two centers of the north (Hamburg, Bremen, Kiel) or of the south
    north, south = {"SC-01", "SC-02", "SC-04"}, {"SC-03", "SC-05"}
    for giver, taker in zip(moved["from_center"], moved["service_center"], strict=True):
        assert {giver, taker} <= north or {giver, taker} <= south
    assert (
        plan.reorder["lead_time_weeks"]
        .round(2)
        .isin([round(m.lead_time_days / 7, 2) for m in MASTER.values()])
        .all()
    )
