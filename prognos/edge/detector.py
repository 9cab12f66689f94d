"""Trained detectors on the gateway: a subsystem autoencoder and the fault classifier, each a
.tflite file with a meta.json that says which inputs it takes, how they are scaled, and (for
an autoencoder) the calibrated alert threshold.

    prognos/models/artifacts/<name>/model.tflite
    prognos/models/artifacts/<name>/meta.json
    prognos/models/artifacts/<name>/card.md
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prognos.edge.features import FloatArray
from prognos.edge.inputs import InputSpec, check_input, is_context
from prognos.edge.litert import TfliteModel
from prognos.edge.trend import DaysCalibration
from prognos.errors import ConfigError

Z_CLIP = 8.0
BUNDLE_FILE = "bundle.json"
META_FILE = "meta.json"
# bundle.json: fault code -> [log_q10, log_q50, log_q90] of true / trend days (prognos/edge/trend.py)
DAYS_CALIBRATION_KEY = "days_to_threshold_calibration"
MODEL_FILE = "model.tflite"


@dataclass(frozen=True)
class ModelMeta:
    model_id: str
    version: str
    kind: str  # "autoencoder" or "classifier"
    subsystem: str  # "" for the classifier
    inputs: InputSpec
    center: tuple[float, ...]
    scale: tuple[float, ...]
    threshold: float = 1.0  # autoencoder: reconstruction error that scores 1.0
    tau_days: float = 0.5  # autoencoder: smoothing time constant
    classes: tuple[str, ...] = ()  # classifier: output order

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelMeta:
        try:
            meta = cls(
                model_id=str(data["model_id"]),
                version=str(data["version"]),
                kind=str(data["kind"]),
                subsystem=str(data.get("subsystem", "")),
                inputs=tuple((str(kind), tuple(str(p) for p in paths)) for kind, paths in data["inputs"]),
                center=tuple(float(v) for v in data["center"]),
                scale=tuple(float(v) for v in data["scale"]),
                threshold=float(data.get("threshold", 1.0)),
                tau_days=float(data.get("tau_days", 0.5)),
                classes=tuple(str(c) for c in data.get("classes", ())),
            )
            for item in meta.inputs:
                check_input(item)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"model meta is incomplete or malformed: {exc!r}") from exc
        return meta

    def to_json(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "version": self.version,
            "kind": self.kind,
            "subsystem": self.subsystem,
            "inputs": [[kind, list(paths)] for kind, paths in self.inputs],
            "center": list(self.center),
            "scale": list(self.scale),
            "threshold": self.threshold,
            "tau_days": self.tau_days,
            "classes": list(self.classes),
        }


class Detector:
    """A loaded model: scales its inputs, runs LiteRT, and turns outputs into scores."""

    def __init__(self, meta: ModelMeta, model: TfliteModel) -> None:
        if model.input_width != len(meta.inputs):
            raise ConfigError(
                f"{meta.model_id}: model takes {model.input_width} inputs, meta lists {len(meta.inputs)}"
            )
        self.meta = meta
        self.model = model
        self._center = np.asarray(meta.center)
        self._scale = np.asarray(meta.scale)
        self._scored = np.array([not is_context(item) for item in meta.inputs])

    def standardise(self, inputs: FloatArray) -> FloatArray:
        """Standardised inputs, clipped to +-Z_CLIP: far outside normal is far enough, and a
        bounded range keeps int8 quantisation fine-grained."""
        return np.asarray(np.clip((np.atleast_2d(inputs) - self._center) / self._scale, -Z_CLIP, Z_CLIP))

    def anomaly_scores(self, inputs: FloatArray) -> FloatArray:
        """Autoencoder: reconstruction error of the subsystem's own inputs (context excluded)
        / threshold per row (1.0 = alert); NaN where an input is missing."""
        z = self.standardise(inputs)
        complete = np.isfinite(z).all(axis=1)
        scores = np.full(z.shape[0], np.nan)
        if complete.any():
            reconstruction = self.model.predict(z[complete])
            residual = (z[complete] - reconstruction)[:, self._scored]
            error = np.mean(residual**2, axis=1)
            scores[complete] = error / self.meta.threshold
        return scores

    def class_probabilities(self, inputs: FloatArray) -> FloatArray:
        """Classifier: probabilities per class in `meta.classes` order; a missing input
        counts as its training mean."""
        z = np.nan_to_num(self.standardise(inputs), nan=0.0)
        return self.model.predict(z)


def load_detector(directory: Path) -> Detector:
    try:
        meta = json.loads((directory / META_FILE).read_text())
        content = (directory / MODEL_FILE).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{directory} is not a model directory: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"{directory / META_FILE} is not JSON: {exc}") from exc
    return Detector(ModelMeta.from_json(meta), TfliteModel(content))


@dataclass(frozen=True)
class Bundle:
    """The models a gateway runs: one detector per subsystem and the fault classifier."""

    bundle_id: str
    version: str
    detectors: dict[str, Detector]
    classifier: Detector | None
    days_calibration: dict[str, DaysCalibration] = field(default_factory=dict)  # by fault code


def load_bundle(directory: Path) -> Bundle:
    """Load every model that DIR/bundle.json lists; ConfigError names what is wrong."""
    try:
        manifest = json.loads((directory / BUNDLE_FILE).read_text())
        names = [str(name) for name in manifest["models"]]
        bundle_id, version = str(manifest["bundle_id"]), str(manifest["version"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{directory} is not a model bundle (no readable {BUNDLE_FILE}: {exc})") from exc
    try:
        calibration = {
            str(code): DaysCalibration(*(float(q) for q in quantiles))
            for code, quantiles in manifest.get(DAYS_CALIBRATION_KEY, {}).items()
        }
    except (AttributeError, TypeError, ValueError) as exc:
        raise ConfigError(f"{directory / BUNDLE_FILE}: malformed {DAYS_CALIBRATION_KEY}: {exc}") from exc
    detectors: dict[str, Detector] = {}
    classifier = None
    for name in names:
        detector = load_detector(directory / name)
        if detector.meta.kind == "classifier":
            classifier = detector
        else:
            detectors[detector.meta.subsystem] = detector
    return Bundle(bundle_id, version, detectors, classifier, calibration)
