"""The models' commands: `prognos models` (fit, score, eval-skab, train, eval, keygen, sign,
push)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from prognos.commands import (
    DEFAULT_FLEET,
    Commands,
    add_home_option,
    column_list,
    group,
    positive_int,
    rate,
    require,
)
from prognos.errors import ConfigError
from prognos.ops.state import stack_home


def add_models(commands: Commands, help_text: str) -> None:
    models = group(commands, "models", help_text)
    fit = models.add_parser(
        "fit",
        help="calibrate a detector on a CSV of normal operation",
        description="Calibrate the onboarding detector on a CSV of normal operation: a timestamp "
        "column (ISO 8601, rows in time order) and numeric sensor columns. Each sensor's trailing "
        "mean is compared with its normal level; sensors whose level is not steady in the CSV are "
        "left out. Writes DIR/model.json (the parameters) and DIR/MODEL.md (a model card).",
    )
    fit.add_argument("--normal", type=Path, required=True, metavar="CSV", help="rows of normal operation")
    fit.add_argument("--out", type=Path, required=True, metavar="DIR", help="model directory to write")
    fit.add_argument(
        "--timestamp-column", default=None, metavar="NAME", help="timestamp column (default: the first)"
    )
    fit.add_argument(
        "--columns",
        type=column_list,
        default=None,
        metavar="A,B,C",
        help="sensor columns, comma-separated (default: every column but the timestamp)",
    )
    fit.add_argument(
        "--false-alarm-rate",
        type=rate,
        default=0.01,
        metavar="RATE",
        help="target share of normal rows flagged: the threshold is 1.5 x this upper quantile "
        "of the calibration scores (default: %(default)s)",
    )
    fit.add_argument(
        "--separator",
        choices=["auto", ",", ";", "tab"],
        default="auto",
        metavar="SEP",
        help="field separator: auto, ',', ';' or tab; auto picks the one the header holds most of "
        "(default: %(default)s)",
    )
    fit.set_defaults(run=_models_fit)

    score = models.add_parser(
        "score",
        help="score a CSV with a calibrated detector",
        description="Score every row of a CSV that has the model's timestamp and sensor columns. "
        "Writes one row per input row: timestamp, score and flag (1 when the score is above the "
        "model's threshold). The first rows, until the trailing window is full, have no score.",
    )
    score.add_argument("--model", type=Path, required=True, metavar="DIR", help="model directory from `fit`")
    score.add_argument("--input", type=Path, required=True, metavar="CSV", help="rows to score")
    score.add_argument("--out", type=Path, required=True, metavar="CSV", help="score CSV to write")
    score.set_defaults(run=_models_score)

    eval_skab = models.add_parser(
        "eval-skab",
        help="evaluate the detector on the SKAB benchmark",
        description="Run the SKAB outlier-detection protocol: per experiment file, calibrate on the "
        "first 400 rows and flag the rest; pool all test rows; print F1, FAR and MAR beside the "
        "all-anomaly baseline, per file, and false alarms on the anomaly-free recording.",
    )
    eval_skab.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="SKAB data folder holding valve1/ etc. (default: ../shared/data/skab beside the project)",
    )
    eval_skab.set_defaults(run=_models_eval_skab)

    train = models.add_parser(
        "train",
        help="train the subsystem detectors and the fault classifier on simulated fleets",
        description="Simulate a healthy fleet, a calibration fleet and a fleet with faults; train "
        "an autoencoder per subsystem and the fault classifier (TensorFlow, the `train` extra); "
        "export them to int8 TFLite, calibrate the thresholds on the exported models, check "
        "parity, and write each model with its card into DIR.",
    )
    train.add_argument(
        "--out",
        type=Path,
        default=Path("prognos/models/artifacts"),
        metavar="DIR",
        help="bundle directory (default: %(default)s)",
    )
    train.add_argument(
        "--vehicles", type=positive_int, default=120, help="vehicles per fleet (default: %(default)s)"
    )
    train.add_argument("--days", type=positive_int, default=90, help="days simulated (default: %(default)s)")
    train.add_argument(
        "--epochs", type=positive_int, default=40, help="training epochs at most (default: %(default)s)"
    )
    train.add_argument("--seed", type=int, default=100, help="first fleet seed (default: %(default)s)")
    train.add_argument(
        "--windows-per-day",
        type=positive_int,
        default=72,
        help="10-minute windows sampled a day (default: %(default)s)",
    )
    train.set_defaults(run=_models_train)

    evaluate = models.add_parser(
        "eval",
        help="evaluate a model bundle on simulated fleets it never saw",
        description="Simulate a fleet from a seed never used in training and report, per fault "
        "type, precision, recall, F1, median lead time (days from first alert to functional "
        "failure) and false alarms per 1,000 vehicle-days; and the classifier's confusion matrix.",
    )
    evaluate.add_argument(
        "--models",
        type=Path,
        default=Path("prognos/models/artifacts"),
        metavar="DIR",
        help="bundle directory (default: %(default)s)",
    )
    evaluate.add_argument(
        "--vehicles", type=positive_int, default=200, help="fleet size (default: %(default)s)"
    )
    evaluate.add_argument(
        "--days", type=positive_int, default=90, help="days simulated (default: %(default)s)"
    )
    evaluate.add_argument("--seed", type=int, default=900, help="fleet seed (default: %(default)s)")
    evaluate.set_defaults(run=_models_eval)

    keygen = models.add_parser(
        "keygen",
        help="create a model-signing key pair",
        description="Write PREFIX.pem (the ed25519 private key: keep it secret) and PREFIX.pub (the "
        "public key that gateways list under [models] trusted_keys).",
    )
    keygen.add_argument("--out", type=Path, required=True, metavar="PREFIX", help="key file prefix")
    keygen.set_defaults(run=_models_keygen)

    sign = models.add_parser(
        "sign",
        help="sign a model bundle for gateways",
        description="Pack a bundle directory and sign it with an ed25519 key; gateways install "
        "the file only if one of their trusted keys verifies it (docs/model-updates.md).",
    )
    sign.add_argument("--key", type=Path, required=True, metavar="PEM", help="private key from `keygen`")
    sign.add_argument(
        "--bundle",
        type=Path,
        default=Path("prognos/models/artifacts"),
        metavar="DIR",
        help="(default: %(default)s)",
    )
    sign.add_argument("--out", type=Path, required=True, metavar="FILE", help="signed bundle to write")
    sign.set_defaults(run=_models_sign)

    push = models.add_parser(
        "push",
        help="send a signed bundle to gateways over MQTT",
        description="Publish a signed bundle, retained with QoS 1, on the model topic of each "
        "VIN, so a gateway that is offline now receives it when it next connects.",
    )
    add_home_option(push)
    push.add_argument("--fleet", default=DEFAULT_FLEET, help="fleet name in topics (default: %(default)s)")
    push.add_argument("--file", type=Path, required=True, metavar="FILE", help="signed bundle from `sign`")
    push.add_argument("vins", nargs="+", metavar="VIN", help="vehicles to update")
    push.set_defaults(run=_models_push)


def _models_fit(args: argparse.Namespace) -> int:
    from prognos.models.csv_io import read_table, save_model
    from prognos.models.onboarding import fit

    table = read_table(
        args.normal, timestamp_column=args.timestamp_column, columns=args.columns, separator=args.separator
    )
    try:
        detector = fit(table.values, table.columns, false_alarm_rate=args.false_alarm_rate)
    except ConfigError as exc:
        raise ConfigError(f"{args.normal}: {exc}") from exc
    save_model(args.out, detector, source=table)
    print(
        f"calibrated on {detector.calibration_rows} rows of {args.normal}: "
        f"{len(detector.columns)} sensors used, {len(detector.excluded)} left out"
    )
    for name, why in detector.excluded.items():
        print(f"  left out {name}: {why}")
    print(
        f"threshold {detector.threshold:.3f} (false-alarm rate {detector.false_alarm_rate:g}, "
        f"margin {detector.margin:g}); model in {args.out}"
    )
    return 0


def _models_score(args: argparse.Namespace) -> int:
    from prognos.models.csv_io import load_model, read_table, write_scores
    from prognos.models.onboarding import flags, score

    saved = load_model(args.model)
    table = read_table(args.input, timestamp_column=saved.timestamp_column, columns=saved.detector.columns)
    scores = score(saved.detector, table.values)
    flagged = flags(saved.detector, scores)
    write_scores(args.out, table.timestamps, scores, flagged)
    rows = len(table.timestamps)
    print(
        f"scored {rows} rows of {args.input}: {int(flagged.sum())} flagged "
        f"({100 * flagged.mean():.1f}%) -> {args.out}"
    )
    return 0


def _models_eval_skab(args: argparse.Namespace) -> int:
    from prognos.models.skab import (
        LEADERBOARD_FILES,
        TRAIN_ROWS,
        anomaly_free_alarms,
        default_skab_dir,
        run_skab,
    )

    data = args.data if args.data is not None else default_skab_dir()
    result = run_skab(data)
    pooled = result.detector
    anomalous = pooled.tp + pooled.fn
    print(
        f"SKAB in {data}: {len(result.files)} files, first {TRAIN_ROWS} rows of each calibrate, "
        f"{pooled.rows} test rows pooled ({100 * anomalous / pooled.rows:.1f}% anomalous)"
    )
    if len(result.files) != LEADERBOARD_FILES:
        print(f"(the published leaderboard pools {LEADERBOARD_FILES} files; compare with care)")
    print(f"{'':24}{'F1':>7}{'FAR %':>8}{'MAR %':>8}")
    for label, counts in (("onboarding detector", pooled), ("all-anomaly baseline", result.all_anomaly)):
        print(f"{label:24}{counts.f1:7.3f}{100 * counts.far:8.2f}{100 * counts.mar:8.2f}")
    print(f"\n{'file':24}{'F1':>7}{'FAR %':>8}{'MAR %':>8}  sensors left out")
    for file in result.files:
        c = file.detector
        left_out = ", ".join(file.excluded) or "-"
        print(f"{file.name:24}{c.f1:7.3f}{100 * c.far:8.2f}{100 * c.mar:8.2f}  {left_out}")
    normal = anomaly_free_alarms(data)
    if normal is not None:
        print(
            f"\nanomaly-free.csv in pieces of the same protocol: {normal.fp} of {normal.rows} "
            f"test rows flagged (FAR {100 * normal.far:.2f}%)"
        )
    return 0


def _models_train(args: argparse.Namespace) -> int:
    require("tensorflow")
    from prognos.models.pipeline import TrainPlan, train_all

    plan = TrainPlan(
        vehicles=args.vehicles,
        days=float(args.days),
        epochs=args.epochs,
        seed=args.seed,
        windows_per_day=args.windows_per_day,
    )
    metrics = train_all(args.out, plan)
    for name, values in metrics.items():
        shown = ", ".join(f"{key} {value:.4g}" for key, value in values.items())
        print(f"{name}: {shown}")
    print(f"bundle written to {args.out}")
    return 0


def _models_eval(args: argparse.Namespace) -> int:
    from prognos.models.evaluate import format_report
    from prognos.models.pipeline import EVAL_SEED, TRAIN_SEED, evaluate_bundle

    if TRAIN_SEED <= args.seed <= TRAIN_SEED + 2:
        raise ConfigError(f"seed {args.seed} is a training seed; evaluate on another (default {EVAL_SEED})")
    report = evaluate_bundle(args.models, vehicles=args.vehicles, days=float(args.days), seed=args.seed)
    print(
        format_report(
            report.evaluation,
            report.classifier_confusion,
            f"{report.vehicles} vehicles x {report.days:g} days, seed {report.seed}",
            report.days_to_failure,
        )
    )
    return 0


def _models_keygen(args: argparse.Namespace) -> int:
    from prognos.signing import generate_key

    private_path, public_path = args.out.with_suffix(".pem"), args.out.with_suffix(".pub")
    if private_path.exists():
        raise ConfigError(f"{private_path} exists; not overwriting a key")
    private, public = generate_key()
    try:
        private_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private)
        public_path.write_bytes(public)
    except OSError as exc:
        raise ConfigError(f"cannot write the key files: {exc}") from exc
    print(f"wrote {private_path} (secret) and {public_path}")
    return 0


def _models_sign(args: argparse.Namespace) -> int:
    from prognos.edge.ota import sign_bundle
    from prognos.signing import load_private_key

    signed = sign_bundle(args.bundle, load_private_key(args.key))
    try:
        args.out.write_bytes(signed)
    except OSError as exc:
        raise ConfigError(f"cannot write {args.out}: {exc.strerror}") from exc
    print(f"wrote {args.out} ({len(signed)} bytes)")
    return 0


def _models_push(args: argparse.Namespace) -> int:
    require("paho.mqtt")
    from prognos.cloud.model_push import push_bundle
    from prognos.ops.state import load_stack

    try:
        payload = args.file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {args.file}: {exc.strerror}") from exc
    info = load_stack(stack_home(args))
    push_bundle(
        host=info.mqtt_host,
        port=info.mqtt_port,
        auth=info.broker_auth("operator"),
        fleet=args.fleet,
        vins=args.vins,
        payload=payload,
    )
    print(f"pushed {args.file} to {len(args.vins)} vehicles of fleet {args.fleet!r}")
    return 0
