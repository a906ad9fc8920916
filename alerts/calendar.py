"""Event time and the working-day calendar the detector's timers run on.

Times are whole seconds since the epoch (UTC), parsed from the envelope's `occurred_at`. Days
and deadlines follow `ledger.workdays` exactly (China Standard Time dates; a limit of N days
ends at 24:00 CST of its last day; natural-day limits roll forward to a working day), so a
warning and the case history's conformance findings agree on when a matter became overdue.

Guarantees:

- `limit_due(ts, n, kind)` MUST equal `WorkCalendar.due_at(ts, n, kind)`.
- `extend_due(due, n, kind)` moves a deadline that ends at 24:00 of day D to the end of the
  day a limit of `n` days counted from day 0 = D ends (an extension, or a grace period).
- Pure functions: the same inputs give the same instant, so timers are deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

from ledger.workdays import CST, WorkCalendar, default_calendar

__all__ = [
    "DAY_S",
    "Calendar",
    "DueMemo",
    "default_calendar",
    "end_of_local_day",
    "extend_due",
    "fixture_calendar",
    "format_ts",
    "limit_due",
    "local_date",
    "parse_ts",
]

DAY_S = 86_400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_CST_S = int(CST.total_seconds())  # China Standard Time: a fixed offset
Calendar = WorkCalendar


_HOURS: dict[str, int] = {}  # "YYYY-MM-DDTHH" -> epoch seconds of that hour (parse_ts's cache)
_PARSED: dict[str, int] = {}  # recent timestamps -> epoch seconds (each is parsed twice or more)
MAX_PARSED = 4096


def parse_ts(text: str) -> int:
    """`YYYY-MM-DDTHH:MM:SS[.ffffff]Z` -> epoch seconds (fractions dropped)."""
    seconds = _PARSED.get(text)
    if seconds is not None:
        return seconds
    hour = _HOURS.get(text[:13])
    if hour is None:
        day = date(int(text[0:4]), int(text[5:7]), int(text[8:10])).toordinal() - _EPOCH_ORDINAL
        hour = day * DAY_S + int(text[11:13]) * 3600
        if len(_HOURS) >= MAX_PARSED:
            _HOURS.clear()
        _HOURS[text[:13]] = hour
    seconds = hour + int(text[14:16]) * 60 + int(text[17:19])
    if len(_PARSED) >= MAX_PARSED:
        _PARSED.clear()
    _PARSED[text] = seconds
    return seconds


_DAYS: dict[int, str] = {}  # day since the epoch -> "YYYY-MM-DDT" (format_ts's cache)


def format_ts(ts: int) -> str:
    """Epoch seconds -> `YYYY-MM-DDTHH:MM:SSZ` (UTC); equal to the datetime `strftime` form."""
    if ts.__class__ is not int:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    day, rest = divmod(ts, DAY_S)
    prefix = _DAYS.get(day)
    if prefix is None:
        moment = date.fromordinal(day + _EPOCH_ORDINAL)
        if moment.year < 1000:  # strftime does not pad such years: keep its form
            return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        prefix = moment.isoformat() + "T"
        if len(_DAYS) >= MAX_PARSED:
            _DAYS.clear()
        _DAYS[day] = prefix
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    return f"{prefix}{hour:02d}:{minute:02d}:{second:02d}Z"


def local_date(ts: int) -> date:
    """The CST date of `ts` (equal to `(datetime.fromtimestamp(ts, UTC) + CST).date()`)."""
    return date.fromordinal((ts + _CST_S) // DAY_S + _EPOCH_ORDINAL)


def end_of_local_day(day: date) -> int:
    """24:00 CST of `day` (equal to `WorkCalendar.end_of(day)` as epoch seconds)."""
    return (day.toordinal() - _EPOCH_ORDINAL + 1) * DAY_S - _CST_S


def limit_due(ts: int, days: int, kind: str, calendar: Calendar) -> int:
    """`calendar.due_at(ts, days, kind)` as epoch seconds (day 0 = the CST date of `ts`)."""
    return end_of_local_day(calendar.due_day(local_date(ts), days, kind))


def extend_due(due: int, days: int, kind: str, calendar: Calendar) -> int:
    day0 = local_date(due - 1)
    return end_of_local_day(calendar.due_day(day0, days, kind))


def fixture_calendar(
    holidays: Iterable[str | date], working: Iterable[str | date], name: str = "fixture"
) -> WorkCalendar:
    """A calendar for tests: weekends plus the given rest days and make-up working days."""

    def days(values: Iterable[str | date]) -> frozenset[date]:
        return frozenset(v if isinstance(v, date) else date.fromisoformat(v) for v in values)

    return WorkCalendar(days(holidays), days(working), first_year=2020, last_year=2035, name=name)


class DueMemo:
    """`limit_due` and `extend_due` for one calendar, memoised: pure functions of their
    arguments (a limit in days depends on the start's local date only). One per engine, so a
    memo never outlives its run; MUST give exactly what the plain functions give."""

    def __init__(self, calendar: Calendar, max_entries: int = 65_536) -> None:
        self.calendar = calendar
        self.max_entries = max_entries
        self._limits: dict[tuple[int, int, str], int] = {}
        self._extended: dict[tuple[int, int, str], int] = {}

    def limit_due(self, ts: int, days: int, kind: str) -> int:
        key = ((ts + _CST_S) // DAY_S, days, kind)
        due = self._limits.get(key)
        if due is None:
            due = limit_due(ts, days, kind, self.calendar)
            if len(self._limits) >= self.max_entries:
                self._limits.clear()
            self._limits[key] = due
        return due

    def extend_due(self, due: int, days: int, kind: str) -> int:
        key = (due, days, kind)
        moved = self._extended.get(key)
        if moved is None:
            moved = extend_due(due, days, kind, self.calendar)
            if len(self._extended) >= self.max_entries:
                self._extended.clear()
            self._extended[key] = moved
        return moved
