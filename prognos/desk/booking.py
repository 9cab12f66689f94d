"""Booking a visit: a center's next free slots, from its opening hours, its bays and weekly
capacity and the appointments it has, and booking one of them (docs/desk.md, "Booking").

A slot is an hour that starts on the hour inside the center's opening hours (its dealer's
business calendar). A center has one bay per technician: a slot is free while fewer appointments
than bays start in it, and the week while it has fewer than its weekly capacity
(prognos.cloud.dealers.reassign.weekly_capacity, the rule dealer closures use too). Each booked
appointment holds a numbered bay of its slot, so two managers booking the last bay at once cannot
both get it: the store's unique index refuses the second.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError

from prognos.cloud.dealers.kinds import skill_set
from prognos.cloud.dealers.reassign import ServiceCenter, weekly_capacity
from prognos.desk import audit, schema
from prognos.desk.calendar import BusinessCalendar
from prognos.desk.complaints import dealer_calendar
from prognos.desk.store import transaction
from prognos.errors import ConfigError

SLOT = timedelta(hours=1)
LEAD = timedelta(hours=2)  # the earliest slot starts this long after now: time to prepare
HORIZON_DAYS = 42  # slots are looked for this far ahead


class SlotTakenError(ConfigError):
    """The slot is full (or was taken a moment ago); nothing was written."""


@dataclass(frozen=True)
class Slot:
    center_id: str
    start: datetime  # UTC
    free_bays: int


def _week(moment: datetime) -> tuple[int, int]:
    year, week, _ = moment.isocalendar()
    return year, week


def free_slots(
    *,
    center_id: str,
    calendar: BusinessCalendar,
    bays: int,
    per_week: int,
    booked: Iterable[datetime],
    after: datetime,
    count: int,
    horizon_days: int = HORIZON_DAYS,
) -> list[Slot]:
    """The first `count` free slots starting at `after` or later (pure)."""
    taken = Counter(moment.astimezone(UTC) for moment in booked)
    weekly = Counter(_week(moment) for moment in taken.elements())
    after = after.astimezone(UTC)
    first = calendar.local_day(after)
    found: list[Slot] = []
    for opens, closes in calendar.windows(first, first + timedelta(days=horizon_days)):
        start = opens.replace(minute=0, second=0, microsecond=0)
        if start < opens:
            start += SLOT
        while start + SLOT <= closes and len(found) < count:
            free = bays - taken[start]
            if start >= after and free > 0 and weekly[_week(start)] < per_week:
                found.append(Slot(center_id, start, free))
            start += SLOT
        if len(found) >= count:
            break
    return found


def center_of(row: Any) -> ServiceCenter:
    """A `service_center` row as the reassignment and capacity rules take it."""
    return ServiceCenter(
        id=row.center_id,
        dealer_id=row.dealer_id,
        lat=row.lat,
        lon=row.lon,
        capacity_per_week=row.capacity_per_week,
        technicians=row.technicians,
        skills=skill_set(row.skills),
        name=row.name,
    )


def _center(connection: Connection, center_id: str) -> ServiceCenter:
    row = connection.execute(
        select(schema.service_center).where(schema.service_center.c.center_id == center_id)
    ).first()
    if row is None:
        raise ConfigError(f"no service center {center_id!r}; nothing was written")
    return center_of(row)


def _booked(connection: Connection, center_id: str, since: datetime) -> list[datetime]:
    a = schema.appointment
    rows = connection.execute(
        select(a.c.scheduled_at).where(
            a.c.center_id == center_id, a.c.status == "booked", a.c.scheduled_at >= since - timedelta(days=7)
        )
    ).scalars()
    return [_utc(moment) for moment in rows]


def next_slots(connection: Connection, center_id: str, *, now: datetime, count: int = 10) -> list[Slot]:
    """The center's next `count` free slots, from LEAD after `now`."""
    center = _center(connection, center_id)
    return free_slots(
        center_id=center_id,
        calendar=dealer_calendar(connection, center.dealer_id),
        bays=max(1, center.technicians),
        per_week=weekly_capacity(center),
        booked=_booked(connection, center_id, now),
        after=now + LEAD,
        count=count,
    )


@dataclass(frozen=True)
class Booking:
    appointment_id: str
    customer_id: str
    vin: str
    center_id: str
    at: datetime
    bay: int
    purpose: str


def book(
    engine: Engine,
    *,
    customer_id: str,
    vin: str,
    center_id: str,
    at: datetime,
    purpose: str,
    actor: str,
    now: datetime,
    parts: Sequence[str] = (),
) -> Booking:
    """Book the slot at `at` for the customer's vehicle, in one transaction, audited. An unknown
    customer or center, a vehicle not theirs, or a slot that is not free is a ConfigError and
    nothing is written. `parts`: the part numbers the visit needs, so the center can have them
    on the shelf."""
    at = _utc(at)
    bay = 0
    if len(purpose) > schema.NAME:
        raise ConfigError(f"the purpose is longer than {schema.NAME} characters")
    try:
        with transaction(engine) as connection:
            owner = connection.execute(
                select(schema.vehicle.c.customer_id).where(schema.vehicle.c.vin == vin)
            ).scalar_one_or_none()
            known = connection.execute(
                select(schema.customer.c.customer_id).where(schema.customer.c.customer_id == customer_id)
            ).first()
            if known is None:
                raise ConfigError(f"no customer {customer_id!r}; nothing was written")
            if owner != customer_id:
                raise ConfigError(
                    f"vehicle {vin!r} is not one of customer {customer_id}'s; nothing was written"
                )
            center = _center(connection, center_id)
            booked = _booked(connection, center_id, now)
            slots = free_slots(
                center_id=center_id,
                calendar=dealer_calendar(connection, center.dealer_id),
                bays=max(1, center.technicians),
                per_week=weekly_capacity(center),
                booked=booked,
                after=at,
                count=1,
                horizon_days=1,
            )
            if at < now + LEAD or not slots or slots[0].start != at:
                raise SlotTakenError(
                    f"{at:%Y-%m-%d %H:%M} UTC is not a free slot at {center_id} (slots start on the hour in "
                    f"opening hours, at least {LEAD.seconds // 3600} h ahead); nothing was written"
                )
            bay = sum(1 for moment in booked if moment == at) + 1
            booking = Booking(
                f"AP-{now:%Y%m%d}-{uuid4().hex[:6].upper()}", customer_id, vin, center_id, at, bay, purpose
            )
            values = {
                "appointment_id": booking.appointment_id,
                "customer_id": customer_id,
                "vin": vin,
                "center_id": center_id,
                "scheduled_at": at,
                "status": "booked",
                "purpose": purpose,
                "parts": ";".join(parts),
                "updated_at": now,
                "bay": bay,
            }
            connection.execute(insert(schema.appointment).values(**values))
            audit.record(
                connection,
                at=now,
                actor=actor,
                entity="appointment",
                entity_id=booking.appointment_id,
                action="booked",
                before=None,
                after={k: v for k, v in values.items() if k != "appointment_id"},
            )
    except IntegrityError as exc:
        raise SlotTakenError(
            f"bay {bay} of {at:%Y-%m-%d %H:%M} UTC at {center_id} was taken a moment ago; nothing was written"
        ) from exc
    return booking


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
