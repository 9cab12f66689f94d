"""Training (TensorFlow/Keras, the `train` extra), int8 TFLite export, threshold calibration.

Per subsystem, an autoencoder learns normal operation from healthy vehicles' windows; its
score is the reconstruction error of the standardised inputs. The alert threshold is set on
the exported int8 model (the one the gateway runs), from healthy vehicles it never trained
on: the highest smoothed error any of their vehicle-days reached, times a margin. A fault
classifier learns the fault kind from labelled windows of faulty vehicles.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prognos.catalog import Catalog
from prognos.edge.detector import META_FILE, MODEL_FILE, Z_CLIP, Detector, ModelMeta
from prognos.edge.features import FloatArray
from prognos.edge.inputs import (
    MODELLED_SUBSYSTEMS,
    Input,
    InputSpec,
    assemble,
    input_spec,
    is_context,
    scale_floors,
)
from prognos.edge.litert import TfliteModel
from prognos.edge.smoothing import ScoreSmoother
from prognos.models.dataset import FleetWindows

THRESHOLD_MARGIN = 1.25
# The least threshold: the mean squared error of one scored input a full scale unit (at least
# its floor, 0.5% of the signal's range) from its reconstruction. Siblings of a simulated
# healthy vehicle agree more closely than real sensors resolve; a threshold calibrated on them
# alone would alert on differences no sensor can vouch for (a tire 2 kPa warmer on the highway).
MIN_THRESHOLD_SCORED_UNITS = 1.0
TAU_DAYS = 0.5
CLASS_NONE = "none"
FAULT_OF_SUBSYSTEM = {
    "battery": "battery_drift",
    "tires": "tire_leak",
    "brakes": "pad_wear",
    "bearings": "bearing_wear",
    "motor": "motor_noise",
}
CLASSES = (CLASS_NONE, *FAULT_OF_SUBSYSTEM.values())
LABEL_MIN_SEVERITY = 0.15


def _keras() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


@dataclass
class TrainedModel:
    meta: ModelMeta
    keras_model: Any
    tflite: bytes
    metrics: dict[str, float]


def standardisation(x: FloatArray, floors: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Centre and scale per column, ignoring missing values; no scale below its floor."""
    center = np.nanmean(x, axis=0)
    scale = np.maximum(np.nanstd(x, axis=0), floors)
    return center, np.where(scale > 1e-9, scale, 1.0)


