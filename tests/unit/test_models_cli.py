"""`prognos models fit / score / eval-skab / eval-nab` through prognos.cli.main: a full round
trip, a daily cycle calibrated and scored, one clear line and exit status 2 for every kind of bad
input. The benchmark figures are checked in tests/integration/test_models_benchmarks.py."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from prognos.cli import main
from prognos.models.onboarding import MIN_CALIBRATION_ROWS

HEADER = ["time", "pressure_kpa", "current_a", "flow_lpm"]
START = datetime(2024, 5, 1, 8, 0, 0)


def write_csv(
    path: Path,
    rows: int,
    *,
    seed: int = 0,
    separator: str = ";",
    shift: tuple[int, int] | None = None,
    header: Sequence[str] = HEADER,
) -> Path:
    """Rows of a steady machine at 1 Hz; `shift` = (first, last) rows where the flow drops."""
    rng = np.random.default_rng(seed)
    values = np.array([300.0, 12.0, 32.0]) + rng.normal(size=(rows, 3)) * np.array([5.0, 0.5, 0.4])
    if shift is not None:
        values[shift[0] : shift[1], 2] -= 2.0
    lines = [separator.join(header)]
    for i, row in enumerate(values):
        stamp = (START + timedelta(seconds=i)).isoformat(sep=" ")
        lines.append(separator.join([stamp, *(f"{x:.4f}" for x in row)]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def replace_line(path: Path, line: int, new: str) -> Path:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line - 1] = new
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "command",
    [["models"], ["models", "fit"], ["models", "score"], ["models", "eval-skab"], ["models", "eval-nab"]],
)
def test_every_models_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([*command, "--help"], capsys)
    assert code == 0
    assert out.startswith("usage: prognos " + " ".join(command))
    assert len(out.splitlines()) > 3


def test_fit_then_score_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    normal = write_csv(tmp_path / "normal.csv", 1000)
    model = tmp_path / "model"
    code, out, err = run(["models", "fit", "--normal", str(normal), "--out", str(model)], capsys)
    assert (code, err) == (0, "")
    assert "calibrated on 1000 rows" in out and "3 sensors used" in out
    data = json.loads((model / "model.json").read_text())
    assert data["columns"] == HEADER[1:] and data["timestamp_column"] == "time"
    card = (model / "MODEL.md").read_text()
    assert "flow_lpm" in card and f"above **{data['settings']['margin']:g}** units" in card
    assert sorted(p.name for p in model.iterdir()) == ["MODEL.md", "model.json"]

    test = write_csv(tmp_path / "test.csv", 900, seed=1, separator=",", shift=(300, 600))
    scores = tmp_path / "scores.csv"
    code, out, err = run(
        ["models", "score", "--model", str(model), "--input", str(test), "--out", str(scores)], capsys
    )
    assert (code, err) == (0, "")
    assert "scored 900 rows" in out
    lines = scores.read_text().splitlines()
    assert lines[0] == "timestamp,score,flag"
    assert len(lines) == 901
    rows = [line.split(",") for line in lines[1:]]
    assert rows[0][0] == "2024-05-01 08:00:00"
    assert rows[0][1:] == ["", "0"]  # the trailing window is not full yet
    window = data["settings"]["window_rows"]
    flagged = np.array([int(r[2]) for r in rows])
    assert flagged[300 + window : 600].all()
    assert flagged[window:300].mean() < 0.02
    assert flagged[600 + window :].mean() < 0.02


def test_fit_with_listed_columns_and_timestamp_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    normal = write_csv(
        tmp_path / "normal.csv", 500, separator="\t", header=["when", "pressure_kpa", "current_a", "x"]
    )
    model = tmp_path / "model"
    code, _, err = run(
        [
            "models",
            "fit",
            "--normal",
            str(normal),
            "--out",
            str(model),
            "--timestamp-column",
            "when",
            "--columns",
            "x, current_a",
            "--false-alarm-rate",
            "0.02",
            "--scorers",
            "sensor,cusum",
            "--window",
            "10",
            "--margin",
            "3",
            "--release",
            "0.8",
            "--drift-rows",
            "120",
            "--leave-out-drifting",
            "--separator",
            "tab",
        ],
        capsys,
    )
    assert (code, err) == (0, "")
    data = json.loads((model / "model.json").read_text())
    assert data["columns"] == ["x", "current_a"]
    assert data["timestamp_column"] == "when"
    assert data["settings"] == {
        "scorers": ["sensor", "cusum"],
        "window_rows": 10,
        "false_alarm_rate": 0.02,
        "margin": 3.0,
        "release": 0.8,
        "drift_rows": 120,
        "follow_drift": False,
    }


def test_a_daily_cycle_is_calibrated_and_scored_without_alarms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hourly rows of a temperature with a daily cycle: the old detector refused it (its level
    is not steady); now the cycle is learned from the timestamps and normal days pass."""
    rng = np.random.default_rng(8)
    start = datetime(2024, 5, 1, 0, 0, 0)
    rows = 24 * 14
    hours = np.arange(rows)
    temp = 20 + 6 * np.sin(2 * np.pi * hours / 24) + rng.normal(size=rows) * 0.3
    lines = ["time,temp_c"] + [
        f"{(start + timedelta(hours=int(h))).isoformat(sep=' ')},{t:.3f}"
        for h, t in zip(hours, temp, strict=True)
    ]
    (tmp_path / "normal.csv").write_text("\n".join(lines[: 1 + 24 * 10]) + "\n")
    (tmp_path / "later.csv").write_text("\n".join([lines[0], *lines[1 + 24 * 10 :]]) + "\n")
    model = tmp_path / "model"
    code, out, err = run(
        ["models", "fit", "--normal", str(tmp_path / "normal.csv"), "--out", str(model)], capsys
    )
    assert (code, err) == (0, ""), err
    assert "temp_c: cycle of 1 day (24 rows)" in out
    assert "cycle of 1 day" in (model / "MODEL.md").read_text()
    scores = tmp_path / "scores.csv"
    code, out, _ = run(
        [
            "models",
            "score",
            "--model",
            str(model),
            "--input",
            str(tmp_path / "later.csv"),
            "--out",
            str(scores),
        ],
        capsys,
    )
    assert code == 0 and "scored 96 rows" in out and ": 0 flagged" in out
    assert all(
        not math.isnan(float(line.split(",")[1] or "nan")) for line in scores.read_text().splitlines()[41:]
    )


