"""The cloud's commands: `prognos cloud` (ingest, DMS import, dealer KPIs, analytics,
reassignment) and `prognos forecast` (part demand and parts planning)."""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

from prognos.commands import (
    Commands,
    add_home_option,
    group,
    lazy_command,
    positive_int,
    require,
    until_signalled,
)
from prognos.errors import ConfigError, TransientError
from prognos.ops.state import DEFAULT_DATABASE, stack_home

DEFAULT_DEMAND_HISTORY = Path(__file__).resolve().parents[3] / "shared/data/carparts/carparts.csv"


def add_cloud(commands: Commands, help_text: str) -> None:
    cloud = group(commands, "cloud", help_text)
    ingest = cloud.add_parser(
        "ingest",
        help="move diagnostic records from MQTT into InfluxDB",
        description="Subscribe to every vehicle's diag topic through an MQTT 5 shared "
        "subscription and write the records to InfluxDB; start several to share the load. "
        "Runs until interrupted.",
    )
    add_home_option(ingest)
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
        "--batch-size", type=positive_int, default=500, help="records per write (default: %(default)s)"
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
    add_home_option(import_dms)
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
        type=positive_int,
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
    add_home_option(dealer_kpis)
    dealer_kpis.add_argument(
        "--database", default=DEFAULT_DATABASE, help="InfluxDB database (default: %(default)s)"
    )
    dealer_kpis.add_argument(
        "--period", choices=["week", "month"], default="month", help="KPI period (default: %(default)s)"
    )
    dealer_kpis.add_argument(
        "--periods", type=positive_int, default=1, help="latest periods printed (default: %(default)s)"
    )
    dealer_kpis.add_argument(
        "--window",
        type=positive_int,
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
    add_home_option(analytics)
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

    conditions = cloud.add_parser(
        "conditions",
        help="condition mining: which faults are more frequent in the cold, the damp, a region, model or lot",
        description="Read each vehicle's data (with the ambient temperature and humidity its records "
        "carry) and its fault onsets from InfluxDB; test every fault code under every condition "
        "(temperature, humidity and both together; region, model, lot) against the rest, with a "
        "95%% interval of the rate ratio and false-discovery control; print the findings in words and "
        'write every test as a snapshot (docs/analytics.md, "Condition mining").',
    )
    add_home_option(conditions)
    conditions.add_argument(
        "--database", default=DEFAULT_DATABASE, help="InfluxDB database (default: %(default)s)"
    )
    conditions.add_argument(
        "--lookback", default="90d", metavar="DURATION", help="data window (default: %(default)s)"
    )
    conditions.add_argument(
        "--fdr", type=float, default=0.05, help="false-discovery rate of the findings (default: %(default)s)"
    )
    conditions.add_argument(
        "--every", default=None, metavar="DURATION", help="run every DURATION, like 1h (default: run once)"
    )
    conditions.set_defaults(run=_cloud_conditions)

    reassign = cloud.add_parser(
        "reassign",
        help="a dealer stops operating: move its open appointments and customers",
        description="Place the dealer's open work orders and the customers of its service centers "
        "at the nearest other service centers with capacity, the skills and the parts (in stock, or "
        "within their lead time), from the imported DMS data (docs/dms.md, dealer closure).",
    )
    add_home_option(reassign)
    reassign.add_argument("--dealer", required=True, metavar="ID", help="the dealer that closes")
    reassign.add_argument(
        "--database", default=DEFAULT_DATABASE, help="InfluxDB database (default: %(default)s)"
    )
    reassign.add_argument("--as-of", default=None, metavar="TIME", help="ISO 8601 time (default: now)")
    reassign.add_argument("--out", type=Path, default=None, metavar="CSV", help="write every assignment")
    reassign.set_defaults(run=_cloud_reassign)
    _add_reports(cloud)


def add_forecast(commands: Commands, help_text: str) -> None:
    forecast = group(commands, "forecast", help_text)
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
    add_home_option(parts)
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

    accuracy = forecast.add_parser(
        "accuracy",
        help="replay the parts plan's forecast on history: bias and RMSSE per center and part family",
        description="At each of the last --origins weeks that leave a whole horizon after them, make "
        "the parts plan's baseline forecast from the weeks before and hold each forecast week against "
        "what was used; print the bias, RMSSE and 90%% interval coverage per service center and part "
        "family, as the parts page shows them for the kept plans (docs/forecast.md, Accuracy).",
    )
    accuracy.add_argument(
        "--history",
        type=Path,
        default=None,
        metavar="CSV",
        help="week, service_center, part, units (default: the DMS work orders of the last year in InfluxDB)",
    )
    add_home_option(accuracy)
    accuracy.add_argument(
        "--database",
        default=DEFAULT_DATABASE,
        help="InfluxDB database read without --history (default: %(default)s)",
    )
    accuracy.add_argument(
        "--origins", type=int, default=12, metavar="N", help="forecast origins, weeks (default: %(default)s)"
    )
    accuracy.add_argument(
        "--horizon", default="8w", metavar="WEEKS", help="weeks ahead, 8w or 8 (default: 8w)"
    )
    accuracy.add_argument("--out", type=Path, default=None, metavar="CSV", help="write the table as CSV")
    accuracy.set_defaults(run=_forecast_accuracy)


def _add_reports(cloud: Commands) -> None:
    from prognos.ops.state import DESK_DB_ENV

    reports = group(cloud, "reports", "diagnosis reports: one per alert a record raises or escalates")
    run = reports.add_parser(
        "run",
        help="the report worker: a report per raised or escalated alert, stored in the desk and sent",
        description="Subscribe to every vehicle's diag topic through an MQTT 5 shared subscription "
        "beside ingest's; for each alert a record raises or escalates, build a diagnosis report "
        "(evidence, trend, likely causes, checks and parts with the stock and free slots of the "
        "nearest capable centers, the owner's contact), store it in the service desk and send it to "
        "the webhook and the e-mail recipients given (docs/reports.md). Start several to share the "
        "load. Runs until interrupted.",
    )
    add_home_option(run)
    run.add_argument(
        "--database", default=DEFAULT_DATABASE, help="InfluxDB database ingest writes (default: %(default)s)"
    )
    run.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help=f"service desk database (default: ${DESK_DB_ENV}, else the stack's PostgreSQL if it runs one, "
        "else desk.db in the stack home)",
    )
    run.add_argument("--group", default="reports", help="shared-subscription group (default: %(default)s)")
    run.add_argument("--fleet", default="+", help="only this fleet (default: all)")
    run.add_argument(
        "--client-id",
        default=None,
        help="MQTT client id; a worker restarted with the same id resumes its session (default: "
        "prognos-reports-GROUP-HOSTNAME)",
    )
    run.add_argument("--webhook", default=None, metavar="URL", help="POST each report here, signed")
    run.add_argument(
        "--webhook-secret-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="the webhook's HMAC secret, at least 16 bytes (default: $PROGNOS_WEBHOOK_SECRET)",
    )
    run.add_argument(
        "--smtp", default=None, metavar="HOST:PORT", help="send each report by e-mail through it"
    )
    run.add_argument("--smtp-starttls", action="store_true", help="upgrade the SMTP session with STARTTLS")
    run.add_argument("--smtp-user", default=None, help="SMTP login (its password in $PROGNOS_SMTP_PASSWORD)")
    run.add_argument("--mail-from", default=None, metavar="ADDRESS", help="the e-mails' sender")
    run.add_argument("--mail-to", default=None, metavar="ADDRESSES", help="recipients, with commas between")
    run.add_argument(
        "--reopen-after",
        default="24h",
        metavar="DURATION",
        help="an alert no record carried for this long is raised again (default: %(default)s)",
    )
    run.add_argument(
        "--history", default="72h", metavar="DURATION", help="points a report charts (default: %(default)s)"
    )
    run.add_argument(
        "--builders", type=positive_int, default=4, help="reports built at once (default: %(default)s)"
    )
    # The handler lives with the desk it writes to: cloud code does not import the desk.
    run.set_defaults(run=lazy_command("prognos.desk.cli:reports_run"))


