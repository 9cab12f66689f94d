"""Scorers of residual rows, each calibrated so that 1.0 is the (1 - rate) quantile of its
scores on the calibration rows, and the alarm logic over their scores. Pure numpy: matrices
in, scores out; small enough to fit and run per asset on a gateway.

Every scorer has `fit_*(calibration, rate) -> parameters` and `score_*(parameters, rows) ->
scores`, where rows are residuals (a sensor's value minus its normal, prognos.models.seasonal)
after the trailing mean the caller chose. Scores are NaN where the input row has a NaN.

- sensor: per sensor, |residual - median| over its calibration quantile; the row's score is
  the largest over the sensors (the sensor that moved most decides, and explains the alarm).
- cusum: per sensor, a two-sided CUSUM of the standardised raw residual with allowance
  CUSUM_ALLOWANCE, capped at CUSUM_CAP calibration quantiles so that it falls back below the
  threshold soon after a shift ends. It accumulates small persistent shifts that a trailing
  mean of a few rows does not separate from noise.
- pca: Hotelling's T-squared in the principal subspace that holds PCA_VARIANCE of the
  calibration variance, and Q (the squared residual outside it): a broken correlation between
  sensors raises Q even when each sensor stays in its own range.
- mset: a similarity model in the manner of MSET: each row is estimated as a kernel-weighted
  combination of MSET_MEMORY_ROWS remembered calibration rows; the score is the estimation
  error.
- autoencoder: a small network (sensors -> half as many tanh units, at least 2 -> sensors)
  trained on the calibration rows; the score is the reconstruction error.

MSET and the autoencoder learn from the first 1 - HOLDOUT of the calibration rows and take
their scale from the rest, which they did not learn from.

The multivariate scores are distances (square roots of T-squared, Q and the squared errors), so
that a margin means about the same for every scorer: twice the calibration quantile is twice
as far out.

The multivariate scorers (pca, mset, autoencoder) need at least two sensors.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from prognos.edge.features import FloatArray
from prognos.models.settings import MULTIVARIATE, SCORERS

__all__ = ["MULTIVARIATE", "SCORERS"]

Params = dict[str, Any]

CUSUM_ALLOWANCE = 1.0
CUSUM_CAP = 5.0
PCA_VARIANCE = 0.9
MSET_MEMORY_ROWS = 128
MSET_BANDWIDTH = 0.5  # of the median distance between remembered rows
AUTOENCODER_EPOCHS = 200
AUTOENCODER_LEARNING_RATE = 0.03
HOLDOUT = 0.25
AUTOENCODER_SEED = 0
TINY = 1e-12


def quantile_scale(scores: FloatArray, rate: float) -> float:
    """The (1 - rate) quantile of the finite `scores`; a tiny positive number when it is 0."""
    finite = np.asarray(scores, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 1.0
    return max(float(np.quantile(finite, 1.0 - rate)), TINY)


# sensor -------------------------------------------------------------------------------------


def fit_sensor(calibration: FloatArray, rate: float) -> Params:
    center = np.nanmedian(calibration, axis=0)
    deviation = np.abs(calibration - center)
    scale = [quantile_scale(deviation[:, j], rate) for j in range(calibration.shape[1])]
    return {"center": center.tolist(), "scale": scale}


def sensor_deviations(params: Mapping[str, Any], rows: FloatArray) -> FloatArray:
    """Per sensor, |row - center| / scale: 1.0 is the calibration quantile."""
    result: FloatArray = np.abs(rows - np.asarray(params["center"])) / np.asarray(params["scale"])
    return result


def score_sensor(params: Mapping[str, Any], rows: FloatArray) -> FloatArray:
    return _nanmax(sensor_deviations(params, rows), axis=1)


# cusum --------------------------------------------------------------------------------------


def cusum(z: FloatArray, allowance: float, cap: FloatArray | float = math.inf) -> FloatArray:
    """Two-sided CUSUM of each column of `z` (standardised values): per row the larger of
    S+ = max(0, S+ + z - allowance) and S- = max(0, S- - z - allowance), each held at or below
    `cap`. A NaN row leaves the sums unchanged and scores NaN."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 1:
        return cusum(z[:, None], allowance, cap)[:, 0]
    if np.all(np.isinf(cap)) and np.isfinite(z).all():
        return np.maximum(_lindley(z - allowance), _lindley(-z - allowance))
    limits = np.broadcast_to(np.asarray(cap, dtype=np.float64), (z.shape[1],)).tolist()
    out = np.empty_like(z)
    for j, limit in enumerate(limits):
        upper = lower = 0.0
        column = z[:, j].tolist()
        sums = [math.nan] * len(column)
        for i, value in enumerate(column):
            if value == value:  # not NaN
                upper += value - allowance
                upper = 0.0 if upper < 0.0 else limit if upper > limit else upper
                lower -= value + allowance
                lower = 0.0 if lower < 0.0 else limit if lower > limit else lower
                sums[i] = upper if upper > lower else lower
        out[:, j] = sums
    return out


