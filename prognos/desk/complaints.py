"""Complaint tickets in the desk's store: opening, moves with optimistic versioning, the
escalation job, the DMS complaint import, queries and metrics (docs/desk.md, "Complaints").

Each operation is one transaction: it writes the ticket and its audit rows, or (on bad input, a
conflict or a database error) nothing. The rules themselves are pure, in prognos.desk.tickets;
the names a caller needs from there are re-exported here.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, insert, or_, select, update

from prognos.cloud.dealers.dms import decode_table, validate
from prognos.cloud.dealers.kinds import COMPLAINT, Checked, Problem, Record
from prognos.desk import audit, schema
from prognos.desk.calendar import BusinessCalendar, calendar_of
from prognos.desk.store import transaction
from prognos.desk.tickets import (
    CATEGORIES,
    DONE_STATES,
    LEVELS,
    METRIC_COLUMNS,
    STATES,
    TRANSITIONS,
    Category,
    Clock,
    Escalation,
    IllegalTransitionError,
    Period,
    State,
    Ticket,
    category_named,
    changed_fields,
    check_move,
    clock_text,
    clocks,
    dms_category,
    due_times,
    escalated,
    escalations,
    level_named,
    metrics,
    moved,
    new_ticket,
    period_named,
    route,
    state_named,
)
from prognos.errors import ConfigError, ConflictError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CATEGORIES",
    "LEVELS",
    "STATES",
    "TRANSITIONS",
    "AuditEntry",
    "BadComplaintFilesError",
    "ClockView",
    "ConflictError",
    "DmsImport",
    "EscalationRun",
    "FileImport",
    "IllegalTransitionError",
    "Ticket",
    "TicketView",
    "UnknownCustomerError",
    "UnknownTicketError",
    "audit_trail",
    "calendars",
    "dealer_calendar",
    "escalate",
    "get_ticket",
    "import_dms_complaints",
    "list_tickets",
    "move",
    "open_complaint",
    "ticket_metrics",
    "ticket_view",
    "tickets_frame",
]

log = logging.getLogger(__name__)

ENTITY = "complaint"  # the audit rows' entity
MAX_SHOWN = 20  # bad rows listed in an import's error


class UnknownTicketError(ConfigError):
    """No ticket has that id."""


class UnknownCustomerError(ConfigError):
    """No customer has that id."""


class BadComplaintFilesError(ConfigError):
    """Rows of DMS complaint files that cannot be imported; nothing was written. The message
    lists the first MAX_SHOWN problems with file and line, and counts the rest."""

    def __init__(self, problems: Sequence[tuple[str, Problem]], files: int) -> None:
        self.problems = tuple(problems)
        count = len(problems)
        names = {name for name, _ in problems}
        lines = [
            f"{count} bad row{'s' if count != 1 else ''} in {len(names)} of {files} "
            f"file{'s' if files != 1 else ''}; nothing was imported"
        ]
        lines.extend(f"  {name} {problem}" for name, problem in problems[:MAX_SHOWN])
        if count > MAX_SHOWN:
            lines.append(f"  ... and {count - MAX_SHOWN} more")
        super().__init__("\n".join(lines))


# --- rows -------------------------------------------------------------------------------------


def _utc(value: Any) -> datetime | None:
    """A stored time as aware UTC (SQLite gives naive datetimes back; they were stored as UTC)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"not a time: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _required_utc(value: Any) -> datetime:
    moment = _utc(value)
    if moment is None:
        raise TypeError("a required time is empty")
    return moment


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError(f"{now} has no time zone: the desk's times are timezone-aware")
    return now.astimezone(UTC)


def ticket_from_row(row: Mapping[Any, Any]) -> Ticket:
    return Ticket(
        complaint_id=str(row["complaint_id"]),
        source="dms" if row["source"] == "dms" else "desk",
        customer_id=row["customer_id"],
        vin=row["vin"],
        dealer_id=str(row["dealer_id"]),
        team=str(row["team"]),
        category=str(row["category"]),
        summary=str(row["summary"]),
        state=state_named(str(row["state"])),
        level=level_named(str(row["level"])),
        opened_at=_required_utc(row["opened_at"]),
        responded_at=_utc(row["responded_at"]),
        resolved_at=_utc(row["resolved_at"]),
        closed_at=_utc(row["closed_at"]),
        response_due_at=_required_utc(row["response_due_at"]),
        resolution_due_at=_required_utc(row["resolution_due_at"]),
        response_escalated_at=_utc(row["response_escalated_at"]),
        resolution_escalated_at=_utc(row["resolution_escalated_at"]),
        contacts=int(row["contacts"]),
        reopened=int(row["reopened"]),
        version=int(row["version"]),
        updated_at=_required_utc(row["updated_at"]),
    )


