"""Risk tags of a customer and the score of the priority call list: pure rules over plain facts.

Each rule takes a customer's facts (what prognos.desk.customers read from the store) and returns
tags, each with its reason in words and the moment it applies from. The customer view and the
priority list run the same rules; the list only narrows in SQL which customers' facts it reads
(docs/desk.md, "Customers and risk tags").

Windows named "within" include their boundary; thresholds named "after" or "past" do not: a
complaint due at 14:00 is past its SLA from 14:00:00.000001, a warranty ending exactly 60 days
from now is within a 60-day window, one ending a microsecond later is not.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from prognos.desk.entitlements import PRODUCT_NAMES, Entitlement
from prognos.errors import ConfigError

DealerStatus = Literal["active", "at_risk", "failed"]
DEALER_STATES: tuple[DealerStatus, ...] = ("active", "at_risk", "failed")
APPOINTMENT_STATES = ("booked", "done", "missed", "cancelled")
MISSED_STATES = ("missed", "cancelled")
CLOSED_COMPLAINT_STATES = ("resolved", "closed")  # every other state is open
CRITICAL = "critical"

# code -> (label, weight). The weight is what a tag adds to the score when it is new.
RULES: dict[str, tuple[str, float]] = {
    "critical_alert": ("open critical alert", 5.0),
    "dealer_failed": ("home dealer failed", 5.0),
    "not_delivered": ("paid, not delivered", 4.0),
    "complaint_overdue": ("complaint past its SLA", 4.0),
    "comeback": ("repeat repair", 3.0),
    "dealer_at_risk": ("home dealer at risk", 2.0),
    "missed_appointment": ("missed or cancelled appointment", 2.0),
    "warranty_expiring": ("warranty expiring", 2.0),
    "package_expiring": ("maintenance package expiring", 1.5),
}
# Conditions that last until someone acts count fully as long as they last; the other tags are
# events, which count most when they are new.
STANDING = frozenset(
    {"critical_alert", "not_delivered", "complaint_overdue", "warranty_expiring", "package_expiring"}
)
HALF_LIFE_DAYS = 30.0
RECENCY_FLOOR = 0.25
DAY = timedelta(days=1)


@dataclass(frozen=True, kw_only=True, slots=True)
class Tag:
    code: str  # a key of RULES
    label: str
    reason: str  # names the thing: the vehicle, appointment, complaint, order, dealer
    since: datetime  # when the risk began (for an expiry: when it entered the window)
    weight: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    expiry_days: int = 60  # warranty or maintenance package ending within this many days
    missed_lookback_days: int = 90  # missed or cancelled appointments this recent
    comeback_window_days: int = 30  # a repeat order opened within this many days of the first
    comeback_lookback_days: int = 180  # repeat orders opened this recently
    delivery_grace_days: int = 14  # a paid vehicle is normally delivered within this many days

    def __post_init__(self) -> None:
        for name in (
            "expiry_days",
            "missed_lookback_days",
            "comeback_window_days",
            "comeback_lookback_days",
            "delivery_grace_days",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a whole number of days, 0 or more, not {value!r}")


# --- the facts --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class VehicleFacts:
    vin: str
    model: str
    plate: str | None = None
    lot: str = ""
    paid_at: datetime | None = None
    delivered_at: datetime | None = None  # None: not delivered (yet)
    warranty_until: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AppointmentFacts:
    appointment_id: str
    vin: str
    center_id: str
    scheduled_at: datetime
    status: str  # APPOINTMENT_STATES
    updated_at: datetime
    purpose: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkOrderFacts:
    dealer_id: str
    order_id: str
    vin: str
    opened_at: datetime
    closed_at: datetime | None = None
    center_id: str | None = None
    description: str = ""
    amount: float = 0.0
    currency: str = "EUR"
    repeat_of_order_id: str | None = None  # the earlier order of the same dealer this one repeats


@dataclass(frozen=True, kw_only=True, slots=True)
class AlertFacts:
    alert_id: str
    vin: str
    code: str  # fault code, e.g. brake.pad_wear
    severity: str  # critical | warning | info
    raised_at: datetime
    cleared_at: datetime | None = None
    summary: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ComplaintFacts:
    complaint_id: str
    category: str
    state: str
    dealer_id: str
    opened_at: datetime
    response_due_at: datetime
    resolution_due_at: datetime
    responded_at: datetime | None = None
    vin: str | None = None
    summary: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class DealerFacts:
    dealer_id: str
    name: str
    status: str  # DEALER_STATES
    status_reason: str = ""
    status_at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CustomerFacts:
    customer_id: str
    vehicles: Sequence[VehicleFacts] = ()
    appointments: Sequence[AppointmentFacts] = ()
    work_orders: Sequence[WorkOrderFacts] = ()
    alerts: Sequence[AlertFacts] = ()
    complaints: Sequence[ComplaintFacts] = ()
    entitlements: Sequence[Entitlement] = ()
    home_dealer: DealerFacts | None = None


# --- words ------------------------------------------------------------------------------------


def day_text(moment: datetime) -> str:
    """2026-11-30 (the UTC day)."""
    return _in_utc(moment).date().isoformat()


def time_text(moment: datetime) -> str:
    """2026-11-30 14:00 UTC."""
    return _in_utc(moment).isoformat(sep=" ", timespec="minutes")[:16] + " UTC"


def _in_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


def days_text(days: int) -> str:
    return "1 day" if days == 1 else f"{days} days"


def _calendar_days(earlier: datetime, later: datetime) -> int:
    """Whole calendar days (UTC) from `earlier` to `later`, as a person counts them."""
    return (_in_utc(later).date() - _in_utc(earlier).date()).days


def _tag(code: str, reason: str, since: datetime) -> Tag:
    label, weight = RULES[code]
    return Tag(code=code, label=label, reason=reason, since=since, weight=weight)


# --- the rules --------------------------------------------------------------------------------


def not_delivered(facts: CustomerFacts, now: datetime, settings: Settings) -> list[Tag]:
    """A vehicle paid more than `delivery_grace_days` ago and still not delivered."""
    if not facts.vehicles:
        return []
    grace = timedelta(days=settings.delivery_grace_days)
    tags = []
    for vehicle in facts.vehicles:
        paid = vehicle.paid_at
        if paid is None or vehicle.delivered_at is not None or now - paid <= grace:
            continue
        reason = (
            f"paid {day_text(paid)} for {vehicle.vin} ({vehicle.model}), "
            f"not delivered after {days_text(_calendar_days(paid, now))}"
        )
        tags.append(_tag("not_delivered", reason, paid))
    return tags


def missed_appointment_at(appointment: AppointmentFacts) -> datetime | None:
    """When a missed appointment was missed (its time) or a cancelled one cancelled."""
    if appointment.status == "missed":
        return appointment.scheduled_at
    if appointment.status == "cancelled":
        return appointment.updated_at
    return None


def missed_appointments(facts: CustomerFacts, now: datetime, settings: Settings) -> list[Tag]:
    """An appointment missed or cancelled within the last `missed_lookback_days`."""
    if not facts.appointments:
        return []
    lookback = timedelta(days=settings.missed_lookback_days)
    tags = []
    for appointment in facts.appointments:
        at = missed_appointment_at(appointment)
        if at is None or at > now or now - at > lookback:
            continue
        what = f"appointment {appointment.appointment_id} at {appointment.center_id}"
        purpose = f" ({appointment.purpose})" if appointment.purpose else ""
        if appointment.status == "missed":
            reason = f"missed {what} on {time_text(appointment.scheduled_at)}{purpose} for {appointment.vin}"
        else:
            reason = (
                f"{what} for {time_text(appointment.scheduled_at)}{purpose} for {appointment.vin} "
                f"cancelled on {day_text(at)}"
            )
        tags.append(_tag("missed_appointment", reason, at))
    return tags


def expiring(facts: CustomerFacts, now: datetime, settings: Settings) -> list[Tag]:
    """A vehicle's warranty, or an active warranty or maintenance package the customer holds,
    ending within the next `expiry_days` (and not already ended). A vehicle's warranty that an
    entitlement of the same VIN and end day restates is told once, as the entitlement."""
    if not facts.entitlements and not facts.vehicles:
        return []
    window = timedelta(days=settings.expiry_days)

    def within(until: datetime) -> bool:
        return now < until <= now + window

    tags = []
    restated: set[tuple[str, str]] = set()
    for entitlement in facts.entitlements:
        until = entitlement.valid_until
        if entitlement.status != "active" or not within(until):
            continue
        if entitlement.product == "warranty":
            restated.add((entitlement.vin, day_text(until)))
        left = (
            f", {entitlement.remaining} of {entitlement.units} services unused" if entitlement.units else ""
        )
        reason = (
            f"{PRODUCT_NAMES[entitlement.product]} {entitlement.entitlement_id} of VIN {entitlement.vin} "
            f"ends {day_text(until)}, in {days_text(_calendar_days(now, until))}{left}"
        )
        code = "package_expiring" if entitlement.product == "maintenance" else "warranty_expiring"
        tags.append(_tag(code, reason, until - window))
    for vehicle in facts.vehicles:
        ends = vehicle.warranty_until
        if ends is None or not within(ends) or (vehicle.vin, day_text(ends)) in restated:
            continue
        left = days_text(_calendar_days(now, ends))
        reason = f"warranty of VIN {vehicle.vin} ends {day_text(ends)}, in {left}"
        tags.append(_tag("warranty_expiring", reason, ends - window))
    return tags


def is_open_alert(alert: AlertFacts, now: datetime) -> bool:
    return alert.raised_at <= now and (alert.cleared_at is None or alert.cleared_at > now)


def critical_alerts(facts: CustomerFacts, now: datetime, settings: Settings) -> list[Tag]:
    """A critical alert on one of the customer's vehicles, raised and not cleared."""
    del settings
    tags = []
    for alert in facts.alerts:
        if alert.severity != CRITICAL or not is_open_alert(alert, now):
            continue
        summary = f": {alert.summary}" if alert.summary else ""
        reason = (
            f"critical alert {alert.code} on {alert.vin} open since {time_text(alert.raised_at)}{summary}"
        )
        tags.append(_tag("critical_alert", reason, alert.raised_at))
    return tags