def _lindley(steps: FloatArray) -> FloatArray:
    """S_t = max(0, S_(t-1) + step_t) from S_0 = 0, per column, without a loop."""
    total = np.cumsum(steps, axis=0)
    result: FloatArray = total - np.minimum(np.minimum.accumulate(total, axis=0), 0.0)
    return result


def page_hinkley(values: FloatArray, allowance: float) -> FloatArray:
    """Page-Hinkley statistic of a 1-D series for an upward shift of its mean: the cumulative
    sum of (x - running mean - allowance) above its running minimum. Its downward twin is
    page_hinkley(-values, allowance)."""
    x = np.asarray(values, dtype=np.float64)
    means = np.cumsum(x) / np.arange(1, x.size + 1)
    cumulative = np.cumsum(x - means - allowance)
    result: FloatArray = cumulative - np.minimum.accumulate(np.minimum(cumulative, 0.0))
    return result


def fit_cusum(calibration: FloatArray, rate: float) -> Params:
    center = np.nanmedian(calibration, axis=0)
    spread = np.nanstd(calibration, axis=0)
    spread = np.where(spread > 0, spread, 1.0)
    sums = cusum((calibration - center) / spread, CUSUM_ALLOWANCE)
    scale = [quantile_scale(sums[:, j], rate) for j in range(calibration.shape[1])]
    return {"center": center.tolist(), "spread": spread.tolist(), "scale": scale}


def score_cusum(params: Mapping[str, Any], rows: FloatArray) -> FloatArray:
    scale = np.asarray(params["scale"])
    z = (rows - np.asarray(params["center"])) / np.asarray(params["spread"])
    return _nanmax(cusum(z, CUSUM_ALLOWANCE, CUSUM_CAP * scale) / scale, axis=1)


# pca ----------------------------------------------------------------------------------------


def fit_pca(calibration: FloatArray, rate: float) -> Params:
    mean, spread = _standardiser(calibration)
    z = (calibration - mean) / spread
    _, singular, vt = np.linalg.svd(z, full_matrices=False)
    variance = singular**2 / max(z.shape[0] - 1, 1)
    share = np.cumsum(variance) / max(variance.sum(), TINY)
    components = int(min(np.searchsorted(share, PCA_VARIANCE) + 1, z.shape[1] - 1))
    params: Params = {
        "mean": mean.tolist(),
        "spread": spread.tolist(),
        "components": vt[:components].tolist(),
        "variance": np.maximum(variance[:components], TINY).tolist(),
        "t2_scale": 1.0,
        "q_scale": 1.0,
    }
    t2, q = _pca_parts(params, calibration)
    params["t2_scale"] = quantile_scale(t2, rate)
    params["q_scale"] = quantile_scale(q, rate)
    return params


def _pca_parts(params: Mapping[str, Any], rows: FloatArray) -> tuple[FloatArray, FloatArray]:
    z = (rows - np.asarray(params["mean"])) / np.asarray(params["spread"])
    components = np.asarray(params["components"])
    projected = z @ components.T
    t2 = np.sum(projected**2 / np.asarray(params["variance"]), axis=1)
    q = np.sum((z - projected @ components) ** 2, axis=1)
    return np.sqrt(t2), np.sqrt(q)


def score_pca(params: Mapping[str, Any], rows: FloatArray) -> FloatArray:
    t2, q = _pca_parts(params, rows)
    result: FloatArray = np.maximum(t2 / params["t2_scale"], q / params["q_scale"])
    return result


# mset ---------------------------------------------------------------------------------------