def _stored(value: object) -> object:
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def _audit(
    connection: Connection,
    *,
    at: datetime,
    actor: str,
    complaint_id: str,
    action: str,
    before: Mapping[str, object] | None,
    after: Mapping[str, object] | None,
) -> None:
    audit.record(
        connection,
        at=at,
        actor=actor,
        entity=ENTITY,
        entity_id=complaint_id,
        action=action,
        before=before,
        after=after,
    )


def _checked_actor(actor: str) -> str:
    actor = actor.strip()
    if not actor or len(actor) > schema.NAME:
        raise ConfigError(f"the actor must be a name of 1 to {schema.NAME} characters, not {actor!r}")
    return actor


def _read(connection: Connection, complaint_id: str) -> Ticket | None:
    row = connection.execute(
        select(schema.complaint).where(schema.complaint.c.complaint_id == complaint_id)
    ).first()
    return None if row is None else ticket_from_row(row._mapping)


def _insert(connection: Connection, ticket: Ticket) -> None:
    connection.execute(insert(schema.complaint).values({k: _stored(v) for k, v in ticket.fields().items()}))


def _create(connection: Connection, ticket: Ticket, *, actor: str, at: datetime, action: str) -> None:
    """Store a new ticket and audit it with all its fields."""
    _insert(connection, ticket)
    after = {k: v for k, v in ticket.fields().items() if k not in ("version", "updated_at")}
    _audit(
        connection,
        at=at,
        actor=actor,
        complaint_id=ticket.complaint_id,
        action=action,
        before=None,
        after=after,
    )


def _update(connection: Connection, before: Ticket, after: Ticket) -> Ticket:
    """Write the fields of `after` that differ from `before`, if the stored version is still
    `before.version`; ConflictError if someone else changed the ticket first."""
    _, new = changed_fields(before, after)
    values = {name: _stored(value) for name, value in new.items()}
    values.update(version=before.version + 1, updated_at=_stored(after.updated_at))
    complaint = schema.complaint
    result = connection.execute(
        update(complaint)
        .where(complaint.c.complaint_id == before.complaint_id, complaint.c.version == before.version)
        .values(values)
    )
    if result.rowcount != 1:
        raise _conflict(connection, before.complaint_id, before.version)
    return replace(after, version=before.version + 1)


def _conflict(connection: Connection, complaint_id: str, expected: int) -> ConfigError:
    current = _read(connection, complaint_id)
    if current is None:
        return UnknownTicketError(f"no complaint {complaint_id!r}")
    return ConflictError(
        f"{complaint_id} was changed by someone else: it is at version {current.version} "
        f"(state {current.state}), not {expected}; nothing was written. Look at it again "
        f"(prognos desk complaints show {complaint_id}) and repeat the move with --version "
        f"{current.version} if it still applies"
    )


# --- calendars --------------------------------------------------------------------------------


def _holidays(connection: Connection, dealer_ids: Iterable[str] | None = None) -> dict[str, set[date]]:
    query = select(schema.holiday.c.dealer_id, schema.holiday.c.day)
    if dealer_ids is not None:
        query = query.where(schema.holiday.c.dealer_id.in_(list(dealer_ids)))
    days: dict[str, set[date]] = {}
    for dealer_id, day in connection.execute(query):
        days.setdefault(dealer_id, set()).add(day)
    return days


def dealer_calendar(connection: Connection, dealer_id: str) -> BusinessCalendar:
    """The business calendar of a dealer; ConfigError if there is no such dealer."""
    row = connection.execute(select(schema.dealer).where(schema.dealer.c.dealer_id == dealer_id)).first()
    if row is None:
        raise ConfigError(f"no dealer {dealer_id!r}")
    return calendar_of(row._mapping, _holidays(connection, [dealer_id]).get(dealer_id, ()))


def calendars(connection: Connection) -> dict[str, BusinessCalendar]:
    """Every dealer's business calendar."""
    holidays = _holidays(connection)
    return {
        row.dealer_id: calendar_of(row._mapping, holidays.get(row.dealer_id, ()))
        for row in connection.execute(select(schema.dealer))
    }


