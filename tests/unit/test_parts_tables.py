"""How the parts page reads (prognos.dashboard.charts, parts section): the decisions, the plan,
the weekly forecast and the campaigns' pre-stock as tables a planner reads (names beside
numbers, units in the headings or the cells, a dash where a value is unknown, never None or
nan), the order list in the purchasing layout as CSV and XLSX, and the charts."""

from __future__ import annotations

import io
import math
from datetime import date

import numpy as np
import pandas as pd
from openpyxl import load_workbook

from prognos.cloud.parts.decisions import ORDER_LIST_HEADINGS, decide, transfer_lanes
from prognos.dashboard import charts
from tests.unit.test_parts_decisions import CENTERS, NOW, plan_row, weekly_for


def decisions() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A transfer and two orders (one in packs of 4), as the page reads them: ranked lines and
    the plan rows."""
    rows = [
        plan_row("SC-A", "P1", on_hand=1, reorder_point=10, pack=4),  # 3 from SC-B, then 8
        plan_row("SC-B", "P1", on_hand=3, on_order=10, reorder_point=6),
        plan_row("SC-B", "P2", on_hand=0, reorder_point=2, minimum=5, cost=math.nan),
    ]
    rows[2]["currency"] = ""
    plan = pd.DataFrame(rows)
    result = decide(plan, weekly_for(plan), transfer_lanes(CENTERS), now_ms=NOW)
    lines = result.lines.assign(rank=np.arange(1, len(result.lines) + 1))
    return lines, result.plan


def no_missing(table: pd.DataFrame) -> None:
    text = table.astype(str).to_numpy().ravel()
    assert not any(cell in ("None", "nan", "NaN", "<NA>") or "nan " in cell for cell in text), table


def test_decisions_read_with_names_packs_costs_dates_and_reasons() -> None:
    lines, _ = decisions()
    table = charts.decision_table(lines, NOW)
    assert list(table.columns) == list(charts.DECISION_HEADINGS)
    no_missing(table)
    first = table.iloc[0]  # SC-B's P2: nothing left, needed now
    assert first["Part"] == "part P2 (P2)" and first["Decision"] == "Order from Brembo"
    assert first["Need by"] == "2024-07-01 (now)" and first["Cost"] == "—"  # no unit cost
    packs = table[table["Deliver to"] == "SC-A"].set_index("Decision")
    assert packs.at["Order from Brembo", "Quantity (units)"] == "8 (2 packs of 4)"
    assert packs.at["Order from Brembo", "Cost"] == "80.00 EUR"
    assert packs.at["Transfer from SC-B", "Cost"] == "none: moves 30.00 EUR of stock"
    assert packs.at["Transfer from SC-B", "Need by"] == "2024-07-03 (in 2 days)"  # the transfer's days
    assert all(len(reason) > 40 for reason in table["Why"])
    by_cost = charts.sorted_decisions(lines, "cost")
    assert by_cost["line_cost"].tolist()[:2] == [80.0, 30.0]


def test_the_plan_weekly_and_campaign_tables_have_no_missing_cells() -> None:
    _, plan = decisions()
    table = charts.plan_table(plan)
    assert list(table.columns) == list(charts.PLAN_HEADINGS)
    no_missing(table)
    sc_a = table[table["Service center"] == "SC-A"].iloc[0]
    assert sc_a["Decision"] == "Take 3 from SC-B; order 8 (80.00 EUR)"
    assert sc_a["Stock (units)"] == "1"
    assert "reorder point 10" in sc_a["Need over lead time + review (units)"]
    weekly = pd.DataFrame(
        {
            "service_center": ["SC-A"],
            "part": ["P1"],
            "name": ["Brake pad set"],
            "week_start": ["2024-07-01"],
            "forecast": [1.25],
            "baseline": [1.0],
            "from_failures": [0.25],
            "low": [0],
            "high": [3],
        }
    )
    rows = charts.weekly_table(weekly)
    assert rows.iloc[0].tolist() == ["Brake pad set (P1)", "SC-A", "2024-07-01", "1.2 (0-3)", "1.0", "0.2"]
    campaign = pd.DataFrame(
        {
            "cohort": ["lot=L002:x"],
            "service_center": ["SC-A"],
            "part": ["P1"],
            "name": ["Brake pad set"],
            "vehicles": [4],
            "units_needed": [3],
            "available": [2],
            "order_units": [4],
            "order_cost": [np.nan],
            "currency": [None],
            "reason": ["why"],
        }
    )
    shown = charts.campaign_stock_table(campaign)
    no_missing(shown)
    assert shown.iloc[0]["Cost"] == "—" and shown.iloc[0]["To pre-stock (units)"] == "4"


def test_the_order_list_downloads_in_the_purchasing_layout_as_csv_and_xlsx() -> None:
    lines, _ = decisions()
    csv = pd.read_csv(io.BytesIO(charts.order_list_csv(lines)))
    assert list(csv.columns) == list(ORDER_LIST_HEADINGS.values())
    assert csv[["Deliver to", "Part number", "Quantity", "Unit"]].values.tolist() == [
        ["SC-B", "P2", 5, "EA"],
        ["SC-A", "P1", 8, "EA"],
    ]
    assert csv.loc[1, "Line cost"] == 80.0 and csv.loc[1, "Part name"] == "part P1"
    sheet = load_workbook(io.BytesIO(charts.order_list_xlsx(lines))).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[0] == list(ORDER_LIST_HEADINGS.values())
    assert len(rows) == 3 and sheet.title == "Order list"
    second = dict(zip(rows[0], rows[2], strict=True))
    assert second["Quantity"] == 8 and second["Line cost"] == 80.0 and second["Supplier"] == "Brembo"
    assert second["Need by"].date() >= date(2024, 7, 1)
    assert dict(zip(rows[0], rows[1], strict=True))["Unit cost"] is None  # no cost known: empty


def test_the_charts_are_horizontal_bars_by_name_with_a_reorder_point() -> None:
    _, plan = decisions()
    stock = charts.stock_chart(plan)
    bars = [trace for trace in stock.data if trace.type == "bar"]
    assert all(trace.orientation == "h" for trace in bars)
    assert list(bars[0].y) == ["SC-A · part P1", "SC-B · part P1", "SC-B · part P2"]
    reorder = next(trace for trace in stock.data if trace.name.startswith("reorder point"))
    assert list(reorder.x) == [10, 6, 2] and "lead time + review" in stock.layout.xaxis.title.text
    weekly = pd.DataFrame(
        {
            "service_center": ["SC-A", "SC-A", "SC-B"],
            "part": ["P1", "P2", "P1"],
            "name": ["Pads", "Filter", "Pads"],
            "baseline": [1.0, 5.0, 1.0],
            "from_failures": [2.0, 0.0, 0.5],
        }
    )
    demand = charts.demand_chart(weekly)
    assert [trace.orientation for trace in demand.data] == ["h", "h"]
    assert list(demand.data[0].y) == ["Filter (P2)", "Pads (P1)"]  # most demand on top
    assert list(demand.data[1].x) == [0.0, 2.5]
