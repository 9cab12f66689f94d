"""This week's calls (docs/desk.md, "This week"): the vehicles due for a visit, each with its
owner's contact, the nearest service center able to do the repair and the first free slot
there. Slots are proposed in due order, one bay each, so two calls are never offered the same
bay.

`choose_centers` and `assign_slots` are pure; `week_calls` reads the desk and calls them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from sqlalchemy import Connection, select

from prognos.cloud.dealers.reassign import ServiceCenter, distance_km
from prognos.cloud.parts.plan import FAULT_PARTS
from prognos.desk import schema
from prognos.desk.booking import Slot, center_of, next_slots

PRIORITY_ORDER = {"P1": 0, "P2": 1, "P3": 2}
CHUNK = 500  # VINs per IN (...) query


@dataclass(frozen=True, kw_only=True, slots=True)
class Due:
    """A vehicle the fleet's data says must come in: from the analytics snapshot's service list
    (a predicted failure) or an urgent alert without a trend."""

    vin: str
    due: date  # the visit is due on or before this day
    reason: str
    codes: tuple[str, ...] = ()  # fault codes; their subsystems are the skills the repair needs
    priority: str = ""  # P1 | P2 | P3 of an alert; "" for a service-list entry
    owner: str = ""  # the vehicle registry's owner and contact, used when the desk lacks them
    contact: str = ""
    center_id: str = ""  # the registry's service center


@dataclass(frozen=True, kw_only=True, slots=True)
class Owner:
    """The desk's customer of a vehicle, and the vehicle's open appointment if it has one."""

    customer_id: str
    name: str
    email: str
    phone: str
    home_center: str | None
    plate: str
    model: str
    booked_at: datetime | None = None
    booked_center: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Call:
    due: Due
    owner: Owner | None
    center: ServiceCenter | None  # nearest capable center of a working dealer; None: none known
    distance_km: float | None  # from the home center
    slot: datetime | None = None  # the proposed start (UTC); None when booked or no slot is free
    report_id: str | None = None  # the vehicle's latest diagnosis report

    @property
    def booked(self) -> bool:
        return self.owner is not None and self.owner.booked_at is not None


def purpose_of(due: Due) -> str:
    """The appointment's purpose: the reason, shortened to fit the desk's column."""
    return due.reason if len(due.reason) <= schema.NAME else due.reason[: schema.NAME - 1] + "…"


def parts_of(due: Due) -> tuple[str, ...]:
    """The part numbers the visit needs, from the fault codes (prognos.cloud.parts.plan.FAULT_PARTS)."""
    return tuple(FAULT_PARTS[code].part for code in due.codes if code in FAULT_PARTS)


def required_skills(codes: Iterable[str]) -> frozenset[str]:
    """The subsystems of the fault codes (`brakes.pad_wear` needs `brakes`)."""
    return frozenset(code.split(".", 1)[0] for code in codes if code)


def nearest_capable(
    home: ServiceCenter | None, centers: Sequence[ServiceCenter], skills: frozenset[str]
) -> tuple[ServiceCenter | None, float | None]:
    """The home center when it can do the repair, else the nearest center that can."""
    if home is None:
        return None, None
    capable = [c for c in centers if not c.skills or skills <= c.skills]
    if not capable:
        return None, None
    best = min(capable, key=lambda c: (distance_km(home.lat, home.lon, c.lat, c.lon), c.id != home.id, c.id))
    return best, distance_km(home.lat, home.lon, best.lat, best.lon)


def order_dues(dues: Iterable[Due]) -> list[Due]:
    """Earliest due first; among equals, the most urgent alert, then the VIN."""
    return sorted(dues, key=lambda d: (d.due, PRIORITY_ORDER.get(d.priority, 3), d.vin))


def choose_centers(
    dues: Sequence[Due],
    owners: Mapping[str, Owner],
    every: Mapping[str, ServiceCenter],
    working: Mapping[str, ServiceCenter],
) -> list[Call]:
    """One call per due vehicle, in due order, with the center nearest its home center among
    the capable centers of working dealers (a failed dealer's center is still where the
    distance counts from)."""
    candidates = list(working.values())
    calls = []
    for due in order_dues(dues):
        owner = owners.get(due.vin)
        home_id = (owner.home_center if owner is not None else None) or due.center_id
        center, km = nearest_capable(every.get(home_id), candidates, required_skills(due.codes))
        calls.append(Call(due=due, owner=owner, center=center, distance_km=km))
    return calls


def assign_slots(calls: Sequence[Call], free: Mapping[str, Sequence[Slot]]) -> list[Call]:
    """Each call that is not booked gets the first slot of its center with a bay left, in the
    calls' order (pure)."""
    left: dict[tuple[str, datetime], int] = {}
    for slots in free.values():
        for slot in slots:
            left[(slot.center_id, slot.start)] = slot.free_bays
    planned = []
    for call in calls:
        if call.booked or call.center is None:
            planned.append(call)
            continue
        start = next(
            (s.start for s in free.get(call.center.id, ()) if left[(s.center_id, s.start)] > 0),
            None,
        )
        if start is not None:
            left[(call.center.id, start)] -= 1
        planned.append(replace(call, slot=start))
    return planned


