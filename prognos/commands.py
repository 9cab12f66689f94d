"""What the parts' commands share: the command group, argument types, optional imports that
name their extra, handlers named lazily, and the stop signal. The parts register their commands
in prognos/<part>/cli.py; prognos.cli finds them."""

from __future__ import annotations

import argparse
import importlib
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, TypeAlias

from prognos.errors import ConfigError

# the subparsers a part adds its commands to
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Handler = Callable[[argparse.Namespace], int]

DEFAULT_FLEET = "demo"
EXTRAS = {
    "paho": "edge",
    "requests": "cloud",
    "pandas": "cloud",
    "streamlit": "dashboard",
    "plotly": "dashboard",
    "tensorflow": "train",
    "sqlalchemy": "desk",
    "alembic": "desk",
    "psycopg": "desk",
    "segno": "desk",
}


def group(commands: Commands, name: str, text: str) -> Commands:
    """A command with subcommands; alone it prints its usage and exits 2."""
    parser = commands.add_parser(name, help=text, description=text)
    parser.set_defaults(run=lambda _args: _usage(parser))
    subcommands: Commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    return subcommands


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def add_home_option(parser: argparse.ArgumentParser) -> None:
    """--home: the local stack's directory (prognos.ops.state.stack_home reads it)."""
    parser.add_argument(
        "--home", type=Path, default=None, help="stack directory (default: $PROGNOS_HOME or ./.prognos)"
    )


def load(target: str) -> Any:
    """The function a "module:function" string names, its module imported now."""
    module_name, _, function = target.partition(":")
    return getattr(importlib.import_module(module_name), function)


def lazy_command(target: str) -> Handler:
    """A handler given as "module:function", imported only when the command runs."""

    def run(args: argparse.Namespace) -> int:
        handler: Handler = load(target)
        return handler(args)

    return run


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def utc_time(text: str) -> datetime:
    """An ISO 8601 date or time as an aware UTC time: a date is its midnight UTC, a time without
    an offset is UTC, Z means UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date or time (like 2026-12-07 or 2026-12-07T09:00:00Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def column_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"{text!r} has an empty column name")
    return names


def rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 0.5:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 0.5")
    return value


def require(module: str) -> ModuleType:
    """Import an optional dependency, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module.split(".")[0], "edge,cloud,dashboard")
        raise ConfigError(f"{module} is not installed: pip install 'prognos[{extra}]'") from exc


def until_signalled(duration_s: float | None = None) -> threading.Event:
    """An event set by SIGINT or SIGTERM, or when `duration_s` has passed."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    if duration_s is not None:
        threading.Timer(duration_s, stop.set).start()
    return stop
