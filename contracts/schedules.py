"""Buyer-contract schedules, cap periods, and cap/budget validation (DESIGN.md section 5).

Pure standard library: no Django, no I/O. Everything here works on the
organization's local wall-clock time, given as a ``tzinfo`` (normally a
``zoneinfo.ZoneInfo``).

Schedules
    ``{"days": ["mon", ...], "hours": ["08:00", "20:00"]}`` (both keys optional) or
    ``{"windows": {"mon": [["08:00", "12:00"], ["13:00", "20:00"]], ...}}``.
    Windows are half-open ``[start, end)`` in local wall-clock minutes; an end of
    ``"24:00"`` is the midnight that ends the day, and an end before the start is an
    overnight window whose after-midnight part belongs to the day it started.
    ``None`` and ``{}`` mean always open.

Cap periods
    ``day``, ``week`` (Monday to Sunday), ``month`` and ``total``, each starting at the
    local midnight of its first day. When DST skips that midnight (e.g.
    America/Santiago on 2022-09-11, clocks 00:00 -> 01:00) the period starts at the
    first instant that exists on that local day.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import TypeGuard

__all__ = [
    "CAP_PERIODS",
    "DAY_NAMES",
    "TOTAL_START",
    "Schedule",
    "ScheduleError",
    "budget_validate",
    "caps_validate",
    "period_bounds",
    "period_key",
    "schedule_compile",
    "schedule_validate",
]

DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Day names accepted in schedules, indexed like ``datetime.weekday()``."""

CAP_PERIODS: tuple[str, ...] = ("day", "week", "month", "total")
"""Periods a cap or budget can count over."""

TOTAL_START: datetime = datetime.min.replace(tzinfo=UTC)
"""Start of the ``total`` period: an aware UTC sentinel earlier than any real instant."""

_DAY_INDEX: dict[str, int] = {name: index for index, name in enumerate(DAY_NAMES)}
_MINUTES_PER_DAY = 24 * 60
_WHOLE_DAY: tuple[tuple[int, int], ...] = ((0, _MINUTES_PER_DAY),)
_SCHEDULE_KEYS = ("days", "hours", "windows")
_CLOCK_RE = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
_MONEY_RE = re.compile(r"[0-9]+(\.[0-9]{1,2})?")
# UTC offsets are strictly within +/-24h, so these bracket every instant of a local day.
_SEARCH_MARGIN_SECONDS = 25 * 3600

_Ranges = tuple[tuple[int, int], ...]


