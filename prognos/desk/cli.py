"""`prognos desk`: the service desk's commands. Each takes --db URL (default: $PROGNOS_DESK_DB,
else the SQLite file desk.db in the stack home) and exits 2 on bad input with nothing written."""

from __future__ import annotations

import argparse
import os

from prognos.commands import Commands, add_home_option, group
from prognos.ops.state import stack_home

DB_ENV = "PROGNOS_DESK_DB"


def add_desk(commands: Commands, help_text: str) -> None:
    desk = group(commands, "desk", help_text)
    _add_customers(desk)
    _add_complaints(desk)
    _add_entitlements(desk)
    _add_operations(desk)


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """--db and --home: where the desk's database is."""
    parser.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help=f"desk database: sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DB "
        f"(default: ${DB_ENV}, else the stack's PostgreSQL if it runs one, else desk.db in the "
        "stack home)",
    )
    add_home_option(parser)


def desk_url(args: argparse.Namespace) -> str:
    """The database URL a desk command was given: --db, else $PROGNOS_DESK_DB, else the stack's
    PostgreSQL when it runs one (`prognos stack up --postgres`), else SQLite in the stack home."""
    from prognos.desk.store import default_url
    from prognos.ops.state import read_state

    if args.db or os.environ.get(DB_ENV):
        return str(args.db or os.environ[DB_ENV])
    home = stack_home(args)
    info = read_state(home)
    if info is not None and info.postgres_port is not None and info.desk_url_file.exists():
        return info.desk_url_file.read_text().strip()
    return default_url(home)


# --- customers: customer 360, search, risk tags, the priority call list ---------------------


def _add_customers(desk: Commands) -> None:
    del desk


# --- complaints: tickets, SLA clocks, escalation, audit -------------------------------------


def _add_complaints(desk: Commands) -> None:
    del desk


# --- entitlements: the signed ledger, proofs ------------------------------------------------


def _add_entitlements(desk: Commands) -> None:
    del desk


# --- operations: seed data, a dealer that fails ---------------------------------------------


def _add_operations(desk: Commands) -> None:
    del desk
