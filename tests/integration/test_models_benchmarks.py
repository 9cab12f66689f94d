"""`prognos models eval-skab` and `eval-nab` on the shared benchmark data: the shipped defaults
are the ones the leave-one-file-out selection chooses, and docs/models.md reports the figures
the run gives. Skipped when ../shared/data is not beside the project.

Time: the SKAB evaluation runs 3,888 candidate settings on 16 files (384 calibrations), about
40 s of one core, a minute or two on a busy two-core machine; it runs once per process
(prognos.models.skab.skab_table keeps it) and every test here shares it. NAB takes seconds.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from prognos.cli import main
from prognos.models.nab import NabEvaluation, default_nab_dir, evaluate_nab
from prognos.models.selection import Outcome
from prognos.models.settings import DEFAULTS
from prognos.models.skab import SkabEvaluation, default_skab_dir, evaluate_skab

DOCS = Path(__file__).resolve().parents[2] / "docs" / "models.md"
F1_TOLERANCE = 0.005
PERCENT_TOLERANCE = 0.05


def data_dir(path: Path, name: str) -> Path:
    if not path.is_dir():
        pytest.skip(f"the {name} benchmark data is not in the shared datasets ({path})")
    return path


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """As `prognos models eval-*` runs (it sets the thread count before numpy loads, which a
    test process cannot): on small matrices, BLAS threads only contend for the two cores and
    double the time. Without threadpoolctl the evaluation just takes longer."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def skab() -> Iterator[SkabEvaluation]:
    with one_blas_thread():
        yield evaluate_skab(data_dir(default_skab_dir(), "SKAB"))


@pytest.fixture(scope="module")
def nab() -> Iterator[NabEvaluation]:
    with one_blas_thread():
        yield evaluate_nab(data_dir(default_nab_dir(), "NAB"))


def documented_row(label: str) -> list[str]:
    """The cells after the first of the docs/models.md table row whose first cell is `label`."""
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == label:
            return cells[1:]
    raise AssertionError(f"no row {label!r} in {DOCS}")


def assert_metrics(cells: list[str], outcome: Outcome) -> None:
    f1, far, mar = (float(c) for c in cells[:3])
    assert f1 == pytest.approx(outcome.f1, abs=F1_TOLERANCE)
    assert far == pytest.approx(100 * outcome.far, abs=PERCENT_TOLERANCE)
    assert mar == pytest.approx(100 * outcome.mar, abs=PERCENT_TOLERANCE)


def test_the_shipped_defaults_are_what_leave_one_file_out_chooses(skab: SkabEvaluation) -> None:
    shipped = skab.report.shipped
    assert shipped.chosen == DEFAULTS, "update prognos/models/settings.py and docs/models.md"
    assert shipped.stable == len(skab.shipped.files)
    assert skab.shipped.detector == shipped.in_sample_total  # the table and a plain run agree


def test_skab_meets_the_aim_on_files_it_was_not_tuned_on(skab: SkabEvaluation) -> None:
    held_out = skab.report.shipped.held_out_total
    assert held_out.f1 > 0.85
    assert held_out.f1 > skab.shipped.zscore.f1 > skab.shipped.all_anomaly.f1


def test_skab_figures_match_the_docs(skab: SkabEvaluation) -> None:
    report, shipped = skab.report, skab.shipped
    assert_metrics(
        documented_row("Prognos, shipped defaults, held out (16 valve1 files)"), report.shipped.held_out_total
    )
    assert_metrics(documented_row("Prognos, shipped defaults, in-sample"), shipped.detector)
    assert_metrics(documented_row("all-anomaly baseline"), shipped.all_anomaly)
    assert_metrics(documented_row("per-sensor z-score baseline"), shipped.zscore)
    assert skab.anomaly_free is not None
    far = documented_row("anomaly-free.csv in 8 pieces of 1150 rows, same protocol (every flag is false)")[1]
    assert float(far) == pytest.approx(100 * skab.anomaly_free.far, abs=PERCENT_TOLERANCE)
    for scorers, selection in report.by_family.items():
        cells = documented_row("+".join(scorers))
        assert_metrics(cells, selection.held_out_total)
        assert float(cells[3]) == pytest.approx(selection.in_sample_total.f1, abs=F1_TOLERANCE)
    assert_metrics(documented_row("any set, any knobs, one selection"), report.everything.held_out_total)
    assert_metrics(documented_row("set chosen inside each fold (nested)"), report.nested_total)
    for file in shipped.files:
        assert_metrics(documented_row(file.name), file.detector)


