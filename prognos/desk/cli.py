"""`prognos desk`: the service desk's commands. Each takes --db URL (default: $PROGNOS_DESK_DB,
else the SQLite file desk.db in the stack home) and exits 2 on bad input with nothing written."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from prognos.commands import (
    Commands,
    add_home_option,
    group,
    lazy_command,
    positive_int,
    require,
    utc_time,
)
from prognos.errors import ConfigError
from prognos.ops.state import DESK_DB_ENV, stack_home

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
    from sqlalchemy import Engine

    from prognos.cloud.reports.worker import Channels
    from prognos.desk.entitlements import Entitlement
    from prognos.desk.ledger import Entry
    from prognos.desk.reports import ReportDetail

BRAND_KEY = "brand"  # brand.pem (secret) and brand.pub in the stack home: `prognos models keygen`


def add_desk(commands: Commands, help_text: str) -> None:
    desk = group(commands, "desk", help_text)
    _add_customers(desk)
    _add_complaints(desk)
    _add_entitlements(desk)
    _add_operations(desk)
    _add_booking(desk)
    _add_alerts(desk)
    _add_guide(desk)
    _add_reports(desk)


def add_db_option(parser: argparse.ArgumentParser) -> None:
    """--db and --home: where the desk's database is."""
    parser.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help=f"desk database: sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DB "
        f"(default: ${DESK_DB_ENV}, else the stack's PostgreSQL if it runs one, else desk.db in the "
        "stack home)",
    )
    add_home_option(parser)


def desk_url(args: argparse.Namespace) -> str:
    """The database URL a desk command was given (prognos.ops.state.desk_url says how)."""
    from prognos.ops.state import desk_url as stack_desk_url

    return stack_desk_url(stack_home(args), args.db)


# --- customers: customer 360, search, risk tags, the priority call list ---------------------


def _add_customers(desk: Commands) -> None:

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

    parser.add_argument(
        "--expiry-days",
        type=positive_int,
        default=60,
        metavar="N",
        help="tag warranties and maintenance packages ending within N days (default: 60)",
    )
    parser.add_argument(
        "--as-of",
        type=utc_time,
        default=None,
        metavar="TIME",
        help="ISO 8601 time the tags are for, UTC without offset (default: now)",
    )


def _customers_search(args: argparse.Namespace) -> int:

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

    require("sqlalchemy")
    from prognos.desk.customers import customer_view, view_text
    from prognos.desk.store import connect
    from prognos.desk.tags import Settings

    now, settings = args.as_of or datetime.now(UTC), Settings(expiry_days=args.expiry_days)
    engine = connect(desk_url(args))
    try:
        with engine.connect() as connection:
            view = customer_view(connection, args.customer_id, now=now, settings=settings)
    finally:
        engine.dispose()
    print(view_text(view, history=args.history))
    return 0


