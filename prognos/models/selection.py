"""Choosing detector settings without scoring them on the files they were chosen on.

A benchmark file is a `Case`: it calibrates a detector on its own first rows, scores the rest,
and judges flags against its labels. Every candidate of a `Grid` is run on every case once
(calibration and scoring do not depend on the other files), giving a table of outcomes. Then:

- leave one file out: for each file, the candidate with the best objective on all the other
  files is chosen, and that candidate's outcome on the held-out file is what is reported;
- the candidate with the best objective on all the files is what the same procedure picks
  when no file is held out.

`report` reads the table three ways: per scorer set (family), its knobs chosen leave one file
out; all candidates in one selection; and nested, the family itself chosen inside each fold by
its leave-one-out objective on the other files. The shipped family is the one whose
leave-one-out objective is best, its knobs chosen on all files: on SKAB, the shipped defaults.

The objective: on SKAB the pooled point-wise F1; on NAB the mean over files of (share of
windows hit - FALSE_ONSET_COST x false-alarm onsets), so 20 false onsets cost as much as
missing every window. Ties go to the first candidate in grid order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from prognos.edge.features import FloatArray
from prognos.models import detectors
from prognos.models.onboarding import combine
from prognos.models.settings import Settings

FALSE_ONSET_COST = 0.05
ALL_SCORERS = detectors.SCORERS
FIELDS = ("tp", "fp", "fn", "tn", "windows", "hits", "false_onsets")
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Outcome:
    """What a detector did on one file: point counts (SKAB) or windows and onsets (NAB)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    windows: int = 0
    hits: int = 0
    false_onsets: int = 0

    @classmethod
    def of(cls, row: Sequence[int] | IntArray) -> Outcome:
        return cls(*(int(x) for x in row))

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome.of([a + b for a, b in zip(self.row(), other.row(), strict=True)])

    def row(self) -> list[int]:
        return [self.tp, self.fp, self.fn, self.tn, self.windows, self.hits, self.false_onsets]

    @property
    def f1(self) -> float:
        denominator = self.tp + (self.fp + self.fn) / 2
        return self.tp / denominator if denominator else 0.0

    @property
    def rows(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def far(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def mar(self) -> float:
        return self.fn / (self.fn + self.tp) if self.fn + self.tp else 0.0


@dataclass(frozen=True)
class Case:
    """One benchmark file. `scores(settings)` calibrates with every scorer of the settings and
    returns each scorer's scores of the scored rows; `judge(flags)` takes one row of flags per
    candidate (candidates x scored rows) and returns one outcome row (FIELDS) per candidate."""

    name: str
    benchmark: str  # "skab" or "nab"
    scores: Callable[[Settings], dict[str, FloatArray]] = field(compare=False)
    judge: Callable[[npt.NDArray[np.int8]], IntArray] = field(compare=False)


@dataclass(frozen=True)
class Grid:
    scorer_sets: tuple[tuple[str, ...], ...]
    window_rows: tuple[int, ...]
    false_alarm_rates: tuple[float, ...]
    margins: tuple[float, ...]
    releases: tuple[float, ...]
    drift: tuple[tuple[bool, int], ...]  # (follow_drift, drift_rows)

    def fits(self) -> list[Settings]:
        """The calibrations `evaluate` runs: every scorer, margins and releases left at default."""
        return [
            Settings(scorers=ALL_SCORERS, window_rows=w, false_alarm_rate=r, drift_rows=d, follow_drift=f)
            for (f, d), w, r in itertools.product(self.drift, self.window_rows, self.false_alarm_rates)
        ]

    def candidates(self) -> list[Settings]:
        """In the order `evaluate` fills the table."""
        return [
            replace(fitted, scorers=s, margin=m, release=e)
            for fitted, s, m, e in itertools.product(
                self.fits(), self.scorer_sets, self.margins, self.releases
            )
        ]


UNIVARIATE_SETS: tuple[tuple[str, ...], ...] = (("sensor",), ("sensor", "cusum"), ("cusum",))
MULTIVARIATE_SETS: tuple[tuple[str, ...], ...] = (
    ("pca",),
    ("sensor", "pca"),
    ("mset",),
    ("sensor", "mset"),
    ("autoencoder",),
    ("sensor", "autoencoder"),
)
DEFAULT_GRID = Grid(
    scorer_sets=UNIVARIATE_SETS + MULTIVARIATE_SETS,
    window_rows=(10, 20, 40),
    false_alarm_rates=(0.01, 0.05),
    margins=(1.5, 2.0, 2.5, 3.0, 4.0, 5.0),
    releases=(1.0, 0.7, 0.5),
    # a wandering sensor followed with three time constants, or left out (followed over 300
    # rows only when it is the only sensor)
    drift=((True, 100), (True, 300), (True, 1000), (False, 300)),
)
# on one sensor the multivariate scorers fall back to the per-sensor one: nothing to compare
UNIVARIATE_GRID = replace(DEFAULT_GRID, scorer_sets=UNIVARIATE_SETS)


@dataclass(frozen=True)
class Table:
    """Outcome of every candidate (rows, in `candidates` order) on every case (by name)."""

    candidates: tuple[Settings, ...]
    outcomes: Mapping[str, IntArray]
    benchmarks: Mapping[str, str]

    def outcome(self, case: str, settings: Settings) -> Outcome:
        return Outcome.of(self.outcomes[case][self.candidates.index(settings)])


def present_scorers(available: Mapping[str, FloatArray], wanted: Sequence[str]) -> list[str]:
    """The scorers of `wanted` that a detector could fit (multivariate ones need two sensors);
    the per-sensor scorer when none could, as `fit` does."""
    chosen = [name for name in wanted if name in available]
    return chosen or ["sensor"]


def evaluate(cases: Sequence[Case], grid: Grid) -> Table:
    """The outcome of every candidate of `grid` on every case."""
    pairs = list(itertools.product(grid.margins, grid.releases))
    on = np.array([m for m, _ in pairs])
    off = np.array([m * e for m, e in pairs])
    outcomes: dict[str, IntArray] = {}
    for case in cases:
        blocks = []
        for fitted in grid.fits():
            by_scorer = case.scores(fitted)
            for scorer_set in grid.scorer_sets:
                combined = combine({n: by_scorer[n] for n in present_scorers(by_scorer, scorer_set)})
                blocks.append(case.judge(detectors.hysteresis_many(combined, on, off)))
        outcomes[case.name] = np.vstack(blocks).astype(np.int64)
    return Table(
        candidates=tuple(grid.candidates()),
        outcomes=outcomes,
        benchmarks={case.name: case.benchmark for case in cases},
    )


def objective(
    table: Table, files: Sequence[str], among: Sequence[int] | npt.NDArray[np.integer] | None = None
) -> FloatArray:
    """Per candidate (of `among`, default all): SKAB pooled F1 plus NAB mean file score over
    `files`."""
    rows = slice(None) if among is None else np.asarray(among)
    skab = [table.outcomes[f][rows] for f in files if table.benchmarks[f] == "skab"]
    nab = [table.outcomes[f][rows] for f in files if table.benchmarks[f] == "nab"]
    total = np.zeros(len(skab[0]) if skab else len(nab[0]) if nab else 0)
    if skab:
        summed = np.sum(skab, axis=0)
        tp, fp, fn = summed[:, 0], summed[:, 1], summed[:, 2]
        denominator = tp + (fp + fn) / 2
        total += np.where(denominator > 0, tp / np.where(denominator > 0, denominator, 1), 0.0)
    if nab:
        scores = [
            np.where(o[:, 4] > 0, o[:, 5] / np.maximum(o[:, 4], 1), 0.0) - FALSE_ONSET_COST * o[:, 6]
            for o in nab
        ]
        total += np.mean(scores, axis=0)
    return total


def nab_file_score(outcome: Outcome) -> float:
    share = outcome.hits / outcome.windows if outcome.windows else 0.0
    return share - FALSE_ONSET_COST * outcome.false_onsets


def best(table: Table, files: Sequence[str], among: Sequence[int] | None = None) -> int:
    """Index of the candidate (of `among`, default all) with the best objective on `files`; the
    first in grid order on a tie."""
    indices = np.arange(len(table.candidates)) if among is None else np.asarray(among)
    return int(indices[int(np.argmax(objective(table, files, indices)))])


@dataclass(frozen=True)
class Selection:
    """`chosen` is the candidate picked on all files; `held_out` maps each file to the
    candidate picked on the others and that candidate's outcome on it."""

    chosen: Settings
    in_sample: Mapping[str, Outcome]
    held_out: Mapping[str, tuple[Settings, Outcome]]

    @property
    def in_sample_total(self) -> Outcome:
        return sum(self.in_sample.values(), Outcome())

    @property
    def held_out_total(self) -> Outcome:
        return sum((outcome for _, outcome in self.held_out.values()), Outcome())

    @property
    def stable(self) -> int:
        """How many of the held-out files got the same candidate as `chosen`."""
        return sum(settings == self.chosen for settings, _ in self.held_out.values())


def select(table: Table, among: Sequence[int] | None = None) -> Selection:
    """Leave-one-file-out selection among the candidates `among` (default all), and the pick on
    all files."""
    files = list(table.outcomes)
    chosen = table.candidates[best(table, files, among)]
    held_out = {}
    for name in files:
        pick = table.candidates[best(table, [f for f in files if f != name], among)]
        held_out[name] = (pick, table.outcome(name, pick))
    return Selection(
        chosen=chosen,
        in_sample={name: table.outcome(name, chosen) for name in files},
        held_out=held_out,
    )


def families(table: Table) -> dict[tuple[str, ...], list[int]]:
    """Candidate indices by scorer set, in grid order."""
    out: dict[tuple[str, ...], list[int]] = {}
    for i, settings in enumerate(table.candidates):
        out.setdefault(settings.scorers, []).append(i)
    return out


def held_out_objective(table: Table, files: Sequence[str], among: Sequence[int]) -> float:
    """The objective of the outcomes a leave-one-out selection among `among` gets on `files`."""
    picks = {f: best(table, [g for g in files if g != f], among) for f in files}
    outcomes = {f: table.outcomes[f][picks[f]][None, :] for f in files}
    single = Table(candidates=(table.candidates[0],), outcomes=outcomes, benchmarks=table.benchmarks)
    return float(objective(single, files)[0])


@dataclass(frozen=True)
class Report:
    """Every way the table was read: each family with its knobs chosen leave-one-out; all
    candidates at once; and nested, where the family itself is chosen inside each fold by its
    leave-one-out objective on the training files. `shipped` is the family whose leave-one-out
    objective is best, with its knobs chosen on all files."""

    by_family: Mapping[tuple[str, ...], Selection]
    everything: Selection
    nested: Mapping[str, tuple[Settings, Outcome]]
    shipped: Selection

    @property
    def nested_total(self) -> Outcome:
        return sum((outcome for _, outcome in self.nested.values()), Outcome())


def report(table: Table) -> Report:
    files = list(table.outcomes)
    groups = families(table)
    by_family = {family: select(table, indices) for family, indices in groups.items()}
    nested: dict[str, tuple[Settings, Outcome]] = {}
    for name in files:
        others = [f for f in files if f != name]
        family = max(groups, key=lambda fam: held_out_objective(table, others, groups[fam]))
        pick = table.candidates[best(table, others, groups[family])]
        nested[name] = (pick, table.outcome(name, pick))
    shipped_family = max(groups, key=lambda fam: held_out_objective(table, files, groups[fam]))
    return Report(
        by_family=by_family,
        everything=select(table),
        nested=nested,
        shipped=by_family[shipped_family],
    )
