"""Training the bearing fault classifier (TensorFlow, the `train` extra) and its int8 export.

The recordings come from a manifest (CSV: path, label, rate_hz, rpm; paths relative to the
manifest). Each is cut into windows of the gateway's own feature code
(prognos.edge.vibration.features). The classifier is a dense network with one hidden layer of
HIDDEN_UNITS ReLU units over the standardised CLASSIFIER_INPUTS, L2-regularised: with three or
four recordings a class, a larger one would learn the recordings instead of the faults.

A race-fault window whose envelope does not show its defect line at least LINE_VISIBLE_DB above
the spectrum's level is left out of training: it cannot show its fault, and taught as one it
makes the class a catch-all for "some fault" (CWRU's outer-race recording 197 is such a file).
Ball defects rarely show their line, so ball windows are all kept. Evaluation tests every
window.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from prognos.edge.detector import META_FILE, MODEL_FILE, Z_CLIP
from prognos.edge.features import FloatArray
from prognos.edge.litert import TfliteModel
from prognos.edge.vibration.classifier import (
    CLASSES,
    VibrationClassifier,
    VibrationMeta,
    check_operating_point,
)
from prognos.edge.vibration.features import (
    CLASSIFIER_INPUTS,
    FEATURE_NAMES,
    SKF_6205,
    WINDOW_REVOLUTIONS,
    signal_features,
)
from prognos.edge.vibration.signals import read_signal
from prognos.errors import ConfigError

IntArray = npt.NDArray[np.int64]

MANIFEST_COLUMNS = ("path", "label", "rate_hz", "rpm")
LINE_VISIBLE_DB = 6.0
OWN_LINE = {"inner_race": "bpfi_line_db", "outer_race": "bpfo_line_db"}
MODEL_ID = "bearing-faults"
HIDDEN_UNITS = 8
L2 = 0.02
LEARNING_RATE = 0.02
EPOCHS = 300
SEED = 7


@dataclass(frozen=True, kw_only=True)
class Recording:
    path: Path
    label: str
    rate_hz: float
    rpm: float


@dataclass(frozen=True)
class Windows:
    """Feature rows (FEATURE_NAMES order) with their class index, recording index and start."""

    features: FloatArray
    labels: IntArray
    recording: IntArray
    start_s: FloatArray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, keep: npt.NDArray[np.bool_]) -> Windows:
        return Windows(self.features[keep], self.labels[keep], self.recording[keep], self.start_s[keep])

    @staticmethod
    def join(parts: list[Windows]) -> Windows:
        if not parts:
            return Windows(
                np.empty((0, len(FEATURE_NAMES))), np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
            )
        return Windows(
            np.concatenate([p.features for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.recording for p in parts]),
            np.concatenate([p.start_s for p in parts]),
        )


@dataclass
class Trained:
    meta: VibrationMeta
    keras_model: Any
    tflite: bytes
    metrics: dict[str, float]


def read_manifest(path: Path) -> list[Recording]:
    """The recordings a manifest lists; every problem is a ConfigError naming the line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    rows = list(csv.reader(io.StringIO(text)))
    header = [name.strip().lower() for name in rows[0]] if rows else []
    missing = [name for name in MANIFEST_COLUMNS if name not in header]
    if missing:
        raise ConfigError(
            f"{path}: the header lacks {', '.join(missing)} (columns: {', '.join(MANIFEST_COLUMNS)})"
        )
    where = {name: header.index(name) for name in MANIFEST_COLUMNS}
    recordings = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(field.strip() for field in row):
            continue
        if len(row) < len(header):
            raise ConfigError(f"{path}: line {number} has {len(row)} fields; the header has {len(header)}")
        label = row[where["label"]].strip()
        if label not in CLASSES:
            raise ConfigError(f"{path}: line {number}: label {label!r} is not one of {', '.join(CLASSES)}")
        numbers = {}
        for name in ("rate_hz", "rpm"):
            try:
                numbers[name] = float(row[where[name]])
            except ValueError:
                raise ConfigError(
                    f"{path}: line {number}: {name} {row[where[name]]!r} is not a number"
                ) from None
        try:
            check_operating_point(rate_hz=numbers["rate_hz"], rpm=numbers["rpm"])
        except ConfigError as exc:
            raise ConfigError(f"{path}: line {number}: {exc}") from None
        recordings.append(
            Recording(
                path=path.parent / row[where["path"]].strip(),
                label=label,
                rate_hz=numbers["rate_hz"],
                rpm=numbers["rpm"],
            )
        )
    if not recordings:
        raise ConfigError(f"{path}: lists no recordings")
    return recordings


def load_samples(recording: Recording) -> FloatArray:
    """The recording's samples; a file that states another sample rate than the manifest is an
    error."""
    signal = read_signal(recording.path)
    if signal.rate_hz is not None and signal.rate_hz != recording.rate_hz:
        raise ConfigError(
            f"{recording.path}: the file says {signal.rate_hz:g} Hz, the manifest {recording.rate_hz:g} Hz"
        )
    return signal.samples


def windows_of(samples: FloatArray, recording: Recording, index: int, *, speed: float = 1.0) -> Windows:
    """The windows of `samples` labelled as `recording`; `speed` replays them that many times
    faster (rate and shaft speed both scaled)."""
    starts, features = signal_features(
        samples, rate_hz=recording.rate_hz * speed, rpm=recording.rpm * speed, bearing=SKF_6205
    )
    if not len(starts):
        raise ConfigError(f"{recording.path}: shorter than one window ({WINDOW_REVOLUTIONS:g} revolutions)")
    n = len(starts)
    return Windows(features, np.full(n, CLASSES.index(recording.label)), np.full(n, index), starts)


