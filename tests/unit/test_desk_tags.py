"""The risk tag rules of the service desk, one by one: each fires inside its window, not past
its boundary, with a reason that names the thing; and the score's order."""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from prognos.commands import utc_time
from prognos.desk.entitlements import Entitlement
from prognos.desk.tags import (
    RULES,
    AlertFacts,
    AppointmentFacts,
    ComplaintFacts,
    CustomerFacts,
    DealerFacts,
    Settings,
    Tag,
    VehicleFacts,
    WorkOrderFacts,
    comebacks,
    complaints_overdue,
    critical_alerts,
    customer_tags,
    expiring,
    home_dealer,
    missed_appointments,
    not_delivered,
    recency,
    score,
    sla_state,
)
from prognos.errors import ConfigError

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
VIN = "WVWZZZ1KZ6W000123"
OTHER_VIN = "WVWZZZ1KZ6W000456"
SETTINGS = Settings()
TINY = timedelta(microseconds=1)


def facts(**kwargs: object) -> CustomerFacts:
    return CustomerFacts(customer_id="C000001", **kwargs)  # type: ignore[arg-type]


def vehicle(**kwargs: object) -> VehicleFacts:
    values: dict[str, object] = {
        "vin": VIN,
        "model": "EV-1",
        "delivered_at": datetime(2024, 1, 5, tzinfo=UTC),
    }
    values.update(kwargs)
    return VehicleFacts(**values)  # type: ignore[arg-type]


def appointment(status: str, scheduled_at: datetime, updated_at: datetime | None = None) -> AppointmentFacts:
    return AppointmentFacts(
        appointment_id="A-7",
        vin=VIN,
        center_id="SC-02",
        scheduled_at=scheduled_at,
        status=status,
        updated_at=updated_at or scheduled_at,
        purpose="brake inspection",
    )


def entitlement(**kwargs: object) -> Entitlement:
    values: dict[str, object] = {
        "entitlement_id": "E-12",
        "customer_id": "C000001",
        "vin": VIN,
        "product": "maintenance",
        "units": 4,
        "used": 2,
        "valid_from": datetime(2024, 12, 20, tzinfo=UTC),
        "valid_until": datetime(2026, 12, 20, tzinfo=UTC),
        "center_id": "SC-02",
        "granted_by": "D02",
        "status": "active",
        "last_seq": 3,
    }
    values.update(kwargs)
    return Entitlement(**values)  # type: ignore[arg-type]


def alert(**kwargs: object) -> AlertFacts:
    values: dict[str, object] = {
        "alert_id": "AL-1",
        "vin": VIN,
        "code": "brake.pad_wear",
        "severity": "critical",
        "raised_at": datetime(2026, 11, 30, 14, 0, tzinfo=UTC),
        "summary": "front pads at 2 mm",
    }
    values.update(kwargs)
    return AlertFacts(**values)  # type: ignore[arg-type]


def complaint(**kwargs: object) -> ComplaintFacts:
    values: dict[str, object] = {
        "complaint_id": "CP-17",
        "category": "billing",
        "state": "open",
        "dealer_id": "D02",
        "opened_at": datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
        "response_due_at": datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
        "resolution_due_at": datetime(2026, 11, 30, 14, 0, tzinfo=UTC),
        "responded_at": datetime(2026, 11, 20, 16, 0, tzinfo=UTC),
    }
    values.update(kwargs)
    return ComplaintFacts(**values)  # type: ignore[arg-type]


def order(order_id: str, opened_at: datetime, **kwargs: object) -> WorkOrderFacts:
    values: dict[str, object] = {"dealer_id": "D02", "order_id": order_id, "vin": VIN, "opened_at": opened_at}
    values.update(kwargs)
    return WorkOrderFacts(**values)  # type: ignore[arg-type]


# --- paid, not delivered ----------------------------------------------------------------------


def test_paid_and_not_delivered_fires_with_the_vehicle_and_the_days() -> None:
    paid = datetime(2026, 9, 14, 11, 0, tzinfo=UTC)
    [tag] = not_delivered(facts(vehicles=[vehicle(paid_at=paid, delivered_at=None)]), NOW, SETTINGS)
    assert tag.code == "not_delivered"
    assert tag.reason == f"paid 2026-09-14 for {VIN} (EV-1), not delivered after 84 days"
    assert tag.since == paid
    assert tag.label == "paid, not delivered"


