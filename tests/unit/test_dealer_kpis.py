"""Dealer KPIs against values worked out by hand on tiny frames, and the risk score: it flags
the synthetic slipping dealer for the right reasons and leaves the healthy ones alone."""

from __future__ import annotations

import math
from datetime import date
from functools import cache
from typing import Any

import pandas as pd
import pytest

from prognos.cloud.dealers.dms import RowError, parse_row, records_frame
from prognos.cloud.dealers.kinds import KINDS
from prognos.cloud.dealers.kpis import (
    AT_RISK_SCORE,
    BASIS_ORDERS,
    BASIS_TICKETS,
    TICKET_COLUMNS,
    WATCH_SCORE,
    dealer_kpis,
    dealer_risk,
    finance_by_period,
    format_kpis,
    format_risk,
    period_start,
    with_ticket_metrics,
)
from prognos.errors import ConfigError
from prognos.sim.dealers import SLIPPING_DEALER, make_dms

ORDER_COLUMNS = [
    "dealer_id",
    "order_id",
    "opened_at",
    "closed_at",
    "promised_minutes",
    "first_contact_resolved",
    "fixed_first_time",
    "repeat_of_order_id",
    "labour_hours",
    "parts",
    "amount",
    "region",
]


def frame(columns: list[str], rows: list[tuple[Any, ...]], times: tuple[str, ...] = ()) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=columns)
    for name in times:
        table[name] = pd.to_datetime(table[name], utc=True)
    return table


def orders() -> pd.DataFrame:
    # D1, March 2024. Minutes open: O0 120 (opened in February), O1 30, O2 60, O3 20, O6 50; O4 is open.
    return frame(
        ORDER_COLUMNS,
        [
            (
                "D1",
                "O0",
                "2024-02-29T23:00Z",
                "2024-03-01T01:00Z",
                180,
                True,
                True,
                None,
                1.0,
                (),
                100.0,
                "north",
            ),
            (
                "D1",
                "O1",
                "2024-03-01T08:00Z",
                "2024-03-01T08:30Z",
                45,
                True,
                True,
                None,
                0.5,
                ("A", "B"),
                100.0,
                "north",
            ),
            (
                "D1",
                "O2",
                "2024-03-04T09:00Z",
                "2024-03-04T10:00Z",
                45,
                True,
                True,
                None,
                1.0,
                ("A",),
                200.0,
                "north",
            ),
            (
                "D1",
                "O3",
                "2024-03-10T10:00Z",
                "2024-03-10T10:20Z",
                15,
                False,
                True,
                "O2",
                0.25,
                (),
                50.0,
                "north",
            ),
            (
                "D1",
                "O6",
                "2024-03-15T12:00Z",
                "2024-03-15T12:50Z",
                60,
                True,
                False,
                None,
                2.25,
                "C;C;D",
                400.0,
                "north",
            ),
            ("D1", "O4", "2024-03-20T10:00Z", None, 60, False, False, None, 2.0, ("C",), 0.0, "north"),
            (
                "D2",
                "X1",
                "2024-03-05T10:00Z",
                "2024-03-05T11:00Z",
                90,
                True,
                True,
                None,
                1.5,
                ("A",),
                150.0,
                "north",
            ),
        ],
        ("opened_at", "closed_at"),
    )


def complaints() -> pd.DataFrame:
    return frame(
        ["dealer_id", "complaint_id", "opened_at"],
        [
            ("D1", "C1", "2024-03-02T10:00Z"),
            ("D1", "C2", "2024-03-28T10:00Z"),
            ("D2", "C3", "2024-04-01T00:00Z"),
        ],
        ("opened_at",),
    )


def surveys() -> pd.DataFrame:
    return frame(
        ["dealer_id", "survey_id", "answered_at", "csat", "nps"],
        [
            ("D1", "S1", "2024-03-02T10:00Z", 5, 10),
            ("D1", "S2", "2024-03-03T10:00Z", 4, 9),
            ("D1", "S3", "2024-03-05T10:00Z", 2, 3),
            ("D1", "S4", "2024-03-06T10:00Z", None, 7),
        ],
        ("answered_at",),
    )


def stock() -> pd.DataFrame:
    return frame(
        ["dealer_id", "service_center", "part", "on_hand", "as_of"],
        [
            ("D1", "SC1", "A", 10, "2024-03-01T06:00Z"),
            ("D1", "SC1", "A", 6, "2024-03-15T06:00Z"),
            ("D1", "SC1", "B", 4, "2024-03-01T06:00Z"),
        ],
        ("as_of",),
    )


def kpi_row(table: pd.DataFrame, key: str, period: str) -> pd.Series:
    column = "dealer_id" if "dealer_id" in table else "region"
    (index,) = table.index[(table[column] == key) & (table["period"] == period)]
    return table.loc[index]