def _desk_priorities(args: argparse.Namespace) -> int:

    require("sqlalchemy")
    from prognos.desk.customers import priorities, priorities_csv, priorities_text
    from prognos.desk.store import connect
    from prognos.desk.tags import Settings, time_text

    now, settings = args.as_of or datetime.now(UTC), Settings(expiry_days=args.expiry_days)
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
        "--now", type=utc_time, default=None, metavar="TIME", help="judge the clocks at TIME (default: now)"
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
        "--now", type=utc_time, default=None, metavar="TIME", help="judge the clocks at TIME (default: now)"
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
        type=utc_time,
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

    require("pandas")
    from prognos.desk.complaints import ticket_metrics
    from prognos.desk.store import connect

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
    text = (
        "the entitlement ledger: prepaid maintenance, warranties, consumptions and transfers, each "
        "entry chained to the one before and signed with the brand's key (docs/desk.md)"
    )
    entitlements = group(desk, "entitlements", text)

    grant = entitlements.add_parser(
        "grant",
        help="grant a prepaid maintenance package, a warranty or an extended warranty",
        description="Append a grant: a customer's entitlement on one vehicle, valid from --valid-from "
        "(default: now) until --valid-until. A maintenance package needs --units (its services); a "
        "warranty without --units has no limit. Exit 2, nothing written, for an unknown customer or "
        "an entitlement id in use.",
    )
    grant.add_argument("--customer", required=True, metavar="ID", help="the holder (a desk customer)")
    grant.add_argument("--vin", required=True, help="the vehicle it covers")
    grant.add_argument("--product", required=True, choices=["maintenance", "warranty", "extended_warranty"])
    grant.add_argument("--units", type=positive_int, default=None, metavar="N", help="services it holds")
    grant.add_argument("--valid-from", type=utc_time, default=None, metavar="TIME", help="default: now")
    grant.add_argument("--valid-until", type=utc_time, required=True, metavar="TIME", help="ISO date or time")
    grant.add_argument("--center", required=True, metavar="ID", help="the service center that honours it")
    grant.add_argument("--dealer", required=True, metavar="ID", help="the dealer that sold it")
    grant.add_argument(
        "--id", dest="entitlement_id", default=None, metavar="ID", help="default: a new E-... id"
    )
    _writing_options(grant)
    grant.set_defaults(run=_entitlements_grant)

    consume = entitlements.add_parser(
        "consume",
        help="use services of an entitlement",
        description="Append a consumption. Exit 2, nothing written, when the entitlement is unknown, "
        "not held by --customer, revoked, not valid now, or has fewer services left than --units "
        "(a second consumption of the last service included).",
    )
    consume.add_argument("--entitlement", required=True, metavar="ID")
    consume.add_argument(
        "--units", type=positive_int, default=1, metavar="N", help="services used (default: 1)"
    )
    consume.add_argument("--reference", default="", metavar="WO", help="the work order")
    consume.add_argument(
        "--center", default=None, metavar="ID", help="where (default: the entitlement's center)"
    )
    consume.add_argument("--customer", default=None, metavar="ID", help="check the holder is this customer")
    _writing_options(consume)
    consume.set_defaults(run=_entitlements_consume)

    transfer = entitlements.add_parser(
        "transfer",
        help="move an active entitlement to another customer or service center",
        description="Append a transfer to --to-customer and/or --to-center (either default: unchanged), "
        "e.g. a vehicle sold, or a center that closed.",
    )
    transfer.add_argument("--entitlement", required=True, metavar="ID")
    transfer.add_argument("--to-customer", default=None, metavar="ID")
    transfer.add_argument("--to-center", default=None, metavar="ID")
    transfer.add_argument("--reason", required=True)
    _writing_options(transfer)
    transfer.set_defaults(run=_entitlements_transfer)

    revoke = entitlements.add_parser(
        "revoke", help="revoke an active entitlement", description="Append a revocation."
    )
    revoke.add_argument("--entitlement", required=True, metavar="ID")
    revoke.add_argument("--reason", required=True)
    _writing_options(revoke)
    revoke.set_defaults(run=_entitlements_revoke)

    listing = entitlements.add_parser(
        "list",
        help="entitlements and what is left of them",
        description="Entitlements as the ledger has them now.",
    )
    listing.add_argument("--customer", default=None, metavar="ID", help="only those this customer holds")
    add_db_option(listing)
    listing.set_defaults(run=_entitlements_list)

    verify = entitlements.add_parser(
        "verify",
        help="check the whole ledger: chain, hashes, signatures",
        description="Check every entry in order: no seq missing, body and columns agree, each entry "
        "links to the one before, its hash recomputes and the trusted key signed it. Exit 0 when all "
        "holds, else 1 naming the first bad entry and what is wrong.",
    )
    _trust_option(verify, required=False)
    verify.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        metavar="N",
        help="check the signatures in N processes (default: 1, this one); docs/benchmarks.md has figures",
    )
    add_db_option(verify)
    verify.set_defaults(run=_entitlements_verify)

    proof = entitlements.add_parser(
        "proof",
        help="write a customer's proof of their entitlements (JSON, and a QR code)",
        description="Write the entries of every entitlement the customer holds, with their hashes and "
        "signatures, as JSON that any service center verifies offline with the brand's public key "
        "(`verify-proof`). --qr also draws it as a QR code (.svg or .png): the whole proof when it "
        "fits, else its digest (docs/desk.md says what that carries).",
    )
    proof.add_argument("--customer", required=True, metavar="ID")
    proof.add_argument("--out", type=Path, required=True, metavar="FILE.json")
    proof.add_argument("--qr", type=Path, default=None, metavar="FILE.svg")
    _trust_option(proof, required=False)
    add_db_option(proof)
    proof.set_defaults(run=_entitlements_proof)

    verify_proof = entitlements.add_parser(
        "verify-proof",
        help="check a customer's proof offline, with the brand's public key",
        description="Check a proof written by `proof` (or the JSON a proof's QR code holds) against "
        "the brand's public key, with no database. Exit 0 and list the entitlements when it holds, "
        "else 1 with what is wrong.",
    )
    verify_proof.add_argument("file", type=Path, metavar="FILE")
    _trust_option(verify_proof, required=True)
    verify_proof.add_argument(
        "--at",
        type=utc_time,
        default=None,
        metavar="TIME",
        help="the time to judge validity at (default: now)",
    )
    verify_proof.set_defaults(run=_entitlements_verify_proof)


def _writing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key",
        type=Path,
        default=None,
        metavar="PEM",
        help=f"the brand's private key (default: {BRAND_KEY}.pem in the stack home)",
    )
    parser.add_argument("--actor", default=None, help="who appends (default: the login name)")
    add_db_option(parser)


def _trust_option(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--trust",
        type=Path,
        action="append",
        required=required,
        metavar="PUB",
        help="the brand's public key; repeat for keys used before a rotation"
        + ("" if required else f" (default: {BRAND_KEY}.pub in the stack home)"),
    )


def signing_key(args: argparse.Namespace, *, create: bool = False) -> Ed25519PrivateKey:
    """The brand's private key (--key, else brand.pem in the stack home). With `create`, a home
    without one gets a new key pair (brand.pem readable by its owner only, brand.pub)."""
    from prognos.security import write_secret
    from prognos.signing import generate_key, load_private_key

    path: Path = args.key or stack_home(args) / f"{BRAND_KEY}.pem"
    if create and args.key is None and not path.exists():
        private, public = generate_key()
        write_secret(path, private.decode("ascii"))
        path.with_suffix(".pub").write_bytes(public)
        print(f"made the brand's ledger key: {path} (keep it secret) and {path.with_suffix('.pub')}")
    if not path.exists():
        raise ConfigError(
            f"no signing key at {path}: make the brand's key with "
            f"`prognos models keygen --out {path.with_suffix('')}`, or give --key PEM"
        )
    return load_private_key(path)


