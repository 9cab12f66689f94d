"""The models' commands: `prognos models` (fit, score, eval-skab, eval-nab, train, eval, keygen,
sign, push)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

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
from prognos.models.settings import DEFAULTS, SCORERS
from prognos.ops.state import stack_home

if TYPE_CHECKING:
    from prognos.models.selection import Outcome


def add_models(commands: Commands, help_text: str) -> None:
    models = group(commands, "models", help_text)
    fit = models.add_parser(
        "fit",
        help="calibrate a detector on a CSV of normal operation",
        description="Calibrate the onboarding detector on a CSV of normal operation: a timestamp "
        "column (ISO 8601, rows in time order) and numeric sensor columns. Each sensor's normal is "
        "learned from the rows: a fixed level, a daily or weekly cycle found in them, and a "
        "reference that follows slow drift; constant sensors are left out. Writes DIR/model.json "
        "(the parameters) and DIR/MODEL.md (a model card). The defaults are the settings a "
        "leave-one-file-out evaluation chose on the SKAB benchmark (docs/models.md).",
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
        "--scorers",
        type=scorer_list,
        default=DEFAULTS.scorers,
        metavar="A,B",
        help=f"scorers, comma-separated, of {', '.join(SCORERS)}; pca, mset and autoencoder need two "
        f"sensors or more (default: {','.join(DEFAULTS.scorers)})",
    )
    fit.add_argument(
        "--window",
        type=positive_int,
        default=DEFAULTS.window_rows,
        metavar="ROWS",
        help="trailing mean over this many rows (default: %(default)s)",
    )
    fit.add_argument(
        "--false-alarm-rate",
        type=rate,
        default=DEFAULTS.false_alarm_rate,
        metavar="RATE",
        help="each scorer's unit is the (1 - RATE) quantile of its calibration scores (default: %(default)s)",
    )
    fit.add_argument(
        "--margin",
        type=at_least_one,
        default=DEFAULTS.margin,
        metavar="X",
        help="an alarm starts when a score exceeds X units (default: %(default)s)",
    )
    fit.add_argument(
        "--release",
        type=share,
        default=DEFAULTS.release,
        metavar="SHARE",
        help="an alarm ends when the score falls to SHARE x the margin (default: %(default)s)",
    )
    fit.add_argument(
        "--drift-rows",
        type=positive_int,
        default=DEFAULTS.drift_rows,
        metavar="ROWS",
        help="time constant of the reference that follows a wandering level (default: %(default)s)",
    )
    fit.add_argument(
        "--leave-out-drifting",
        action="store_true",
        help="leave out sensors whose level wanders in the calibration rows while steady ones "
        "remain, instead of following them",
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
        help="evaluate the detectors on the SKAB benchmark, leave one file out",
        description="Run the SKAB outlier-detection protocol: per experiment file, calibrate on the "
        "first 400 rows and flag the rest; pool all test rows. Every candidate setting is run on "
        "every file; for each file the setting with the best pooled F1 on the other files is "
        "scored on it (leave one file out). Prints F1, FAR and MAR held out and in-sample for each "
        "detector family, the all-anomaly and per-sensor z-score baselines, the shipped defaults "
        "file by file, false alarms on the anomaly-free recording, and each scorer's memory and "
        "time per row. Takes about a minute.",
    )
    eval_skab.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="SKAB data folder holding valve1/ etc. (default: ../shared/data/skab beside the project)",
    )
    eval_skab.set_defaults(run=_models_eval_skab)

    eval_nab = models.add_parser(
        "eval-nab",
        help="evaluate the detector on NAB series with labelled windows",
        description="NAB's convention: the first 15%% of each series calibrates (never scored). "
        "Prints per file the windows hit and the false-alarm onsets (alarms starting outside "
        "every window) with the shipped defaults (chosen on SKAB, never on NAB), with settings "
        "chosen on the other NAB files (leave one file out), and for the all-anomaly and "
        "per-sensor z-score baselines.",
    )
    eval_nab.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder with windows.json and the CSVs (default: ../shared/data/nab beside the project)",
    )
    eval_nab.set_defaults(run=_models_eval_nab)

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


def scorer_list(text: str) -> tuple[str, ...]:
    names = tuple(column_list(text))
    unknown = [n for n in names if n not in SCORERS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown scorer {unknown[0]!r}; choose from {', '.join(SCORERS)}")
    return names


def at_least_one(text: str) -> float:
    value = _number(text)
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def share(text: str) -> float:
    value = _number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not above 0 and at most 1")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _models_fit(args: argparse.Namespace) -> int:
    from prognos.models.csv_io import read_table, save_model
    from prognos.models.onboarding import fit
    from prognos.models.settings import Settings

    table = read_table(
        args.normal, timestamp_column=args.timestamp_column, columns=args.columns, separator=args.separator
    )
    settings = Settings(
        scorers=args.scorers,
        window_rows=args.window,
        false_alarm_rate=args.false_alarm_rate,
        margin=args.margin,
        release=args.release,
        drift_rows=args.drift_rows,
        follow_drift=not args.leave_out_drifting,
    )
    try:
        detector = fit(table.values, table.columns, seconds=table.seconds, settings=settings)
    except ConfigError as exc:
        raise ConfigError(f"{args.normal}: {exc}") from exc
    save_model(args.out, detector, source=table)
    print(
        f"calibrated on {detector.calibration_rows} rows of {args.normal}: "
        f"{len(detector.columns)} sensors used, {len(detector.excluded)} left out"
    )
    for name, baseline in zip(detector.columns, detector.baselines, strict=True):
        print(f"  {name}: {baseline.describe()}")
    for name, why in detector.excluded.items():
        print(f"  left out {name}: {why}")
    for note in detector.notes:
        print(f"  note: {note}")
    print(
        f"scorers {'+'.join(detector.scorers)}; alarm above {detector.settings.margin:g} units, "
        f"{100 * detector.calibration_alarm_rate:.2f}% of the calibration rows flagged; model in {args.out}"
    )
    return 0


def _models_score(args: argparse.Namespace) -> int:
    from prognos.models.csv_io import load_model, read_table, write_scores
    from prognos.models.onboarding import flags, score

    saved = load_model(args.model)
    table = read_table(args.input, timestamp_column=saved.timestamp_column, columns=saved.detector.columns)
    scores = score(saved.detector, table.values, table.seconds)
    flagged = flags(saved.detector, scores)
    write_scores(args.out, table.timestamps, scores, flagged)
    rows = len(table.timestamps)
    print(
        f"scored {rows} rows of {args.input}: {int(flagged.sum())} flagged "
        f"({100 * flagged.mean():.1f}%) -> {args.out}"
    )
    return 0


def _metrics(label: str, outcome: Outcome, width: int = 44) -> str:
    return f"{label:{width}}{outcome.f1:7.3f}{100 * outcome.far:8.2f}{100 * outcome.mar:8.2f}"


def _one_blas_thread() -> None:
    """The matrices here are small: BLAS threads only contend for the cores (a gateway has one
    to spare), and the measured time per row should be a single core's. Takes effect only
    before numpy is first imported, as in a fresh `prognos` process."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def _models_eval_skab(args: argparse.Namespace) -> int:
    _one_blas_thread()
    from prognos.models.skab import LEADERBOARD_FILES, TRAIN_ROWS, default_skab_dir, evaluate_skab

    data = args.data if args.data is not None else default_skab_dir()
    result = evaluate_skab(data)
    shipped, report = result.shipped, result.report
    pooled = shipped.detector
    anomalous = pooled.tp + pooled.fn
    files = len(shipped.files)
    print(
        f"SKAB in {data}: {files} files, first {TRAIN_ROWS} rows of each calibrate, "
        f"{pooled.rows} test rows pooled ({100 * anomalous / pooled.rows:.1f}% anomalous)"
    )
    if files != LEADERBOARD_FILES:
        print(f"(the published leaderboard pools {LEADERBOARD_FILES} files; compare with care)")
    print(
        f"{len(result.table.candidates)} candidate settings; held out = each file scored with the "
        f"setting chosen on the other {files - 1}"
    )
    print(f"\n{'':44}{'F1':>7}{'FAR %':>8}{'MAR %':>8}")
    family = report.shipped
    print(_metrics("shipped defaults, held out", family.held_out_total))
    print(_metrics("shipped defaults, in-sample", pooled))
    print(_metrics("all-anomaly baseline", shipped.all_anomaly))
    print(_metrics("per-sensor z-score baseline (|z| > 3)", shipped.zscore))
    print(f"\nshipped defaults: {DEFAULTS.describe()}")
    print(f"chosen on all {files} files: {family.chosen.describe()}")
    print(f"same setting chosen in {family.stable} of {files} folds")

    print(
        f"\n{'detector family (knobs chosen per fold)':44}{'F1':>7}{'FAR %':>8}{'MAR %':>8}{'in-sample':>11}"
    )
    for scorers, selection in report.by_family.items():
        line = _metrics("+".join(scorers), selection.held_out_total)
        print(f"{line}{selection.in_sample_total.f1:11.3f}")
    print(_metrics("any family, any knobs (one selection)", report.everything.held_out_total))
    print(_metrics("family chosen inside each fold (nested)", report.nested_total))

    print(f"\n{'file':16}{'F1':>7}{'FAR %':>8}{'MAR %':>8}{'held out':>10}  followed for drift / left out")
    for file in shipped.files:
        c = file.detector
        held = family.held_out[file.name][1]
        followed = ", ".join(file.drift_followed) or "-"
        left_out = ", ".join(file.excluded) or "-"
        metrics = f"{c.f1:7.3f}{100 * c.far:8.2f}{100 * c.mar:8.2f}{held.f1:10.3f}"
        print(f"{file.name:16}{metrics}  {followed} / {left_out}")
    normal = result.anomaly_free
    if normal is not None:
        print(
            f"\nanomaly-free.csv in pieces of the same protocol: {normal.fp} of {normal.rows} "
            f"test rows flagged (FAR {100 * normal.far:.2f}%)"
        )
    print(
        f"\n{'scorer (shipped knobs, 8 sensors)':36}{'numbers':>9}{'state':>7}{'memory B':>10}"
        f"{'model B':>9}{'fit ms':>8}{'us/row':>8}{'call us':>9}"
    )
    for f in result.footprints:
        print(
            f"{'+'.join(f.scorers):36}{f.parameters:9d}{f.state:7d}{f.memory_bytes:10d}{f.model_bytes:9d}"
            f"{f.fit_ms:8.1f}{f.batch_us_per_row:8.1f}{f.row_us:9.0f}"
        )
    return 0