def test_paid_and_not_delivered_waits_for_the_grace_days() -> None:
    grace = timedelta(days=SETTINGS.delivery_grace_days)
    at_boundary = vehicle(paid_at=NOW - grace, delivered_at=None)
    assert not_delivered(facts(vehicles=[at_boundary]), NOW, SETTINGS) == []
    past = vehicle(paid_at=NOW - grace - TINY, delivered_at=None)
    assert len(not_delivered(facts(vehicles=[past]), NOW, SETTINGS)) == 1


def test_delivered_or_unpaid_vehicles_are_not_tagged() -> None:
    long_ago = datetime(2025, 1, 1, tzinfo=UTC)
    delivered = vehicle(paid_at=long_ago, delivered_at=long_ago + timedelta(days=90))
    unpaid = vehicle(paid_at=None, delivered_at=None)
    assert not_delivered(facts(vehicles=[delivered, unpaid]), NOW, SETTINGS) == []


# --- missed or cancelled appointments ---------------------------------------------------------


def test_a_missed_appointment_fires_with_its_time_and_center() -> None:
    when = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    [tag] = missed_appointments(facts(appointments=[appointment("missed", when)]), NOW, SETTINGS)
    assert tag.code == "missed_appointment"
    assert (
        tag.reason == f"missed appointment A-7 at SC-02 on 2026-11-20 09:00 UTC (brake inspection) for {VIN}"
    )
    assert tag.since == when


def test_a_cancelled_appointment_counts_from_its_cancellation() -> None:
    cancelled = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    booked_for = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
    [tag] = missed_appointments(
        facts(appointments=[appointment("cancelled", booked_for, cancelled)]), NOW, SETTINGS
    )
    assert tag.since == cancelled
    assert tag.reason == (
        f"appointment A-7 at SC-02 for 2026-12-10 09:00 UTC (brake inspection) for {VIN} "
        "cancelled on 2026-11-25"
    )


def test_missed_appointments_older_than_the_lookback_do_not_fire() -> None:
    lookback = timedelta(days=SETTINGS.missed_lookback_days)
    at_boundary = appointment("missed", NOW - lookback)
    assert len(missed_appointments(facts(appointments=[at_boundary]), NOW, SETTINGS)) == 1
    older = appointment("missed", NOW - lookback - TINY)
    assert missed_appointments(facts(appointments=[older]), NOW, SETTINGS) == []
    shorter = Settings(missed_lookback_days=10)
    assert (
        missed_appointments(
            facts(appointments=[appointment("missed", NOW - timedelta(days=11))]), NOW, shorter
        )
        == []
    )


def test_booked_and_done_appointments_do_not_fire() -> None:
    when = NOW - timedelta(days=3)
    appointments = [appointment("booked", when), appointment("done", when)]
    assert missed_appointments(facts(appointments=appointments), NOW, SETTINGS) == []


# --- warranty or maintenance package expiring -------------------------------------------------


def test_a_vehicle_warranty_ending_soon_fires_with_the_days_left() -> None:
    ends = datetime(2026, 12, 20, tzinfo=UTC)
    [tag] = expiring(facts(vehicles=[vehicle(warranty_until=ends)]), NOW, SETTINGS)
    assert tag.code == "warranty_expiring"
    assert tag.reason == f"warranty of VIN {VIN} ends 2026-12-20, in 13 days"
    assert tag.since == ends - timedelta(days=60)


def test_the_expiry_window_includes_its_last_day_and_nothing_after() -> None:
    window = timedelta(days=SETTINGS.expiry_days)
    assert len(expiring(facts(vehicles=[vehicle(warranty_until=NOW + window)]), NOW, SETTINGS)) == 1
    assert expiring(facts(vehicles=[vehicle(warranty_until=NOW + window + TINY)]), NOW, SETTINGS) == []
    assert expiring(facts(vehicles=[vehicle(warranty_until=NOW)]), NOW, SETTINGS) == []  # ended
    assert (
        expiring(
            facts(vehicles=[vehicle(warranty_until=NOW + timedelta(days=13))]), NOW, Settings(expiry_days=10)
        )
        == []
    )


