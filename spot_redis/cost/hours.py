"""Hours a working-hours schedule keeps the host up, counted in the team's time zone (DST included).

Each working day is counted in local time: from `start` to `end` on that local date, converted to UTC, so a day
whose clocks change inside the working hours counts the hours that really pass (23:00-04:00 UTC schedules and a
March change in New York alike). Always-on is AWS's month of 730 hours.
"""

from __future__ import annotations

import calendar
import datetime
from zoneinfo import ZoneInfo

from infra.schedule import WorkingHours

ALWAYS_ON_HOURS = 730.0
# The average month: the hours of a whole leap cycle (2027-2030: 1,461 days) divided by its 48 months.
AVERAGE_YEARS = (2027, 2028, 2029, 2030)


def day_hours(hours: WorkingHours, day: datetime.date) -> float:
    """The hours the host runs on local date `day` (0 when it is not a working day)."""
    if day.isoweekday() not in hours.days:
        return 0.0
    zone = ZoneInfo(hours.time_zone)
    start = datetime.datetime.combine(day, hours.start, tzinfo=zone).astimezone(datetime.UTC)
    end = datetime.datetime.combine(day, hours.end, tzinfo=zone).astimezone(datetime.UTC)
    # Aware datetimes of one zone subtract as wall clocks: only UTC gives the hours that pass.
    return (end - start).total_seconds() / 3600


def month_hours(hours: WorkingHours | None, year: int, month: int) -> float:
    """The hours of one calendar month (local dates of the team's zone)."""
    if hours is None:
        return calendar.monthrange(year, month)[1] * 24.0
    days = calendar.monthrange(year, month)[1]
    return sum(day_hours(hours, datetime.date(year, month, n)) for n in range(1, days + 1))


def average_month_hours(hours: WorkingHours | None) -> float:
    """The hours of an average month: 730 always on, else the mean over a leap cycle of real months."""
    if hours is None:
        return ALWAYS_ON_HOURS
    total = sum(month_hours(hours, year, month) for year in AVERAGE_YEARS for month in range(1, 13))
    return total / (12 * len(AVERAGE_YEARS))


def parse_month(text: str) -> tuple[int, int]:
    """'2027-03' -> (2027, 3); ValueError with a sentence otherwise."""
    try:
        moment = datetime.datetime.strptime(text, "%Y-%m")
    except ValueError:
        raise ValueError(f"--month {text!r} is not a month YYYY-MM (e.g. 2027-03)") from None
    return moment.year, moment.month
