"""Synthetic service-desk data: customers, their vehicles and service history, appointments,
open alerts, complaints and entitlements, consistent with the dealer-system data of
prognos.sim.dealers (the same dealers, service centers, vehicle registry, work orders and
complaints), and grown to any number of customers with vehicles of their own.

The story it tells is the one the desk exists for: one dealer (SLIPPING_DEALER) is failing.
Some of its customers paid for cars it never delivered, many hold prepaid maintenance packages
it sold, and their appointments are still booked there. Elsewhere the usual mix: warranties
running out, missed appointments, open critical alerts, complaints past their SLA, comebacks.

`make_desk_data` is pure (rows as dicts); prognos.sim.desk_seed writes them through the desk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np

from prognos.cloud.analytics.common import FAULT_WORDS
from prognos.sim.dealers import (
    DEFAULT_DEALERS,
    FIRST_NAMES,
    LAST_NAMES,
    SLIPPING_DEALER,
    WORKSHOPS,
    Row,
)
from prognos.sim.repairs import FAULTS, Diagnoser, mileage_km

Table = list[dict[str, object]]

PLATE_PREFIX = {"SC-01": "HH", "SC-02": "HB", "SC-03": "M", "SC-04": "KI", "SC-05": "S"}
EXTRA_MODELS = ("EV-1", "EV-2")
ALERT_CODES = FAULT_WORDS  # the faults the desk's alerts speak of, in its words
DESK_CATEGORIES = ("waiting_time", "quality", "billing", "communication", "parts_delay", "safety")
# Public holidays every dealer observes (Germany, nationwide), so SLA clocks skip them.
HOLIDAYS = (
    (1, 1, "New Year's Day"),
    (5, 1, "Labour Day"),
    (10, 3, "German Unity Day"),
    (12, 25, "Christmas Day"),
    (12, 26, "Boxing Day"),
)


@dataclass
class Shares:
    """How common each situation is, per customer or vehicle."""

    second_vehicle: float = 0.10
    not_delivered: float = 0.02  # of vehicles at other dealers than the failing one
    not_delivered_failing: float = 0.12
    maintenance_package: float = 0.40
    extended_warranty: float = 0.15
    booked_appointment: float = 0.20
    missed_appointment: float = 0.05
    cancelled_appointment: float = 0.03
    open_alert: float = 0.06
    critical_alert: float = 0.30  # of open alerts
    complaint: float = 0.06  # desk complaints per customer beyond the DMS's
    orders_per_vehicle: float = 2.0  # for vehicles outside the DMS registry
    comeback: float = 0.05  # of right first repairs that did not hold (a wrong one always comes back)


@dataclass(frozen=True)
class Grant:
    entitlement_id: str
    customer_id: str
    vin: str
    product: str
    units: int | None
    valid_from: datetime
    valid_until: datetime
    center_id: str
    dealer_id: str
    consumed: tuple[tuple[datetime, str], ...] = ()  # (when, work order) per service used


@dataclass(frozen=True)
class ComplaintSpec:
    complaint_id: str
    customer_id: str | None
    vin: str | None
    dealer_id: str
    category: str
    summary: str
    opened_at: datetime
    moves: tuple[tuple[str, datetime], ...]  # (state, when), in order


@dataclass
class DeskData:
    dealers: Table = field(default_factory=list)
    holidays: Table = field(default_factory=list)
    centers: Table = field(default_factory=list)
    customers: Table = field(default_factory=list)
    vehicles: Table = field(default_factory=list)
    appointments: Table = field(default_factory=list)
    work_orders: Table = field(default_factory=list)
    alerts: Table = field(default_factory=list)
    complaints: list[ComplaintSpec] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)
    failing_dealer: str = SLIPPING_DEALER


def make_desk_data(
    *, customers: int, seed: int, now: datetime, dms: dict[str, list[Row]], shares: Shares | None = None
) -> DeskData:
    """Desk rows for `customers` customers at `now`. The owners of the DMS registry's vehicles
    come first (with their work orders and complaints); the rest get vehicles of their own."""
    shares = shares or Shares()
    rng = np.random.default_rng([seed, 20_000])
    data = DeskData()
    _dealers(data, dms, now)
    center_of_dealer = {str(c["dealer_id"]): str(c["center_id"]) for c in data.centers}
    dealer_of_center = {center: dealer for dealer, center in center_of_dealer.items()}
    centers = sorted(dealer_of_center)
    registry = dms.get("vehicle", [])
    registered = {row["vin"]: row for row in registry}
    owners = _registry_owners(registry, customers)
    for index in range(customers):
        customer_id = f"C{index + 1:06d}"
        if index < len(owners):
            name, email, home, vins = owners[index]
        else:
            first, last = str(rng.choice(FIRST_NAMES)), str(rng.choice(LAST_NAMES))
            name = f"{first} {last}"
            email = f"{first}.{last}.{index + 1}@example.com".lower().replace("ö", "o").replace("í", "i")
            home = centers[int(rng.integers(0, len(centers)))]
            count = 2 if rng.random() < shares.second_vehicle else 1
            vins = [f"PRGX{seed % 100:02d}{index + 1:07d}{n}"[:17].ljust(17, "0") for n in range(count)]
        created = now - timedelta(days=int(rng.integers(60, 1500)))
        data.customers.append(
            {
                "customer_id": customer_id,
                "name": name,
                "name_key": name.lower(),
                "email": email,
                "phone": f"+49 {int(rng.integers(150, 180))} {int(rng.integers(1_000_000, 9_999_999))}",
                "home_center": home,
                "created_at": created,
            }
        )
        dealer = dealer_of_center[home]
        failing = dealer == data.failing_dealer
        for vin in vins:
            _vehicle(
                data,
                rng,
                shares,
                customer_id,
                vin,
                home,
                dealer,
                failing,
                now,
                registered.get(vin),
            )
        _appointments(data, rng, shares, customer_id, vins[0], home, now)
    _work_orders(data, rng, shares, dms, now, seed)
    _complaints(data, rng, shares, now)
    return data


def _dealers(data: DeskData, dms: dict[str, list[Row]], now: datetime) -> None:
    regions = {p.dealer_id: p.region for p in DEFAULT_DEALERS}
    for row in dms.get("service_center", []):
        dealer = row["dealer_id"]
        data.centers.append(
            {
                "center_id": row["service_center"],
                "dealer_id": dealer,
                "name": row.get("name") or row["service_center"],
                "lat": float(row["lat"]),
                "lon": float(row["lon"]),
                "skills": row.get("skills", ""),
                "capacity_per_week": int(row.get("capacity_per_week") or 40),
                "technicians": int(row.get("technicians") or 4),
            }
        )
        shop = WORKSHOPS.get(row["service_center"])
        at_risk = dealer == data.failing_dealer
        data.dealers.append(
            {
                "dealer_id": dealer,
                "name": f"{shop.name.replace('Prognos Service', 'Autohaus')}" if shop else dealer,
                "region": regions.get(dealer, "north"),
                "status": "at_risk" if at_risk else "active",
                "status_reason": "complaints rising, fulfilment and cash flow falling" if at_risk else "",
                "status_at": now - timedelta(days=30) if at_risk else None,
                "timezone": "Europe/Berlin",
                "workdays": "123456" if dealer in ("DLR-01", "DLR-03") else "12345",
                "opens": "08:00",
                "closes": "18:00",
            }
        )
        for year in (now.year - 1, now.year, now.year + 1):
            for month, day, name in HOLIDAYS:
                data.holidays.append({"dealer_id": dealer, "day": date(year, month, day), "name": name})


def _registry_owners(registry: list[Row], limit: int) -> list[tuple[str, str, str, list[str]]]:
    """(name, e-mail, home center, VINs) of the registry's owners, one customer per owner."""
    owners: dict[str, tuple[str, str, str, list[str]]] = {}
    for row in registry:
        key = row.get("owner_contact") or row["vin"]
        if key in owners:
            owners[key][3].append(row["vin"])
        elif len(owners) < limit:
            owners[key] = (row.get("owner_name") or "Unknown owner", key, row["service_center"], [row["vin"]])
    return list(owners.values())


