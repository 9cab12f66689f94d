"""The operator's commands: `prognos stack`, `prognos fleet` and `prognos demo`."""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from prognos.commands import (
    DEFAULT_FLEET,
    Commands,
    add_home_option,
    group,
    positive_int,
    require,
    until_signalled,
)
from prognos.errors import PrognosError
from prognos.ops.state import DEFAULT_DATABASE, stack_home

DEMO_VEHICLES = 64  # of fleet_demo.toml's 200: one bench process, a first look in a few minutes
DEMO_FLEET_JOIN_S = 120.0  # for a stopped fleet run: agents flush, the bench judges and reports


def add_stack(commands: Commands, help_text: str) -> None:
    stack = group(commands, "stack", help_text)
    for name, text, func in (
        ("up", "start the stack, or report the one already running", _stack_up),
        ("down", "stop the stack; its data stays for the next `up`", _stack_down),
        ("status", "show whether each service runs and answers", _stack_status),
    ):
        sub = stack.add_parser(name, help=text, description=text)
        add_home_option(sub)
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
                "--postgres",
                action="store_true",
                help="also run PostgreSQL (Debian package 'postgresql') for the service desk; "
                "without it the desk keeps its data in SQLite",
            )
            sub.add_argument(
                "--database",
                action="append",
                default=None,
                help=f"database to create with every role's grant; repeatable (default: {DEFAULT_DATABASE})",
            )


def add_fleet(commands: Commands, help_text: str) -> None:
    fleet_group = group(commands, "fleet", help_text)
    provision = fleet_group.add_parser(
        "provision",
        help="issue a vehicle's broker credentials and its ACL entry",
        description="Create a login for VIN on the stack's broker that may publish only VIN's diag and "
        "status topics and read only VIN's model topic, and write what its gateway needs into "
        "OUT/VIN: the CA certificate, the password (readable by the owner only) and the [broker] "
        "table for gateway.toml. Provisioning a VIN again issues new credentials and revokes the old.",
    )
    add_home_option(provision)
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
    add_home_option(revoke)
    revoke.add_argument("vins", nargs="+", metavar="VIN", help="vehicle identification numbers")
    revoke.set_defaults(run=_fleet_revoke)


def add_demo(commands: Commands, help_text: str) -> None:
    demo = commands.add_parser(
        "demo",
        help=help_text,
        description="Start the local stack (or use the one running in HOME), import the fleet's "
        "dealer data and vehicle registry, start an ingest worker, the analytics job (every minute) "
        "and the dashboard, and run the fleet scenario on the HIL bench: simulated vehicles through "
        "real gateway agents and real interfaces (virtual CAN, sensor-node UART), their records "
        "through the broker into the database. Print the dashboard URL; when the fleet run ends, "
        "print where its HIL report is and keep the dashboard up until interrupted.",
    )
    add_home_option(demo)
    demo.add_argument(
        "--scenario",
        type=Path,
        default=None,
        metavar="FILE",
        help="fleet scenario, with a generated fleet (default: prognos/hil/scenarios/fleet_demo.toml)",
    )
    demo.add_argument(
        "--vehicles",
        type=positive_int,
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
    demo.add_argument("--port", type=positive_int, default=8501, help="dashboard port (default: %(default)s)")
    demo.add_argument(
        "--duration-s",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until interrupted)",
    )
    demo.set_defaults(run=_demo)


def _stack_up(args: argparse.Namespace) -> int:
    from prognos.ops.stack import stack_up

    if args.insecure:
        print(INSECURE_WARNING, file=sys.stderr)
    databases = tuple(args.database or (DEFAULT_DATABASE,))
    info, started = stack_up(
        stack_home(args), secure=not args.insecure, databases=databases, desk_postgres=args.postgres
    )
    print(("started" if started else "already running") + f" stack in {info.home}")
    if info.postgres_port is not None:
        print(f"  postgres 127.0.0.1:{info.postgres_port} (service desk; URL in {info.desk_url_file})")
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


def _stack_down(args: argparse.Namespace) -> int:
    from prognos.ops.stack import stack_down

    home = stack_home(args)
    print(f"stopped stack in {home}" if stack_down(home) else f"no stack in {home}")
    return 0


def _stack_status(args: argparse.Namespace) -> int:
    from prognos.ops.stack import stack_status
    from prognos.ops.state import read_state

    home = stack_home(args)
    info = read_state(home)
    if info is None:
        print(f"no stack in {home}")
        return 1
    status = stack_status(home)
    print(f"mosquitto {'up' if status['mosquitto'] else 'DOWN'}  {info.mqtt_address}")
    print(f"influxd   {'up' if status['influxd'] else 'DOWN'}  {info.influx_url}")
    if "postgres" in status:
        print(f"postgres  {'up' if status['postgres'] else 'DOWN'}  127.0.0.1:{info.postgres_port}")
    return 0 if all(status.values()) else 1


