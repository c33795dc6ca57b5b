"""Working hours parse strictly, and the DLM snapshot crons (UTC) agree with the ASG's scheduled actions (local).

The agreement is checked by an evaluator written here, independently of infra.schedule: it enumerates every
firing of both schedules over a whole year, DST changes included.
"""

import datetime
import re
from bisect import bisect_right
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from infra.schedule import (
    ScheduleError,
    WorkingHours,
    asg_recurrences,
    is_working_time,
    parse_clock,
    parse_days,
    snapshot_crons,
    working_hours,
)

YEAR = 2027
UTC = datetime.UTC
ONE_HOUR = datetime.timedelta(hours=1)
DLM_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
DLM_CRON = re.compile(r"cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)")


# --- an independent evaluator for both kinds of cron ---------------------------------------------------------------


def expand(field: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    """A cron field ('*', '?', '1,3', '2-6', 'MON-FRI', '0/4') -> the values it matches."""
    if field in ("*", "?"):
        return set(range(low, high + 1))
    values: set[int] = set()
    for part in field.split(","):
        span, _, step = part.partition("/")
        first, _, last = span.partition("-")
        start = (names or {}).get(first) or int(first)
        end = ((names or {}).get(last) or int(last)) if last else (high if step else start)
        assert low <= start <= end <= high, f"field {field!r} out of {low}..{high}"
        values.update(range(start, end + 1, int(step or 1)))
    return values


def days_of(year: int) -> list[datetime.date]:
    first = datetime.date(year, 1, 1)
    return [first + datetime.timedelta(days=n) for n in range((datetime.date(year + 1, 1, 1) - first).days)]


def dlm_firings(cron: str, year: int) -> list[datetime.datetime]:
    """Every instant a DLM cron(Minutes Hours Day-of-month Month Day-of-week Year) fires in a year (UTC)."""
    match = DLM_CRON.fullmatch(cron)
    assert match, f"not a DLM cron: {cron!r}"
    minutes, hours, dom, months, dow, years = match.groups()
    assert (dom == "?") != (dow == "?"), f"exactly one of day-of-month and day-of-week must be '?': {cron!r}"
    if year not in expand(years, 1970, 2199):
        return []
    month_set, dom_set, dow_set = expand(months, 1, 12), expand(dom, 1, 31), expand(dow, 1, 7, DLM_DAYS)
    times = [(hour, minute) for hour in sorted(expand(hours, 0, 23)) for minute in sorted(expand(minutes, 0, 59))]
    return [
        datetime.datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
        for day in days_of(year)
        if day.month in month_set and day.day in dom_set and day.isoweekday() % 7 + 1 in dow_set
        for hour, minute in times
    ]


def asg_firings(recurrence: str, zone: ZoneInfo, year: int) -> list[datetime.datetime]:
    """Every instant a scheduled action's Unix cron (local time in zone) fires, from the last week of year - 1."""
    minutes, hours, dom, months, dow = recurrence.split()
    assert (dom, months) == ("*", "*"), recurrence
    weekdays = {day % 7 for day in expand(dow, 0, 7)}  # 0 and 7 are both Sunday
    times = [(hour, minute) for hour in sorted(expand(hours, 0, 23)) for minute in sorted(expand(minutes, 0, 59))]
    return [
        datetime.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).astimezone(UTC)
        for day in days_of(year - 1)[-7:] + days_of(year)
        if day.isoweekday() % 7 in weekdays
        for hour, minute in times
    ]