def test_monthly_kpis_by_hand() -> None:
    table = dealer_kpis(orders(), complaints(), surveys(), stock())
    march = kpi_row(table, "D1", "2024-03")
    # Outcomes count the five orders closed in March (O0 O1 O2 O3 O6), volume the five opened.
    assert march["orders"] == 5 and march["orders_closed"] == 5
    # First-time fix: O2 is not, because O3 repeats it; O6 says not: 3 of 5.
    assert march["ftf_rate"] == pytest.approx(3 / 5)
    assert march["fcr_rate"] == pytest.approx(4 / 5)  # O3 not resolved at first contact
    # SLA: O0 120<=180 yes, O1 30<=45 yes, O2 60>45 no, O3 20>15 no, O6 50<=60 yes.
    assert march["sla_rate"] == pytest.approx(3 / 5)
    assert march["handling_minutes"] == pytest.approx((120 + 30 + 60 + 20 + 50) / 5)
    assert march["repair_hours"] == pytest.approx((1.0 + 0.5 + 1.0 + 0.25 + 2.25) / 5)
    assert march["revenue"] == pytest.approx(850.0)
    assert march["complaints"] == 2 and march["complaint_rate"] == pytest.approx(100 * 2 / 5)
    assert march["csat"] == pytest.approx((5 + 4 + 2) / 3)
    # NPS: 10 and 9 promote, 3 detracts, 7 is passive: (2 - 1) / 4.
    assert march["nps"] == pytest.approx(25.0)
    assert march["surveys"] == 4
    # Parts: 2 + 1 + 0 + 3 units; stock: A averages 8, B 4, so 12 on average.
    assert march["parts_used"] == 6 and march["avg_stock"] == pytest.approx(12.0)
    assert march["parts_turnover"] == pytest.approx(0.5)
    february = kpi_row(table, "D1", "2024-02")
    assert february["orders"] == 1 and february["orders_closed"] == 0
    assert math.isnan(february["ftf_rate"]) and february["complaint_rate"] == 0.0
    assert kpi_row(table, "D2", "2024-04")["complaints"] == 1
    assert math.isnan(kpi_row(table, "D2", "2024-04")["complaint_rate"])  # no orders that month


def test_region_kpis_come_from_rows_not_from_dealer_averages() -> None:
    table = dealer_kpis(orders(), complaints(), surveys(), stock(), by="region")
    march = kpi_row(table, "north", "2024-03")
    assert march["orders_closed"] == 6
    assert march["ftf_rate"] == pytest.approx(4 / 6)  # not the mean of 3/5 and 1/1
    assert march["complaint_rate"] == pytest.approx(100 * 2 / 6)


def test_ticket_metrics_replace_the_work_order_figures_where_the_desk_has_them() -> None:
    base = dealer_kpis(orders(), complaints(), surveys(), stock())
    tickets = pd.DataFrame(
        [
            # D1, March: 4 resolved, FCR 0.5, median 6 business hours; 3 of 4 response and 1 of 2
            # resolution clocks met
            ("D1", "2024-03", 4, 0.5, 6.0, 4, 0.75, 2, 0.5),
            # D1, April: nothing resolved or decided yet: the work orders' figures stay
            ("D1", "2024-04", 0, math.nan, math.nan, 0, math.nan, 0, math.nan),
        ],
        columns=list(TICKET_COLUMNS),
    )
    table = with_ticket_metrics(base, tickets)
    march = kpi_row(table, "D1", "2024-03")
    assert march["basis"] == BASIS_TICKETS
    assert march["fcr_rate"] == pytest.approx(0.5)
    assert march["handling_minutes"] == pytest.approx(360.0)
    assert march["sla_rate"] == pytest.approx((3 + 1) / 6)
    assert march["ftf_rate"] == pytest.approx(3 / 5)  # the workshop's own KPIs are untouched
    for dealer, period in (("D1", "2024-02"), ("D2", "2024-04")):
        row, before = kpi_row(table, dealer, period), kpi_row(base, dealer, period)
        assert row["basis"] == BASIS_ORDERS
        assert row["sla_rate"] == before["sla_rate"] or (
            math.isnan(row["sla_rate"]) and math.isnan(before["sla_rate"])
        )
    regional = with_ticket_metrics(
        dealer_kpis(orders(), complaints(), surveys(), stock(), by="region"), tickets, regions={"D1": "north"}
    )
    assert kpi_row(regional, "north", "2024-03")["fcr_rate"] == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="lack"):
        with_ticket_metrics(base, tickets.drop(columns=["resolved"]))


