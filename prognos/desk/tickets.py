"""Complaint tickets: states and transitions, categories with their SLA targets and routing, the
two SLA clocks, escalation decisions and the ticket metrics (docs/desk.md, "Complaints").

Pure: no database. prognos.desk.complaints stores tickets and runs these rules in transactions.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from prognos.desk.calendar import BusinessCalendar
from prognos.errors import ConfigError

State = Literal[
    "new", "acknowledged", "in_progress", "waiting_for_customer", "resolved", "closed", "reopened"
]
STATES: tuple[State, ...] = (
    "new",
    "acknowledged",
    "in_progress",
    "waiting_for_customer",
    "resolved",
    "closed",
    "reopened",
)
# The moves a ticket may make. The first answer to the customer may be a question, so `new` and
# `reopened` may also go straight to `waiting_for_customer`. Only a resolved ticket closes; a
# resolved or closed one can only be reopened.
TRANSITIONS: dict[State, frozenset[State]] = {
    "new": frozenset({"acknowledged", "in_progress", "waiting_for_customer", "resolved"}),
    "acknowledged": frozenset({"in_progress", "waiting_for_customer", "resolved"}),
    "in_progress": frozenset({"waiting_for_customer", "resolved"}),
    "waiting_for_customer": frozenset({"in_progress", "resolved"}),
    "resolved": frozenset({"closed", "reopened"}),
    "closed": frozenset({"reopened"}),
    "reopened": frozenset({"acknowledged", "in_progress", "waiting_for_customer", "resolved"}),
}
DONE_STATES: frozenset[State] = frozenset({"resolved", "closed"})  # the resolution clock is stopped
# Moves that are a contact with the customer: the first answer (any move out of `new`), asking
# them (waiting_for_customer), telling them the outcome (resolved) and their coming back
# (reopened). The first answer and the outcome in one move are one contact.
CONTACT_STATES: frozenset[State] = frozenset({"waiting_for_customer", "resolved", "reopened"})

Level = Literal["dealer", "region", "brand"]
LEVELS: tuple[Level, ...] = ("dealer", "region", "brand")
Source = Literal["dms", "desk"]
ClockName = Literal["response", "resolution"]
CLOCKS: tuple[ClockName, ...] = ("response", "resolution")


class UnknownStateError(ConfigError):
    """A state that is not one of STATES."""


class IllegalTransitionError(ConfigError):
    """A move the TRANSITIONS table does not allow."""


# --- categories: SLA targets and routing ------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Category:
    name: str
    first_response: timedelta  # business time from opening to the first answer
    resolution: timedelta  # business time from opening (or reopening) to resolved
    team: str  # the team that works it
    brand: bool = False  # worked by the brand's team rather than the dealer's
    meaning: str = ""


def _category(
    name: str, response_h: float, resolution_h: float, team: str, meaning: str, *, brand: bool = False
) -> Category:
    return Category(
        name=name,
        first_response=timedelta(hours=response_h),
        resolution=timedelta(hours=resolution_h),
        team=team,
        brand=brand,
        meaning=meaning,
    )


CATEGORIES: dict[str, Category] = {
    c.name: c
    for c in (
        _category(
            "safety",
            2,
            16,
            "brand-safety",
            "a risk to the vehicle's safety (brakes, battery, ...)",
            brand=True,
        ),
        _category("quality", 4, 40, "workshop", "the quality of a repair or of the vehicle"),
        _category("billing", 8, 40, "accounts", "an invoice, a price, a refund"),
        _category("waiting_time", 4, 24, "service-advisors", "waiting for an appointment, a repair or parts"),
        _category("communication", 8, 24, "customer-care", "not called back, not informed, rudeness"),
        _category("other", 8, 40, "customer-care", "anything else"),
    )
}
# What DMS exports call them (docs/dms.md: free text such as "waiting time", "repair quality").
CATEGORY_ALIASES: dict[str, str] = {
    "repair_quality": "quality",
    "vehicle_quality": "quality",
    "workmanship": "quality",
    "invoice": "billing",
    "price": "billing",
    "waiting": "waiting_time",
    "parts_delay": "waiting_time",
    "delay": "waiting_time",
    "appointment": "waiting_time",
    "staff": "communication",
}


def _key(text: str) -> str:
    return "_".join(text.strip().lower().replace("-", " ").split())


def category_named(name: str) -> Category:
    """The category `name` names ('Waiting time' and 'waiting_time' alike); ConfigError if none."""
    key = _key(name)
    key = CATEGORY_ALIASES.get(key, key)
    try:
        return CATEGORIES[key]
    except KeyError:
        raise ConfigError(f"unknown category {name!r}; the categories are {', '.join(CATEGORIES)}") from None


def dms_category(text: str) -> Category:
    """The category of a DMS export's free text: a known name or alias, else `other`."""
    key = _key(text)
    return CATEGORIES.get(CATEGORY_ALIASES.get(key, key), CATEGORIES["other"])