def owners_of(connection: Connection, vins: Sequence[str]) -> dict[str, Owner]:
    """The desk's owner of each VIN it knows, with the vehicle's earliest open appointment."""
    v, c, a = schema.vehicle, schema.customer, schema.appointment
    owners: dict[str, Owner] = {}
    for start in range(0, len(vins), CHUNK):
        chunk = list(vins[start : start + CHUNK])
        booked: dict[str, tuple[datetime, str]] = {}
        for row in connection.execute(
            select(a.c.vin, a.c.scheduled_at, a.c.center_id)
            .where(a.c.vin.in_(chunk), a.c.status == "booked")
            .order_by(a.c.scheduled_at)
        ):
            booked.setdefault(row.vin, (_utc(row.scheduled_at), row.center_id))
        rows = connection.execute(
            select(v.c.vin, v.c.plate, v.c.model, c.c.customer_id, c.c.name, c.c.email, c.c.phone)
            .add_columns(c.c.home_center)
            .join(c, c.c.customer_id == v.c.customer_id)
            .where(v.c.vin.in_(chunk))
        )
        for row in rows:
            at, center = booked.get(row.vin, (None, None))
            owners[row.vin] = Owner(
                customer_id=row.customer_id,
                name=row.name,
                email=row.email or "",
                phone=row.phone or "",
                home_center=row.home_center,
                plate=row.plate or "",
                model=row.model,
                booked_at=at,
                booked_center=center,
            )
    return owners


def latest_reports(connection: Connection, vins: Sequence[str]) -> dict[str, str]:
    """The id of each VIN's latest diagnosis report (docs/desk.md, "Diagnosis reports")."""
    r = schema.diagnosis_report
    latest: dict[str, str] = {}
    for start in range(0, len(vins), CHUNK):
        rows = connection.execute(
            select(r.c.vin, r.c.report_id)
            .where(r.c.vin.in_(list(vins[start : start + CHUNK])))
            .order_by(r.c.created_at, r.c.report_id)
        )
        latest.update({row.vin: row.report_id for row in rows})
    return latest


def centers_by_id(connection: Connection) -> tuple[dict[str, ServiceCenter], dict[str, ServiceCenter]]:
    """Every service center, and those of dealers that have not failed."""
    sc, d = schema.service_center, schema.dealer
    every: dict[str, ServiceCenter] = {}
    working: dict[str, ServiceCenter] = {}
    for row in connection.execute(select(sc, d.c.status).join(d, d.c.dealer_id == sc.c.dealer_id)):
        center = center_of(row)
        every[center.id] = center
        if row.status != "failed":
            working[center.id] = center
    return every, working


def week_calls(connection: Connection, dues: Sequence[Due], *, now: datetime) -> list[Call]:
    """The calls for `dues`: owners and appointments from the desk, the nearest capable center
    of a working dealer, and a proposed slot there."""
    owners = owners_of(connection, sorted({d.vin for d in dues}))
    every, working = centers_by_id(connection)
    calls = choose_centers(dues, owners, every, working)
    wanted: dict[str, int] = {}
    for call in calls:
        if call.center is not None and not call.booked:
            wanted[call.center.id] = wanted.get(call.center.id, 0) + 1
    free = {center: next_slots(connection, center, now=now, count=count) for center, count in wanted.items()}
    reports = latest_reports(connection, sorted({d.vin for d in dues}))
    return [replace(call, report_id=reports.get(call.due.vin)) for call in assign_slots(calls, free)]


@dataclass(frozen=True, kw_only=True, slots=True)
class Visit:
    """A booked appointment on a center's plan."""

    appointment_id: str
    at: datetime  # UTC
    bay: int | None
    customer_id: str
    customer: str
    phone: str
    vin: str
    plate: str
    purpose: str
    parts: tuple[str, ...]  # part numbers


def center_plan(connection: Connection, center_id: str, *, since: datetime, limit: int = 500) -> list[Visit]:
    """The center's booked appointments from `since` on, earliest first."""
    a, c, v = schema.appointment, schema.customer, schema.vehicle
    rows = connection.execute(
        select(a.c.appointment_id, a.c.scheduled_at, a.c.bay, a.c.vin, a.c.purpose, a.c.parts)
        .add_columns(c.c.customer_id, c.c.name, c.c.phone, v.c.plate)
        .join(c, c.c.customer_id == a.c.customer_id)
        .join(v, v.c.vin == a.c.vin)
        .where(a.c.center_id == center_id, a.c.status == "booked", a.c.scheduled_at >= since)
        .order_by(a.c.scheduled_at, a.c.bay, a.c.appointment_id)
        .limit(limit)
    )
    return [
        Visit(
            appointment_id=row.appointment_id,
            at=_utc(row.scheduled_at),
            bay=row.bay,
            customer_id=row.customer_id,
            customer=row.name,
            phone=row.phone or "",
            vin=row.vin,
            plate=row.plate or "",
            purpose=row.purpose or "",
            parts=tuple(p for p in (row.parts or "").split(";") if p),
        )
        for row in rows
    ]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