def _trusted_keys(args: argparse.Namespace) -> list[Ed25519PublicKey]:
    from prognos.signing import load_public_key

    paths: list[Path] = args.trust or [stack_home(args) / f"{BRAND_KEY}.pub"]
    for path in paths:
        if not path.exists():
            raise ConfigError(
                f"no public key at {path}: `prognos models keygen` writes the brand's .pub beside its "
                "private key; give it with --trust PUB"
            )
    return [load_public_key(path) for path in paths]


def _actor(args: argparse.Namespace) -> str:
    return str(args.actor or os.environ.get("USER") or "desk")


def _append(args: argparse.Namespace, write: Callable[[Engine, Ed25519PrivateKey], Entry]) -> int:
    from prognos.desk.store import connect

    key = signing_key(args)
    engine = connect(desk_url(args))
    try:
        entry = write(engine, key)
    finally:
        engine.dispose()
    print(
        f"entry {entry.seq}: {entry.kind} {entry.entitlement_id} ({entry.customer_id}) hash {entry.hash[:16]}"
    )
    return 0


def _entitlements_grant(args: argparse.Namespace) -> int:
    from uuid import uuid4

    from prognos.desk import ledger

    now = datetime.now(UTC)
    return _append(
        args,
        lambda engine, key: ledger.grant(
            engine,
            key=key,
            now=now,
            entitlement_id=args.entitlement_id or f"E-{uuid4().hex[:10].upper()}",
            customer_id=args.customer,
            vin=args.vin,
            product=args.product,
            units=args.units,
            valid_from=args.valid_from or now,
            valid_until=args.valid_until,
            center_id=args.center,
            dealer_id=args.dealer,
            actor=_actor(args),
        ),
    )


def _entitlements_consume(args: argparse.Namespace) -> int:
    from prognos.desk import ledger

    return _append(
        args,
        lambda engine, key: ledger.consume(
            engine,
            key=key,
            now=datetime.now(UTC),
            entitlement_id=args.entitlement,
            units=args.units,
            reference=args.reference,
            center_id=args.center,
            customer_id=args.customer,
            actor=_actor(args),
        ),
    )


def _entitlements_transfer(args: argparse.Namespace) -> int:
    from prognos.desk import ledger

    if args.to_customer is None and args.to_center is None:
        raise ConfigError("a transfer needs --to-customer, --to-center or both")
    return _append(
        args,
        lambda engine, key: ledger.transfer(
            engine,
            key=key,
            now=datetime.now(UTC),
            entitlement_id=args.entitlement,
            to_customer_id=args.to_customer,
            to_center_id=args.to_center,
            reason=args.reason,
            actor=_actor(args),
        ),
    )


def _entitlements_revoke(args: argparse.Namespace) -> int:
    from prognos.desk import ledger

    return _append(
        args,
        lambda engine, key: ledger.revoke(
            engine,
            key=key,
            now=datetime.now(UTC),
            entitlement_id=args.entitlement,
            reason=args.reason,
            actor=_actor(args),
        ),
    )


def _entitlements_list(args: argparse.Namespace) -> int:
    from prognos.desk.ledger import current_entitlements
    from prognos.desk.store import connect

    engine = connect(desk_url(args))
    try:
        with engine.connect() as connection:
            states = current_entitlements(
                connection,
                now=datetime.now(UTC),
                customer_ids=None if args.customer is None else [args.customer],
            )
    finally:
        engine.dispose()
    print(_entitlement_table(list(states.values())))
    return 0


def _entitlement_table(states: list[Entitlement]) -> str:
    header = ("entitlement", "holder", "vin", "product", "used", "left", "valid until", "center", "status")
    rows = [
        (
            state.entitlement_id,
            state.customer_id,
            state.vin,
            state.product,
            f"{state.used}/{'-' if state.units is None else state.units}",
            "unlimited" if state.remaining is None else str(state.remaining),
            state.valid_until.date().isoformat(),
            state.center_id,
            state.status,
        )
        for state in sorted(states, key=lambda s: s.entitlement_id)
    ]
    if not rows:
        return "no entitlements"
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


def _entitlements_verify(args: argparse.Namespace) -> int:
    import time

    from prognos.desk.ledger import verify_ledger
    from prognos.desk.store import connect

    keys = _trusted_keys(args)
    engine = connect(desk_url(args))
    started = time.perf_counter()
    try:
        report = verify_ledger(engine, keys, jobs=args.jobs)
    finally:
        engine.dispose()
    seconds = time.perf_counter() - started
    if report.problem is not None:
        print(f"the ledger does not hold: {report.problem}", file=sys.stderr)
        print(f"entries 1 to {report.problem.seq - 1} hold", file=sys.stderr)
        return 1
    if report.entries == 0:
        print("the ledger is empty")
    else:
        print(
            f"the ledger holds: {report.entries} entries, newest seq {report.newest_seq} "
            f"hash {report.newest_hash} (checked in {seconds:.1f} s)"
        )
    return 0


