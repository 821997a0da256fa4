"""Tests for contracts.schedules: schedules, cap periods, caps and budget validation."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest

from contracts.schedules import (
    CAP_PERIODS,
    TOTAL_START,
    Schedule,
    ScheduleError,
    budget_validate,
    caps_validate,
    period_bounds,
    period_key,
    schedule_compile,
    schedule_validate,
)

NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
SYDNEY = ZoneInfo("Australia/Sydney")
KOLKATA = ZoneInfo("Asia/Kolkata")
SANTIAGO = ZoneInfo("America/Santiago")
HAVANA = ZoneInfo("America/Havana")
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
APIA = ZoneInfo("Pacific/Apia")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
TORONTO = ZoneInfo("America/Toronto")

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
OFFICE_HOURS = {"days": WEEKDAYS, "hours": ["08:00", "20:00"]}


def at(tz: tzinfo, *parts: int, fold: int = 0) -> datetime:
    """An aware datetime from (year, month, day[, hour[, minute[, second[, microsecond]]]])."""
    year, month, day, hour, minute, second, micro = (*parts, 0, 0, 0, 0)[:7]
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz, fold=fold)


def utc(*parts: int) -> datetime:
    return at(UTC, *parts)


def open_minutes(schedule: Schedule, tz: ZoneInfo, start: datetime, end: datetime) -> int:
    """Real (elapsed) minutes in [start, end) during which the schedule is open."""
    count = 0
    moment = start
    while moment < end:
        count += schedule.is_open(moment, tz)
        moment += timedelta(minutes=1)
    return count


# --- schedules: is_open ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        # Wednesday 2026-11-18
        ((2026, 11, 18, 0, 0), False),
        ((2026, 11, 18, 7, 59), False),
        ((2026, 11, 18, 7, 59, 59, 999999), False),
        ((2026, 11, 18, 8, 0), True),
        ((2026, 11, 18, 12, 0), True),
        ((2026, 11, 18, 19, 59), True),
        ((2026, 11, 18, 19, 59, 59, 999999), True),
        ((2026, 11, 18, 20, 0), False),
        ((2026, 11, 18, 23, 59), False),
        # Monday start, Friday end, weekend closed
        ((2026, 11, 16, 8, 0), True),
        ((2026, 11, 20, 19, 59), True),
        ((2026, 11, 20, 20, 0), False),
        ((2026, 11, 21, 12, 0), False),
        ((2026, 11, 22, 12, 0), False),
    ],
)
def test_office_hours_edges_and_days(local: tuple[int, ...], expected: bool) -> None:
    schedule = schedule_compile(OFFICE_HOURS)
    assert schedule.is_open(at(NY, *local), NY) is expected


@pytest.mark.parametrize("raw", [None, {}])
@pytest.mark.parametrize(
    "local",
    [(2026, 11, 16, 0, 0), (2026, 11, 18, 12, 0), (2026, 11, 22, 23, 59, 59)],
)
def test_empty_schedule_is_always_open(raw: object, local: tuple[int, ...]) -> None:
    schedule = schedule_compile(raw)
    assert schedule.always_open
    assert schedule.is_open(at(NY, *local), NY) is True


@pytest.mark.parametrize(
    ("raw", "local", "expected"),
    [
        # days only: the whole day
        ({"days": ["sat"]}, (2026, 11, 20, 23, 59), False),
        ({"days": ["sat"]}, (2026, 11, 21, 0, 0), True),
        ({"days": ["sat"]}, (2026, 11, 21, 23, 59), True),
        ({"days": ["sat"]}, (2026, 11, 22, 0, 0), False),
        # hours only: every day, weekends included
        ({"hours": ["08:00", "20:00"]}, (2026, 11, 22, 8, 0), True),
        ({"hours": ["08:00", "20:00"]}, (2026, 11, 22, 20, 0), False),
        ({"hours": ["08:00", "20:00"]}, (2026, 11, 21, 7, 59), False),
    ],
)
def test_days_and_hours_default_independently(raw: object, local: tuple[int, ...], expected: bool) -> None:
    assert schedule_compile(raw).is_open(at(NY, *local), NY) is expected


@pytest.mark.parametrize(
    ("raw", "local", "expected"),
    [
        # Friday night into Saturday; the after-midnight part belongs to Friday's window
        ({"days": ["fri"], "hours": ["22:00", "02:00"]}, (2026, 11, 20, 21, 59), False),
        ({"days": ["fri"], "hours": ["22:00", "02:00"]}, (2026, 11, 20, 22, 0), True),
        ({"days": ["fri"], "hours": ["22:00", "02:00"]}, (2026, 11, 20, 23, 59), True),
        ({"days": ["fri"], "hours": ["22:00", "02:00"]}, (2026, 11, 21, 0, 0), True),
        ({"days": ["fri"], "hours": ["22:00", "02:00"]}, (2026, 11, 21, 1, 59), True),
        ({"days": ["fri"], "hours": ["22:00", "02:00"]}, (2026, 11, 21, 2, 0), False),
        ({"days": ["fri"], "hours": ["22:00", "02:00"]}, (2026, 11, 21, 22, 0), False),
        # Friday 01:00 would be Thursday night's window, and Thursday is not listed
        ({"days": ["fri"], "hours": ["22:00", "02:00"]}, (2026, 11, 20, 1, 0), False),
        # Sunday night wraps into Monday
        ({"days": ["sun"], "hours": ["23:00", "01:00"]}, (2026, 11, 22, 23, 0), True),
        ({"days": ["sun"], "hours": ["23:00", "01:00"]}, (2026, 11, 23, 0, 30), True),
        ({"days": ["sun"], "hours": ["23:00", "01:00"]}, (2026, 11, 23, 1, 0), False),
        ({"days": ["sun"], "hours": ["23:00", "01:00"]}, (2026, 11, 22, 0, 30), False),
        # per-day overnight window
        ({"windows": {"sat": [["22:00", "03:00"]]}}, (2026, 11, 22, 2, 59), True),
        ({"windows": {"sat": [["22:00", "03:00"]]}}, (2026, 11, 22, 3, 0), False),
        ({"windows": {"sat": [["22:00", "03:00"]]}}, (2026, 11, 21, 2, 0), False),
        # an overnight window ending at 00:00 is the same as ending at 24:00
        ({"hours": ["22:00", "00:00"]}, (2026, 11, 18, 23, 59), True),
        ({"hours": ["22:00", "00:00"]}, (2026, 11, 19, 0, 0), False),
    ],
)
def test_overnight_windows(raw: object, local: tuple[int, ...], expected: bool) -> None:
    assert schedule_compile(raw).is_open(at(NY, *local), NY) is expected


@pytest.mark.parametrize(
    ("raw", "local", "expected"),
    [
        ({"hours": ["20:00", "24:00"]}, (2026, 11, 18, 19, 59), False),
        ({"hours": ["20:00", "24:00"]}, (2026, 11, 18, 20, 0), True),
        ({"hours": ["20:00", "24:00"]}, (2026, 11, 18, 23, 59, 59, 999999), True),
        ({"hours": ["20:00", "24:00"]}, (2026, 11, 19, 0, 0), False),
        ({"days": ["mon"], "hours": ["00:00", "24:00"]}, (2026, 11, 16, 0, 0), True),
        ({"days": ["mon"], "hours": ["00:00", "24:00"]}, (2026, 11, 16, 23, 59), True),
        ({"days": ["mon"], "hours": ["00:00", "24:00"]}, (2026, 11, 17, 0, 0), False),
        ({"days": ["mon"], "hours": ["00:00", "24:00"]}, (2026, 11, 15, 23, 59), False),
    ],
)
def test_end_of_day_24_00(raw: object, local: tuple[int, ...], expected: bool) -> None:
    assert schedule_compile(raw).is_open(at(NY, *local), NY) is expected


SPLIT_WEEK = {"windows": {"mon": [["08:00", "12:00"], ["13:00", "20:00"]], "sat": [["10:00", "14:00"]]}}


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ((2026, 11, 16, 7, 59), False),
        ((2026, 11, 16, 8, 0), True),
        ((2026, 11, 16, 11, 59), True),
        ((2026, 11, 16, 12, 0), False),
        ((2026, 11, 16, 12, 59), False),
        ((2026, 11, 16, 13, 0), True),
        ((2026, 11, 16, 19, 59), True),
        ((2026, 11, 16, 20, 0), False),
        ((2026, 11, 17, 10, 0), False),  # tuesday: absent, closed
        ((2026, 11, 21, 9, 59), False),
        ((2026, 11, 21, 10, 0), True),
        ((2026, 11, 21, 13, 59), True),
        ((2026, 11, 21, 14, 0), False),
        ((2026, 11, 22, 10, 0), False),  # sunday: absent, closed
    ],
)
def test_per_day_windows(local: tuple[int, ...], expected: bool) -> None:
    assert schedule_compile(SPLIT_WEEK).is_open(at(NY, *local), NY) is expected


@pytest.mark.parametrize(
    ("instant", "tz", "expected"),
    [
        # 2026-11-18T14:00Z is Wednesday 09:00 in New York but Thursday 01:00 in Sydney
        (utc(2026, 11, 18, 14, 0), NY, True),
        (utc(2026, 11, 18, 14, 0), LONDON, True),
        (utc(2026, 11, 18, 14, 0), KOLKATA, True),
        (utc(2026, 11, 18, 14, 0), SYDNEY, False),
        # 2026-11-18T01:30Z is Tuesday 20:30 in New York, Wednesday 12:30 in Sydney
        (utc(2026, 11, 18, 1, 30), NY, False),
        (utc(2026, 11, 18, 1, 30), LONDON, False),
        (utc(2026, 11, 18, 1, 30), KOLKATA, False),
        (utc(2026, 11, 18, 1, 30), SYDNEY, True),
        # +05:30: 08:00 IST is 02:30Z, 20:00 IST is 14:30Z
        (utc(2026, 11, 18, 2, 29), KOLKATA, False),
        (utc(2026, 11, 18, 2, 30), KOLKATA, True),
        (utc(2026, 11, 18, 14, 29), KOLKATA, True),
        (utc(2026, 11, 18, 14, 30), KOLKATA, False),
        # an aware datetime in another zone is the same instant: Sydney 09:00 Thursday
        # is New York 17:00 Wednesday
        (at(SYDNEY, 2026, 11, 19, 9, 0), NY, True),
        (at(SYDNEY, 2026, 11, 19, 9, 0), SYDNEY, True),
        (at(SYDNEY, 2026, 11, 19, 13, 0), NY, False),
    ],
)
def test_same_instant_depends_on_zone(instant: datetime, tz: ZoneInfo, expected: bool) -> None:
    assert schedule_compile(OFFICE_HOURS).is_open(instant, tz) is expected


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # spring forward, Sunday 2026-03-08: 08:00 is 13:00Z the day before, 12:00Z that day
        (utc(2026, 3, 7, 12, 30), False),
        (utc(2026, 3, 7, 13, 0), True),
        (utc(2026, 3, 8, 11, 59), False),
        (utc(2026, 3, 8, 12, 0), True),
        (utc(2026, 3, 8, 23, 59), True),
        (utc(2026, 3, 9, 0, 0), False),
        # fall back, Sunday 2026-11-01: 08:00 is 12:00Z the day before, 13:00Z that day
        (utc(2026, 10, 31, 11, 59), False),
        (utc(2026, 10, 31, 12, 0), True),
        (utc(2026, 11, 1, 12, 30), False),
        (utc(2026, 11, 1, 13, 0), True),
        (utc(2026, 11, 2, 0, 59), True),
        (utc(2026, 11, 2, 1, 0), False),
    ],
)
def test_window_follows_the_wall_clock_across_dst(instant: datetime, expected: bool) -> None:
    schedule = schedule_compile({"hours": ["08:00", "20:00"]})
    assert schedule.is_open(instant, NY) is expected


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (utc(2026, 11, 1, 4, 59), False),  # 00:59 EDT
        (utc(2026, 11, 1, 5, 0), True),  # 01:00 EDT, first time
        (utc(2026, 11, 1, 5, 59), True),  # 01:59 EDT
        (utc(2026, 11, 1, 6, 0), True),  # 01:00 EST, second time
        (utc(2026, 11, 1, 6, 59), True),  # 01:59 EST
        (utc(2026, 11, 1, 7, 0), True),  # 02:00 EST
        (utc(2026, 11, 1, 7, 59), True),  # 02:59 EST
        (utc(2026, 11, 1, 8, 0), False),  # 03:00 EST
        (at(NY, 2026, 11, 1, 1, 30, fold=0), True),
        (at(NY, 2026, 11, 1, 1, 30, fold=1), True),
    ],
)
def test_fall_back_repeated_hour_is_open_both_times(instant: datetime, expected: bool) -> None:
    schedule = schedule_compile({"days": ["sun"], "hours": ["01:00", "03:00"]})
    assert schedule.is_open(instant, NY) is expected


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (utc(2026, 3, 8, 5, 59), False),  # 00:59 EST
        (utc(2026, 3, 8, 6, 0), True),  # 01:00 EST
        (utc(2026, 3, 8, 6, 59), True),  # 01:59 EST
        (utc(2026, 3, 8, 7, 0), True),  # 03:00 EDT, the next real minute
        (utc(2026, 3, 8, 7, 59), True),  # 03:59 EDT
        (utc(2026, 3, 8, 8, 0), False),  # 04:00 EDT
    ],
)
def test_spring_forward_window_skips_the_missing_hour(instant: datetime, expected: bool) -> None:
    schedule = schedule_compile({"days": ["sun"], "hours": ["01:00", "04:00"]})
    assert schedule.is_open(instant, NY) is expected


@pytest.mark.parametrize(
    ("raw", "start", "end", "minutes"),
    [
        # 01:00-03:00 on the fall-back day spans three real hours
        ({"days": ["sun"], "hours": ["01:00", "03:00"]}, utc(2026, 11, 1), utc(2026, 11, 2), 180),
        # 01:00-04:00 on the spring-forward day spans two real hours
        ({"days": ["sun"], "hours": ["01:00", "04:00"]}, utc(2026, 3, 8), utc(2026, 3, 9), 120),
        # a window inside the skipped hour never opens that day...
        ({"days": ["sun"], "hours": ["02:00", "03:00"]}, utc(2026, 3, 8), utc(2026, 3, 9), 0),
        # ...but does the next Sunday
        ({"days": ["sun"], "hours": ["02:00", "03:00"]}, utc(2026, 3, 15), utc(2026, 3, 16), 60),
        # Saturday 22:00 EDT to Sunday 02:00 EST across the fall-back is five real hours
        ({"days": ["sat"], "hours": ["22:00", "02:00"]}, utc(2026, 10, 31), utc(2026, 11, 2), 300),
    ],
)
def test_open_minutes_across_dst(raw: object, start: datetime, end: datetime, minutes: int) -> None:
    assert open_minutes(schedule_compile(raw), NY, start, end) == minutes


@pytest.mark.parametrize(
    ("instant", "window", "expected"),
    [
        # 02:30 does not exist on 2026-03-08; as an aware value it denotes 07:30Z = 03:30 EDT
        (at(NY, 2026, 3, 8, 2, 30), ["02:00", "03:00"], False),
        (at(NY, 2026, 3, 8, 2, 30), ["03:00", "04:00"], True),
    ],
)
def test_nonexistent_wall_time_is_evaluated_as_its_instant(
    instant: datetime, window: list[str], expected: bool
) -> None:
    schedule = schedule_compile({"hours": window})
    assert schedule.is_open(instant, NY) is expected


def test_is_open_rejects_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule_compile(OFFICE_HOURS).is_open(datetime(2026, 11, 18, 12, 0), NY)


WHOLE = ((0, 1440),)


@pytest.mark.parametrize(
    ("raw", "ranges"),
    [
        (None, (WHOLE,) * 7),
        ({}, (WHOLE,) * 7),
        ({"hours": ["00:00", "24:00"]}, (WHOLE,) * 7),
        (OFFICE_HOURS, (((480, 1200),),) * 5 + ((), ())),
        (
            {"days": ["fri"], "hours": ["22:00", "02:00"]},
            ((), (), (), (), ((1320, 1440),), ((0, 120),), ()),
        ),
        (
            {"windows": {"mon": [["11:00", "14:00"], ["08:00", "12:00"]], "sun": [["22:00", "03:00"]]}},
            (((0, 180), (480, 840)), (), (), (), (), (), ((1320, 1440),)),
        ),
        (
            {"windows": {"tue": [["08:00", "12:00"], ["12:00", "13:00"]]}},
            ((), ((480, 780),), (), (), (), (), ()),
        ),
        (
            {"days": ("mon", "tue"), "hours": ("22:00", "24:00")},
            (((1320, 1440),), ((1320, 1440),), (), (), (), (), ()),
        ),
    ],
)
def test_compiled_ranges(raw: object, ranges: tuple[tuple[tuple[int, int], ...], ...]) -> None:
    assert schedule_compile(raw).ranges == ranges


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, True),
        ({}, True),
        ({"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}, True),
        ({"hours": ["00:00", "24:00"]}, True),
        ({"windows": {d: [["00:00", "24:00"]] for d in WEEKDAYS + ["sat", "sun"]}}, True),
        ({"hours": ["00:00", "23:59"]}, False),
        ({"days": WEEKDAYS}, False),
    ],
)
def test_always_open(raw: object, expected: bool) -> None:
    assert schedule_compile(raw).always_open is expected


# --- schedules: validation ------------------------------------------------------------

VALID_SCHEDULES: list[object] = [
    None,
    {},
    OFFICE_HOURS,
    {"days": ["sun"]},
    {"hours": ["00:00", "24:00"]},
    {"hours": ["23:59", "00:00"]},
    {"hours": ["22:00", "02:00"]},
    {"days": ("mon",), "hours": ("08:00", "20:00")},
    SPLIT_WEEK,
    {"windows": {"sun": [["22:00", "03:00"], ["10:00", "11:00"]]}},
]


@pytest.mark.parametrize("raw", VALID_SCHEDULES)
def test_valid_schedules(raw: object) -> None:
    schedule_validate(raw)  # does not raise


NOT_A_MAPPING = "must be a mapping with days/hours or windows, or null"
PAIR = 'must be a pair ["HH:MM", "HH:MM"]'
BAD_TIME = 'must be a time "HH:MM" from 00:00 to 23:59, got '
SAME = 'start and end must differ; use ["00:00", "24:00"] for the whole day'
DAY_LIST = "expected one of mon, tue, wed, thu, fri, sat, sun"
MON_NOON = [["08:00", "12:00"]]


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        ("always", "schedule", NOT_A_MAPPING),
        (["mon"], "schedule", NOT_A_MAPPING),
        (True, "schedule", NOT_A_MAPPING),
        ({"day": ["mon"]}, "schedule.day", "unknown key; expected days, hours or windows"),
        (
            {"days": ["mon"], "timezone": "UTC"},
            "schedule.timezone",
            "unknown key; expected days, hours or windows",
        ),
        ({"days": "mon"}, "schedule.days", 'must be a list of day names like ["mon", "tue"]'),
        ({"days": None}, "schedule.days", 'must be a list of day names like ["mon", "tue"]'),
        ({"days": []}, "schedule.days", "must name at least one day"),
        ({"days": ["mon", "tue", "xyz"]}, "schedule.days[2]", f"unknown day 'xyz'; {DAY_LIST}"),
        ({"days": ["Mon"]}, "schedule.days[0]", f"unknown day 'Mon'; {DAY_LIST}"),
        ({"days": ["monday"]}, "schedule.days[0]", f"unknown day 'monday'; {DAY_LIST}"),
        ({"days": [1]}, "schedule.days[0]", f"unknown day 1; {DAY_LIST}"),
        ({"days": ["mon", "tue", "mon"]}, "schedule.days[2]", "repeats 'mon'"),
        ({"hours": "08:00-20:00"}, "schedule.hours", PAIR),
        ({"hours": ["08:00"]}, "schedule.hours", PAIR),
        ({"hours": ["08:00", "20:00", "22:00"]}, "schedule.hours", PAIR),
        ({"hours": None}, "schedule.hours", PAIR),
        ({"hours": ["08:00", "25:00"]}, "schedule.hours[1]", BAD_TIME + "'25:00'"),
        ({"hours": ["8:00", "20:00"]}, "schedule.hours[0]", BAD_TIME + "'8:00'"),
        ({"hours": ["08:60", "20:00"]}, "schedule.hours[0]", BAD_TIME + "'08:60'"),
        ({"hours": ["08:00 ", "20:00"]}, "schedule.hours[0]", BAD_TIME + "'08:00 '"),
        ({"hours": ["08:00", "20:00\n"]}, "schedule.hours[1]", BAD_TIME + "'20:00\\n'"),
        ({"hours": ["08:00", "2000"]}, "schedule.hours[1]", BAD_TIME + "'2000'"),
        ({"hours": ["08:00", "24:01"]}, "schedule.hours[1]", BAD_TIME + "'24:01'"),
        (
            {"hours": ["08:00", 1200]},
            "schedule.hours[1]",
            'must be a quoted "HH:MM" string (unquoted YAML times are numbers)',
        ),
        ({"hours": ["08:00", None]}, "schedule.hours[1]", 'must be a "HH:MM" string'),
        ({"hours": [True, "20:00"]}, "schedule.hours[0]", 'must be a "HH:MM" string'),
        (
            {"hours": ["24:00", "08:00"]},
            "schedule.hours[0]",
            '"24:00" is only allowed as the end of a window',
        ),
        ({"hours": ["08:00", "08:00"]}, "schedule.hours", SAME),
        ({"hours": ["00:00", "00:00"]}, "schedule.hours", SAME),
        (
            {"windows": {"mon": MON_NOON}, "days": ["mon"]},
            "schedule.windows",
            "cannot be combined with days or hours",
        ),
        (
            {"hours": ["08:00", "20:00"], "windows": {"mon": MON_NOON}},
            "schedule.windows",
            "cannot be combined with days or hours",
        ),
        (
            {"windows": {"mon": MON_NOON}, "extra": 1},
            "schedule.extra",
            "unknown key; expected days, hours or windows",
        ),
        ({"windows": {}}, "schedule.windows", "must name at least one day"),
        (
            {"windows": MON_NOON},
            "schedule.windows",
            'must map day names to lists of ["HH:MM", "HH:MM"] windows',
        ),
        (
            {"windows": {"monday": MON_NOON}},
            "schedule.windows.monday",
            f"unknown day 'monday'; {DAY_LIST}",
        ),
        (
            {"windows": {"mon": "08:00-12:00"}},
            "schedule.windows.mon",
            'must be a list of ["HH:MM", "HH:MM"] windows',
        ),
        (
            {"windows": {"mon": []}},
            "schedule.windows.mon",
            "must list at least one window; omit the day to close it",
        ),
        ({"windows": {"mon": ["08:00", "12:00"]}}, "schedule.windows.mon[0]", PAIR),
        (
            {"windows": {"mon": [["08:00", "12:00"], ["13:00", "2000"]]}},
            "schedule.windows.mon[1][1]",
            BAD_TIME + "'2000'",
        ),
        (
            {"windows": {"mon": MON_NOON, "sat": [["24:00", "14:00"]]}},
            "schedule.windows.sat[0][0]",
            '"24:00" is only allowed as the end of a window',
        ),
        ({"windows": {"sat": [["10:00", "10:00"]]}}, "schedule.windows.sat[0]", SAME),
    ],
)
def test_schedule_errors(raw: object, path: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        schedule_validate(raw)
    assert caught.value.path == path
    assert caught.value.message == message
    assert str(caught.value) == f"{path}: {message}"
    with pytest.raises(ScheduleError) as compiled:
        schedule_compile(raw)
    assert str(compiled.value) == str(caught.value)


def test_schedule_error_path_prefix() -> None:
    with pytest.raises(ScheduleError) as caught:
        schedule_validate({"days": ["mon", "xyz"]}, path="contracts[0].schedule")
    assert caught.value.path == "contracts[0].schedule.days[1]"


def test_schedule_error_is_a_value_error_and_pickles() -> None:
    error = ScheduleError("schedule.hours[1]", "bad")
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.message, str(copy)) == ("schedule.hours[1]", "bad", str(error))


# --- cap periods: keys ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "instant", "tz", "expected"),
    [
        # local midnight vs UTC midnight
        ("day", utc(2026, 11, 22, 3, 0), NY, "d2026-11-21"),
        ("day", utc(2026, 11, 22, 4, 59, 59), NY, "d2026-11-21"),
        ("day", utc(2026, 11, 22, 5, 0), NY, "d2026-11-22"),
        ("day", utc(2026, 11, 22, 3, 0), ZoneInfo("UTC"), "d2026-11-22"),
        ("day", utc(2026, 11, 21, 12, 59, 59), SYDNEY, "d2026-11-21"),
        ("day", utc(2026, 11, 21, 13, 0), SYDNEY, "d2026-11-22"),
        ("day", utc(2026, 11, 21, 18, 29, 59), KOLKATA, "d2026-11-21"),
        ("day", utc(2026, 11, 21, 18, 30), KOLKATA, "d2026-11-22"),
        ("day", at(SYDNEY, 2026, 11, 22, 9, 0), NY, "d2026-11-21"),
        # skipped midnight: Santiago 2022-09-11 begins at 01:00 -03 (04:00Z)
        ("day", utc(2022, 9, 11, 3, 59, 59), SANTIAGO, "d2022-09-10"),
        ("day", utc(2022, 9, 11, 4, 0), SANTIAGO, "d2022-09-11"),
        # weeks start on Monday: Sunday night vs Monday morning
        ("week", utc(2026, 11, 22, 3, 0), NY, "w2026-11-16"),
        ("week", utc(2026, 11, 23, 4, 59, 59), NY, "w2026-11-16"),
        ("week", utc(2026, 11, 23, 5, 0), NY, "w2026-11-23"),
        ("week", utc(2026, 11, 22, 23, 0), SYDNEY, "w2026-11-23"),
        ("week", utc(2026, 1, 1, 12, 0), NY, "w2025-12-29"),
        # month boundaries, including the year end
        ("month", utc(2026, 12, 1, 4, 59, 59), NY, "m2026-11"),
        ("month", utc(2026, 12, 1, 5, 0), NY, "m2026-12"),
        ("month", utc(2027, 1, 1, 4, 59, 59), NY, "m2026-12"),
        ("month", utc(2027, 1, 1, 5, 0), NY, "m2027-01"),
        ("month", utc(2026, 11, 30, 18, 29, 59), KOLKATA, "m2026-11"),
        ("month", utc(2026, 11, 30, 18, 30), KOLKATA, "m2026-12"),
        ("total", utc(2026, 11, 22, 3, 0), NY, "total"),
    ],
)
def test_period_key(period: str, instant: datetime, tz: ZoneInfo, expected: str) -> None:
    assert period_key(period, instant, tz) == expected


@pytest.mark.parametrize("period", ["hour", "Day", "year", ""])
def test_unknown_period_is_rejected(period: str) -> None:
    with pytest.raises(ValueError, match="unknown cap period"):
        period_key(period, utc(2026, 11, 22), NY)
    with pytest.raises(ValueError, match="unknown cap period"):
        period_bounds(period, utc(2026, 11, 22), NY)


@pytest.mark.parametrize("period", CAP_PERIODS)
def test_periods_reject_naive_datetimes(period: str) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        period_key(period, datetime(2026, 11, 22), NY)
    with pytest.raises(ValueError, match="timezone-aware"):
        period_bounds(period, datetime(2026, 11, 22), NY)


# --- cap periods: bounds --------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "instant", "tz", "start", "end", "hours"),
    [
        # local midnight, not UTC midnight
        ("day", utc(2026, 11, 22, 3, 0), NY, utc(2026, 11, 21, 5), utc(2026, 11, 22, 5), 24),
        # America/New_York: spring forward is 23 hours, fall back 25
        ("day", at(NY, 2026, 3, 8, 12), NY, utc(2026, 3, 8, 5), utc(2026, 3, 9, 4), 23),
        ("day", at(NY, 2026, 11, 1, 12), NY, utc(2026, 11, 1, 4), utc(2026, 11, 2, 5), 25),
        ("day", utc(2026, 11, 1, 6, 30), NY, utc(2026, 11, 1, 4), utc(2026, 11, 2, 5), 25),
        ("day", at(NY, 2026, 11, 2, 0), NY, utc(2026, 11, 2, 5), utc(2026, 11, 3, 5), 24),
        # Europe/London
        ("day", at(LONDON, 2026, 3, 29, 12), LONDON, utc(2026, 3, 29), utc(2026, 3, 29, 23), 23),
        ("day", at(LONDON, 2026, 10, 25, 12), LONDON, utc(2026, 10, 24, 23), utc(2026, 10, 26), 25),
        # Australia/Sydney (southern hemisphere: DST ends in April, starts in October)
        ("day", at(SYDNEY, 2026, 4, 5, 12), SYDNEY, utc(2026, 4, 4, 13), utc(2026, 4, 5, 14), 25),
        ("day", at(SYDNEY, 2026, 10, 4, 12), SYDNEY, utc(2026, 10, 3, 14), utc(2026, 10, 4, 13), 23),
        # Asia/Kolkata, +05:30 all year
        ("day", at(KOLKATA, 2026, 11, 22, 0), KOLKATA, utc(2026, 11, 21, 18, 30), utc(2026, 11, 22, 18, 30), 24),
        # midnight skipped by DST: the day starts at its first existing instant
        ("day", at(SANTIAGO, 2022, 9, 11, 12), SANTIAGO, utc(2022, 9, 11, 4), utc(2022, 9, 12, 3), 23),
        ("day", at(SANTIAGO, 2022, 9, 10, 12), SANTIAGO, utc(2022, 9, 10, 4), utc(2022, 9, 11, 4), 24),
        ("day", at(HAVANA, 2022, 3, 13, 12), HAVANA, utc(2022, 3, 13, 5), utc(2022, 3, 14, 4), 23),
        ("day", at(SAO_PAULO, 2018, 11, 4, 12), SAO_PAULO, utc(2018, 11, 4, 3), utc(2018, 11, 5, 2), 23),
        # midnight repeated (Havana falls back 01:00 -> 00:00): the day starts at the first one
        ("day", at(HAVANA, 2022, 11, 6, 12), HAVANA, utc(2022, 11, 6, 4), utc(2022, 11, 7, 5), 25),
        ("day", utc(2022, 11, 6, 5, 30), HAVANA, utc(2022, 11, 6, 4), utc(2022, 11, 7, 5), 25),
        # clocks fall back from 00:00 to 23:00 the previous day (Sao Paulo 2018-02-18)
        ("day", utc(2018, 2, 18, 2, 30), SAO_PAULO, utc(2018, 2, 17, 2), utc(2018, 2, 18, 3), 25),
        ("day", at(SAO_PAULO, 2018, 2, 18, 12), SAO_PAULO, utc(2018, 2, 18, 3), utc(2018, 2, 19, 3), 24),
        # a whole local day skipped (Apia crossed the date line: no 2011-12-30)
        ("day", at(APIA, 2011, 12, 29, 12), APIA, utc(2011, 12, 29, 10), utc(2011, 12, 30, 10), 24),
        ("day", at(APIA, 2011, 12, 31, 12), APIA, utc(2011, 12, 30, 10), utc(2011, 12, 31, 10), 24),
        # weeks: Monday local midnight to the next Monday
        ("week", utc(2026, 11, 23, 4, 59, 59), NY, utc(2026, 11, 16, 5), utc(2026, 11, 23, 5), 168),
        ("week", utc(2026, 11, 23, 5, 0), NY, utc(2026, 11, 23, 5), utc(2026, 11, 30, 5), 168),
        ("week", at(NY, 2026, 11, 1, 12), NY, utc(2026, 10, 26, 4), utc(2026, 11, 2, 5), 169),
        ("week", at(NY, 2026, 3, 8, 12), NY, utc(2026, 3, 2, 5), utc(2026, 3, 9, 4), 167),
        ("week", at(NY, 2026, 1, 1, 12), NY, utc(2025, 12, 29, 5), utc(2026, 1, 5, 5), 168),
        ("week", at(SANTIAGO, 2022, 9, 11, 12), SANTIAGO, utc(2022, 9, 5, 4), utc(2022, 9, 12, 3), 167),
        ("week", at(KOLKATA, 2026, 11, 22, 23, 59), KOLKATA, utc(2026, 11, 15, 18, 30), utc(2026, 11, 22, 18, 30), 168),
        # months
        ("month", utc(2026, 12, 1, 4, 59, 59), NY, utc(2026, 11, 1, 4), utc(2026, 12, 1, 5), 721),
        ("month", utc(2026, 12, 1, 5, 0), NY, utc(2026, 12, 1, 5), utc(2027, 1, 1, 5), 744),
        ("month", at(NY, 2026, 3, 15), NY, utc(2026, 3, 1, 5), utc(2026, 4, 1, 4), 743),
        ("month", at(NY, 2026, 2, 28, 23, 59), NY, utc(2026, 2, 1, 5), utc(2026, 3, 1, 5), 672),
        (
            "month",
            at(KOLKATA, 2026, 11, 30, 23, 59),
            KOLKATA,
            utc(2026, 10, 31, 18, 30),
            utc(2026, 11, 30, 18, 30),
            720,
        ),
    ],
)
def test_period_bounds(
    period: str,
    instant: datetime,
    tz: ZoneInfo,
    start: datetime,
    end: datetime,
    hours: int,
) -> None:
    bounds = period_bounds(period, instant, tz)
    assert bounds == (start, end)
    assert bounds[0].tzinfo is UTC
    assert bounds[1] is not None
    assert bounds[1].tzinfo is UTC
    assert bounds[1] - bounds[0] == timedelta(hours=hours)
    assert bounds[0] <= instant < bounds[1]


@pytest.mark.parametrize(
    ("instant", "start", "end"),
    [
        # America/Toronto jumped from 23:30 on 1919-03-30 to 00:30 on 1919-03-31 (04:30Z):
        # midnight sits inside the gap, so the 31st starts at the transition itself
        (utc(1919, 3, 31, 4, 29, 59), utc(1919, 3, 30, 5), utc(1919, 3, 31, 4, 30)),
        (utc(1919, 3, 31, 4, 30), utc(1919, 3, 31, 4, 30), utc(1919, 4, 1, 4)),
        (utc(1919, 3, 31, 4, 45), utc(1919, 3, 31, 4, 30), utc(1919, 4, 1, 4)),
    ],
)
def test_day_starts_inside_a_gap_that_began_before_midnight(instant: datetime, start: datetime, end: datetime) -> None:
    assert period_bounds("day", instant, TORONTO) == (start, end)
    assert end - start == timedelta(hours=23, minutes=30)


def test_total_bounds() -> None:
    assert period_bounds("total", utc(2026, 11, 22), NY) == (TOTAL_START, None)
    assert TOTAL_START == datetime.min.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("tz", "first", "days"),
    [
        (NY, utc(2026, 2, 27), 14),  # spring forward
        (NY, utc(2026, 10, 25), 14),  # fall back
        (SYDNEY, utc(2026, 9, 28), 14),
        (KOLKATA, utc(2026, 11, 25), 14),
        (LORD_HOWE, utc(2026, 3, 30), 14),  # 30-minute DST shift
        (SANTIAGO, utc(2022, 9, 5), 14),
        (SAO_PAULO, utc(2018, 2, 12), 14),
        (HAVANA, utc(2022, 11, 1), 10),
        (APIA, utc(2011, 12, 25), 14),
        (TORONTO, utc(1919, 3, 25), 10),
    ],
)
@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_bounds_agree_with_keys(tz: ZoneInfo, first: datetime, days: int, period: str) -> None:
    """Every 15 minutes: the bounds contain the instant and are exactly where the key changes."""
    tick = timedelta(microseconds=1)
    instant = first
    while instant < first + timedelta(days=days):
        start, end = period_bounds(period, instant, tz)
        assert end is not None
        assert start <= instant < end
        key = period_key(period, instant, tz)
        assert period_key(period, start, tz) == key
        assert period_key(period, end - tick, tz) == key
        assert period_key(period, start - tick, tz) != key
        assert period_key(period, end, tz) != key
        instant += timedelta(minutes=15)


# --- caps and budgets -----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        None,
        {},
        {"day": 100, "week": None, "month": 2000, "total": None},
        {"day": 0},
        {"total": 10**9},
    ],
)
def test_valid_caps(raw: object) -> None:
    caps_validate(raw)  # does not raise


COUNT = "must be a whole number of leads or null"
UNKNOWN_PERIOD = "unknown period; expected one of day, week, month, total"


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        (100, "caps", "must be a mapping of period to lead count, or null"),
        ([100], "caps", "must be a mapping of period to lead count, or null"),
        ({"hour": 5}, "caps.hour", UNKNOWN_PERIOD),
        ({"day": 1, "Day": 5}, "caps.Day", UNKNOWN_PERIOD),
        ({"day": -1}, "caps.day", "must not be negative"),
        ({"day": True}, "caps.day", COUNT),
        ({"total": False}, "caps.total", COUNT),
        ({"week": 1.0}, "caps.week", COUNT),
        ({"month": "100"}, "caps.month", COUNT),
        ({"month": [100]}, "caps.month", COUNT),
    ],
)
def test_caps_errors(raw: object, path: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        caps_validate(raw)
    assert (caught.value.path, caught.value.message) == (path, message)
    assert str(caught.value) == f"{path}: {message}"


def test_caps_error_path_prefix() -> None:
    with pytest.raises(ScheduleError) as caught:
        caps_validate({"day": -1}, path="contracts[0].caps")
    assert str(caught.value) == "contracts[0].caps.day: must not be negative"


@pytest.mark.parametrize(
    "raw",
    [
        None,
        {},
        {"day": "3000.00"},
        {"day": "0", "week": "0.5", "month": "12000", "total": None},
        {"total": "0.00"},
        {"week": "007.10"},
    ],
)
def test_valid_budgets(raw: object) -> None:
    budget_validate(raw)  # does not raise


MONEY_TYPE = 'must be a quoted money string like "3000.00" or null'
MONEY_FORMAT = 'must be a non-negative amount with at most 2 decimals like "3000.00", got '


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        ("3000.00", "budget", "must be a mapping of period to money amount, or null"),
        ({"hour": "1.00"}, "budget.hour", UNKNOWN_PERIOD),
        ({"day": 3000.0}, "budget.day", MONEY_TYPE),
        ({"day": 3000}, "budget.day", MONEY_TYPE),
        ({"day": True}, "budget.day", MONEY_TYPE),
        ({"week": -1}, "budget.week", MONEY_TYPE),
        ({"day": "-1.00"}, "budget.day", MONEY_FORMAT + "'-1.00'"),
        ({"day": "+1.00"}, "budget.day", MONEY_FORMAT + "'+1.00'"),
        ({"day": "1.001"}, "budget.day", MONEY_FORMAT + "'1.001'"),
        ({"day": "1e3"}, "budget.day", MONEY_FORMAT + "'1e3'"),
        ({"day": "NaN"}, "budget.day", MONEY_FORMAT + "'NaN'"),
        ({"day": "Infinity"}, "budget.day", MONEY_FORMAT + "'Infinity'"),
        ({"day": "abc"}, "budget.day", MONEY_FORMAT + "'abc'"),
        ({"day": ""}, "budget.day", MONEY_FORMAT + "''"),
        ({"day": " 5"}, "budget.day", MONEY_FORMAT + "' 5'"),
        ({"day": "5\n"}, "budget.day", MONEY_FORMAT + "'5\\n'"),
        ({"day": "1."}, "budget.day", MONEY_FORMAT + "'1.'"),
        ({"day": ".5"}, "budget.day", MONEY_FORMAT + "'.5'"),
        ({"day": "1,000.00"}, "budget.day", MONEY_FORMAT + "'1,000.00'"),
        ({"month": "١٠٠"}, "budget.month", MONEY_FORMAT + "'١٠٠'"),
    ],
)
def test_budget_errors(raw: object, path: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        budget_validate(raw)
    assert (caught.value.path, caught.value.message) == (path, message)
    assert str(caught.value) == f"{path}: {message}"


def test_budget_error_path_prefix() -> None:
    with pytest.raises(ScheduleError) as caught:
        budget_validate({"day": "1.001"}, path="contracts[2].budget")
    assert caught.value.path == "contracts[2].budget.day"