def schedule_problems(hours: WorkingHours, dlm_crons: list[str], asg: tuple[str, str], year: int = YEAR) -> list[str]:
    """What is wrong between the snapshot crons and the scale-up/down actions over a year ([] if nothing)."""
    zone = ZoneInfo(hours.time_zone)
    scale_up, scale_down = asg
    actions = sorted(
        [(t, 1) for t in asg_firings(scale_up, zone, year)] + [(t, 0) for t in asg_firings(scale_down, zone, year)]
    )
    action_times = [t for t, _ in actions]
    snapshots = local_year_snapshots(dlm_crons, zone, year)
    problems = []
    for snapshot in snapshots:
        since, capacity = actions[bisect_right(action_times, snapshot) - 1]
        when = f"{snapshot.astimezone(zone):%a %Y-%m-%d %H:%M %Z} ({snapshot:%H:%M} UTC)"
        if capacity != 1:
            problems.append(f"snapshot {when} while the host is scaled down")
        elif snapshot - since < ONE_HOUR:
            problems.append(f"snapshot {when} only {snapshot - since} after scale-up")
    snapshot_days = {t.astimezone(zone).date() for t in snapshots}
    problems += [
        f"no snapshot on working day {day:%a %Y-%m-%d}"
        for day in days_of(year)
        if day.isoweekday() in hours.days and day not in snapshot_days
    ]
    return problems


def local_year_snapshots(crons: list[str], zone: ZoneInfo, year: int) -> list[datetime.datetime]:
    """The firings whose local date is in year: its first and last days may begin or end in another UTC year."""
    firings = (t for cron in crons for utc_year in (year - 1, year, year + 1) for t in dlm_firings(cron, utc_year))
    return sorted(t for t in firings if t.astimezone(zone).year == year)


def snapshots_per_local_day(hours: WorkingHours, crons: list[str]) -> set[int]:
    zone = ZoneInfo(hours.time_zone)
    local_days = [t.astimezone(zone).date() for t in local_year_snapshots(crons, zone, YEAR)]
    return {local_days.count(day) for day in set(local_days)}


# --- parsing ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("Mon-Fri", (1, 2, 3, 4, 5)),
        ("mon,WED,Fri", (1, 3, 5)),
        ("Mon-Wed,Fri", (1, 2, 3, 5)),
        ("Sat-Sun", (6, 7)),
        ("Sun", (7,)),
        ("Fri, Mon", (1, 5)),
        ("Mon-Sun", (1, 2, 3, 4, 5, 6, 7)),
    ],
)
def test_parse_days_reads_names_ranges_and_lists(text, days):
    assert parse_days(text) == days


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "'' is not a day"),
        ("Fri-Mon", "must run forward"),
        ("Mon-Mon", "must run forward"),
        ("Mon,Mon", "name Mon more than once"),
        ("Mon-Wed,Tue", "name Tue more than once"),
        ("Monday", "'Monday' is not a day"),
        ("Mo-Fr", "'Mo' is not a day"),
        ("Mon,,Fri", "'' is not a day"),
        ("Mon-", "'' is not a day"),
        ("Mon-Wed-Fri", "'Wed-Fri' is not a day"),
        ("1-5", "'1' is not a day"),
    ],
)
def test_parse_days_refuses_anything_else(text, message):
    with pytest.raises(ScheduleError, match=re.escape(message)):
        parse_days(text)


@pytest.mark.parametrize(
    ("text", "clock"),
    [
        ("09:00", datetime.time(9)),
        ("9:30", datetime.time(9, 30)),
        ("00:00", datetime.time(0)),
        (" 23:59", datetime.time(23, 59)),
    ],
)
def test_parse_clock_reads_hours_and_minutes(text, clock):
    assert parse_clock(text) == clock


ARABIC_INDIC_NINE_O_CLOCK = "\u0660\u0669:\u0660\u0660"  # digits that a bare \d would accept


@pytest.mark.parametrize(
    "text", ["24:00", "9", "09:60", "9:5", "09:00:00", "", "nine", "-1:00", "9h30", ARABIC_INDIC_NINE_O_CLOCK, "009:00"]
)
def test_parse_clock_refuses_anything_else(text):
    with pytest.raises(ScheduleError, match=re.escape(f"time {text!r} is not a clock time HH:MM")):
        parse_clock(text)