def _category_of(ticket: Ticket) -> Category:
    return CATEGORIES.get(ticket.category, CATEGORIES["other"])


# --- opening and moving -----------------------------------------------------------------------


def new_complaint_id(now: datetime) -> str:
    return f"CP-{now:%Y%m%d}-{secrets.token_hex(3).upper()}"


def open_complaint(
    engine: Engine,
    *,
    customer_id: str,
    category: str,
    actor: str,
    summary: str = "",
    vin: str | None = None,
    dealer_id: str | None = None,
    complaint_id: str | None = None,
    now: datetime | None = None,
) -> Ticket:
    """Open a ticket from the desk for a known customer, routed to the dealer named or else the
    customer's home center's dealer, with its SLA clocks on that dealer's calendar."""
    now = _now(now)
    actor = _checked_actor(actor)
    chosen = category_named(category)
    if len(summary) > schema.NAME:
        raise ConfigError(f"the summary is longer than {schema.NAME} characters")
    if complaint_id is not None and not 0 < len(complaint_id) <= schema.ID:
        raise ConfigError(f"a complaint id has 1 to {schema.ID} characters, not {complaint_id!r}")
    with transaction(engine) as connection:
        customer = connection.execute(
            select(schema.customer.c.customer_id, schema.service_center.c.dealer_id)
            .select_from(schema.customer.outerjoin(schema.service_center))
            .where(schema.customer.c.customer_id == customer_id)
        ).first()
        if customer is None:
            raise UnknownCustomerError(f"no customer {customer_id!r}; nothing was written")
        if vin is not None:
            owner = connection.execute(
                select(schema.vehicle.c.customer_id).where(schema.vehicle.c.vin == vin)
            ).scalar_one_or_none()
            if owner != customer_id:
                raise ConfigError(
                    f"vehicle {vin!r} is not one of customer {customer_id}'s; nothing was written"
                )
        dealer, _ = route(chosen, home_dealer=customer.dealer_id, named_dealer=dealer_id)
        calendar = dealer_calendar(connection, dealer)
        complaint_id = complaint_id or new_complaint_id(now)
        if _read(connection, complaint_id) is not None:
            raise ConfigError(f"complaint {complaint_id!r} exists already")
        ticket = new_ticket(
            complaint_id=complaint_id,
            source="desk",
            customer_id=customer_id,
            vin=vin,
            dealer_id=dealer,
            category=chosen,
            summary=summary,
            opened_at=now,
            calendar=calendar,
            now=now,
        )
        _create(connection, ticket, actor=actor, at=now, action="open")
    log.info("%s opened complaint %s for %s at %s", actor, complaint_id, customer_id, dealer)
    return ticket


def move(
    engine: Engine,
    complaint_id: str,
    to_state: str,
    *,
    actor: str,
    expected_version: int,
    note: str = "",
    now: datetime | None = None,
) -> Ticket:
    """Move a ticket to `to_state`, if it is still at `expected_version` (else ConflictError,
    naming the version and state it is at) and the move is allowed (else
    IllegalTransitionError). Audited with the fields before and after, and the note."""
    now = _now(now)
    actor = _checked_actor(actor)
    target: State = state_named(to_state)
    with transaction(engine) as connection:
        ticket = _read(connection, complaint_id)
        if ticket is None:
            raise UnknownTicketError(f"no complaint {complaint_id!r}; nothing was written")
        if ticket.version != expected_version:
            raise _conflict(connection, complaint_id, expected_version)
        check_move(ticket, target)
        calendar = dealer_calendar(connection, ticket.dealer_id)
        after = moved(ticket, target, now=now, category=_category_of(ticket), calendar=calendar)
        stored = _update(connection, ticket, after)
        old, new = changed_fields(ticket, after)
        if note:
            new["note"] = note
        _audit(
            connection, at=now, actor=actor, complaint_id=complaint_id, action="move", before=old, after=new
        )
    log.info("%s moved %s from %s to %s", actor, complaint_id, ticket.state, target)
    return stored


# --- escalation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EscalationRun:
    escalations: tuple[Escalation, ...]
    skipped: tuple[str, ...]  # tickets changed by someone else during the run: the next run sees them