def build_autoencoder(width: int, seed: int) -> Any:
    keras = _keras()
    keras.utils.set_random_seed(seed)
    bottleneck = max(2, width // 3)
    hidden = max(8, 2 * width)
    return keras.Sequential(
        [
            keras.Input(shape=(width,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(bottleneck, activation="relu"),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(width),
        ]
    )


def build_classifier(width: int, classes: int, seed: int) -> Any:
    keras = _keras()
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(shape=(width,)),
            keras.layers.Dense(48, activation="relu"),
            keras.layers.Dense(24, activation="relu"),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )


def export_int8(model: Any, representative: FloatArray) -> bytes:
    """Full-integer (int8) post-training quantisation with float32 input and output."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    picked = rng.choice(len(representative), size=min(2000, len(representative)), replace=False)
    rows = representative[picked]

    def samples() -> Any:
        for row in rows:
            yield [row[None, :].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    content: bytes = converter.convert()
    return content


def smoothed_daily_max(
    scores: FloatArray, vehicle: np.ndarray, day: FloatArray, tau_days: float
) -> FloatArray:
    """Per vehicle-day, the highest smoothed score (the quantity that raises alerts)."""
    out: dict[tuple[int, int], float] = {}
    for v in np.unique(vehicle):
        rows = np.flatnonzero(vehicle == v)
        smoother = ScoreSmoother(tau_days=tau_days)
        for i in rows[np.argsort(day[rows])]:
            value = smoother.update(float(day[i]), float(scores[i]))
            if np.isfinite(value):
                key = (int(v), int(day[i]))
                out[key] = max(out.get(key, -np.inf), value)
    return np.array(list(out.values()))


def train_autoencoder(
    subsystem: str,
    catalog: Catalog,
    train: FleetWindows,
    calibration: FleetWindows,
    *,
    seed: int,
    version: str,
    epochs: int = 40,
) -> TrainedModel:
    """Fit on healthy windows of `train`; calibrate the threshold on `calibration` (healthy)."""
    keras = _keras()
    spec = input_spec(catalog, subsystem)
    x = assemble(train.features, spec)
    x = x[np.isfinite(x).all(axis=1) & (train.fault_kind == "")]
    center, scale = standardisation(x, scale_floors(catalog, spec))
    z = np.clip((x - center) / scale, -Z_CLIP, Z_CLIP)
    model = build_autoencoder(z.shape[1], seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.fit(
        z,
        z,
        epochs=epochs,
        batch_size=256,
        validation_split=0.1,
        verbose=0,
        shuffle=True,
        callbacks=[keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)],
    )
    tflite = export_int8(model, z)
    meta = ModelMeta(
        model_id=f"{subsystem}-ae",
        version=version,
        kind="autoencoder",
        subsystem=subsystem,
        inputs=spec,
        center=tuple(center),
        scale=tuple(scale),
        threshold=1.0,
        tau_days=TAU_DAYS,
    )
    raw = Detector(meta, TfliteModel(tflite))
    healthy = calibration.fault_kind == ""
    cal_x = assemble(calibration.features, spec)
    errors = raw.anomaly_scores(cal_x[healthy])
    daily = smoothed_daily_max(errors, calibration.vehicle[healthy], calibration.day[healthy], TAU_DAYS)
    scored = sum(not is_context(item) for item in spec)
    threshold = max(float(np.max(daily) * THRESHOLD_MARGIN), MIN_THRESHOLD_SCORED_UNITS / scored)
    meta = ModelMeta(**{**meta.__dict__, "threshold": threshold})
    metrics = {
        "training_windows": float(len(z)),
        "calibration_vehicle_days": float(len(daily)),
        "calibration_daily_max_p50": float(np.median(daily)),
        "calibration_daily_max_p99": float(np.quantile(daily, 0.99)),
        "threshold": threshold,
    }
    return TrainedModel(meta, model, tflite, metrics)


def classifier_inputs(catalog: Catalog) -> InputSpec:
    items: list[Input] = []
    for subsystem in MODELLED_SUBSYSTEMS:
        items += [item for item in input_spec(catalog, subsystem) if item not in items]
    return tuple(items)


def classifier_labels(data: FleetWindows, catalog: Catalog) -> np.ndarray:
    """Class index per window; -1 for windows that cannot show their fault: a fault too young,
    or a subsystem whose sensors slept (bearing vibration and motor noise while parked)."""
    labels = np.array([CLASSES.index(k) if k else 0 for k in data.fault_kind])
    labels[(data.fault_kind != "") & (data.severity < LABEL_MIN_SEVERITY)] = -1
    for subsystem, kind in FAULT_OF_SUBSYSTEM.items():
        silent = ~np.isfinite(assemble(data.features, input_spec(catalog, subsystem))).all(axis=1)
        labels[(data.fault_kind == kind) & silent] = -1
    return labels


def train_classifier(
    catalog: Catalog, train: FleetWindows, *, seed: int, version: str, epochs: int = 30
) -> TrainedModel:
    keras = _keras()
    spec = classifier_inputs(catalog)
    x = assemble(train.features, spec)
    labels = classifier_labels(train, catalog)
    keep = labels >= 0
    x, labels = x[keep], labels[keep]
    center, scale = standardisation(x, scale_floors(catalog, spec))
    z = np.nan_to_num(np.clip((x - center) / scale, -Z_CLIP, Z_CLIP), nan=0.0)
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(float)
    weights = {i: float(len(labels) / (len(CLASSES) * c)) if c else 0.0 for i, c in enumerate(counts)}
    model = build_classifier(z.shape[1], len(CLASSES), seed)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit(
        z,
        labels,
        epochs=epochs,
        batch_size=256,
        validation_split=0.1,
        verbose=0,
        class_weight=weights,
        callbacks=[keras.callbacks.EarlyStopping(patience=4, restore_best_weights=True)],
    )
    tflite = export_int8(model, z)
    meta = ModelMeta(
        model_id="fault-classifier",
        version=version,
        kind="classifier",
        subsystem="",
        inputs=spec,
        center=tuple(center),
        scale=tuple(scale),
        classes=CLASSES,
    )
    return TrainedModel(meta, model, tflite, {"training_windows": float(len(z))})


def parity(trained: TrainedModel, inputs: FloatArray) -> dict[str, float]:
    """How far the int8 TFLite model is from the Keras model on `inputs` (raw, unscaled)."""
    detector = Detector(trained.meta, TfliteModel(trained.tflite))
    z = detector.standardise(inputs)
    if trained.meta.kind == "autoencoder":
        z = z[np.isfinite(z).all(axis=1)]
        scored = np.array([not is_context(item) for item in trained.meta.inputs])

        def scores(reconstruction: FloatArray) -> FloatArray:
            return np.asarray(
                np.mean(((z - reconstruction) ** 2)[:, scored], axis=1) / trained.meta.threshold
            )

        keras_scores = scores(np.asarray(trained.keras_model.predict(z, verbose=0, batch_size=4096)))
        lite_scores = scores(detector.model.predict(z))
        diff = np.abs(lite_scores - keras_scores)
        return {
            "parity_rows": float(len(z)),
            "parity_score_abs_diff_p50": float(np.median(diff)),
            "parity_score_abs_diff_p99": float(np.quantile(diff, 0.99)),
            "parity_alert_agreement": float(np.mean((lite_scores >= 1.0) == (keras_scores >= 1.0))),
        }
    z = np.nan_to_num(z, nan=0.0)
    keras_p = np.asarray(trained.keras_model.predict(z, verbose=0, batch_size=4096))
    lite_p = detector.model.predict(z)
    return {
        "parity_rows": float(len(z)),
        "parity_probability_abs_diff_p99": float(np.quantile(np.abs(lite_p - keras_p), 0.99)),
        "parity_class_agreement": float(np.mean(lite_p.argmax(axis=1) == keras_p.argmax(axis=1))),
    }


def write_artifact(directory: Path, trained: TrainedModel, card: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MODEL_FILE).write_bytes(trained.tflite)
    (directory / META_FILE).write_text(json.dumps(trained.meta.to_json(), indent=1) + "\n")
    (directory / "card.md").write_text(card)