def _vehicle(
    data: DeskData,
    rng: np.random.Generator,
    shares: Shares,
    customer_id: str,
    vin: str,
    home: str,
    dealer: str,
    failing: bool,
    now: datetime,
    registered: Row | None,
) -> None:
    """A vehicle (the registry's model and lot when it is a registry vehicle, which is on the
    road, so delivered), its warranty, perhaps a maintenance package, an extended warranty and
    an open alert."""
    paid = now - timedelta(days=int(rng.integers(40, 1100)))
    undelivered = registered is None and rng.random() < (
        shares.not_delivered_failing if failing else shares.not_delivered
    )
    if undelivered:
        paid = now - timedelta(days=int(rng.integers(20, 140)))
    delivered = None if undelivered else paid + timedelta(days=int(rng.integers(7, 60)))
    warranty_until = (delivered or paid) + timedelta(days=730)
    data.vehicles.append(
        {
            "vin": vin,
            "customer_id": customer_id,
            "plate": None if delivered is None else _plate(rng, home),
            "model": registered["model"] if registered else str(rng.choice(EXTRA_MODELS)),
            "lot": registered["lot"] if registered else f"L{int(rng.integers(1, 5)):03d}",
            "paid_at": paid,
            "delivered_at": delivered,
            "warranty_until": warranty_until,
        }
    )
    start = delivered or paid
    serial = len(data.grants) + 1
    data.grants.append(
        Grant(f"E{serial:07d}W", customer_id, vin, "warranty", None, start, warranty_until, home, dealer)
    )
    if rng.random() < shares.maintenance_package or (failing and rng.random() < 0.5):
        units = int(rng.integers(3, 6))
        age_days = max((now - start).days, 0)
        used = min(units, int(age_days / 365 * rng.uniform(0.6, 1.4))) if delivered else 0
        consumed = tuple(
            (
                start + timedelta(days=int(365 * (n + 1) * rng.uniform(0.8, 1.0))),
                f"{dealer}-PKG{serial:07d}-{n + 1}",
            )
            for n in range(used)
        )
        consumed = tuple(c for c in consumed if c[0] < now)
        data.grants.append(
            Grant(
                f"E{serial:07d}M",
                customer_id,
                vin,
                "maintenance",
                units,
                paid,
                paid + timedelta(days=365 * 3),
                home,
                dealer,
                consumed,
            )
        )
    if delivered is not None and rng.random() < shares.extended_warranty:
        data.grants.append(
            Grant(
                f"E{serial:07d}X",
                customer_id,
                vin,
                "extended_warranty",
                None,
                warranty_until,
                warranty_until + timedelta(days=365 * 3),
                home,
                dealer,
            )
        )
    if delivered is not None and rng.random() < shares.open_alert:
        code = str(rng.choice(list(ALERT_CODES)))
        data.alerts.append(
            {
                "alert_id": f"A-{vin[-8:]}-{len(data.alerts) + 1}",
                "vin": vin,
                "code": code,
                "severity": "critical" if rng.random() < shares.critical_alert else "warning",
                "summary": ALERT_CODES[code],
                "raised_at": now - timedelta(hours=int(rng.integers(2, 24 * 14))),
                "cleared_at": None,
            }
        )