class ScheduleError(ValueError):
    """A schedule, caps or budget value is invalid.

    ``path`` locates the offending value (``schedule.windows.mon[0][1]``, ``caps.hour``),
    ``message`` says what is wrong, and ``str(exc) == f"{path}: {message}"``.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message

    def __reduce__(self) -> tuple[type[ScheduleError], tuple[str, str]]:
        # Keeps the two-argument constructor working when pickled (e.g. by Celery).
        return (type(self), (self.path, self.message))


@dataclass(frozen=True, slots=True)
class Schedule:
    """A compiled schedule; build it with :func:`schedule_compile`.

    ``ranges[weekday]`` (Monday = 0) holds sorted, non-overlapping, non-adjacent
    half-open ``(start, end)`` minute ranges within ``[0, 1440]`` during which the
    schedule is open on that local weekday; overnight windows are already split
    across the two days.
    """

    ranges: tuple[_Ranges, _Ranges, _Ranges, _Ranges, _Ranges, _Ranges, _Ranges]

    @property
    def always_open(self) -> bool:
        """True when every minute of every day is open."""
        return all(day == _WHOLE_DAY for day in self.ranges)

    def is_open(self, at: datetime, tz: tzinfo) -> bool:
        """Whether the schedule is open at the instant ``at``, read as wall-clock time in ``tz``.

        ``at`` must be timezone-aware (any zone); it is converted to ``tz`` through UTC,
        so only wall-clock times that really occur in ``tz`` are ever evaluated. During a
        repeated hour (DST fall-back) both occurrences show the same wall time and get the
        same answer. Raises ``ValueError`` for a naive ``at``.
        """
        local = _to_local(at, tz)
        minute = local.hour * 60 + local.minute
        for start, end in self.ranges[local.weekday()]:
            if minute < start:
                return False
            if minute < end:
                return True
        return False


def schedule_validate(raw: object, *, path: str = "schedule") -> None:
    """Return ``None`` if ``raw`` is a valid schedule, else raise :class:`ScheduleError`.

    The error names the first invalid value found. Invalid: a non-mapping other than
    ``None``; unknown keys; ``windows`` together with ``days``/``hours``; an empty
    ``days`` list or ``windows`` mapping or per-day window list; unknown or repeated day
    names; a window that is not a pair of ``"HH:MM"`` strings (``00:00``-``23:59``, plus
    ``24:00`` as an end only); a window whose start equals its end.
    """
    _parse_schedule(raw, path)


def schedule_compile(raw: object) -> Schedule:
    """Validate ``raw`` (as :func:`schedule_validate`) and compile it into a :class:`Schedule`.

    ``None`` and ``{}`` compile to an always-open schedule. Raises :class:`ScheduleError`
    with paths rooted at ``schedule``.
    """
    windows = _parse_schedule(raw, "schedule")
    per_day: list[list[tuple[int, int]]] = [[] for _ in DAY_NAMES]
    for day, start, end in windows:
        if start < end:
            per_day[day].append((start, end))
        else:
            per_day[day].append((start, _MINUTES_PER_DAY))
            if end > 0:
                per_day[(day + 1) % 7].append((0, end))
    merged = [_merge(day_ranges) for day_ranges in per_day]
    return Schedule(ranges=(merged[0], merged[1], merged[2], merged[3], merged[4], merged[5], merged[6]))


def period_key(period: str, at: datetime, tz: tzinfo) -> str:
    """A stable key for the ``period`` that contains the instant ``at`` in ``tz``'s local time.

    ``day`` -> ``"d2026-11-22"``, ``week`` -> ``"w2026-11-16"`` (the local date of that
    week's Monday), ``month`` -> ``"m2026-11"``, ``total`` -> ``"total"``. Two instants
    get the same key exactly when they fall in the same local period. Raises
    ``ValueError`` for an unknown period or a naive ``at``.
    """
    _check_period(period)
    local_day = _to_local(at, tz).date()
    if period == "day":
        return f"d{local_day.isoformat()}"
    if period == "week":
        return f"w{_week_start(local_day).isoformat()}"
    if period == "month":
        return f"m{local_day.year:04d}-{local_day.month:02d}"
    return "total"


def period_bounds(period: str, at: datetime, tz: tzinfo) -> tuple[datetime, datetime | None]:
    """The aware-UTC ``[start, end)`` of the ``period`` containing the instant ``at`` in ``tz``.

    ``start`` is the first instant of the period's first local day (local midnight, or
    the first instant that exists that day if DST skips midnight); ``end`` is the start
    of the next period, so consecutive periods tile time with no gap or overlap and
    ``start <= at < end``. DST is honoured: in America/New_York the day 2026-03-08 is 23
    hours long and 2026-11-01 is 25. ``total`` returns ``(TOTAL_START, None)``. Raises
    ``ValueError`` for an unknown period or a naive ``at``.
    """
    _check_period(period)
    local_day = _to_local(at, tz).date()
    if period == "day":
        first, following = local_day, local_day + timedelta(days=1)
    elif period == "week":
        first = _week_start(local_day)
        following = first + timedelta(days=7)
    elif period == "month":
        first = local_day.replace(day=1)
        if first.month == 12:
            following = date(first.year + 1, 1, 1)
        else:
            following = date(first.year, first.month + 1, 1)
    else:
        return (TOTAL_START, None)
    return (_start_of_local_day(first, tz), _start_of_local_day(following, tz))


def caps_validate(raw: object, *, path: str = "caps") -> None:
    """Return ``None`` if ``raw`` is a valid caps mapping, else raise :class:`ScheduleError`.

    Valid: ``None`` or a mapping whose keys are from :data:`CAP_PERIODS` and whose values
    are ``None`` (no cap) or non-negative ``int`` lead counts (``bool`` is rejected).
    Errors name the key, e.g. ``caps.hour`` or ``caps.day``.
    """
    for key_path, value in _period_items(raw, path, "lead count"):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScheduleError(key_path, "must be a whole number of leads or null")
        if value < 0:
            raise ScheduleError(key_path, "must not be negative")


def budget_validate(raw: object, *, path: str = "budget") -> None:
    """Return ``None`` if ``raw`` is a valid budget mapping, else raise :class:`ScheduleError`.

    Valid: ``None`` or a mapping whose keys are from :data:`CAP_PERIODS` and whose values
    are ``None`` (no budget) or money strings: non-negative, plain digits with at most two
    decimals (``"3000"``, ``"3000.5"``, ``"3000.00"``). Numbers (``int``, ``float``,
    ``bool``), signs, exponents and surrounding spaces are rejected so that amounts are
    exact and written one way.
    """
    for key_path, value in _period_items(raw, path, "money amount"):
        if value is None:
            continue
        if not isinstance(value, str):
            raise ScheduleError(key_path, 'must be a quoted money string like "3000.00" or null')
        if _MONEY_RE.fullmatch(value) is None:
            raise ScheduleError(
                key_path,
                f'must be a non-negative amount with at most 2 decimals like "3000.00", got {value!r}',
            )
        try:
            Decimal(value)
        except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
            raise ScheduleError(key_path, f"is not a valid amount: {value!r}") from None


# --- schedule parsing -------------------------------------------------------------


def _parse_schedule(raw: object, path: str) -> list[tuple[int, int, int]]:
    """Validate ``raw`` and flatten it into ``(weekday, start_minute, end_minute)`` windows."""
    if raw is None:
        return [(day, 0, _MINUTES_PER_DAY) for day in range(7)]
    if not isinstance(raw, Mapping):
        raise ScheduleError(path, "must be a mapping with days/hours or windows, or null")
    for key in raw:
        if key not in _SCHEDULE_KEYS:
            raise ScheduleError(f"{path}.{key}", "unknown key; expected days, hours or windows")
    if "windows" in raw:
        if "days" in raw or "hours" in raw:
            raise ScheduleError(f"{path}.windows", "cannot be combined with days or hours")
        return _parse_windows(raw["windows"], f"{path}.windows")
    days = _parse_days(raw["days"], f"{path}.days") if "days" in raw else list(range(7))
    start, end = _parse_window(raw["hours"], f"{path}.hours") if "hours" in raw else (0, _MINUTES_PER_DAY)
    return [(day, start, end) for day in days]


def _parse_days(raw: object, path: str) -> list[int]:
    if not _is_list(raw):
        raise ScheduleError(path, 'must be a list of day names like ["mon", "tue"]')
    if not raw:
        raise ScheduleError(path, "must name at least one day")
    days: list[int] = []
    for index, item in enumerate(raw):
        day = _parse_day_name(item, f"{path}[{index}]")
        if day in days:
            raise ScheduleError(f"{path}[{index}]", f"repeats {item!r}")
        days.append(day)
    return days


def _parse_windows(raw: object, path: str) -> list[tuple[int, int, int]]:
    if not isinstance(raw, Mapping):
        raise ScheduleError(path, 'must map day names to lists of ["HH:MM", "HH:MM"] windows')
    if not raw:
        raise ScheduleError(path, "must name at least one day")
    windows: list[tuple[int, int, int]] = []
    for key, day_windows in raw.items():
        day_path = f"{path}.{key}"
        day = _parse_day_name(key, day_path)
        if not _is_list(day_windows):
            raise ScheduleError(day_path, 'must be a list of ["HH:MM", "HH:MM"] windows')
        if not day_windows:
            raise ScheduleError(day_path, "must list at least one window; omit the day to close it")
        for index, window in enumerate(day_windows):
            start, end = _parse_window(window, f"{day_path}[{index}]")
            windows.append((day, start, end))
    return windows


def _parse_day_name(raw: object, path: str) -> int:
    day = _DAY_INDEX.get(raw) if isinstance(raw, str) else None
    if day is None:
        raise ScheduleError(path, f"unknown day {raw!r}; expected one of {', '.join(DAY_NAMES)}")
    return day


def _parse_window(raw: object, path: str) -> tuple[int, int]:
    if not _is_list(raw) or len(raw) != 2:
        raise ScheduleError(path, 'must be a pair ["HH:MM", "HH:MM"]')
    start = _parse_clock(raw[0], f"{path}[0]", is_end=False)
    end = _parse_clock(raw[1], f"{path}[1]", is_end=True)
    if start == end:
        raise ScheduleError(path, 'start and end must differ; use ["00:00", "24:00"] for the whole day')
    return start, end


def _parse_clock(raw: object, path: str, *, is_end: bool) -> int:
    """Minutes since local midnight for ``"HH:MM"``; ``"24:00"`` (1440) only when ``is_end``."""
    if not isinstance(raw, str):
        if isinstance(raw, int) and not isinstance(raw, bool):
            # YAML 1.1 reads an unquoted 20:00 as the base-60 integer 1200.
            raise ScheduleError(path, 'must be a quoted "HH:MM" string (unquoted YAML times are numbers)')
        raise ScheduleError(path, 'must be a "HH:MM" string')
    if raw == "24:00":
        if is_end:
            return _MINUTES_PER_DAY
        raise ScheduleError(path, '"24:00" is only allowed as the end of a window')
    match = _CLOCK_RE.fullmatch(raw)
    if match is None:
        raise ScheduleError(path, f'must be a time "HH:MM" from 00:00 to 23:59, got {raw!r}')
    return int(match[1]) * 60 + int(match[2])


def _is_list(raw: object) -> TypeGuard[list[object] | tuple[object, ...]]:
    return isinstance(raw, (list, tuple))


def _merge(ranges: list[tuple[int, int]]) -> _Ranges:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


# --- caps and budgets ---------------------------------------------------------------


def _period_items(raw: object, path: str, what: str) -> list[tuple[str, object]]:
    """``(path, value)`` for each entry of a period mapping, after checking its shape and keys."""
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        raise ScheduleError(path, f"must be a mapping of period to {what}, or null")
    items: list[tuple[str, object]] = []
    for key, value in raw.items():
        key_path = f"{path}.{key}"
        if key not in CAP_PERIODS:
            expected = ", ".join(CAP_PERIODS)
            raise ScheduleError(key_path, f"unknown period; expected one of {expected}")
        items.append((key_path, value))
    return items


# --- periods ----------------------------------------------------------------------------


def _check_period(period: str) -> None:
    if period not in CAP_PERIODS:
        raise ValueError(f"unknown cap period {period!r}; expected one of {', '.join(CAP_PERIODS)}")


def _to_local(at: datetime, tz: tzinfo) -> datetime:
    if at.utcoffset() is None:
        raise ValueError("at must be a timezone-aware datetime")
    # Going through UTC normalises an aware value whose wall time does not exist in its
    # own zone (e.g. 02:30 on a spring-forward day), which astimezone() would pass through
    # unchanged when its tzinfo is already ``tz``.
    return at.astimezone(UTC).astimezone(tz)


def _week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _start_of_local_day(day: date, tz: tzinfo) -> datetime:
    """The first UTC instant whose wall-clock date in ``tz`` is ``day`` or later."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
    wall_midnight = midnight.replace(tzinfo=None)
    occurrences = []
    for fold in (0, 1):
        candidate = midnight.replace(fold=fold).astimezone(UTC)
        # Naive comparison ignores fold, so this holds for both occurrences of an
        # ambiguous midnight and for neither when midnight falls in a DST gap.
        if candidate.astimezone(tz).replace(tzinfo=None) == wall_midnight:
            occurrences.append(candidate)
    if occurrences:
        return min(occurrences)
    # Midnight was skipped. The gap need not start at midnight (America/Toronto jumped
    # from 23:30 to 00:30 on 1919-03-31), so neither offset gives the transition
    # directly: bisect for it over whole seconds (tz database transitions are on whole
    # seconds).
    naive_seconds = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    before = naive_seconds - _SEARCH_MARGIN_SECONDS
    after = naive_seconds + _SEARCH_MARGIN_SECONDS
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, tz).date() >= day:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, UTC)
