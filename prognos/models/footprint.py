"""What a calibrated detector costs on a gateway, measured: the numbers it keeps, the state a
running detector holds, the time to calibrate and the time per scored row.

State of a running detector: the last `window_rows` residual rows (the trailing mean), and per
sensor one drift reference, and two sums for CUSUM. Parameters: every number of the baselines
and scorers. Both are float64 here, 8 bytes a number.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, replace
from typing import Any

from prognos.edge.features import FloatArray
from prognos.models.onboarding import Detector, fit, score, to_dict
from prognos.models.settings import Settings

BYTES_PER_NUMBER = 8


@dataclass(frozen=True)
class Footprint:
    scorers: tuple[str, ...]
    sensors: int
    parameters: int  # numbers kept in the model
    state: int  # numbers a running detector holds between rows
    model_bytes: int  # model.json size
    fit_ms: float
    batch_us_per_row: float  # scoring many rows in one call, per row
    row_us: float  # one call that scores the newest row from the last window_rows rows

    @property
    def memory_bytes(self) -> int:
        return BYTES_PER_NUMBER * (self.parameters + self.state)


def count_numbers(value: Any) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return 1
    if isinstance(value, dict):
        return sum(count_numbers(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(count_numbers(v) for v in value)
    return 0


def state_numbers(detector: Detector) -> int:
    sensors = len(detector.columns)
    numbers = detector.window_rows * sensors
    numbers += sum(1 for b in detector.baselines if b.drift_rows)
    if "cusum" in detector.scorers:
        numbers += 2 * sensors
    return numbers


def measure(
    calibration: FloatArray,
    rows: FloatArray,
    columns: tuple[str, ...],
    settings: Settings,
    *,
    seconds: FloatArray | None = None,
    row_seconds: FloatArray | None = None,
    repeats: int = 5,
) -> Footprint:
    """Calibrate on `calibration` and score `rows` with `settings`, timing both (medians of
    `repeats` runs; the one-row call of 20 x `repeats` runs)."""
    fit_times = []
    detector = None
    for _ in range(repeats):
        start = time.perf_counter()
        detector = fit(calibration, columns, seconds=seconds, settings=settings)
        fit_times.append(time.perf_counter() - start)
    assert detector is not None
    used = [columns.index(c) for c in detector.columns]
    matrix = rows[:, used]
    batch = []
    for _ in range(repeats):
        start = time.perf_counter()
        score(detector, matrix, row_seconds)
        batch.append(time.perf_counter() - start)
    window = detector.window_rows
    last = matrix[-window:]
    last_seconds = None if row_seconds is None else row_seconds[-window:]
    single = []
    for _ in range(20 * repeats):
        start = time.perf_counter()
        score(detector, last, last_seconds)
        single.append(time.perf_counter() - start)
    data = to_dict(detector)
    return Footprint(
        scorers=tuple(detector.scorers),
        sensors=len(detector.columns),
        parameters=count_numbers(data["baselines"]) + count_numbers(data["scorers"]),
        state=state_numbers(detector),
        model_bytes=len(json.dumps(data, indent=2)),
        fit_ms=1e3 * statistics.median(fit_times),
        batch_us_per_row=1e6 * statistics.median(batch) / max(len(matrix), 1),
        row_us=1e6 * statistics.median(single),
    )


def per_scorer(
    calibration: FloatArray,
    rows: FloatArray,
    columns: tuple[str, ...],
    settings: Settings,
    scorers: tuple[str, ...],
    *,
    seconds: FloatArray | None = None,
    row_seconds: FloatArray | None = None,
) -> list[Footprint]:
    """`measure` for each scorer alone, with the other settings of `settings`."""
    return [
        measure(
            calibration,
            rows,
            columns,
            replace(settings, scorers=(name,)),
            seconds=seconds,
            row_seconds=row_seconds,
        )
        for name in scorers
    ]