def _plate(rng: np.random.Generator, center: str) -> str:
    letters = "".join(chr(ord("A") + int(x)) for x in rng.integers(0, 26, 2))
    return f"{PLATE_PREFIX.get(center, 'B')}-{letters} {int(rng.integers(1, 9999))}"


def _appointments(
    data: DeskData,
    rng: np.random.Generator,
    shares: Shares,
    customer_id: str,
    vin: str,
    home: str,
    now: datetime,
) -> None:
    draw = rng.random()
    if draw < shares.booked_appointment:
        status, when = (
            "booked",
            now + timedelta(days=int(rng.integers(1, 30)), hours=int(rng.integers(8, 17))),
        )
    elif draw < shares.booked_appointment + shares.missed_appointment:
        status, when = "missed", now - timedelta(days=int(rng.integers(1, 80)))
    elif draw < shares.booked_appointment + shares.missed_appointment + shares.cancelled_appointment:
        status, when = "cancelled", now - timedelta(days=int(rng.integers(1, 80)))
    else:
        return
    purpose = "annual service" if rng.random() < 0.6 else str(rng.choice(list(ALERT_CODES)))
    data.appointments.append(
        {
            "appointment_id": f"AP{len(data.appointments) + 1:07d}",
            "customer_id": customer_id,
            "vin": vin,
            "center_id": home,
            "scheduled_at": when.replace(minute=0, second=0, microsecond=0),
            "status": status,
            "purpose": purpose,
            "parts": "",
            "updated_at": min(when, now),
        }
    )


