"""The fleet alerts' sync decision (prognos.desk.alerts.decide), pure: a snapshot's alerts and
the desk's fleet alerts in, the rows to insert, update and clear out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from prognos.desk import schema
from prognos.desk.alerts import (
    FLEET_PREFIX,
    AlertChanges,
    DeskAlert,
    FleetAlert,
    alert_id,
    decide,
    fleet_alerts,
    summary_of,
)

T1 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
T2 = T1 + timedelta(minutes=1)
V1, V2, V3 = "WVWZZZ1KZ6W000001", "WVWZZZ1KZ6W000002", "WVWZZZ1KZ6W000003"
KNOWN = {V1, V2, V3}

PADS = FleetAlert(
    vin=V1,
    code="brakes.pad_wear",
    priority="P1",
    kind="fault",
    band="act",
    rank=1,
    days_left=9.2,
    days_low_left=6.1,
    days_high_left=13.8,
)
TIRE = FleetAlert(vin=V2, code="tires.pressure_loss", priority="P2", kind="fault", band="act", rank=2)
DRIFT = FleetAlert(vin=V3, code="motor.drift", priority="P3", kind="drift", band="healthy", rank=3)


def stored_after(changes: AlertChanges, before: Sequence[DeskAlert] = ()) -> list[DeskAlert]:
    """The desk's rows once `changes` are applied to `before`."""
    rows = {row.alert_id: row for row in before}
    for row in (*changes.inserts, *changes.updates, *changes.clears):
        rows[row.alert_id] = row
    return list(rows.values())


def test_new_alerts_are_inserted_with_the_severity_of_their_priority() -> None:
    changes = decide([PADS, TIRE, DRIFT], [], at=T1, known_vins=KNOWN)
    assert [(r.vin, r.code, r.severity) for r in changes.inserts] == [
        (V1, "brakes.pad_wear", "critical"),
        (V2, "tires.pressure_loss", "warning"),
        (V3, "motor.drift", "info"),
    ]
    assert all(r.raised_at == T1 and r.cleared_at is None for r in changes.inserts)
    assert not changes.updates and not changes.clears
    assert (changes.new, changes.changed, changes.cleared, changes.open) == (3, 0, 0, 3)
    assert changes.text() == "3 new, 0 changed, 0 cleared (3 open)"


def test_the_same_snapshot_twice_changes_nothing() -> None:
    first = decide([PADS, TIRE, DRIFT], [], at=T1, known_vins=KNOWN)
    again = decide([PADS, TIRE, DRIFT], stored_after(first), at=T1, known_vins=KNOWN)
    assert again.empty and (again.new, again.changed, again.cleared) == (0, 0, 0)
    later = decide([PADS, TIRE, DRIFT], stored_after(first), at=T2, known_vins=KNOWN)
    assert later.empty  # a later snapshot with the same alerts: nothing to do either


def test_a_changed_severity_or_summary_is_an_update_that_keeps_the_raise_time() -> None:
    first = stored_after(decide([PADS, TIRE], [], at=T1, known_vins=KNOWN))
    worse = replace(TIRE, priority="P1")
    sooner = replace(PADS, days_left=4.0, days_low_left=2.0, days_high_left=7.0)
    changes = decide([sooner, worse], first, at=T2, known_vins=KNOWN)
    assert not changes.inserts and not changes.clears
    updated = {r.vin: r for r in changes.updates}
    assert updated[V2].severity == "critical" and updated[V2].raised_at == T1
    assert "in 4 days" in updated[V1].summary and updated[V1].raised_at == T1
    assert (changes.new, changes.changed, changes.cleared) == (0, 2, 0)


def test_an_alert_the_snapshot_no_longer_has_is_cleared_at_its_time() -> None:
    first = stored_after(decide([PADS, TIRE], [], at=T1, known_vins=KNOWN))
    changes = decide([TIRE], first, at=T2, known_vins=KNOWN)
    assert [(r.vin, r.cleared_at, r.raised_at) for r in changes.clears] == [(V1, T2, T1)]
    assert changes.text() == "0 new, 0 changed, 1 cleared (1 open)"
    after = stored_after(changes, first)
    assert decide([TIRE], after, at=T2, known_vins=KNOWN).empty  # cleared rows stay cleared


def test_an_alert_back_after_it_cleared_is_raised_again_on_its_row() -> None:
    first = stored_after(decide([PADS], [], at=T1, known_vins=KNOWN))
    cleared = stored_after(decide([], first, at=T2, known_vins=KNOWN), first)
    back = T2 + timedelta(hours=1)
    changes = decide([PADS], cleared, at=back, known_vins=KNOWN)
    assert not changes.inserts and changes.reopened == 1
    [row] = changes.updates
    assert row.alert_id == alert_id(V1, PADS.code) and row.raised_at == back and row.cleared_at is None
    assert (changes.new, changes.changed) == (1, 0)


def test_alerts_the_desk_holds_from_elsewhere_are_never_touched() -> None:
    seeded = DeskAlert(
        alert_id="A-6W000001-1",
        vin=V1,
        code="brakes.pad_wear",
        severity="critical",
        summary="brake pads near their wear limit",
        raised_at=T1 - timedelta(days=3),
    )
    changes = decide([], [seeded], at=T1, known_vins=KNOWN)
    assert changes.empty


def test_alerts_on_vins_without_a_customer_are_kept_and_counted() -> None:
    stranger = replace(TIRE, vin="PRG007S1234500001")
    changes = decide([PADS, stranger], [], at=T1, known_vins=KNOWN)
    assert {r.vin for r in changes.inserts} == {V1, "PRG007S1234500001"}
    assert changes.not_linked == 1
    assert changes.text() == "2 new, 0 changed, 0 cleared (2 open); 1 not linked to a customer"