def test_working_hours_builds_the_validated_value():
    assert working_hours("Mon-Fri", "9:00", "19:30", "Asia/Tokyo") == WorkingHours(
        (1, 2, 3, 4, 5), datetime.time(9), datetime.time(19, 30), "Asia/Tokyo"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("Mon-Fri", "09:00", "18:00", "Asia/Tokio"), "unknown time zone 'Asia/Tokio'"),
        (("Mon-Fri", "09:00", "18:00", ""), "unknown time zone ''"),
        (("Mon-Fri", "09:00", "18:00", "../etc/passwd"), "unknown time zone '../etc/passwd'"),
        (("Mon-Fri", "18:00", "09:00", "Asia/Tokyo"), "end 09:00 must be after start 18:00"),
        (("Mon-Fri", "09:00", "09:00", "Asia/Tokyo"), "end 09:00 must be after start 09:00"),
        (("Mon-Fri", "09:00", "09:59", "Asia/Tokyo"), "09:00-09:59 must be at least 1 hour long"),
        (("Fri-Mon", "09:00", "18:00", "Asia/Tokyo"), "must run forward"),
        (("Mon-Fri", "9", "18:00", "Asia/Tokyo"), "time '9' is not a clock time"),
    ],
)
def test_working_hours_refuses_what_cannot_be_scheduled(arguments, message):
    with pytest.raises(ScheduleError, match=re.escape(message)):
        working_hours(*arguments)


@pytest.mark.parametrize("days", [(), (5, 1), (1, 1), (0, 1), (1, 8)])
def test_working_hours_built_directly_are_validated_too(days):
    with pytest.raises(ScheduleError, match="days must be sorted unique ISO weekdays"):
        WorkingHours(days, datetime.time(9), datetime.time(18), "Asia/Tokyo")


# --- the ASG's scheduled actions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "start", "end", "recurrences"),
    [
        ("Mon-Fri", "09:00", "19:00", ("0 9 * * 1-5", "0 19 * * 1-5")),
        ("Mon,Wed,Fri", "8:30", "17:45", ("30 8 * * 1,3,5", "45 17 * * 1,3,5")),
        ("Sat-Sun", "10:00", "16:00", ("0 10 * * 0,6", "0 16 * * 0,6")),
        ("Mon-Wed,Fri,Sun", "07:05", "20:00", ("5 7 * * 0-3,5", "0 20 * * 0-3,5")),
        ("Mon-Sun", "00:00", "23:59", ("0 0 * * *", "59 23 * * *")),
    ],
)
def test_asg_recurrences_are_local_unix_crons(days, start, end, recurrences):
    assert asg_recurrences(working_hours(days, start, end, "Europe/Berlin")) == recurrences


# --- the DLM snapshot crons --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "crons"),
    [
        (("Mon-Fri", "09:00", "19:00", "Asia/Tokyo"), ["cron(0 1,3,5,7,9 ? * MON-FRI *)"]),
        (
            ("Mon-Fri", "09:00", "18:00", "America/Los_Angeles"),
            ["cron(0 18,20,22 ? * MON-FRI *)", "cron(0 0 ? * TUE-SAT *)"],
        ),
        (("Mon-Fri", "09:00", "19:00", "Europe/Berlin"), ["cron(0 9,11,13,15 ? * MON-FRI *)"]),
        (("Mon-Fri", "09:00", "18:00", "Asia/Kolkata"), ["cron(30 4,6,8,10 ? * MON-FRI *)"]),
        (
            ("Mon-Fri", "09:00", "17:00", "Pacific/Auckland"),
            ["cron(0 0,2 ? * MON-FRI *)", "cron(0 22 ? * SUN-THU *)"],
        ),
        (("Mon-Sun", "09:00", "12:00", "UTC"), ["cron(0 10 * * ? *)"]),
    ],
)
def test_snapshot_crons_for_known_zones(arguments, crons):
    assert snapshot_crons(working_hours(*arguments), 2) == crons