def fit_mset(calibration: FloatArray, rate: float) -> Params:
    """The memory comes from the first 1 - HOLDOUT of the rows; the scale is set on the rest,
    which it does not hold (a remembered row is estimated exactly)."""
    rows = calibration[np.all(np.isfinite(calibration), axis=1)]
    mean, spread = _standardiser(rows)
    z = (rows - mean) / spread
    cut = _holdout_cut(z.shape[0])
    learn = z[:cut]
    # every sensor's lowest and highest row, then rows evenly spread in time
    chosen = set(np.argmin(learn, axis=0).tolist()) | set(np.argmax(learn, axis=0).tolist())
    spaced = np.linspace(0, cut - 1, max(MSET_MEMORY_ROWS - len(chosen), 1)).round().astype(int)
    memory = learn[sorted(chosen | set(spaced.tolist()))]
    distances = _squared_distances(memory, memory)
    typical = float(np.sqrt(np.median(distances[distances > 0]))) if np.any(distances > 0) else 1.0
    params: Params = {
        "mean": mean.tolist(),
        "spread": spread.tolist(),
        "memory": memory.tolist(),
        "bandwidth": MSET_BANDWIDTH * typical,
        "scale": 1.0,
    }
    params["scale"] = quantile_scale(_mset_error(params, rows[cut:] if cut < rows.shape[0] else rows), rate)
    return params


def _mset_error(params: Mapping[str, Any], rows: FloatArray) -> FloatArray:
    z = (rows - np.asarray(params["mean"])) / np.asarray(params["spread"])
    memory = np.asarray(params["memory"])
    bandwidth = float(params["bandwidth"])
    gram = np.exp(-_squared_distances(memory, memory) / (2 * bandwidth**2))
    similarity = np.exp(-_squared_distances(z, memory) / (2 * bandwidth**2))
    weights = np.linalg.solve(gram + 1e-3 * np.eye(memory.shape[0]), similarity.T).T
    total = weights.sum(axis=1, keepdims=True)
    weights = weights / np.where(np.abs(total) > TINY, total, 1.0)
    result: FloatArray = np.sqrt(np.sum((z - weights @ memory) ** 2, axis=1))
    return result


def score_mset(params: Mapping[str, Any], rows: FloatArray) -> FloatArray:
    return _mset_error(params, rows) / float(params["scale"])


# autoencoder --------------------------------------------------------------------------------