def route(category: Category, *, home_dealer: str | None, named_dealer: str | None) -> tuple[str, str]:
    """(dealer, team) responsible for a complaint: the dealer named, else the customer's home
    center's dealer; the category's team (a safety complaint goes to the brand's safety team,
    still on the dealer's ticket and calendar)."""
    dealer = named_dealer or home_dealer
    if not dealer:
        raise ConfigError("the customer has no home service center: name the dealer (--dealer)")
    return dealer, category.team


# --- tickets ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Ticket:
    complaint_id: str
    source: Source
    customer_id: str | None
    vin: str | None
    dealer_id: str
    team: str
    category: str
    summary: str
    state: State
    level: Level
    opened_at: datetime
    responded_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    response_due_at: datetime
    resolution_due_at: datetime
    response_escalated_at: datetime | None
    resolution_escalated_at: datetime | None
    contacts: int
    reopened: int
    version: int
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        return self.state not in DONE_STATES

    def fields(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def new_ticket(
    *,
    complaint_id: str,
    source: Source,
    customer_id: str | None,
    vin: str | None,
    dealer_id: str,
    category: Category,
    summary: str,
    opened_at: datetime,
    calendar: BusinessCalendar,
    now: datetime,
    closed_at: datetime | None = None,
) -> Ticket:
    """A ticket as it is opened (or imported closed, when `closed_at` is given): its team from
    the category, its SLA clocks due on the dealer's calendar."""
    response_due, resolution_due = due_times(opened_at, category, calendar)
    return Ticket(
        complaint_id=complaint_id,
        source=source,
        customer_id=customer_id,
        vin=vin,
        dealer_id=dealer_id,
        team=category.team,
        category=category.name,
        summary=summary,
        state="new" if closed_at is None else "closed",
        level="dealer",
        opened_at=opened_at,
        responded_at=None,
        resolved_at=closed_at,
        closed_at=closed_at,
        response_due_at=response_due,
        resolution_due_at=resolution_due,
        response_escalated_at=None,
        resolution_escalated_at=None,
        contacts=0,
        reopened=0,
        version=1,
        updated_at=now,
    )


TICKET_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Ticket))


def state_named(name: str) -> State:
    for state in STATES:
        if name == state:
            return state
    raise UnknownStateError(f"unknown state {name!r}; the states are {', '.join(STATES)}")


def level_named(name: str) -> Level:
    for level in LEVELS:
        if name == level:
            return level
    raise ConfigError(f"unknown escalation level {name!r}")


def next_level(level: Level) -> Level:
    return LEVELS[min(LEVELS.index(level) + 1, len(LEVELS) - 1)]


def due_times(
    opened_at: datetime, category: Category, calendar: BusinessCalendar
) -> tuple[datetime, datetime]:
    """(response due, resolution due) of a ticket opened at `opened_at`."""
    return (
        calendar.add_business_time(opened_at, category.first_response),
        calendar.add_business_time(opened_at, category.resolution),
    )


def check_move(ticket: Ticket, to_state: State) -> None:
    if to_state not in TRANSITIONS[ticket.state]:
        allowed = ", ".join(s for s in STATES if s in TRANSITIONS[ticket.state])
        raise IllegalTransitionError(
            f"{ticket.complaint_id} cannot move from {ticket.state} to {to_state}; from {ticket.state} it "
            f"can move to {allowed}"
        )


def moved(
    ticket: Ticket, to_state: State, *, now: datetime, category: Category, calendar: BusinessCalendar
) -> Ticket:
    """The ticket after a move to `to_state` at `now` (IllegalTransitionError if not allowed).

    The first move out of `new` is the first response (responded_at). Resolving sets resolved_at,
    closing closed_at. Reopening clears both and restarts the resolution clock: due the
    category's resolution time from the reopening, not yet escalated; the response clock and the
    level stay as they were.
    """
    check_move(ticket, to_state)
    changes: dict[str, object] = {"state": to_state, "updated_at": now}
    contact = to_state in CONTACT_STATES
    if ticket.responded_at is None and ticket.state == "new":
        changes["responded_at"] = now
        contact = True
    if contact:
        changes["contacts"] = ticket.contacts + 1
    if to_state == "resolved":
        changes["resolved_at"] = now
    elif to_state == "closed":
        changes["closed_at"] = now
    elif to_state == "reopened":
        changes.update(
            resolved_at=None,
            closed_at=None,
            reopened=ticket.reopened + 1,
            resolution_due_at=calendar.add_business_time(now, category.resolution),
            resolution_escalated_at=None,
        )
    return replace(ticket, **changes)  # type: ignore[arg-type]