def _work_orders(
    data: DeskData,
    rng: np.random.Generator,
    shares: Shares,
    dms: dict[str, list[Row]],
    now: datetime,
    seed: int,
) -> None:
    """The DMS's work orders of known vehicles, then a service history for the others."""
    known = {str(v["vin"]) for v in data.vehicles}
    for row in dms.get("work_order", []):
        if row["vin"] not in known:
            continue
        data.work_orders.append(
            {
                "dealer_id": row["dealer_id"],
                "order_id": row["order_id"],
                "vin": row["vin"],
                "center_id": row.get("service_center") or None,
                "opened_at": _time(row["opened_at"]),
                "closed_at": _time(row["closed_at"]) if row.get("closed_at") else None,
                "description": "repeat visit" if row.get("repeat_of_order_id") else "service",
                "parts": row.get("parts", ""),
                "amount": float(row["amount"]),
                "currency": row.get("currency") or "EUR",
                "repeat_of_order_id": row.get("repeat_of_order_id") or None,
            }
            | _diagnosis(row)
        )
    with_history = {str(w["vin"]) for w in data.work_orders}
    home = {str(c["customer_id"]): str(c["home_center"]) for c in data.customers}
    dealer_of = {str(c["center_id"]): str(c["dealer_id"]) for c in data.centers}
    diagnoser = Diagnoser(seed=seed, stream=1)  # not the DMS's draws again
    visits: list[_Visit] = []
    for vehicle in data.vehicles:
        vin = str(vehicle["vin"])
        delivered = vehicle["delivered_at"]
        if vin in with_history or not isinstance(delivered, datetime):
            continue
        center = home[str(vehicle["customer_id"])]
        dealer = dealer_of[center]
        for n in range(int(rng.poisson(shares.orders_per_vehicle))):
            opened = delivered + timedelta(days=int(rng.integers(30, max(31, (now - delivered).days))))
            if opened >= now:
                continue
            code = str(rng.choice(list(ALERT_CODES)))
            order_id = f"{dealer}-H{vin[-8:]}{n}"
            order = {
                "dealer_id": dealer,
                "order_id": order_id,
                "vin": vin,
                "center_id": center,
                "opened_at": opened,
                "closed_at": opened + timedelta(hours=int(rng.integers(1, 30))),
                "description": code,
                "parts": "",
                "amount": round(float(rng.uniform(90, 900)), 2),
                "currency": "EUR",
                "repeat_of_order_id": None,
            }
            back = opened + timedelta(days=int(rng.integers(3, 28)))
            did_not_hold = rng.random() < shares.comeback and back < now
            refund = round(float(rng.uniform(0, 200)), 2) if did_not_hold else None
            visits.append(_Visit(order, vin, code, str(vehicle["model"]), delivered, opened, back, refund))
    # Diagnosed in the order the visits happened: a diagnosis depends on the vehicle's earlier ones.
    for visit in sorted(visits, key=lambda v: v.opened):
        order = visit.order
        diagnosis = None
        if visit.code in FAULTS:
            mileage = mileage_km(visit.vin, visit.days_on_road(visit.opened))
            diagnosis = diagnoser.diagnose(
                vin=visit.vin, model=visit.model, code=visit.code, mileage_km=mileage
            )
            order |= _diagnosis(diagnosis.visit_columns(mileage))
        data.work_orders.append(order)
        wrong = diagnosis is not None and not diagnosis.fixed_first_time
        if (wrong or visit.refund is not None) and visit.back < now:
            comeback = {
                "order_id": f"{order['order_id']}R",
                "opened_at": visit.back,
                "closed_at": visit.back + timedelta(hours=3),
                "amount": visit.refund if visit.refund is not None else round(visit.amount / 3, 2),
                "repeat_of_order_id": order["order_id"],
            }
            if diagnosis is not None:
                mileage = mileage_km(visit.vin, visit.days_on_road(visit.back))
                comeback |= _diagnosis(diagnosis.visit_columns(mileage, comeback=wrong))
            data.work_orders.append(order | comeback)


