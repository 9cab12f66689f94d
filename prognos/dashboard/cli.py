"""The dashboard's command: `prognos dashboard`."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from prognos.commands import (
    Commands,
    add_home_option,
    positive_int,
    require,
)
from prognos.ops.state import DEFAULT_DATABASE, DESK_DB_ENV, stack_home


def add_dashboard(commands: Commands, help_text: str) -> None:
    dashboard = commands.add_parser(
        "dashboard",
        help=help_text,
        description="Serve the dashboard for service managers and parts planners.",
    )
    add_home_option(dashboard)
    dashboard.add_argument(
        "--database", default=DEFAULT_DATABASE, help="InfluxDB database (default: %(default)s)"
    )
    dashboard.add_argument("--port", type=positive_int, default=8501, help="HTTP port (default: %(default)s)")
    dashboard.set_defaults(run=_dashboard)


def dashboard_command(
    home: Path, database: str, port: int, *, desk_db: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that serve the dashboard (the service desk's database:
    `desk_db`, else as `prognos desk` finds it)."""
    app = Path(__file__).resolve().parent / "app.py"
    env = {**os.environ, "PROGNOS_HOME": str(home), "PROGNOS_DATABASE": database}
    if desk_db is not None:
        env[DESK_DB_ENV] = desk_db
    argv = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.headless=true",
        "--client.toolbarMode=viewer",  # no Deploy button or developer menu for the users
        f"--server.port={port}",
        "--server.address=127.0.0.1",
        "--browser.gatherUsageStats=false",
    ]
    return argv, env


def _dashboard(args: argparse.Namespace) -> int:
    require("streamlit")
    argv, env = dashboard_command(stack_home(args), args.database, args.port)
    print(f"dashboard: http://127.0.0.1:{args.port}", flush=True)
    return subprocess.call(argv, env=env)
