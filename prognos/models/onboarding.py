"""The onboarding detector: calibrated on rows of normal operation, it flags rows that leave
what normal looked like. Pure: matrices in, scores out; files are prognos/models/csv_io.py's job.

1. Baseline, per sensor (prognos.models.seasonal): a fixed level, or a daily/weekly cycle found
   in the calibration rows, and a drift-aware reference when the level still wanders. The
   residual is the value minus this baseline. Constant sensors are left out, with the reason;
   the calibration is refused only when no sensor is left.
2. Smoothing: the trailing mean of the last `window_rows` residuals (causal: a row's score uses
   that row and earlier rows only).
3. Scorers (prognos.models.detectors), each scaled so that 1.0 is the (1 - false_alarm_rate)
   quantile of its calibration scores; the row's score is the largest of them. The per-sensor
   scorer looks at both the raw and the smoothed residuals, so a spike and a slow shift both
   count.
4. Alarm: a row is flagged when its score is above `margin`, and the alarm holds until the
   score falls to `release` x margin (hysteresis, so one excursion is one alarm, not many).

The defaults (prognos.models.settings) are the settings a leave-one-file-out evaluation chose
on the SKAB benchmark (prognos.models.selection; docs/models.md), not ones tuned on the files
they are scored on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from prognos.edge.features import FloatArray, trailing_mean
from prognos.errors import ConfigError
from prognos.models import detectors
from prognos.models.seasonal import (
    MAX_VARIANCE_RATIO,
    Baseline,
    calibration_residuals,
    fit_baseline,
    residuals,
)
from prognos.models.settings import DEFAULTS, Settings

FORMAT = "prognos-onboarding-detector"
FORMAT_VERSION = 2
MIN_CALIBRATION_ROWS = 200


@dataclass(frozen=True)
class Detector:
    """A calibrated detector. `columns` are the sensors it scores, in the order of `baselines`;
    `scorers` maps each scorer in use to its parameters; `excluded` maps each column left out
    at calibration to the reason."""

    columns: tuple[str, ...]
    baselines: tuple[Baseline, ...]
    settings: Settings
    scorers: Mapping[str, Any]
    calibration_rows: int
    calibration_alarm_rate: float = 0.0
    excluded: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def window_rows(self) -> int:
        return self.settings.window_rows


def fit(
    matrix: FloatArray,
    columns: Sequence[str],
    *,
    seconds: FloatArray | None = None,
    settings: Settings = DEFAULTS,
) -> Detector:
    """Calibrate on `matrix` (rows of normal operation in time order, one column per name in
    `columns`; `seconds` their POSIX times, None for rows one second apart). Raises ConfigError
    when the rows cannot calibrate a detector, saying why."""
    settings.check()
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(columns):
        raise ValueError(f"matrix of shape {matrix.shape} does not match {len(columns)} columns")
    if seconds is not None and len(seconds) != matrix.shape[0]:
        raise ValueError(f"{len(seconds)} timestamps for {matrix.shape[0]} rows")
    rows = matrix.shape[0]
    needed = max(MIN_CALIBRATION_ROWS, 5 * settings.window_rows)
    if rows < needed:
        raise ConfigError(f"{rows} rows of normal operation; calibration needs at least {needed}")
    if not np.isfinite(matrix).all():
        raise ConfigError("the calibration rows contain missing or non-finite values")

    excluded: dict[str, str] = {}
    keep: list[int] = []
    baselines: list[Baseline] = []
    for j, name in enumerate(columns):
        values = matrix[:, j]
        if np.ptp(values) == 0:
            excluded[name] = "constant in the calibration rows: no normal spread to measure against"
            continue
        baseline = fit_baseline(values, seconds, drift_rows=settings.drift_rows)
        residual = calibration_residuals(baseline, values, seconds)
        if detectors.quantile_scale(np.abs(residual - np.median(residual)), settings.false_alarm_rate) <= (
            detectors.TINY
        ):
            excluded[name] = (
                f"its residual is the same in {100 * (1 - settings.false_alarm_rate):g}% or more of "
                "the calibration rows: too few changes to measure a spread"
            )
            continue
        keep.append(j)
        baselines.append(baseline)
    if not settings.follow_drift and any(not b.wanders for b in baselines):
        steady = sum(not b.wanders for b in baselines)
        for j, b in list(zip(keep, baselines, strict=True)):
            if b.wanders:
                excluded[columns[j]] = (
                    f"level wanders in the calibration rows (variance ratio {b.variance_ratio:.1f} > "
                    f"{MAX_VARIANCE_RATIO:g}); left out as {steady} steady sensor(s) remain"
                )
        keep, baselines = (
            [j for j, b in zip(keep, baselines, strict=True) if not b.wanders],
            [b for b in baselines if not b.wanders],
        )
    if not keep:
        raise ConfigError(
            "no sensor can be calibrated: "
            + "; ".join(f"{name}: {why}" for name, why in excluded.items())
            + ". Calibrate on rows where the sensors vary as in normal operation"
        )

    residual = np.column_stack(
        [calibration_residuals(b, matrix[:, j], seconds) for b, j in zip(baselines, keep, strict=True)]
    )
    raw, smoothed = _inputs(residual, settings.window_rows)
    notes: list[str] = []
    chosen = [name for name in settings.scorers if name not in detectors.MULTIVARIATE or len(keep) > 1]
    if len(chosen) < len(settings.scorers):
        notes.append("multivariate scorers need two sensors or more; one sensor is scored alone")
    if not chosen:
        chosen = ["sensor"]
    params: dict[str, Any] = {}
    for name in chosen:
        if name == "sensor":
            params[name] = {
                "raw": detectors.fit_sensor(raw, settings.false_alarm_rate),
                "smoothed": detectors.fit_sensor(smoothed, settings.false_alarm_rate),
            }
        elif name == "cusum":
            params[name] = detectors.fit_cusum(raw, settings.false_alarm_rate)
        else:
            usable = smoothed[settings.window_rows - 1 :]
            params[name] = detectors.FIT[name](usable, settings.false_alarm_rate)
    detector = Detector(
        columns=tuple(columns[j] for j in keep),
        baselines=tuple(baselines),
        settings=settings,
        scorers=params,
        calibration_rows=rows,
        excluded=excluded,
        notes=tuple(notes),
    )
    calibration_flags = flags(detector, combine(scorer_scores(detector, raw, smoothed)))
    rate = float(calibration_flags[settings.window_rows - 1 :].mean())
    return replace(detector, calibration_alarm_rate=rate)


def residual_matrix(detector: Detector, matrix: FloatArray, seconds: FloatArray | None = None) -> FloatArray:
    """Residuals of rows that follow (or come later than) the calibration rows."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(detector.columns):
        raise ValueError(f"matrix of shape {matrix.shape} does not match {len(detector.columns)} columns")
    if seconds is not None and len(seconds) != matrix.shape[0]:
        raise ValueError(f"{len(seconds)} timestamps for {matrix.shape[0]} rows")
    if matrix.shape[0] == 0:
        return np.zeros((0, len(detector.columns)))
    return np.column_stack([residuals(b, matrix[:, j], seconds) for j, b in enumerate(detector.baselines)])


