"""The customer 360, customer search and the priority call list, read from the desk's store.

The risk tags come from the pure rules of prognos.desk.tags, in the view and in the list alike.
The list does not read every customer: one filtered set query per rule narrows the facts to
those a rule could fire on (not-delivered vehicles, recent missed or cancelled appointments,
coverage ending soon, open critical alerts, complaints past due, customers of dealers at risk or
failed, recent repeat orders), groups them per customer and lets the rules decide. Each query
returns every fact its rule reads, so a customer gets the same tags in the list as in the view.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Executable, Row, and_, cast, func, or_, select
from sqlalchemy.dialects.postgresql import JSON

from prognos.desk import schema
from prognos.desk.entitlements import PRODUCT_NAMES, Body, Entitlement, fold
from prognos.desk.ledger import current_entitlements
from prognos.desk.tags import (
    CLOSED_COMPLAINT_STATES,
    CRITICAL,
    DAY,
    DEALER_STATES,
    MISSED_STATES,
    AlertFacts,
    AppointmentFacts,
    ComplaintFacts,
    CustomerFacts,
    DealerFacts,
    Settings,
    Tag,
    VehicleFacts,
    WorkOrderFacts,
    customer_tags,
    day_text,
    is_open_alert,
    is_open_complaint,
    score,
    sla_breach,
    sla_state,
    time_text,
)
from prognos.errors import ConfigError

__all__ = [
    "DEALER_STATES",
    "CustomerView",
    "HomeCenter",
    "OpenComplaint",
    "PriorityRow",
    "SearchHit",
    "UnknownCustomer",
    "candidate_facts",
    "contact_text",
    "customer_view",
    "priorities",
    "priorities_csv",
    "priorities_text",
    "search",
    "search_text",
    "view_text",
]

AT_RISK_STATES = ("at_risk", "failed")
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
CHUNK = 500  # ids per IN (...) list
BATCH = 1_000  # rows converted at a time


class UnknownCustomer(ConfigError, LookupError):
    """No customer has this id."""


@dataclass(frozen=True, kw_only=True)
class HomeCenter:
    center_id: str
    name: str
    dealer: DealerFacts


@dataclass(frozen=True, kw_only=True)
class OpenComplaint:
    complaint: ComplaintFacts
    sla: str  # the SLA clocks in words
    overdue: bool


@dataclass(frozen=True, kw_only=True)
class CustomerView:
    customer_id: str
    name: str
    email: str
    phone: str
    created_at: datetime
    home: HomeCenter | None
    vehicles: tuple[VehicleFacts, ...]
    service_history: tuple[WorkOrderFacts, ...]  # newest first
    open_alerts: tuple[AlertFacts, ...]  # critical first, then newest first
    open_complaints: tuple[OpenComplaint, ...]
    entitlements: tuple[Entitlement, ...]  # every state, ending soonest first
    open_appointments: tuple[AppointmentFacts, ...]  # booked, soonest first
    tags: tuple[Tag, ...]  # the one adding most to the score first
    score: float
    as_of: datetime

    @property
    def contact(self) -> str:
        return contact_text(self.email, self.phone)


@dataclass(frozen=True, kw_only=True)
class SearchHit:
    customer_id: str
    name: str
    contact: str
    home_center: str | None
    matched: str  # what matched, in words: "customer id", "name", "VIN ...", "plate ..."


@dataclass(frozen=True, kw_only=True)
class PriorityRow:
    rank: int
    customer_id: str
    name: str
    contact: str
    home_center: str | None
    score: float
    tags: tuple[Tag, ...]

    @property
    def labels(self) -> str:
        return "; ".join(dict.fromkeys(tag.label for tag in self.tags))

    @property
    def reasons(self) -> str:
        return "; ".join(tag.reason for tag in self.tags)


def contact_text(email: str, phone: str) -> str:
    return ", ".join(part for part in (email, phone) if part)


# --- search -----------------------------------------------------------------------------------


def search(connection: Connection, text: str, *, limit: int = 20) -> list[SearchHit]:
    """Customers whose id, VIN (whole, its start or its last six or more characters), plate
    (spaces and hyphens ignored) or name (its start first, then anywhere in it) matches `text`,
    case ignored."""
    query = " ".join(text.split())
    if not query:
        raise ConfigError("search for a name, VIN, plate or customer id; the text is empty")
    if limit <= 0:
        raise ConfigError(f"the search limit must be positive, not {limit}")
    key, compact = query.lower(), re.sub(r"[\s-]", "", query.upper())
    customer, vehicle = schema.customer, schema.vehicle
    found: dict[str, str] = {}

    def take(rows: Iterable[Any], how: str) -> None:
        for row in rows:
            found.setdefault(row[0], how.format(*row[1:]))

    take(
        connection.execute(
            select(customer.c.customer_id).where(customer.c.customer_id.in_({query, query.upper()}))
        ),
        "customer id",
    )
    if len(compact) >= 3:
        vin_match = vehicle.c.vin == compact
        vin_match = or_(vin_match, vehicle.c.vin.startswith(compact, autoescape=True))
        if len(compact) >= 6:
            vin_match = or_(vin_match, vehicle.c.vin.endswith(compact, autoescape=True))
        rows = connection.execute(
            select(vehicle.c.customer_id, vehicle.c.vin).where(vin_match).order_by(vehicle.c.vin).limit(limit)
        )
        take(rows, "VIN {}")
    bare_plate = func.upper(func.replace(func.replace(vehicle.c.plate, " ", ""), "-", ""))
    rows = connection.execute(
        select(vehicle.c.customer_id, vehicle.c.plate).where(bare_plate == compact).limit(limit)
    )
    take(rows, "plate {}")
    for match in (
        customer.c.name_key.startswith(key, autoescape=True),
        customer.c.name_key.contains(key, autoescape=True),
    ):
        if len(found) >= limit:
            break
        rows = connection.execute(
            select(customer.c.customer_id)
            .where(match)
            .order_by(customer.c.name_key, customer.c.customer_id)
            .limit(limit)
        )
        take(rows, "name")
    ids = list(found)[:limit]
    people = _customers(connection, ids)
    return [
        SearchHit(
            customer_id=cid,
            name=people[cid].name,
            contact=contact_text(people[cid].email, people[cid].phone),
            home_center=people[cid].home_center,
            matched=found[cid],
        )
        for cid in ids
        if cid in people
    ]


# --- the customer view ------------------------------------------------------------------------


def customer_view(
    connection: Connection, customer_id: str, *, now: datetime, settings: Settings | None = None
) -> CustomerView:
    """Everything the desk knows about one customer at `now`, with the risk tags and score.
    An unknown id raises UnknownCustomer."""
    settings = settings or Settings()
    now = _utc(now)
    customer, center, dealer = schema.customer, schema.service_center, schema.dealer
    row = connection.execute(
        select(
            customer,
            center.c.name.label("center_name"),
            dealer.c.dealer_id,
            dealer.c.name.label("dealer_name"),
            dealer.c.status,
            dealer.c.status_reason,
            dealer.c.status_at,
        )
        .select_from(
            customer.outerjoin(center, center.c.center_id == customer.c.home_center).outerjoin(
                dealer, dealer.c.dealer_id == center.c.dealer_id
            )
        )
        .where(customer.c.customer_id == customer_id)
    ).first()
    if row is None:
        raise UnknownCustomer(
            f"no customer {customer_id!r}; "
            "`prognos desk customers search TEXT` finds one by name, VIN or plate"
        )
    home = None
    if row.home_center is not None and row.dealer_id is not None:
        home = HomeCenter(
            center_id=row.home_center, name=row.center_name, dealer=_dealer(row, name="dealer_name")
        )

    vehicle, appointment, work_order = schema.vehicle, schema.appointment, schema.work_order
    alert, complaint = schema.alert, schema.complaint
    vins = select(vehicle.c.vin).where(vehicle.c.customer_id == customer_id)
    vehicles = [
        _vehicle(r)
        for r in connection.execute(
            select(vehicle).where(vehicle.c.customer_id == customer_id).order_by(vehicle.c.vin)
        )
    ]
    appointments = [
        _appointment(r)
        for r in connection.execute(
            select(appointment)
            .where(appointment.c.customer_id == customer_id)
            .order_by(appointment.c.scheduled_at, appointment.c.appointment_id)
        )
    ]
    orders = [
        _work_order(r)
        for r in connection.execute(
            select(work_order)
            .where(work_order.c.vin.in_(vins))
            .order_by(work_order.c.opened_at.desc(), work_order.c.dealer_id, work_order.c.order_id.desc())
        )
    ]
    alerts = [
        _alert(r)
        for r in connection.execute(
            select(alert).where(
                alert.c.vin.in_(vins), or_(alert.c.cleared_at.is_(None), alert.c.cleared_at > now)
            )
        )
    ]
    open_complaint = complaint.c.state.not_in(CLOSED_COMPLAINT_STATES)
    complaints = [
        _complaint(r)
        for whose in (
            complaint.c.customer_id == customer_id,
            and_(complaint.c.customer_id.is_(None), complaint.c.vin.in_(vins)),
        )
        for r in connection.execute(select(complaint).where(whose, open_complaint))
    ]
    entitlements = current_entitlements(connection, now=now, customer_ids=[customer_id])
    facts = CustomerFacts(
        customer_id=customer_id,
        vehicles=vehicles,
        appointments=appointments,
        work_orders=orders,
        alerts=alerts,
        complaints=complaints,
        entitlements=list(entitlements.values()),
        home_dealer=_failed_former_dealer(connection, customer_id)
        or (home.dealer if home is not None else None),
    )
    tags = customer_tags(facts, now, settings)
    open_alerts = sorted(
        (a for a in alerts if is_open_alert(a, now)),
        key=lambda a: (SEVERITY_ORDER.get(a.severity, 3), -a.raised_at.timestamp(), a.alert_id),
    )
    open_complaints = sorted(
        (
            OpenComplaint(complaint=c, sla=sla_state(c, now), overdue=sla_breach(c, now) is not None)
            for c in complaints
            if is_open_complaint(c)
        ),
        key=lambda o: (o.complaint.resolution_due_at, o.complaint.complaint_id),
    )
    return CustomerView(
        customer_id=row.customer_id,
        name=row.name,
        email=row.email,
        phone=row.phone,
        created_at=_utc(row.created_at),
        home=home,
        vehicles=tuple(vehicles),
        service_history=tuple(orders),
        open_alerts=tuple(open_alerts),
        open_complaints=tuple(open_complaints),
        entitlements=tuple(sorted(entitlements.values(), key=lambda e: (e.valid_until, e.entitlement_id))),
        open_appointments=tuple(a for a in appointments if a.status == "booked"),
        tags=tuple(tags),
        score=score(tags, now),
        as_of=now,
    )


# --- the priority call list -------------------------------------------------------------------


def priorities(
    connection: Connection, *, now: datetime, settings: Settings | None = None, limit: int = 100
) -> list[PriorityRow]:
    """The customers to call first at `now`: every customer with a tag, highest score first
    (ties: the customer id), at most `limit`."""
    settings = settings or Settings()
    if limit <= 0:
        raise ConfigError(f"the list limit must be positive, not {limit}")
    now = _utc(now)
    ranked: list[tuple[float, str, list[Tag]]] = []
    for customer_id, facts in candidate_facts(connection, now=now, settings=settings).items():
        tags = customer_tags(facts, now, settings)
        if tags:
            ranked.append((score(tags, now), customer_id, tags))
    ranked.sort(key=lambda item: (-item[0], item[1]))
    top = ranked[:limit]
    people = _customers(connection, [customer_id for _, customer_id, _ in top])
    rows = []
    for rank, (value, customer_id, tags) in enumerate(top, start=1):
        person = people[customer_id]
        rows.append(
            PriorityRow(
                rank=rank,
                customer_id=customer_id,
                name=person.name,
                contact=contact_text(person.email, person.phone),
                home_center=person.home_center,
                score=value,
                tags=tuple(tags),
            )
        )
    return rows


class _Gathered:
    """Facts per kind and customer, each fact once (two queries may return the same vehicle)."""

    def __init__(self) -> None:
        self.kinds: dict[str, dict[str, dict[object, object]]] = {}
        self.dealers: dict[str, DealerFacts] = {}

    def add(self, kind: str, customer_id: str, key: object, fact: object) -> None:
        self.kinds.setdefault(kind, {}).setdefault(customer_id, {})[key] = fact

    def facts(self) -> dict[str, CustomerFacts]:
        fields: dict[str, dict[str, Any]] = {}
        for kind, per_customer in self.kinds.items():
            for customer_id, found in per_customer.items():
                fields.setdefault(customer_id, {})[kind] = tuple(found.values())
        for customer_id, dealer in self.dealers.items():
            fields.setdefault(customer_id, {})["home_dealer"] = dealer
        return {
            customer_id: CustomerFacts(customer_id=customer_id, **kinds)
            for customer_id, kinds in fields.items()
        }


def candidate_facts(connection: Connection, *, now: datetime, settings: Settings) -> dict[str, CustomerFacts]:
    """The facts any rule could fire on at `now`, per customer: one set query per rule, each
    returning a superset of what its rule fires on (the rule decides)."""
    now = _utc(now)
    gathered = _Gathered()
    add = gathered.add

    vehicle, appointment, work_order = schema.vehicle, schema.appointment, schema.work_order
    alert, complaint, ledger = schema.alert, schema.complaint, schema.ledger
    customer, center, dealer = schema.customer, schema.service_center, schema.dealer
    window = timedelta(days=settings.expiry_days)

    # paid, not delivered; warranty of a vehicle ending soon
    for where in (
        and_(
            vehicle.c.delivered_at.is_(None),
            vehicle.c.paid_at.is_not(None),
            vehicle.c.paid_at <= now - timedelta(days=settings.delivery_grace_days),
        ),
        and_(vehicle.c.warranty_until > now, vehicle.c.warranty_until <= now + window),
    ):
        for row in _each(connection, select(vehicle).where(where)):
            add("vehicles", row.customer_id, row.vin, _vehicle(row))

    # missed or cancelled appointments (missed: when due; cancelled: when cancelled)
    since = now - timedelta(days=settings.missed_lookback_days)
    rows = _each(
        connection,
        select(appointment).where(
            appointment.c.status.in_(MISSED_STATES),
            or_(appointment.c.scheduled_at >= since, appointment.c.updated_at >= since),
        ),
    )
    for row in rows:
        add("appointments", row.customer_id, row.appointment_id, _appointment(row))

    # warranties and maintenance packages ending soon: the entitlements whose grant ends within
    # the window (read from the entry body, a day wider on each side for time zone offsets; an
    # IN list of days reads each body once), folded from all their entries
    ends = func.substr(_json_text(connection, ledger.c.body, "valid_until"), 1, 10)
    first_day, last_day = (now - DAY).date(), (now + window + DAY).date()
    days = [str(first_day + timedelta(days=n)) for n in range((last_day - first_day).days + 1)]
    ending = select(ledger.c.entitlement_id).where(ledger.c.kind == "grant", ends.in_(days))
    entries = select(ledger.c.body).where(ledger.c.entitlement_id.in_(ending)).order_by(ledger.c.seq)
    bodies: list[Body] = [json.loads(row.body) for row in _each(connection, entries)]
    for state in fold(bodies, now).values():
        add("entitlements", state.customer_id, state.entitlement_id, state)

    # open critical alerts, on the owner's account
    rows = _each(
        connection,
        select(vehicle.c.customer_id.label("owner"), alert)
        .select_from(alert.join(vehicle, vehicle.c.vin == alert.c.vin))
        .where(
            alert.c.severity == CRITICAL,
            alert.c.raised_at <= now,
            or_(alert.c.cleared_at.is_(None), alert.c.cleared_at > now),
        ),
    )
    for row in rows:
        add("alerts", row.owner, row.alert_id, _alert(row))

    # open complaints past a due time: the customer's, else the owner's of the vehicle
    owner = func.coalesce(complaint.c.customer_id, vehicle.c.customer_id).label("owner")
    rows = _each(
        connection,
        select(owner, complaint)
        .select_from(complaint.outerjoin(vehicle, vehicle.c.vin == complaint.c.vin))
        .where(
            complaint.c.state.not_in(CLOSED_COMPLAINT_STATES),
            or_(
                complaint.c.resolution_due_at < now,
                and_(
                    complaint.c.response_due_at < now,
                    or_(complaint.c.responded_at.is_(None), complaint.c.responded_at > now),
                ),
            ),
        ),
    )
    for row in rows:
        if row.owner is not None:
            add("complaints", row.owner, row.complaint_id, _complaint(row))

    # customers whose home center belongs to a dealer at risk or failed
    risky = {
        row.dealer_id: _dealer(row)
        for row in connection.execute(select(dealer).where(dealer.c.status.in_(AT_RISK_STATES)))
    }
    if risky:
        rows = _each(
            connection,
            select(customer.c.customer_id, center.c.dealer_id)
            .select_from(customer.join(center, center.c.center_id == customer.c.home_center))
            .where(center.c.dealer_id.in_(list(risky))),
        )
        gathered.dealers.update((row.customer_id, risky[row.dealer_id]) for row in rows)
        # customers a failed dealer's closure moved elsewhere keep that dealer's tag
        failed = [dealer_id for dealer_id, facts in risky.items() if facts.status == "failed"]
        moved = schema.reassignment
        rows = _each(
            connection,
            select(moved.c.customer_id, moved.c.dealer_id).where(
                moved.c.dealer_id.in_(failed), moved.c.kind == "customer"
            ),
        )
        gathered.dealers.update((row.customer_id, risky[row.dealer_id]) for row in rows)

    # repeat orders opened in the lookback, with the order each repeats
    repeat, first = work_order.alias("repeat"), work_order.alias("first")
    rows = _each(
        connection,
        select(vehicle.c.customer_id, repeat, *[column.label(f"first_{column.name}") for column in first.c])
        .select_from(
            repeat.join(vehicle, vehicle.c.vin == repeat.c.vin).join(
                first,
                and_(
                    first.c.dealer_id == repeat.c.dealer_id,
                    first.c.order_id == repeat.c.repeat_of_order_id,
                    first.c.vin == repeat.c.vin,
                ),
            )
        )
        .where(
            repeat.c.repeat_of_order_id.is_not(None),
            repeat.c.opened_at >= now - timedelta(days=settings.comeback_lookback_days),
            repeat.c.opened_at <= now,
        ),
    )
    for row in rows:
        add("work_orders", row.customer_id, (row.dealer_id, row.order_id), _work_order(row))
        add(
            "work_orders",
            row.customer_id,
            (row.first_dealer_id, row.first_order_id),
            _work_order(row, prefix="first_"),
        )

    return gathered.facts()


# --- rows to facts ----------------------------------------------------------------------------


def _failed_former_dealer(connection: Connection, customer_id: str) -> DealerFacts | None:
    """The failed dealer whose closure moved this customer to their home center now, if any:
    their risk tag stays that dealer's."""
    moved, dealer = schema.reassignment, schema.dealer
    row = connection.execute(
        select(dealer)
        .select_from(moved.join(dealer, dealer.c.dealer_id == moved.c.dealer_id))
        .where(moved.c.customer_id == customer_id, moved.c.kind == "customer", dealer.c.status == "failed")
        .limit(1)
    ).first()
    return _dealer(row) if row is not None else None