def test_weekly_periods_start_on_monday() -> None:
    table = dealer_kpis(orders(), period="week")
    d1 = table[table["dealer_id"] == "D1"]
    assert list(d1["period"]) == ["2024-W09", "2024-W10", "2024-W11", "2024-W12"]
    assert str(d1.iloc[0]["period_start"]) == "2024-02-26 00:00:00"
    week9 = d1.iloc[0]  # O0 opened Thu 29 Feb; O0 and O1 closed Fri 1 March
    assert week9["orders"] == 2 and week9["orders_closed"] == 2
    starts = period_start(pd.Series(pd.to_datetime(["2024-03-03T23:59Z", "2024-03-04T00:00Z"])), "week")
    assert [str(s.date()) for s in starts] == ["2024-02-26", "2024-03-04"]


def test_unknown_period_or_grouping_is_refused() -> None:
    with pytest.raises(ConfigError):
        dealer_kpis(orders(), period="quarter")
    with pytest.raises(ConfigError):
        dealer_kpis(orders(), by="vin")


def test_text_tables_show_the_numbers() -> None:
    table = dealer_kpis(orders(), complaints(), surveys(), stock())
    text = format_kpis(table, periods=1)
    assert "D2" in text and "2024-04" in text and "2024-03" not in text
    text = format_kpis(table, periods=2)
    assert "60%" in text and "40.0" in text  # D1's FTF and complaint rate in March


# --- risk -------------------------------------------------------------------------------------


def monthly(dealer: str, values: dict[str, list[float]]) -> pd.DataFrame:
    months = len(next(iter(values.values())))
    starts = pd.date_range("2024-01-01", periods=months, freq="MS")
    data = {
        "dealer_id": dealer,
        "region": "north",
        "period": [f"{s.year}-{s.month:02d}" for s in starts],
        "period_start": starts,
        "orders": 100,
        "complaint_rate": 3.0,
        "csat": 4.4,
        "nps": 40.0,
    }
    data.update(values)
    return pd.DataFrame(data)


def finance(dealer: str, margins: list[float], fulfilment: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dealer_id": dealer,
            "period": [f"2024-{m + 1:02d}" for m in range(len(margins))],
            "cash_in": 100_000.0,
            "cash_out": [100_000.0 * (1 - m) for m in margins],
            "orders_received": 200,
            "orders_fulfilled": [round(200 * f) for f in fulfilment],
        }
    )


def test_rising_complaints_alone_make_a_watch_with_its_reason() -> None:
    kpis = monthly("D1", {"complaint_rate": [2.0, 4.0, 6.0, 8.0]})
    money = finance("D1", [0.1] * 4, [0.97] * 4)
    (row,) = dealer_risk(kpis, money).to_dict("records")
    assert row["points_complaints"] == 25.0
    assert row["points_cash"] == row["points_fulfilment"] == row["points_satisfaction"] == 0.0
    assert row["score"] == 25.0 and row["level"] == "watch"
    assert (
        row["reasons"] == "complaints are rising: from 2.0 to 8.0 per 100 orders over 4 months (+2.0 a month)"
    )
    assert row["not_assessed"] == ""


def test_risk_components_by_hand() -> None:
    margins = [0.10, -0.20, 0.30, -0.10]  # std (ddof 1) of these: 0.2217
    kpis = monthly("D1", {"csat": [4.5, 4.4, 4.3, 4.2], "nps": [40.0, 40.0, 40.0, 40.0]})
    money = finance("D1", margins, [0.98, 0.96, 0.94, 0.92])
    (row,) = dealer_risk(kpis, money).to_dict("records")
    assert row["cash_volatility"] == pytest.approx(0.22174, abs=1e-4)
    assert row["points_cash"] == pytest.approx(30 * (0.22174 - 0.10) / 0.25, abs=0.05)
    assert row["fulfilment_trend"] == pytest.approx(-0.02)
    assert row["points_fulfilment"] == pytest.approx(25 * (0.02 - 0.005) / 0.025, abs=0.05)
    # CSAT falls 0.1 a month (severity 7/12), NPS is flat (0): satisfaction is their mean.
    assert row["points_satisfaction"] == pytest.approx(20 * (0.07 / 0.12) / 2, abs=0.05)
    assert row["score"] == pytest.approx(
        row["points_cash"] + row["points_fulfilment"] + row["points_satisfaction"], abs=0.11
    )
    assert "cash flow is unsteady: net cash moved between -20% and +30% of income" in row["reasons"]
    assert "fewer orders fulfilled: from 98% to 92%" in row["reasons"]


def test_too_little_history_is_not_assessed() -> None:
    kpis = monthly("D1", {"complaint_rate": [2.0, 9.0]})
    (row,) = dealer_risk(kpis, finance("D1", [0.1, -0.5], [0.9, 0.5])).to_dict("records")
    assert row["score"] == 0.0 and row["level"] == "ok"
    assert "cash flow" in row["not_assessed"] and "complaints" in row["not_assessed"]