def test_a_maintenance_package_ending_soon_says_what_is_unused() -> None:
    [tag] = expiring(facts(entitlements=[entitlement()]), NOW, SETTINGS)
    assert tag.code == "package_expiring"
    assert tag.reason == (
        f"prepaid maintenance package E-12 of VIN {VIN} ends 2026-12-20, in 13 days, 2 of 4 services unused"
    )


def test_used_up_revoked_or_distant_entitlements_do_not_fire() -> None:
    used_up = entitlement(used=4, status="used_up")
    revoked = entitlement(entitlement_id="E-13", status="revoked")
    distant = entitlement(entitlement_id="E-14", valid_until=NOW + timedelta(days=400))
    assert expiring(facts(entitlements=[used_up, revoked, distant]), NOW, SETTINGS) == []


def test_a_warranty_told_by_the_vehicle_and_an_entitlement_is_one_tag() -> None:
    ends = datetime(2026, 12, 20, tzinfo=UTC)
    warranty = entitlement(product="warranty", units=None, used=0, entitlement_id="E-W")
    tags = expiring(facts(vehicles=[vehicle(warranty_until=ends)], entitlements=[warranty]), NOW, SETTINGS)
    assert [tag.reason for tag in tags] == [f"warranty E-W of VIN {VIN} ends 2026-12-20, in 13 days"]
    extended = replace(warranty, product="extended_warranty", entitlement_id="E-X")
    both = expiring(facts(vehicles=[vehicle(warranty_until=ends)], entitlements=[extended]), NOW, SETTINGS)
    assert len(both) == 2  # an extended warranty is another cover, told apart


# --- open critical alerts ---------------------------------------------------------------------


def test_an_open_critical_alert_fires_with_its_code_and_summary() -> None:
    [tag] = critical_alerts(facts(alerts=[alert()]), NOW, SETTINGS)
    assert tag.code == "critical_alert"
    assert (
        tag.reason
        == f"critical alert brake.pad_wear on {VIN} open since 2026-11-30 14:00 UTC: front pads at 2 mm"
    )


def test_cleared_raised_later_or_lesser_alerts_do_not_fire() -> None:
    cleared = alert(cleared_at=NOW)
    later = alert(raised_at=NOW + TINY)
    warning = alert(severity="warning")
    assert critical_alerts(facts(alerts=[cleared, later, warning]), NOW, SETTINGS) == []
    assert len(critical_alerts(facts(alerts=[alert(cleared_at=NOW + TINY)]), NOW, SETTINGS)) == 1


# --- complaints past their SLA ----------------------------------------------------------------


def test_a_complaint_past_its_resolution_sla_fires() -> None:
    [tag] = complaints_overdue(facts(complaints=[complaint()]), NOW, SETTINGS)
    assert tag.code == "complaint_overdue"
    assert tag.reason == "complaint CP-17 (billing) past its resolution SLA since 2026-11-30 14:00 UTC"
    assert tag.since == datetime(2026, 11, 30, 14, 0, tzinfo=UTC)


def test_a_complaint_due_now_or_settled_does_not_fire() -> None:
    due_now = complaint(resolution_due_at=NOW)
    resolved = complaint(complaint_id="CP-18", state="resolved")
    closed = complaint(complaint_id="CP-19", state="closed")
    assert complaints_overdue(facts(complaints=[due_now, resolved, closed]), NOW, SETTINGS) == []
    assert (
        len(complaints_overdue(facts(complaints=[complaint(resolution_due_at=NOW - TINY)]), NOW, SETTINGS))
        == 1
    )


def test_an_unanswered_complaint_past_its_response_sla_fires() -> None:
    later = NOW + timedelta(days=5)
    unanswered = complaint(resolution_due_at=later, responded_at=None)
    [tag] = complaints_overdue(facts(complaints=[unanswered]), NOW, SETTINGS)
    assert tag.reason == "complaint CP-17 (billing) past its response SLA since 2026-11-21 10:00 UTC"
    answered = complaint(resolution_due_at=later)
    assert complaints_overdue(facts(complaints=[answered]), NOW, SETTINGS) == []
    assert sla_state(answered, NOW) == (
        "on time: answered 2026-11-20 16:00 UTC, resolution due 2026-12-12 09:00 UTC"
    )
    assert sla_state(unanswered, NOW) == "past its response SLA since 2026-11-21 10:00 UTC (16 days)"