def _fleet_provision(args: argparse.Namespace) -> int:
    from prognos.ops.provision import provision_vehicles
    from prognos.ops.state import load_stack

    info = load_stack(stack_home(args))
    written = provision_vehicles(info, args.fleet, args.vins, args.out)
    for vin, directory in written.items():
        print(f"{vin}: credentials in {directory} ({directory / 'broker.toml'} is the [broker] table)")
    return 0


def _fleet_revoke(args: argparse.Namespace) -> int:
    from prognos.ops.provision import revoke_vehicles
    from prognos.ops.state import load_stack

    info = load_stack(stack_home(args))
    unknown = revoke_vehicles(info, args.vins)
    for vin in args.vins:
        print(f"{vin}: unknown" if vin in unknown else f"{vin}: revoked")
    return 1 if unknown else 0


def _demo(args: argparse.Namespace) -> int:
    for module in ("paho.mqtt", "requests", "streamlit"):
        require(module)
    from prognos.config import RECEIPT_TIMEOUT_S
    from prognos.dashboard.cli import dashboard_command
    from prognos.hil.fleet import DEMO_SCENARIO, ScenarioThread, demo_dms, first_vehicles
    from prognos.hil.scenario import load_scenario
    from prognos.ops.provision import fleet_logins
    from prognos.ops.stack import reload_broker_users, stack_status, stack_up
    from prognos.ops.state import read_state

    scenario = first_vehicles(load_scenario(args.scenario or DEMO_SCENARIO), args.vehicles)
    fleet = scenario.fleet or DEFAULT_FLEET
    days = scenario.time.duration_days
    home = stack_home(args)
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
    stop = until_signalled(args.duration_s)
    agents_log = logging.getLogger("prognos.edge")  # one agent per vehicle: only their warnings, unless -v
    level = agents_log.level
    if not args.verbose:
        agents_log.setLevel(logging.WARNING)
    try:
        # The ingest worker first, so that its subscription stands before the first agent publishes.
        children["ingest"] = subprocess.Popen([*base, "cloud", "ingest", "--home", str(home)])
        dms = demo_dms(scenario, fleet=fleet)
        _demo_dealer_data(home, dms, fleet)
        _demo_desk(home, dms)
        children["analytics"] = subprocess.Popen(
            [*base, "cloud", "analytics", "--home", str(home), "--every", "1m"], stdout=subprocess.DEVNULL
        )
        # The desk's customers get the fleet's real alerts from each new analytics snapshot.
        children["desk alert sync"] = subprocess.Popen(
            [*base, "desk", "sync-alerts", "--home", str(home), "--every", "1m"], stdout=subprocess.DEVNULL
        )
        # A diagnosis report per alert a record raises, within seconds, beside ingest. A stack
        # started before the worker's broker role existed learns it here.
        if info.secure:
            reload_broker_users(info)
        children["reports"] = subprocess.Popen(
            [*base, "cloud", "reports", "run", "--home", str(home)], stdout=subprocess.DEVNULL
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
    from prognos.cloud.dealers.dms_import import import_files
    from prognos.ops.access import stack_influx
    from prognos.ops.state import load_stack
    from prognos.sim.dealers import write_dms

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


DEMO_CUSTOMERS = 500


def _demo_desk(home: Path, dms: dict[str, list[dict[str, str]]]) -> None:
    """The service desk seeded around the demo's dealer data, unless it holds customers already."""
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from prognos.desk import schema
    from prognos.desk.cli import signing_key
    from prognos.desk.store import connect
    from prognos.ops.state import desk_url
    from prognos.sim.desk_seed import seed_desk

    engine = connect(desk_url(home))
    try:
        with engine.connect() as connection:
            present = connection.execute(select(func.count()).select_from(schema.customer)).scalar_one()
        if present:
            print(f"service desk: {present} customers already in {home}", flush=True)
            return
        key = signing_key(argparse.Namespace(key=None, home=home), create=True)
        seeded = seed_desk(engine, customers=DEMO_CUSTOMERS, seed=7, key=key, now=datetime.now(UTC), dms=dms)
    finally:
        engine.dispose()
    print(
        f"service desk: {seeded.customers} customers, {seeded.ledger_entries} signed ledger entries; "
        f"`prognos desk dealer-failed {seeded.failing_dealer}` plays the dealer failure",
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
