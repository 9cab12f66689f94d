"""The gateway's commands: `prognos edge run` and `prognos edge simulate`.

`edge simulate` drives the bench's simulated vehicles through agents; its handler lives with
the bench (prognos.hil.cli) and is named here lazily, so that edge never imports the bench."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from prognos.commands import (
    DEFAULT_FLEET,
    Commands,
    add_home_option,
    group,
    lazy_command,
    positive_int,
    require,
    until_signalled,
)
from prognos.edge import SHIPPED_BUNDLE


def add_edge(commands: Commands, help_text: str) -> None:
    edge = group(commands, "edge", help_text)
    simulate = edge.add_parser(
        "simulate",
        help="drive simulated vehicles through real agents to the broker",
        description="Simulate a fleet: each vehicle's signals go through its own agent "
        "(windows, features, rules) and its own MQTT connection. Simulated time runs "
        "SPEEDUP times faster than real time and starts DAYS_BACK days ago.",
    )
    add_home_option(simulate)
    simulate.add_argument(
        "--vehicles", type=positive_int, default=8, help="fleet size (default: %(default)s)"
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
        type=positive_int,
        default=None,
        help="stop after this many windows (default: run until interrupted)",
    )
    simulate.add_argument(
        "--models",
        type=Path,
        default=SHIPPED_BUNDLE,
        metavar="DIR",
        help="model bundle the agents run (default: the committed bundle, %(default)s); "
        "'none' for threshold rules only",
    )
    simulate.set_defaults(run=lazy_command("prognos.hil.cli:edge_simulate"))

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


def _edge_run(args: argparse.Namespace) -> int:
    require("paho.mqtt")
    from prognos.config import load_gateway_config
    from prognos.edge.assembly import build_gateway

    config = load_gateway_config(args.config)
    if not args.verbose:
        logging.getLogger().setLevel(config.log_level.upper())
    gateway = build_gateway(config)
    stats = gateway.run(until_signalled())
    print(
        f"gateway {config.vin}: {stats.samples} samples, {stats.windows} windows, {stats.records} records "
        f"({stats.record_bytes} bytes); {gateway.spooled} still spooled"
    )
    return 0
