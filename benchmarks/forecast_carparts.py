"""The carparts comparison of docs/forecast.md: the project's forecaster against all-zero, Croston,
SBA and statsforecast's ADIDA, IMAPA and TSB, in one run on one split.

    .venv/bin/python benchmarks/forecast_carparts.py [--history CSV] [--holdout 12]

The default history is ../shared/data/carparts/carparts.csv beside the project. Every method is
fitted on the periods before the last `--holdout` (months 1-39 on carparts), makes one forecast
of that horizon, and is scored once by prognos.cloud.parts.forecast.backtest: the same scored
series, the same RMSSE and MASE, the same active subset. statsforecast is a benchmark and test
dependency only (the `dev` extra); the forecaster itself needs numpy alone.

How statsforecast's models are fed: each series as its observed periods in order, unknown
(empty) periods left out, as every method here treats them. On carparts an unknown month only
ever follows a part's last recorded month, so a scored series has no unknown month in-sample and
is fed whole. A series without demand is forecast 0 (what the models return for it), one
without any observed period gets no forecast (it is never scored).

ADIDA and IMAPA have no parameter to set (they optimise their exponential smoothing). TSB needs
alpha_d and alpha_p: they are chosen from TSB_GRID on the same rolling validation origins the
forecaster uses (validation_splits: months 27, 30 and 33 on carparts, each scored on the months
after it up to 39), by the least mean RMSSE; the held-out year plays no part in it.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prognos.cloud.parts import forecast as fc  # noqa: E402
from prognos.cloud.parts.tables import demand_table, parse_csv  # noqa: E402

CARPARTS = ROOT.parent / "shared" / "data" / "carparts" / "carparts.csv"
TSB_GRID = (0.05, 0.1, 0.2, 0.3, 0.5)  # candidate alpha_d and alpha_p values, set by hand
LABELS = {
    "all-zero": "all-zero",
    "croston": f"Croston (alpha {fc.CROSTON_ALPHA:g})",
    "sba": f"SBA (alpha {fc.CROSTON_ALPHA:g})",
    "adida": "ADIDA (statsforecast)",
    "imapa": "IMAPA (statsforecast)",
    "tsb": "TSB (statsforecast)",
    fc.FORECASTER: "prognos forecaster",
}


def statsforecast_forecast(model: object, history: fc.FloatArray, horizon: int) -> fc.FloatArray:
    """`model.forecast` per series on its observed periods (module docstring): horizon x series."""
    out = np.full((horizon, history.shape[1]), np.nan)
    for j in range(history.shape[1]):
        series = history[:, j]
        series = series[np.isfinite(series)]
        if series.size == 0:
            continue
        if not (series > 0).any():
            out[:, j] = 0.0
            continue
        out[:, j] = model.forecast(y=series, h=horizon)["mean"]  # type: ignore[attr-defined]
    return out


def adida(history: fc.FloatArray, horizon: int) -> fc.FloatArray:
    from statsforecast.models import ADIDA

    return statsforecast_forecast(ADIDA(), history, horizon)


def imapa(history: fc.FloatArray, horizon: int) -> fc.FloatArray:
    from statsforecast.models import IMAPA

    return statsforecast_forecast(IMAPA(), history, horizon)


@dataclass
class TunedTSB:
    """statsforecast's TSB with alpha_d and alpha_p chosen on the history's own validation
    origins (fc.validation_splits), by the least mean RMSSE over them."""

    grid: tuple[float, ...] = TSB_GRID
    chosen: tuple[float, float] = (0.0, 0.0)
    validation: dict[tuple[float, float], float] = field(default_factory=dict)

    def __call__(self, history: fc.FloatArray, horizon: int) -> fc.FloatArray:
        from statsforecast.models import TSB

        splits = fc.validation_splits(history, horizon)
        self.validation = {
            (alpha_d, alpha_p): fc.validation_rmsse(
                splits, lambda h, n, d=alpha_d, p=alpha_p: statsforecast_forecast(TSB(d, p), h, n)
            )
            for alpha_d, alpha_p in itertools.product(self.grid, self.grid)
        }
        self.chosen = min(self.validation, key=lambda pair: self.validation[pair])
        return statsforecast_forecast(TSB(alpha_d=self.chosen[0], alpha_p=self.chosen[1]), history, horizon)


@dataclass(frozen=True)
class Comparison:
    result: fc.Backtest
    tsb: TunedTSB
    seconds: float


def compare(history: fc.FloatArray, *, holdout: int = 12) -> Comparison:
    """Every method of the comparison, scored by one fc.backtest run."""
    started = time.perf_counter()
    tsb = TunedTSB()
    result = fc.backtest(history, holdout=holdout, benchmarks={"adida": adida, "imapa": imapa, "tsb": tsb})
    return Comparison(result, tsb, time.perf_counter() - started)


def validation_table(history: fc.FloatArray, comparison: Comparison) -> list[str]:
    """The same methods on the forecaster's validation origins (periods before the held-out ones
    only): the forecaster's scores as fit_forecaster recorded them, the others fitted before
    each origin. TSB keeps the alphas it chose on these same origins, an advantage to it."""
    result, fit = comparison.result, comparison.result.fit
    train = history[: result.periods - result.holdout]
    splits = fc.validation_splits(train, result.holdout)
    if not splits or not fit.validation_origins:
        return []
    from statsforecast.models import TSB

    alpha_d, alpha_p = comparison.tsb.chosen
    others: dict[str, fc.Forecaster] = {
        "all-zero": fc.zero_forecast,
        "croston": fc.croston_forecast,
        "sba": lambda h, n: fc.croston_forecast(h, n, sba=True),
        "adida": adida,
        "imapa": imapa,
        "tsb": lambda h, n: statsforecast_forecast(TSB(alpha_d=alpha_d, alpha_p=alpha_p), h, n),
    }
    ours = fit.validation_by_origin[fit.chosen]
    lines = [
        "",
        "validation origins: each method fitted on the periods up to the origin, scored on the periods "
        "after it up to the last in-sample one",
        "",
        "| origin | scored periods | best other method | its RMSSE | prognos RMSSE | prognos below it |",
        "| ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for (before, after), origin, score in zip(splits, fit.validation_origins, ours, strict=True):
        found = {name: fc.mean_rmsse(before, after, f(before, after.shape[0])) for name, f in others.items()}
        best = min(found, key=lambda name: found[name])
        lines.append(
            f"| {origin} | {origin + 1}-{origin + after.shape[0]} | {LABELS[best]} | {found[best]:.4f} "
            f"| {score:.4f} | {100 * (1 - score / found[best]):.1f}% |"
        )
    return lines


def load(path: Path) -> fc.FloatArray:
    text = path.read_text(encoding="utf-8")
    return demand_table(parse_csv(text, source=str(path)), source=str(path)).values


def report(comparison: Comparison, path: Path) -> str:
    result, fit = comparison.result, comparison.result.fit
    train = result.periods - result.holdout
    lines = [
        f"{path}: {result.periods} periods x {result.series} series; the last {result.holdout} held out, "
        f"one {result.holdout}-period forecast from period {train}",
        f"forecaster: {fit.chosen} ({fit.source}), chosen on validation origins "
        + ", ".join(str(o) for o in fit.validation_origins)
        + f" (scored up to period {train})",
        f"TSB: alpha_d {comparison.tsb.chosen[0]:g}, alpha_p {comparison.tsb.chosen[1]:g}, chosen on the "
        f"same origins from alpha in {', '.join(f'{a:g}' for a in TSB_GRID)} "
        f"(validation RMSSE {comparison.tsb.validation[comparison.tsb.chosen]:.4f})",
        "",
        "| method | RMSSE (all) | MASE (all) | RMSSE (active) | MASE (active) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for s in result.scores:
        label = LABELS.get(s.name, s.name)
        numbers = " | ".join(f"{x:.4f}" for x in (s.rmsse, s.mase, s.rmsse_active, s.mase_active))
        lines.append(f"| {label} | {numbers} |")
    lines.append(f"| series scored | {result.scored} | | {result.scored_active} | |")
    others = [s for s in result.scores if s.name != fc.FORECASTER]
    best = min(others, key=lambda s: s.rmsse)
    best_active = min(others, key=lambda s: s.rmsse_active)
    lines += [
        "",
        f"RMSSE {100 * result.improvement():.1f}% below the best other method on all scored series "
        f"({LABELS.get(best.name, best.name)}), {100 * result.improvement(subset='active'):.1f}% on the "
        f"active ones ({LABELS.get(best_active.name, best_active.name)})",
        f"{comparison.seconds:.1f} s; reproduce: .venv/bin/python benchmarks/forecast_carparts.py"
        + ("" if path == CARPARTS else f" --history {path}")
        + ("" if result.holdout == 12 else f" --holdout {result.holdout}"),
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=Path, default=CARPARTS, help="demand table (default: carparts)")
    parser.add_argument("--holdout", type=int, default=12, help="periods held out (default: %(default)s)")
    args = parser.parse_args()
    try:
        import statsforecast  # noqa: F401
    except ImportError:
        print("statsforecast is not installed: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    history = load(args.history)
    comparison = compare(history, holdout=args.holdout)
    print(report(comparison, args.history))
    print("\n".join(validation_table(history, comparison)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