def test_a_thin_month_does_not_make_a_trend() -> None:
    """A month just begun (a handful of orders) with a wild complaint rate is left out."""
    kpis = monthly("D1", {"complaint_rate": [3.0, 3.0, 3.0, 3.0, 50.0], "orders": [100, 100, 100, 100, 4]})
    (row,) = dealer_risk(kpis).to_dict("records")
    assert row["points_complaints"] == 0.0


def test_risk_needs_monthly_kpis_and_a_window_of_three() -> None:
    with pytest.raises(ConfigError, match="monthly"):
        dealer_risk(dealer_kpis(orders(), period="week"))
    with pytest.raises(ConfigError, match="at least 3"):
        dealer_risk(monthly("D1", {"complaint_rate": [1.0, 2.0, 3.0]}), window=2)


def test_weekly_finance_is_summed_into_months() -> None:
    weekly = pd.DataFrame(
        {
            "dealer_id": "D1",
            "period": ["2024-W10", "2024-W11", "2024-W14"],  # W14 starts on 1 April
            "cash_in": [10.0, 20.0, 5.0],
            "cash_out": [5.0, 5.0, 1.0],
            "orders_received": [10, 10, 4],
            "orders_fulfilled": [9, 10, 2],
        }
    )
    months = finance_by_period(weekly, "month")
    assert list(months["cash_in"]) == [30.0, 5.0]
    assert list(months["net_cash"]) == [20.0, 4.0]
    assert list(months["fulfilment_rate"]) == [0.95, 0.5]


@cache
def synthetic(seed: int, slipping: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Monthly KPIs and finance of a synthetic dealer network, through the importer's parser."""
    rows = make_dms(seed=seed, months=8, end=date(2025, 3, 1), slipping=slipping, vehicles=0)
    frames = {}
    for kind_name in ("work_order", "complaint", "survey", "dealer_finance"):
        kind = KINDS[kind_name]
        frames[kind_name] = records_frame(kind, [parse_row(kind, row) for row in rows[kind_name]])
    kpis = dealer_kpis(frames["work_order"], frames["complaint"], frames["survey"])
    return kpis, frames["dealer_finance"]


@pytest.mark.parametrize("seed", [7, 21])
def test_the_slipping_dealer_is_flagged_for_the_right_reasons(seed: int) -> None:
    kpis, money = synthetic(seed, SLIPPING_DEALER)
    risk = dealer_risk(kpis, money)
    top = risk.iloc[0]
    assert top["dealer_id"] == SLIPPING_DEALER
    assert top["level"] == "at risk" and top["score"] >= AT_RISK_SCORE
    for words in (
        "complaints are rising",
        "fewer orders fulfilled",
        "customers are less satisfied",
        "cash flow is unsteady",
    ):
        assert words in top["reasons"]
    healthy = risk[risk["dealer_id"] != SLIPPING_DEALER]
    assert len(healthy) == 4
    assert (healthy["level"] == "ok").all(), healthy[["dealer_id", "score", "reasons"]]
    assert (healthy["score"] < WATCH_SCORE).all()
    assert SLIPPING_DEALER in format_risk(risk).splitlines()[1]


def test_without_a_slipping_dealer_nobody_is_flagged() -> None:
    kpis, money = synthetic(7, None)
    risk = dealer_risk(kpis, money)
    assert len(risk) == 5
    assert (risk["level"] == "ok").all(), risk[["dealer_id", "score", "reasons"]]


def test_synthetic_kpis_are_at_realistic_levels() -> None:
    kpis, _ = synthetic(7, None)
    assert kpis["ftf_rate"].between(0.75, 0.97).all()
    assert kpis["sla_rate"].between(0.75, 0.99).all()
    assert kpis["csat"].between(3.9, 4.9).all()
    assert kpis["complaint_rate"].between(0.0, 8.0).all()
    assert kpis["orders"].min() > 150


def test_generated_rows_are_valid() -> None:
    rows = make_dms(seed=5, months=2, end=date(2025, 3, 1), order_scale=0.1, vehicles=6)
    assert {name for name, kind_rows in rows.items() if kind_rows} == set(KINDS)
    for name, kind_rows in rows.items():
        for row in kind_rows:
            try:
                parse_row(KINDS[name], row)
            except RowError as exc:  # pragma: no cover - the message is the point
                pytest.fail(f"{name} row {row}: {exc}")
    homes = {row["service_center"] for row in rows["vehicle"]}
    assert homes <= {row["service_center"] for row in rows["work_order"]}