def test_alerts_the_desk_columns_cannot_hold_are_left_out_and_reported() -> None:
    long_vin = replace(TIRE, vin="X" * 18)
    long_code = replace(TIRE, code="tires." + "x" * 40)
    changes = decide([PADS, long_vin, long_code], [], at=T1, known_vins=KNOWN)
    assert [r.vin for r in changes.inserts] == [V1]
    assert changes.left_out == (long_vin, long_code)
    assert "2 left out" in changes.text()


def test_the_same_vehicle_and_code_twice_keeps_the_more_severe() -> None:
    other_fleet = replace(PADS, priority="P2", rank=5)
    changes = decide([other_fleet, PADS], [], at=T1, known_vins=KNOWN)
    assert [r.severity for r in changes.inserts] == ["critical"]


def test_ids_are_stable_distinct_and_fit_the_column() -> None:
    vin = "W" * 17
    codes = ["battery.module_temperature_drift", "brakes.pad_wear", "brakes.low_health", "x" * 40]
    ids = [alert_id(vin, code) for code in codes]
    assert ids == [alert_id(vin, code) for code in codes]
    assert len(set(ids)) == len(ids) and len({alert_id(V1, "a"), alert_id(V2, "a")}) == 2
    assert all(i.startswith(FLEET_PREFIX + vin + "-") and len(i) <= schema.ID for i in ids)


def test_without_a_priority_the_vehicles_band_decides() -> None:
    changes = decide(
        [replace(PADS, priority=None, band="watch"), replace(TIRE, priority=None, band=None)],
        [],
        at=T1,
        known_vins=KNOWN,
    )
    assert sorted(r.severity for r in changes.inserts) == ["info", "warning"]


@pytest.mark.parametrize(
    ("alert", "text"),
    [
        (PADS, "Brake pads near their wear limit; failure expected in 9 days (80 % interval 6-14 days)"),
        (replace(PADS, days_low_left=None), "Brake pads near their wear limit; failure expected in 9 days"),
        (
            replace(PADS, days_left=1.3, days_low_left=0.6, days_high_left=2.2),
            "Brake pads near their wear limit; failure expected in 1 day (80 % interval 1-2 days)",
        ),
        (replace(PADS, days_left=0.2), "Brake pads near their wear limit; failure expected within a day"),
        (replace(PADS, days_left=-3.4), "Brake pads near their wear limit; failure was expected 3 days ago"),
        (TIRE, "A tire losing pressure; time to failure not estimated yet"),
        (
            replace(PADS, cause_code="brakes.pad_wear", cause_probability=0.8203125),
            "Brake pads near their wear limit; likely cause: worn brake pads (82 %); "
            "failure expected in 9 days (80 % interval 6-14 days)",
        ),
        (
            replace(TIRE, cause_code="bearings.wheel_bearing_wear", cause_probability=0.3),
            "A tire losing pressure; possible cause: a worn wheel bearing (30 %); "
            "time to failure not estimated yet",
        ),
        (
            replace(TIRE, cause_code="tires.valve_leak", cause_probability=0.99609375),
            "A tire losing pressure; likely cause: tires.valve_leak (99 %); "
            "time to failure not estimated yet",
        ),
        (
            replace(TIRE, cause_code="tires.pressure_loss"),
            "A tire losing pressure; time to failure not estimated yet",
        ),
        (
            FleetAlert(vin=V1, code="brakes.caliper_stuck", kind="fault"),
            "Fault brakes.caliper_stuck on the brakes; time to failure not estimated yet",
        ),
        (
            FleetAlert(vin=V1, code="battery.low_health", priority="P1", kind="low_health"),
            "The traction battery near failure: health below 0.2 (1 = as new, 0 = failure threshold)",
        ),
        (
            FleetAlert(vin=V1, code="battery.low_health", priority="P2", kind="low_health"),
            "The traction battery wearing: health below 0.4 (1 = as new, 0 = failure threshold)",
        ),
        (
            FleetAlert(vin=V1, code="motor.anomaly", priority="P2", kind="anomaly"),
            "Unusual readings from the drive motor: anomaly score at or above 0.7 (1 = alert level), "
            "no fault named yet",
        ),
        (
            DRIFT,
            "Health of the drive motor falling: down 0.15 or more over the analytics window "
            "(1 = as new, 0 = failure threshold)",
        ),
    ],
)
def test_summaries_say_the_fault_in_words_with_the_days_when_known(alert: FleetAlert, text: str) -> None:
    assert summary_of(alert) == text
    assert "None" not in text and "nan" not in text.lower() and len(text) <= schema.NAME


def test_snapshot_rows_become_fleet_alerts_with_missing_fields_as_none() -> None:
    rows = [
        {
            "rank": 1.0,
            "priority": "P1",
            "vin": V1,
            "fleet": "demo",
            "code": "brakes.pad_wear",
            "kind": "fault",
            "band": "act",
            "days_left": 9.2,
            "days_low_left": math.nan,
            "days_high_left": None,
            "cause_code": math.nan,
            "cause_probability": math.nan,
        },
        {"rank": 2.0, "vin": math.nan, "code": "tires.pressure_loss"},  # no VIN: skipped
        {
            "rank": 3.0,
            "vin": V2,
            "code": "brakes.pad_wear",
            "cause_code": "brakes.pad_wear",
            "cause_probability": 0.5,
        },
    ]
    [alert, caused] = fleet_alerts(rows)
    assert alert == FleetAlert(
        vin=V1, code="brakes.pad_wear", priority="P1", kind="fault", band="act", rank=1, days_left=9.2
    )
    assert summary_of(alert) == "Brake pads near their wear limit; failure expected in 9 days"
    assert (caused.cause_code, caused.cause_probability) == ("brakes.pad_wear", 0.5)
