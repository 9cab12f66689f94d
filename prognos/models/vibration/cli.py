"""The bearing fault classifier's commands: `prognos vibration` (fit, classify, eval)."""

from __future__ import annotations

import argparse
import csv
import math
from collections import Counter
from pathlib import Path

from prognos.commands import Commands, group, lazy_command, positive_int
from prognos.errors import ConfigError
from prognos.models.vibration.fit import EPOCHS, SEED


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{value:g} is not a positive number")
    return value


def add_vibration(commands: Commands, help_text: str) -> None:
    vibration = group(commands, "vibration", help_text)
    fit = vibration.add_parser(
        "fit",
        help="train the classifier on labelled recordings",
        description="Train the bearing fault classifier (normal, inner_race, outer_race, ball) on the "
        "recordings a manifest lists, export it to int8 TFLite and write DIR/model.tflite, "
        "DIR/meta.json and DIR/card.md. The manifest is a CSV with the columns path, label, rate_hz "
        "and rpm; paths are relative to the manifest. Needs the `train` extra (TensorFlow).",
    )
    fit.add_argument("--manifest", type=Path, required=True, metavar="CSV", help="recordings to train on")
    fit.add_argument("--out", type=Path, required=True, metavar="DIR", help="model directory to write")
    fit.add_argument("--version", default="1", help="version written into the model (default: %(default)s)")
    fit.add_argument("--seed", type=int, default=SEED, help="random seed (default: %(default)s)")
    fit.add_argument(
        "--epochs", type=positive_int, default=EPOCHS, help="training epochs (default: %(default)s)"
    )
    fit.set_defaults(run=lazy_command("prognos.models.vibration.cli:_fit"))

    classify = vibration.add_parser(
        "classify",
        help="classify each window of a recording",
        description="Cut a recording into windows of 16 shaft revolutions (half a window apart), "
        "compute their features and run the int8 classifier on LiteRT. Reads .mat (the drive-end "
        "channel, *_DE_time), .csv (one column) and .wav (one channel). Writes one row per window: "
        "start_s, end_s, label, confidence, the probability of each class and the features.",
    )
    classify.add_argument(
        "--model", type=Path, required=True, metavar="DIR", help="model directory from `fit`"
    )
    classify.add_argument("--signal", type=Path, required=True, metavar="FILE", help=".mat, .csv or .wav")
    classify.add_argument(
        "--rate-hz",
        type=_positive_number,
        default=None,
        metavar="R",
        help="sample rate; required for .mat and .csv, a .wav states its own",
    )
    classify.add_argument("--rpm", type=_positive_number, required=True, metavar="RPM", help="shaft speed")
    classify.add_argument("--out", type=Path, required=True, metavar="CSV", help="window CSV to write")
    classify.set_defaults(run=lazy_command("prognos.models.vibration.cli:_classify"))

    evaluate = vibration.add_parser(
        "eval",
        help="evaluate on the CWRU bearing recordings, split by fault size",
        description="Train on two fault sizes of the CWRU drive-end recordings and test on the third, "
        "for each size; print window accuracy per fold and per class and the confusion matrices of "
        "the int8 model and of the physics-only envelope baseline (docs/models.md). Needs the "
        "`train` extra (TensorFlow).",
    )
    evaluate.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of the CWRU .mat files (default: ../shared/data/cwru beside the project)",
    )
    evaluate.add_argument("--seed", type=int, default=SEED, help="random seed (default: %(default)s)")
    evaluate.add_argument(
        "--epochs", type=positive_int, default=EPOCHS, help="training epochs (default: %(default)s)"
    )
    evaluate.set_defaults(run=lazy_command("prognos.models.vibration.cli:_eval"))


def _fit(args: argparse.Namespace) -> int:
    from prognos.models.vibration.fit import fit_manifest

    trained = fit_manifest(args.manifest, args.out, seed=args.seed, epochs=args.epochs, version=args.version)
    shown = ", ".join(f"{key} {value:.4g}" for key, value in trained.metrics.items())
    print(f"{trained.meta.model_id} {trained.meta.version}: {shown}")
    print(f"model written to {args.out}")
    return 0


def _classify(args: argparse.Namespace) -> int:
    from prognos.edge.vibration.classifier import load_classifier
    from prognos.edge.vibration.features import FEATURE_NAMES
    from prognos.edge.vibration.signals import read_signal

    signal = read_signal(args.signal)
    rate_hz = args.rate_hz
    if signal.rate_hz is not None:
        if rate_hz is not None and rate_hz != signal.rate_hz:
            raise ConfigError(f"{args.signal}: the file says {signal.rate_hz:g} Hz, --rate-hz {rate_hz:g}")
        rate_hz = signal.rate_hz
    if rate_hz is None:
        raise ConfigError(f"{args.signal}: the file does not state its sample rate; give --rate-hz")
    classifier = load_classifier(args.model)
    try:
        result = classifier.classify(signal.samples, rate_hz=rate_hz, rpm=args.rpm)
    except ConfigError as exc:
        raise ConfigError(f"{args.signal}: {exc}") from None
    classes = classifier.meta.classes
    header = ["start_s", "end_s", "label", "confidence", *(f"p_{c}" for c in classes), *FEATURE_NAMES]
    try:
        with args.out.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow(header)
            for i, start in enumerate(result.start_s):
                writer.writerow(
                    [
                        f"{start:.4f}",
                        f"{start + result.window_s:.4f}",
                        result.labels[i],
                        _number(result.confidence[i]),
                        *(_number(p) for p in result.probabilities[i]),
                        *(_number(v) for v in result.features[i]),
                    ]
                )
    except OSError as exc:
        raise ConfigError(f"{args.out}: cannot write ({exc.strerror})") from exc
    counts = Counter(label or "(no signal)" for label in result.labels)
    shown = ", ".join(f"{label} {counts[label]}" for label in (*classes, "(no signal)") if counts[label])
    print(f"{len(result.labels)} windows of {args.signal.name}: {shown}; written to {args.out}")
    return 0


def _number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4f}"


def _eval(args: argparse.Namespace) -> int:
    from prognos.models.vibration.evaluate import default_data_dir, evaluate, format_report

    data = args.data or default_data_dir()
    print(format_report(evaluate(data, seed=args.seed, epochs=args.epochs), data))
    return 0
