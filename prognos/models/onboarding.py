"""The onboarding detector: calibrated on rows of normal operation, it flags rows whose recent
level leaves the normal range. Pure: matrices in, scores out; files are prognos/models/csv_io.py's job.

Method, per sensor column:
1. Steadiness check. The calibration rows are cut into STEADINESS_BLOCKS consecutive blocks. If
   the variance of the block means is more than MAX_VARIANCE_RATIO times what independent noise
   would give, the sensor's level wanders (a temperature still warming up) and the calibration
   does not say what its normal level is: the sensor is left out, with the reason. Constant
   columns are left out too.
2. Smoothing: the trailing mean of the last `window_rows` rows (prognos.edge.features.trailing_mean,
   causal: a row's score uses that row and earlier rows only).
3. Standardisation: centre = median, scale = standard deviation of the smoothed calibration
   series. The standard deviation of the smoothed series, not of the raw one, is what tells how
   far a short-term mean moves in normal operation, autocorrelation and quantisation included.
4. Score of a row = the largest |standardised smoothed value| over the sensors.
5. Threshold = margin x the (1 - false_alarm_rate) quantile of the calibration scores. The
   margin covers what a short in-sample calibration misses (slow drift, the quantile's own
   sampling error); on data like the calibration rows, fewer than `false_alarm_rate` of the
   rows are flagged.
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

FORMAT = "prognos-onboarding-detector"
FORMAT_VERSION = 1
DEFAULT_WINDOW_ROWS = 15
DEFAULT_FALSE_ALARM_RATE = 0.01
DEFAULT_MARGIN = 1.5
STEADINESS_BLOCKS = 10
MAX_VARIANCE_RATIO = 10.0
MIN_CALIBRATION_ROWS = 200


@dataclass(frozen=True)
class Detector:
    """A calibrated detector. `columns` are the sensors it scores, in the order of `center` and
    `scale`; `excluded` maps each column left out at calibration to the reason."""

    columns: tuple[str, ...]
    center: tuple[float, ...]
    scale: tuple[float, ...]
    threshold: float
    window_rows: int
    false_alarm_rate: float
    margin: float
    calibration_rows: int
    calibration_alarm_rate: float
    excluded: Mapping[str, str] = field(default_factory=dict)


def fit(
    matrix: FloatArray,
    columns: Sequence[str],
    *,
    window_rows: int = DEFAULT_WINDOW_ROWS,
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
    margin: float = DEFAULT_MARGIN,
) -> Detector:
    """Calibrate on `matrix` (rows of normal operation in time order, one column per name in
    `columns`). Raises ConfigError when the rows cannot calibrate a detector."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(columns):
        raise ValueError(f"matrix of shape {matrix.shape} does not match {len(columns)} columns")
    if not 0 < false_alarm_rate < 0.5:
        raise ConfigError(f"the false-alarm rate must be between 0 and 0.5, got {false_alarm_rate}")
    if margin < 1:
        raise ConfigError(f"the margin must be at least 1, got {margin}")
    if window_rows < 1:
        raise ConfigError(f"the window must be at least 1 row, got {window_rows}")
    rows = matrix.shape[0]
    needed = max(MIN_CALIBRATION_ROWS, 5 * window_rows)
    if rows < needed:
        raise ConfigError(f"{rows} rows of normal operation; calibration needs at least {needed}")
    if not np.isfinite(matrix).all():
        raise ConfigError("the calibration rows contain missing or non-finite values")

    ratios = variance_ratio(matrix, STEADINESS_BLOCKS)
    excluded: dict[str, str] = {}
    keep: list[int] = []
    for j, name in enumerate(columns):
        if np.ptp(matrix[:, j]) == 0:
            excluded[name] = "constant in the calibration rows"
        elif ratios[j] > MAX_VARIANCE_RATIO:
            excluded[name] = (
                f"level not steady in the calibration rows (variance ratio {ratios[j]:.1f} "
                f"> {MAX_VARIANCE_RATIO:g})"
            )
        else:
            keep.append(j)
    if not keep:
        raise ConfigError(
            "no column has a steady level in the calibration rows: "
            + "; ".join(f"{name}: {why}" for name, why in excluded.items())
        )

    smoothed = _smooth(matrix[:, keep], window_rows)[window_rows - 1 :]
    center = np.median(smoothed, axis=0)
    scale = smoothed.std(axis=0)
    scale = np.where(scale > 0, scale, np.abs(center) * 1e-9 + 1e-12)
    unthresholded = Detector(
        columns=tuple(columns[j] for j in keep),
        center=tuple(float(x) for x in center),
        scale=tuple(float(x) for x in scale),
        threshold=math.inf,
        window_rows=window_rows,
        false_alarm_rate=false_alarm_rate,
        margin=margin,
        calibration_rows=rows,
        calibration_alarm_rate=0.0,
        excluded=excluded,
    )
    calibration_scores = score(unthresholded, matrix[:, keep])[window_rows - 1 :]
    threshold = calibrate_threshold(calibration_scores, false_alarm_rate, margin)
    alarm_rate = float(np.mean(calibration_scores > threshold))
    return replace(unthresholded, threshold=threshold, calibration_alarm_rate=alarm_rate)