def _cloud_ingest(args: argparse.Namespace) -> int:
    require("paho.mqtt")
    require("requests")
    from prognos.cloud.ingest.worker import IngestWorker, tune_garbage_collection
    from prognos.ops.access import stack_influx
    from prognos.ops.state import load_stack

    info = load_stack(stack_home(args))
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
    stop = until_signalled()
    worker.start()
    print(f"ingest: {worker.subscription} -> {info.influx_url} database {args.database}", flush=True)
    stats = worker.run(stop)
    print(
        f"ingest stopped: {stats.received} received, {stats.records_written} stored, "
        f"{stats.dead_letters} dead letters"
    )
    return 0


def _cloud_import_dms(args: argparse.Namespace) -> int:
    require("requests")
    require("pandas")
    from tqdm import tqdm

    from prognos.cloud.dealers.dms_import import RejectedFilesError, check_files, write_checked
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
    info = load_stack(stack_home(args))
    influx = stack_influx(info, "analytics")  # checks field types before writing: reads too
    try:
        summary = write_checked(influx, args.database, checked, progress=progress)
    finally:
        influx.close()
    print(f"imported {summary.points} points into {info.influx_url} database {args.database}")
    return 0


def _cloud_dealer_kpis(args: argparse.Namespace) -> int:
    require("requests")
    require("pandas")
    from prognos.cloud.dealers.data import dealer_report
    from prognos.cloud.dealers.kpis import format_kpis, format_risk
    from prognos.ops.access import stack_influx
    from prognos.ops.state import load_stack

    info = load_stack(stack_home(args))
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


