"""Event time and the working-day calendar the detector's timers run on.

Times are whole seconds since the epoch (UTC), parsed from the envelope's `occurred_at`.
Dates ("working day", "end of `rectify_by`") are local dates in the office's time zone
(`utc_offset_s`, default Beijing +08:00).

Guarantees:

- `add_days(ts, n, "natural")` MUST be `ts + n days`; `add_days(ts, n, "working")` MUST land on
  the same local time of day `n` working days later, skipping weekends and holidays and counting
  adjusted working weekends (调休) as working days.
- Every function is pure: the same inputs give the same instant, so timers are deterministic.

`Calendar` is a protocol: any object with `is_working_day(date) -> bool` (such as the ledger's
`WorkCalendar`) can drive the timers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

__all__ = [
    "DAY_S",
    "Calendar",
    "WorkingDayCalendar",
    "add_days",
    "end_of_local_day",
    "format_ts",
    "local_date",
    "parse_ts",
]

DAY_S = 86_400
BEIJING_OFFSET_S = 8 * 3600


class Calendar(Protocol):
    @property
    def utc_offset_s(self) -> int: ...

    def is_working_day(self, day: date) -> bool: ...


@dataclass(frozen=True)
class WorkingDayCalendar:
    """Monday–Friday, minus `holidays`, plus `extra_working_days` (调休 weekends)."""

    holidays: frozenset[date] = field(default_factory=frozenset)
    extra_working_days: frozenset[date] = field(default_factory=frozenset)
    utc_offset_s: int = BEIJING_OFFSET_S
    name: str = "weekends-only"

    @classmethod
    def of(
        cls, holidays: Iterable[str | date] = (), working: Iterable[str | date] = (), name: str = ""
    ) -> WorkingDayCalendar:
        def days(values: Iterable[str | date]) -> frozenset[date]:
            return frozenset(v if isinstance(v, date) else date.fromisoformat(v) for v in values)

        return cls(days(holidays), days(working), name=name or "custom")

    def is_working_day(self, day: date) -> bool:
        if day in self.extra_working_days:
            return True
        return day.weekday() < 5 and day not in self.holidays


def parse_ts(text: str) -> int:
    """`YYYY-MM-DDTHH:MM:SS[.ffffff]Z` -> epoch seconds (fractions dropped)."""
    return int(datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp())


def format_ts(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local_date(ts: int, calendar: Calendar) -> date:
    return datetime.fromtimestamp(ts + calendar.utc_offset_s, UTC).date()


def end_of_local_day(day: date, calendar: Calendar) -> int:
    """The first instant after local date `day` (its 24:00)."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    return int(midnight.timestamp()) - calendar.utc_offset_s


def add_days(ts: int, days: int, kind: str, calendar: Calendar) -> int:
    """`ts` moved forward by `days` natural or working days (see the module guarantees)."""
    if kind == "natural" or days <= 0:
        return ts + days * DAY_S
    shifted = ts + calendar.utc_offset_s
    day, time_of_day = divmod(shifted, DAY_S)
    current = date(1970, 1, 1) + timedelta(days=day)
    remaining = days
    while remaining:
        current += timedelta(days=1)
        if calendar.is_working_day(current):
            remaining -= 1
    epoch_day = (current - date(1970, 1, 1)).days
    return epoch_day * DAY_S + time_of_day - calendar.utc_offset_s
