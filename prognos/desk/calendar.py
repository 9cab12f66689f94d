"""A dealer's business calendar: when its SLA clocks run (docs/desk.md, "SLA clocks").

Pure. A clock runs only inside opening hours: on the dealer's workdays, from `opens` to `closes`
local time, except on its holidays. Business time is real elapsed time inside those windows, so
a window on a day the clocks change (DST) is as long as it really is; each window is placed in
UTC through zoneinfo, a wall time that does not exist that day (inside a spring-forward gap)
taking the offset from before the change.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prognos.errors import ConfigError

MAX_SPAN_DAYS = 366 * 20  # a due time further than this is a mistake, not a deadline


@dataclass(frozen=True, kw_only=True)
class BusinessCalendar:
    timezone: str = "UTC"  # IANA name, e.g. Europe/Berlin
    workdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})  # ISO weekdays, Monday 1 .. Sunday 7
    opens: time = time(8, 0)
    closes: time = time(18, 0)
    holidays: frozenset[date] = frozenset()
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"unknown time zone {self.timezone!r} (an IANA name, e.g. Europe/Berlin)"
            ) from None
        if not self.workdays or not self.workdays <= set(range(1, 8)):
            raise ConfigError(f"workdays {sorted(self.workdays)}: ISO weekdays 1 (Monday) to 7, at least one")
        if self.opens >= self.closes:
            raise ConfigError(
                f"opening hours {self.opens:%H:%M}-{self.closes:%H:%M}: it must open before it closes "
                "(hours past midnight are not supported)"
            )
        object.__setattr__(self, "_zone", zone)

    def windows(self, first: date, last: date) -> Iterator[tuple[datetime, datetime]]:
        """The opening windows (UTC start, UTC end) of the local days `first` to `last`."""
        day = first
        while day <= last:
            if day.isoweekday() in self.workdays and day not in self.holidays:
                start = datetime.combine(day, self.opens, tzinfo=self._zone).astimezone(UTC)
                end = datetime.combine(day, self.closes, tzinfo=self._zone).astimezone(UTC)
                if end > start:
                    yield start, end
            day += timedelta(days=1)

    def local_day(self, moment: datetime) -> date:
        return _aware(moment).astimezone(self._zone).date()

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The moment (UTC) when `duration` of business time has passed since `start`. A start
        outside opening hours counts from the next opening; a duration that ends exactly at
        closing time is due at closing time, not at the next opening."""
        start = _aware(start).astimezone(UTC)
        if duration < timedelta(0):
            raise ValueError(f"a negative duration: {duration}")
        if duration == timedelta(0):
            return start
        left = duration
        first = self.local_day(start)
        for window_start, window_end in self.windows(first, first + timedelta(days=MAX_SPAN_DAYS)):
            if window_end <= start:
                continue
            begin = max(window_start, start)
            available = window_end - begin
            if left <= available:
                return begin + left
            left -= available
        raise ConfigError(f"{duration} of business time does not fit in {MAX_SPAN_DAYS} days")

    def business_time_between(self, a: datetime, b: datetime) -> timedelta:
        """The business time from `a` to `b`; negative when `b` is before `a`."""
        a, b = _aware(a).astimezone(UTC), _aware(b).astimezone(UTC)
        if b < a:
            return -self.business_time_between(b, a)
        total = timedelta(0)
        for window_start, window_end in self.windows(self.local_day(a), self.local_day(b)):
            overlap = min(window_end, b) - max(window_start, a)
            if overlap > timedelta(0):
                total += overlap
        return total

    def is_open(self, moment: datetime) -> bool:
        moment = _aware(moment)
        day = self.local_day(moment)
        return any(start <= moment < end for start, end in self.windows(day, day))


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment} has no time zone: the desk's times are timezone-aware")
    return moment


def _clock_time(text: str, what: str) -> time:
    try:
        return time.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not a time of day like 08:00") from None


def parse_workdays(text: str) -> frozenset[int]:
    """'12345' (Monday to Friday) to {1, 2, 3, 4, 5}."""
    days = set()
    for char in text.strip():
        if char not in "1234567":
            raise ConfigError(f"workdays {text!r}: ISO weekday digits 1 (Monday) to 7 (Sunday), e.g. 12345")
        days.add(int(char))
    return frozenset(days)


def calendar_of(dealer: Mapping[Any, Any], holidays: Collection[date] = ()) -> BusinessCalendar:
    """The calendar of a dealer row (timezone, workdays, opens, closes) and its holidays."""
    name = dealer.get("dealer_id", "?")
    try:
        return BusinessCalendar(
            timezone=str(dealer.get("timezone") or "UTC"),
            workdays=parse_workdays(str(dealer.get("workdays") or "12345")),
            opens=_clock_time(str(dealer.get("opens") or "08:00"), "opens"),
            closes=_clock_time(str(dealer.get("closes") or "18:00"), "closes"),
            holidays=frozenset(holidays),
        )
    except ConfigError as exc:
        raise ConfigError(f"dealer {name}'s business calendar: {exc}") from None
