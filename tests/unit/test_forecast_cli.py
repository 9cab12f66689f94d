"""`prognos forecast demand / backtest / parts` through prognos.cli.main: the documented file
shapes, and one clear line with exit status 2 for every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prognos.cli import main
from prognos.cloud.parts.plan import REORDER_COLUMNS, WEEKLY_COLUMNS


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def demand_csv(path: Path, periods: int = 30, series: int = 3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    lines = ["month," + ",".join(f"part{j}" for j in range(series))]
    for i in range(periods):
        values = [str(v) for v in rng.poisson(1.5, series)]
        values[-1] = "" if i < 5 else values[-1]  # a series that starts late: unknown, not zero
        lines.append(f"{2020 + i // 12}-{i % 12 + 1:02d}," + ",".join(values))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    "command", [["forecast"], ["forecast", "demand"], ["forecast", "backtest"], ["forecast", "parts"]]
)
def test_every_forecast_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([*command, "--help"], capsys)
    assert code == 0
    assert out.startswith("usage: prognos " + " ".join(command))


def test_demand_writes_the_documented_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = demand_csv(tmp_path / "history.csv")
    out = tmp_path / "forecast.csv"
    code, stdout, err = run(
        ["forecast", "demand", "--history", str(history), "--horizon", "4", "--out", str(out)], capsys
    )
    assert (code, err) == (0, "")
    assert "forecast 3 series" in stdout and "2022-07 to 2022-10" in stdout
    point = rows(out)
    assert point[0] == ["month", "part0", "part1", "part2"]
    assert [r[0] for r in point[1:]] == ["2022-07", "2022-08", "2022-09", "2022-10"]
    values = np.array([[float(v) for v in r[1:]] for r in point[1:]])
    assert values.shape == (4, 3) and (values >= 0).all()
    assert (values == values[0]).all()  # flat
    intervals = rows(tmp_path / "forecast.intervals.csv")
    assert intervals[0] == [
        "month",
        "part0_lower",
        "part0_upper",
        "part1_lower",
        "part1_upper",
        "part2_lower",
        "part2_upper",
    ]
    bounds = np.array([[float(v) for v in r[1:]] for r in intervals[1:]])
    assert bounds.shape == (4, 6)
    assert (bounds[:, 0::2] <= bounds[:, 1::2]).all()
    assert (bounds[:, 1::2] >= values).all()


def test_demand_labels_fall_back_to_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = tmp_path / "h.csv"
    history.write_text("period,a\nq1,1\nq2,0\nq3,2\nq4,1\nq5,0\n", encoding="utf-8")
    out = tmp_path / "f"
    code, _, err = run(
        ["forecast", "demand", "--history", str(history), "--horizon", "2", "--out", str(out)], capsys
    )
    assert (code, err) == (0, "")
    assert [r[0] for r in rows(out)] == ["period", "1", "2"]
    assert (tmp_path / "f.intervals.csv").is_file()


def bad_demand_inputs(tmp: Path) -> list[tuple[list[str], str]]:
    ok = demand_csv(tmp / "ok.csv")
    text = tmp / "text.csv"
    text.write_text("month,a,b\n2020-01,1,2\n2020-02,1,many\n2020-03,0,0\n2020-04,1,1\n", encoding="utf-8")
    labels_only = tmp / "labels.csv"
    labels_only.write_text("month\n2020-01\n2020-02\n2020-03\n2020-04\n", encoding="utf-8")
    short = tmp / "short.csv"
    short.write_text("month,a\n2020-01,1\n2020-02,0\n", encoding="utf-8")
    empty = tmp / "empty.csv"
    empty.write_text("", encoding="utf-8")
    out = str(tmp / "out.csv")
    demand = ["forecast", "demand", "--out", out]
    return [
        ([*demand, "--history", str(tmp / "missing.csv"), "--horizon", "3"], "cannot read"),
        ([*demand, "--history", str(text), "--horizon", "3"], "row 3, column 'b': 'many' is not a number"),
        ([*demand, "--history", str(labels_only), "--horizon", "3"], "at least one numeric series column"),
        ([*demand, "--history", str(short), "--horizon", "3"], "has 2 periods; a forecast needs at least 4"),
        ([*demand, "--history", str(empty), "--horizon", "3"], "is empty"),
        ([*demand, "--history", str(ok), "--horizon", "0"], "horizon must be a positive number"),
        ([*demand, "--history", str(ok), "--horizon", "-2"], "horizon must be a positive number"),
        (
            [*demand, "--history", str(ok), "--horizon", "3", "--level", "1.5"],
            "level must be between 0 and 1",
        ),
        (["forecast", "backtest", "--history", str(ok), "--holdout", "24"], "needs at least 38 periods"),
        (["forecast", "backtest", "--history", str(ok), "--holdout", "0"], "holdout must be positive"),
    ]


def test_bad_demand_input_gives_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in bad_demand_inputs(tmp_path):
        code, out, err = run(argv, capsys)
        assert code == 2, argv
        assert out == ""
        assert err.startswith("prognos: error: ") and message in err, (argv, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out.csv").exists()


def test_backtest_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = demand_csv(tmp_path / "history.csv", periods=40, series=30, seed=4)
    code, out, err = run(["forecast", "backtest", "--history", str(history), "--holdout", "6"], capsys)
    assert (code, err) == (0, "")
    for label in (
        "all-zero",
        "Croston (alpha 0.1)",
        "SBA (alpha 0.1)",
        "prognos forecaster",
        "series scored",
    ):
        assert any(line.startswith(label) for line in out.splitlines()), label
    assert "one 6-period forecast from period 34" in out
    assert "90% intervals:" in out


def test_backtest_on_carparts_prints_the_documented_claim(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = shared_data / "carparts" / "carparts.csv"
    if not path.is_file():
        pytest.skip(f"carparts is not among the shared datasets ({path})")
    code, out, err = run(["forecast", "backtest", "--history", str(path)], capsys)
    assert (code, err) == (0, "")
    assert "51 periods x 1337 series" in out
    assert "validation origins 27, 30, 33, each scored up to period 39" in out
    assert "benchmarks/forecast_carparts.py" in out
    line = next(line for line in out.splitlines() if line.startswith("RMSSE "))
    below = [float(word.rstrip("%")) for word in line.split() if word.endswith("%")]
    assert len(below) == 2 and min(below) >= 5.0


FAILURES = """vin,service_center,code,days_to_failure,days_low,days_high
WVW001,north,brakes.pad_wear,17.5,17,18
WVW002,north,brakes.pad_wear,40,20,90
WVW003,south,tires.pressure_loss,3,1,6
"""
STOCK = """service_center,part,on_hand,lead_time_weeks
north,PG-BRK-3100,1,2
south,PG-TYR-2100,4,1
"""


def parts_inputs(tmp: Path) -> tuple[Path, Path, Path]:
    failures, stock, history = tmp / "failures.csv", tmp / "stock.csv", tmp / "history.csv"
    failures.write_text(FAILURES, encoding="utf-8")
    stock.write_text(STOCK, encoding="utf-8")
    rng = np.random.default_rng(0)
    lines = ["week,service_center,part,units"]
    for w in range(30):
        week = str(np.datetime64("2024-01-01") + np.timedelta64(7 * w, "D"))
        lines.append(f"{week},north,PG-BRK-3100,{rng.poisson(2)}")
        if w % 4 == 0:
            lines.append(f"{week},east,PG-WBR-4100,1")
    history.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return failures, history, stock


def test_parts_writes_the_plan_and_the_reorders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    failures, history, stock = parts_inputs(tmp_path)
    out = tmp_path / "parts.csv"
    argv = [
        "forecast",
        "parts",
        "--failures",
        str(failures),
        "--history",
        str(history),
        "--stock",
        str(stock),
    ]
    code, stdout, err = run([*argv, "--horizon", "8w", "--out", str(out)], capsys)
    assert (code, err) == (0, "")
    assert "3 service center/part pairs over 8 weeks (2024-07-29 to 2024-09-16)" in stdout
    weekly = rows(out)
    assert weekly[0] == list(WEEKLY_COLUMNS)
    assert len(weekly) == 1 + 3 * 8
    north = [r for r in weekly[1:] if r[:2] == ["north", "PG-BRK-3100"]]
    from_failures = [float(r[4]) for r in north]
    assert from_failures[2] == max(from_failures) and from_failures[2] > 0.99  # WVW001 in week 3
    reorder = rows(tmp_path / "parts.reorder.csv")
    assert reorder[0] == list(REORDER_COLUMNS)
    by_pair = {(r[0], r[1]): dict(zip(reorder[0], r, strict=True)) for r in reorder[1:]}
    assert set(by_pair) == {("north", "PG-BRK-3100"), ("south", "PG-TYR-2100"), ("east", "PG-WBR-4100")}
    east = by_pair[("east", "PG-WBR-4100")]
    assert float(east["on_hand"]) == 0 and float(east["lead_time_weeks"]) == 2.0  # not in --stock
    north_row = by_pair[("north", "PG-BRK-3100")]
    assert int(north_row["order_qty"]) == int(north_row["reorder_point"]) - 1


def test_bad_parts_input_gives_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    failures, _, stock = parts_inputs(tmp_path)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text(FAILURES.replace("tires.pressure_loss", "wipers.streaks"), encoding="utf-8")
    out = str(tmp_path / "parts.csv")
    base = ["forecast", "parts", "--out", out]
    cases = [
        ([*base, "--failures", str(failures), "--horizon", "0w"], "not a positive number of weeks"),
        ([*base, "--failures", str(failures), "--horizon", "soon"], "not a positive number of weeks"),
        ([*base, "--failures", str(unknown)], "'wipers.streaks' has no part"),
        ([*base, "--failures", str(stock)], "missing column(s)"),
        ([*base, "--failures", str(failures), "--history", str(failures)], "history: missing column(s)"),
        (
            [*base, "--failures", str(failures), "--service-level", "1"],
            "service level must be between 0 and 1",
        ),
        ([*base, "--failures", str(tmp_path / "none.csv")], "cannot read"),
    ]
    for argv, message in cases:
        code, _, err = run(argv, capsys)
        assert code == 2, argv
        assert err.startswith("prognos: error: ") and message in err, (argv, err)
        assert len(err.strip().splitlines()) == 1
    assert not Path(out).exists()