@pytest.mark.parametrize(
    "arguments",
    [
        ("Mon-Fri", "09:00", "19:00", "Asia/Tokyo"),  # east of UTC, no DST
        ("Mon-Fri", "09:00", "18:00", "America/Los_Angeles"),  # west, DST, crosses midnight UTC
        ("Mon-Fri", "09:00", "18:00", "Europe/Berlin"),
        ("Mon-Fri", "09:00", "18:00", "Asia/Kolkata"),  # +05:30
        ("Mon-Fri", "09:00", "17:00", "Pacific/Auckland"),  # southern DST, the previous UTC day
        ("Mon,Wed,Fri", "08:30", "12:30", "America/New_York"),
        ("Sat-Sun", "10:15", "16:45", "Australia/Lord_Howe"),  # a half-hour DST change
    ],
)
@pytest.mark.parametrize("every_hours", [1, 2, 3, 4, 6, 8, 12, 24])
def test_snapshots_fall_while_the_host_is_up_and_booted_every_working_day(arguments, every_hours):
    hours = working_hours(*arguments)
    crons = snapshot_crons(hours, every_hours)
    assert 1 <= len(crons) <= 4
    assert schedule_problems(hours, crons, asg_recurrences(hours)) == []


@pytest.mark.parametrize(
    "time_zone",
    [
        "Pacific/Chatham",
        "Pacific/Kiritimati",
        "Pacific/Pago_Pago",
        "America/Sao_Paulo",
        "Europe/London",
        "Australia/Sydney",
        "Antarctica/Troll",
        "America/St_Johns",
        "Asia/Kathmandu",
    ],
)
@pytest.mark.parametrize(
    ("days", "start", "end"),
    [
        ("Mon-Fri", "09:00", "18:00"),
        ("Sat-Sun", "07:15", "11:45"),
        ("Mon-Sun", "00:00", "04:00"),
        ("Fri", "20:00", "23:59"),
    ],
)
def test_snapshots_agree_with_the_asg_in_awkward_zones(time_zone, days, start, end):
    hours = working_hours(days, start, end, time_zone)
    for every_hours in (1, 3, 8):
        crons = snapshot_crons(hours, every_hours)
        assert schedule_problems(hours, crons, asg_recurrences(hours)) == [], crons


def test_snapshots_keep_the_interval_rather_than_doubling_under_dst():
    hours = working_hours("Mon-Fri", "09:00", "18:00", "America/Los_Angeles")
    # local 10:00, 12:00, 14:00, 16:00: at most 4 a day, whichever offset is in force
    assert snapshots_per_local_day(hours, snapshot_crons(hours, 2)) == {4}


def test_snapshots_start_at_the_start_minute():
    hours = working_hours("Mon-Fri", "07:45", "17:00", "Asia/Tokyo")
    # 08:45, 12:45 and 16:45 in Tokyo; the first is on the previous day in UTC
    assert snapshot_crons(hours, 4) == ["cron(45 3,7 ? * MON-FRI *)", "cron(45 23 ? * SUN-THU *)"]


@pytest.mark.parametrize("every_hours", [1, 2, 3, 4, 6, 8, 12, 24])
def test_always_on_snapshots_every_interval_all_year(every_hours):
    (cron,) = snapshot_crons(None, every_hours)
    firings = dlm_firings(cron, YEAR)
    assert firings[0] == datetime.datetime(YEAR, 1, 1, tzinfo=UTC)
    assert len(firings) == 365 * 24 // every_hours
    assert {b - a for a, b in pairwise(firings)} == {datetime.timedelta(hours=every_hours)}


@pytest.mark.parametrize("every_hours", [0, 5, 7, 48, -2, True, 2.0, "2"])
def test_snapshot_interval_must_divide_a_day(every_hours):
    with pytest.raises(ScheduleError, match=r"snapshot interval must be one of \(1, 2, 3, 4, 6, 8, 12, 24\) hours"):
        snapshot_crons(None, every_hours)


@pytest.mark.parametrize(
    "arguments",
    [
        ("Mon-Fri", "09:00", "10:00", "Asia/Tokyo"),  # the boot hour takes it all
        ("Mon-Fri", "09:00", "11:00", "America/Los_Angeles"),  # 10:00 PST is 11:00 PDT: the DST margin takes the rest
        ("Mon-Fri", "09:00", "12:00", "Antarctica/Troll"),  # a two-hour DST change
    ],
)
def test_hours_too_short_for_a_safe_snapshot_are_refused(arguments):
    with pytest.raises(ScheduleError, match="are too short for snapshots"):
        snapshot_crons(working_hours(*arguments), 1)