def _utc(moment: datetime) -> datetime:
    """An aware UTC time; SQLite hands back naive times, which the desk stores in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _maybe_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)


def _vehicle(row: Row[Any]) -> VehicleFacts:
    return VehicleFacts(
        vin=row.vin,
        model=row.model,
        plate=row.plate,
        lot=row.lot,
        paid_at=_maybe_utc(row.paid_at),
        delivered_at=_maybe_utc(row.delivered_at),
        warranty_until=_maybe_utc(row.warranty_until),
    )


def _appointment(row: Row[Any]) -> AppointmentFacts:
    return AppointmentFacts(
        appointment_id=row.appointment_id,
        vin=row.vin,
        center_id=row.center_id,
        scheduled_at=_utc(row.scheduled_at),
        status=row.status,
        updated_at=_utc(row.updated_at),
        purpose=row.purpose,
    )


def _work_order(row: Row[Any], prefix: str = "") -> WorkOrderFacts:
    def value(name: str) -> Any:
        return getattr(row, prefix + name)

    return WorkOrderFacts(
        dealer_id=value("dealer_id"),
        order_id=value("order_id"),
        vin=value("vin"),
        opened_at=_utc(value("opened_at")),
        closed_at=_maybe_utc(value("closed_at")),
        center_id=value("center_id"),
        description=value("description"),
        amount=value("amount"),
        currency=value("currency"),
        repeat_of_order_id=value("repeat_of_order_id"),
    )


def _alert(row: Row[Any]) -> AlertFacts:
    return AlertFacts(
        alert_id=row.alert_id,
        vin=row.vin,
        code=row.code,
        severity=row.severity,
        raised_at=_utc(row.raised_at),
        cleared_at=_maybe_utc(row.cleared_at),
        summary=row.summary,
    )


def _complaint(row: Row[Any]) -> ComplaintFacts:
    return ComplaintFacts(
        complaint_id=row.complaint_id,
        category=row.category,
        state=row.state,
        dealer_id=row.dealer_id,
        opened_at=_utc(row.opened_at),
        response_due_at=_utc(row.response_due_at),
        resolution_due_at=_utc(row.resolution_due_at),
        responded_at=_maybe_utc(row.responded_at),
        vin=row.vin,
        summary=row.summary,
    )


def _dealer(row: Row[Any], *, name: str = "name") -> DealerFacts:
    values = row._mapping
    return DealerFacts(
        dealer_id=values["dealer_id"],
        name=values[name],
        status=values["status"],
        status_reason=values["status_reason"],
        status_at=_maybe_utc(values["status_at"]),
    )


def _json_text(connection: Connection, column: Any, key: str) -> ColumnElement[Any]:
    """A text value of the JSON object in a text column, on either database."""
    value: ColumnElement[Any]
    if connection.dialect.name == "postgresql":
        value = cast(column, JSON)[key].astext  # json, not jsonb: cheaper to read once
    else:
        value = func.json_extract(column, f"$.{key}")
    return value


def _each(connection: Connection, statement: Executable) -> Iterator[Row[Any]]:
    """The rows of a query, converted a batch at a time: the drivers convert many rows at once
    faster than one by one, and only a batch of rows is alive at a time."""
    for batch in connection.execute(statement).partitions(BATCH):
        yield from batch


def _customers(connection: Connection, ids: Sequence[str]) -> dict[str, Row[Any]]:
    customer = schema.customer
    found: dict[str, Row[Any]] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        for row in connection.execute(select(customer).where(customer.c.customer_id.in_(chunk))):
            found[row.customer_id] = row
    return found


# --- in words, for the command line -----------------------------------------------------------

PRIORITY_COLUMNS = ("rank", "customer_id", "name", "contact", "home_center", "score", "tags", "reasons")


def priorities_csv(rows: Sequence[PriorityRow]) -> str:
    """The call list as CSV: PRIORITY_COLUMNS, the score with two decimals, the tag labels and
    the reasons each joined with "; "."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PRIORITY_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                row.rank,
                row.customer_id,
                row.name,
                row.contact,
                row.home_center or "",
                f"{row.score:.2f}",
                row.labels,
                row.reasons,
            ]
        )
    return out.getvalue()


