"""This week's calls: the nearest capable center, slots given out in due order, the snapshot's
dues and the table a service manager reads (prognos.desk.week, prognos.dashboard.desk_views)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from prognos.cloud.dealers.reassign import ServiceCenter
from prognos.dashboard import desk_views
from prognos.desk.booking import Slot
from prognos.desk.week import Due, Owner, assign_slots, choose_centers, parts_of, purpose_of

HOME = ServiceCenter("SC-HOME", "D1", 48.20, 16.37, 40, 4, frozenset({"tires"}), "Home")
NEAR = ServiceCenter("SC-NEAR", "D2", 48.25, 16.40, 40, 4, frozenset(), "Near")
FAR = ServiceCenter("SC-FAR", "D3", 47.07, 15.44, 40, 4, frozenset(), "Far")
EVERY = {c.id: c for c in (HOME, NEAR, FAR)}
MONDAY_9 = datetime(2026, 12, 14, 9, tzinfo=UTC)


def owner(customer_id: str, *, home: str = "SC-HOME", booked_at: datetime | None = None) -> Owner:
    return Owner(
        customer_id=customer_id,
        name=f"Owner {customer_id}",
        email=f"{customer_id.lower()}@example.org",
        phone="+43 1 234",
        home_center=home,
        plate="W-123AB",
        model="e-compact",
        booked_at=booked_at,
    )


def due(vin: str, day: int, code: str = "tires.pressure_loss", priority: str = "") -> Due:
    return Due(vin=vin, due=date(2026, 12, day), reason=f"{code} on {vin}", codes=(code,), priority=priority)


def test_home_center_that_repairs_the_subsystem_is_chosen() -> None:
    [call] = choose_centers([due("V1", 10)], {"V1": owner("C1")}, EVERY, EVERY)
    assert call.center == HOME
    assert call.distance_km == 0


def test_repair_home_cannot_do_goes_to_the_nearest_capable_center() -> None:
    [call] = choose_centers([due("V1", 10, "brakes.pad_wear")], {"V1": owner("C1")}, EVERY, EVERY)
    assert call.center == NEAR  # the home center repairs tires only; FAR is 150 km away
    assert call.distance_km is not None and 0 < call.distance_km < 10


def test_failed_dealers_center_is_the_origin_but_never_the_choice() -> None:
    working = {c.id: c for c in (NEAR, FAR)}
    [call] = choose_centers([due("V1", 10)], {"V1": owner("C1")}, EVERY, working)
    assert call.center == NEAR


def test_vehicle_unknown_to_the_desk_uses_the_registry_center() -> None:
    registry_due = Due(
        vin="V9", due=date(2026, 12, 10), reason="r", codes=("motor.noise",), center_id="SC-FAR"
    )
    [call] = choose_centers([registry_due], {}, EVERY, EVERY)
    assert call.center == FAR and call.owner is None


def test_calls_come_earliest_due_first_then_p1() -> None:
    dues = [due("V3", 12), due("V2", 10), due("V1", 10, priority="P1")]
    calls = choose_centers(dues, {}, EVERY, EVERY)
    assert [c.due.vin for c in calls] == ["V1", "V2", "V3"]


def test_slots_are_given_out_one_bay_each_in_due_order() -> None:
    owners = {"V1": owner("C1"), "V2": owner("C2"), "V3": owner("C3")}
    calls = choose_centers([due("V1", 10), due("V2", 11), due("V3", 12)], owners, EVERY, EVERY)
    free = {"SC-HOME": [Slot("SC-HOME", MONDAY_9, 2), Slot("SC-HOME", MONDAY_9 + timedelta(hours=1), 1)]}
    planned = assign_slots(calls, free)
    assert [c.slot for c in planned] == [MONDAY_9, MONDAY_9, MONDAY_9 + timedelta(hours=1)]


def test_booked_vehicle_gets_no_slot_and_takes_no_bay() -> None:
    owners = {"V1": owner("C1", booked_at=MONDAY_9), "V2": owner("C2")}
    calls = choose_centers([due("V1", 10), due("V2", 11)], owners, EVERY, EVERY)
    planned = assign_slots(calls, {"SC-HOME": [Slot("SC-HOME", MONDAY_9, 1)]})
    assert planned[0].booked and planned[0].slot is None
    assert planned[1].slot == MONDAY_9


def test_no_free_slot_left_is_none() -> None:
    calls = choose_centers([due("V1", 10), due("V2", 11)], {}, EVERY, EVERY)
    planned = assign_slots(calls, {"SC-HOME": [Slot("SC-HOME", MONDAY_9, 1)]})
    assert planned[1].slot is None


def test_purpose_fits_the_desk_and_parts_follow_the_codes() -> None:
    long = Due(vin="V1", due=date(2026, 12, 10), reason="x" * 500, codes=("brakes.pad_wear", "unknown.code"))
    assert len(purpose_of(long)) == 200 and purpose_of(long).endswith("…")
    assert parts_of(long) == ("PG-BRK-3100",)


def service_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    columns = ["vin", "due_date", "reason", "codes", "owner_name", "owner_contact", "service_center"]
    return pd.DataFrame(rows, columns=columns)


def alert_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["vin", "code", "priority", "reason", "last_seen_ms"])


def test_dues_take_the_service_list_up_to_the_last_day_and_p1_alerts() -> None:
    service = service_frame(
        [
            {"vin": "V1", "due_date": "2026-12-09", "reason": "pads", "codes": "brakes.pad_wear"},
            {"vin": "V2", "due_date": "2026-12-30", "reason": "later", "codes": "tires.pressure_loss"},
        ]
    )
    seen = int(datetime(2026, 12, 7, 8, tzinfo=UTC).timestamp() * 1000)
    alerts = alert_frame(
        [
            {
                "vin": "V1",
                "code": "brakes.pad_wear",
                "priority": "P1",
                "reason": "pads",
                "last_seen_ms": seen,
            },
            {
                "vin": "V3",
                "code": "battery.anomaly",
                "priority": "P1",
                "reason": "hot cell",
                "last_seen_ms": seen,
            },
            {"vin": "V4", "code": "motor.drift", "priority": "P3", "reason": "drift", "last_seen_ms": seen},
        ]
    )
    dues = {d.vin: d for d in desk_views.dues_from_snapshot(service, alerts, last_day=date(2026, 12, 14))}
    assert set(dues) == {"V1", "V3"}
    assert dues["V1"].codes == ("brakes.pad_wear",) and dues["V1"].priority == ""
    assert dues["V3"].due == date(2026, 12, 7) and dues["V3"].priority == "P1"
    assert dues["V3"].reason == "hot cell"


def test_empty_cells_of_the_service_list_are_empty_text() -> None:
    service = service_frame([{"vin": "V1", "due_date": "2026-12-09", "reason": None, "codes": float("nan")}])
    [only] = desk_views.dues_from_snapshot(service, alert_frame([]), last_day=date(2026, 12, 14))
    assert only.reason == "" and only.codes == () and only.owner == ""


def test_week_table_reads_without_none_and_links_owner_and_vehicle() -> None:
    owners = {"V1": owner("C1"), "V2": owner("C2", booked_at=MONDAY_9)}
    dues = [due("V1", 10), due("V2", 11), due("V3", 12)]
    calls = assign_slots(
        choose_centers(dues, owners, EVERY, EVERY), {"SC-HOME": [Slot("SC-HOME", MONDAY_9, 3)]}
    )
    table = desk_views.week_table(calls)
    assert list(table.columns) == desk_views.WEEK_COLUMNS
    text = table.to_string()
    assert "None" not in text and "nan" not in text
    first = table.iloc[0]
    assert first["Owner"] == "[Owner C1](customers?customer=C1)"
    assert first["Vehicle"].startswith("[V1](vehicle?vin=V1)")
    assert first["Proposed slot"] == "Mon 2026-12-14 09:00 UTC"
    assert table.iloc[1]["Proposed slot"] == "booked Mon 2026-12-14 09:00 UTC"
    assert table.iloc[2]["Owner"] == desk_views.DASH  # in neither the desk nor the registry
    assert set(table["Report"]) == {"none yet"}
    reported = desk_views.week_table([replace(calls[0], report_id="RPT-1")])
    assert reported.iloc[0]["Report"] == "[RPT-1](vehicle?vin=V1)"  # the vehicle page shows its reports
    csv = desk_views.week_table(calls, links=False)
    assert csv.iloc[0]["Owner"] == "Owner C1" and csv.iloc[0]["E-mail"] == "c1@example.org"
    assert csv.iloc[0]["Vehicle"].startswith("V1 (")


def test_center_plan_names_the_parts_and_links_the_customer() -> None:
    from prognos.desk.week import Visit

    visit = Visit(
        appointment_id="AP-1",
        at=MONDAY_9,
        bay=2,
        customer_id="C1",
        customer="Owner C1",
        phone="",
        vin="V1",
        plate="W-1",
        purpose="pads",
        parts=("PG-BRK-3100", "PG-X"),
    )
    table = desk_views.center_plan_table([visit], {"PG-BRK-3100": "brake pad set, one axle"})
    row = table.iloc[0]
    assert row["When"] == "Mon 2026-12-14 09:00 UTC" and row["Bay"] == "2"
    assert row["Customer"] == "[Owner C1](customers?customer=C1)" and row["Phone"] == desk_views.DASH
    assert row["Parts to have ready"] == "brake pad set, one axle (PG-BRK-3100), PG-X (PG-X)"
    assert desk_views.center_plan_table([visit], {}, links=False).iloc[0]["Customer"] == "Owner C1"