@dataclass(frozen=True)
class _Visit:
    """A visit of the service history of a vehicle outside the DMS registry, before diagnosis."""

    order: dict[str, object]
    vin: str
    code: str
    model: str
    delivered: datetime
    opened: datetime
    back: datetime  # when it comes back, if it does
    refund: float | None  # the amount of a comeback because the repair did not hold; None: it held

    @property
    def amount(self) -> float:
        return float(str(self.order["amount"]))

    def days_on_road(self, at: datetime) -> float:
        return (at - self.delivered).total_seconds() / 86_400


def _diagnosis(row: Row) -> dict[str, object]:
    """The desk's diagnostic columns of a DMS work_order row (empty ones as the desk keeps them)."""
    mileage = row.get("mileage_km") or ""
    return {
        "fault_code": row.get("fault_code") or None,
        "symptoms": row.get("symptoms") or "",
        "mileage_km": int(mileage) if mileage else None,
        "root_cause": row.get("root_cause") or None,
        "repair": row.get("repair") or "",
    }


def _complaints(data: DeskData, rng: np.random.Generator, shares: Shares, now: datetime) -> None:
    """Complaints raised at the desk, with outcomes from quick resolution to long past the SLA
    (the DMS's own complaints come in through the desk's DMS import)."""
    dealer_of = {str(c["center_id"]): str(c["dealer_id"]) for c in data.centers}
    first_vin: dict[str, str] = {}
    for vehicle in data.vehicles:
        first_vin.setdefault(str(vehicle["customer_id"]), str(vehicle["vin"]))
    for customer in data.customers:
        if rng.random() >= shares.complaint:
            continue
        customer_id = str(customer["customer_id"])
        vin = first_vin.get(customer_id)
        dealer = dealer_of[str(customer["home_center"])]
        if dealer == data.failing_dealer:
            category = "parts_delay" if rng.random() < 0.5 else "communication"
        else:
            category = str(rng.choice(DESK_CATEGORIES[:-1]))
        opened = now - timedelta(hours=float(rng.uniform(1, 24 * 40)))
        outcome = rng.random()
        moves = []
        if outcome < 0.5:  # answered and resolved in good time
            moves = [
                ("acknowledged", opened + timedelta(hours=1)),
                ("resolved", opened + timedelta(hours=20)),
            ]
        elif outcome < 0.75:  # being worked on
            moves = [
                ("acknowledged", opened + timedelta(hours=3)),
                ("in_progress", opened + timedelta(hours=5)),
            ]
        data.complaints.append(
            ComplaintSpec(
                f"CP-{customer_id}-{len(data.complaints) + 1}",
                customer_id,
                vin,
                dealer,
                category,
                f"{category.replace('_', ' ')} at {customer['home_center']}",
                opened,
                tuple(m for m in moves if m[1] < now),
            )
        )


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
