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
    from pathlib import Path

    from prognos.commands import positive_int
    from prognos.desk.tickets import parse_time

    complaints = group(
        desk,
        "complaints",
        "complaint tickets: open, move through their states, SLA clocks, escalation, DMS import, metrics",
    )

    opening = _complaints_parser(
        complaints,
        "open",
        "open a ticket for a customer; it goes to the dealer named, else the customer's home "
        "center's dealer, with SLA clocks on that dealer's business calendar",
        actor="desk",
    )
    opening.add_argument("--customer", required=True, metavar="ID", help="the customer (e.g. C000001)")
    opening.add_argument(
        "--category", required=True, help="safety, quality, billing, waiting_time, communication or other"
    )
    opening.add_argument("--summary", default="", help="what the customer complains about")
    opening.add_argument("--vin", default=None, help="the customer's vehicle it is about")
    opening.add_argument("--dealer", default=None, metavar="ID", help="the responsible dealer")
    opening.add_argument("--id", default=None, metavar="ID", help="the ticket's id (default: CP-DATE-XXXXXX)")
    opening.set_defaults(run=_complaints_open)

    listing = _complaints_parser(complaints, "list", "list tickets, newest first")
    listing.add_argument("--state", default=None, help="only tickets in this state")
    listing.add_argument("--dealer", default=None, metavar="ID", help="only this dealer's tickets")
    listing.add_argument("--customer", default=None, metavar="ID", help="only this customer's tickets")
    listing.add_argument("--open", action="store_true", help="only tickets not resolved or closed")
    listing.add_argument("--limit", type=positive_int, default=50, help="at most N (default: %(default)s)")
    listing.set_defaults(run=_complaints_list)

    showing = _complaints_parser(complaints, "show", "a ticket with its SLA clocks and its audit trail")
    showing.add_argument("id", metavar="ID", help="the ticket")
    showing.add_argument(
        "--now", type=parse_time, default=None, metavar="TIME", help="judge the clocks at TIME (default: now)"
    )
    showing.set_defaults(run=_complaints_show)

    moving = _complaints_parser(
        complaints,
        "move",
        "move a ticket to another state, if it is still at the version you looked at",
        actor="desk",
    )
    moving.add_argument("id", metavar="ID", help="the ticket")
    moving.add_argument(
        "state",
        metavar="STATE",
        help="acknowledged, in_progress, waiting_for_customer, resolved, closed or reopened",
    )
    moving.add_argument(
        "--version", type=positive_int, required=True, metavar="N", help="the version you looked at (show)"
    )
    moving.add_argument("--note", default="", help="why, for the audit trail")
    moving.set_defaults(run=_complaints_move)

    escalating = _complaints_parser(
        complaints,
        "escalate",
        "raise the level (dealer, region, brand) of open tickets whose SLA clocks have run out; "
        "running it again changes nothing",
        actor="escalation",
    )
    escalating.add_argument(
        "--now", type=parse_time, default=None, metavar="TIME", help="judge the clocks at TIME (default: now)"
    )
    escalating.set_defaults(run=_complaints_escalate)

    importing = _complaints_parser(
        complaints,
        "import",
        "import DMS complaint exports (docs/dms.md): all rows or, when any is bad, nothing; a file "
        "imported before is skipped",
        actor="dms-import",
    )
    importing.add_argument("files", nargs="+", type=Path, metavar="FILE", help="DMS complaint files")
    importing.set_defaults(run=_complaints_import)

    measuring = _complaints_parser(
        complaints,
        "metrics",
        "first-contact resolution, handling time and SLA compliance per dealer and period",
    )
    measuring.add_argument("--period", choices=("week", "month"), default="month")
    measuring.add_argument("--out", type=Path, default=None, metavar="CSV", help="also write them as CSV")
    measuring.add_argument(
        "--now",
        type=parse_time,
        default=None,
        metavar="TIME",
        help="judge open clocks at TIME (default: now)",
    )
    measuring.set_defaults(run=_complaints_metrics)


def _complaints_parser(
    complaints: Commands, name: str, text: str, *, actor: str | None = None
) -> argparse.ArgumentParser:
    """A complaints command with --db and --home, and --actor when it changes tickets (default
    $USER, else `actor`)."""
    parser = complaints.add_parser(name, help=text, description=text)
    add_db_option(parser)
    if actor is not None:
        default = (os.environ.get("USER") or actor) if actor == "desk" else actor
        parser.add_argument(
            "--actor",
            default=default,
            metavar="NAME",
            help=f"who does it, for the audit trail (default: {default})",
        )
    return parser


def _complaints_open(args: argparse.Namespace) -> int:
    from prognos.desk.complaints import open_complaint
    from prognos.desk.store import connect

    engine = connect(desk_url(args))
    try:
        ticket = open_complaint(
            engine,
            customer_id=args.customer,
            category=args.category,
            actor=args.actor,
            summary=args.summary,
            vin=args.vin,
            dealer_id=args.dealer,
            complaint_id=args.id,
        )
    finally:
        engine.dispose()
    print(
        f"opened {ticket.complaint_id} (version {ticket.version}) for {ticket.customer_id}: "
        f"{ticket.category}, dealer {ticket.dealer_id}, team {ticket.team}"
    )
    print(
        f"first response due {ticket.response_due_at:%Y-%m-%d %H:%M} UTC, "
        f"resolution due {ticket.resolution_due_at:%Y-%m-%d %H:%M} UTC"
    )
    return 0


