"""Fuzzing benchmark: each input parser against the Hypothesis strategies of the test suite
(tests/support/fuzz_strategies.py), 100,000 cases per target by default.

    .venv/bin/python benchmarks/fuzz.py [--cases 100000] [--target record|link|dms|scenario|condition|all]
                                        [--seed 0] [--out .prognos/fuzz]

For each target it prints the cases run, the time they took, cases per second, the inputs
accepted and those refused with the documented error, and every other outcome: an undocumented
exception, a broken promise (a message with Python internals, a valid input refused or
changed), a case over its CPU-time bound, or a case that does not finish within --hang-s seconds.
Each of those is saved to --out with its input and traceback. Exit status 1 if there was any.
A progress bar runs on stderr. Results are recorded in docs/fuzzing.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase, given, settings
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.fuzz_strategies import TARGETS, Target  # noqa: E402

BATCH = 2_000  # cases per Hypothesis run, so its record of the cases it has tried stays small
MAX_SAVED = 50  # failing inputs saved per target; all are counted


class CaseHang(Exception):
    """A case that did not finish in time."""


@contextmanager
def hang_guard(seconds: float) -> Iterator[None]:
    """Raise CaseHang in the running case if it takes longer than `seconds` of wall time."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise CaseHang(f"no result after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Result:
    target: Target
    cases: int = 0
    accepted: int = 0
    refused: int = 0
    failures: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    kinds: Counter[str] = field(default_factory=Counter)  # failures by exception and place
    examples: dict[str, str] = field(default_factory=dict)  # the first message of each kind
    saved: list[Path] = field(default_factory=list)


def run_target(target: Target, cases: int, seed: int, out: Path, hang_s: float) -> Result:
    result = Result(target)
    bar = tqdm(total=cases, desc=f"{target.name:8}", unit="case", file=sys.stderr, mininterval=2.0)

    def one(case: Any) -> None:
        result.cases += 1
        try:
            with hang_guard(hang_s):
                outcome = target.check(case)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            record_failure(result, case, exc, out)
        else:
            result.accepted += outcome.accepted
            result.refused += outcome.refused
        bar.update(1)
        if result.failures:
            bar.set_postfix(failures=result.failures, refresh=False)

    start_wall, start_cpu = time.perf_counter(), time.process_time()
    batch = 0
    while result.cases < cases:
        before = result.cases
        run = given(target.strategy)(one)
        run = hypothesis.seed(seed * 1_000_003 + batch)(run)
        run = settings(
            max_examples=min(BATCH, cases - result.cases),
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )(run)
        run()
        batch += 1
        if result.cases == before:
            break  # the strategy has nothing new to give
    result.wall_s = time.perf_counter() - start_wall
    result.cpu_s = time.process_time() - start_cpu
    bar.close()
    return result


def record_failure(result: Result, case: Any, exc: Exception, out: Path) -> None:
    result.failures += 1
    frames = traceback.extract_tb(exc.__traceback__)
    place = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    kind = f"{type(exc).__name__} at {place}"
    result.kinds[kind] += 1
    result.examples.setdefault(kind, str(exc)[:160])
    if len(result.saved) >= MAX_SAVED:
        return
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{result.target.name}-{result.failures:04d}"
    suffix, data = result.target.dump(case)
    (stem.parent / (stem.name + suffix)).write_bytes(data)
    report = "".join(traceback.format_exception(exc))
    text = f"{report}\ncase: {case!r:.20000}\n"
    (stem.parent / (stem.name + ".traceback.txt")).write_text(text, encoding="utf-8")
    result.saved.append(stem)


def report(result: Result) -> str:
    target = result.target
    rate = result.cases / result.wall_s if result.wall_s else 0.0
    lines = [
        f"{target.name}: {result.cases:,} cases in {result.wall_s:,.1f} s ({rate:,.0f} cases/s, "
        f"{result.cpu_s:,.1f} s CPU); {target.unit}: {result.accepted:,} accepted, {result.refused:,} "
        f"refused with {target.documented}; other outcomes: {result.failures:,}"
    ]
    for kind, count in result.kinds.most_common(10):
        lines.append(f"    {count:6,} x {kind}: {result.examples[kind]}")
    if len(result.kinds) > 10:
        lines.append(f"    ... and {len(result.kinds) - 10} other kinds")
    if result.saved:
        lines.append(f"    inputs saved as {result.saved[0]}.* ... ({len(result.saved)} saved)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=100_000, help="cases per target (default 100000)")
    parser.add_argument("--target", choices=[*TARGETS, "all"], default="all")
    parser.add_argument("--seed", type=int, default=0, help="makes a run repeatable (default 0)")
    parser.add_argument(
        "--out", type=Path, default=ROOT / ".prognos" / "fuzz", help="where failing inputs are saved"
    )
    parser.add_argument("--hang-s", type=float, default=60.0, help="wall time after which a case hangs")
    args = parser.parse_args(argv)
    if args.cases < 1:
        parser.error("--cases must be at least 1")
    names = list(TARGETS) if args.target == "all" else [args.target]
    print(
        f"fuzz: {args.cases:,} cases per target, seed {args.seed}; Python {platform.python_version()}, "
        f"Hypothesis {hypothesis.__version__}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    results = []
    for name in names:
        result = run_target(TARGETS[name], args.cases, args.seed, args.out, args.hang_s)
        results.append(result)
        print(report(result), flush=True)
    failures = sum(r.failures for r in results)
    print(f"load at the end {os.getloadavg()[0]:.1f}; {failures or 'no'} other outcomes")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