def is_open_complaint(complaint: ComplaintFacts) -> bool:
    return complaint.state not in CLOSED_COMPLAINT_STATES


def sla_breach(
    complaint: ComplaintFacts, now: datetime
) -> tuple[Literal["resolution", "response"], datetime] | None:
    """Which SLA an open complaint is past at `now`, and since when: the resolution SLA first,
    else the response SLA of a complaint nobody has answered; None while it is on time."""
    if not is_open_complaint(complaint):
        return None
    if now > complaint.resolution_due_at:
        return "resolution", complaint.resolution_due_at
    answered = complaint.responded_at is not None and complaint.responded_at <= now
    if not answered and now > complaint.response_due_at:
        return "response", complaint.response_due_at
    return None


def sla_state(complaint: ComplaintFacts, now: datetime) -> str:
    """The SLA clocks of a complaint in words, for the customer view."""
    breach = sla_breach(complaint, now)
    if breach is not None:
        which, due = breach
        return f"past its {which} SLA since {time_text(due)} ({days_text(_calendar_days(due, now))})"
    answered = complaint.responded_at is not None and complaint.responded_at <= now
    if complaint.responded_at is not None and answered:
        response = f"answered {time_text(complaint.responded_at)}"
    else:
        response = f"response due {time_text(complaint.response_due_at)}"
    return f"on time: {response}, resolution due {time_text(complaint.resolution_due_at)}"