def scorer_scores(detector: Detector, raw: FloatArray, smoothed: FloatArray) -> dict[str, FloatArray]:
    """Each scorer's scores of residual rows (`raw`) and their trailing means (`smoothed`)."""
    out: dict[str, FloatArray] = {}
    for name, params in detector.scorers.items():
        if name == "sensor":
            out[name] = np.fmax(
                detectors.score_sensor(params["raw"], raw),
                detectors.score_sensor(params["smoothed"], smoothed),
            )
        elif name == "cusum":
            out[name] = detectors.score_cusum(params, raw)
        else:
            finite = np.all(np.isfinite(smoothed), axis=1)
            scores = np.full(smoothed.shape[0], np.nan)
            if finite.any():
                scores[finite] = detectors.SCORE[name](params, smoothed[finite])
            out[name] = scores
    return out


def combine(scores: Mapping[str, FloatArray]) -> FloatArray:
    """The row's score: the largest of the scorers' (NaN where none has a score)."""
    stacked = np.vstack(list(scores.values()))
    with np.errstate(invalid="ignore"):
        finite = np.where(np.isnan(stacked), -np.inf, stacked)
        best = finite.max(axis=0)
    result: FloatArray = np.where(np.isneginf(best), np.nan, best)
    return result


def score(detector: Detector, matrix: FloatArray, seconds: FloatArray | None = None) -> FloatArray:
    """Score of each row of `matrix` (columns in the order of `detector.columns`, rows in time
    order; `seconds` their POSIX times, needed when a sensor has a seasonal baseline). The first
    `window_rows - 1` rows, which have no full window yet, score NaN."""
    if np.asarray(matrix).shape[0] == 0:
        return np.zeros(0)
    return combine(score_parts(detector, matrix, seconds))


def score_parts(
    detector: Detector, matrix: FloatArray, seconds: FloatArray | None = None
) -> dict[str, FloatArray]:
    """Each scorer's scores of the rows of `matrix`, as `score` takes them."""
    raw, smoothed = _inputs(residual_matrix(detector, matrix, seconds), detector.window_rows)
    parts = scorer_scores(detector, raw, smoothed)
    for scores in parts.values():
        scores[: detector.window_rows - 1] = np.nan
    return parts


