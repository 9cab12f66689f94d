"""Dealer closure: hand-made networks where the right answer is known, and the synthetic DMS
data. The command against the real InfluxDB is tests/integration/test_dealer_reassign.py."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from prognos.cloud.dealers.dms import parse_row, records_frame
from prognos.cloud.dealers.kinds import KINDS
from prognos.cloud.dealers.reassign import (
    Appointment,
    Customer,
    ReassignSettings,
    ServiceCenter,
    StockItem,
    distance_km,
    iso_week,
    reassign,
    reassign_frames,
    weekly_capacity,
)
from prognos.errors import ConfigError
from prognos.sim.dealers import make_dms

NOW = int(datetime(2024, 6, 3, 8, 0, tzinfo=UTC).timestamp() * 1000)  # a Monday, 2024-W23
DAY = 86_400_000
KM_PER_DEGREE = 111.195  # along a meridian
PADS, BATTERY_SENSOR = "PG-BRK-3100", "PG-BAT-1100"


def center(
    id: str, north_km: float, *, dealer: str = "", capacity: int = 10, technicians: int = 5, skills: str = ""
) -> ServiceCenter:
    """A center `north_km` north of the closing center (which sits at 50 N, 10 E)."""
    return ServiceCenter(
        id=id,
        dealer_id=dealer or f"D-{id}",
        lat=50.0 + north_km / KM_PER_DEGREE,
        lon=10.0,
        capacity_per_week=capacity,
        technicians=technicians,
        skills=frozenset(skills.split(";")) if skills else frozenset(),
    )


CLOSING = center("OLD", 0.0, dealer="GONE")


def stocked(
    *centers: str, part: str = PADS, units: float = 5, lead_time_weeks: float = 1.0
) -> dict[tuple[str, str], StockItem]:
    return {(c, part): StockItem(units, lead_time_weeks) for c in centers}


def job(id: str, *parts: str, day: float = 0.0, vin: str = "") -> Appointment:
    return Appointment(id, vin or f"VIN{id}", "OLD", NOW + int(day * DAY), tuple(parts))


def test_distances_and_weeks() -> None:
    assert distance_km(50.0, 10.0, 51.0, 10.0) == pytest.approx(KM_PER_DEGREE, rel=1e-4)
    assert distance_km(53.551, 9.994, 53.079, 8.802) == pytest.approx(95, abs=2)  # Hamburg - Bremen
    assert iso_week(NOW) == "2024-W23" and iso_week(NOW + 7 * DAY) == "2024-W24"
    assert weekly_capacity(center("X", 1, capacity=50, technicians=2)) == 20  # 10 a technician
    assert weekly_capacity(center("X", 1, capacity=5, technicians=2)) == 5


def test_the_nearest_center_with_capacity_and_parts_wins() -> None:
    centers = [CLOSING, center("FAR", 40), center("NEAR", 10), center("MID", 25)]
    result = reassign("GONE", centers, [job("1", PADS)], [], stocked("FAR", "NEAR", "MID"), NOW)
    (placed,) = result.placed
    assert placed.to_center == "NEAR" and placed.to_dealer == "D-NEAR"
    assert placed.distance_km == pytest.approx(10.0, abs=0.01)
    assert placed.date_ms == NOW
    assert placed.reason.startswith("nearest capable center, 10.0 km; parts in stock; 2024-W23")
    assert not result.unplaced


def test_a_full_center_is_skipped_for_the_next() -> None:
    centers = [CLOSING, center("NEAR", 10, capacity=3), center("NEXT", 30)]
    booked = {("NEAR", "2024-W23"): 3}  # its own appointments fill this week
    result = reassign("GONE", centers, [job("1", PADS)], [], stocked("NEAR", "NEXT"), NOW, booked=booked)
    (placed,) = result.placed
    assert placed.to_center == "NEXT"
    assert "nearer ones: NEAR (10 km) is full in 2024-W23 (3 a week)" in placed.reason
    # The week after, NEAR has room again.
    later = reassign(
        "GONE", centers, [job("2", PADS, day=7)], [], stocked("NEAR", "NEXT"), NOW, booked=booked
    )
    assert later.placed[0].to_center == "NEAR"


def test_capacity_is_counted_across_the_appointments_of_the_run_earliest_first() -> None:
    centers = [CLOSING, center("NEAR", 10, capacity=2), center("NEXT", 30)]
    jobs = [job("late", PADS, day=2), job("first", PADS, day=0), job("second", PADS, day=1)]
    result = reassign("GONE", centers, jobs, [], stocked("NEAR", "NEXT", units=10), NOW)
    where = {a.id: a.to_center for a in result.assignments}
    assert where == {"first": "NEAR", "second": "NEAR", "late": "NEXT"}  # greedy by urgency


def test_technicians_bound_the_capacity() -> None:
    centers = [CLOSING, center("NEAR", 10, capacity=100, technicians=0), center("NEXT", 30)]
    result = reassign("GONE", centers, [job("1")], [], {}, NOW)
    assert result.placed[0].to_center == "NEXT"
    assert "NEAR (10 km) is full in 2024-W23 (0 a week)" in result.placed[0].reason
    assert "no parts needed" in result.placed[0].reason


def test_a_missing_part_sends_the_appointment_on_or_leaves_it_unplaced() -> None:
    centers = [CLOSING, center("NEAR", 10), center("NEXT", 30), center("FAR", 60)]
    stock = {
        **stocked("NEAR", units=0, lead_time_weeks=5.0),  # carries pads, none left, slow supplier
        **stocked("FAR", units=2),
    }  # NEXT does not carry pads at all
    result = reassign("GONE", centers, [job("1", PADS, PADS)], [], stock, NOW)
    (placed,) = result.placed
    assert placed.to_center == "FAR"
    assert "NEAR (10 km) has 0 of 2 PG-BRK-3100, lead time 5 weeks" in placed.reason
    assert "NEXT (30 km) does not stock PG-BRK-3100" in placed.reason

    slow = {**stock, **stocked("FAR", units=2, lead_time_weeks=3.0)}
    nowhere = reassign("GONE", centers, [job("1", PADS, PADS, PADS)], [], slow, NOW)
    assert not nowhere.placed
    (left,) = nowhere.unplaced
    assert left.to_center == "" and math.isnan(left.distance_km) and left.date_ms is None
    assert left.reason == (
        "no center can take it: NEAR (10 km) has 0 of 3 PG-BRK-3100, lead time 5 weeks; "
        "NEXT (30 km) does not stock PG-BRK-3100; FAR (60 km) has 2 of 3 PG-BRK-3100, lead time 3 weeks"
    )
    assert nowhere.frame()["status"].tolist() == ["unplaced"]


def test_a_part_within_its_lead_time_is_ordered_and_the_appointment_waits_for_it() -> None:
    centers = [CLOSING, center("NEAR", 10, capacity=1), center("FAR", 80)]
    stock = {**stocked("NEAR", units=0, lead_time_weeks=1.0), **stocked("FAR")}
    booked = {("NEAR", "2024-W24"): 1}
    result = reassign("GONE", centers, [job("1", PADS)], [], stock, NOW)
    assert result.placed[0].to_center == "NEAR"
    assert result.placed[0].date_ms == NOW + 7 * DAY
    assert "PG-BRK-3100 ordered (1 weeks); 2024-W24" in result.placed[0].reason
    full = reassign("GONE", centers, [job("1", PADS)], [], stock, NOW, booked=booked)
    assert full.placed[0].to_center == "FAR", "the week the part arrives is full at NEAR"


def test_stock_promised_to_one_appointment_is_not_promised_again() -> None:
    centers = [CLOSING, center("NEAR", 10), center("NEXT", 30)]
    stock = {
        **stocked("NEAR", part=BATTERY_SENSOR, units=1, lead_time_weeks=4.0),
        **stocked("NEXT", part=BATTERY_SENSOR),
    }
    result = reassign(
        "GONE", centers, [job("a", BATTERY_SENSOR), job("b", BATTERY_SENSOR, day=1)], [], stock, NOW
    )
    assert [a.to_center for a in result.assignments] == ["NEAR", "NEXT"]


def test_a_center_without_the_skill_is_skipped() -> None:
    centers = [CLOSING, center("TIRES", 5, skills="tires;brakes"), center("FULL", 20)]
    stock = {**stocked("TIRES", "FULL", part=BATTERY_SENSOR), **stocked("TIRES", "FULL")}
    result = reassign("GONE", centers, [job("hv", BATTERY_SENSOR), job("pads", PADS)], [], stock, NOW)
    where = {a.id: a.to_center for a in result.assignments}
    assert where == {"hv": "FULL", "pads": "TIRES"}
    assert "TIRES (5 km) does not repair battery" in result.assignments[0].reason


def test_the_closing_dealer_never_gets_anything() -> None:
    # The dealer's second workshop is next door, empty and well stocked: it closes too.
    sister = center("SISTER", 1, dealer="GONE", capacity=1000, technicians=100)
    centers = [CLOSING, sister, center("OTHER", 50)]
    jobs = [job(str(n), PADS, day=n % 10) for n in range(30)]
    customers = [Customer(f"CUST{n:03d}", "OLD" if n % 2 else "SISTER") for n in range(40)]
    result = reassign("GONE", centers, jobs, customers, stocked("SISTER", "OTHER", units=1000), NOW)
    assert result.closing == ("OLD", "SISTER")
    assert {a.to_center for a in result.placed} == {"OTHER"}
    assert all(a.to_dealer != "GONE" for a in result.assignments)
    assert all(a.to_center not in result.closing for a in result.assignments)
    with pytest.raises(ConfigError, match="runs no service center"):
        reassign("NOBODY", centers, jobs, customers, {}, NOW)


def test_customers_follow_their_appointment_then_the_nearest_center_with_room() -> None:
    centers = [CLOSING, center("NEAR", 10, capacity=1), center("NEXT", 30), center("FAR", 90)]
    # NEAR has room for 1 x 52 / 2 = 26 customers and already has 25.
    jobs = [job("1", PADS, vin="HASJOB")]
    stock = stocked("FAR")  # only FAR has pads: the appointment goes there
    customers = [Customer("A", "OLD"), Customer("B", "OLD"), Customer("HASJOB", "OLD")]
    result = reassign("GONE", centers, jobs, customers, stock, NOW, customers_now={"NEAR": 25})
    homes = {a.vin: a for a in result.assignments if a.kind == "customer"}
    assert homes["HASJOB"].to_center == "FAR"
    assert homes["HASJOB"].reason.startswith("where its open appointment went, 90.0 km")
    assert homes["A"].to_center == "NEAR" and homes["B"].to_center == "NEXT"
    assert "NEAR (10 km) has no room (26 customers)" in homes["B"].reason


def test_nothing_within_reach_is_unplaced_with_the_reason() -> None:
    centers = [CLOSING, center("FAR", 300)]
    settings = ReassignSettings(max_distance_km=100.0)
    result = reassign("GONE", centers, [job("1")], [Customer("C", "OLD")], {}, NOW, settings=settings)
    assert [a.reason for a in result.unplaced] == ["no other service center within 100 km"] * 2
    lost = reassign("GONE", centers, [Appointment("2", "V", "ELSEWHERE", NOW)], [], {}, NOW)
    assert lost.unplaced[0].reason == "the location of ELSEWHERE is unknown"


def synthetic_frames() -> tuple[dict[str, pd.DataFrame], int]:
    rows = make_dms(seed=3, months=2, end=date(2024, 7, 1), order_scale=0.3, vehicles=60)
    frames = {
        kind: records_frame(KINDS[kind], [parse_row(KINDS[kind], row) for row in rows[kind]])
        for kind in ("service_center", "work_order", "vehicle")
    }
    stock_rows = rows["parts_stock"]
    frames["parts_stock"] = records_frame(
        KINDS["parts_stock"], [parse_row(KINDS["parts_stock"], r) for r in stock_rows]
    )
    return frames, int(datetime(2024, 7, 1, tzinfo=UTC).timestamp() * 1000)


def test_synthetic_network_closing_a_dealer() -> None:
    frames, as_of = synthetic_frames()
    stock = (
        frames["parts_stock"].sort_values("as_of").groupby(["service_center", "part"], as_index=False).last()
    )
    result = reassign_frames(
        "DLR-01", frames["service_center"], frames["work_order"], frames["vehicle"], stock, as_of
    )
    assert result.closing == ("SC-01",)
    appointments = [a for a in result.assignments if a.kind == "appointment"]
    customers = [a for a in result.assignments if a.kind == "customer"]
    orders = frames["work_order"]
    assert (
        len(appointments) == int(((orders["dealer_id"] == "DLR-01") & orders["closed_at"].isna()).sum()) > 0
    )
    assert len(customers) == int((frames["vehicle"]["service_center"] == "SC-01").sum()) > 0
    assert all(a.to_center not in ("SC-01", "") for a in result.assignments)
    # Hamburg's nearest neighbour in the network is Kiel (86 km; Bremen is 95 km away).
    assert {a.to_center for a in customers} == {"SC-04"}
    assert all(a.distance_km == pytest.approx(86, abs=2) for a in customers)
