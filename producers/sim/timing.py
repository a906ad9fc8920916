"""Office time: working days (with China's public holidays) and office hours in CST.

Simulated work happens 08:30–17:30 China Standard Time (UTC+8) on working days. Plans are
laid out in *office seconds*: a coordinate that counts only the opening hours of working days,
so "halfway through a 5-working-day limit" is one addition and never lands on a weekend, a
public holiday or at night. Timestamps are UTC epoch seconds; the ledger sees them as `…Z`.

Guarantees:
- `at(office(t))` is `t` whenever `t` lies inside office hours; `office` is monotone, so a plan
  whose office offsets increase yields timestamps that increase.
- Every timestamp `at` returns lies inside office hours of a working day of the calendar.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta

__all__ = ["CST", "DAY", "OFFICE_DAY", "OfficeClock", "cst_date", "end_of_day", "utc_stamp"]

DAY = 86_400
CST = 8 * 3600  # China Standard Time, UTC+8, no daylight saving
OPEN = 8 * 3600 + 30 * 60  # 08:30
OFFICE_DAY = 9 * 3600  # 08:30–17:30
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


_DAYS: dict[int, str] = {}
_DATES: dict[int, str] = {}


def utc_stamp(t: int) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ` of epoch seconds `t`."""
    day, sec = divmod(t, DAY)
    prefix = _DAYS.get(day)
    if prefix is None:
        prefix = _DAYS[day] = time.strftime("%Y-%m-%dT", time.gmtime(t))
    hour, sec = divmod(sec, 3600)
    minute, sec = divmod(sec, 60)
    return f"{prefix}{hour:02d}:{minute:02d}:{sec:02d}Z"


def cst_date(t: int) -> str:
    """The calendar date (`YYYY-MM-DD`) in China of epoch seconds `t`."""
    day = (t + CST) // DAY
    found = _DATES.get(day)
    if found is None:
        found = _DATES[day] = time.strftime("%Y-%m-%d", time.gmtime(t + CST))
    return found


def end_of_day(day: str) -> int:
    """Epoch seconds of 24:00 CST at the end of `day` (YYYY-MM-DD)."""
    return (date.fromisoformat(day).toordinal() - _EPOCH_ORDINAL + 1) * DAY - CST


class OfficeClock:
    """Converts between epoch seconds and office seconds over a working-day calendar."""

    def __init__(self, is_working_day: Callable[[date], bool], first_day: date) -> None:
        self._is_working_day = is_working_day
        self._base = first_day.toordinal() - _EPOCH_ORDINAL  # CST day number of index 0
        self._working: list[bool] = []  # per CST day from _base
        self._rank: list[int] = []  # working days before that day (index of the next one)
        self._days: list[int] = []  # CST day numbers of the working days, in order
        self._extend(400)

    def _extend(self, days: int) -> None:
        for _ in range(days):
            day = self._base + len(self._working)
            working = self._is_working_day(date.fromordinal(day + _EPOCH_ORDINAL))
            self._rank.append(len(self._days))
            self._working.append(working)
            if working:
                self._days.append(day)

    def _day_index(self, day: int) -> int:
        i = day - self._base
        if i < 0:
            raise ValueError(f"day {day} precedes the clock's first day")
        while i >= len(self._working) or self._rank[i] >= len(self._days):
            self._extend(366)
        return i

    def office(self, t: int) -> int:
        """Office seconds of epoch time `t` (moments outside office hours map to the next
        opening, which equals the previous closing)."""
        local = t + CST
        day, sec = divmod(local, DAY)
        i = self._day_index(day)
        k = self._rank[i]
        if not self._working[i]:
            return k * OFFICE_DAY
        return k * OFFICE_DAY + min(max(sec - OPEN, 0), OFFICE_DAY)

    def at(self, w: int) -> int:
        """Epoch seconds of office second `w` (a working day, 08:30 ≤ time < 17:30 CST)."""
        k, sec = divmod(w, OFFICE_DAY)
        while k >= len(self._days):
            self._extend(366)
        return self._days[k] * DAY + OPEN + sec - CST

    def is_working_day(self, t: int) -> bool:
        return self._working[self._day_index((t + CST) // DAY)]

    def working_days_later(self, t: int, n: int) -> int:
        """Epoch seconds of 24:00 CST (end) of the `n`th working day after `t`'s CST day
        (n = 0: the end of that day itself)."""
        day = (t + CST) // DAY
        i = self._day_index(day)
        k = self._rank[i] + (n if self._working[i] else n - 1)
        if n == 0:
            return (day + 1) * DAY - CST
        while k >= len(self._days):
            self._extend(366)
        return (self._days[k] + 1) * DAY - CST

    def natural_days_later(self, t: int, n: int) -> int:
        """Epoch seconds of 24:00 CST at the end of the `n`th calendar day after `t`'s day,
        rolled forward to the next working day when that day is not one (n > 0)."""
        day = (t + CST) // DAY + n
        if n > 0:
            i = self._day_index(day)
            if not self._working[i]:
                day = self._days[self._rank[i]]
        return (day + 1) * DAY - CST

    def due(self, t: int, days: int, calendar: str) -> int:
        """The end of a time limit of `days` (`working` | `natural`) from `t`'s CST day, with
        the conventions of `ledger.workdays` (day 0 never counts; natural limits roll forward)."""
        if calendar == "working":
            return self.working_days_later(t, days)
        return self.natural_days_later(t, days)

    @staticmethod
    def cst_day_start(t: int) -> int:
        return ((t + CST) // DAY) * DAY - CST

    @staticmethod
    def plus_days(d: date, n: int) -> date:
        return d + timedelta(days=n)