def changed_fields(before: Ticket, after: Ticket) -> tuple[dict[str, object], dict[str, object]]:
    """(before, after): the values of the fields that differ, version and updated_at left out."""
    old: dict[str, object] = {}
    new: dict[str, object] = {}
    for name in TICKET_FIELDS:
        if name in ("version", "updated_at"):
            continue
        a, b = getattr(before, name), getattr(after, name)
        if a != b:
            old[name], new[name] = a, b
    return old, new


# --- clocks and escalation --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Clock:
    name: ClockName
    due_at: datetime
    stopped_at: datetime | None  # responded / resolved; None while it runs
    escalated_at: datetime | None
    known: bool = True  # False: a ticket closed in its DMS, whose first answer was not recorded

    def running(self) -> bool:
        return self.stopped_at is None

    def run_out(self, now: datetime) -> bool:
        """Still running and past its due time."""
        return self.stopped_at is None and now > self.due_at

    def met(self) -> bool | None:
        """Stopped by its due time (True), stopped late (False), still running (None)."""
        if self.stopped_at is None:
            return None
        return self.stopped_at <= self.due_at


def clocks(ticket: Ticket) -> tuple[Clock, Clock]:
    """The response and the resolution clock. The response clock runs until the first move out
    of `new`; a ticket that left `new` without one (closed in its DMS) has a response clock that
    is stopped and not known. The resolution clock runs until resolved (again)."""
    known = ticket.responded_at is not None or ticket.state == "new"
    response = Clock(
        name="response",
        due_at=ticket.response_due_at,
        stopped_at=ticket.responded_at if known else ticket.opened_at,
        escalated_at=ticket.response_escalated_at,
        known=known,
    )
    resolution = Clock(
        name="resolution",
        due_at=ticket.resolution_due_at,
        stopped_at=ticket.resolved_at if ticket.state in DONE_STATES else None,
        escalated_at=ticket.resolution_escalated_at,
    )
    return response, resolution


@dataclass(frozen=True, kw_only=True)
class Escalation:
    complaint_id: str
    clock: ClockName
    due_at: datetime
    level_before: Level
    level_after: Level


def escalations(ticket: Ticket, now: datetime) -> list[Escalation]:
    """What the escalation job does to `ticket` at `now`: for each clock that is still running,
    is past its due time and has not been escalated yet, one step up (dealer -> region -> brand;
    at brand it stays at brand, the escalation still recorded). Response before resolution, so
    a ticket whose two clocks both ran out goes up two steps."""
    if not ticket.is_open:
        return []
    steps = []
    level = ticket.level
    for clock in clocks(ticket):
        if clock.run_out(now) and clock.escalated_at is None:
            steps.append(
                Escalation(
                    complaint_id=ticket.complaint_id,
                    clock=clock.name,
                    due_at=clock.due_at,
                    level_before=level,
                    level_after=next_level(level),
                )
            )
            level = next_level(level)
    return steps


def escalated(ticket: Ticket, step: Escalation, now: datetime) -> Ticket:
    """The ticket after one escalation step."""
    marker = "response_escalated_at" if step.clock == "response" else "resolution_escalated_at"
    return replace(ticket, level=step.level_after, updated_at=now, **{marker: now})  # type: ignore[arg-type]


# --- metrics ----------------------------------------------------------------------------------

Period = Literal["week", "month"]
PERIODS: tuple[Period, ...] = ("week", "month")
METRIC_COLUMNS: dict[str, str] = {
    "dealer_id": "the dealer",
    "period": "the UTC month (2026-01) or ISO week (2026-W02)",
    "opened": "tickets opened in the period",
    "resolved": "tickets resolved in the period (closed in the DMS counts as resolved)",
    "fcr_rate": "first-contact resolution: share of the tickets resolved in the period, among those "
    "with contacts recorded, resolved with at most one contact and never reopened",
    "handling_h_median": "median business hours from opening to resolved, of the tickets resolved in "
    "the period",
    "response_clocks": "response clocks decided in the period (due in it, and met or run out)",
    "response_sla_rate": "share of those met: the first answer by its due time",
    "resolution_clocks": "resolution clocks decided in the period",
    "resolution_sla_rate": "share of those met: resolved by its due time",
}