def flags(detector: Detector, scores: FloatArray) -> npt.NDArray[np.int8]:
    """1 from a score above the margin until the score falls to release x margin, else 0 (NaN
    scores are never flagged)."""
    margin = detector.settings.margin
    return detectors.hysteresis(scores, margin, detector.settings.release * margin)


def _inputs(residual: FloatArray, window_rows: int) -> tuple[FloatArray, FloatArray]:
    smoothed = trailing_mean(residual.T, window_rows).T
    smoothed[: window_rows - 1] = np.nan
    return residual, smoothed


# files ----------------------------------------------------------------------------------------


def to_dict(detector: Detector) -> dict[str, Any]:
    """The detector as plain JSON-ready data, tagged with FORMAT and FORMAT_VERSION."""
    s = detector.settings
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "columns": list(detector.columns),
        "settings": {
            "scorers": list(s.scorers),
            "window_rows": s.window_rows,
            "false_alarm_rate": s.false_alarm_rate,
            "margin": s.margin,
            "release": s.release,
            "drift_rows": s.drift_rows,
            "follow_drift": s.follow_drift,
        },
        "baselines": [
            {
                "level": b.level,
                "step_s": b.step_s,
                "origin_s": b.origin_s,
                "profile": list(b.profile),
                "drift_rows": b.drift_rows,
                "reference": b.reference,
                "variance_ratio": b.variance_ratio,
            }
            for b in detector.baselines
        ],
        "scorers": _plain(detector.scorers),
        "calibration_rows": detector.calibration_rows,
        "calibration_alarm_rate": detector.calibration_alarm_rate,
        "excluded": dict(detector.excluded),
        "notes": list(detector.notes),
    }


def from_dict(data: object) -> Detector:
    """The detector `to_dict` wrote; ConfigError saying what is wrong for anything else."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"not a {FORMAT} model")
    if data.get("version") != FORMAT_VERSION:
        version = data.get("version")
        raise ConfigError(
            f"model format version {version!r}; this Prognos reads {FORMAT_VERSION}: "
            "calibrate again with `prognos models fit`"
        )
    try:
        columns = tuple(_strings(data["columns"]))
        raw_settings = data["settings"]
        settings = Settings(
            scorers=tuple(_strings(raw_settings["scorers"])),
            window_rows=int(raw_settings["window_rows"]),
            false_alarm_rate=float(raw_settings["false_alarm_rate"]),
            margin=float(raw_settings["margin"]),
            release=float(raw_settings["release"]),
            drift_rows=int(raw_settings["drift_rows"]),
            follow_drift=bool(raw_settings["follow_drift"]),
        )
        baselines = tuple(
            Baseline(
                level=_finite(b["level"]),
                step_s=_finite(b["step_s"]),
                origin_s=_finite(b["origin_s"]),
                profile=tuple(_floats(b["profile"])),
                drift_rows=int(b["drift_rows"]),
                reference=_finite(b["reference"]),
                variance_ratio=_finite(b["variance_ratio"]),
            )
            for b in data["baselines"]
        )
        scorers = data["scorers"]
        if not isinstance(scorers, dict) or not scorers:
            raise TypeError("expected scorers by name")
        detector = Detector(
            columns=columns,
            baselines=baselines,
            settings=settings,
            scorers=scorers,
            calibration_rows=int(data["calibration_rows"]),
            calibration_alarm_rate=float(data["calibration_alarm_rate"]),
            excluded={str(k): str(v) for k, v in dict(data.get("excluded", {})).items()},
            notes=tuple(str(n) for n in data.get("notes", [])),
        )
    except KeyError as exc:
        raise ConfigError(f"the model has no {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the model has a malformed field: {exc}") from exc
    settings.check()
    unknown = [name for name in detector.scorers if name not in detectors.SCORERS]
    if unknown:
        raise ConfigError(f"the model has an unknown scorer {unknown[0]!r}")
    if not columns or len(columns) != len(baselines):
        raise ConfigError("the model's columns and baselines differ in length or are empty")
    if any(b.step_s <= 0 for b in baselines):
        raise ConfigError("the model has a baseline whose sampling step is not positive")
    try:
        score(
            detector,
            np.zeros((settings.window_rows + 1, len(columns))),
            np.arange(settings.window_rows + 1.0),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ConfigError(
            f"the model's scorer parameters do not fit its {len(columns)} columns: {exc}"
        ) from exc
    return detector


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def _strings(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise TypeError("expected a list of names")
    return value


def _finite(value: object) -> float:
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def _floats(value: object) -> list[float]:
    if not isinstance(value, list):
        raise TypeError("expected a list of numbers")
    return [_finite(x) for x in value]