def bad_fit_inputs(tmp: Path) -> list[tuple[list[str], str]]:
    """(fit arguments, expected message) for each kind of bad calibration input."""
    ok = write_csv(tmp / "ok.csv", 500)
    text = replace_line(write_csv(tmp / "text.csv", 500), 57, "2024-05-01 08:00:55;300.1;n/a;32.0")
    ragged = replace_line(write_csv(tmp / "ragged.csv", 500), 9, "2024-05-01 08:00:07;300.1;12.0")
    stamp = replace_line(write_csv(tmp / "stamp.csv", 500), 10, "yesterday;300.1;12.0;32.0")
    order = replace_line(write_csv(tmp / "order.csv", 500), 20, "2024-05-01 07:00:00;300.1;12.0;32.0")
    short = write_csv(tmp / "short.csv", MIN_CALIBRATION_ROWS - 1)
    empty = tmp / "empty.csv"
    empty.write_text("")
    out = ["--out", str(tmp / "model")]
    return [
        (["--normal", str(tmp / "missing.csv"), *out], "missing.csv: no such file"),
        (["--normal", str(tmp), *out], "is a directory"),
        (["--normal", str(empty), *out], "empty.csv: empty"),
        (["--normal", str(ok), "--timestamp-column", "when", *out], "ok.csv: no timestamp column 'when'"),
        (["--normal", str(ok), "--columns", "flow_lpm,oil_temp_c", *out], "ok.csv: no column 'oil_temp_c'"),
        (["--normal", str(text), *out], "text.csv line 57: column 'current_a' holds 'n/a', not a number"),
        (["--normal", str(ragged), *out], "ragged.csv line 9: 3 fields, the header has 4"),
        (
            ["--normal", str(stamp), *out],
            "stamp.csv line 10: 'yesterday' in column 'time' is not an ISO 8601",
        ),
        (["--normal", str(order), *out], "order.csv line 20: timestamp"),
        (
            ["--normal", str(short), *out],
            f"199 rows of normal operation; calibration needs at least {MIN_CALIBRATION_ROWS}",
        ),
    ]


