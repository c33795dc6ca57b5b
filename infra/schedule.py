"""Working hours: the ASG's scheduled actions (local time) and the DLM snapshot crons (UTC) that agree with them.

Pure functions, standard library only. A UTC cron cannot follow daylight saving time, so snapshot times are kept
only when they fall inside working hours under every UTC offset the zone takes.
"""

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from itertools import groupby
from zoneinfo import ZoneInfo, available_timezones

DAY_NAMES = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")  # index + 1 = ISO weekday
SNAPSHOT_INTERVALS = (1, 2, 3, 4, 6, 8, 12, 24)  # hours that divide a day evenly
MAX_DLM_SCHEDULES = 4
BOOT_MARGIN_MINUTES = 60  # the host boots and loads its data before the first snapshot
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
OFFSET_SAMPLE_YEARS = 3  # this year and the next two: the offsets a deployed policy will live through

_CLOCK = re.compile(r"([0-9]{1,2}):([0-9]{2})")


class ScheduleError(ValueError):
    """Working hours or a snapshot interval that cannot be scheduled; the message says why."""


@dataclass(frozen=True)
class WorkingHours:
    days: tuple[int, ...]  # ISO weekday numbers 1=Mon .. 7=Sun, sorted, unique
    start: datetime.time  # local, minute resolution
    end: datetime.time  # local, end > start (same day)
    time_zone: str  # IANA name, e.g. "Asia/Tokyo"

    def __post_init__(self) -> None:
        if not self.days or list(self.days) != sorted(set(self.days)) or not set(self.days) <= set(range(1, 8)):
            raise ScheduleError(f"days must be sorted unique ISO weekdays 1..7, got {self.days!r}")
        for clock in (self.start, self.end):
            if clock.second or clock.microsecond or clock.tzinfo:
                raise ScheduleError(f"times are local hours and minutes, got {clock!r}")
        if self.end <= self.start:
            raise ScheduleError(f"end {self.end:%H:%M} must be after start {self.start:%H:%M}")
        if _minute_of_day(self.end) - _minute_of_day(self.start) < 60:
            raise ScheduleError(f"working hours {self.start:%H:%M}-{self.end:%H:%M} must be at least 1 hour long")
        if self.time_zone not in _known_time_zones():
            raise ScheduleError(f"unknown time zone {self.time_zone!r}")


def parse_days(text: str) -> tuple[int, ...]:
    """'Mon-Fri', 'Mon,Wed,Fri', 'Mon-Wed,Fri' -> sorted ISO weekdays."""
    days: list[int] = []
    for item in text.split(","):
        days.extend(_parse_day_item(item.strip(), text))
    duplicates = sorted({day for day in days if days.count(day) > 1})
    if duplicates:
        raise ScheduleError(f"days {text!r} name {', '.join(_day_name(d) for d in duplicates)} more than once")
    return tuple(sorted(days))


