"""The complaint rules, pure: the transitions table, SLA due times on a dealer's calendar,
moves, escalation decisions and the ticket metrics (prognos.desk.tickets)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from prognos.desk.calendar import BusinessCalendar
from prognos.desk.tickets import (
    CATEGORIES,
    LEVELS,
    STATES,
    TRANSITIONS,
    IllegalTransitionError,
    State,
    Ticket,
    category_named,
    check_move,
    clocks,
    dms_category,
    due_times,
    escalated,
    escalations,
    first_contact_resolved,
    metrics,
    moved,
    route,
)
from prognos.errors import ConfigError

H = timedelta(hours=1)
# Monday to Friday 08:00-18:00 UTC; Tuesday 2026-01-06 is a holiday
CALENDAR = BusinessCalendar(holidays=frozenset({date(2026, 1, 6)}))
SAFETY = CATEGORIES["safety"]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


MONDAY_9 = datetime(2026, 1, 5, 9, tzinfo=UTC)


def ticket(opened_at: datetime = MONDAY_9, category: str = "safety", **changes: object) -> Ticket:
    response_due, resolution_due = due_times(opened_at, CATEGORIES[category], CALENDAR)
    base = Ticket(
        complaint_id="CP-1",
        source="desk",
        customer_id="C1",
        vin=None,
        dealer_id="D01",
        team=CATEGORIES[category].team,
        category=category,
        summary="",
        state="new",
        level="dealer",
        opened_at=opened_at,
        responded_at=None,
        resolved_at=None,
        closed_at=None,
        response_due_at=response_due,
        resolution_due_at=resolution_due,
        response_escalated_at=None,
        resolution_escalated_at=None,
        contacts=0,
        reopened=0,
        version=1,
        updated_at=opened_at,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def move(t: Ticket, state: State, now: datetime) -> Ticket:
    return moved(t, state, now=now, category=CATEGORIES[t.category], calendar=CALENDAR)


# --- transitions ------------------------------------------------------------------------------


def test_the_transitions_table() -> None:
    assert set(TRANSITIONS) == set(STATES)
    for state, targets in TRANSITIONS.items():
        assert targets <= set(STATES)
        assert state not in targets, f"{state} may not move to itself"
    assert TRANSITIONS["closed"] == {"reopened"}
    assert TRANSITIONS["resolved"] == {"closed", "reopened"}
    open_states = set(STATES) - {"resolved", "closed"}
    assert all("resolved" in TRANSITIONS[state] for state in open_states), "every open ticket can be resolved"
    assert all("closed" not in TRANSITIONS[state] for state in open_states), "only a resolved ticket closes"
    reachable, frontier = {"new"}, ["new"]
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert reachable == set(STATES)


@pytest.mark.parametrize(
    ("state", "target"),
    [
        ("new", "closed"),
        ("new", "reopened"),
        ("in_progress", "acknowledged"),
        ("closed", "resolved"),
        ("resolved", "in_progress"),
    ],
)
def test_an_illegal_move_is_a_config_error_naming_the_allowed_ones(state: State, target: State) -> None:
    with pytest.raises(IllegalTransitionError, match=f"cannot move from {state} to {target}") as caught:
        check_move(ticket(state=state), target)
    assert isinstance(caught.value, ConfigError)
    assert "can move to" in str(caught.value)


# --- SLA due times ----------------------------------------------------------------------------


def test_due_times_over_a_weekend() -> None:
    # Friday 2026-01-09 17:00: safety is 2 h to the first answer and 16 h to resolution
    response, resolution = due_times(utc(2026, 1, 9, 17), SAFETY, CALENDAR)
    assert response == utc(2026, 1, 12, 9)  # 1 h on Friday, 1 h on Monday
    assert resolution == utc(2026, 1, 13, 13)  # 1 + 10 on Monday + 5 on Tuesday


def test_due_times_over_a_holiday() -> None:
    # Monday 2026-01-05 17:00, Tuesday a holiday
    response, resolution = due_times(utc(2026, 1, 5, 17), SAFETY, CALENDAR)
    assert response == utc(2026, 1, 7, 9)
    assert resolution == utc(2026, 1, 8, 13)  # 1 on Monday, 10 on Wednesday, 5 on Thursday


def test_every_category_has_targets_and_a_team() -> None:
    for category in CATEGORIES.values():
        assert timedelta(0) < category.first_response < category.resolution
        assert category.team
    assert SAFETY.first_response == 2 * H and SAFETY.resolution == 16 * H


def test_categories_by_name_and_from_dms_text() -> None:
    assert category_named("Waiting time").name == "waiting_time"
    assert category_named("repair-quality").name == "quality"
    with pytest.raises(ConfigError, match="unknown category 'fun'"):
        category_named("fun")
    assert dms_category("parts delay").name == "waiting_time"
    assert dms_category("something odd").name == "other"


def test_routing() -> None:
    assert route(CATEGORIES["billing"], home_dealer="D01", named_dealer=None) == ("D01", "accounts")
    assert route(CATEGORIES["billing"], home_dealer="D01", named_dealer="D02") == ("D02", "accounts")
    assert route(SAFETY, home_dealer="D01", named_dealer=None) == ("D01", "brand-safety")
    with pytest.raises(ConfigError, match="name the dealer"):
        route(SAFETY, home_dealer=None, named_dealer=None)


# --- moves ------------------------------------------------------------------------------------


def test_the_first_move_out_of_new_is_the_response() -> None:
    t = move(ticket(), "acknowledged", utc(2026, 1, 5, 10))
    assert (t.state, t.responded_at, t.contacts) == ("acknowledged", utc(2026, 1, 5, 10), 1)
    t = move(t, "in_progress", utc(2026, 1, 5, 11))
    assert (t.responded_at, t.contacts) == (utc(2026, 1, 5, 10), 1)  # not a contact
    t = move(t, "resolved", utc(2026, 1, 5, 12))
    assert (t.resolved_at, t.contacts) == (utc(2026, 1, 5, 12), 2)
    assert first_contact_resolved(t) is False
    t = move(t, "closed", utc(2026, 1, 7, 9))
    assert (t.closed_at, t.resolved_at) == (utc(2026, 1, 7, 9), utc(2026, 1, 5, 12))


def test_resolved_at_the_first_contact() -> None:
    t = move(ticket(), "resolved", utc(2026, 1, 5, 10))
    assert (t.responded_at, t.resolved_at, t.contacts) == (utc(2026, 1, 5, 10), utc(2026, 1, 5, 10), 1)
    assert first_contact_resolved(t) is True


def test_reopening_restarts_the_resolution_clock() -> None:
    t = move(ticket(), "resolved", utc(2026, 1, 5, 10))
    t = replace(t, level="region", resolution_escalated_at=utc(2026, 1, 5, 9))
    t = move(t, "closed", utc(2026, 1, 5, 11))
    t = move(t, "reopened", utc(2026, 1, 9, 17))  # Friday 17:00
    assert (t.resolved_at, t.closed_at, t.reopened, t.contacts) == (None, None, 1, 2)
    assert t.resolution_due_at == utc(2026, 1, 13, 13)  # 16 business hours from the reopening
    assert t.resolution_escalated_at is None
    assert t.responded_at == utc(2026, 1, 5, 10) and t.level == "region"  # kept
    t = move(t, "resolved", utc(2026, 1, 12, 9))
    assert first_contact_resolved(t) is False  # reopened once


# --- escalation -------------------------------------------------------------------------------


def test_no_escalation_before_a_clock_runs_out() -> None:
    t = ticket()  # safety opened Monday 09:00: answer due 11:00
    assert escalations(t, utc(2026, 1, 5, 11)) == []  # due at 11:00 is not overdue at 11:00


def test_a_run_out_response_clock_raises_one_level() -> None:
    t = ticket()
    [step] = escalations(t, utc(2026, 1, 5, 12))
    assert (step.clock, step.level_before, step.level_after) == ("response", "dealer", "region")
    assert step.due_at == utc(2026, 1, 5, 11)
    after = escalated(t, step, utc(2026, 1, 5, 12))
    assert after.level == "region" and after.response_escalated_at == utc(2026, 1, 5, 12)
    assert escalations(after, utc(2026, 1, 5, 12)) == [], "the same clock escalates once"
    assert escalations(after, utc(2026, 1, 5, 15)) == [], "and later too, while nothing else ran out"


def test_two_run_out_clocks_raise_two_levels_and_brand_is_the_top() -> None:
    t = ticket()  # resolution due Wednesday 2026-01-07 15:00 (9 h Monday, the holiday skipped)
    now = utc(2026, 1, 8, 9)
    steps = escalations(t, now)
    assert [(s.clock, s.level_before, s.level_after) for s in steps] == [
        ("response", "dealer", "region"),
        ("resolution", "region", "brand"),
    ]
    at_brand = escalations(replace(t, level="brand"), now)
    assert [s.level_after for s in at_brand] == ["brand", "brand"]
    assert LEVELS[-1] == "brand"


def test_a_stopped_clock_does_not_escalate() -> None:
    answered = move(ticket(), "acknowledged", utc(2026, 1, 5, 10))
    assert [s.clock for s in escalations(answered, utc(2026, 1, 5, 12))] == []
    resolved = move(answered, "resolved", utc(2026, 1, 5, 11))
    assert escalations(resolved, utc(2026, 2, 1, 9)) == []


def test_a_reopened_ticket_escalates_on_its_new_resolution_clock() -> None:
    t = move(ticket(), "acknowledged", utc(2026, 1, 5, 10))
    [first] = escalations(t, utc(2026, 1, 8, 9))
    t = escalated(t, first, utc(2026, 1, 8, 9))
    t = move(move(t, "resolved", utc(2026, 1, 8, 10)), "reopened", utc(2026, 1, 8, 11))
    assert escalations(t, utc(2026, 1, 8, 12)) == []
    assert t.resolution_due_at == utc(2026, 1, 9, 17)  # 16 h from Thursday 11:00
    [again] = escalations(t, utc(2026, 1, 9, 18))
    assert (again.clock, again.level_before, again.level_after) == ("resolution", "region", "brand")


# --- metrics ----------------------------------------------------------------------------------


def test_metrics_per_dealer_and_month() -> None:
    fcr = move(ticket(complaint_id="A"), "resolved", utc(2026, 1, 5, 10))  # 1 h, met both
    slow = move(
        move(ticket(complaint_id="B"), "acknowledged", utc(2026, 1, 5, 12)), "resolved", utc(2026, 1, 9, 9)
    )
    waiting = ticket(complaint_id="C", opened_at=utc(2026, 1, 30, 9))  # still new
    dms = ticket(
        complaint_id="D",
        source="dms",
        state="closed",
        resolved_at=utc(2026, 1, 5, 12),
        closed_at=utc(2026, 1, 5, 12),
    )
    rows = metrics([fcr, slow, waiting, dms], {"D01": CALENDAR}, period="month", now=utc(2026, 1, 31, 12))
    [row] = rows
    assert row["dealer_id"] == "D01" and row["period"] == "2026-01"
    assert (row["opened"], row["resolved"]) == (4, 3)
    assert row["fcr_rate"] == 0.5  # A yes, B no; D has no contacts recorded
    assert row["handling_h_median"] == 3.0  # A 1 h, D 3 h, B 30 h
    # response: A met, B missed (12:00 > 11:00), C's ran out (due Friday 11:00); D unknown
    assert (row["response_clocks"], row["response_sla_rate"]) == (3, pytest.approx(1 / 3))
    # resolution: A met, B missed, D met; C not due yet (16 h from Friday 09:00)
    assert (row["resolution_clocks"], row["resolution_sla_rate"]) == (3, pytest.approx(2 / 3))


def test_metrics_by_week_and_empty_rates() -> None:
    t = ticket()
    [row] = metrics([t], {}, period="week", now=utc(2026, 1, 5, 10))
    assert row["period"] == "2026-W02"
    assert math.isnan(float(str(row["fcr_rate"]))) and math.isnan(float(str(row["response_sla_rate"])))
    assert row["response_clocks"] == 0


def test_clocks_of_a_ticket_closed_in_its_dms() -> None:
    response, resolution = clocks(ticket(source="dms", state="closed", resolved_at=utc(2026, 1, 5, 12)))
    assert not response.known
    assert resolution.met() is True