def test_every_bad_fit_input_exits_2_with_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, message in bad_fit_inputs(tmp_path):
        code, out, err = run(["models", "fit", *args], capsys)
        assert code == 2, (args, err)
        assert message in err, (message, err)
        assert err.startswith("prognos: error: ") and err.count("\n") == 1
        assert "Traceback" not in err and out == ""
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--false-alarm-rate", "0.7"], "0.7 is not between 0 and 0.5"),
        (["--false-alarm-rate", "often"], "'often' is not a number"),
        (["--scorers", "pca,magic"], "unknown scorer 'magic'"),
        (["--margin", "0.5"], "0.5 is below 1"),
        (["--release", "0"], "0.0 is not above 0 and at most 1"),
        (["--window", "0"], "argument --window"),
        (["--columns", "a,,b"], "'a,,b' has an empty column name"),
        (["--separator", "|"], "invalid choice"),
    ],
)
def test_bad_fit_options_exit_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    normal = write_csv(tmp_path / "normal.csv", 300)
    code, _, err = run(
        ["models", "fit", "--normal", str(normal), "--out", str(tmp_path / "m"), *args], capsys
    )
    assert code == 2
    assert message in err and "Traceback" not in err


def test_every_bad_score_input_exits_2_with_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    assert (
        run(
            ["models", "fit", "--normal", str(write_csv(tmp_path / "n.csv", 500)), "--out", str(model)],
            capsys,
        )[0]
        == 0
    )
    empty_dir = tmp_path / "empty_dir"
    empty_dir.mkdir()
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "model.json").write_text("{not json")
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.json").write_text('{"weights": [1, 2]}')
    good = write_csv(tmp_path / "good.csv", 100, seed=3)
    no_flow = write_csv(tmp_path / "no_flow.csv", 100, header=["time", "pressure_kpa", "current_a", "flow"])
    no_time = write_csv(tmp_path / "no_time.csv", 100, header=["t", "pressure_kpa", "current_a", "flow_lpm"])
    text = replace_line(write_csv(tmp_path / "text.csv", 100), 31, "2024-05-01 08:00:29;300;12;high")
    cases = [
        (model, tmp_path / "missing.csv", "missing.csv: no such file"),
        (tmp_path / "nowhere", good, "nowhere: no such model directory"),
        (empty_dir, good, "empty_dir: not a model directory (no model.json)"),
        (garbage, good, "model.json: not a model file (not valid JSON"),
        (other, good, "model.json: not a prognos-onboarding-detector model"),
        (model, no_flow, "no_flow.csv: no column 'flow_lpm'"),
        (model, no_time, "no_time.csv: no timestamp column 'time'"),
        (model, text, "text.csv line 31: column 'flow_lpm' holds 'high', not a number"),
    ]
    for model_dir, csv_path, message in cases:
        code, out, err = run(
            [
                "models",
                "score",
                "--model",
                str(model_dir),
                "--input",
                str(csv_path),
                "--out",
                str(tmp_path / "s.csv"),
            ],
            capsys,
        )
        assert code == 2, (message, err)
        assert message in err, (message, err)
        assert err.count("\n") == 1 and "Traceback" not in err and out == ""
    assert not (tmp_path / "s.csv").exists()


def test_eval_skab_without_data_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["models", "eval-skab", "--data", str(tmp_path / "skab")], capsys)
    assert code == 2
    assert "no SKAB data directory" in err and "--data" in err
    code, _, err = run(["models", "eval-skab", "--data", str(tmp_path)], capsys)
    assert code == 2 and "no SKAB experiment files" in err


def test_eval_nab_without_data_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["models", "eval-nab", "--data", str(tmp_path / "nab")], capsys)
    assert code == 2 and "no NAB data directory" in err and "--data" in err
    code, _, err = run(["models", "eval-nab", "--data", str(tmp_path)], capsys)
    assert code == 2 and "no windows.json" in err
    (tmp_path / "windows.json").write_text('{"realKnownCause/gone.csv": []}')
    code, _, err = run(["models", "eval-nab", "--data", str(tmp_path)], capsys)
    assert code == 2 and "none of the files windows.json names is there" in err
