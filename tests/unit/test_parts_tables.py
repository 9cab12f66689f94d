"""How the parts page's tables read (prognos.dashboard.charts.REORDER_VIEW, WEEKLY_VIEW): every
stored column a planner needs has a heading with its unit and a number format, in the order a
planner decides in."""

from __future__ import annotations

from prognos.cloud.storage import schema
from prognos.dashboard import charts
from prognos.dashboard.data import REORDER_COLUMNS

# stored for the charts and the CSV, not a table column a planner reads
WEEKLY_ONLY_STORED = {"week", "week_index", "week_start_ms"}


def test_every_reorder_column_has_a_heading() -> None:
    assert set(charts.REORDER_VIEW) == set(REORDER_COLUMNS)


def test_every_weekly_column_but_the_keys_for_charts_has_a_heading() -> None:
    stored = set(schema.PARTS_FORECAST.column_names())
    assert set(charts.WEEKLY_VIEW) == stored - WEEKLY_ONLY_STORED


def test_numbers_carry_their_unit_and_a_format() -> None:
    for view in (charts.REORDER_VIEW, charts.WEEKLY_VIEW):
        for column, (heading, number_format) in view.items():
            if number_format is None:
                continue
            assert number_format.startswith("%"), column
            assert "(units" in heading or "(weeks)" in heading or "cost" in heading.lower(), heading


def test_the_order_comes_first() -> None:
    order = list(charts.REORDER_VIEW)
    assert order[:5] == ["service_center", "name", "part", "order_qty", "order_units"]
    assert order.index("order_cost") < order.index("on_hand")
