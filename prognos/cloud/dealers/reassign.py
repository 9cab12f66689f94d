"""Dealer closure: move a closing dealer's open appointments and its customers to the nearest
service centers that can take them. Pure: data in, assignments out; docs/dms.md states the rule.

The rule, greedy by urgency with capacity accounting:

1. The closing dealer's service centers take nothing. Every other center is a candidate,
   nearest first (great-circle distance from the closing center the appointment or customer
   belonged to).
2. Appointments (the dealer's open work orders), earliest first: each goes to the nearest
   candidate that
   - repairs what the appointment's parts belong to (its `skills`; a part of FAULT_PARTS
     belongs to its fault code's subsystem, other parts need no skill),
   - has each needed part: in stock (units not yet promised to an earlier appointment of this
     run), or, if it carries the part, can get it within `max_wait_weeks` (its lead time);
     the appointment then moves to the week the part arrives,
   - has a free slot in the appointment's week: weekly capacity (capacity_per_week, but no
     more than technicians x appointments_per_technician) minus the appointments it already
     has that week (`booked`) minus those placed there by this run.
   An appointment whose date has passed is due now (as_of).
3. Customers (registry vehicles whose home is a closing center): each goes to the center its
   open appointment went to, else to the nearest candidate with room for customers: a
   customer brings visits_per_year visits, so a center has room for
   weekly capacity x 52 / visits_per_year customers, minus those it has.
4. What fits nowhere (or only beyond max_distance_km) is listed as unplaced, with the reason
   of every candidate it was tried at.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import pandas as pd

from prognos.cloud.dealers.kinds import skill_set
from prognos.cloud.parts.plan import FAULT_PARTS
from prognos.errors import ConfigError

EARTH_RADIUS_KM = 6371.0088
WEEK_MS = 7 * 86_400_000
MAX_REASONS = 4  # candidates named in a reason

# The subsystem each planned part belongs to: a center repairs it only with that skill.
PART_SKILLS: dict[str, str] = {spec.part: code.split(".", 1)[0] for code, spec in FAULT_PARTS.items()}

COLUMNS = (
    "kind",
    "id",
    "vin",
    "status",
    "from_center",
    "to_center",
    "to_dealer",
    "distance_km",
    "parts",
    "date",
    "week",
    "reason",
)


@dataclass(frozen=True)
class ServiceCenter:
    id: str
    dealer_id: str
    lat: float
    lon: float
    capacity_per_week: int
    technicians: int
    skills: frozenset[str] = frozenset()  # empty: it repairs everything
    name: str = ""


@dataclass(frozen=True)
class StockItem:
    on_hand: float
    lead_time_weeks: float


@dataclass(frozen=True)
class Appointment:
    id: str  # the work order's number
    vin: str
    center: str  # the closing center it was booked at
    date_ms: int  # when it is due (opened or booked)
    parts: tuple[str, ...] = ()  # needed parts, one entry per unit


@dataclass(frozen=True)
class Customer:
    vin: str
    center: str  # the closing center that was its home


@dataclass(frozen=True, kw_only=True)
class ReassignSettings:
    appointments_per_technician: float = 10.0  # a week
    max_wait_weeks: float = 2.0  # a missing part may be ordered if it arrives within this
    visits_per_year: float = 2.0  # a customer's visits
    max_distance_km: float | None = None  # farther centers are not candidates


DEFAULT_SETTINGS = ReassignSettings()


@dataclass(frozen=True)
class Assignment:
    kind: Literal["appointment", "customer"]
    id: str
    vin: str
    from_center: str
    to_center: str  # empty when unplaced
    to_dealer: str
    distance_km: float  # NaN when unplaced
    parts: tuple[str, ...]
    date_ms: int | None  # appointments: when it happens at the new center
    reason: str

    @property
    def placed(self) -> bool:
        return bool(self.to_center)


@dataclass(frozen=True)
class Reassignment:
    dealer_id: str
    closing: tuple[str, ...]  # the dealer's service centers
    assignments: tuple[Assignment, ...]

    @property
    def placed(self) -> tuple[Assignment, ...]:
        return tuple(a for a in self.assignments if a.placed)

    @property
    def unplaced(self) -> tuple[Assignment, ...]:
        return tuple(a for a in self.assignments if not a.placed)

    def frame(self) -> pd.DataFrame:
        """One row per appointment and customer (COLUMNS), placed first."""
        rows = [
            {
                "kind": a.kind,
                "id": a.id,
                "vin": a.vin,
                "status": "placed" if a.placed else "unplaced",
                "from_center": a.from_center,
                "to_center": a.to_center,
                "to_dealer": a.to_dealer,
                "distance_km": round(a.distance_km, 1) if math.isfinite(a.distance_km) else math.nan,
                "parts": ";".join(a.parts),
                "date": _day(a.date_ms) if a.date_ms is not None else "",
                "week": iso_week(a.date_ms) if a.date_ms is not None else "",
                "reason": a.reason,
            }
            for a in self.assignments
        ]
        table = pd.DataFrame(rows, columns=list(COLUMNS))
        order = table["status"] != "placed"
        return table.assign(_order=order).sort_values(["_order", "kind"], kind="stable")[list(COLUMNS)]


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def iso_week(ms: int) -> str:
    year, week, _ = datetime.fromtimestamp(ms / 1000, UTC).isocalendar()
    return f"{year}-W{week:02d}"


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()


def weekly_capacity(center: ServiceCenter, settings: ReassignSettings = DEFAULT_SETTINGS) -> int:
    """Appointments a week: its stated capacity, but no more than its technicians can do."""
    return max(
        0,
        min(center.capacity_per_week, math.floor(center.technicians * settings.appointments_per_technician)),
    )


def required_skills(parts: Iterable[str]) -> frozenset[str]:
    return frozenset(PART_SKILLS[part] for part in parts if part in PART_SKILLS)


@dataclass
class _State:
    """What this run has promised so far."""

    booked: Counter[tuple[str, str]]  # (center, week) -> appointments
    customers: Counter[str]  # center -> home customers
    promised: Counter[tuple[str, str]] = field(default_factory=Counter)  # (center, part) -> units


def reassign(
    dealer_id: str,
    centers: Sequence[ServiceCenter],
    appointments: Sequence[Appointment],
    customers: Sequence[Customer],
    stock: Mapping[tuple[str, str], StockItem],
    as_of_ms: int,
    *,
    booked: Mapping[tuple[str, str], int] | None = None,
    customers_now: Mapping[str, int] | None = None,
    settings: ReassignSettings = DEFAULT_SETTINGS,
) -> Reassignment:
    """Place the closing dealer's appointments and customers (the rule in the module docstring).

    stock: (center, part) -> its count; a center without a row for a part does not carry it.
    booked: (center, ISO week like 2024-W09) -> appointments it already has that week.
    customers_now: center -> customers whose home it is already."""
    closing = {c.id for c in centers if c.dealer_id == dealer_id}
    if not closing:
        raise ConfigError(f"dealer {dealer_id!r} runs no service center in the data")
    where = {c.id: c for c in centers}
    open_centers = [c for c in centers if c.id not in closing]
    state = _State(Counter(booked or {}), Counter(customers_now or {}))
    results: list[Assignment] = []
    went_to: dict[str, str] = {}  # vin -> center its appointment went to
    for item in sorted(appointments, key=lambda a: (max(a.date_ms, as_of_ms), a.date_ms, a.id)):
        placed = _place_appointment(item, where, open_centers, stock, as_of_ms, state, settings)
        results.append(placed)
        if placed.placed:
            went_to.setdefault(item.vin, placed.to_center)
    for customer in sorted(customers, key=lambda c: c.vin):
        results.append(_place_customer(customer, where, open_centers, went_to, state, settings))
    return Reassignment(dealer_id, tuple(sorted(closing)), tuple(results))


def _candidates(
    origin: ServiceCenter | None, centers: Sequence[ServiceCenter], settings: ReassignSettings
) -> list[tuple[float, ServiceCenter]]:
    if origin is None:
        return []
    ranked = sorted(
        ((distance_km(origin.lat, origin.lon, c.lat, c.lon), c) for c in centers),
        key=lambda p: (p[0], p[1].id),
    )
    if settings.max_distance_km is not None:
        ranked = [(d, c) for d, c in ranked if d <= settings.max_distance_km]
    return ranked


def _place_appointment(
    item: Appointment,
    where: Mapping[str, ServiceCenter],
    centers: Sequence[ServiceCenter],
    stock: Mapping[tuple[str, str], StockItem],
    as_of_ms: int,
    state: _State,
    settings: ReassignSettings,
) -> Assignment:
    due = max(item.date_ms, as_of_ms)
    needed = Counter(item.parts)
    skills = required_skills(needed)
    skipped: list[str] = []
    origin = where.get(item.center)
    ranked = _candidates(origin, centers, settings)
    for km, center in ranked:
        if center.skills and not skills <= center.skills:
            missing = ", ".join(sorted(skills - center.skills))
            skipped.append(f"{center.id} ({km:.0f} km) does not repair {missing}")
            continue
        when, ordered, problem = due, [], ""
        for part, units in sorted(needed.items()):
            row = stock.get((center.id, part))
            free = (row.on_hand if row else 0.0) - state.promised[(center.id, part)]
            if free >= units:
                continue
            if row is None:
                problem = f"does not stock {part}"
                break
            if row.lead_time_weeks > settings.max_wait_weeks:
                problem = f"has {max(free, 0):.0f} of {units} {part}, lead time {row.lead_time_weeks:g} weeks"
                break
            when = max(when, as_of_ms + int(row.lead_time_weeks * WEEK_MS))
            ordered.append(f"{part} ordered ({row.lead_time_weeks:g} weeks)")
        if problem:
            skipped.append(f"{center.id} ({km:.0f} km) {problem}")
            continue
        week = iso_week(when)
        slots = weekly_capacity(center, settings)
        if state.booked[(center.id, week)] >= slots:
            skipped.append(f"{center.id} ({km:.0f} km) is full in {week} ({slots} a week)")
            continue
        state.booked[(center.id, week)] += 1
        for part, units in needed.items():
            state.promised[(center.id, part)] += units
        how = "; ".join(ordered) if ordered else ("parts in stock" if needed else "no parts needed")
        reason = f"nearest capable center, {km:.1f} km; {how}; {week}"
        if skipped:
            reason += "; nearer ones: " + _listed(skipped)
        return Assignment(
            "appointment",
            item.id,
            item.vin,
            item.center,
            center.id,
            center.dealer_id,
            km,
            item.parts,
            when,
            reason,
        )
    if origin is None:
        why = f"the location of {item.center or 'its service center'} is unknown"
    elif not ranked:
        why = "no other service center" + (
            f" within {settings.max_distance_km:g} km" if settings.max_distance_km is not None else ""
        )
    else:
        why = "no center can take it: " + _listed(skipped)
    return Assignment("appointment", item.id, item.vin, item.center, "", "", math.nan, item.parts, None, why)


def _place_customer(
    customer: Customer,
    where: Mapping[str, ServiceCenter],
    centers: Sequence[ServiceCenter],
    went_to: Mapping[str, str],
    state: _State,
    settings: ReassignSettings,
) -> Assignment:
    origin = where.get(customer.center)
    ranked = _candidates(origin, centers, settings)
    preferred = went_to.get(customer.vin)
    if preferred is not None:
        ranked = sorted(ranked, key=lambda p: p[1].id != preferred)  # stable: then by distance
    skipped: list[str] = []
    for km, center in ranked:
        room = math.floor(weekly_capacity(center, settings) * 52 / settings.visits_per_year)
        if state.customers[center.id] >= room:
            skipped.append(f"{center.id} ({km:.0f} km) has no room ({room} customers)")
            continue
        state.customers[center.id] += 1
        if center.id == preferred:
            reason = f"where its open appointment went, {km:.1f} km"
        else:
            reason = f"nearest center with room, {km:.1f} km"
        if skipped:
            reason += "; nearer ones: " + _listed(skipped)
        return Assignment(
            "customer",
            customer.vin,
            customer.vin,
            customer.center,
            center.id,
            center.dealer_id,
            km,
            (),
            None,
            reason,
        )
    if origin is None:
        why = f"the location of {customer.center or 'its service center'} is unknown"
    elif not ranked:
        why = "no other service center" + (
            f" within {settings.max_distance_km:g} km" if settings.max_distance_km is not None else ""
        )
    else:
        why = "no center has room: " + _listed(skipped)
    return Assignment(
        "customer", customer.vin, customer.vin, customer.center, "", "", math.nan, (), None, why
    )


def _listed(reasons: Sequence[str]) -> str:
    shown = "; ".join(reasons[:MAX_REASONS])
    return shown + (f"; and {len(reasons) - MAX_REASONS} more" if len(reasons) > MAX_REASONS else "")


# ---------------------------------------------------------------- from the imported DMS data


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _ms(value: object) -> int | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(pd.Timestamp(value).timestamp() * 1000)


def reassign_frames(
    dealer_id: str,
    centers: pd.DataFrame,
    orders: pd.DataFrame,
    registry: pd.DataFrame,
    stock: pd.DataFrame,
    as_of_ms: int,
    *,
    settings: ReassignSettings = DEFAULT_SETTINGS,
) -> Reassignment:
    """reassign() on the imported DMS data: `centers` the service_center kind, `orders` the
    work_order kind (every dealer's: the other centers' open orders are their booked load),
    `registry` the vehicle kind, `stock` the latest count per service_center and part (on_hand,
    lead_time_weeks; prognos.cloud.analytics.job.read_stock). Frames as
    prognos.cloud.dealers.dms.records_frame gives."""
    if centers.empty:
        raise ConfigError("no service centers in the data: import the service_center kind with import-dms")
    places = [
        ServiceCenter(
            id=_text(r.service_center),
            dealer_id=_text(r.dealer_id),
            lat=float(r.lat),
            lon=float(r.lon),
            capacity_per_week=int(r.capacity_per_week),
            technicians=int(r.technicians),
            skills=skill_set(getattr(r, "skills", None)),
            name=_text(getattr(r, "name", "")),
        )
        for r in centers.itertuples(index=False)
    ]
    closing = [c.id for c in places if c.dealer_id == dealer_id]
    if not closing:
        raise ConfigError(f"dealer {dealer_id!r} runs no service center in the data")
    appointments: list[Appointment] = []
    booked: Counter[tuple[str, str]] = Counter()
    if not orders.empty:
        open_orders = orders[orders["closed_at"].isna()]
        for r in open_orders.itertuples(index=False):
            opened = _ms(r.opened_at)
            if opened is None:
                continue
            center = _text(getattr(r, "service_center", ""))
            if _text(r.dealer_id) == dealer_id:
                parts = r.parts if isinstance(r.parts, tuple) else ()
                appointments.append(
                    Appointment(_text(r.order_id), _text(r.vin), center or closing[0], opened, tuple(parts))
                )
            elif center:
                booked[(center, iso_week(max(opened, as_of_ms)))] += 1
    homes = registry["service_center"].map(_text) if not registry.empty else pd.Series(dtype=str)
    customers = [
        Customer(_text(vin), home)
        for vin, home in zip(registry.get("vin", []), homes, strict=True)
        if home in closing
    ]
    items = {
        (_text(r.service_center), _text(r.part)): StockItem(float(r.on_hand), float(r.lead_time_weeks))
        for r in stock.itertuples(index=False)
    }
    return reassign(
        dealer_id,
        places,
        appointments,
        customers,
        items,
        as_of_ms,
        booked=booked,
        customers_now=Counter(homes[homes != ""]),
        settings=settings,
    )


def summary(result: Reassignment) -> str:
    """A few lines for the terminal: counts per target center, then what could not be placed."""
    lines = []
    for kind in ("appointment", "customer"):
        items = [a for a in result.assignments if a.kind == kind]
        placed = [a for a in items if a.placed]
        targets = Counter(a.to_center for a in placed)
        spread = ", ".join(f"{center} {count}" for center, count in sorted(targets.items()))
        lines.append(
            f"{len(items)} {kind}s: {len(placed)} placed"
            + (f" ({spread})" if spread else "")
            + f", {len(items) - len(placed)} unplaced"
        )
    for a in result.unplaced:
        lines.append(f"  unplaced {a.kind} {a.id}: {a.reason}")
    return "\n".join(lines)