def period_label(moment: datetime, period: Period) -> str:
    moment = moment.astimezone(UTC)
    if period == "month":
        return f"{moment.year:04d}-{moment.month:02d}"
    year, week, _ = moment.isocalendar()
    return f"{year:04d}-W{week:02d}"


def period_named(name: str) -> Period:
    for period in PERIODS:
        if name == period:
            return period
    raise ConfigError(f"unknown period {name!r}; use one of {', '.join(PERIODS)}")


@dataclass
class _Tally:
    opened: int = 0
    resolved: int = 0
    fcr_known: int = 0
    fcr: int = 0
    handling_h: list[float] = field(default_factory=list)
    response_clocks: int = 0
    response_met: int = 0
    resolution_clocks: int = 0
    resolution_met: int = 0


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else math.nan


def first_contact_resolved(ticket: Ticket) -> bool | None:
    """Resolved with at most one contact and never reopened; None when no contact is recorded
    (a ticket closed in its DMS) or it is not resolved."""
    if ticket.resolved_at is None or ticket.contacts == 0:
        return None
    return ticket.contacts <= 1 and ticket.reopened == 0


def metrics(
    tickets: Iterable[Ticket],
    calendars: Mapping[str, BusinessCalendar],
    *,
    period: Period,
    now: datetime,
) -> list[dict[str, object]]:
    """One row per dealer and period with the METRIC_COLUMNS, sorted by dealer and period.

    A clock is decided at its due time (run out) or when it stopped before it (met); it counts
    in the period its due time falls in, so a ticket left unanswered counts against the dealer
    without waiting for someone to answer it.
    """
    tallies: dict[tuple[str, str], _Tally] = {}

    def tally(dealer: str, moment: datetime) -> _Tally:
        return tallies.setdefault((dealer, period_label(moment, period)), _Tally())

    for ticket in tickets:
        calendar = calendars.get(ticket.dealer_id) or BusinessCalendar()
        tally(ticket.dealer_id, ticket.opened_at).opened += 1
        if ticket.resolved_at is not None:
            t = tally(ticket.dealer_id, ticket.resolved_at)
            t.resolved += 1
            fcr = first_contact_resolved(ticket)
            if fcr is not None:
                t.fcr_known += 1
                t.fcr += fcr
            handling = calendar.business_time_between(ticket.opened_at, ticket.resolved_at)
            t.handling_h.append(handling / timedelta(hours=1))
        for clock in clocks(ticket):
            if not clock.known:
                continue
            met = clock.met()
            if met is None and now <= clock.due_at:
                continue  # still running, not due yet: undecided
            decided = bool(met)
            t = tally(ticket.dealer_id, clock.due_at)
            if clock.name == "response":
                t.response_clocks += 1
                t.response_met += decided
            else:
                t.resolution_clocks += 1
                t.resolution_met += decided
    rows = []
    for (dealer, label), t in sorted(tallies.items()):
        hours = t.handling_h
        rows.append(
            {
                "dealer_id": dealer,
                "period": label,
                "opened": t.opened,
                "resolved": t.resolved,
                "fcr_rate": _rate(t.fcr, t.fcr_known),
                "handling_h_median": statistics.median(hours) if hours else math.nan,
                "response_clocks": t.response_clocks,
                "response_sla_rate": _rate(t.response_met, t.response_clocks),
                "resolution_clocks": t.resolution_clocks,
                "resolution_sla_rate": _rate(t.resolution_met, t.resolution_clocks),
            }
        )
    return rows


def hours_text(delta: timedelta) -> str:
    return f"{delta / timedelta(hours=1):.1f} h"


def clock_text(clock: Clock, now: datetime, calendar: BusinessCalendar) -> str:
    """'due ... : 1.5 business h left', 'overdue by 3.0 business h', 'met ...', 'missed ...'."""
    due = f"due {clock.due_at:%Y-%m-%d %H:%M} UTC"
    if not clock.known:
        return f"{due}: no first answer recorded (closed in the DMS)"
    if clock.stopped_at is not None:
        margin = calendar.business_time_between(clock.stopped_at, clock.due_at)
        if margin >= timedelta(0):
            return (
                f"{due}: met at {clock.stopped_at:%Y-%m-%d %H:%M}, {hours_text(margin)} business time early"
            )
        late = hours_text(-margin)
        return f"{due}: missed, stopped at {clock.stopped_at:%Y-%m-%d %H:%M}, {late} business time late"
    left = calendar.business_time_between(now, clock.due_at)
    escalated = f" (escalated {clock.escalated_at:%Y-%m-%d %H:%M})" if clock.escalated_at else ""
    if now > clock.due_at:
        return f"{due}: overdue by {hours_text(-left)} business time{escalated}"
    return f"{due}: {hours_text(left)} business time left"
