"""The bearing fault classifier on the CWRU recordings, split by fault size.

The data (../shared/data/cwru, its SOURCE.md) holds the drive-end recordings at 0 hp: one
normal recording (48 kHz) and one per fault (inner race, outer race, ball) and fault size
(0.007, 0.014, 0.021 in; 12 kHz). Each fold trains on two fault sizes and tests on the third,
so no recording of a fault is in both. The normal class has one recording: it is cut into
three contiguous blocks, one per fold, and windows are cut inside a block, so no sample is in
both; its windows still share the one run's conditions, which flatters the normal class.
With a single motor load in the data there is no across-load split.

Beside the model, on the same test windows:
- the physics-only envelope baseline: the strongest of the BPFI, BPFO and 2 x BSF lines names
  the fault if it stands LINE_VISIBLE_DB above the envelope spectrum's level, else normal;
- the model on the test recordings replayed at other speeds (REPLAY_SPEEDS; rate and shaft
  speed scaled together). The defect lines move with the shaft, the feature code follows them
  in orders; the housing's resonances move too, which a real speed change would not do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prognos.commands import require
from prognos.edge.features import FloatArray
from prognos.edge.litert import TfliteModel
from prognos.edge.vibration.classifier import CLASSES, VibrationClassifier
from prognos.edge.vibration.features import FEATURE_NAMES
from prognos.edge.vibration.signals import drive_end_channel, mat_variables
from prognos.errors import ConfigError
from prognos.models.vibration.fit import (
    EPOCHS,
    LINE_VISIBLE_DB,
    SEED,
    IntArray,
    Recording,
    Windows,
    train,
    training_mask,
    windows_of,
)

SIZES = ("007", "014", "021")
# CWRU does not state it; its rig's fixed lines fall in place only at 48 kHz (SOURCE.md).
NORMAL_RATE_HZ = 48_000.0
REPLAY_SPEEDS = (0.9, 1.25)
FAULT_LABELS = {"IR": "inner_race", "OR": "outer_race", "B": "ball"}
_FAULT_NAME = re.compile(
    r"^(?P<rate>\d+)k_Drive_End_(?P<fault>IR|OR|B)(?P<size>\d{3})(?:@\d+)?_(?P<load>\d)_\d+\.mat$"
)
_NORMAL_NAME = re.compile(r"^normal_(?P<load>\d)_\d+\.mat$")


def default_data_dir() -> Path:
    """../shared/data/cwru beside the project root (found from this package's location)."""
    return Path(__file__).resolve().parents[4] / "shared" / "data" / "cwru"


@dataclass(frozen=True)
class CwruFile:
    recording: Recording
    size: str | None  # "007", "014", "021"; None for normal
    load_hp: int
    samples: FloatArray = field(repr=False)


def cwru_files(data_dir: Path) -> list[CwruFile]:
    """The drive-end recordings in `data_dir`, named as in SOURCE.md, with their shaft speed from
    the file's RPM variable."""
    if not data_dir.is_dir():
        raise ConfigError(f"{data_dir}: no such directory (the CWRU data, see its SOURCE.md)")
    files = []
    for path in sorted(data_dir.glob("*.mat")):
        fault, normal = _FAULT_NAME.match(path.name), _NORMAL_NAME.match(path.name)
        if fault is None and normal is None:
            continue
        try:
            variables = mat_variables(path.read_bytes())
            samples = drive_end_channel(variables).samples
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        speeds = [v for name, v in variables.items() if name.endswith("RPM") and v.size == 1]
        if not speeds:
            raise ConfigError(f"{path}: no RPM variable")
        if fault is not None:
            label, size, rate_hz = FAULT_LABELS[fault["fault"]], fault["size"], float(fault["rate"]) * 1000
            load = int(fault["load"])
        else:
            assert normal is not None
            label, size, rate_hz, load = "normal", None, NORMAL_RATE_HZ, int(normal["load"])
        recording = Recording(path=path, label=label, rate_hz=rate_hz, rpm=float(speeds[0].ravel()[0]))
        files.append(CwruFile(recording, size, load, samples))
    normals = sum(f.size is None for f in files)
    if normals != 1 or {f.size for f in files} != {None, *SIZES}:
        raise ConfigError(f"{data_dir}: expected one normal recording and faults of sizes {', '.join(SIZES)}")
    return files


def manifest_lines(files: list[CwruFile]) -> list[str]:
    """A `vibration fit` manifest of the files (paths as they are)."""
    return ["path,label,rate_hz,rpm"] + [
        f"{f.recording.path},{f.recording.label},{f.recording.rate_hz:g},{f.recording.rpm:g}" for f in files
    ]


def envelope_baseline(features: FloatArray) -> IntArray:
    """Physics only: the strongest defect line names the fault when it is visible."""
    lines = features[:, [FEATURE_NAMES.index(n) for n in ("bpfi_line_db", "bpfo_line_db", "bsf_line_db")]]
    lines = np.nan_to_num(lines, nan=-np.inf)
    fault = np.array([CLASSES.index(c) for c in ("inner_race", "outer_race", "ball")])
    return np.where(
        lines.max(axis=1) >= LINE_VISIBLE_DB, fault[lines.argmax(axis=1)], CLASSES.index("normal")
    )


@dataclass(frozen=True)
class Fold:
    size: str
    train_windows: int
    trained_on: int
    actual: IntArray
    model: IntArray
    baseline: IntArray
    float_agreement: float
    replayed: dict[float, tuple[IntArray, IntArray]]  # speed -> (actual, model)


def evaluate(data_dir: Path, *, seed: int = SEED, epochs: int = EPOCHS) -> list[Fold]:
    files = cwru_files(data_dir)
    require("tensorflow")
    normal = next(i for i, f in enumerate(files) if f.size is None)
    blocks = np.array_split(np.arange(len(files[normal].samples)), len(SIZES))
    speeds = (1.0, *REPLAY_SPEEDS)

    fault_windows = {
        speed: {
            i: windows_of(f.samples, f.recording, i, speed=speed) for i, f in enumerate(files) if i != normal
        }
        for speed in speeds
    }
    block_windows = {
        speed: [
            windows_of(files[normal].samples[b], files[normal].recording, normal, speed=speed) for b in blocks
        ]
        for speed in speeds
    }
    folds = []
    for k, size in enumerate(SIZES):
        train_set = Windows.join(
            [w for i, w in fault_windows[1.0].items() if files[i].size != size]
            + [w for b, w in enumerate(block_windows[1.0]) if b != k]
        )

        def test_set(speed: float, k: int = k, size: str = size) -> Windows:
            return Windows.join(
                [w for i, w in fault_windows[speed].items() if files[i].size == size]
                + [block_windows[speed][k]]
            )

        trained = train(train_set, seed=seed, epochs=epochs, version=f"cwru-test-{size}")
        classifier = VibrationClassifier(trained.meta, TfliteModel(trained.tflite))
        test = test_set(1.0)
        model = classifier.probabilities(test.features).argmax(axis=1)
        z = classifier.standardise(test.features)
        float_top = np.asarray(trained.keras_model.predict(z, verbose=0)).argmax(axis=1)
        replayed = {}
        for speed in REPLAY_SPEEDS:
            other = test_set(speed)
            replayed[speed] = (other.labels, classifier.probabilities(other.features).argmax(axis=1))
        folds.append(
            Fold(
                size=size,
                train_windows=len(train_set),
                trained_on=int(training_mask(train_set).sum()),
                actual=test.labels,
                model=model,
                baseline=envelope_baseline(test.features),
                float_agreement=float(np.mean(model == float_top)),
                replayed=replayed,
            )
        )
    return folds


def confusion(actual: IntArray, predicted: IntArray) -> IntArray:
    """Counts, rows the true class and columns the predicted one, in CLASSES order."""
    matrix = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    np.add.at(matrix, (actual, predicted), 1)
    return matrix


def _accuracy(matrix: IntArray) -> float:
    return float(np.trace(matrix) / matrix.sum()) if matrix.sum() else float("nan")


def format_report(folds: list[Fold], data_dir: Path) -> str:
    speeds = "".join(f"{f'{s:g}x speed':>12}" for s in REPLAY_SPEEDS)
    lines = [
        f"CWRU drive end ({data_dir}): train on two fault sizes, test on the third;",
        "the normal recording in three time blocks, one per fold. Window accuracy of the int8 model",
        "(LiteRT) and of the physics-only envelope baseline on the same windows, and of the model",
        "on the test files replayed faster or slower.",
        "",
        f"{'test size':10}{'train (used)':>14}{'test':>6}{'model':>8}{'baseline':>10}{'int8=float':>12}"
        + speeds,
    ]
    pooled = {name: _zeros() for name in ("model", "baseline", *REPLAY_SPEEDS)}
    per_fold = []
    for fold in folds:
        matrices: dict[str | float, IntArray] = {
            "model": confusion(fold.actual, fold.model),
            "baseline": confusion(fold.actual, fold.baseline),
            **{s: confusion(*fold.replayed[s]) for s in REPLAY_SPEEDS},
        }
        for name, matrix in matrices.items():
            pooled[name] += matrix
        per_fold.append(matrices["model"])
        trained = f"{fold.train_windows} ({fold.trained_on})"
        lines.append(
            f"{'0.' + fold.size + ' in':10}{trained:>14}{len(fold.actual):>6}"
            f"{_accuracy(matrices['model']):>8.3f}{_accuracy(matrices['baseline']):>10.3f}"
            f"{fold.float_agreement:>12.3f}"
            + "".join(f"{_accuracy(matrices[s]):>12.3f}" for s in REPLAY_SPEEDS)
        )
    lines.append(
        f"{'all folds':10}{'':>14}{int(pooled['model'].sum()):>6}{_accuracy(pooled['model']):>8.3f}"
        f"{_accuracy(pooled['baseline']):>10.3f}{'':>12}"
        + "".join(f"{_accuracy(pooled[s]):>12.3f}" for s in REPLAY_SPEEDS)
    )
    sizes = "".join(f"{'model 0.' + fold.size:>12}" for fold in folds)
    lines += ["", "Per class (all folds: each window tested once; then the model per test size):"]
    lines.append(f"{'class':12}{'windows':>8}{'model':>8}{'baseline':>10}{sizes}")
    for i, name in enumerate(CLASSES):
        count = pooled["model"][i].sum()
        model, baseline = pooled["model"][i, i] / count, pooled["baseline"][i, i] / count
        lines.append(
            f"{name:12}{count:>8}{model:>8.3f}{baseline:>10.3f}"
            + "".join(f"{m[i, i] / m[i].sum():>12.3f}" for m in per_fold)
        )
    for name in ("model", "baseline"):
        lines += ["", f"Confusion, {name}, all folds (rows: true class; columns: predicted):"]
        lines.append(f"{'':12}" + "".join(f"{c:>12}" for c in CLASSES))
        for i, row_name in enumerate(CLASSES):
            lines.append(f"{row_name:12}" + "".join(f"{v:>12}" for v in pooled[name][i]))
    return "\n".join(lines)


def _zeros() -> IntArray:
    return np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
