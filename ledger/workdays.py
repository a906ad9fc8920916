"""Working days (工作日) and statutory time limits (办理时限) on China's holiday calendar.

The calendar file (`ledger/calendars/cn.yaml`) lists, per year, each public-holiday break and
the weekend days that become working days (调休上班). A day is a working day if it is a make-up
working day, or a Monday–Friday outside every break.

Conventions (every deadline in neikong is computed here):

- Days are civil dates in China Standard Time (UTC+8). Timestamps are UTC (`...Z`); a matter
  accepted at 2026-09-30T08:00:00Z (16:00 CST) is accepted on 30 September; one accepted at
  2026-09-30T16:00:00Z (00:00 CST on 1 October) is accepted on 1 October.
- Day 0 is the acceptance day, whatever kind of day it is.
- A limit of N working days ends at the end (24:00 CST) of the Nth working day after day 0
  (day 0 itself never counts, so a matter accepted on a holiday gets N full working days).
  0 days = the end of day 0 (same-day matters).
- A limit of N natural days ends at 24:00 CST of day 0 + N. If that day is not a working day,
  the limit ends at 24:00 CST of the next working day (税收征管法实施细则 第一百零九条; 民法典
  第二百零三条), unless `roll_forward=False`. The 细则's further rule (three or more consecutive
  holidays inside the period extend it) is NOT applied [A]. 0 natural days = the end of day 0.
- A deadline `due` is met by an act at any instant `t <= due`; `t = due + 1 s` is late.

Guarantees: a date outside the years in the file MUST raise `OutsideCalendar`, never be guessed
as an ordinary weekday. The file's 2027 entries are provisional (see the file), and
`WorkCalendar.provisional_years` says so.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, date, datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ledger.errors import NeikongError

__all__ = [
    "CST",
    "CalendarDefinitionError",
    "OutsideCalendar",
    "WorkCalendar",
    "default_calendar",
    "format_ts",
    "parse_ts",
]

CST = timedelta(hours=8)
_ONE_DAY = timedelta(days=1)
_CALENDARS = ("working", "natural")


class OutsideCalendar(NeikongError, ValueError):
    """A date outside the years the holiday calendar covers."""


class CalendarDefinitionError(NeikongError, ValueError):
    """The holiday calendar file is invalid."""


def parse_ts(ts: str | datetime) -> datetime:
    """A UTC timestamp (`YYYY-MM-DDTHH:MM:SS[.ffffff]Z` or an aware datetime) as aware UTC."""
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            raise ValueError("a naive datetime has no time zone; use UTC")
        return ts.astimezone(UTC)
    if not ts.endswith("Z"):
        raise ValueError(f"timestamp {ts!r} is not UTC (…Z)")
    return datetime.fromisoformat(ts[:-1]).replace(tzinfo=UTC)


def format_ts(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ` (microseconds kept only when non-zero), the envelope form."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


class WorkCalendar:
    """Working days over a contiguous range of years. Immutable; safe to share."""

    def __init__(
        self,
        rest_days: frozenset[date],
        make_up_days: frozenset[date],
        *,
        first_year: int,
        last_year: int,
        provisional_years: frozenset[int] = frozenset(),
        name: str = "cn",
    ) -> None:
        self.name = name
        self.first_day = date(first_year, 1, 1)
        self.last_day = date(last_year, 12, 31)
        self.provisional_years = provisional_years
        self.rest_days = rest_days
        self.make_up_days = make_up_days
        working: list[int] = []
        day = self.first_day
        while day <= self.last_day:
            if day in make_up_days or (day.weekday() < 5 and day not in rest_days):
                working.append(day.toordinal())
            day += timedelta(days=1)
        self._working = working
        self._working_set = frozenset(working)

    @classmethod
    def load(cls, path: Path | None = None) -> WorkCalendar:
        """Read a calendar file (default: the packaged `calendars/cn.yaml`)."""
        if path is None:
            text = (resources.files("ledger") / "calendars" / "cn.yaml").read_text("utf-8")
        else:
            text = path.read_text("utf-8")
        return cls._from_doc(yaml.safe_load(text))

    @classmethod
    def _from_doc(cls, doc: Any) -> WorkCalendar:
        try:
            years: dict[int, Any] = doc["years"]
            rest: set[date] = set()
            make_up: set[date] = set()
            provisional = {y for y, spec in years.items() if spec.get("provisional")}
            for year, spec in years.items():
                for holiday in spec["holidays"]:
                    first, last = holiday["rest"]
                    if not (isinstance(first, date) and isinstance(last, date)) or first > last:
                        raise CalendarDefinitionError(f"{holiday['name']} {year}: bad range")
                    if first.year != year:
                        raise CalendarDefinitionError(f"{holiday['name']}: not in {year}")
                    day = first
                    while day <= last:
                        rest.add(day)
                        day += timedelta(days=1)
                    for extra in holiday["workdays"]:
                        if not isinstance(extra, date) or extra.weekday() < 5:
                            raise CalendarDefinitionError(
                                f"{holiday['name']} {year}: make-up day {extra} is not a weekend"
                            )
                        make_up.add(extra)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, CalendarDefinitionError):
                raise
            raise CalendarDefinitionError(f"calendar file: {exc!r}") from exc
        if rest & make_up:
            raise CalendarDefinitionError(f"days both off and working: {sorted(rest & make_up)}")
        ordered = sorted(years)
        if not ordered or ordered != list(range(ordered[0], ordered[-1] + 1)):
            raise CalendarDefinitionError(f"years must be contiguous, got {ordered}")
        return cls(
            frozenset(rest),
            frozenset(make_up),
            first_year=ordered[0],
            last_year=ordered[-1],
            provisional_years=frozenset(provisional),
            name=str(doc.get("id", "cn")),
        )

    def _check(self, day: date) -> None:
        if not self.first_day <= day <= self.last_day:
            raise OutsideCalendar(
                f"{day} is outside the {self.name} holiday calendar "
                f"({self.first_day.year}–{self.last_day.year}); add that year's schedule"
            )

    def is_working_day(self, day: date) -> bool:
        """True for a make-up working day or a weekday outside every holiday break."""
        self._check(day)
        return day.toordinal() in self._working_set

    def add_working_days(self, start: date, n: int) -> date:
        """The nth working day after `start` (`start` itself never counts); n = 0 → `start`."""
        if n < 0:
            raise ValueError("n must be >= 0")
        self._check(start)
        if n == 0:
            return start
        index = bisect_right(self._working, start.toordinal()) + n - 1
        if index >= len(self._working):
            raise OutsideCalendar(
                f"{n} working days after {start} run past the calendar's end {self.last_day}"
            )
        return date.fromordinal(self._working[index])

    def working_days_between(self, a: date, b: date) -> int:
        """Working days d with a < d <= b (negative if b < a), so that
        `working_days_between(a, add_working_days(a, n)) == n`."""
        self._check(a)
        self._check(b)
        if b < a:
            return -self.working_days_between(b, a)
        return bisect_right(self._working, b.toordinal()) - bisect_right(
            self._working, a.toordinal()
        )

    @staticmethod
    def local_date(ts: str | datetime) -> date:
        """The civil date in China Standard Time of a UTC timestamp."""
        if isinstance(ts, str) and len(ts) >= 20 and ts[10] == "T" and ts[-1] == "Z":
            # Fast path (projections call this per event): 16:00Z and later is the next day.
            hour = int(ts[11:13])
            if not 0 <= hour <= 23:
                raise ValueError(f"timestamp {ts!r} has no valid hour")
            day = date.fromisoformat(ts[:10])
            return day + _ONE_DAY if hour >= 16 else day
        return (parse_ts(ts) + CST).date()

    @staticmethod
    def end_of(day: date) -> datetime:
        """24:00 CST of `day`, as aware UTC (16:00Z of the same date)."""
        return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1) - CST

    def due_day(self, start: date, days: int, calendar: str, *, roll_forward: bool = True) -> date:
        """The last day of a limit of `days` counted from day 0 = `start` (module docstring)."""
        if calendar not in _CALENDARS:
            raise ValueError(f"calendar must be working or natural, not {calendar!r}")
        if days < 0:
            raise ValueError("days must be >= 0")
        if calendar == "working":
            return self.add_working_days(start, days)
        day = start + timedelta(days=days)
        if days > 0 and roll_forward and not self.is_working_day(day):
            day = self.add_working_days(day, 1)
        return day

    def due_at(
        self, start_ts: str | datetime, days: int, calendar: str, *, roll_forward: bool = True
    ) -> datetime:
        """The instant (aware UTC) a limit of `days` (`working` | `natural`) ends, for a
        matter accepted at `start_ts`: 24:00 CST of `due_day(local_date(start_ts), …)`."""
        day = self.due_day(self.local_date(start_ts), days, calendar, roll_forward=roll_forward)
        return self.end_of(day)


@cache
def default_calendar() -> WorkCalendar:
    """The packaged China calendar (loaded once)."""
    return WorkCalendar.load()
