"""The `prognos` command: the one place that parses arguments, configures logging and prints."""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from prognos import __version__
from prognos.errors import ConfigError, PrognosError
from prognos.ops.state import DEFAULT_DATABASE

DEFAULT_BUNDLE = Path(__file__).resolve().parent / "models" / "artifacts"
DEFAULT_FLEET = "demo"
DEMO_VEHICLES = 64  # of fleet_demo.toml's 200: one bench process, a first look in a few minutes
DEMO_FLEET_JOIN_S = 120.0  # for a stopped fleet run: agents flush, the bench judges and reports
EXTRAS = {
    "paho": "edge",
    "requests": "cloud",
    "pandas": "cloud",
    "streamlit": "dashboard",
    "plotly": "dashboard",
    "tensorflow": "train",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        result: int = args.run(args)
        return result
    except ConfigError as exc:
        print(f"prognos: error: {exc}", file=sys.stderr)
        return 2
    except PrognosError as exc:
        print(f"prognos: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`prognos ... | head`): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prognos",
        description="Predictive after-sales service for vehicle fleets.",
    )
    parser.add_argument("--version", action="version", version=f"prognos {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    stack = _group(commands, "stack", "run the local broker (Mosquitto) and database (InfluxDB)")
    for name, text, func in (
        ("up", "start the stack, or report the one already running", _stack_up),
        ("down", "stop the stack; its data stays for the next `up`", _stack_down),
        ("status", "show whether each service runs and answers", _stack_status),
    ):
        sub = stack.add_parser(name, help=text, description=text)
        _home_option(sub)
        sub.set_defaults(run=func)
        if name == "up":
            sub.description = (
                "Start Mosquitto and InfluxDB as local processes. By default the broker speaks TLS "
                "(a certificate from the stack's own fleet CA, pki/ca.pem) and admits only known users "
                "under an ACL, and InfluxDB requires a login, with one least-privilege user per cloud "
                "role (docs/security.md)."
            )
            sub.add_argument(
                "--insecure",
                action="store_true",
                help="development only: plain MQTT with anonymous access, InfluxDB without logins",
            )
            sub.add_argument(
                "--database",
                action="append",
                default=None,
                help=f"database to create with every role's grant; repeatable (default: {DEFAULT_DATABASE})",
            )

    fleet_group = _group(commands, "fleet", "vehicle identities on the broker")
    provision = fleet_group.add_parser(
        "provision",
        help="issue a vehicle's broker credentials and its ACL entry",
        description="Create a login for VIN on the stack's broker that may publish only VIN's diag and "
        "status topics and read only VIN's model topic, and write what its gateway needs into "
        "OUT/VIN: the CA certificate, the password (readable by the owner only) and the [broker] "
        "table for gateway.toml. Provisioning a VIN again issues new credentials and revokes the old.",
    )
    _home_option(provision)
    provision.add_argument("vins", nargs="+", metavar="VIN", help="vehicle identification numbers")
    provision.add_argument("--fleet", required=True, help="the fleet the vehicles belong to")
    provision.add_argument(
        "--out",
        type=Path,
        default=Path("provisioned"),
        help="directory for the credentials (default: %(default)s)",
    )
    provision.set_defaults(run=_fleet_provision)
    revoke = fleet_group.add_parser(
        "revoke",
        help="remove a vehicle's broker login (a stolen or retired gateway)",
        description="Remove VIN's login and ACL entry; the broker closes its open connection at once.",
    )
    _home_option(revoke)
    revoke.add_argument("vins", nargs="+", metavar="VIN", help="vehicle identification numbers")
    revoke.set_defaults(run=_fleet_revoke)

    cloud = _group(commands, "cloud", "cloud services: ingest, analytics, dealer data")
    ingest = cloud.add_parser(
        "ingest",
        help="move diagnostic records from MQTT into InfluxDB",
        description="Subscribe to every vehicle's diag topic through an MQTT 5 shared "
        "subscription and write the records to InfluxDB; start several to share the load. "
        "Runs until interrupted.",
    )
    _home_option(ingest)
    ingest.add_argument(
        "--database", default=DEFAULT_DATABASE, help="InfluxDB database (default: %(default)s)"
    )
    ingest.add_argument("--group", default="ingest", help="shared-subscription group (default: %(default)s)")
    ingest.add_argument("--fleet", default="+", help="only this fleet (default: all)")
    ingest.add_argument(
        "--client-id",
        default=None,
        help="MQTT client id; a worker restarted with the same id resumes its session and the records "
        "the broker kept for it. Give each worker of a group on one host its own "
        "(default: prognos-ingest-GROUP-HOSTNAME)",
    )
    ingest.add_argument(
        "--batch-size", type=_positive_int, default=500, help="records per write (default: %(default)s)"
    )
    ingest.set_defaults(run=_cloud_ingest)

    import_dms = cloud.add_parser(
        "import-dms",
        help="import dealer-system exports: work orders, complaints, surveys, stock, finance, vehicles",
        description="Check every row of every FILE (CSV, JSON array or JSON Lines), then write all "
        "of them to InfluxDB, or nothing when any row is bad: bad rows are listed with their line "
        "numbers. A file's kind comes from --kind or from its columns. Importing a file again "
        "overwrites its points. docs/dms.md describes the formats.",
    )
    _home_option(import_dms)
    import_dms.add_argument("files", nargs="+", type=Path, metavar="FILE", help="DMS export files")
    import_dms.add_argument(
        "--database", default=DEFAULT_DATABASE, help="InfluxDB database (default: %(default)s)"
    )
    import_dms.add_argument(
        "--kind",
        default=None,
        help="kind of every FILE: work_order, complaint, survey, parts_stock, dealer_finance, "
        "vehicle or service_center (default: told by each file's columns)",
    )
    import_dms.add_argument(
        "--max-errors",
        type=_positive_int,
        default=20,
        metavar="N",
        help="bad rows listed at most; the rest are counted (default: %(default)s)",
    )
    import_dms.add_argument(
        "--check", action="store_true", help="only check the files; write nothing, need no database"
    )
    import_dms.set_defaults(run=_cloud_import_dms)

    dealer_kpis = cloud.add_parser(
        "dealer-kpis",
        help="dealer KPIs per period and the dealer risk list",
        description="Compute each dealer's KPIs per week or month (first-time fix, first-contact "
        "resolution, handling and repair time, SLA compliance, CSAT, NPS, parts turnover, "
        "complaint rate) from the imported DMS data, and the risk score with its reasons.",
    )
    _home_option(dealer_kpis)
    dealer_kpis.add_argument(
        "--database", default=DEFAULT_DATABASE, help="InfluxDB database (default: %(default)s)"
    )
    dealer_kpis.add_argument(
        "--period", choices=["week", "month"], default="month", help="KPI period (default: %(default)s)"
    )
    dealer_kpis.add_argument(
        "--periods", type=_positive_int, default=1, help="latest periods printed (default: %(default)s)"
    )
    dealer_kpis.add_argument(
        "--window",
        type=_positive_int,
        default=6,
        help="latest months the risk score looks at, at least 3 (default: %(default)s)",
    )
    dealer_kpis.add_argument("--out", type=Path, default=None, metavar="CSV", help="write every KPI row")
    dealer_kpis.add_argument("--risk-out", type=Path, default=None, metavar="CSV", help="write the risk list")
    dealer_kpis.set_defaults(run=_cloud_dealer_kpis)

    analytics = cloud.add_parser(
        "analytics",
        help="alerts, cohorts and campaigns, service list, maintenance intervals and parts plan",
        description="Read the diagnostic records, the vehicle registry and the parts stock from "
        "InfluxDB; compute prioritised alerts, cohorts with their campaign lists, the proactive "
        "service list, personalised maintenance intervals and the parts plan; write them back as "
        "one snapshot (docs/analytics.md). Runs once, or with --every until interrupted.",
    )
    _home_option(analytics)
    analytics.add_argument(
        "--database", default=DEFAULT_DATABASE, help="InfluxDB database (default: %(default)s)"
    )
    analytics.add_argument(
        "--every", default=None, metavar="DURATION", help="run every DURATION, like 15m (default: run once)"
    )
    analytics.add_argument(
        "--as-of", default=None, metavar="TIME", help="ISO 8601 time of the snapshot (default: now)"
    )
    analytics.add_argument(
        "--lookback", default="30d", metavar="DURATION", help="data window (default: %(default)s)"
    )
    analytics.add_argument("--horizon", default="8w", metavar="WEEKS", help="parts plan weeks (default: 8w)")
    analytics.add_argument(
        "--keep", default="30d", metavar="DURATION", help="keep snapshots this long (default: %(default)s)"
    )
    analytics.set_defaults(run=_cloud_analytics)

    reassign = cloud.add_parser(
        "reassign",
        help="a dealer stops operating: move its open appointments and customers",
        description="Place the dealer's open work orders and the customers of its service centers "
        "at the nearest other service centers with capacity, the skills and the parts (in stock, or "
        "within their lead time), from the imported DMS data (docs/dms.md, dealer closure).",
    )
    _home_option(reassign)
    reassign.add_argument("--dealer", required=True, metavar="ID", help="the dealer that closes")
    reassign.add_argument(
        "--database", default=DEFAULT_DATABASE, help="InfluxDB database (default: %(default)s)"
    )
    reassign.add_argument("--as-of", default=None, metavar="TIME", help="ISO 8601 time (default: now)")
    reassign.add_argument("--out", type=Path, default=None, metavar="CSV", help="write every assignment")
    reassign.set_defaults(run=_cloud_reassign)

    edge = _group(commands, "edge", "gateway agents")
    simulate = edge.add_parser(
        "simulate",
        help="drive simulated vehicles through real agents to the broker",
        description="Simulate a fleet: each vehicle's signals go through its own agent "
        "(windows, features, rules) and its own MQTT connection. Simulated time runs "
        "SPEEDUP times faster than real time and starts DAYS_BACK days ago.",
    )
    _home_option(simulate)
    simulate.add_argument(
        "--vehicles", type=_positive_int, default=8, help="fleet size (default: %(default)s)"
    )
    simulate.add_argument(
        "--fleet", default=DEFAULT_FLEET, help="fleet name in topics (default: %(default)s)"
    )
    simulate.add_argument("--seed", type=int, default=1, help="simulation seed (default: %(default)s)")
    simulate.add_argument(
        "--window-s",
        type=float,
        default=600.0,
        help="window length in simulated seconds (default: %(default)s)",
    )
    simulate.add_argument(
        "--speedup",
        type=float,
        default=600.0,
        help="simulated seconds per real second (default: %(default)s)",
    )
    simulate.add_argument(
        "--days-back",
        type=float,
        default=20.0,
        help="simulated time starts this many days ago (default: %(default)s)",
    )
    simulate.add_argument(
        "--windows",
        type=_positive_int,
        default=None,
        help="stop after this many windows (default: run until interrupted)",
    )
    simulate.add_argument(
        "--models",
        type=Path,
        default=DEFAULT_BUNDLE,
        metavar="DIR",
        help="model bundle the agents run (default: the committed bundle, %(default)s); "
        "'none' for threshold rules only",
    )
    simulate.set_defaults(run=_edge_simulate)

    run = edge.add_parser(
        "run",
        help="run the gateway agent of one vehicle",
        description="Run a gateway: read the sources of CONFIG (CAN, recorded logs, sensor nodes), "
        "assess windows with the signal rules and the model bundle, spool every record on disk and "
        "publish it with QoS 1, install signed model updates. Runs until SIGTERM or Ctrl-C, or, "
        "when every source is a recording, until the recordings end. docs/gateway.md describes "
        "the config; examples/gateway.toml is a complete example.",
    )
    run.add_argument("--config", type=Path, required=True, metavar="FILE", help="gateway config (TOML)")
    run.set_defaults(run=_edge_run)

    hil = _group(commands, "hil", "hardware-in-the-loop bench")
    hil_run = hil.add_parser(
        "run",
        help="run a bench scenario against real agents and judge them",
        description="Run SCENARIO (TOML, docs/hil.md): simulated vehicles drive real gateway agents "
        "through real interfaces (CAN, slcan, UART, replay) in simulated time; the records the agents "
        "publish are read back from the broker and judged against the scenario's expectations. Writes "
        "DIR/summary.json and DIR/report.html; exits 1 if any expectation fails.",
    )
    _home_option(hil_run)
    hil_run.add_argument("scenario", type=Path, metavar="SCENARIO", help="scenario file (TOML)")
    hil_run.add_argument("--report", type=Path, required=True, metavar="DIR", help="report directory")
    hil_run.add_argument(
        "--fleet", default=None, help="fleet name in topics (default: the scenario's, else hil-NAME-RANDOM)"
    )
    hil_run.set_defaults(run=_hil_run)

    dashboard = commands.add_parser(
        "dashboard",
        help="serve the Streamlit dashboard",
        description="Serve the dashboard for service managers and parts planners.",
    )
    _home_option(dashboard)
    dashboard.add_argument(
        "--database", default=DEFAULT_DATABASE, help="InfluxDB database (default: %(default)s)"
    )
    dashboard.add_argument(
        "--port", type=_positive_int, default=8501, help="HTTP port (default: %(default)s)"
    )
    dashboard.set_defaults(run=_dashboard)

    demo = commands.add_parser(
        "demo",
        help="stack, bench fleet through real agents, ingest, analytics and dashboard in one command",
        description="Start the local stack (or use the one running in HOME), import the fleet's "
        "dealer data and vehicle registry, start an ingest worker, the analytics job (every minute) "
        "and the dashboard, and run the fleet scenario on the HIL bench: simulated vehicles through "
        "real gateway agents and real interfaces (virtual CAN, sensor-node UART), their records "
        "through the broker into the database. Print the dashboard URL; when the fleet run ends, "
        "print where its HIL report is and keep the dashboard up until interrupted.",
    )
    _home_option(demo)
    demo.add_argument(
        "--scenario",
        type=Path,
        default=None,
        metavar="FILE",
        help="fleet scenario, with a generated fleet (default: prognos/hil/scenarios/fleet_demo.toml)",
    )
    demo.add_argument(
        "--vehicles",
        type=_positive_int,
        default=DEMO_VEHICLES,
        metavar="N",
        help="run only the scenario's first N vehicles (default: %(default)s of fleet_demo.toml's 200)",
    )
    demo.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="DIR",
        help="HIL report directory (default: HOME/hil/NAME)",
    )
    demo.add_argument(
        "--port", type=_positive_int, default=8501, help="dashboard port (default: %(default)s)"
    )
    demo.add_argument(
        "--duration-s",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until interrupted)",
    )
    demo.set_defaults(run=_demo)

    models = _group(commands, "models", "detectors calibrated on a fleet's own normal data")
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
        type=_column_list,
        default=None,
        metavar="A,B,C",
        help="sensor columns, comma-separated (default: every column but the timestamp)",
    )
    fit.add_argument(
        "--false-alarm-rate",
        type=_rate,
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
        "--vehicles", type=_positive_int, default=120, help="vehicles per fleet (default: %(default)s)"
    )
    train.add_argument("--days", type=_positive_int, default=90, help="days simulated (default: %(default)s)")
    train.add_argument(
        "--epochs", type=_positive_int, default=40, help="training epochs at most (default: %(default)s)"
    )
    train.add_argument("--seed", type=int, default=100, help="first fleet seed (default: %(default)s)")
    train.add_argument(
        "--windows-per-day",
        type=_positive_int,
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
        "--vehicles", type=_positive_int, default=200, help="fleet size (default: %(default)s)"
    )
    evaluate.add_argument(
        "--days", type=_positive_int, default=90, help="days simulated (default: %(default)s)"
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
    _home_option(push)
    push.add_argument("--fleet", default=DEFAULT_FLEET, help="fleet name in topics (default: %(default)s)")
    push.add_argument("--file", type=Path, required=True, metavar="FILE", help="signed bundle from `sign`")
    push.add_argument("vins", nargs="+", metavar="VIN", help="vehicles to update")
    push.set_defaults(run=_models_push)

    forecast = _group(commands, "forecast", "part-demand forecasts and parts planning (docs/forecast.md)")
    demand = forecast.add_parser(
        "demand",
        help="forecast every series of a demand table",
        description="Read a wide demand table (first column the period, one numeric column per "
        "series; empty cells are unknown periods) and write OUT with one row per future period and "
        "one column per series (point forecasts), and OUT's name with .intervals.csv for .csv "
        "(SERIES_lower and SERIES_upper per series).",
    )
    demand.add_argument("--history", type=Path, required=True, metavar="CSV", help="demand table")
    demand.add_argument("--horizon", type=int, required=True, metavar="N", help="periods to forecast")
    demand.add_argument("--out", type=Path, required=True, metavar="CSV", help="forecast table to write")
    demand.add_argument(
        "--level", type=float, default=0.9, help="central interval probability (default: %(default)s)"
    )
    demand.set_defaults(run=_forecast_demand)

    forecast_backtest = forecast.add_parser(
        "backtest",
        help="score the forecaster against Croston, SBA and all-zero on held-out periods",
        description="Hold out the last periods of a demand table, fit every method on the rest, "
        "forecast the held-out periods once and print mean RMSSE and MASE per method, and the "
        "coverage of the forecaster's intervals.",
    )
    forecast_backtest.add_argument(
        "--history",
        type=Path,
        default=None,
        metavar="CSV",
        help="demand table (default: ../shared/data/carparts/carparts.csv beside the project)",
    )
    forecast_backtest.add_argument(
        "--holdout", type=int, default=12, metavar="N", help="periods held out (default: %(default)s)"
    )
    forecast_backtest.add_argument(
        "--level", type=float, default=0.9, help="central interval probability (default: %(default)s)"
    )
    forecast_backtest.set_defaults(run=_forecast_backtest)

    parts = forecast.add_parser(
        "parts",
        help="weekly part demand per service center from predicted failures, and reorders",
        description="Combine predicted failures (each spread over the weeks by its days-to-failure "
        "interval) with the baseline of the weekly demand history; write OUT (service center, "
        "part, week: forecast with interval) and OUT's name with .reorder.csv for .csv (safety "
        "stock, reorder point and order quantity per service center and part).",
    )
    parts.add_argument(
        "--failures",
        type=Path,
        default=None,
        metavar="CSV",
        help="vin, service_center, part (or code), days_to_failure, days_low, days_high (default: "
        "the open faults and the vehicle registry in InfluxDB, and its DMS stock unless --stock)",
    )
    _home_option(parts)
    parts.add_argument(
        "--database",
        default=DEFAULT_DATABASE,
        help="InfluxDB database read without --failures (default: %(default)s)",
    )
    parts.add_argument(
        "--history", type=Path, default=None, metavar="CSV", help="week, service_center, part, units"
    )
    parts.add_argument(
        "--stock",
        type=Path,
        default=None,
        metavar="CSV",
        help="service_center, part, on_hand, lead_time_weeks",
    )
    parts.add_argument("--horizon", default="8w", metavar="WEEKS", help="weeks ahead, 8w or 8 (default: 8w)")
    parts.add_argument("--out", type=Path, required=True, metavar="CSV", help="weekly plan to write")
    parts.add_argument(
        "--service-level", type=float, default=0.95, help="cycle service level (default: %(default)s)"
    )
    parts.add_argument(
        "--review-weeks", type=float, default=1.0, help="weeks between orders (default: %(default)s)"
    )
    parts.add_argument(
        "--default-lead-time-weeks",
        type=float,
        default=2.0,
        help="lead time of pairs missing from --stock (default: %(default)s)",
    )
    parts.add_argument(
        "--level", type=float, default=0.9, help="central interval probability (default: %(default)s)"
    )
    parts.set_defaults(run=_forecast_parts)
    return parser


def _group(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    parser = commands.add_parser(name, help=text, description=text)
    parser.set_defaults(run=lambda _args: _usage(parser))
    return parser.add_subparsers(title="commands", metavar="COMMAND")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _home_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home", type=Path, default=None, help="stack directory (default: $PROGNOS_HOME or ./.prognos)"
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def _column_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"{text!r} has an empty column name")
    return names


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 0.5:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 0.5")
    return value


def _require(module: str) -> ModuleType:
    """Import an optional dependency, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module.split(".")[0], "edge,cloud,dashboard")
        raise ConfigError(f"{module} is not installed: pip install 'prognos[{extra}]'") from exc


def _home(args: argparse.Namespace) -> Path:
    from prognos.ops.state import default_home

    return Path(args.home).resolve() if args.home else default_home()


def _models_train(args: argparse.Namespace) -> int:
    _require("tensorflow")
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


def _stack_up(args: argparse.Namespace) -> int:
    from prognos.ops.stack import stack_up

    if args.insecure:
        print(INSECURE_WARNING, file=sys.stderr)
    databases = tuple(args.database or (DEFAULT_DATABASE,))
    info, started = stack_up(_home(args), secure=not args.insecure, databases=databases)
    print(("started" if started else "already running") + f" stack in {info.home}")
    if info.secure:
        print(f"  mqtt     {info.mqtt_address} (TLS: CA {info.ca_file})")
        print(f"  influxdb {info.influx_url} (logins in {info.credentials_dir})")
    else:
        print(f"  mqtt     {info.mqtt_address} (NO TLS, NO LOGIN)")
        print(f"  influxdb {info.influx_url} (NO LOGIN)")
    return 0


INSECURE_WARNING = (
    "WARNING: insecure stack: the broker takes anonymous plain-text connections and InfluxDB "
    "needs no login. Use it for development on this machine only."
)


def _fleet_provision(args: argparse.Namespace) -> int:
    from prognos.ops.provision import provision_vehicles
    from prognos.ops.state import load_stack

    info = load_stack(_home(args))
    written = provision_vehicles(info, args.fleet, args.vins, args.out)
    for vin, directory in written.items():
        print(f"{vin}: credentials in {directory} ({directory / 'broker.toml'} is the [broker] table)")
    return 0


def _fleet_revoke(args: argparse.Namespace) -> int:
    from prognos.ops.provision import revoke_vehicles
    from prognos.ops.state import load_stack

    info = load_stack(_home(args))
    unknown = revoke_vehicles(info, args.vins)
    for vin in args.vins:
        print(f"{vin}: unknown" if vin in unknown else f"{vin}: revoked")
    return 1 if unknown else 0


def _stack_down(args: argparse.Namespace) -> int:
    from prognos.ops.stack import stack_down

    home = _home(args)
    print(f"stopped stack in {home}" if stack_down(home) else f"no stack in {home}")
    return 0


def _stack_status(args: argparse.Namespace) -> int:
    from prognos.ops.stack import stack_status
    from prognos.ops.state import read_state

    home = _home(args)
    info = read_state(home)
    if info is None:
        print(f"no stack in {home}")
        return 1
    status = stack_status(home)
    print(f"mosquitto {'up' if status['mosquitto'] else 'DOWN'}  {info.mqtt_address}")
    print(f"influxd   {'up' if status['influxd'] else 'DOWN'}  {info.influx_url}")
    return 0 if all(status.values()) else 1


def _until_signalled(duration_s: float | None = None) -> threading.Event:
    """An event set by SIGINT or SIGTERM, or when `duration_s` has passed."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    if duration_s is not None:
        threading.Timer(duration_s, stop.set).start()
    return stop


def _cloud_ingest(args: argparse.Namespace) -> int:
    _require("paho.mqtt")
    _require("requests")
    from prognos.cloud.ingest import IngestWorker, tune_garbage_collection
    from prognos.ops.access import stack_influx
    from prognos.ops.state import load_stack

    info = load_stack(_home(args))
    tune_garbage_collection()
    worker = IngestWorker(
        host=info.mqtt_host,
        port=info.mqtt_port,
        auth=info.broker_auth("ingest"),
        influx=stack_influx(info, "ingest"),
        client_id=args.client_id or f"prognos-ingest-{args.group}-{socket.gethostname()}"[:64],
        database=args.database,
        group=args.group,
        fleet=args.fleet,
        batch_size=args.batch_size,
    )
    stop = _until_signalled()
    worker.start()
    print(f"ingest: {worker.subscription} -> {info.influx_url} database {args.database}", flush=True)
    stats = worker.run(stop)
    print(
        f"ingest stopped: {stats.received} received, {stats.records_written} stored, "
        f"{stats.dead_letters} dead letters"
    )
    return 0


def _cloud_import_dms(args: argparse.Namespace) -> int:
    _require("requests")
    _require("pandas")
    from tqdm import tqdm

    from prognos.cloud.dms_import import RejectedFilesError, check_files, write_checked
    from prognos.ops.access import stack_influx
    from prognos.ops.state import load_stack

    def progress(description: str, total: int) -> tqdm:
        return tqdm(total=total, desc=description, unit="row", leave=False, disable=None, file=sys.stderr)

    checked = check_files(args.files, kind=args.kind, progress=progress)
    if any(not c.ok for c in checked):
        raise RejectedFilesError(checked, args.max_errors)
    for c in checked:
        ignored = f" (columns ignored: {', '.join(c.ignored_columns)})" if c.ignored_columns else ""
        print(f"{c.name}: {len(c.records)} {c.kind.name} rows, all good{ignored}")
    if args.check:
        return 0
    info = load_stack(_home(args))
    influx = stack_influx(info, "analytics")  # checks field types before writing: reads too
    try:
        summary = write_checked(influx, args.database, checked, progress=progress)
    finally:
        influx.close()
    print(f"imported {summary.points} points into {info.influx_url} database {args.database}")
    return 0


def _cloud_dealer_kpis(args: argparse.Namespace) -> int:
    _require("requests")
    _require("pandas")
    from prognos.cloud.dealer_data import dealer_report
    from prognos.cloud.dealer_kpis import format_kpis, format_risk
    from prognos.ops.access import stack_influx
    from prognos.ops.state import load_stack

    info = load_stack(_home(args))
    influx = stack_influx(info, "dashboard")
    try:
        report = dealer_report(influx, args.database, period=args.period, window=args.window)
    finally:
        influx.close()
    if report.kpis.empty and report.risk.empty:
        raise ConfigError(
            f"no dealer data in database {args.database!r}; import DMS exports with "
            "`prognos cloud import-dms`"
        )
    print(format_kpis(report.kpis, periods=args.periods))
    print()
    print(format_risk(report.risk))
    for path, table in ((args.out, report.kpis), (args.risk_out, report.risk)):
        if path is not None:
            try:
                table.to_csv(path, index=False)
            except OSError as exc:
                raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
            print(f"wrote {path}")
    return 0


def _cloud_analytics(args: argparse.Namespace) -> int:
    _require("requests")
    _require("pandas")
    from prognos.cloud.analytics_job import (
        QUERY_TIMEOUT_S,
        RunSummary,
        parse_duration_s,
        parse_time_ms,
        rfc3339,
        run_every,
        run_once,
    )
    from prognos.ops.access import stack_influx
    from prognos.ops.state import load_stack

    lookback_days = parse_duration_s(args.lookback, what="--lookback") / 86_400
    keep_days = parse_duration_s(args.keep, what="--keep") / 86_400
    horizon_weeks = _weeks(args.horizon)
    every_s = parse_duration_s(args.every, what="--every") if args.every is not None else None
    if every_s is not None and args.as_of is not None:
        raise ConfigError("--as-of names the time of one run; leave it out with --every")
    as_of_ms = parse_time_ms(args.as_of) if args.as_of is not None else None
    info = load_stack(_home(args))
    influx = stack_influx(info, "analytics", timeout_s=QUERY_TIMEOUT_S)

    def report(summary: RunSummary) -> None:
        c = {name: int(value) for name, value in summary.counts.items()}
        unregistered = c["vehicles_unregistered"]
        unknown = f", {unregistered} not in the registry" if unregistered else ""
        print(
            f"analytics {rfc3339(summary.as_of_ms)}: {c['vehicles_observed']} vehicles with data "
            f"({c['vehicles_act']} act, {c['vehicles_watch']} watch{unknown}); {c['alerts']} alerts "
            f"(P1 {c['alerts_p1']}, P2 {c['alerts_p2']}, P3 {c['alerts_p3']}); {c['campaigns']} campaigns "
            f"({c['campaign_vehicles']} vehicles); {c['service_list']} on the service list; "
            f"{c['maintenance_intervals']} maintenance intervals; {c['parts_reorder']} parts planned "
            f"-> database {args.database}",
            flush=True,
        )

    try:
        if every_s is None:
            report(
                run_once(
                    influx,
                    args.database,
                    as_of_ms=as_of_ms,
                    lookback_days=lookback_days,
                    horizon_weeks=horizon_weeks,
                    keep_days=keep_days,
                )
            )
        else:
            stop = _until_signalled()
            run_every(
                influx,
                args.database,
                every_s=every_s,
                stop=stop,
                on_run=report,
                lookback_days=lookback_days,
                horizon_weeks=horizon_weeks,
                keep_days=keep_days,
            )
    finally:
        influx.close()
    return 0


def _cloud_reassign(args: argparse.Namespace) -> int:
    _require("requests")
    _require("pandas")
    from prognos.cloud.analytics_job import parse_time_ms, read_stock
    from prognos.cloud.dealer_data import read_frame, vehicles
    from prognos.cloud.dealer_reassign import reassign_frames, summary
    from prognos.ops.access import stack_influx
    from prognos.ops.state import load_stack

    as_of_ms = parse_time_ms(args.as_of) if args.as_of is not None else int(time.time()) * 1000
    influx = stack_influx(load_stack(_home(args)), "dashboard")
    try:
        result = reassign_frames(
            args.dealer,
            read_frame(influx, args.database, "service_center"),
            read_frame(influx, args.database, "work_order"),
            vehicles(influx, args.database),
            read_stock(influx, args.database),
            as_of_ms,
        )
    finally:
        influx.close()
    print(f"dealer {result.dealer_id} closes {', '.join(result.closing)}:")
    print(summary(result))
    if args.out is not None:
        try:
            result.frame().to_csv(args.out, index=False)
        except OSError as exc:
            raise ConfigError(f"cannot write {args.out}: {exc.strerror}") from exc
        print(f"wrote {args.out}")
    return 0


def _parts_inputs_from_influx(args: argparse.Namespace, stock: object) -> tuple[object, object]:
    """The failures (open faults + registry) and, unless given, the DMS stock from InfluxDB."""
    from prognos.cloud.analytics_job import read_failures, read_stock
    from prognos.ops.access import stack_influx
    from prognos.ops.state import load_stack

    influx = stack_influx(load_stack(_home(args)), "dashboard")
    try:
        failures = read_failures(influx, args.database, int(time.time()) * 1000)
        if stock is None:
            stock = read_stock(influx, args.database, default_lead_time_weeks=args.default_lead_time_weeks)
    finally:
        influx.close()
    return failures, stock


def _edge_simulate(args: argparse.Namespace) -> int:
    _require("paho.mqtt")
    from prognos.catalog import default_catalog
    from prognos.hil.fleet import FleetClock, run_fleet
    from prognos.hil.simulator import make_fleet
    from prognos.ops.provision import fleet_logins
    from prognos.ops.state import load_stack
    from prognos.topics import check_fleet

    check_fleet(args.fleet)
    if args.speedup <= 0 or args.window_s <= 0:
        raise ConfigError("--speedup and --window-s must be positive")
    bundle = None
    if str(args.models) != "none":
        from prognos.edge.detector import load_bundle

        bundle = load_bundle(args.models)
    info = load_stack(_home(args))
    specs = make_fleet(args.vehicles, seed=args.seed)
    start_ms = int((time.time() - args.days_back * 86_400) * 1000)
    clock = FleetClock(start_ms=start_ms, window_s=args.window_s, speedup=args.speedup)
    models = f"models {bundle.bundle_id} {bundle.version}" if bundle else "threshold rules only"
    print(
        f"simulating {len(specs)} vehicles of fleet {args.fleet!r} ({models}) -> {info.mqtt_address}",
        flush=True,
    )
    stats = run_fleet(
        specs,
        default_catalog(),
        host=info.mqtt_host,
        port=info.mqtt_port,
        fleet=args.fleet,
        clock=clock,
        windows=args.windows,
        seed=args.seed,
        stop=_until_signalled(),
        bundle=bundle,
        logins=fleet_logins(info, args.fleet, [spec.vin for spec in specs]),
    )
    print(
        f"{stats.records_sent} records sent ({stats.bytes_sent} bytes) from {stats.windows} "
        f"vehicle-windows; {stats.publish_failures} not sent"
    )
    return 0 if stats.publish_failures == 0 else 1


def _edge_run(args: argparse.Namespace) -> int:
    _require("paho.mqtt")
    from prognos.config import load_gateway_config
    from prognos.edge.gateway import Gateway

    config = load_gateway_config(args.config)
    if not args.verbose:
        logging.getLogger().setLevel(config.log_level.upper())
    gateway = Gateway(config)
    stats = gateway.run(_until_signalled())
    print(
        f"gateway {config.vin}: {stats.samples} samples, {stats.windows} windows, {stats.records} records "
        f"({stats.record_bytes} bytes); {gateway.spooled} still spooled"
    )
    return 0


def _hil_run(args: argparse.Namespace) -> int:
    _require("paho.mqtt")
    from tqdm import tqdm

    from prognos.hil.bench import run_scenario
    from prognos.hil.scenario import load_scenario
    from prognos.ops.provision import fleet_logins
    from prognos.ops.state import load_stack

    scenario = load_scenario(args.scenario)
    info = load_stack(_home(args))
    agents_log = logging.getLogger("edge")  # one agent per vehicle: only their warnings, unless -v
    level = agents_log.level
    if not args.verbose:
        agents_log.setLevel(logging.WARNING)
    days = scenario.time.duration_days
    print(f"scenario {scenario.name}: {len(scenario.vehicles)} vehicles, {days:g} days, {info.mqtt_address}")
    bar_format = "{l_bar}{bar}| {n:.1f}/{total:g} days [{elapsed}<{remaining}]"
    try:
        with tqdm(total=days, unit="day", bar_format=bar_format) as bar:

            def progress(done_days: float) -> None:
                bar.update(done_days - bar.n)

            judgement, summary = run_scenario(
                scenario,
                host=info.mqtt_host,
                port=info.mqtt_port,
                report_dir=args.report,
                fleet=args.fleet,
                progress=progress,
                stop=_until_signalled(),
                logins=functools.partial(fleet_logins, info),
            )
    finally:
        agents_log.setLevel(level)
    for check in judgement.checks:
        print(f"{'PASS' if check.passed else 'FAIL'}  {check.description}: {check.detail}")
    print(f"{summary['verdict'].upper()}: report in {args.report / 'report.html'}")
    return 0 if judgement.passed else 1


def _models_keygen(args: argparse.Namespace) -> int:
    from prognos.edge.ota import generate_key

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
    from prognos.edge.ota import load_private_key, sign_bundle

    signed = sign_bundle(args.bundle, load_private_key(args.key))
    try:
        args.out.write_bytes(signed)
    except OSError as exc:
        raise ConfigError(f"cannot write {args.out}: {exc.strerror}") from exc
    print(f"wrote {args.out} ({len(signed)} bytes)")
    return 0


def _models_push(args: argparse.Namespace) -> int:
    _require("paho.mqtt")
    from prognos.cloud.model_push import push_bundle
    from prognos.ops.state import load_stack

    try:
        payload = args.file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {args.file}: {exc.strerror}") from exc
    info = load_stack(_home(args))
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


def dashboard_command(home: Path, database: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that serve the dashboard."""
    app = Path(__file__).resolve().parent / "dashboard" / "app.py"
    env = {**os.environ, "PROGNOS_HOME": str(home), "PROGNOS_DATABASE": database}
    argv = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.headless=true",
        f"--server.port={port}",
        "--server.address=127.0.0.1",
        "--browser.gatherUsageStats=false",
    ]
    return argv, env


def _dashboard(args: argparse.Namespace) -> int:
    _require("streamlit")
    argv, env = dashboard_command(_home(args), args.database, args.port)
    print(f"dashboard: http://127.0.0.1:{args.port}", flush=True)
    return subprocess.call(argv, env=env)


def _demo(args: argparse.Namespace) -> int:
    for module in ("paho.mqtt", "requests", "streamlit"):
        _require(module)
    from prognos.config import RECEIPT_TIMEOUT_S
    from prognos.hil.fleet import DEMO_SCENARIO, ScenarioThread, demo_dms, first_vehicles
    from prognos.hil.scenario import load_scenario
    from prognos.ops.provision import fleet_logins
    from prognos.ops.stack import stack_status, stack_up
    from prognos.ops.state import read_state

    scenario = first_vehicles(load_scenario(args.scenario or DEMO_SCENARIO), args.vehicles)
    fleet = scenario.fleet or DEFAULT_FLEET
    days = scenario.time.duration_days
    home = _home(args)
    running = read_state(home)
    if running is not None and all(stack_status(home).values()):
        info = running  # the stack already running in HOME, as it was started
    else:
        info, _ = stack_up(home)
    print(f"stack: mqtt {info.mqtt_address}, influxdb {info.influx_url} (data in {home})", flush=True)
    next_day = 0.5

    def progress(done_days: float) -> None:  # a line every half simulated day
        nonlocal next_day
        if done_days >= next_day:
            print(f"fleet: {done_days:.1f} of {days:g} days simulated", flush=True)
            next_day = done_days + 0.5

    run = ScenarioThread(
        scenario,
        host=info.mqtt_host,
        port=info.mqtt_port,
        fleet=fleet,
        report_dir=args.report or home / "hil" / scenario.name,
        progress=progress,
        logins=functools.partial(fleet_logins, info, receipt_timeout_s=RECEIPT_TIMEOUT_S),
    )
    report = run.report_dir / "report.html"
    base = [sys.executable, "-m", "prognos.cli"]
    children: dict[str, subprocess.Popen[bytes]] = {}
    stop = _until_signalled(args.duration_s)
    agents_log = logging.getLogger("edge")  # one agent per vehicle: only their warnings, unless -v
    level = agents_log.level
    if not args.verbose:
        agents_log.setLevel(logging.WARNING)
    try:
        # The ingest worker first, so that its subscription stands before the first agent publishes.
        children["ingest"] = subprocess.Popen([*base, "cloud", "ingest", "--home", str(home)])
        _demo_dealer_data(home, demo_dms(scenario, fleet=fleet), fleet)
        children["analytics"] = subprocess.Popen(
            [*base, "cloud", "analytics", "--home", str(home), "--every", "1m"], stdout=subprocess.DEVNULL
        )
        argv, env = dashboard_command(home, DEFAULT_DATABASE, args.port)
        children["dashboard"] = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{args.port}"
        _wait_http(url, stop)
        run.start(stop)
        print(
            f"fleet {fleet!r} ({scenario.origin}): {len(scenario.vehicles)} vehicles, {days:g} days up to "
            "now, each through its own gateway agent (virtual CAN, sensor-node UART, spool, MQTT)",
            f"\nPrognos demo running. Dashboard: {url}\nPress Ctrl-C to stop.\n",
            sep="\n",
            flush=True,
        )
        reported = False
        while not stop.wait(1.0):
            failed = [name for name, child in children.items() if child.poll() is not None]
            if failed:
                raise PrognosError(f"the demo's {failed[0]} process exited; see its log above")
            if run.done and not reported:
                reported = True
                if run.error is not None:
                    raise PrognosError(f"the demo's fleet run failed: {run.error}")
                assert run.result is not None
                judgement, summary = run.result
                print(f"\nfleet run finished in {run.wall_s / 60:.1f} min: {summary['verdict'].upper()}")
                for check in judgement.checks:
                    print(f"{'PASS' if check.passed else 'FAIL'}  {check.description}: {check.detail}")
                print(
                    f"HIL report: {report}\nThe dashboard stays up at {url}; press Ctrl-C to stop.\n",
                    flush=True,
                )
    finally:
        stop.set()
        # The agents flush their spools while the ingest worker still runs.
        if not run.join(DEMO_FLEET_JOIN_S):
            print(f"prognos: the fleet run did not end within {DEMO_FLEET_JOIN_S:.0f} s", file=sys.stderr)
        for child in children.values():
            child.send_signal(signal.SIGTERM)
        for child in children.values():
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        agents_log.setLevel(level)
    if run.interrupted:
        print(f"fleet run stopped early; its report: {report}")
    print("demo stopped; the stack still runs (prognos stack down stops it)")
    return 0


def _demo_dealer_data(home: Path, rows: dict[str, list[dict[str, str]]], fleet: str) -> None:
    """The fleet's dealer-system exports and vehicle registry, written to HOME/demo-dms and imported."""
    from prognos.cloud.dms_import import import_files
    from prognos.hil.dealers import write_dms
    from prognos.ops.access import stack_influx
    from prognos.ops.state import load_stack

    out = home / "demo-dms"
    files = write_dms(rows, out)
    influx = stack_influx(load_stack(home), "analytics")
    try:
        influx.ensure_database(DEFAULT_DATABASE)
        import_files(influx, DEFAULT_DATABASE, list(files.values()))
    finally:
        influx.close()
    print(
        f"dealer data: {len(files)} exports from {out} imported, with the registry of the "
        f"{len(rows['vehicle'])} vehicles of fleet {fleet!r}",
        flush=True,
    )


def _wait_http(url: str, stop: threading.Event, timeout_s: float = 60.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=1.0):
                return
        except (urllib.error.URLError, OSError):
            stop.wait(0.5)
    if not stop.is_set():
        raise PrognosError(f"the dashboard did not answer at {url} within {timeout_s:.0f} s")


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


DEFAULT_DEMAND_HISTORY = Path(__file__).resolve().parent.parent.parent / "shared/data/carparts/carparts.csv"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _companion(path: Path, suffix: str) -> Path:
    """OUT.csv -> OUT.SUFFIX.csv (OUT -> OUT.SUFFIX.csv without .csv)."""
    stem = path.name[: -len(".csv")] if path.name.lower().endswith(".csv") else path.name
    return path.with_name(f"{stem}.{suffix}.csv")


def _forecast_demand(args: argparse.Namespace) -> int:
    _require("pandas")
    from prognos.cloud.forecast import demand_table, forecast_table, format_csv, parse_csv

    source = str(args.history)
    table = demand_table(parse_csv(_read_text(args.history), source=source), source=source)
    result = forecast_table(table, args.horizon, level=args.level)
    intervals = _companion(args.out, "intervals")
    _write_text(args.out, format_csv(result.point))
    _write_text(intervals, format_csv(result.intervals))
    labels = result.point.iloc[:, 0]
    print(
        f"forecast {len(table.names)} series of {args.history} ({len(table.labels)} periods) for "
        f"{args.horizon} periods, {labels.iloc[0]} to {labels.iloc[-1]}: {result.fit.chosen} "
        f"({result.fit.source}) -> {args.out}, {intervals}"
    )
    return 0


def _forecast_backtest(args: argparse.Namespace) -> int:
    _require("pandas")
    from prognos.cloud.forecast import BASELINES, FORECASTER, backtest, demand_table, parse_csv

    path = args.history if args.history is not None else DEFAULT_DEMAND_HISTORY
    if args.history is None and not path.is_file():
        raise ConfigError(f"no --history given and no carparts data at {path}")
    if not 0.0 < args.level < 1.0:
        raise ConfigError(f"--level must be between 0 and 1, not {args.level}")
    table = demand_table(parse_csv(_read_text(path), source=str(path)), source=str(path))
    result = backtest(table.values, holdout=args.holdout, level=args.level)
    fit = result.fit
    train = result.periods - result.holdout
    print(
        f"{path}: {result.periods} periods x {result.series} series; the last {result.holdout} held out, "
        f"one {result.holdout}-period forecast from period {train}"
    )
    window = min(result.holdout, 12)
    print(
        f"forecaster chosen on periods 1-{train} only (learned on 1-{train - window}, scored on "
        f"{train - window + 1}-{train}): {fit.chosen} ({fit.source}), rate factor {fit.params.rate_factor:g}"
    )
    for name, value in fit.validation_rmsse.items():
        print(f"  validation RMSSE {value:.4f}  {name}")
    names = {"all-zero": "all-zero", "croston": "Croston (alpha 0.1)", "sba": "SBA (alpha 0.1)"}
    names[FORECASTER] = "prognos forecaster"
    print(
        f"\n{'method':22}{'all scored':>22}{'>=10 demands':>22}\n"
        f"{'':22}{'RMSSE':>11}{'MASE':>11}{'RMSSE':>11}{'MASE':>11}"
    )
    for key in (*BASELINES, FORECASTER):
        s = result.score(key)
        print(f"{names[key]:22}{s.rmsse:11.4f}{s.mase:11.4f}{s.rmsse_active:11.4f}{s.mase_active:11.4f}")
    print(f"{'series scored':22}{result.scored:>22}{result.scored_active:>22}")
    print(
        f"\nRMSSE {100 * result.improvement():.1f}% below the best baseline on all scored series, "
        f"{100 * result.improvement(subset='active'):.1f}% on those with >=10 in-sample demands"
    )
    c = result.coverage
    print(
        f"{100 * c.level:g}% intervals: {100 * c.inside:.1f}% of {c.cells} held-out periods inside, "
        f"{100 * c.below:.1f}% below, {100 * c.above:.1f}% above"
    )
    return 0


def _weeks(text: str) -> int:
    value = text.strip().lower().removesuffix("w")
    if not value.isdigit() or int(value) <= 0:
        raise ConfigError(f"--horizon {text!r} is not a positive number of weeks (like 8w or 8)")
    return int(value)


def _forecast_parts(args: argparse.Namespace) -> int:
    _require("pandas")
    from prognos.cloud.forecast import format_csv, parse_csv
    from prognos.cloud.parts import plan_parts

    horizon = _weeks(args.horizon)
    tables = {
        name: parse_csv(_read_text(path), source=str(path)) if path is not None else None
        for name, path in (("failures", args.failures), ("history", args.history), ("stock", args.stock))
    }
    failures, history, stock = tables["failures"], tables["history"], tables["stock"]
    if failures is None:
        failures, stock = _parts_inputs_from_influx(args, stock)
    plan = plan_parts(
        failures,
        history,
        stock,
        horizon_weeks=horizon,
        service_level=args.service_level,
        review_weeks=args.review_weeks,
        default_lead_time_weeks=args.default_lead_time_weeks,
        level=args.level,
    )
    reorder = _companion(args.out, "reorder")
    _write_text(args.out, format_csv(plan.weekly))
    _write_text(reorder, format_csv(plan.reorder))
    orders = plan.reorder[plan.reorder["order_qty"] > 0]
    print(
        f"{len(plan.reorder)} service center/part pairs over {horizon} weeks "
        f"({plan.week_labels[0]} to {plan.week_labels[-1]}): {len(orders)} to reorder, "
        f"{int(orders['order_qty'].sum())} units -> {args.out}, {reorder}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