def _cloud_conditions(args: argparse.Namespace) -> int:
    require("requests")
    require("pandas")
    from prognos.cloud.analytics.conditions import finding_text
    from prognos.cloud.analytics.conditions_job import mine, write_run
    from prognos.cloud.analytics.job import QUERY_TIMEOUT_S, parse_duration_s
    from prognos.cloud.analytics.reading import rfc3339
    from prognos.ops.access import stack_influx
    from prognos.ops.state import load_stack

    lookback_days = parse_duration_s(args.lookback, what="--lookback") / 86_400
    every_s = parse_duration_s(args.every, what="--every") if args.every is not None else None
    if not 0 < args.fdr < 1:
        raise ConfigError(f"--fdr must be between 0 and 1, not {args.fdr}")
    influx = stack_influx(load_stack(stack_home(args)), "analytics", timeout_s=QUERY_TIMEOUT_S)
    stop = until_signalled()
    while True:
        try:
            run = mine(
                influx,
                args.database,
                as_of_ms=int(time.time() * 1000),
                lookback_days=lookback_days,
                fdr=args.fdr,
            )
            write_run(influx, args.database, run, lookback_days=lookback_days, fdr=args.fdr)
        except TransientError as exc:
            if every_s is None:
                raise
            print(f"conditions: database unreachable ({exc}); trying again in {args.every}", flush=True)
        else:
            found = run.findings[run.findings["finding"]] if not run.findings.empty else run.findings
            print(
                f"conditions {rfc3339(run.as_of_ms)}: {run.vehicles} vehicles, {run.exposure_months:,.1f} "
                f"vehicle-months, {run.onsets} fault onsets; {len(run.findings)} tests, {len(found)} "
                f"findings (FDR {args.fdr:g}) -> database {args.database}",
                flush=True,
            )
            for _, row in found.iterrows():
                print(f"  {finding_text(row)}", flush=True)
        if every_s is None or stop.wait(every_s):
            return 0


def _cloud_analytics(args: argparse.Namespace) -> int:
    require("requests")
    require("pandas")
    from prognos.cloud.analytics.job import (
        QUERY_TIMEOUT_S,
        RunSummary,
        parse_duration_s,
        parse_time_ms,
        run_every,
        run_once,
    )
    from prognos.cloud.analytics.reading import rfc3339
    from prognos.ops.access import stack_influx
    from prognos.ops.state import load_stack

    lookback_days = parse_duration_s(args.lookback, what="--lookback") / 86_400
    keep_days = parse_duration_s(args.keep, what="--keep") / 86_400
    horizon_weeks = _weeks(args.horizon)
    every_s = parse_duration_s(args.every, what="--every") if args.every is not None else None
    if every_s is not None and args.as_of is not None:
        raise ConfigError("--as-of names the time of one run; leave it out with --every")
    as_of_ms = parse_time_ms(args.as_of) if args.as_of is not None else None
    info = load_stack(stack_home(args))
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
            f"({c['parts_orders']} orders, {c['parts_transfers']} transfers) -> database {args.database}",
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
            stop = until_signalled()
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
    require("requests")
    require("pandas")
    from prognos.cloud.analytics.job import parse_time_ms
    from prognos.cloud.analytics.reading import read_stock
    from prognos.cloud.dealers.data import read_frame, vehicles
    from prognos.cloud.dealers.reassign import reassign_frames, summary
    from prognos.ops.access import stack_influx
    from prognos.ops.state import load_stack

    as_of_ms = parse_time_ms(args.as_of) if args.as_of is not None else int(time.time()) * 1000
    influx = stack_influx(load_stack(stack_home(args)), "dashboard")
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
    from prognos.cloud.analytics.reading import read_failures, read_stock
    from prognos.ops.access import stack_influx
    from prognos.ops.state import load_stack

    influx = stack_influx(load_stack(stack_home(args)), "dashboard")
    try:
        failures = read_failures(influx, args.database, int(time.time()) * 1000)
        if stock is None:
            stock = read_stock(influx, args.database, default_lead_time_weeks=args.default_lead_time_weeks)
    finally:
        influx.close()
    return failures, stock


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