# --- the home dealer --------------------------------------------------------------------------


def test_a_failed_home_dealer_fires_with_the_date_and_reason() -> None:
    failed_at = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)
    dealer = DealerFacts(
        dealer_id="D03",
        name="Garage Rhone",
        status="failed",
        status_reason="insolvency filed",
        status_at=failed_at,
    )
    [tag] = home_dealer(facts(home_dealer=dealer), NOW, SETTINGS)
    assert (tag.code, tag.since) == ("dealer_failed", failed_at)
    assert tag.reason == "home dealer D03 failed on 2026-11-02: insolvency filed"
    at_risk = replace(dealer, status="at_risk", status_reason="cash below two months of costs")
    [risk] = home_dealer(facts(home_dealer=at_risk), NOW, SETTINGS)
    assert risk.code == "dealer_at_risk"
    assert risk.reason == "home dealer D03 at risk since 2026-11-02: cash below two months of costs"


def test_an_active_or_missing_home_dealer_does_not_fire() -> None:
    active = DealerFacts(dealer_id="D01", name="Autohaus Nord", status="active")
    assert home_dealer(facts(home_dealer=active), NOW, SETTINGS) == []
    assert home_dealer(facts(), NOW, SETTINGS) == []
    undated = DealerFacts(dealer_id="D03", name="Garage Rhone", status="failed")
    [tag] = home_dealer(facts(home_dealer=undated), NOW, SETTINGS)
    assert (tag.reason, tag.since) == ("home dealer D03 failed", NOW)


# --- repeat repairs ---------------------------------------------------------------------------


def test_a_comeback_within_the_window_fires_with_the_days_and_orders() -> None:
    first = order(
        "WO-88", datetime(2026, 11, 19, 8, 0, tzinfo=UTC), closed_at=datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
    )
    first = replace(first, description="brake.pad_wear")
    again = order("WO-95", datetime(2026, 12, 2, 8, 0, tzinfo=UTC), repeat_of_order_id="WO-88")
    [tag] = comebacks(facts(work_orders=[again, first]), NOW, SETTINGS)
    assert tag.code == "comeback"
    assert (
        tag.reason
        == f"brake.pad_wear came back 12 days after order WO-88 ({VIN}, repeat order WO-95 on 2026-12-02)"
    )
    assert tag.since == again.opened_at


def test_a_comeback_after_the_window_or_the_lookback_does_not_fire() -> None:
    closed = datetime(2026, 10, 1, tzinfo=UTC)
    window = timedelta(days=SETTINGS.comeback_window_days)
    first = order("WO-1", closed - timedelta(hours=3), closed_at=closed)
    at_boundary = order("WO-2", closed + window, repeat_of_order_id="WO-1")
    assert len(comebacks(facts(work_orders=[first, at_boundary]), NOW, SETTINGS)) == 1
    late = order("WO-2", closed + window + TINY, repeat_of_order_id="WO-1")
    assert comebacks(facts(work_orders=[first, late]), NOW, SETTINGS) == []
    lookback = timedelta(days=SETTINGS.comeback_lookback_days)
    old_first = order("WO-3", NOW - lookback - timedelta(days=5))
    just_in = order("WO-4", NOW - lookback, repeat_of_order_id="WO-3")
    just_out = order("WO-4", NOW - lookback - TINY, repeat_of_order_id="WO-3")
    assert len(comebacks(facts(work_orders=[old_first, just_in]), NOW, SETTINGS)) == 1
    assert comebacks(facts(work_orders=[old_first, just_out]), NOW, SETTINGS) == []


def test_a_repeat_without_its_first_order_on_the_same_vehicle_does_not_fire() -> None:
    again = order("WO-95", NOW - timedelta(days=3), repeat_of_order_id="WO-88")
    assert comebacks(facts(work_orders=[again]), NOW, SETTINGS) == []
    elsewhere = order("WO-88", NOW - timedelta(days=10), vin=OTHER_VIN)
    assert comebacks(facts(work_orders=[again, elsewhere]), NOW, SETTINGS) == []
    other_dealer = order("WO-88", NOW - timedelta(days=10), dealer_id="D01")
    assert comebacks(facts(work_orders=[again, other_dealer]), NOW, SETTINGS) == []