def priorities_text(rows: Sequence[PriorityRow], now: datetime) -> str:
    """The call list as a table, each customer's reasons below its row."""
    if not rows:
        return f"no customer has a risk tag at {time_text(now)}"
    table = [("rank", "customer", "name", "contact", "home center", "score", "tags")]
    table += [
        (
            str(r.rank),
            r.customer_id,
            r.name,
            r.contact or "-",
            r.home_center or "-",
            f"{r.score:.2f}",
            r.labels,
        )
        for r in rows
    ]
    heading, *lines = columns_text(table, right=(0, 5)).splitlines()
    out = [f"priority call list at {time_text(now)}, highest score first", heading]
    for line, row in zip(lines, rows, strict=True):
        out.append(line)
        out.extend(f"      - {tag.reason}" for tag in row.tags)
    return "\n".join(out)


def search_text(hits: Sequence[SearchHit], text: str) -> str:
    if not hits:
        return f"no customer matches {text!r}"
    table = [("customer", "name", "contact", "home center", "matched")]
    table += [(h.customer_id, h.name, h.contact or "-", h.home_center or "-", h.matched) for h in hits]
    return columns_text(table)


def columns_text(rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """Rows as aligned text columns, the first row the heading; `right` columns right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )


def view_text(view: CustomerView, *, history: int = 20) -> str:
    """A customer view as readable text: one section per kind of fact, with dates and units;
    the newest `history` work orders."""
    lines = [f"Customer {view.customer_id}: {view.name}"]
    lines.append(f"  contact:        {view.contact or 'none on file'}")
    lines.append(f"  customer since: {day_text(view.created_at)}")
    if view.home is None:
        lines.append("  home center:    none")
    else:
        dealer = view.home.dealer
        status = dealer.status.replace("_", " ")
        if dealer.status != "active":
            status += f" since {day_text(dealer.status_at)}" if dealer.status_at is not None else ""
            status += f": {dealer.status_reason}" if dealer.status_reason else ""
        lines.append(f"  home center:    {view.home.center_id} {view.home.name}")
        lines.append(f"  its dealer:     {dealer.dealer_id} {dealer.name} ({status})")
    lines.append(f"  risk score:     {view.score:.2f} at {time_text(view.as_of)}")

    def section(title: str, items: Sequence[str], more: int = 0) -> None:
        lines.extend(["", f"{title} ({len(items) + more})"])
        lines.extend(f"  {item}" for item in items)
        if not items:
            lines.append("  none")
        if more:
            lines.append(f"  ... and {more} older")

    section("Risk tags", [f"{tag.label} (since {day_text(tag.since)}): {tag.reason}" for tag in view.tags])
    vehicles = []
    for v in view.vehicles:
        if v.delivered_at is not None:
            delivery = f"delivered {day_text(v.delivered_at)}"
        elif v.paid_at is not None:
            delivery = f"paid {day_text(v.paid_at)}, not delivered"
        else:
            delivery = "ordered, not paid"
        warranty = (
            f"warranty until {day_text(v.warranty_until)}" if v.warranty_until else "no warranty on file"
        )
        lot = f", lot {v.lot}" if v.lot else ""
        vehicles.append(f"{v.vin}  {v.model}, plate {v.plate or 'none'}{lot}; {delivery}; {warranty}")
    section("Vehicles", vehicles)
    section(
        "Open appointments",
        [
            f"{a.appointment_id}  {time_text(a.scheduled_at)} at {a.center_id}  {a.vin}  "
            f"{a.purpose or 'no purpose given'}"
            for a in view.open_appointments
        ],
    )
    section(
        "Open alerts",
        [
            f"{a.severity}  {a.code} on {a.vin}, raised {time_text(a.raised_at)}"
            + (f": {a.summary}" if a.summary else "")
            for a in view.open_alerts
        ],
    )
    section(
        "Open complaints",
        [
            f"{o.complaint.complaint_id}  {o.complaint.category}, {o.complaint.state.replace('_', ' ')}, "
            f"opened {time_text(o.complaint.opened_at)}; {o.sla}"
            + (f"; {o.complaint.summary}" if o.complaint.summary else "")
            for o in view.open_complaints
        ],
    )
    entitlements = []
    for e in view.entitlements:
        usage = f", {e.used} of {e.units} services used" if e.units is not None else ""
        entitlements.append(
            f"{e.entitlement_id}  {PRODUCT_NAMES[e.product]} for {e.vin}{usage}; "
            f"valid {day_text(e.valid_from)} to {day_text(e.valid_until)}; {e.status.replace('_', ' ')}; "
            f"honoured at {e.center_id}, sold by {e.granted_by}"
        )
    section("Entitlements", entitlements)
    orders = []
    for o in view.service_history[:history]:
        closed = f"closed {day_text(o.closed_at)}" if o.closed_at is not None else "open"
        repeat = f"; repeats {o.repeat_of_order_id}" if o.repeat_of_order_id else ""
        orders.append(
            f"{day_text(o.opened_at)}  {o.dealer_id}/{o.order_id}  {o.vin}  "
            f"{o.description or 'no description'}; {o.amount:,.2f} {o.currency}; {closed}{repeat}"
        )
    section("Service history, newest first", orders, more=max(len(view.service_history) - history, 0))
    return "\n".join(lines)