def parse_clock(text: str) -> datetime.time:
    """'09:00' or '9:30' -> a time of day (00:00 .. 23:59)."""
    match = _CLOCK.fullmatch(text.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ScheduleError(f"time {text!r} is not a clock time HH:MM between 00:00 and 23:59")
    return datetime.time(int(match[1]), int(match[2]))


def working_hours(days: str, start: str, end: str, time_zone: str) -> WorkingHours:
    """Parse and validate working hours as written in the stack config."""
    return WorkingHours(parse_days(days), parse_clock(start), parse_clock(end), time_zone)


def asg_recurrences(hours: WorkingHours) -> tuple[str, str]:
    """(scale-up, scale-down) Unix crons in local time, for scheduled actions that carry the time zone."""
    cron_days = sorted(day % 7 for day in hours.days)  # cron: 0 = Sunday
    day_field = "*" if len(cron_days) == 7 else _runs_field(cron_days, str)
    return (
        f"{hours.start.minute} {hours.start.hour} * * {day_field}",
        f"{hours.end.minute} {hours.end.hour} * * {day_field}",
    )


def is_working_time(hours: WorkingHours | None, moment: datetime.datetime) -> bool:
    """Whether the host should be up at `moment` (an aware datetime): always, or inside the working hours."""
    if hours is None:
        return True
    local = moment.astimezone(ZoneInfo(hours.time_zone))
    return local.isoweekday() in hours.days and hours.start <= local.time() < hours.end


def snapshot_crons(hours: WorkingHours | None, every_hours: int) -> list[str]:
    """DLM create-rule cron expressions (UTC): always on when hours is None, else inside working hours."""
    if type(every_hours) is not int or every_hours not in SNAPSHOT_INTERVALS:
        raise ScheduleError(f"snapshot interval must be one of {SNAPSHOT_INTERVALS} hours, got {every_hours!r}")
    if hours is None:
        return [_dlm_cron(0, range(0, 24, every_hours), range(7))]
    slots = _utc_snapshot_slots(hours, every_hours)
    if not slots:
        raise ScheduleError(
            f"working hours {hours.start:%H:%M}-{hours.end:%H:%M} in {hours.time_zone} are too short for snapshots: "
            f"none falls {BOOT_MARGIN_MINUTES} min after start and before end under every UTC offset of the zone "
            f"({', '.join(_format_offset(o) for o in _zone_offsets(hours.time_zone))})"
        )
    crons = _group_into_crons(slots)
    if len(crons) > MAX_DLM_SCHEDULES:
        raise ScheduleError(f"snapshots need {len(crons)} schedules, DLM allows {MAX_DLM_SCHEDULES}: {crons}")
    return crons


def _parse_day_item(item: str, text: str) -> list[int]:
    first, dash, last = item.partition("-")
    start = _parse_day_name(first, text)
    if not dash:
        return [start]
    end = _parse_day_name(last, text)
    if end <= start:
        raise ScheduleError(f"day range {item!r} in {text!r} must run forward from Mon to Sun (no wrapping)")
    return list(range(start, end + 1))


def _parse_day_name(name: str, text: str) -> int:
    try:
        return DAY_NAMES.index(name.strip().upper()) + 1
    except ValueError:
        raise ScheduleError(f"days {text!r}: {name.strip()!r} is not a day (Mon, Tue, ... Sun)") from None


def _day_name(iso_day: int) -> str:
    return DAY_NAMES[iso_day - 1].title()


@cache
def _known_time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


@cache
def _zone_offsets(time_zone: str) -> tuple[int, ...]:
    """The zone's distinct UTC offsets in minutes, sampled daily over the coming years."""
    zone = ZoneInfo(time_zone)
    first = datetime.datetime(datetime.datetime.now(datetime.UTC).year, 1, 1, 12, tzinfo=datetime.UTC)
    days = range(366 * OFFSET_SAMPLE_YEARS)
    offsets = {(first + datetime.timedelta(days=n)).astimezone(zone).utcoffset() for n in days}
    return tuple(sorted(int(offset.total_seconds()) // 60 for offset in offsets))


def _minute_of_day(clock: datetime.time) -> int:
    return clock.hour * 60 + clock.minute


def _snapshot_window(hours: WorkingHours) -> range:
    """Local minutes of the day when a snapshot may be taken."""
    return range(_minute_of_day(hours.start) + BOOT_MARGIN_MINUTES, _minute_of_day(hours.end))


def _is_in_window(hours: WorkingHours, local_minute_of_week: int) -> bool:
    day_index, minute = divmod(local_minute_of_week % MINUTES_PER_WEEK, MINUTES_PER_DAY)
    return day_index + 1 in hours.days and minute in _snapshot_window(hours)


def _utc_snapshot_slots(hours: WorkingHours, every_hours: int) -> list[int]:
    """UTC minutes of the week (0 = Monday 00:00) to snapshot at.

    The local grid is laid on UTC with each of the zone's offsets in turn; the grid that keeps the most times safe
    under every offset wins (ties: the smaller offset, standard time). One grid keeps the interval between
    snapshots, where the union of grids would double them.
    """
    offsets = _zone_offsets(hours.time_zone)
    window = _snapshot_window(hours)
    local_slots = [(day - 1) * MINUTES_PER_DAY + minute for day in hours.days for minute in window[:: every_hours * 60]]

    def safe_slots(grid_offset: int) -> list[int]:
        utc_slots = sorted((slot - grid_offset) % MINUTES_PER_WEEK for slot in local_slots)
        return [slot for slot in utc_slots if all(_is_in_window(hours, slot + offset) for offset in offsets)]

    return max((safe_slots(offset) for offset in offsets), key=len)


def _group_into_crons(slots: list[int]) -> list[str]:
    """One cron per (minute, set of UTC days), listing its hours; ordered by first firing from Monday 00:00 UTC."""
    days_by_time: dict[tuple[int, int], set[int]] = {}
    for slot in slots:
        day_index, minute_of_day = divmod(slot, MINUTES_PER_DAY)
        days_by_time.setdefault(divmod(minute_of_day, 60), set()).add(day_index)
    hours_by_group: dict[tuple[int, frozenset[int]], list[int]] = {}
    for (hour, minute), days in sorted(days_by_time.items()):
        hours_by_group.setdefault((minute, frozenset(days)), []).append(hour)
    ordered = sorted(hours_by_group.items(), key=lambda group: _first_slot(*group[0], group[1]))
    return [_dlm_cron(minute, hours, days) for (minute, days), hours in ordered]


def _first_slot(minute: int, days: frozenset[int], hours: list[int]) -> int:
    return min(days) * MINUTES_PER_DAY + hours[0] * 60 + minute


def _dlm_cron(minute: int, hours: range | list[int], day_indexes: range | frozenset[int]) -> str:
    """cron(Minutes Hours Day-of-month Month Day-of-week Year); one of the two day fields must be '?'."""
    hour_field = ",".join(str(hour) for hour in hours)
    if len(day_indexes) == 7:
        return f"cron({minute} {hour_field} * * ? *)"
    cron_days = sorted((index + 1) % 7 + 1 for index in day_indexes)  # DLM: 1 = SUN .. 7 = SAT
    day_field = _runs_field(cron_days, lambda number: DAY_NAMES[(number - 2) % 7])
    return f"cron({minute} {hour_field} ? * {day_field} *)"


def _runs_field(numbers: list[int], name: Callable[[int], str]) -> str:
    """[1, 2, 3, 5] -> '1-3,5' (with each number written by name)."""
    runs = [[n for _, n in run] for _, run in groupby(enumerate(numbers), key=lambda pair: pair[1] - pair[0])]
    return ",".join(name(run[0]) if len(run) == 1 else f"{name(run[0])}-{name(run[-1])}" for run in runs)


def _format_offset(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
