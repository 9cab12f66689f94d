"""A dealer that fails, end to end (`prognos desk dealer-failed`): its customers and open
appointments move to the nearest capable service centers (prognos.cloud.dealers.reassign, the
rule in its docstring), the entitlements they hold there move with them as signed ledger
transfers, every move is recorded (table `reassignment`, the audit trail), and the contact
list says whom to call and what to tell them. One transaction: all of it or nothing.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, insert, select, update

from prognos.cloud.dealers.reassign import (
    DEFAULT_SETTINGS,
    Appointment,
    Assignment,
    Customer,
    ReassignSettings,
    ServiceCenter,
    iso_week,
    reassign,
)
from prognos.desk import audit, ledger, schema
from prognos.desk.booking import center_of
from prognos.desk.entitlements import PRODUCT_NAMES, Entitlement
from prognos.desk.store import transaction
from prognos.desk.tickets import DONE_STATES
from prognos.errors import ConfigError

CONTACT_COLUMNS = (
    "customer_id",
    "name",
    "email",
    "phone",
    "from_center",
    "to_center",
    "to_center_name",
    "distance_km",
    "appointment",
    "entitlements",
    "not_delivered",
    "status",
    "what_to_say",
)


@dataclass(frozen=True, kw_only=True)
class Contact:
    """One affected customer: whom to call and what to tell them."""

    customer_id: str
    name: str
    email: str
    phone: str
    from_center: str
    to_center: str  # empty: no center could take them
    to_center_name: str
    distance_km: float | None
    appointment: str  # their moved appointment in words, or empty
    entitlements: str  # what moved with them, in words
    not_delivered: str  # VINs paid for and not delivered
    status: str  # placed | unplaced
    what_to_say: str


@dataclass(frozen=True)
class DealerFailure:
    dealer_id: str
    at: datetime
    reason: str
    contacts: tuple[Contact, ...]
    appointments_moved: int
    appointments_unplaced: int
    transfers: int
    complaints_rerouted: int

    def contacts_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CONTACT_COLUMNS)
        for c in self.contacts:
            distance = "" if c.distance_km is None else f"{c.distance_km:.1f}"
            writer.writerow(
                [
                    c.customer_id, c.name, c.email, c.phone, c.from_center, c.to_center, c.to_center_name,
                    distance, c.appointment, c.entitlements, c.not_delivered, c.status, c.what_to_say,
                ]
            )  # fmt: skip
        return out.getvalue()


def fail_dealer(
    engine: Engine,
    dealer_id: str,
    *,
    reason: str,
    key: Ed25519PrivateKey,
    now: datetime,
    actor: str,
    settings: ReassignSettings = DEFAULT_SETTINGS,
) -> DealerFailure:
    """Fail `dealer_id` at `now` and move what it served (module docstring). An unknown dealer
    or one that failed already is a ConfigError, and nothing is written."""
    with transaction(engine) as connection:
        dealer = connection.execute(
            select(schema.dealer).where(schema.dealer.c.dealer_id == dealer_id)
        ).first()
        if dealer is None:
            raise ConfigError(f"no dealer {dealer_id!r} in the desk; nothing was written")
        if dealer.status == "failed":
            raise ConfigError(
                f"dealer {dealer_id} failed already on {dealer.status_at:%Y-%m-%d}; nothing was written"
            )
        centers = _centers(connection)
        closing = {c.id for c in centers if c.dealer_id == dealer_id}
        if not closing:
            raise ConfigError(f"dealer {dealer_id} runs no service center in the desk; nothing was written")
        appointments, customers, owner_of = _served(connection, closing)
        result = reassign(
            dealer_id,
            centers,
            [a for a, _ in appointments],
            customers,
            {},  # the desk keeps no stock: appointments that need parts stay unplaced, with the reason
            int(now.timestamp() * 1000),
            booked=_booked(connection, closing),
            customers_now=_customers_now(connection, closing),
            settings=settings,
        )
        before = {"status": dealer.status, "status_reason": dealer.status_reason}
        after = {"status": "failed", "status_reason": reason, "status_at": now}
        connection.execute(
            update(schema.dealer).where(schema.dealer.c.dealer_id == dealer_id).values(**after)
        )
        audit.record(
            connection, at=now, actor=actor, entity="dealer", entity_id=dealer_id, action="failed",
            before=before, after=after,
        )  # fmt: skip
        customer_of_appointment = dict((a.id, customer) for a, customer in appointments)
        moved_to: dict[str, Assignment] = {}
        moved_appointments: dict[str, Assignment] = {}
        for assignment in result.assignments:
            customer_id = (
                customer_of_appointment[assignment.id]
                if assignment.kind == "appointment"
                else owner_of[assignment.vin]
            )
            _record(connection, dealer_id, assignment, customer_id, now, actor)
            if assignment.kind == "customer":
                moved_to[customer_id] = assignment
            else:
                moved_appointments[customer_id] = assignment
        rerouted = _reroute_complaints(connection, dealer_id, moved_to, centers, now, actor)
        held = ledger.current_entitlements(connection, now=now, customer_ids=list(moved_to))
        transferred = _transfer(connection, held, moved_to, closing, key, now, actor, dealer_id)
        contacts = _contacts(connection, moved_to, moved_appointments, transferred, centers)
    placed = sum(1 for a in result.assignments if a.kind == "appointment" and a.placed)
    unplaced = sum(1 for a in result.assignments if a.kind == "appointment" and not a.placed)
    return DealerFailure(
        dealer_id,
        now,
        reason,
        contacts,
        placed,
        unplaced,
        sum(len(t) for t in transferred.values()),
        rerouted,
    )


def _centers(connection: Connection) -> list[ServiceCenter]:
    return [center_of(row) for row in connection.execute(select(schema.service_center))]


def _served(
    connection: Connection, closing: set[str]
) -> tuple[list[tuple[Appointment, str]], list[Customer], dict[str, str]]:
    """The closing centers' booked appointments (with their customer), their home customers
    (one per customer, by its first VIN) and VIN -> customer."""
    a = schema.appointment
    appointments = [
        (
            Appointment(
                id=row.appointment_id,
                vin=row.vin,
                center=row.center_id,
                date_ms=int(_utc(row.scheduled_at).timestamp() * 1000),
                parts=tuple(p for p in row.parts.split(";") if p),
            ),
            row.customer_id,
        )
        for row in connection.execute(select(a).where(a.c.center_id.in_(closing), a.c.status == "booked"))
    ]
    c, v = schema.customer, schema.vehicle
    rows = connection.execute(
        select(c.c.customer_id, c.c.home_center, v.c.vin)
        .select_from(c.join(v, v.c.customer_id == c.c.customer_id))
        .where(c.c.home_center.in_(closing))
        .order_by(c.c.customer_id, v.c.vin)
    )
    customers: dict[str, Customer] = {}
    owner_of: dict[str, str] = {}
    for row in rows:
        owner_of[row.vin] = row.customer_id
        customers.setdefault(row.customer_id, Customer(vin=row.vin, center=row.home_center))
    for appointment, customer_id in appointments:
        owner_of.setdefault(appointment.vin, customer_id)
    return appointments, list(customers.values()), owner_of


def _booked(connection: Connection, closing: set[str]) -> dict[tuple[str, str], int]:
    a = schema.appointment
    counts: Counter[tuple[str, str]] = Counter()
    for row in connection.execute(
        select(a.c.center_id, a.c.scheduled_at).where(a.c.status == "booked", a.c.center_id.not_in(closing))
    ):
        counts[(row.center_id, iso_week(int(_utc(row.scheduled_at).timestamp() * 1000)))] += 1
    return dict(counts)


def _customers_now(connection: Connection, closing: set[str]) -> dict[str, int]:
    c = schema.customer
    counts: Counter[str] = Counter()
    for row in connection.execute(select(c.c.home_center).where(c.c.home_center.not_in(closing))):
        if row.home_center:
            counts[row.home_center] += 1
    return dict(counts)


def _record(
    connection: Connection,
    dealer_id: str,
    assignment: Assignment,
    customer_id: str,
    now: datetime,
    actor: str,
) -> None:
    """The move in `reassignment`, and the customer's or appointment's change itself."""
    moved_at = (
        datetime.fromtimestamp(assignment.date_ms / 1000, UTC) if assignment.date_ms is not None else None
    )
    connection.execute(
        insert(schema.reassignment).values(
            dealer_id=dealer_id,
            kind=assignment.kind,
            item_id=assignment.id,
            customer_id=customer_id,
            vin=assignment.vin,
            from_center=assignment.from_center,
            to_center=assignment.to_center or None,
            distance_km=assignment.distance_km if assignment.placed else None,
            scheduled_at=moved_at,
            reason=assignment.reason[: schema.NAME],
            at=now,
        )
    )
    if not assignment.placed:
        return
    if assignment.kind == "customer":
        c = schema.customer
        connection.execute(
            update(c).where(c.c.customer_id == customer_id).values(home_center=assignment.to_center)
        )
        entity, entity_id = "customer", customer_id
        before: dict[str, object] = {"home_center": assignment.from_center}
        after: dict[str, object] = {"home_center": assignment.to_center}
    else:
        a = schema.appointment
        values: dict[str, object] = {"center_id": assignment.to_center, "updated_at": now}
        if moved_at is not None:
            values["scheduled_at"] = moved_at
        connection.execute(update(a).where(a.c.appointment_id == assignment.id).values(**values))
        entity, entity_id = "appointment", assignment.id
        before, after = {"center_id": assignment.from_center}, values
    audit.record(
        connection, at=now, actor=actor, entity=entity, entity_id=entity_id, action="reassigned",
        before=before, after=after,
    )  # fmt: skip


def _reroute_complaints(
    connection: Connection,
    dealer_id: str,
    moved_to: dict[str, Assignment],
    centers: list[ServiceCenter],
    now: datetime,
    actor: str,
) -> int:
    """The failed dealer's open complaints go to the brand's level, and to the dealer that took
    the customer when one did; their clocks keep running."""
    c = schema.complaint
    dealer_of = {center.id: center.dealer_id for center in centers}
    rows = connection.execute(
        select(c.c.complaint_id, c.c.customer_id, c.c.level, c.c.version).where(
            c.c.dealer_id == dealer_id, c.c.state.not_in(DONE_STATES)
        )
    ).all()
    for row in rows:
        home = moved_to.get(row.customer_id or "")
        new_dealer = (
            dealer_of.get(home.to_center, dealer_id) if home is not None and home.placed else dealer_id
        )
        after: dict[str, object] = {"dealer_id": new_dealer, "level": "brand"}
        connection.execute(
            update(c)
            .where(c.c.complaint_id == row.complaint_id)
            .values(**after, version=row.version + 1, updated_at=now)
        )
        audit.record(
            connection,
            at=now,
            actor=actor,
            entity="complaint",
            entity_id=row.complaint_id,
            action="rerouted",
            before={"dealer_id": dealer_id, "level": row.level},
            after={**after, "note": f"dealer {dealer_id} failed"},
        )
    return len(rows)


def _transfer(
    connection: Connection,
    held: dict[str, Entitlement],
    moved_to: dict[str, Assignment],
    closing: set[str],
    key: Ed25519PrivateKey,
    now: datetime,
    actor: str,
    dealer_id: str,
) -> dict[str, list[Entitlement]]:
    """Every active entitlement honoured at a closing center moves to its holder's new center."""
    moved: dict[str, list[Entitlement]] = defaultdict(list)
    for state in sorted(held.values(), key=lambda s: s.entitlement_id):
        assignment = moved_to.get(state.customer_id)
        if (
            assignment is None
            or not assignment.placed
            or state.center_id not in closing
            or state.status != "active"
        ):
            continue
        ledger.append(
            connection,
            {
                "kind": "transfer",
                "entitlement_id": state.entitlement_id,
                "actor": actor,
                "reason": f"dealer {dealer_id} failed; the customer now belongs to {assignment.to_center}",
                "center_id": assignment.to_center,
            },
            key,
            now,
        )
        moved[state.customer_id].append(state)
    return moved


