"""The bearing fault classifier on the gateway: an int8 .tflite run with LiteRT, and a meta.json
that says which features it reads, how they are scaled and how windows are cut.

    DIR/model.tflite   the classifier (float32 in and out, int8 inside)
    DIR/meta.json      VibrationMeta
    DIR/card.md        what it was trained on and how well it did (written by training)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prognos.edge.detector import META_FILE, MODEL_FILE, Z_CLIP
from prognos.edge.features import FloatArray
from prognos.edge.litert import TfliteModel
from prognos.edge.vibration.features import (
    FEATURE_NAMES,
    MIN_RATE_HZ,
    RPM_RANGE,
    WINDOW_REVOLUTIONS,
    BearingOrders,
    signal_features,
    window_length,
)
from prognos.errors import ConfigError

KIND = "bearing-vibration"
CLASSES = ("normal", "inner_race", "outer_race", "ball")


@dataclass(frozen=True, kw_only=True)
class VibrationMeta:
    model_id: str
    version: str
    classes: tuple[str, ...]
    inputs: tuple[str, ...]  # names from features.FEATURE_NAMES, in the model's input order
    center: tuple[float, ...]
    scale: tuple[float, ...]
    bearing: BearingOrders
    window_revolutions: float = WINDOW_REVOLUTIONS

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VibrationMeta:
        try:
            if data.get("kind") != KIND:
                raise ValueError(f"kind {data.get('kind')!r} is not {KIND!r}")
            meta = cls(
                model_id=str(data["model_id"]),
                version=str(data["version"]),
                classes=tuple(str(c) for c in data["classes"]),
                inputs=tuple(str(name) for name in data["inputs"]),
                center=tuple(float(v) for v in data["center"]),
                scale=tuple(float(v) for v in data["scale"]),
                bearing=BearingOrders(
                    **{k: float(data["bearing"][k]) for k in ("bpfi", "bpfo", "bsf", "ftf")}
                ),
                window_revolutions=float(data["window_revolutions"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"vibration model meta is incomplete or malformed: {exc!r}") from exc
        unknown = [name for name in meta.inputs if name not in FEATURE_NAMES]
        if unknown:
            raise ConfigError(f"vibration model reads features this version does not compute: {unknown}")
        if not len(meta.inputs) == len(meta.center) == len(meta.scale):
            raise ConfigError("vibration model meta: inputs, center and scale differ in length")
        if meta.window_revolutions != WINDOW_REVOLUTIONS:
            raise ConfigError(
                f"vibration model windows of {meta.window_revolutions:g} revolutions; "
                f"this version cuts {WINDOW_REVOLUTIONS:g}"
            )
        return meta

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "model_id": self.model_id,
            "version": self.version,
            "classes": list(self.classes),
            "inputs": list(self.inputs),
            "center": list(self.center),
            "scale": list(self.scale),
            "bearing": self.bearing.to_json(),
            "window_revolutions": self.window_revolutions,
        }


@dataclass(frozen=True)
class Classified:
    """Per window: its start, features (FEATURE_NAMES order), class probabilities (meta.classes
    order), label and confidence; a window without variance has no label ("") and NaN."""

    start_s: FloatArray
    window_s: float
    features: FloatArray
    probabilities: FloatArray
    labels: tuple[str, ...]
    confidence: FloatArray


class VibrationClassifier:
    def __init__(self, meta: VibrationMeta, model: TfliteModel) -> None:
        if model.input_width != len(meta.inputs):
            raise ConfigError(
                f"{meta.model_id}: model takes {model.input_width} inputs, meta lists {len(meta.inputs)}"
            )
        self.meta = meta
        self.model = model
        self._columns = [FEATURE_NAMES.index(name) for name in meta.inputs]
        self._center = np.asarray(meta.center)
        self._scale = np.asarray(meta.scale)

    def standardise(self, features: FloatArray) -> FloatArray:
        """The model's inputs of feature rows (FEATURE_NAMES order), scaled and clipped as in
        training."""
        x = np.atleast_2d(features)[:, self._columns]
        return np.asarray(np.clip((x - self._center) / self._scale, -Z_CLIP, Z_CLIP))

    def probabilities(self, features: FloatArray) -> FloatArray:
        """Class probabilities of feature rows; NaN rows where a feature is missing."""
        z = self.standardise(features)
        complete = np.isfinite(z).all(axis=1)
        out = np.full((z.shape[0], len(self.meta.classes)), np.nan)
        if complete.any():
            out[complete] = self.model.predict(z[complete])
        return out

    def classify(self, samples: FloatArray, *, rate_hz: float, rpm: float) -> Classified:
        check_operating_point(rate_hz=rate_hz, rpm=rpm)
        length = window_length(rate_hz, rpm)
        if len(samples) < length:
            raise ConfigError(
                f"the signal is {len(samples) / rate_hz:.3g} s long; one window at {rpm:g} rpm is "
                f"{length / rate_hz:.3g} s ({self.meta.window_revolutions:g} revolutions)"
            )
        starts, features = signal_features(samples, rate_hz=rate_hz, rpm=rpm, bearing=self.meta.bearing)
        probabilities = self.probabilities(features)
        labelled = np.asarray(np.isfinite(probabilities).all(axis=1), dtype=bool)
        best = np.argmax(np.where(labelled[:, None], probabilities, 0.0), axis=1)
        labels = tuple(
            self.meta.classes[i] if ok else "" for i, ok in zip(best, labelled.tolist(), strict=True)
        )
        confidence = np.where(labelled, np.max(np.nan_to_num(probabilities, nan=0.0), axis=1), np.nan)
        return Classified(starts, length / rate_hz, features, probabilities, labels, confidence)


def check_operating_point(*, rate_hz: float, rpm: float) -> None:
    """ConfigError unless the features can be read at this sample rate and shaft speed."""
    if not (np.isfinite(rate_hz) and rate_hz >= MIN_RATE_HZ):
        raise ConfigError(
            f"sample rate {rate_hz:g} Hz is below {MIN_RATE_HZ:g} Hz: the features read the band up to "
            f"{MIN_RATE_HZ / 2:g} Hz"
        )
    low, high = RPM_RANGE
    if not (np.isfinite(rpm) and low <= rpm <= high):
        raise ConfigError(f"shaft speed {rpm:g} rpm is outside {low:g}-{high:g} rpm")


def load_classifier(directory: Path) -> VibrationClassifier:
    try:
        meta = json.loads((directory / META_FILE).read_text())
        content = (directory / MODEL_FILE).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{directory} is not a vibration model directory: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"{directory / META_FILE} is not JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise ConfigError(f"{directory / META_FILE} is not a JSON object")
    return VibrationClassifier(VibrationMeta.from_json(meta), TfliteModel(content))