def _weeks(text: str) -> int:
    value = text.strip().lower().removesuffix("w")
    if not value.isdigit() or int(value) <= 0:
        raise ConfigError(f"--horizon {text!r} is not a positive number of weeks (like 8w or 8)")
    return int(value)


def _forecast_demand(args: argparse.Namespace) -> int:
    require("pandas")
    from prognos.cloud.parts.tables import demand_table, forecast_table, format_csv, parse_csv

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
    require("pandas")
    from prognos.cloud.parts.forecast import BASELINES, FORECASTER, backtest
    from prognos.cloud.parts.tables import demand_table, parse_csv

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
    origins = ", ".join(str(origin) for origin in fit.validation_origins)
    print(
        f"forecaster chosen on periods 1-{train} only"
        + (f" (validation origins {origins}, each scored up to period {train})" if origins else "")
        + f": {fit.chosen} ({fit.source}), rate factor {fit.params.rate_factor:g}"
    )
    for name, value in fit.validation_rmsse.items():
        each = "  ".join(f"{v:.4f}" for v in fit.validation_by_origin.get(name, ()))
        print(f"  validation RMSSE {value:.4f} (by origin {each})  {name}")
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
        f"\nRMSSE {100 * result.improvement():.1f}% below the best of all-zero, Croston and SBA on all "
        f"scored series, {100 * result.improvement(subset='active'):.1f}% on those with >=10 in-sample "
        "demands"
    )
    print(
        "statsforecast's ADIDA, IMAPA and TSB on the same split: "
        "python benchmarks/forecast_carparts.py (docs/forecast.md)"
    )
    c = result.coverage
    print(
        f"{100 * c.level:g}% intervals: {100 * c.inside:.1f}% of {c.cells} held-out periods inside, "
        f"{100 * c.below:.1f}% below, {100 * c.above:.1f}% above"
    )
    return 0


def _forecast_parts(args: argparse.Namespace) -> int:
    require("pandas")
    from prognos.cloud.parts.plan import plan_parts
    from prognos.cloud.parts.tables import format_csv, parse_csv

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


def _forecast_accuracy(args: argparse.Namespace) -> int:
    require("pandas")
    from prognos.cloud.parts.accuracy import ALL, accuracy_table, backtest_plan
    from prognos.cloud.parts.plan import check_history
    from prognos.cloud.parts.tables import format_csv, parse_csv

    horizon = _weeks(args.horizon)
    if args.origins <= 0:
        raise ConfigError(f"--origins must be a positive number of weeks, not {args.origins}")
    if args.history is not None:
        source = str(args.history)
        history = check_history(parse_csv(_read_text(args.history), source=source), source)
    else:
        source = f"the work orders in database {args.database!r}"
        history = _history_from_influx(args)
    compared = backtest_plan(history, origins=args.origins, horizon_weeks=horizon)
    if compared.empty:
        raise ConfigError(f"{source}: too few weeks for a {horizon}-week forecast after a week of history")
    table = accuracy_table(compared)
    overall = table[(table["service_center"] == ALL) & (table["family"] == ALL)].iloc[0]
    print(
        f"{source}: {compared['origin_ms'].nunique()} origins x {horizon} weeks ahead, "
        f"{int(overall['pairs'])} service center/part pairs, {int(overall['weeks'])} pair-weeks"
    )
    print(
        f"{'service center':16}{'family':12}{'weeks':>7}{'forecast':>10}{'actual':>9}"
        f"{'bias':>8}{'RMSSE':>8}{'in 90%':>8}"
    )
    for row in table.itertuples():
        bias = f"{100 * row.bias:+.0f}%" if row.bias == row.bias else "-"
        rmsse = f"{row.rmsse:.2f}" if row.rmsse == row.rmsse else "-"
        print(
            f"{row.service_center:16}{row.family:12}{row.weeks:>7}{row.forecast_units:>10.1f}"
            f"{row.actual_units:>9.0f}{bias:>8}{rmsse:>8}{100 * row.coverage:>7.0f}%"
        )
    if args.out is not None:
        _write_text(args.out, format_csv(table))
        print(f"-> {args.out}")
    return 0


def _history_from_influx(args: argparse.Namespace) -> object:
    """The weekly demand history of the DMS work orders of the last year (as the analytics job's)."""
    from prognos.cloud.analytics.reading import read_part_uses
    from prognos.cloud.parts.history import demand_history
    from prognos.ops.access import stack_influx
    from prognos.ops.state import load_stack

    now_ms = int(time.time()) * 1000
    influx = stack_influx(load_stack(stack_home(args)), "dashboard")
    try:
        uses = read_part_uses(influx, args.database, now_ms)
    finally:
        influx.close()
    return demand_history(uses, before_ms=now_ms)