def escalate(engine: Engine, now: datetime | None = None, actor: str = "escalation") -> EscalationRun:
    """For every open ticket whose response or resolution clock has run out and was not
    escalated yet, raise the level one step per such clock (prognos.desk.tickets.escalations),
    each step audited. Run again at the same `now` it changes nothing. One transaction per
    ticket, so a ticket a manager changes meanwhile is left for the next run."""
    now = _now(now)
    actor = _checked_actor(actor)
    complaint = schema.complaint
    with engine.connect() as connection:
        candidates = list(
            connection.execute(
                select(complaint.c.complaint_id)
                .where(
                    complaint.c.state.not_in(sorted(DONE_STATES)),
                    or_(
                        complaint.c.response_due_at < now,
                        complaint.c.resolution_due_at < now,
                    ),
                )
                .order_by(complaint.c.complaint_id)
            ).scalars()
        )
    done: list[Escalation] = []
    skipped: list[str] = []
    for complaint_id in candidates:
        try:
            done.extend(_escalate_one(engine, complaint_id, now, actor))
        except ConflictError:
            skipped.append(complaint_id)
            log.info("escalation: %s changed during the run; left for the next run", complaint_id)
    return EscalationRun(tuple(done), tuple(skipped))


def _escalate_one(engine: Engine, complaint_id: str, now: datetime, actor: str) -> list[Escalation]:
    with transaction(engine) as connection:
        ticket = _read(connection, complaint_id)
        if ticket is None:
            return []
        steps = escalations(ticket, now)
        if not steps:
            return []
        after = ticket
        for step in steps:
            before, after = after, escalated(after, step, now)
            old, new = changed_fields(before, after)
            new["clock"], new["due_at"] = step.clock, step.due_at
            _audit(
                connection,
                at=now,
                actor=actor,
                complaint_id=complaint_id,
                action="escalate",
                before=old,
                after=new,
            )
        _update(connection, ticket, after)
    return steps


# --- DMS import -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileImport:
    name: str
    sha256: str
    rows: int
    created: int
    updated: int
    unchanged: int
    already_imported: bool  # the same content was imported before: nothing done


@dataclass(frozen=True)
class DmsImport:
    files: tuple[FileImport, ...]


@dataclass(frozen=True)
class _File:
    name: str
    sha256: str
    checked: Checked
    locations: tuple[str, ...]  # of each record, in order


def _read_file(path: Path) -> _File:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    table = decode_table(data, str(path))
    checked = validate(table, COMPLAINT)
    locations = tuple(row.location for row in table.rows) if checked.ok else ()
    return _File(str(path), hashlib.sha256(data).hexdigest(), checked, locations)


def import_dms_complaints(
    engine: Engine,
    paths: Sequence[Path] | Path,
    *,
    now: datetime | None = None,
    actor: str = "dms-import",
) -> DmsImport:
    """Import DMS complaint exports (docs/dms.md, kind `complaint`): every row of every file is
    checked first, against the format and against the store; one bad row and nothing is
    written (BadComplaintFilesError). Tickets are upserted by complaint_id; a file whose content
    (sha256) was imported before is skipped, so importing it again changes nothing."""
    now = _now(now)
    actor = _checked_actor(actor)
    if isinstance(paths, Path):
        paths = [paths]
    if not paths:
        raise ConfigError("no files given")
    files = [_read_file(path) for path in paths]
    problems = [(f.name, problem) for f in files for problem in f.checked.problems]
    if problems:
        raise BadComplaintFilesError(problems, len(files))
    results: list[FileImport] = []
    with transaction(engine) as connection:
        seen = set(connection.execute(select(schema.dms_file.c.sha256)).scalars())
        fresh = [f for f in files if f.sha256 not in seen and not _repeat(f, files)]
        problems = _store_problems(connection, fresh)
        if problems:
            raise BadComplaintFilesError(problems, len(files))
        calendars_by_dealer: dict[str, BusinessCalendar] = {}
        for f in files:
            if f not in fresh:
                results.append(FileImport(f.name, f.sha256, f.checked.rows, 0, 0, 0, already_imported=True))
                continue
            counts = {"created": 0, "updated": 0, "unchanged": 0}
            for record in f.checked.records:
                dealer = str(record["dealer_id"])
                if dealer not in calendars_by_dealer:
                    calendars_by_dealer[dealer] = dealer_calendar(connection, dealer)
                counts[_upsert(connection, record, calendars_by_dealer[dealer], now, actor)] += 1
            connection.execute(
                insert(schema.dms_file).values(
                    sha256=f.sha256,
                    kind=COMPLAINT.name,
                    name=Path(f.name).name[: schema.NAME],
                    rows=len(f.checked.records),
                    imported_at=now,
                )
            )
            results.append(FileImport(f.name, f.sha256, f.checked.rows, **counts, already_imported=False))
    return DmsImport(tuple(results))


