"""The parts plan's forecast, kept and held against what was used: worked by hand on small
cases, through the analytics job's parts step, and replayed on the demo's history."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prognos.cli import main
from prognos.cloud.analytics.analyse import Inputs, PartsResults, parts_plan
from prognos.cloud.parts.accuracy import (
    ACCURACY_COLUMNS,
    KEPT_COLUMNS,
    WEEK_MS,
    accuracy_table,
    backtest_plan,
    family,
    kept_forecast,
    naive_scale,
    with_actuals,
)
from prognos.cloud.parts.history import demand_history, part_uses
from prognos.sim.dealers import make_dms

DAY_MS = 86_400_000
MADE = int(datetime(2024, 7, 3, 12, tzinfo=UTC).timestamp() * 1000)  # a Wednesday
MONDAY = int(datetime(2024, 7, 1, tzinfo=UTC).timestamp() * 1000)


def test_families_and_the_naive_scale() -> None:
    assert [family(p) for p in ("PG-BRK-3100", "BRK-DSC-02", "WIPER-600", "FLT-CAB-1", "X")] == [
        "PG-BRK",
        "BRK-DSC",
        "WIPER",
        "FLT-CAB",
        "X",
    ]
    assert naive_scale(np.array([np.nan, 1.0, 3.0, 2.0])) == pytest.approx(2.5)  # (4 + 1) / 2
    assert math.isnan(naive_scale(np.array([np.nan, 4.0])))


def weekly(forecasts: list[float], center: str = "SC-01", part: str = "P-1") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "service_center": center,
            "part": part,
            "name": "Pads",
            "week_index": range(1, len(forecasts) + 1),
            "forecast": forecasts,
            "low": [0] * len(forecasts),
            "high": [3] * len(forecasts),
        }
    )


def test_a_plan_is_kept_per_iso_week_with_its_windows_and_scale() -> None:
    history = pd.DataFrame(
        {
            "week": ["2024-W24", "2024-W25", "2024-W26"],
            "service_center": "SC-01",
            "part": "P-1",
            "units": [1, 3, 2],
        }
    )
    kept = kept_forecast(weekly([1.5, 2.0]), history, MADE)
    assert list(kept.columns) == list(KEPT_COLUMNS)
    assert set(kept["origin_ms"]) == {MONDAY}  # the plan's ISO week
    assert kept["window_start_ms"].tolist() == [MADE, MADE + WEEK_MS]
    assert kept["window_end_ms"].tolist() == [MADE + WEEK_MS, MADE + 2 * WEEK_MS]
    assert kept["scale"].tolist() == [2.5, 2.5] and kept["lead"].tolist() == [1, 2]


def test_actuals_count_the_units_used_in_each_passed_week() -> None:
    kept = kept_forecast(
        weekly([1.5, 2.0, 2.0]), pd.DataFrame(columns=["week", "service_center", "part", "units"]), MADE
    )
    uses = pd.DataFrame(
        {
            "vin": "V",
            "service_center": ["SC-01", "SC-01", "SC-01", "SC-02", "SC-01"],
            "part": ["P-1", "P-1", "P-1", "P-1", "P-1"],
            "time": [MADE - 1, MADE, MADE + 3 * DAY_MS, MADE + DAY_MS, MADE + 8 * DAY_MS],
        }
    )
    now = MADE + 2 * WEEK_MS  # two of the three weeks have passed
    compared = with_actuals(kept, uses, now_ms=now, since_ms=MADE - WEEK_MS)
    assert compared["lead"].tolist() == [1, 2]
    assert compared["actual"].tolist() == [2.0, 1.0]  # before the plan and at SC-02 not counted
    known_later = with_actuals(kept, uses, now_ms=now, since_ms=MADE + 1)  # uses known from then on
    assert known_later["lead"].tolist() == [2]


def test_bias_rmsse_and_coverage_by_hand() -> None:
    compared = pd.DataFrame(
        {
            "service_center": ["SC-01"] * 4 + ["SC-02"] * 2,
            "part": [
                "PG-BRK-3100",
                "PG-BRK-3100",
                "PG-BRK-3200",
                "PG-BRK-3200",
                "PG-BRK-3100",
                "PG-BRK-3100",
            ],
            "forecast": [2.0, 2.0, 1.0, 1.0, 4.0, 4.0],
            "actual": [1.0, 3.0, 1.0, 3.0, 2.0, 2.0],
            "low": [0, 0, 0, 0, 3, 3],
            "high": [3, 3, 2, 2, 6, 6],
            "scale": [1.0, 1.0, 4.0, 4.0, 0.0, 0.0],
        }
    )
    table = accuracy_table(compared).set_index(["service_center", "family"])
    assert list(table.reset_index().columns) == list(ACCURACY_COLUMNS)
    sc1 = table.loc[("SC-01", "PG-BRK")]
    assert (sc1["pairs"], sc1["weeks"], sc1["forecast_units"], sc1["actual_units"]) == (2, 4, 6.0, 8.0)
    assert sc1["bias"] == pytest.approx(-0.25)  # 2 units fewer than used, of 8
    # 3100: errors 1, 1 -> mean square 1, scale 1 -> 1; 3200: 0, 4 -> 2, scale 4 -> sqrt(0.5)
    assert sc1["rmsse"] == pytest.approx((1.0 + math.sqrt(0.5)) / 2, abs=1e-4)
    assert sc1["coverage"] == 0.75  # 3 of 4 weeks within [low, high]
    sc2 = table.loc[("SC-02", "PG-BRK")]
    assert sc2["bias"] == pytest.approx(1.0) and math.isnan(sc2["rmsse"])  # no scale: no RMSSE
    assert sc2["coverage"] == 0.0
    everything = table.loc[("all", "all")]
    assert (everything["pairs"], everything["weeks"]) == (3, 6)
    assert everything["bias"] == pytest.approx((14 - 12) / 12, abs=1e-4)


def test_the_job_keeps_each_plan_and_compares_the_passed_weeks() -> None:
    """A plan made three weeks ago, kept; the work orders since: its first weeks are compared."""
    history_orders = [("OTHER", MADE - w * WEEK_MS) for w in range(1, 12)]  # one pad set a week
    since = [("OTHER", MADE + d * DAY_MS) for d in (1, 2, 9, 16)]  # 2, 1, 1 in the weeks after

    def uses(rows: list[tuple[str, int]]) -> pd.DataFrame:
        frame = pd.DataFrame(
            [("DLR-01", vin, "SC-01", "PG-BRK-3100", t) for vin, t in rows],
            columns=["dealer_id", "vin", "service_center", "parts", "time"],
        )
        return part_uses(frame)

    registry = pd.DataFrame({"vin": ["A"], "service_center": ["SC-01"]})
    stock = pd.DataFrame(columns=["service_center", "part", "on_hand", "on_order", "lead_time_weeks"])
    none = pd.DataFrame()

    def run(now: int, used: pd.DataFrame, kept: pd.DataFrame | None = None) -> PartsResults:
        inputs = Inputs(registry, none, none, none, none, none, none, none, stock, part_uses=used)
        if kept is not None:
            inputs = Inputs(
                registry, none, none, none, none, none, none, none, stock, part_uses=used, parts_kept=kept
            )
        return parts_plan(inputs, none, now, horizon_weeks=4)

    first = run(MADE, uses(history_orders))
    assert len(first.kept) == 4 and set(first.kept["origin_ms"]) == {MONDAY}
    assert first.accuracy.empty
    later = run(
        MADE + 3 * WEEK_MS + DAY_MS, uses([*history_orders, *since]), first.kept.assign(actual=np.nan)
    )
    assert later.actuals["lead"].tolist() == [1, 2, 3]
    assert later.actuals["actual"].tolist() == [2.0, 1.0, 1.0]
    overall = later.accuracy.set_index(["service_center", "family"]).loc[("all", "all")]
    assert overall["weeks"] == 3 and overall["actual_units"] == 4.0
    assert overall["forecast_units"] == pytest.approx(3.0, abs=0.5)  # about one a week


def test_the_backtest_replays_the_plan_on_the_demo_history() -> None:
    rows = make_dms(seed=3, months=6, end=date(2024, 7, 1), vehicles=20)
    orders = pd.DataFrame(rows["work_order"])
    orders["time"] = [int(datetime.fromisoformat(t).timestamp() * 1000) for t in orders["opened_at"]]
    history = demand_history(
        part_uses(orders), before_ms=int(datetime(2024, 7, 1, tzinfo=UTC).timestamp() * 1000)
    )
    history = history[history["service_center"].isin(["SC-01", "SC-02"])]
    compared = backtest_plan(history, origins=4, horizon_weeks=4)
    assert set(compared["lead"]) == {1, 2, 3, 4} and compared["origin_ms"].nunique() == 4
    assert len(compared) == 4 * 4 * 16  # origins x leads x pairs (2 centers, 8 parts)
    overall = accuracy_table(compared).set_index(["service_center", "family"]).loc[("all", "all")]
    assert abs(overall["bias"]) < 0.25 and 0.3 < overall["rmsse"] < 1.5
    assert overall["coverage"] > 0.75  # the 90 % intervals hold most weeks


def test_the_accuracy_command_reports_per_center_and_family(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weeks = [f"2024-W{w:02d}" for w in range(1, 21)]
    rng = np.random.default_rng(3)
    rows = [
        (w, c, p, int(rng.poisson(3)))
        for w in weeks
        for c in ("SC-01", "SC-02")
        for p in ("PG-BRK-3100", "WIPER-600")
    ]
    history = tmp_path / "weekly.csv"
    pd.DataFrame(rows, columns=["week", "service_center", "part", "units"]).to_csv(history, index=False)
    out = tmp_path / "accuracy.csv"
    argv = [
        "forecast",
        "accuracy",
        "--history",
        str(history),
        "--origins",
        "4",
        "--horizon",
        "4w",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "4 origins x 4 weeks ahead, 4 service center/part pairs, 64 pair-weeks" in printed
    assert "SC-01           PG-BRK" in printed and "RMSSE" in printed
    table = pd.read_csv(out)
    assert list(table.columns) == list(ACCURACY_COLUMNS) and len(table) == 5  # 2 x 2 and all
    assert main([*argv[:3], str(history), "--origins", "0"]) == 2
    short = tmp_path / "short.csv"
    pd.DataFrame(rows[:8], columns=["week", "service_center", "part", "units"]).to_csv(short, index=False)
    assert main(["forecast", "accuracy", "--history", str(short)]) == 2
    assert "too few weeks" in capsys.readouterr().err