# --- all rules and the score ------------------------------------------------------------------


def make_tag(code: str, since: datetime) -> Tag:
    label, weight = RULES[code]
    return Tag(code=code, label=label, reason=code, since=since, weight=weight)


def test_customer_tags_runs_every_rule_and_puts_the_heaviest_first() -> None:
    everything = facts(
        vehicles=[vehicle(paid_at=datetime(2026, 9, 14, tzinfo=UTC), delivered_at=None)],
        appointments=[appointment("missed", NOW - timedelta(days=40))],
        alerts=[alert()],
        complaints=[complaint()],
    )
    tags = customer_tags(everything, NOW)
    assert [tag.code for tag in tags] == [
        "critical_alert",
        "complaint_overdue",
        "not_delivered",
        "missed_appointment",
    ]
    assert customer_tags(facts(), NOW) == []


def test_a_critical_alert_outranks_a_missed_appointment() -> None:
    assert score([make_tag("critical_alert", NOW)], NOW) > score([make_tag("missed_appointment", NOW)], NOW)


def test_events_count_less_as_they_age_and_never_below_the_floor() -> None:
    fresh = score([make_tag("missed_appointment", NOW - timedelta(days=1))], NOW)
    month = score([make_tag("missed_appointment", NOW - timedelta(days=30))], NOW)
    old = score([make_tag("missed_appointment", NOW - timedelta(days=365))], NOW)
    assert fresh > month > old
    assert month == pytest.approx(2.0 * 0.5)
    assert old == pytest.approx(2.0 * 0.25)
    assert recency(make_tag("missed_appointment", NOW + timedelta(days=3)), NOW) == 1.0


def test_standing_conditions_count_fully_while_they_last() -> None:
    old = make_tag("not_delivered", NOW - timedelta(days=200))
    assert score([old], NOW) == pytest.approx(4.0)
    assert recency(old, NOW) == 1.0


def test_more_tags_rank_higher_but_one_rule_repeating_has_diminishing_returns() -> None:
    one = score([make_tag("warranty_expiring", NOW)], NOW)
    two = score([make_tag("warranty_expiring", NOW), make_tag("warranty_expiring", NOW)], NOW)
    many = score([make_tag("warranty_expiring", NOW)] * 20, NOW)
    assert two == pytest.approx(1.5 * one)
    assert many < 2 * one < score([make_tag("warranty_expiring", NOW), make_tag("dealer_failed", NOW)], NOW)
    assert score([], NOW) == 0.0


def test_settings_refuse_negative_windows() -> None:
    with pytest.raises(ConfigError, match="expiry_days"):
        Settings(expiry_days=-1)


def test_times_on_the_command_line_parse_as_utc() -> None:
    assert utc_time("2026-12-07T09:00:00") == NOW
    assert utc_time("2026-12-07T10:00:00+01:00") == NOW
    assert utc_time("2026-12-07T09:00:00Z") == NOW
    assert utc_time("2026-12-07") == NOW.replace(hour=0)
    with pytest.raises(argparse.ArgumentTypeError, match="ISO 8601"):
        utc_time("yesterday")


def test_the_tag_rules_import_no_database_library() -> None:
    probe = (
        "import sys, prognos.desk.tags; print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('sqlalchemy', 'alembic', 'psycopg', 'sqlite3')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_many_comebacks_of_one_vehicle_make_one_tag_that_counts_them() -> None:
    orders = []
    for n in range(4):
        opened = NOW - timedelta(days=60 - 10 * n)
        orders.append(
            WorkOrderFacts(dealer_id="D1", order_id=f"W{n}", vin="VIN1", opened_at=opened, closed_at=opened)
        )
        orders.append(
            WorkOrderFacts(
                dealer_id="D1",
                order_id=f"W{n}R",
                vin="VIN1",
                opened_at=opened + timedelta(days=3),
                repeat_of_order_id=f"W{n}",
                description="brakes.pad_wear",
            )
        )
    tags = comebacks(CustomerFacts(customer_id="C1", work_orders=orders), NOW, Settings())
    assert len(tags) == 1
    assert "repeat order W3R" in tags[0].reason and "3 earlier comebacks in 180 days" in tags[0].reason