def _repeat(f: _File, files: Sequence[_File]) -> bool:
    """The same content given twice in one import: the later copy is a repeat."""
    return next(other for other in files if other.sha256 == f.sha256) is not f


def _store_problems(connection: Connection, files: Sequence[_File]) -> list[tuple[str, Problem]]:
    """What the store refuses of rows that are good DMS rows: an unknown dealer, an id longer
    than the store keeps, an id that is a desk ticket or another dealer's complaint."""
    dealers = set(connection.execute(select(schema.dealer.c.dealer_id)).scalars())
    ids = {str(r["complaint_id"]) for f in files for r in f.checked.records}
    existing = {
        row.complaint_id: (row.source, row.dealer_id)
        for row in connection.execute(
            select(
                schema.complaint.c.complaint_id, schema.complaint.c.source, schema.complaint.c.dealer_id
            ).where(schema.complaint.c.complaint_id.in_(sorted(ids)))
        )
    }
    owner: dict[str, tuple[str, str]] = {}  # complaint_id -> (dealer, where first seen)
    problems: list[tuple[str, Problem]] = []
    for f in files:
        for position, (record, location) in enumerate(zip(f.checked.records, f.locations, strict=True)):
            complaint_id, dealer = str(record["complaint_id"]), str(record["dealer_id"])
            vin = record.get("vin")
            reasons = []
            if len(complaint_id) > schema.ID:
                reasons.append(f"complaint_id is longer than {schema.ID} characters")
            if dealer not in dealers:
                reasons.append(f"dealer {dealer!r} is not a dealer of the desk")
            if isinstance(vin, str) and len(vin) > 17:
                reasons.append(f"vin {vin!r} is longer than 17 characters")
            stored = existing.get(complaint_id)
            if stored is not None and stored[0] != "dms":
                reasons.append(f"complaint {complaint_id} was opened in the desk, not in a DMS")
            elif stored is not None and stored[1] != dealer:
                reasons.append(f"complaint {complaint_id} is dealer {stored[1]}'s, not {dealer}'s")
            first = owner.setdefault(complaint_id, (dealer, f"{Path(f.name).name} {location}"))
            if first[0] != dealer:
                reasons.append(f"complaint {complaint_id} is dealer {first[0]}'s in {first[1]}")
            if reasons:
                problems.append((f.name, Problem(location, position, tuple(reasons))))
    return problems


def _upsert(
    connection: Connection, record: Record, calendar: BusinessCalendar, now: datetime, actor: str
) -> str:
    """Create or update the ticket of one DMS row: 'created', 'updated' or 'unchanged'."""
    complaint_id = str(record["complaint_id"])
    text = str(record["category"])
    category = dms_category(text)
    opened_at = _required_utc(record["opened_at"])
    closed_at = _utc(record.get("closed_at"))
    vin = record.get("vin")
    vin = vin if isinstance(vin, str) else None
    customer_id = None
    if vin is not None:
        customer_id = connection.execute(
            select(schema.vehicle.c.customer_id).where(schema.vehicle.c.vin == vin)
        ).scalar_one_or_none()
    current = _read(connection, complaint_id)
    if current is None:
        ticket = new_ticket(
            complaint_id=complaint_id,
            source="dms",
            customer_id=customer_id,
            vin=vin,
            dealer_id=str(record["dealer_id"]),
            category=category,
            summary=text[: schema.NAME],
            opened_at=opened_at,
            calendar=calendar,
            now=now,
            closed_at=closed_at,
        )
        _create(connection, ticket, actor=actor, at=now, action="import")
        return "created"
    target = replace(
        current,
        category=category.name,
        team=category.team,
        summary=text[: schema.NAME],
        opened_at=opened_at,
        vin=vin,
        customer_id=customer_id or (current.customer_id if vin == current.vin else None),
        updated_at=now,
    )
    if current.reopened == 0 and (category.name != current.category or opened_at != current.opened_at):
        response_due, resolution_due = due_times(opened_at, category, calendar)
        target = replace(target, response_due_at=response_due, resolution_due_at=resolution_due)
    # The DMS's closing closes an open ticket; once reopened in the desk, the desk owns its state.
    if closed_at is not None and current.state != "closed" and current.reopened == 0:
        target = replace(
            target, state="closed", closed_at=closed_at, resolved_at=current.resolved_at or closed_at
        )
    old, new = changed_fields(current, target)
    if not new:
        return "unchanged"
    _update(connection, current, target)
    _audit(connection, at=now, actor=actor, complaint_id=complaint_id, action="import", before=old, after=new)
    return "updated"