def _contacts(
    connection: Connection,
    moved_to: dict[str, Assignment],
    moved_appointments: dict[str, Assignment],
    transferred: dict[str, list[Entitlement]],
    centers: list[ServiceCenter],
) -> tuple[Contact, ...]:
    names = {c.id: c.name or c.id for c in centers}
    ids = sorted(set(moved_to) | set(moved_appointments))
    c, v = schema.customer, schema.vehicle
    people = {row.customer_id: row for row in connection.execute(select(c).where(c.c.customer_id.in_(ids)))}
    waiting: dict[str, list[str]] = defaultdict(list)
    for row in connection.execute(
        select(v.c.customer_id, v.c.vin).where(v.c.customer_id.in_(ids), v.c.delivered_at.is_(None))
    ):
        waiting[row.customer_id].append(row.vin)
    contacts = []
    for customer_id in ids:
        person = people[customer_id]
        home = moved_to.get(customer_id)
        visit = moved_appointments.get(customer_id)
        to_center = home.to_center if home is not None and home.placed else ""
        entitlements = "; ".join(
            f"{PRODUCT_NAMES[s.product]} {s.entitlement_id}"
            + (
                f" ({s.remaining} services left)"
                if s.remaining is not None
                else f" until {s.valid_until:%Y-%m-%d}"
            )
            for s in transferred.get(customer_id, [])
        )
        appointment = ""
        if visit is not None:
            appointment = (
                f"{visit.id} moved to {visit.to_center} ({names.get(visit.to_center, visit.to_center)}) on "
                f"{datetime.fromtimestamp((visit.date_ms or 0) / 1000, UTC):%Y-%m-%d}"
                if visit.placed
                else f"{visit.id} could not be placed: {visit.reason}"
            )
        said = []
        if to_center:
            said.append(f"your service center is now {names.get(to_center, to_center)} ({to_center})")
        else:
            said.append("we are finding you a new service center")
        if entitlements:
            said.append("your prepaid services and warranties are kept there")
        if waiting[customer_id]:
            said.append(f"the brand takes over the delivery of {', '.join(waiting[customer_id])}")
        if appointment and visit is not None and visit.placed:
            said.append("your appointment is moved there")
        contacts.append(
            Contact(
                customer_id=customer_id,
                name=person.name,
                email=person.email,
                phone=person.phone,
                from_center=_from_center(home, visit),
                to_center=to_center,
                to_center_name=names.get(to_center, "") if to_center else "",
                distance_km=home.distance_km if home is not None and home.placed else None,
                appointment=appointment,
                entitlements=entitlements,
                not_delivered=", ".join(waiting[customer_id]),
                status="placed" if to_center else "unplaced",
                what_to_say="; ".join(said),
            )
        )
    # first who paid for a car not delivered, then who has no center yet, then who holds entitlements
    contacts.sort(
        key=lambda x: (not x.not_delivered, x.status != "unplaced", not x.entitlements, x.customer_id)
    )
    return tuple(contacts)


def _services(count: int) -> str:
    return f"{count} service{'' if count == 1 else 's'}"


def _from_center(*moves: Assignment | None) -> str:
    return next((move.from_center for move in moves if move is not None), "")


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
