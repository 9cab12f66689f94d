"""The bench's commands: `prognos hil run`, and the handler of `prognos edge simulate`."""

from __future__ import annotations

import argparse
import functools
import logging
import time
from pathlib import Path

from prognos.commands import (
    Commands,
    add_home_option,
    group,
    require,
    until_signalled,
)
from prognos.errors import ConfigError
from prognos.ops.state import stack_home


def add_hil(commands: Commands, help_text: str) -> None:
    hil = group(commands, "hil", help_text)
    hil_run = hil.add_parser(
        "run",
        help="run a bench scenario against real agents and judge them",
        description="Run SCENARIO (TOML, docs/hil.md): simulated vehicles drive real gateway agents "
        "through real interfaces (CAN, slcan, UART, replay) in simulated time; the records the agents "
        "publish are read back from the broker and judged against the scenario's expectations. Writes "
        "DIR/summary.json and DIR/report.html; exits 1 if any expectation fails.",
    )
    add_home_option(hil_run)
    hil_run.add_argument("scenario", type=Path, metavar="SCENARIO", help="scenario file (TOML)")
    hil_run.add_argument("--report", type=Path, required=True, metavar="DIR", help="report directory")
    hil_run.add_argument(
        "--fleet", default=None, help="fleet name in topics (default: the scenario's, else hil-NAME-RANDOM)"
    )
    hil_run.set_defaults(run=_hil_run)


def _hil_run(args: argparse.Namespace) -> int:
    require("paho.mqtt")
    from tqdm import tqdm

    from prognos.hil.bench import run_scenario
    from prognos.hil.scenario import load_scenario
    from prognos.ops.provision import fleet_logins
    from prognos.ops.state import load_stack

    scenario = load_scenario(args.scenario)
    info = load_stack(stack_home(args))
    agents_log = logging.getLogger("prognos.edge")  # one agent per vehicle: only their warnings, unless -v
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
                stop=until_signalled(),
                logins=functools.partial(fleet_logins, info),
            )
    finally:
        agents_log.setLevel(level)
    for check in judgement.checks:
        print(f"{'PASS' if check.passed else 'FAIL'}  {check.description}: {check.detail}")
    print(f"{summary['verdict'].upper()}: report in {args.report / 'report.html'}")
    return 0 if judgement.passed else 1


def edge_simulate(args: argparse.Namespace) -> int:
    require("paho.mqtt")
    from prognos.catalog import default_catalog
    from prognos.hil.fleet import FleetClock, run_fleet
    from prognos.ops.provision import fleet_logins
    from prognos.ops.state import load_stack
    from prognos.sim.fleet import make_fleet
    from prognos.topics import check_fleet

    check_fleet(args.fleet)
    if args.speedup <= 0 or args.window_s <= 0:
        raise ConfigError("--speedup and --window-s must be positive")
    bundle = None
    if str(args.models) != "none":
        from prognos.edge.detector import load_bundle

        bundle = load_bundle(args.models)
    info = load_stack(stack_home(args))
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
        stop=until_signalled(),
        bundle=bundle,
        logins=fleet_logins(info, args.fleet, [spec.vin for spec in specs]),
    )
    print(
        f"{stats.records_sent} records sent ({stats.bytes_sent} bytes) from {stats.windows} "
        f"vehicle-windows; {stats.publish_failures} not sent"
    )
    return 0 if stats.publish_failures == 0 else 1