def _complaints_list(args: argparse.Namespace) -> int:
    from prognos.desk.complaints import list_tickets
    from prognos.desk.store import connect

    engine = connect(desk_url(args))
    try:
        tickets = list_tickets(
            engine,
            state=args.state,
            dealer_id=args.dealer,
            customer_id=args.customer,
            open_only=args.open,
            limit=args.limit,
        )
    finally:
        engine.dispose()
    if not tickets:
        print("no tickets")
        return 0
    header = ("id", "state", "level", "dealer", "category", "customer", "opened", "resolution due", "v")
    rows = [
        (
            t.complaint_id,
            t.state,
            t.level,
            t.dealer_id,
            t.category,
            t.customer_id or "-",
            f"{t.opened_at:%Y-%m-%d %H:%M}",
            f"{t.resolution_due_at:%Y-%m-%d %H:%M}",
            str(t.version),
        )
        for t in tickets
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _complaints_show(args: argparse.Namespace) -> int:
    from prognos.desk.complaints import ticket_view
    from prognos.desk.store import connect

    engine = connect(desk_url(args))
    try:
        view = ticket_view(engine, args.id, args.now)
    finally:
        engine.dispose()
    t = view.ticket

    def when(moment: object) -> str:
        return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M}"

    print(f"{t.complaint_id}  {t.state}  version {t.version}  level {t.level}")
    print(f"  customer {t.customer_id or '-'}  vehicle {t.vin or '-'}  source {t.source}")
    print(f"  dealer {t.dealer_id}  team {t.team}  category {t.category}")
    if t.summary:
        print(f"  summary: {t.summary}")
    print(
        f"  opened {when(t.opened_at)}  responded {when(t.responded_at)}  resolved {when(t.resolved_at)}  "
        f"closed {when(t.closed_at)}  contacts {t.contacts}  reopened {t.reopened}"
    )
    for clock in view.clocks:
        print(f"  {clock.clock.name} clock: {clock.text}")
    print(f"  can move to: {', '.join(view.next_states)}")
    print("audit trail:")
    for entry in view.trail:
        after = entry.after or {}
        if entry.before is None:  # a ticket created: its values
            changes = ", ".join(f"{name} {value}" for name, value in after.items() if value not in (None, ""))
        else:
            changes = ", ".join(
                f"{name} {entry.before.get(name, '-')} -> {value}" for name, value in after.items()
            )
        print(f"  {when(entry.at)}  {entry.actor}  {entry.action}: {changes}")
    return 0


def _complaints_move(args: argparse.Namespace) -> int:
    from prognos.desk.complaints import move
    from prognos.desk.store import connect

    engine = connect(desk_url(args))
    try:
        ticket = move(
            engine, args.id, args.state, actor=args.actor, expected_version=args.version, note=args.note
        )
    finally:
        engine.dispose()
    print(f"{ticket.complaint_id} is {ticket.state} now (version {ticket.version})")
    return 0


def _complaints_escalate(args: argparse.Namespace) -> int:
    from prognos.desk.complaints import escalate
    from prognos.desk.store import connect

    engine = connect(desk_url(args))
    try:
        run = escalate(engine, args.now, actor=args.actor)
    finally:
        engine.dispose()
    for step in run.escalations:
        print(
            f"{step.complaint_id}: {step.clock} clock ran out (due {step.due_at:%Y-%m-%d %H:%M} UTC), "
            f"{step.level_before} -> {step.level_after}"
        )
    for complaint_id in run.skipped:
        print(f"{complaint_id}: changed during the run, left for the next run")
    count = len(run.escalations)
    print(f"{count} escalation{'s' if count != 1 else ''}")
    return 0


def _complaints_import(args: argparse.Namespace) -> int:
    from prognos.desk.complaints import import_dms_complaints
    from prognos.desk.store import connect

    engine = connect(desk_url(args))
    try:
        result = import_dms_complaints(engine, args.files, actor=args.actor)
    finally:
        engine.dispose()
    for f in result.files:
        if f.already_imported:
            print(f"{f.name}: imported before, skipped")
        else:
            print(f"{f.name}: {f.rows} rows, {f.created} new, {f.updated} updated, {f.unchanged} unchanged")
    return 0


def _complaints_metrics(args: argparse.Namespace) -> int:
    from prognos.commands import require

    require("pandas")
    from prognos.desk.complaints import ticket_metrics
    from prognos.desk.store import connect
    from prognos.errors import ConfigError

    engine = connect(desk_url(args))
    try:
        frame = ticket_metrics(engine, args.period, now=args.now)
    finally:
        engine.dispose()
    print("no tickets" if frame.empty else frame.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.out is not None:
        try:
            frame.to_csv(args.out, index=False)
        except OSError as exc:
            raise ConfigError(f"cannot write {args.out}: {exc.strerror}") from exc
        print(f"wrote {args.out}")
    return 0


# --- entitlements: the signed ledger, proofs ------------------------------------------------


def _add_entitlements(desk: Commands) -> None:
    del desk


# --- operations: seed data, a dealer that fails ---------------------------------------------


def _add_operations(desk: Commands) -> None:
    del desk
