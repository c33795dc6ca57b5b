"""WORK_HOURS for the warm-up function: when a warm-up batch may be started.

The text is what infra/alerting.py's work_hours_text() writes, e.g. `Mon,Tue,Wed,Thu,Fri 09:00-19:00 Asia/Tokyo`;
day ranges such as `Mon-Fri` are accepted too. Empty means always on. Standard library only (the Lambda zip holds
no infra/ code), so this repeats the small part of infra/schedule.py that parses days and clock times.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # index + 1 = ISO weekday
_CLOCK = re.compile(r"([0-9]{1,2}):([0-9]{2})")


class WorkHoursError(ValueError):
    """WORK_HOURS that cannot be understood; the message says why."""


@dataclass(frozen=True)
class WorkHours:
    days: tuple[int, ...]  # ISO weekdays, 1 = Mon
    start: datetime.time
    end: datetime.time  # after start, same day
    zone: ZoneInfo
    text: str  # as configured, for log messages

    def contains(self, now: datetime.datetime) -> bool:
        """Whether an aware instant falls inside working hours (start inclusive, end exclusive)."""
        local = now.astimezone(self.zone)
        return local.isoweekday() in self.days and self.start <= local.time().replace(tzinfo=None) < self.end

    def why_outside(self, now: datetime.datetime) -> str:
        local = now.astimezone(self.zone)
        return f"it is {local:%a %H:%M} in {self.zone.key}, outside working hours {self.text}"


def parse_work_hours(text: str | None) -> WorkHours | None:
    """`DAYS HH:MM-HH:MM ZONE` -> WorkHours; empty or missing -> None (always on)."""
    text = (text or "").strip()
    if not text:
        return None
    parts = text.split()
    if len(parts) != 3:
        raise WorkHoursError(
            f"WORK_HOURS {text!r} is not 'DAYS HH:MM-HH:MM ZONE' (e.g. 'Mon-Fri 09:00-19:00 Asia/Tokyo')"
        )
    days_text, clocks, zone_name = parts
    start_text, dash, end_text = clocks.partition("-")
    if not dash:
        raise WorkHoursError(f"WORK_HOURS {text!r}: {clocks!r} is not a range HH:MM-HH:MM")
    start, end = _clock(start_text, text), _clock(end_text, text)
    if end <= start:
        raise WorkHoursError(f"WORK_HOURS {text!r}: end {end:%H:%M} must be after start {start:%H:%M}")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise WorkHoursError(f"WORK_HOURS {text!r}: unknown time zone {zone_name!r}") from None
    return WorkHours(_days(days_text, text), start, end, zone, text)


def _days(days_text: str, text: str) -> tuple[int, ...]:
    days: set[int] = set()
    for item in days_text.split(","):
        first, dash, last = item.partition("-")
        start = _day(first, text)
        end = _day(last, text) if dash else start
        if end < start:
            raise WorkHoursError(f"WORK_HOURS {text!r}: day range {item!r} must run forward from Mon to Sun")
        days.update(range(start, end + 1))
    return tuple(sorted(days))


def _day(name: str, text: str) -> int:
    wanted = name.strip().lower()
    for number, day in enumerate(DAY_NAMES, start=1):
        if day.lower() == wanted:
            return number
    raise WorkHoursError(f"WORK_HOURS {text!r}: {name.strip()!r} is not a day (Mon, Tue, ... Sun)")


def _clock(value: str, text: str) -> datetime.time:
    match = _CLOCK.fullmatch(value.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise WorkHoursError(f"WORK_HOURS {text!r}: {value!r} is not a clock time HH:MM between 00:00 and 23:59")
    return datetime.time(int(match[1]), int(match[2]))