def _entitlements_proof(args: argparse.Namespace) -> int:
    import json

    from prognos.desk.ledger import customer_proof, proof_qr, verify_proof
    from prognos.desk.store import connect

    keys = _trusted_keys(args)
    now = datetime.now(UTC)
    engine = connect(desk_url(args))
    try:
        with engine.connect() as connection:
            proof = customer_proof(connection, args.customer, now=now)
    finally:
        engine.dispose()
    held = verify_proof(proof, keys, now=now)  # never hand out a proof that does not hold
    _write(args.out, (json.dumps(proof, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    entries = len(proof["entries"])
    print(f"wrote {args.out}: {len(held)} entitlements of {args.customer}, {entries} signed entries")
    if args.qr is not None:
        kind = args.qr.suffix.lower().lstrip(".")
        if kind not in ("svg", "png"):
            raise ConfigError(f"--qr {args.qr}: the QR code is written as .svg or .png")
        image, carries = proof_qr(proof, kind=kind)
        _write(args.qr, image)
        what = "the whole proof" if carries == "proof" else "the proof's digest"
        print(f"wrote {args.qr}: a QR code of {what}")
    return 0


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc


def _entitlements_verify_proof(args: argparse.Namespace) -> int:
    import json

    from prognos.desk.ledger import DIGEST_FORMAT, verify_digest, verify_proof

    keys = _trusted_keys(args)
    try:
        document = json.loads(args.file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {args.file}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"{args.file} is not JSON: {exc}") from exc
    if isinstance(document, dict) and document.get("proof") == DIGEST_FORMAT:
        digest = verify_digest(document, keys)
        newest = digest.get("newest") or {}
        print(
            f"digest of {digest.get('customer_id')}'s proof made {digest.get('made_at')}: the brand signed "
            f"its newest entry (seq {newest.get('seq')}, hash {newest.get('hash')}); the figures below are "
            "the desk's, check them against the JSON proof with that entry"
        )
        for entitlement_id, remaining, status in digest.get("entitlements", []):
            print(f"  {entitlement_id}: {'unlimited' if remaining is None else remaining} left, {status}")
        return 0
    held = verify_proof(document, keys, now=args.at or datetime.now(UTC))
    print(f"the proof holds: {document['customer_id']} holds {len(held)} entitlements")
    print(_entitlement_table(held))
    return 0


# --- operations: seed data, a dealer that fails ---------------------------------------------


def _add_operations(desk: Commands) -> None:
    seed = desk.add_parser(
        "seed",
        help="fill an empty desk with simulated customers, complaints and entitlements",
        description="Generate realistic, consistent desk data: the simulator's dealers and service "
        "centers, customers with vehicles from its registry and beyond, service history, "
        "appointments, open alerts, complaints (the DMS's, imported, and the desk's, with SLA "
        "outcomes) and entitlements granted and consumed as signed ledger entries. One dealer "
        "is failing; `prognos desk dealer-failed` fails it. Refuses a desk that holds customers. "
        "Makes the brand's key in the stack home when there is none.",
    )
    seed.add_argument("--customers", type=positive_int, default=500, help="how many (default: %(default)s)")
    seed.add_argument("--seed", type=int, default=7, help="random seed (default: %(default)s)")
    _writing_options(seed)
    seed.set_defaults(run=lazy_command("prognos.sim.desk_seed:seed_command"))

    failed = desk.add_parser(
        "dealer-failed",
        help="a dealer goes out of business: move its customers, appointments and entitlements",
        description="Mark DEALER failed and, in one transaction, move its customers and booked "
        "appointments to the nearest service centers that can take them (docs/dms.md, "
        "reassignment), transfer the entitlements they hold there with signed ledger entries, "
        "record every move, and write the contact list: whom to call, where they go, what moved "
        "with them, whose car was paid for and not delivered. Exit 2 for an unknown dealer or "
        "one that failed already; nothing is written then.",
    )
    failed.add_argument("dealer", metavar="DEALER", help="the dealer's id, e.g. DLR-05")
    failed.add_argument("--reason", default="out of business", help="why (default: %(default)s)")
    failed.add_argument("--out", type=Path, default=None, help="write the contact list here (CSV)")
    _writing_options(failed)
    failed.set_defaults(run=_dealer_failed)


def _dealer_failed(args: argparse.Namespace) -> int:
    from prognos.desk.failure import fail_dealer
    from prognos.desk.store import connect

    key = signing_key(args)
    engine = connect(desk_url(args))
    try:
        failure = fail_dealer(
            engine, args.dealer, reason=args.reason, key=key, now=datetime.now(UTC), actor=_actor(args)
        )
    finally:
        engine.dispose()
    placed = sum(1 for c in failure.contacts if c.status == "placed")
    waiting = sum(1 for c in failure.contacts if c.not_delivered)
    print(
        f"dealer {failure.dealer_id} failed: {len(failure.contacts)} customers to call ({placed} have a new "
        f"service center, {len(failure.contacts) - placed} still need one; {waiting} paid for a car not "
        f"delivered); {failure.appointments_moved} appointments moved, {failure.appointments_unplaced} "
        f"could not be; {failure.transfers} entitlements transferred; {failure.complaints_rerouted} open "
        "complaints raised to the brand"
    )
    if args.out is not None:
        _write(args.out, failure.contacts_csv().encode("utf-8"))
        print(f"contact list: {args.out}")
    else:
        sys.stdout.write(failure.contacts_csv())
    return 0


# --- booking: free slots and appointments ----------------------------------------------------


def _add_booking(desk: Commands) -> None:
    slots = desk.add_parser(
        "slots",
        help="a service center's next free slots",
        description="List the next free one-hour slots of CENTER: in its dealer's opening hours, "
        "with a free bay (one per technician) and room in its weekly capacity (docs/desk.md, Booking).",
    )
    slots.add_argument("center", metavar="CENTER", help="service center id, e.g. SC-03")
    slots.add_argument("--count", type=positive_int, default=10, help="how many (default: %(default)s)")
    add_db_option(slots)
    slots.set_defaults(run=_slots)

    book = desk.add_parser(
        "book",
        help="book a visit for a customer's vehicle at a free slot",
        description="Book the slot at TIME at CENTER for the customer's vehicle; audited. Exit 2 "
        "(nothing written) for an unknown customer or center, a vehicle that is not theirs, or a "
        "slot that is not free (`prognos desk slots CENTER` lists the free ones).",
    )
    book.add_argument("--customer", required=True, help="customer id")
    book.add_argument("--vin", required=True, help="the vehicle")
    book.add_argument("--center", required=True, help="service center id")
    book.add_argument("--at", type=utc_time, required=True, metavar="TIME", help="the slot's start (UTC)")
    book.add_argument("--purpose", default="", help="what the visit is for, e.g. the alert")
    book.add_argument("--actor", default=None, help="who books (default: the login name)")
    add_db_option(book)
    book.set_defaults(run=_book)


def _slots(args: argparse.Namespace) -> int:
    from prognos.desk.booking import next_slots
    from prognos.desk.store import connect

    engine = connect(desk_url(args))
    try:
        with engine.connect() as connection:
            found = next_slots(connection, args.center, now=datetime.now(UTC), count=args.count)
    finally:
        engine.dispose()
    if not found:
        print(f"{args.center} has no free slot in the next weeks")
        return 0
    for slot in found:
        bays = f"{slot.free_bays} bay{'s' if slot.free_bays != 1 else ''}"
        print(f"{slot.start:%a %Y-%m-%d %H:%M} UTC  {bays} free")
    return 0


def _book(args: argparse.Namespace) -> int:
    from prognos.desk.booking import book
    from prognos.desk.store import connect

    engine = connect(desk_url(args))
    try:
        booking = book(
            engine,
            customer_id=args.customer,
            vin=args.vin,
            center_id=args.center,
            at=args.at,
            purpose=args.purpose,
            actor=_actor(args),
            now=datetime.now(UTC),
        )
    finally:
        engine.dispose()
    print(
        f"booked {booking.appointment_id}: {booking.vin} of {booking.customer_id} at {booking.center_id} "
        f"on {booking.at:%Y-%m-%d %H:%M} UTC (bay {booking.bay})"
    )
    return 0


# --- alerts: the fleet's alerts from the analytics job's snapshot ---------------------------


def _add_alerts(desk: Commands) -> None:
    from prognos.ops.state import DEFAULT_DATABASE

    sync = desk.add_parser(
        "sync-alerts",
        help="bring the analytics job's current alerts into the desk",
        description="Read the alerts of the analytics job's latest snapshot from the stack's "
        "InfluxDB and bring the desk's fleet alerts to it in one transaction: new ones raised, "
        "changed ones updated, those the snapshot no longer has cleared at its time (docs/desk.md, "
        '"Alerts from the fleet"). Syncing the same snapshot again changes nothing. With --every, '
        "again every DURATION until SIGINT or SIGTERM. Exit 1 when a database cannot be reached.",
    )
    sync.add_argument(
        "--database",
        default=DEFAULT_DATABASE,
        help="InfluxDB database the analytics job writes (default: %(default)s)",
    )
    sync.add_argument(
        "--every", default=None, metavar="DURATION", help="sync every DURATION, like 1m (default: once)"
    )
    add_db_option(sync)
    sync.set_defaults(run=_sync_alerts)


def _sync_alerts(args: argparse.Namespace) -> int:
    import time

    from prognos.commands import until_signalled

    require("requests")
    require("pandas")
    require("sqlalchemy")
    from prognos.cloud.analytics.job import parse_duration_s
    from prognos.cloud.analytics.reading import latest_snapshot_ms, rfc3339, snapshot_alerts
    from prognos.desk.alerts import fleet_alerts, sync_alerts
    from prognos.desk.store import StoreError, connect
    from prognos.errors import TransientError
    from prognos.ops.access import stack_influx
    from prognos.ops.state import load_stack

    every_s = None if args.every is None else parse_duration_s(args.every, what="--every")
    home = stack_home(args)
    influx = stack_influx(load_stack(home), "analytics")
    engine = connect(desk_url(args))

    def once() -> None:
        at_ms = latest_snapshot_ms(influx, args.database)
        if at_ms is None:
            print(
                f"no analytics snapshot in database {args.database!r} of the stack in {home} yet: "
                "nothing to sync (`prognos cloud analytics` writes one)",
                flush=True,
            )
            return
        alerts = fleet_alerts(snapshot_alerts(influx, args.database, at_ms).to_dict("records"))
        changes = sync_alerts(engine, alerts, at=datetime.fromtimestamp(at_ms / 1000, UTC))
        print(f"alerts of snapshot {rfc3339(at_ms)}: {changes.text()}", flush=True)

    try:
        if every_s is None:
            once()
            return 0
        stop = until_signalled()
        while not stop.is_set():
            started = time.monotonic()
            try:
                once()
            except (TransientError, StoreError) as exc:
                print(f"prognos: sync failed, next in {every_s:.0f} s: {exc}", file=sys.stderr, flush=True)
            stop.wait(max(0.0, every_s - (time.monotonic() - started)))
        return 0
    finally:
        influx.close()
        engine.dispose()


# --- guided diagnosis: likely root causes from the work-order history, and its backtest ------


def _add_guide(desk: Commands) -> None:
    guide = group(desk, "guide", "guided diagnosis: likely root causes and repairs from past work orders")
    suggest = guide.add_parser(
        "suggest",
        help="the likely root causes and repair steps for a vehicle that comes in with a fault",
        description="Rank the root causes of a vehicle's fault code by what the work-order history "
        "learned (docs/desk.md, Guided diagnosis): each with its repair steps, a confidence and the "
        "evidence (similar past cases, and how many of them were fixed the first time). The model "
        "and the past repair come from the desk; the mileage, when not given, from the vehicle's "
        "latest work order. Exit 2 for an unknown VIN or a code without history.",
    )
    suggest.add_argument("--vin", required=True, help="the vehicle")
    suggest.add_argument("--code", required=True, help="the fault code it reported, e.g. brakes.pad_wear")
    suggest.add_argument(
        "--symptom",
        dest="symptoms",
        action="append",
        default=[],
        type=_symptom,
        metavar="TAG",
        help="an observed symptom, a tag like pulls_to_side (repeat for more)",
    )
    suggest.add_argument("--mileage", type=_kilometres, default=None, metavar="KM", help="the odometer, km")
    suggest.add_argument("--limit", type=positive_int, default=5, help="causes listed (default: %(default)s)")
    suggest.add_argument("--json", action="store_true", help="print the advice as JSON")
    add_db_option(suggest)
    suggest.set_defaults(run=_guide_suggest)

    replay = guide.add_parser(
        "backtest",
        help="replay the history: first-time fix without and with the guide",
        description="Learn from the cases settled before the split and replay the cases that began "
        "after it: a case counts as fixed the first time under a policy when the root cause it "
        "picks first is the one the case's last repair confirmed. Without: the root cause most "
        "often repaired for the code before the split; with: the guide's first suggestion "
        "(docs/desk.md, Guided diagnosis). --json prints "
        '{"ftfr_without": ..., "ftfr_with": ..., ...}. Exit 2 for a split that leaves nothing to '
        "learn from or nothing to replay.",
    )
    replay.add_argument(
        "--split",
        type=utc_time,
        default=None,
        metavar="DATE",
        help="learn before, replay from this date or time (UTC; default: after 70 %% of the cases)",
    )
    replay.add_argument("--json", action="store_true", help="print the figures as JSON")
    add_db_option(replay)
    replay.set_defaults(run=_guide_backtest)


def _symptom(text: str) -> str:
    from prognos.cloud.dealers.kinds import TAG

    tag = text.strip()
    if not TAG.fullmatch(tag):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a symptom tag (a lower-case word of letters, digits and _, like pulls_to_side)"
        )
    return tag


def _kilometres(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of kilometres") from None
    if not 0 <= value <= 5_000_000:
        raise argparse.ArgumentTypeError(f"{value} km is not between 0 and 5,000,000")
    return value


def _guide_suggest(args: argparse.Namespace) -> int:
    import json

    from prognos.desk.guide_store import advise
    from prognos.desk.store import connect

    engine = connect(desk_url(args))
    try:
        with engine.connect() as connection:
            advice = advise(
                connection,
                vin=args.vin,
                code=args.code,
                symptoms=frozenset(args.symptoms),
                mileage_km=args.mileage,
                now=datetime.now(UTC),
                limit=args.limit,
            )
    finally:
        engine.dispose()
    f = advice.features
    if args.json:
        document = {
            "vin": args.vin,
            "code": f.code,
            "model": f.model,
            "mileage_km": f.mileage_km,
            "mileage_band": f.band,
            "symptoms": sorted(f.symptoms) if f.symptoms_known else None,
            "previous_root_cause": f.previous,
            "learned_cases": advice.learned_cases,
            "similar_cases": advice.similar_cases,
            "suggestions": [
                {
                    "root_cause": s.root_cause,
                    "repair": list(s.repair),
                    "confidence": round(s.confidence, 4),
                    "similar_cases": s.similar_cases,
                    "fixed_first_time": s.fixed_first_time,
                    "cases": s.cases,
                }
                for s in advice.suggestions
            ],
        }
        print(json.dumps(document, indent=2))
        return 0
    mileage = "mileage unknown" if f.mileage_km is None else f"{f.mileage_km:,} km ({f.band})"
    print(f"{args.vin}: {f.model}, {mileage}, fault {f.code}")
    symptoms = ", ".join(sorted(f.symptoms)) or "none given (not used)"
    print(f"symptoms: {symptoms}; previous root cause for the code: {f.previous}")
    print(
        f"learned from {advice.learned_cases} settled cases of the code; {advice.similar_cases} similar "
        "(same model and mileage band, at least half of the symptoms)"
    )
    for rank, s in enumerate(advice.suggestions, 1):
        steps = " then ".join(s.repair) or "no repair recorded"
        print(
            f"{rank}. {s.root_cause} ({s.confidence:.0%}): {steps}; "
            f"{_cases(s.similar_cases)} like this one, {s.fixed_first_time} of them fixed the first "
            f"time ({_cases(s.cases)} of the code)"
        )
    return 0


def _cases(count: int) -> str:
    return f"{count} case" if count == 1 else f"{count} cases"


def _guide_backtest(args: argparse.Namespace) -> int:
    import json

    from prognos.desk.guide_store import run_backtest
    from prognos.desk.store import connect

    engine = connect(desk_url(args))
    try:
        with engine.connect() as connection:
            result = run_backtest(connection, split=args.split)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(result.as_dict()))
        return 0
    figures = result.as_dict()
    print(
        f"split {figures['split']}: learned from {result.learned_cases} settled cases, replayed "
        f"{result.replayed_cases} that began after it and settled"
        + (f" ({result.unanswered} of codes without history left out)" if result.unanswered else "")
    )
    print(f"first-time fix without the guide (the code's most common repair): {result.ftfr_without:.1%}")
    print(f"first-time fix with the guide (its first suggestion):            {result.ftfr_with:.1%}")
    print(f"first-time fix as recorded (what the workshops did):             {result.ftfr_recorded:.1%}")
    print(
        f"the guide's mean confidence in its first suggestions:            {result.mean_confidence_with:.1%}"
    )
    return 0


# --- diagnosis reports: one per raised or escalated alert (the worker, and reading them) -------

WEBHOOK_SECRET_ENV = "PROGNOS_WEBHOOK_SECRET"  # the report worker's webhook secret, without a file
SMTP_PASSWORD_ENV = "PROGNOS_SMTP_PASSWORD"


def _add_reports(desk: Commands) -> None:
    reports = group(desk, "reports", "diagnosis reports: list, show, export, send again")
    listed = reports.add_parser(
        "list",
        help="the latest diagnosis reports, newest first",
        description="List diagnosis reports, newest first: when, priority, raised or escalated, "
        "vehicle, code, the center it went to and its summary (docs/desk.md, Diagnosis reports).",
    )
    listed.add_argument("--vin", default=None, help="only this vehicle's")
    listed.add_argument("--since", type=utc_time, default=None, metavar="TIME", help="created then or later")
    listed.add_argument("--limit", type=positive_int, default=50, help="most listed (default: %(default)s)")
    add_db_option(listed)
    listed.set_defaults(run=_reports_list)

    show = reports.add_parser(
        "show",
        help="one report in words, with its notifications",
        description="Print a diagnosis report as plain text (the e-mail's body) and the state of its "
        "notifications. An unknown id exits 2.",
    )
    show.add_argument("report_id", metavar="REPORT", help="report id, e.g. RP-0123456789abcdef01234567")
    add_db_option(show)
    show.set_defaults(run=_reports_show)

    export = reports.add_parser(
        "export",
        help="write a report as a self-contained HTML file",
        description="Write the report's HTML (inline styles and charts, nothing fetched from elsewhere) "
        "to OUT. An unknown id exits 2.",
    )
    export.add_argument("report_id", metavar="REPORT", help="report id")
    export.add_argument("--out", type=Path, required=True, metavar="HTML", help="the file to write")
    add_db_option(export)
    export.set_defaults(run=_reports_export)

    resend = reports.add_parser(
        "resend",
        help="send a report's given-up notifications again",
        description="Make the notifications of REPORT that were given up pending again: a running "
        "report worker with that channel sends them. An unknown id exits 2.",
    )
    resend.add_argument("report_id", metavar="REPORT", help="report id")
    add_db_option(resend)
    resend.set_defaults(run=_reports_resend)


def _reports_list(args: argparse.Namespace) -> int:
    from prognos.desk.reports import list_reports
    from prognos.desk.store import connect

    engine = connect(desk_url(args))
    try:
        with engine.connect() as connection:
            found = list_reports(connection, vin=args.vin, since=args.since, limit=args.limit)
    finally:
        engine.dispose()
    if not found:
        print("no diagnosis reports" + (f" for {args.vin}" if args.vin else ""))
        return 0
    for r in found:
        print(
            f"{r.created_at:%Y-%m-%d %H:%M} UTC  {r.report_id}  {r.priority} {r.event:9}  {r.vin}  "
            f"{r.code}  -> {r.center_id or '-'}  {r.summary}"
        )
    return 0


def _report_detail(args: argparse.Namespace) -> ReportDetail:
    from prognos.desk.reports import report_detail
    from prognos.desk.store import connect

    engine = connect(desk_url(args))
    try:
        with engine.connect() as connection:
            return report_detail(connection, args.report_id)
    finally:
        engine.dispose()


def _reports_show(args: argparse.Namespace) -> int:
    from prognos.cloud.reports.render import render_text
    from prognos.cloud.reports.report import from_dict

    detail = _report_detail(args)
    print(render_text(from_dict(detail.body)), end="")
    print("\nNOTIFICATIONS")
    if not detail.notifications:
        print("none: no webhook or e-mail was configured when it was stored")
    for n in detail.notifications:
        when = f"sent {n.sent_at:%Y-%m-%d %H:%M:%S} UTC" if n.sent_at else n.status
        error = f"; last error: {n.last_error}" if n.last_error else ""
        print(f"- {n.channel} to {n.target}: {when} after {n.attempts} attempt(s){error}")
    return 0


def _reports_export(args: argparse.Namespace) -> int:
    detail = _report_detail(args)
    try:
        args.out.write_text(detail.html, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    print(f"wrote {args.out} ({len(detail.html.encode()) / 1024:.0f} KiB, self-contained)")
    return 0


def _reports_resend(args: argparse.Namespace) -> int:
    from prognos.desk.reports import resend
    from prognos.desk.store import connect

    engine = connect(desk_url(args))
    try:
        count = resend(engine, args.report_id, now=datetime.now(UTC))
    finally:
        engine.dispose()
    print(f"{count} notification(s) of {args.report_id} pending again")
    return 0


def reports_run(args: argparse.Namespace) -> int:
    """`prognos cloud reports run` (registered by prognos.cloud.cli): the report worker, storing
    into this desk."""
    import socket
    from datetime import timedelta

    require("paho.mqtt")
    require("requests")
    require("pandas")
    require("sqlalchemy")
    from prognos.cloud.analytics.job import parse_duration_s
    from prognos.cloud.ingest.worker import tune_garbage_collection
    from prognos.cloud.reports.alerting import TriggerSettings
    from prognos.cloud.reports.sources import InfluxSources
    from prognos.cloud.reports.worker import ReportWorker, WorkerSettings
    from prognos.commands import until_signalled
    from prognos.desk.reports import DeskReports
    from prognos.desk.store import connect
    from prognos.ops.access import stack_influx
    from prognos.ops.state import load_stack

    reopen = timedelta(seconds=parse_duration_s(args.reopen_after, what="--reopen-after"))
    history_hours = parse_duration_s(args.history, what="--history") / 3600.0
    channels = _report_channels(args)
    info = load_stack(stack_home(args))
    engine = connect(desk_url(args))
    sources = InfluxSources(
        connect=lambda: stack_influx(info, "dashboard"), database=args.database, history_hours=history_hours
    )
    worker = ReportWorker(
        host=info.mqtt_host,
        port=info.mqtt_port,
        auth=info.broker_auth("reports"),
        store=DeskReports(engine),
        sources=sources,
        channels=channels,
        group=args.group,
        fleet=args.fleet,
        client_id=args.client_id or f"prognos-reports-{args.group}-{socket.gethostname()}"[:64],
        settings=WorkerSettings(triggers=TriggerSettings(reopen_after=reopen), builders=args.builders),
    )
    tune_garbage_collection()  # it receives every record, as ingest does
    stop = until_signalled()
    sent = ", ".join(channel for channel, _ in channels.targets()) or "none (no --webhook, no --smtp)"
    try:
        worker.start()
        print(f"reports: {worker.subscription} -> desk; notifications: {sent}", flush=True)
        stats = worker.run(stop)
    finally:
        engine.dispose()
        if channels.webhook is not None:
            channels.webhook.close()
    print(
        f"reports stopped: {stats.received} records, {stats.raised} raised, {stats.escalated} escalated, "
        f"{stats.reports} reports stored, {stats.notifications_sent} notifications sent"
    )
    return 0


def _report_channels(args: argparse.Namespace) -> Channels:
    """The webhook (--webhook with its secret) and the e-mail (--smtp, --mail-from, --mail-to) of
    the report worker; ConfigError for an incomplete or malformed pair."""
    from prognos.cloud.reports.notify import MailSender, WebhookSender, read_secret, recipients_of
    from prognos.cloud.reports.worker import Channels

    webhook = None
    if args.webhook is None and args.webhook_secret_file is not None:
        raise ConfigError("--webhook-secret-file needs --webhook URL")
    if args.webhook is not None:
        if not args.webhook.startswith(("http://", "https://")):
            raise ConfigError(f"--webhook {args.webhook!r} is not an http:// or https:// URL")
        if args.webhook_secret_file is not None:
            try:
                text = args.webhook_secret_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read {args.webhook_secret_file}: {exc.strerror or exc}") from exc
            secret = read_secret(text, str(args.webhook_secret_file))
        elif os.environ.get(WEBHOOK_SECRET_ENV):
            secret = read_secret(os.environ[WEBHOOK_SECRET_ENV], f"${WEBHOOK_SECRET_ENV}")
        else:
            raise ConfigError(
                f"--webhook needs its secret: --webhook-secret-file FILE or ${WEBHOOK_SECRET_ENV}"
            )
        webhook = WebhookSender(secret=secret)
    if args.smtp is None:
        if args.mail_to or args.mail_from:
            raise ConfigError("--mail-from and --mail-to need --smtp HOST:PORT")
        return Channels(webhook_url=args.webhook, webhook=webhook)
    host, _, port = args.smtp.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--smtp {args.smtp!r} is not HOST:PORT")
    if not args.mail_from or not args.mail_to:
        raise ConfigError("--smtp needs --mail-from ADDRESS and --mail-to ADDRESSES")
    recipients_of(args.mail_from)
    mail = MailSender(
        host=host,
        port=int(port),
        sender=args.mail_from,
        starttls=args.smtp_starttls,
        username=args.smtp_user,
        password=os.environ.get(SMTP_PASSWORD_ENV) if args.smtp_user else None,
    )
    return Channels(
        webhook_url=args.webhook, webhook=webhook, mail_to=tuple(recipients_of(args.mail_to)), mail=mail
    )