def training_mask(windows: Windows) -> npt.NDArray[np.bool_]:
    """Windows fit to train on: every input present, and a race fault's own line visible."""
    inputs = windows.features[:, [FEATURE_NAMES.index(name) for name in CLASSIFIER_INPUTS]]
    keep = np.asarray(np.isfinite(inputs).all(axis=1), dtype=bool)
    for label, feature in OWN_LINE.items():
        race = windows.labels == CLASSES.index(label)
        line = windows.features[:, FEATURE_NAMES.index(feature)]
        keep &= ~race | (line >= LINE_VISIBLE_DB)
    return keep


def train(windows: Windows, *, seed: int = SEED, epochs: int = EPOCHS, version: str = "1") -> Trained:
    """Fit the classifier on the usable windows, export it to int8 and check it against Keras."""
    from prognos.models.train import _keras, export_int8

    used = windows.subset(training_mask(windows))
    present = np.bincount(used.labels, minlength=len(CLASSES))
    absent = [CLASSES[i] for i, count in enumerate(present) if count == 0]
    if absent:
        raise ConfigError(
            f"no usable training window of {', '.join(absent)} (race-fault windows need their "
            f"defect line {LINE_VISIBLE_DB:g} dB above the envelope spectrum's level)"
        )
    columns = [FEATURE_NAMES.index(name) for name in CLASSIFIER_INPUTS]
    x = used.features[:, columns]
    center = x.mean(axis=0)
    scale = np.maximum(x.std(axis=0), 1e-6)
    z = np.clip((x - center) / scale, -Z_CLIP, Z_CLIP)
    keras = _keras()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(len(columns),)),
            keras.layers.Dense(HIDDEN_UNITS, activation="relu", kernel_regularizer=keras.regularizers.L2(L2)),
            keras.layers.Dense(
                len(CLASSES), activation="softmax", kernel_regularizer=keras.regularizers.L2(L2)
            ),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="sparse_categorical_crossentropy")
    weights = {i: float(len(used) / (len(CLASSES) * count)) for i, count in enumerate(present)}
    # Full-batch steps, all in one pass: Keras' overhead per epoch would take most of the time.
    model.fit(
        np.tile(z, (epochs, 1)),
        np.tile(used.labels, epochs),
        epochs=1,
        batch_size=len(z),
        verbose=0,
        class_weight=weights,
        shuffle=False,
    )
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its SavedModel's signature
        tflite = export_int8(model, z.astype(np.float64))
    meta = VibrationMeta(
        model_id=MODEL_ID,
        version=version,
        classes=CLASSES,
        inputs=CLASSIFIER_INPUTS,
        center=tuple(float(v) for v in center),
        scale=tuple(float(v) for v in scale),
        bearing=SKF_6205,
    )
    classifier = VibrationClassifier(meta, TfliteModel(tflite))
    lite = classifier.probabilities(used.features).argmax(axis=1)
    float_top = np.asarray(model.predict(z, verbose=0)).argmax(axis=1)
    metrics = {
        "windows": float(len(windows)),
        "training_windows": float(len(used)),
        "training_accuracy_int8": float(np.mean(lite == used.labels)),
        "int8_float_agreement": float(np.mean(lite == float_top)),
    }
    return Trained(meta, model, tflite, metrics)


def write_model(directory: Path, trained: Trained, card: str) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MODEL_FILE).write_bytes(trained.tflite)
        (directory / META_FILE).write_text(json.dumps(trained.meta.to_json(), indent=1) + "\n")
        (directory / "card.md").write_text(card)
    except OSError as exc:
        raise ConfigError(f"{directory}: cannot write the model ({exc.strerror})") from exc


def fit_manifest(
    manifest: Path, out: Path, *, seed: int = SEED, epochs: int = EPOCHS, version: str = "1"
) -> Trained:
    """Train on the recordings a manifest lists and write the model directory; the files are
    read and checked before TensorFlow is loaded."""
    from prognos.commands import require

    recordings = read_manifest(manifest)
    windows = Windows.join([windows_of(load_samples(r), r, i) for i, r in enumerate(recordings)])
    require("tensorflow")
    trained = train(windows, seed=seed, epochs=epochs, version=version)
    write_model(out, trained, model_card(trained, recordings, windows))
    return trained


def model_card(trained: Trained, recordings: list[Recording], windows: Windows) -> str:
    used = training_mask(windows)
    lines = [
        f"# {trained.meta.model_id} {trained.meta.version}",
        "",
        "Bearing fault classifier (normal, inner race, outer race, ball): a dense network, "
        f"{HIDDEN_UNITS} hidden ReLU units over {', '.join(trained.meta.inputs)}, int8 TFLite. "
        f"Windows of {WINDOW_REVOLUTIONS:g} shaft revolutions; features and method in docs/models.md "
        "(Vibration).",
        "",
        "| recording | label | rate_hz | rpm | windows | trained on |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for i, r in enumerate(recordings):
        mine = windows.recording == i
        counts = f"{int(mine.sum())} | {int((mine & used).sum())}"
        lines.append(f"| {r.path.name} | {r.label} | {r.rate_hz:g} | {r.rpm:g} | {counts} |")
    lines += ["", *(f"- {key}: {value:.4g}" for key, value in trained.metrics.items()), ""]
    return "\n".join(lines)