def _models_eval_nab(args: argparse.Namespace) -> int:
    _one_blas_thread()
    from prognos.models.nab import PROBATION_SHARE, default_nab_dir, evaluate_nab
    from prognos.models.selection import Outcome

    data = args.data if args.data is not None else default_nab_dir()
    result = evaluate_nab(data)
    print(
        f"NAB in {data}: {len(result.shipped.files)} files; the first {100 * PROBATION_SHARE:g}% of each "
        "calibrates and is never scored"
    )
    print(
        "per detector: windows hit / windows, false-alarm onsets (alarms starting outside every "
        "window), % of the rows outside the windows flagged\n"
    )
    columns = ("shipped defaults", "held out", "all-anomaly", "z-score |z|>3")
    print(f"{'file':42}{'rows':>7}" + "".join(f"{c:>20}" for c in columns))
    report = result.report.everything
    totals = [Outcome()] * 4
    for file in result.shipped.files:
        held = report.held_out[file.name][1]
        row = (file.detector, held, file.all_anomaly, file.zscore)
        totals = [a + b for a, b in zip(totals, row, strict=True)]
        print(f"{file.name:42}{file.rows:7d}" + "".join(_hits(o) for o in row))
    print(f"{'all':42}{'':7}" + "".join(_hits(o) for o in totals))
    print("\nnormal as calibrated (shipped defaults):")
    for file in result.shipped.files:
        print(f"  {file.name}: {file.baseline}")
    print("\nsettings chosen on the other files (held out):")
    for name, (settings, _) in report.held_out.items():
        print(f"  {name}: {settings.describe()}")
    return 0


def _hits(outcome: Outcome) -> str:
    return f"{f'{outcome.hits}/{outcome.windows}':>8}{outcome.false_onsets:5d}{100 * outcome.far:6.1f}%"


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