def score(detector: Detector, matrix: FloatArray) -> FloatArray:
    """Score of each row of `matrix` (columns in the order of `detector.columns`): the largest
    |standardised trailing mean| over the sensors. The first `window_rows - 1` rows, which
    have no full window yet, score NaN."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(detector.columns):
        raise ValueError(f"matrix of shape {matrix.shape} does not match {len(detector.columns)} columns")
    if matrix.shape[0] == 0:
        return np.zeros(0)
    z = (_smooth(matrix, detector.window_rows) - np.array(detector.center)) / np.array(detector.scale)
    with np.errstate(invalid="ignore"):
        scores: FloatArray = np.max(np.abs(z), axis=1)
    scores[: detector.window_rows - 1] = np.nan
    return scores


def flags(detector: Detector, scores: FloatArray) -> npt.NDArray[np.int8]:
    """1 where a score is above the threshold, else 0 (NaN scores are never flagged)."""
    with np.errstate(invalid="ignore"):
        return (np.asarray(scores) > detector.threshold).astype(np.int8)


def calibrate_threshold(scores: FloatArray, false_alarm_rate: float, margin: float) -> float:
    """`margin` times the (1 - false_alarm_rate) quantile of the finite calibration `scores`."""
    finite = np.asarray(scores, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        raise ConfigError("no calibration scores to set a threshold from")
    return float(margin * np.quantile(finite, 1.0 - false_alarm_rate))


def variance_ratio(matrix: FloatArray, blocks: int) -> FloatArray:
    """Per column: variance of the means of `blocks` consecutive blocks of rows, divided by
    what independent noise of the column's variance would give. About 1 for a steady level with
    noise; up to the block length for a level that wanders. NaN for a constant column."""
    matrix = np.asarray(matrix, dtype=np.float64)
    length = matrix.shape[0] // blocks
    if length < 2:
        raise ValueError(f"{matrix.shape[0]} rows are too few for {blocks} blocks")
    means = matrix[: blocks * length].reshape(blocks, length, -1).mean(axis=1)
    variance = matrix.var(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        result: FloatArray = means.var(axis=0) * length / variance
    return result


def _smooth(matrix: FloatArray, window_rows: int) -> FloatArray:
    return trailing_mean(matrix.T, window_rows).T


def to_dict(detector: Detector) -> dict[str, Any]:
    """The detector as plain JSON-ready data, tagged with FORMAT and FORMAT_VERSION."""
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "columns": list(detector.columns),
        "center": list(detector.center),
        "scale": list(detector.scale),
        "threshold": detector.threshold,
        "window_rows": detector.window_rows,
        "false_alarm_rate": detector.false_alarm_rate,
        "margin": detector.margin,
        "calibration_rows": detector.calibration_rows,
        "calibration_alarm_rate": detector.calibration_alarm_rate,
        "excluded": dict(detector.excluded),
    }


def from_dict(data: object) -> Detector:
    """The detector `to_dict` wrote; ConfigError saying what is wrong for anything else."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"not a {FORMAT} model")
    if data.get("version") != FORMAT_VERSION:
        version = data.get("version")
        raise ConfigError(f"model format version {version!r}; this Prognos reads {FORMAT_VERSION}")
    try:
        columns = tuple(_strings(data["columns"]))
        center = tuple(_floats(data["center"]))
        scale = tuple(_floats(data["scale"]))
        excluded = data.get("excluded", {})
        detector = Detector(
            columns=columns,
            center=center,
            scale=scale,
            threshold=float(data["threshold"]),
            window_rows=int(data["window_rows"]),
            false_alarm_rate=float(data["false_alarm_rate"]),
            margin=float(data["margin"]),
            calibration_rows=int(data["calibration_rows"]),
            calibration_alarm_rate=float(data["calibration_alarm_rate"]),
            excluded={str(k): str(v) for k, v in dict(excluded).items()},
        )
    except KeyError as exc:
        raise ConfigError(f"the model has no {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the model has a malformed field: {exc}") from exc
    if not columns or not len(columns) == len(center) == len(scale):
        raise ConfigError("the model's columns, center and scale differ in length or are empty")
    if detector.window_rows < 1 or not all(s > 0 for s in scale) or math.isnan(detector.threshold):
        raise ConfigError("the model has a window below 1 row, a scale that is not positive or no threshold")
    return detector


def _strings(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise TypeError("expected a list of names")
    return value


def _floats(value: object) -> list[float]:
    if not isinstance(value, list) or isinstance(value, str):
        raise TypeError("expected a list of numbers")
    numbers = [float(x) for x in value]
    if not all(math.isfinite(x) for x in numbers):
        raise ValueError("expected finite numbers")
    return numbers
