"""The group's scheduled actions read back: when they fire next, and how long they kept the host up.

infra/schedule.py writes them as `M H * * DAYS` crons in the team's time zone (DAYS: `*`, `1-5`, `1,3,5`, cron's
0 = Sunday); that is the form read here. Pure functions.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Recurrence:
    minute: int
    hour: int
    days: frozenset[int]  # cron day-of-week numbers, 0 = Sunday .. 6 = Saturday
    time_zone: str

    @classmethod
    def parse(cls, cron: str, time_zone: str | None) -> Recurrence:
        fields = cron.split()
        if len(fields) != 5 or fields[2:4] != ["*", "*"]:
            raise ValueError(f"recurrence {cron!r} is not of the form `M H * * DAYS`")
        return cls(int(fields[0]), int(fields[1]), _days(fields[4]), time_zone or "UTC")

    def firings(self, since: datetime.datetime, until: datetime.datetime) -> Iterator[datetime.datetime]:
        """Every firing in [since, until), as aware datetimes."""
        zone = ZoneInfo(self.time_zone)
        day = since.astimezone(zone).date() - datetime.timedelta(days=1)
        while True:
            moment = datetime.datetime.combine(day, datetime.time(self.hour, self.minute), tzinfo=zone)
            if moment >= until:
                return
            if moment >= since and (day.isoweekday() % 7) in self.days:
                yield moment
            day += datetime.timedelta(days=1)

    def next_after(self, now: datetime.datetime) -> datetime.datetime | None:
        return next(self.firings(now, now + datetime.timedelta(days=8)), None)


def _days(field: str) -> frozenset[int]:
    if field == "*":
        return frozenset(range(7))
    days: set[int] = set()
    for item in field.split(","):
        first, _, last = item.partition("-")
        days.update(range(int(first), int(last or first) + 1))
    return frozenset(day % 7 for day in days)  # 7 is Sunday too


def up_hours(start: Recurrence, stop: Recurrence, since: datetime.datetime, until: datetime.datetime) -> float:
    """Hours in [since, until) that the schedule kept the group at 1 (the state at `since` from the week before)."""
    week = datetime.timedelta(days=8)
    events = sorted(
        [(moment, True) for moment in start.firings(since - week, until)]
        + [(moment, False) for moment in stop.firings(since - week, until)]
    )
    running = False
    total = 0.0
    previous = since
    for moment, starts in events:
        if moment <= since:
            running = starts
            continue
        if running:
            total += (moment - previous).total_seconds()
        running, previous = starts, moment
    if running:
        total += (until - previous).total_seconds()
    return total / 3600