def complaints_overdue(facts: CustomerFacts, now: datetime, settings: Settings) -> list[Tag]:
    """An open complaint past its resolution SLA, or past its response SLA unanswered."""
    del settings
    tags = []
    for complaint in facts.complaints:
        breach = sla_breach(complaint, now)
        if breach is None:
            continue
        which, due = breach
        reason = (
            f"complaint {complaint.complaint_id} ({complaint.category}) "
            f"past its {which} SLA since {time_text(due)}"
        )
        tags.append(_tag("complaint_overdue", reason, due))
    return tags


def home_dealer(facts: CustomerFacts, now: datetime, settings: Settings) -> list[Tag]:
    """The dealer of the customer's home service center is at risk or has failed. When the
    store does not say since when, the tag counts from `now`."""
    del settings
    dealer = facts.home_dealer
    if dealer is None or dealer.status not in ("at_risk", "failed"):
        return []
    return [_dealer_tag(dealer, now)]


@functools.lru_cache(maxsize=256)  # one tag for the many customers of one dealer
def _dealer_tag(dealer: DealerFacts, now: datetime) -> Tag:
    status = "failed" if dealer.status == "failed" else "at risk"
    when = ""
    if dealer.status_at is not None:
        when = (
            f" on {day_text(dealer.status_at)}"
            if dealer.status == "failed"
            else f" since {day_text(dealer.status_at)}"
        )
    why = f": {dealer.status_reason}" if dealer.status_reason else ""
    code = "dealer_failed" if dealer.status == "failed" else "dealer_at_risk"
    return _tag(code, f"home dealer {dealer.dealer_id} {status}{when}{why}", dealer.status_at or now)