# --- queries ----------------------------------------------------------------------------------


def get_ticket(engine: Engine, complaint_id: str) -> Ticket:
    with engine.connect() as connection:
        ticket = _read(connection, complaint_id)
    if ticket is None:
        raise UnknownTicketError(f"no complaint {complaint_id!r}")
    return ticket


def list_tickets(
    engine: Engine,
    *,
    state: str | None = None,
    dealer_id: str | None = None,
    customer_id: str | None = None,
    open_only: bool = False,
    limit: int | None = None,
) -> list[Ticket]:
    """Tickets, newest first, filtered by state, dealer, customer or open (not resolved or
    closed)."""
    complaint = schema.complaint
    query = select(complaint).order_by(complaint.c.opened_at.desc(), complaint.c.complaint_id)
    if state is not None:
        query = query.where(complaint.c.state == state_named(state))
    if dealer_id is not None:
        query = query.where(complaint.c.dealer_id == dealer_id)
    if customer_id is not None:
        query = query.where(complaint.c.customer_id == customer_id)
    if open_only:
        query = query.where(complaint.c.state.not_in(sorted(DONE_STATES)))
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as connection:
        return [ticket_from_row(row._mapping) for row in connection.execute(query)]


def tickets_frame(engine: Engine, **filters: Any) -> pd.DataFrame:
    """list_tickets as a DataFrame: one column per Ticket field, times as UTC timestamps."""
    import pandas as pd

    from prognos.desk.tickets import TICKET_FIELDS

    frame = pd.DataFrame([t.fields() for t in list_tickets(engine, **filters)], columns=list(TICKET_FIELDS))
    for name in TICKET_FIELDS:
        if name.endswith("_at"):
            frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    before: dict[str, object] | None
    after: dict[str, object] | None


def audit_trail(engine: Engine, complaint_id: str) -> list[AuditEntry]:
    """A ticket's audit rows, oldest first."""
    audit = schema.audit
    query = (
        select(audit)
        .where(audit.c.entity == ENTITY, audit.c.entity_id == complaint_id)
        .order_by(audit.c.audit_id)
    )
    with engine.connect() as connection:
        return [
            AuditEntry(_required_utc(row.at), row.actor, row.action, row.before, row.after)
            for row in connection.execute(query)
        ]


@dataclass(frozen=True)
class ClockView:
    clock: Clock
    text: str  # due time, and business time left, overdue, met or missed (tickets.clock_text)


@dataclass(frozen=True)
class TicketView:
    """What `prognos desk complaints show` and the dashboard's ticket page show."""

    ticket: Ticket
    now: datetime
    clocks: tuple[ClockView, ClockView]
    next_states: tuple[State, ...]
    trail: tuple[AuditEntry, ...]


def ticket_view(engine: Engine, complaint_id: str, now: datetime | None = None) -> TicketView:
    """A ticket with its clocks judged at `now` on its dealer's calendar, the states it may move
    to and its audit trail."""
    now = _now(now)
    ticket = get_ticket(engine, complaint_id)
    with engine.connect() as connection:
        calendar = dealer_calendar(connection, ticket.dealer_id)
    response, resolution = clocks(ticket)
    return TicketView(
        ticket=ticket,
        now=now,
        clocks=(
            ClockView(response, clock_text(response, now, calendar)),
            ClockView(resolution, clock_text(resolution, now, calendar)),
        ),
        next_states=tuple(s for s in STATES if s in TRANSITIONS[ticket.state]),
        trail=tuple(audit_trail(engine, complaint_id)),
    )


def ticket_metrics(engine: Engine, period: str = "month", *, now: datetime | None = None) -> pd.DataFrame:
    """Per dealer and period (UTC month or ISO week), the complaint metrics: the columns are
    prognos.desk.tickets.METRIC_COLUMNS (docs/desk.md defines each). Rates with nothing to
    count are NaN."""
    import pandas as pd

    chosen: Period = period_named(period)
    now = _now(now)
    with engine.connect() as connection:
        tickets = [ticket_from_row(row._mapping) for row in connection.execute(select(schema.complaint))]
        by_dealer = calendars(connection)
    rows = metrics(tickets, by_dealer, period=chosen, now=now)
    return pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