def fit_autoencoder(calibration: FloatArray, rate: float) -> Params:
    """Trained on the first 1 - HOLDOUT of the rows; the scale is set on the rest, which it did
    not see."""
    rows = calibration[np.all(np.isfinite(calibration), axis=1)]
    mean, spread = _standardiser(rows)
    z = (rows - mean) / spread
    cut = _holdout_cut(z.shape[0])
    sensors = z.shape[1]
    sizes = [sensors, min(max(sensors // 2, 2), sensors - 1) if sensors > 1 else 1, sensors]
    weights = _train(z[:cut], sizes)
    params: Params = {
        "mean": mean.tolist(),
        "spread": spread.tolist(),
        "layers": [{"w": w.tolist(), "b": b.tolist()} for w, b in weights],
        "scale": 1.0,
    }
    held_out = rows[cut:] if cut < rows.shape[0] else rows
    params["scale"] = quantile_scale(_reconstruction_error(params, held_out), rate)
    return params


def _forward(layers: list[tuple[FloatArray, FloatArray]], z: FloatArray) -> list[FloatArray]:
    activations = [z]
    for i, (w, b) in enumerate(layers):
        out = activations[-1] @ w + b
        activations.append(out if i == len(layers) - 1 else np.tanh(out))
    return activations


def _train(z: FloatArray, sizes: list[int]) -> list[tuple[FloatArray, FloatArray]]:
    rng = np.random.default_rng(AUTOENCODER_SEED)
    layers = [(rng.normal(size=(a, b)) * np.sqrt(1.0 / a), np.zeros(b)) for a, b in itertools.pairwise(sizes)]
    moments = [(np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)) for w, b in layers]
    beta1, beta2 = 0.9, 0.999
    for epoch in range(1, AUTOENCODER_EPOCHS + 1):
        activations = _forward(layers, z)
        delta = 2 * (activations[-1] - z) / z.size
        for i in range(len(layers) - 1, -1, -1):
            w, b = layers[i]
            grad_w = activations[i].T @ delta
            grad_b = delta.sum(axis=0)
            if i > 0:
                delta = (delta @ w.T) * (1 - activations[i] ** 2)
            mw, vw, mb, vb = moments[i]
            mw = beta1 * mw + (1 - beta1) * grad_w
            vw = beta2 * vw + (1 - beta2) * grad_w**2
            mb = beta1 * mb + (1 - beta1) * grad_b
            vb = beta2 * vb + (1 - beta2) * grad_b**2
            moments[i] = (mw, vw, mb, vb)
            correction1, correction2 = 1 - beta1**epoch, 1 - beta2**epoch
            step = AUTOENCODER_LEARNING_RATE / correction1
            w = w - step * mw / (np.sqrt(vw / correction2) + 1e-8)
            b = b - step * mb / (np.sqrt(vb / correction2) + 1e-8)
            layers[i] = (w, b)
    return layers


def _reconstruction_error(params: Mapping[str, Any], rows: FloatArray) -> FloatArray:
    z = (rows - np.asarray(params["mean"])) / np.asarray(params["spread"])
    layers = [(np.asarray(layer["w"]), np.asarray(layer["b"])) for layer in params["layers"]]
    result: FloatArray = np.sqrt(np.mean((_forward(layers, z)[-1] - z) ** 2, axis=1))
    return result


def score_autoencoder(params: Mapping[str, Any], rows: FloatArray) -> FloatArray:
    return _reconstruction_error(params, rows) / float(params["scale"])


# registry -----------------------------------------------------------------------------------

FIT = {
    "sensor": fit_sensor,
    "cusum": fit_cusum,
    "pca": fit_pca,
    "mset": fit_mset,
    "autoencoder": fit_autoencoder,
}
SCORE = {
    "sensor": score_sensor,
    "cusum": score_cusum,
    "pca": score_pca,
    "mset": score_mset,
    "autoencoder": score_autoencoder,
}


# alarms -------------------------------------------------------------------------------------


def hysteresis(scores: FloatArray, on: float, off: float) -> npt.NDArray[np.int8]:
    """1 from a row whose score is above `on` until the first later row whose score is at or
    below `off` (off <= on), else 0. NaN scores are never flagged and end an alarm."""
    flags: npt.NDArray[np.int8] = hysteresis_many(scores, np.array([on]), np.array([off]))[0]
    return flags


def hysteresis_many(scores: FloatArray, on: FloatArray, off: FloatArray) -> npt.NDArray[np.int8]:
    """`hysteresis` for several (on, off) pairs at once: one row of flags per pair."""
    s = np.asarray(scores, dtype=np.float64)[None, :]
    on = np.asarray(on, dtype=np.float64)[:, None]
    off = np.asarray(off, dtype=np.float64)[:, None]
    with np.errstate(invalid="ignore"):
        start = s > on
        stop = ~(s > off)
    event = np.where(start, 1, np.where(stop, 0, -1))
    index = np.where(event >= 0, np.arange(s.shape[1]), -1)
    last = np.maximum.accumulate(index, axis=1) if s.shape[1] else index
    state = np.where(last >= 0, np.take_along_axis(event, np.maximum(last, 0), axis=1), 0)
    flags: npt.NDArray[np.int8] = (state == 1).astype(np.int8)
    return flags


def onsets(flags: npt.NDArray[np.integer]) -> npt.NDArray[np.intp]:
    """Indices of the rows where an alarm starts (a flag after a row without one)."""
    f = np.asarray(flags) == 1
    return np.flatnonzero(f & ~np.concatenate([[False], f[:-1]]))


# helpers ------------------------------------------------------------------------------------


def _holdout_cut(rows: int) -> int:
    return max(round(rows * (1 - HOLDOUT)), 1)


def _standardiser(rows: FloatArray) -> tuple[FloatArray, FloatArray]:
    mean = np.nanmean(rows, axis=0)
    spread = np.nanstd(rows, axis=0)
    return mean, np.where(spread > 0, spread, 1.0)


def _squared_distances(a: FloatArray, b: FloatArray) -> FloatArray:
    result: FloatArray = np.maximum(
        np.sum(a**2, axis=1)[:, None] + np.sum(b**2, axis=1)[None, :] - 2 * a @ b.T, 0.0
    )
    return result


def _nanmax(values: FloatArray, axis: int) -> FloatArray:
    finite = np.where(np.isnan(values), -np.inf, values)
    best = np.max(finite, axis=axis)
    result: FloatArray = np.where(np.isneginf(best), np.nan, best)
    return result
