"""A center's free slots: on the hour inside opening hours, never on a closed day or holiday,
full when every bay is taken, and none in a week that has reached its capacity."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from prognos.desk.booking import free_slots
from prognos.desk.calendar import BusinessCalendar

BERLIN = BusinessCalendar(
    timezone="Europe/Berlin", opens=time(8, 0), closes=time(12, 0), holidays=frozenset({date(2026, 12, 25)})
)
FRIDAY_10_UTC = datetime(2026, 12, 4, 10, 30, tzinfo=UTC)  # 11:30 in Berlin


def test_slots_start_on_the_hour_inside_opening_hours_and_skip_the_weekend() -> None:
    found = free_slots(
        center_id="SC-1", calendar=BERLIN, bays=2, per_week=100, booked=[], after=FRIDAY_10_UTC, count=3
    )
    # Friday 11:30 local: the last hour (11:00) has begun; Monday 08:00 local is 07:00 UTC.
    assert [s.start for s in found] == [
        datetime(2026, 12, 7, 7, tzinfo=UTC),
        datetime(2026, 12, 7, 8, tzinfo=UTC),
        datetime(2026, 12, 7, 9, tzinfo=UTC),
    ]
    assert all(s.free_bays == 2 for s in found)


def test_a_full_slot_and_a_holiday_are_skipped() -> None:
    monday_7 = datetime(2026, 12, 7, 7, tzinfo=UTC)
    booked = [monday_7, monday_7, monday_7 + timedelta(hours=1)]
    found = free_slots(
        center_id="SC-1", calendar=BERLIN, bays=2, per_week=100, booked=booked, after=monday_7, count=2
    )
    # 07:00 is full (both bays), 08:00 has one bay left, 09:00 both
    assert [(s.start, s.free_bays) for s in found] == [
        (monday_7 + timedelta(hours=1), 1),
        (monday_7 + timedelta(hours=2), 2),
    ]
    christmas = datetime(2026, 12, 25, 6, tzinfo=UTC)
    after = free_slots(
        center_id="SC-1", calendar=BERLIN, bays=1, per_week=100, booked=[], after=christmas, count=1
    )
    assert after[0].start.date() == date(2026, 12, 28)  # Friday the 25th is a holiday, then the weekend


def test_a_week_at_capacity_has_no_slot() -> None:
    monday_7 = datetime(2026, 12, 7, 7, tzinfo=UTC)
    booked = [monday_7 + timedelta(hours=h) for h in range(3)]
    found = free_slots(
        center_id="SC-1", calendar=BERLIN, bays=5, per_week=3, booked=booked, after=monday_7, count=1
    )
    assert found[0].start == datetime(2026, 12, 14, 7, tzinfo=UTC)  # the next week's first hour