def comebacks(facts: CustomerFacts, now: datetime, settings: Settings) -> list[Tag]:
    """A work order opened within the last `comeback_lookback_days` that repeats an earlier
    order of the same dealer and vehicle, opened within `comeback_window_days` of the earlier
    one's closing (or opening, while it is open)."""
    if not facts.work_orders:
        return []
    window = timedelta(days=settings.comeback_window_days)
    lookback = timedelta(days=settings.comeback_lookback_days)
    orders = {(order.dealer_id, order.order_id): order for order in facts.work_orders}
    found: dict[str, list[tuple[WorkOrderFacts, WorkOrderFacts]]] = {}  # vin -> (repeat, first)
    for order in facts.work_orders:
        if not order.repeat_of_order_id or order.opened_at > now or now - order.opened_at > lookback:
            continue
        first = orders.get((order.dealer_id, order.repeat_of_order_id))
        if first is None or first.vin != order.vin:
            continue
        if order.opened_at - (first.closed_at or first.opened_at) > window:
            continue
        found.setdefault(order.vin, []).append((order, first))
    tags = []
    for vin, repeats in sorted(found.items()):
        # one tag per vehicle: its latest comeback, with how many there were
        order, first = max(repeats, key=lambda pair: (pair[0].opened_at, pair[0].order_id))
        finished = first.closed_at or first.opened_at
        what = first.description or order.description or "a repair"
        gap = max(_calendar_days(finished, order.opened_at), 0)
        earlier = len(repeats) - 1
        plural = "s" if earlier != 1 else ""
        more = (
            f"; {earlier} earlier comeback{plural} in {settings.comeback_lookback_days} days"
            if earlier
            else ""
        )
        reason = (
            f"{what} came back {days_text(gap)} after order {first.order_id} "
            f"({vin}, repeat order {order.order_id} on {day_text(order.opened_at)}{more})"
        )
        tags.append(_tag("comeback", reason, order.opened_at))
    return tags


Rule = Callable[[CustomerFacts, datetime, Settings], list[Tag]]
RULE_FUNCTIONS: tuple[Rule, ...] = (
    not_delivered,
    missed_appointments,
    expiring,
    critical_alerts,
    complaints_overdue,
    home_dealer,
    comebacks,
)


def customer_tags(facts: CustomerFacts, now: datetime, settings: Settings | None = None) -> list[Tag]:
    """Every tag of a customer at `now`, the one that adds most to the score first."""
    settings = settings or Settings()
    tags = [tag for rule in RULE_FUNCTIONS for tag in rule(facts, now, settings)]
    if len(tags) > 1:
        tags.sort(key=lambda tag: (-tag.weight * recency(tag, now), tag.code, tag.reason))
    return tags


# --- the score --------------------------------------------------------------------------------


def recency(
    tag: Tag, now: datetime, *, half_life_days: float = HALF_LIFE_DAYS, floor: float = RECENCY_FLOOR
) -> float:
    """1 for a standing condition; for an event, 1 when new, halving every `half_life_days`
    after `since`, never below `floor`."""
    if tag.code in STANDING:
        return 1.0
    age_days = max((now - tag.since).total_seconds() / 86_400, 0.0)
    return max(floor, math.pow(0.5, age_days / half_life_days))


def score(
    tags: Iterable[Tag],
    now: datetime,
    *,
    half_life_days: float = HALF_LIFE_DAYS,
    floor: float = RECENCY_FLOOR,
) -> float:
    """The weighted sum of the tags, each weight times its recency. Several tags of one rule
    count with diminishing returns, the strongest fully, the next half, the one after a quarter
    and so on, so a fleet with many expiring warranties does not bury every other customer."""
    tags = list(tags)
    if len(tags) == 1:  # most customers on the list
        return tags[0].weight * recency(tags[0], now, half_life_days=half_life_days, floor=floor)
    by_code: dict[str, list[float]] = {}
    for tag in tags:
        value = tag.weight * recency(tag, now, half_life_days=half_life_days, floor=floor)
        by_code.setdefault(tag.code, []).append(value)
    total = 0.0
    for values in by_code.values():
        share = 1.0
        for value in sorted(values, reverse=True):
            total += value * share
            share /= 2
    return total
