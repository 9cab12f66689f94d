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
        f"(default: ${DB_ENV}, else desk.db in the stack home)",
    )
    add_home_option(parser)


def desk_url(args: argparse.Namespace) -> str:
    """The database URL a desk command was given."""
    from prognos.desk.store import default_url

    return args.db or os.environ.get(DB_ENV) or default_url(stack_home(args))


# --- customers: customer 360, search, risk tags, the priority call list ---------------------


def _add_customers(desk: Commands) -> None:
    from pathlib import Path

    from prognos.commands import positive_int

    customers = group(desk, "customers", "customer 360: find customers, show one with its risk tags")
    found = customers.add_parser(
        "search",
        help="find customers by name, VIN, plate or customer id",
        description="Find customers by customer id, VIN (whole, its start, or its last six or more "
        "characters), plate (spaces and hyphens ignored) or name (its start first, then anywhere in "
        "it); case is ignored.",
    )
    found.add_argument("text", metavar="TEXT", help="name, VIN, plate or customer id")
    found.add_argument("--limit", type=positive_int, default=20, help="most customers listed (default: 20)")
    add_db_option(found)
    found.set_defaults(run=_customers_search)

    show = customers.add_parser(
        "show",
        help="one customer: vehicles, history, alerts, complaints, entitlements, risk tags",
        description="One customer: contact, home center and its dealer, risk tags with their reasons, "
        "vehicles, open appointments, open alerts, open complaints with their SLA clocks, "
        "entitlements and the service history, newest first (docs/desk.md). An unknown id exits 2.",
    )
    show.add_argument("customer_id", metavar="ID", help="customer id, e.g. C000042")
    show.add_argument(
        "--history", type=positive_int, default=20, metavar="N", help="work orders shown (default: 20)"
    )
    _add_tag_options(show)
    add_db_option(show)
    show.set_defaults(run=_customers_show)

    ranked = desk.add_parser(
        "priorities",
        help="the priority call list: customers ranked by their risk tags",
        description="Rank the customers with a risk tag by score (docs/desk.md) and list them with "
        "their tags and the reasons in words; --out writes a CSV with the columns rank, customer_id, "
        "name, contact, home_center, score, tags, reasons.",
    )
    ranked.add_argument("--limit", type=positive_int, default=100, help="customers listed (default: 100)")
    ranked.add_argument("--out", type=Path, default=None, metavar="CSV", help="write the list as CSV")
    _add_tag_options(ranked)
    add_db_option(ranked)
    ranked.set_defaults(run=_desk_priorities)


def _add_tag_options(parser: argparse.ArgumentParser) -> None:
    from prognos.commands import positive_int

    parser.add_argument(
        "--expiry-days",
        type=positive_int,
        default=60,
        metavar="N",
        help="tag warranties and maintenance packages ending within N days (default: 60)",
    )
    parser.add_argument(
        "--as-of",
        default=None,
        metavar="TIME",
        help="ISO 8601 time the tags are for, UTC without offset (default: now)",
    )


def _customers_search(args: argparse.Namespace) -> int:
    from prognos.commands import require

    require("sqlalchemy")
    from prognos.desk.customers import search, search_text
    from prognos.desk.store import connect

    engine = connect(desk_url(args))
    try:
        with engine.connect() as connection:
            hits = search(connection, args.text, limit=args.limit)
    finally:
        engine.dispose()
    print(search_text(hits, args.text))
    return 0


def _customers_show(args: argparse.Namespace) -> int:
    from prognos.commands import require

    require("sqlalchemy")
    from prognos.desk.customers import customer_view, view_text
    from prognos.desk.store import connect
    from prognos.desk.tags import Settings, parse_time

    now, settings = parse_time(args.as_of), Settings(expiry_days=args.expiry_days)
    engine = connect(desk_url(args))
    try:
        with engine.connect() as connection:
            view = customer_view(connection, args.customer_id, now=now, settings=settings)
    finally:
        engine.dispose()
    print(view_text(view, history=args.history))
    return 0


def _desk_priorities(args: argparse.Namespace) -> int:
    from prognos.commands import require

    require("sqlalchemy")
    from prognos.desk.customers import priorities, priorities_csv, priorities_text
    from prognos.desk.store import connect
    from prognos.desk.tags import Settings, parse_time, time_text
    from prognos.errors import ConfigError

    now, settings = parse_time(args.as_of), Settings(expiry_days=args.expiry_days)
    engine = connect(desk_url(args))
    try:
        with engine.connect() as connection:
            rows = priorities(connection, now=now, settings=settings, limit=args.limit)
    finally:
        engine.dispose()
    if args.out is None:
        print(priorities_text(rows, now))
        return 0
    try:
        args.out.write_text(priorities_csv(rows), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    print(f"wrote {len(rows)} customers to {args.out} (as of {time_text(now)})")
    return 0


# --- complaints: tickets, SLA clocks, escalation, audit -------------------------------------


def _add_complaints(desk: Commands) -> None:
    del desk


# --- entitlements: the signed ledger, proofs ------------------------------------------------


def _add_entitlements(desk: Commands) -> None:
    del desk


# --- operations: seed data, a dealer that fails ---------------------------------------------


def _add_operations(desk: Commands) -> None:
    del desk