def test_skab_footprints_match_the_docs(skab: SkabEvaluation) -> None:
    for footprint in skab.footprints:
        name = "+".join(footprint.scorers)
        cells = documented_row(
            f"`{name}` (shipped)" if footprint.scorers == DEFAULTS.scorers else f"`{name}`"
        )
        assert [int(c) for c in cells[:3]] == [footprint.parameters, footprint.state, footprint.memory_bytes]
        assert int(cells[3]) == pytest.approx(footprint.model_bytes, rel=0.02)


def test_eval_skab_prints_the_figures(skab: SkabEvaluation, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "eval-skab"]) == 0
    out = capsys.readouterr().out
    held_out = skab.report.shipped.held_out_total
    assert re.search(rf"shipped defaults, held out\s+{held_out.f1:.3f}\s+{100 * held_out.far:.2f}", out)
    assert f"shipped defaults: {DEFAULTS.describe()}" in out
    assert "same setting chosen in 16 of 16 folds" in out
    assert "family chosen inside each fold (nested)" in out
    assert "valve1/15.csv" in out and "anomaly-free.csv" in out and "autoencoder" in out


def nab_cell(text: str) -> tuple[int, int, int, float]:
    """'3/3, 0, 0.0%' -> (hits, windows, false onsets, percent)."""
    match = re.fullmatch(r"(\d+)/(\d+), (\d+), ([\d.]+)%", text)
    assert match, text
    return int(match[1]), int(match[2]), int(match[3]), float(match[4])


def assert_nab_cell(text: str, outcome: Outcome) -> None:
    hits, windows, false_onsets, percent = nab_cell(text)
    assert (hits, windows) == (outcome.hits, outcome.windows)
    assert false_onsets == pytest.approx(outcome.false_onsets, abs=1)
    assert percent == pytest.approx(100 * outcome.far, abs=0.1)


def test_nab_figures_match_the_docs(nab: NabEvaluation) -> None:
    held_out = nab.report.everything.held_out
    totals = [Outcome()] * 4
    for file in nab.shipped.files:
        cells = documented_row(file.name)
        assert int(cells[0]) == file.rows
        row = (file.detector, held_out[file.name][1], file.all_anomaly, file.zscore)
        for text, outcome in zip(cells[1:], row, strict=True):
            assert_nab_cell(text, outcome)
        totals = [a + b for a, b in zip(totals, row, strict=True)]
    for text, outcome in zip(documented_row("all")[1:], totals, strict=True):
        assert_nab_cell(text, outcome)


def test_nab_shipped_defaults_hit_most_windows(nab: NabEvaluation) -> None:
    hits = sum(f.detector.hits for f in nab.shipped.files)
    windows = sum(f.detector.windows for f in nab.shipped.files)
    assert hits >= windows - 1
    assert sum(f.detector.false_onsets for f in nab.shipped.files) < sum(
        f.zscore.false_onsets for f in nab.shipped.files
    )


def test_eval_nab_prints_the_figures(nab: NabEvaluation, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "eval-nab"]) == 0
    out = capsys.readouterr().out
    for file in nab.shipped.files:
        assert re.search(
            rf"{re.escape(file.name)}\s+{file.rows}\s+{file.detector.hits}/{file.detector.windows}", out
        )
    assert "cycle of 1 week (336 rows)" in out
    assert "settings chosen on the other files (held out)" in out
