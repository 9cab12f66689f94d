"""`prognos vibration` input errors: every bad file, manifest or option exits 2 with one line
that names it, before any model or TensorFlow is loaded; and the evaluation report's tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prognos.cli import main
from prognos.edge.vibration.classifier import CLASSES
from prognos.edge.vibration.features import FEATURE_NAMES
from prognos.models.vibration.evaluate import Fold, envelope_baseline, format_report


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def classify(tmp_path: Path, signal: Path, *extra: str) -> list[str]:
    return [
        "vibration", "classify", "--model", str(tmp_path / "model"), "--signal", str(signal),
        "--rpm", "1797", "--out", str(tmp_path / "out.csv"), *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "command", [["vibration"], ["vibration", "fit"], ["vibration", "classify"], ["vibration", "eval"]]
)
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([*command, "--help"], capsys)
    assert code == 0
    assert out.startswith("usage: prognos " + " ".join(command))


@pytest.mark.parametrize(
    "name, content, extra, message",
    [
        ("a.txt", b"1\n", ["--rate-hz", "12000"], "unsupported file type '.txt'"),
        ("a.mat", b"MATLAB 4 or something else", ["--rate-hz", "12000"], "not a MATLAB 5 MAT-file"),
        ("a.csv", b"t,x\n0,1\n", ["--rate-hz", "12000"], "line 1 has 2 columns; expected one"),
        ("a.csv", b"x\n1\n2\n", [], "does not state its sample rate; give --rate-hz"),
        ("a.wav", b"RIFF....WAVE", ["--rate-hz", "12000"], "no fmt and data chunks"),
        ("b.csv", b"1\n2\n", ["--rate-hz", "12000"], "is not a vibration model directory"),
    ],
)
def test_bad_signal_files_exit_2_with_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes,
    extra: list[str],
    message: str,
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    code, _, err = run(classify(tmp_path, path, *extra), capsys)
    assert code == 2
    assert err.startswith("prognos: error: ")
    assert len(err.strip().splitlines()) == 1
    assert message in err


def test_a_missing_signal_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(classify(tmp_path, tmp_path / "none.mat", "--rate-hz", "12000"), capsys)
    assert code == 2
    assert "none.mat: no such file" in err


@pytest.mark.parametrize("value", ["0", "-3", "fast", "nan"])
def test_rate_and_speed_must_be_positive_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    code, _, err = run(classify(tmp_path, tmp_path / "a.csv", "--rate-hz", value), capsys)
    assert code == 2
    assert "--rate-hz" in err


@pytest.mark.parametrize(
    "manifest, message",
    [
        ("path,label\nx.csv,ball\n", "the header lacks rate_hz, rpm"),
        (
            "path,label,rate_hz,rpm\nx.csv,cracked,12000,1797\n",
            "line 2: label 'cracked' is not one of normal",
        ),
        ("path,label,rate_hz,rpm\nx.csv,ball,fast,1797\n", "line 2: rate_hz 'fast' is not a number"),
        ("path,label,rate_hz,rpm\nx.csv,ball,4000,1797\n", "line 2: sample rate 4000 Hz is below 10000 Hz"),
        ("path,label,rate_hz,rpm\nx.csv,ball,12000,1797\n", "x.csv: no such file"),
        ("path,label,rate_hz,rpm\n", "lists no recordings"),
    ],
)
def test_bad_manifests_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], manifest: str, message: str
) -> None:
    (tmp_path / "manifest.csv").write_text(manifest)
    argv = ["vibration", "fit", "--manifest", str(tmp_path / "manifest.csv"), "--out", str(tmp_path / "m")]
    code, _, err = run(argv, capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert message in err
    assert not (tmp_path / "m").exists()


def test_eval_without_data_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["vibration", "eval", "--data", str(tmp_path / "cwru")], capsys)
    assert code == 2
    assert "no such directory" in err


def test_the_envelope_baseline_names_the_strongest_visible_line() -> None:
    rows = np.zeros((4, len(FEATURE_NAMES)))
    lines = [FEATURE_NAMES.index(n) for n in ("bpfi_line_db", "bpfo_line_db", "bsf_line_db")]
    rows[:, lines] = [[3.0, 4.0, 2.0], [12.0, 7.0, 3.0], [3.0, 9.0, 8.0], [2.0, 3.0, 6.5]]
    assert [CLASSES[i] for i in envelope_baseline(rows)] == ["normal", "inner_race", "outer_race", "ball"]


def test_the_report_has_accuracy_per_class_and_the_confusion_matrices() -> None:
    actual = np.array([0, 1, 1, 2, 2, 3, 3, 3])
    model = np.array([0, 1, 1, 2, 3, 3, 3, 0])
    fold = Fold(
        size="014",
        train_windows=20,
        trained_on=18,
        actual=actual,
        model=model,
        baseline=np.zeros(8, dtype=np.int64),
        float_agreement=1.0,
        replayed={0.9: (actual, actual), 1.25: (actual, model)},
    )
    report = format_report([fold], Path("cwru"))
    assert "0.014 in" in report
    assert "outer_race         2   0.500     0.000       0.500" in report
    assert "ball               3   0.667     0.000       0.667" in report
    model_matrix = report.split("Confusion, model")[1].splitlines()
    assert model_matrix[2].split() == ["normal", "1", "0", "0", "0"]
    assert model_matrix[5].split() == ["ball", "1", "0", "0", "2"]
