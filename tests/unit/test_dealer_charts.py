"""The dealer page's tables and charts (prognos.dashboard.charts): headings with units, rounded
values, the complete period ranked first, and risk colours that mean the same everywhere."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from prognos.dashboard import charts

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def kpis(period: str = "2026-11") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "period": [period, period, period],
            "period_start": [0, 0, 0],
            "dealer_id": ["DLR-01", "DLR-02", "DLR-03"],
            "region": ["north", "north", "south"],
            "orders": [120, 80, 95],
            "orders_closed": [118, 70, 90],
            "sla_rate": [0.904761904, 0.75, float("nan")],
            "ftf_rate": [0.91234, 0.8, 0.85],
            "fcr_rate": [0.5, 0.66666, 0.7],
            "csat": [4.4567, 3.9, 4.1],
            "nps": [41.6, -12.4, 5.0],
            "complaint_rate": [2.345, 6.0, 3.0],
        }
    )


def test_the_ranking_reads_as_a_manager_reads_it() -> None:
    table = charts.ranking(kpis(), "sla_rate", "2026-11")
    assert list(table.columns) == [
        "Rank",
        "Dealer",
        "Region",
        "Orders opened",
        "Orders closed",
        "SLA compliance (%)",
        "First-time fix (%)",
        "First-contact resolution (%)",
        "CSAT (1-5)",
        "NPS (-100 to 100)",
        "Complaints per 100 orders",
    ]
    assert list(table["Dealer"]) == ["DLR-01", "DLR-02", "DLR-03"]  # best SLA first, unknown last
    first = table.iloc[0]
    assert first["SLA compliance (%)"] == 90.5
    assert first["First-time fix (%)"] == 91.2
    assert first["CSAT (1-5)"] == 4.46
    assert first["NPS (-100 to 100)"] == 42
    assert first["Complaints per 100 orders"] == 2.3
    assert pd.isna(table.iloc[2]["SLA compliance (%)"])


def test_lower_is_better_kpis_rank_the_lowest_first() -> None:
    table = charts.ranking(kpis(), "complaint_rate", "2026-11")
    assert list(table["Dealer"]) == ["DLR-01", "DLR-03", "DLR-02"]


@pytest.mark.parametrize(
    "labels, expected",
    [
        (["2026-10", "2026-11", "2026-12"], 1),  # December is under way on the 7th
        (["2026-11"], 0),
        (["2026-12"], 0),  # nothing complete: the latest
        (["2026-W47", "2026-W48", "2026-W49", "2026-W50"], 2),  # W50 starts on the 7th
        ([], 0),
    ],
)
def test_the_ranking_opens_on_the_latest_complete_period(labels: list[str], expected: int) -> None:
    assert charts.ranked_period_index(labels, NOW) == expected


def test_a_period_under_way_says_so() -> None:
    assert charts.period_choice_text("2026-12", NOW) == "2026-12 (under way)"
    assert charts.period_choice_text("2026-11", NOW) == "2026-11"


def test_red_means_at_risk_on_every_chart() -> None:
    dealers = [f"DLR-0{i}" for i in range(1, 9)]
    levels = {"DLR-05": "at risk", "DLR-02": "watch"}
    colors = charts.line_colors(dealers, levels)
    assert colors["DLR-05"] == charts.RISK_COLORS["at risk"]
    assert colors["DLR-02"] == charts.RISK_COLORS["watch"]
    calm = [colors[d] for d in dealers if d not in levels]
    assert not set(calm) & set(charts.RISK_COLORS.values())
    assert len(set(calm)) == len(calm)  # the other dealers stay apart
    regions = charts.line_colors(["north", "south", "coast"])
    assert not set(regions.values()) & set(charts.RISK_COLORS.values())


def test_the_trend_chart_draws_each_dealer_in_its_risk_colour() -> None:
    frame = pd.concat([kpis("2026-10"), kpis("2026-11")])
    figure = charts.kpi_trend_chart(frame, "sla_rate", "dealer_id", {"DLR-02": "at risk"})
    by_name = {trace.name: trace.line.color for trace in figure.data}
    assert by_name["DLR-02"] == charts.RISK_COLORS["at risk"]
    assert by_name["DLR-01"] not in charts.RISK_COLORS.values()


def test_the_risk_list_has_readable_headings_and_a_rounded_score() -> None:
    risk = pd.DataFrame(
        {
            "dealer_id": ["DLR-05"],
            "region": ["south"],
            "level": ["at risk"],
            "score": [71.23456],
            "reasons": ["complaints are rising"],
            "not_assessed": [""],
            "months": [6],
        }
    )
    table = charts.risk_table(risk)
    headings = [h for h in charts.RISK_HEADINGS.values() if h != "Not assessed"]
    assert list(table.columns) == headings  # every dealer assessed: no empty column
    assert table.iloc[0]["Risk score (0-100)"] == 71.2
    assert charts.risk_levels(risk) == {"DLR-05": "at risk"}
    risk.loc[0, "not_assessed"] = "NPS: fewer than 30 surveys"
    assert "Not assessed" in charts.risk_table(risk).columns


def test_tables_show_each_number_with_its_decimals_and_a_dash_when_unknown() -> None:
    table = charts.ranking(kpis(), "sla_rate", "2026-11")
    shown = charts.shown_table(table, "Dealer").to_string()
    assert "90.5" in shown and "90.48" not in shown
    assert "4.46" in shown and "4.4567" not in shown
    assert " - " in shown  # DLR-03's unknown SLA
    lines = shown.splitlines()
    assert lines[1].startswith("Dealer")  # the dealer labels the rows
    assert lines[0].split()[0] == "Rank"


def test_maintenance_intervals_read_with_units_and_no_none() -> None:
    intervals = pd.DataFrame(
        [
            {
                "vin": "V1",
                "part": "PG-BRK-3100",
                "subsystem": "brakes",
                "method": "trend",
                "days_of_data": 21,
                "health": 0.61,
                "wear_rate_per_day": 0.012,
                "fleet_rate_per_day": 0.008,
                "relative_rate": 1.5,
                "standard_interval_days": 365.0,
                "interval_days": 243.3,
                "next_service_days": 34.2,
                "next_service_date": "2027-01-10",
            },
            {
                "vin": "V1",
                "part": "PG-TYR-2100",
                "subsystem": "tires",
                "method": "fault",
                "days_of_data": None,
                "health": None,
                "wear_rate_per_day": None,
                "fleet_rate_per_day": None,
                "relative_rate": None,
                "standard_interval_days": 730.0,
                "interval_days": None,
                "next_service_days": None,
                "next_service_date": None,
            },
        ]
    )
    table = charts.interval_table(intervals)
    assert list(table.columns) == [
        "Wear part",
        "Interval (days)",
        "Standard (days)",
        "Wears",
        "Next service",
        "In (days)",
        "Health now (0-1)",
        "From",
    ]
    first, second = table.iloc[0], table.iloc[1]
    assert (first["Interval (days)"], first["In (days)"], first["Wears"]) == (
        "243",
        "34",
        "1.5x the fleet's rate",
    )
    assert first["From"] == "its own wear trend, 21 days of data"
    assert "None" not in " ".join(str(v) for v in second.values) and second["Next service"] == "—"
