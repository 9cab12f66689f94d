"""The `prognos` command: the one place that parses arguments, configures logging and prints.

Each part registers its own commands in prognos/<part>/cli.py. COMMANDS names, for every
command, the function that adds it and its one-line help; only the chosen command's part is
imported, so `prognos --help` loads no part and a command needs only its own part's extras.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from prognos import __version__
from prognos.commands import Commands, load
from prognos.errors import ConfigError, PrognosError

# command -> ("module:function" that adds it to the subparsers, its help in `prognos --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "stack": ("prognos.ops.cli:add_stack", "run the local broker (Mosquitto) and database (InfluxDB)"),
    "fleet": ("prognos.ops.cli:add_fleet", "vehicle identities on the broker"),
    "cloud": ("prognos.cloud.cli:add_cloud", "cloud services: ingest, analytics, dealer data"),
    "desk": (
        "prognos.desk.cli:add_desk",
        "service desk: customers and risk tags, complaints with SLA clocks, entitlement ledger",
    ),
    "edge": ("prognos.edge.cli:add_edge", "gateway agents"),
    "hil": ("prognos.hil.cli:add_hil", "hardware-in-the-loop bench"),
    "dashboard": ("prognos.dashboard.cli:add_dashboard", "serve the Streamlit dashboard"),
    "demo": (
        "prognos.ops.cli:add_demo",
        "stack, bench fleet through real agents, ingest, analytics and dashboard in one command",
    ),
    "models": ("prognos.models.cli:add_models", "detectors calibrated on a fleet's own normal data"),
    "vibration": (
        "prognos.models.vibration.cli:add_vibration",
        "bearing fault classification from accelerometer recordings (CWRU-trained, int8 on LiteRT)",
    ),
    "forecast": (
        "prognos.cloud.cli:add_forecast",
        "part-demand forecasts and parts planning (docs/forecast.md)",
    ),
    "campaigns": (
        "prognos.campaigns.cli:add_campaigns",
        "data-collection campaigns: conditions over signals, signed for gateways (docs/campaigns.md)",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(chosen_command(argv))
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


def chosen_command(argv: Sequence[str]) -> str | None:
    """The command named on the line: the first word that is not an option (the global options
    take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command listed and `command`'s part loaded with all its options."""
    parser = argparse.ArgumentParser(
        prog="prognos",
        description="Predictive after-sales service for vehicle fleets.",
    )
    parser.add_argument("--version", action="version", version=f"prognos {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    commands: Commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, (target, help_text) in COMMANDS.items():
        if name == command:
            add: Callable[[Commands, str], None] = load(target)
            add(commands, help_text)
        else:
            commands.add_parser(name, help=help_text, description=help_text)
    return parser


if __name__ == "__main__":
    sys.exit(main())
