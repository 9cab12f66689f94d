"""The business calendar of the SLA clocks: opening hours, weekends, holidays, nights and the
days the clocks change (prognos.desk.calendar)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prognos.desk.calendar import BusinessCalendar, calendar_of, parse_workdays
from prognos.errors import ConfigError

H = timedelta(hours=1)
UTC_CAL = BusinessCalendar()  # Monday to Friday, 08:00-18:00 UTC
BERLIN = BusinessCalendar(timezone="Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_inside_one_day() -> None:
    assert UTC_CAL.add_business_time(utc(2026, 1, 5, 9), 2 * H) == utc(2026, 1, 5, 11)
    assert UTC_CAL.business_time_between(utc(2026, 1, 5, 9), utc(2026, 1, 5, 11)) == 2 * H


def test_a_duration_that_ends_at_closing_time_is_due_at_closing_time() -> None:
    assert UTC_CAL.add_business_time(utc(2026, 1, 5, 16), 2 * H) == utc(2026, 1, 5, 18)


def test_over_the_night() -> None:
    # Monday 17:00 + 2 h: one hour on Monday, one on Tuesday from 08:00
    assert UTC_CAL.add_business_time(utc(2026, 1, 5, 17), 2 * H) == utc(2026, 1, 6, 9)
    assert UTC_CAL.business_time_between(utc(2026, 1, 5, 17), utc(2026, 1, 6, 9)) == 2 * H


def test_over_a_weekend() -> None:
    friday_afternoon = utc(2026, 1, 9, 17)  # Friday
    assert UTC_CAL.add_business_time(friday_afternoon, 2 * H) == utc(2026, 1, 12, 9)  # Monday
    assert UTC_CAL.business_time_between(friday_afternoon, utc(2026, 1, 12, 9)) == 2 * H
    assert UTC_CAL.business_time_between(utc(2026, 1, 10, 0), utc(2026, 1, 11, 23)) == timedelta(0)


def test_a_start_outside_opening_hours_counts_from_the_next_opening() -> None:
    assert UTC_CAL.add_business_time(utc(2026, 1, 5, 3), H) == utc(2026, 1, 5, 9)  # night
    assert UTC_CAL.add_business_time(utc(2026, 1, 10, 12), H) == utc(2026, 1, 12, 9)  # Saturday
    assert UTC_CAL.add_business_time(utc(2026, 1, 5, 20), H) == utc(2026, 1, 6, 9)  # evening


def test_holidays_are_skipped() -> None:
    calendar = BusinessCalendar(holidays=frozenset({date(2026, 1, 6)}))  # a Tuesday
    assert calendar.add_business_time(utc(2026, 1, 5, 17), 2 * H) == utc(2026, 1, 7, 9)
    assert calendar.business_time_between(utc(2026, 1, 5, 17), utc(2026, 1, 7, 9)) == 2 * H
    # A holiday on the Monday after a weekend: Friday 17:00 + 2 h is Tuesday 09:00.
    easter = BusinessCalendar(holidays=frozenset({date(2026, 4, 6)}))
    assert easter.add_business_time(utc(2026, 4, 3, 17), 2 * H) == utc(2026, 4, 7, 9)


def test_local_opening_hours_in_the_dealers_time_zone() -> None:
    # 08:00-18:00 in Berlin is 07:00-17:00 UTC in winter
    assert BERLIN.add_business_time(utc(2026, 1, 5, 6), H) == utc(2026, 1, 5, 8)
    assert BERLIN.add_business_time(utc(2026, 1, 5, 16), 2 * H) == utc(2026, 1, 6, 8)
    assert BERLIN.is_open(utc(2026, 1, 5, 7)) and not BERLIN.is_open(utc(2026, 1, 5, 17))


def test_the_days_the_clocks_change() -> None:
    # Summer time starts on Sunday 2026-03-29, ends on Sunday 2026-10-25. Friday 17:00 Berlin
    # (16:00 UTC in winter) + 2 h: one hour on Friday, one on Monday from 08:00 CEST (06:00 UTC).
    assert BERLIN.add_business_time(utc(2026, 3, 27, 16), 2 * H) == utc(2026, 3, 30, 7)
    # and back: Monday 08:00 CET is 07:00 UTC
    assert BERLIN.add_business_time(utc(2026, 10, 23, 15), 2 * H) == utc(2026, 10, 26, 8)
    # A dealer open 00:00-18:00 every day: on the day the clocks go forward that is 17 real hours.
    sundays = BusinessCalendar(timezone="Europe/Berlin", workdays=frozenset(range(1, 8)), opens=time(0, 0))
    assert sundays.business_time_between(utc(2026, 3, 28, 23), utc(2026, 3, 29, 16)) == 17 * H


def test_the_opening_hour_inside_the_spring_forward_gap() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29: it is taken with the offset before the change
    # (01:30 UTC, which is 03:30 CEST), and the window still closes at 18:00 CEST (16:00 UTC).
    early = BusinessCalendar(timezone="Europe/Berlin", workdays=frozenset({7}), opens=time(2, 30))
    assert early.add_business_time(utc(2026, 3, 29, 0), H) == utc(2026, 3, 29, 2, 30)
    assert early.business_time_between(utc(2026, 3, 29, 0), utc(2026, 3, 29, 23)) == timedelta(
        hours=14, minutes=30
    )


def test_business_time_between_is_signed() -> None:
    assert UTC_CAL.business_time_between(utc(2026, 1, 6, 9), utc(2026, 1, 5, 17)) == -2 * H


def test_zero_duration_is_due_at_once() -> None:
    assert UTC_CAL.add_business_time(utc(2026, 1, 10, 12), timedelta(0)) == utc(2026, 1, 10, 12)


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    minutes=st.integers(min_value=0, max_value=60 * 200),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney"]),
)
def test_adding_then_measuring_gives_the_duration_back(start: datetime, minutes: int, zone: str) -> None:
    calendar = BusinessCalendar(timezone=zone, holidays=frozenset({date(2026, 1, 1), date(2026, 12, 25)}))
    duration = timedelta(minutes=minutes)
    due = calendar.add_business_time(start, duration)
    assert due >= start
    assert calendar.business_time_between(start, due) == duration


def test_built_from_a_dealer_row() -> None:
    row = {
        "dealer_id": "D01",
        "timezone": "Europe/Vienna",
        "workdays": "123456",
        "opens": "07:30",
        "closes": "17:00",
    }
    calendar = calendar_of(row, [date(2026, 1, 6)])
    assert calendar.workdays == frozenset({1, 2, 3, 4, 5, 6})
    assert (calendar.opens, calendar.closes) == (time(7, 30), time(17, 0))
    assert calendar.holidays == frozenset({date(2026, 1, 6)})
    assert parse_workdays("12345") == frozenset({1, 2, 3, 4, 5})


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"workdays": "1239"}, "ISO weekday"),
        ({"opens": "18:00", "closes": "08:00"}, "open before it closes"),
        ({"opens": "8 am"}, "not a time of day"),
    ],
)
def test_a_bad_dealer_calendar_is_a_config_error(row: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        calendar_of({"dealer_id": "D09", **row})


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        UTC_CAL.add_business_time(datetime(2026, 1, 5, 9), H)