# --- the checker can fail ----------------------------------------------------------------------------------------

TOKYO = ("Mon-Fri", "09:00", "19:00", "Asia/Tokyo")
LOS_ANGELES = ("Mon-Fri", "09:00", "18:00", "America/Los_Angeles")
BERLIN = ("Mon-Fri", "09:00", "19:00", "Europe/Berlin")
KOLKATA = ("Mon-Fri", "09:00", "18:00", "Asia/Kolkata")


@pytest.mark.parametrize(
    ("arguments", "crons", "asg", "problem"),
    [
        # an hour early: 09:00 PST is the scale-up itself
        (LOS_ANGELES, ["cron(0 17,20,22 ? * MON-FRI *)", "cron(0 0 ? * TUE-SAT *)"], None, "0:00:00 after scale-up"),
        # the day not shifted across UTC midnight: Monday 00:00 UTC is Sunday afternoon in Los Angeles
        (
            LOS_ANGELES,
            ["cron(0 18,20,22 ? * MON-FRI *)", "cron(0 0 ? * MON-FRI *)"],
            None,
            "while the host is scaled down",
        ),
        # an hour late: 19:00 in Tokyo is the scale-down
        (
            TOKYO,
            ["cron(0 1,3,5,7,9,10 ? * MON-FRI *)"],
            None,
            "Fri 2027-01-01 19:00 JST (10:00 UTC) while the host is scaled down",
        ),
        # days shifted the wrong way: Sunday morning in Tokyo
        (
            TOKYO,
            ["cron(0 1,3 ? * SUN-THU *)"],
            None,
            "Sun 2027-01-03 10:00 JST (01:00 UTC) while the host is scaled down",
        ),
        # Friday forgotten
        (TOKYO, ["cron(0 1,3 ? * MON-THU *)"], None, "no snapshot on working day Fri 2027-01-01"),
        # the summer-time grid: fine in summer, at the scale-up in winter
        (BERLIN, ["cron(0 8,10 ? * MON-FRI *)"], None, "Fri 2027-01-01 09:00 CET (08:00 UTC) only 0:00:00 after"),
        # the half hour forgotten: 09:30 IST is only 30 minutes after the scale-up
        (KOLKATA, ["cron(0 4,6 ? * MON-FRI *)"], None, "only 0:30:00 after scale-up"),
        # the ASG side wrong instead: scaling up an hour later than the hours say
        (TOKYO, None, ("0 10 * * 1-5", "0 19 * * 1-5"), "10:00 JST (01:00 UTC) only 0:00:00 after scale-up"),
        # the ASG scaling down an hour early in Los Angeles, seen only across UTC midnight
        (LOS_ANGELES, None, ("0 9 * * 1-5", "0 17 * * 1-5"), "while the host is scaled down"),
    ],
)
def test_the_checker_catches_schedules_that_disagree(arguments, crons, asg, problem):
    hours = working_hours(*arguments)
    problems = schedule_problems(hours, crons or snapshot_crons(hours, 2), asg or asg_recurrences(hours))
    assert any(problem in p for p in problems), problems[:5]


def test_is_working_time_reads_the_moment_in_the_teams_zone():
    tokyo = working_hours("Mon-Fri", "09:00", "19:00", "Asia/Tokyo")
    utc = datetime.UTC
    assert is_working_time(tokyo, datetime.datetime(2026, 11, 23, 0, 0, tzinfo=utc))  # Monday 09:00 in Tokyo
    assert not is_working_time(tokyo, datetime.datetime(2026, 11, 22, 23, 59, tzinfo=utc))  # Monday 08:59
    assert not is_working_time(tokyo, datetime.datetime(2026, 11, 23, 10, 0, tzinfo=utc))  # Monday 19:00
    assert not is_working_time(tokyo, datetime.datetime(2026, 11, 22, 3, 0, tzinfo=utc))  # Sunday noon
    assert is_working_time(None, datetime.datetime(2026, 11, 22, 3, 0, tzinfo=utc))  # always on
