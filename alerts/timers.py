"""Durable absence timers on event time: (due_at, rule_id, key, level_step, start_id).

Timers live in a binary heap inside the detector state (so they are snapshotted with the log
position). A pending absence keeps one live timer, its next level's (the engine arms the
next one when a level fires: `alerts.matchers.MatchKinds._arm`). Cancelling is lazy: a popped
timer is current only while its absence is still pending with the same start event, the step
is not yet fired and the due time still matches (an extension moves the due times and arms a
new timer).

Level due times (DOMAIN §5.1 `levels[].at`): `fraction` of the limit (working-day limits:
ceil(days × fraction) working days; date deadlines: ceil(span × fraction) seconds), then
`plus` a duration, then `plus_extension` the limit's `extension` days in its calendar.
Day counts follow `ledger.workdays`: a level due after N days is due at 24:00 CST of the day a
limit of N days ends (see `alerts.calendar`).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from datetime import date
from fractions import Fraction
from functools import partial
from typing import Any, NamedTuple

from alerts.calendar import Calendar, DueMemo, end_of_local_day, extend_due, limit_due

__all__ = ["Limit", "Timer", "TimerHeap", "level_due"]


class Timer(NamedTuple):
    due_at: int
    rule_id: str
    key: str
    level_step: int
    start_id: str


class Limit(NamedTuple):
    """A resolved `within`: a day count in a calendar, or a fixed deadline instant."""

    days: int
    calendar: str
    extension: int = 0
    deadline: int | None = None

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> Limit:
        return cls(int(entry["days"]), str(entry["calendar"]), int(entry.get("extension", 0)))

    @classmethod
    def until(cls, day: date) -> Limit:
        return cls(0, "natural", 0, end_of_local_day(day))


def level_due(
    start: int,
    limit: Limit,
    *,
    fraction: Fraction,
    plus: Mapping[str, Any] | None,
    plus_extension: bool,
    calendar: Calendar,
    memo: DueMemo | None = None,
) -> int:
    """The due time of a level; `memo` (of the same calendar) only saves recomputation."""
    limit_of = memo.limit_due if memo else partial(_limit_due, calendar=calendar)
    extend = memo.extend_due if memo else partial(_extend_due, calendar=calendar)
    num, den = fraction.numerator, fraction.denominator  # ceil(n * fraction) in integers
    if limit.deadline is not None:
        due = start - (-(limit.deadline - start) * num // den)
    else:
        due = limit_of(start, -(-limit.days * num // den), limit.calendar)
    if plus:
        due = extend(due, int(plus["days"]), str(plus["calendar"]))
    if plus_extension and limit.extension:
        due = extend(due, limit.extension, limit.calendar)
    return due


def _limit_due(ts: int, days: int, kind: str, *, calendar: Calendar) -> int:
    return limit_due(ts, days, kind, calendar)


def _extend_due(due: int, days: int, kind: str, *, calendar: Calendar) -> int:
    return extend_due(due, days, kind, calendar)


class TimerHeap:
    """The pending timers, as a heap of lists (JSON-able for the snapshot)."""

    def __init__(self, items: list[list[Any]] | None = None) -> None:
        self.items: list[list[Any]] = items or []
        heapq.heapify(self.items)

    def push(self, timer: Timer) -> None:
        heapq.heappush(self.items, list(timer))

    def push_at(self, due_at: int, rule_id: str, key: str, level_step: int, start_id: str) -> None:
        """`push(Timer(...))` without building the tuple (the engine's hot path)."""
        heapq.heappush(self.items, [due_at, rule_id, key, level_step, start_id])

    def pop_due_items(self, until: int, strict: bool) -> list[list[Any]]:
        """`pop_due` as the stored lists `[due_at, rule_id, key, level_step, start_id]`."""
        items, out = self.items, []
        while items and (items[0][0] < until or (not strict and items[0][0] == until)):
            out.append(heapq.heappop(items))
        return out

    def next_due(self) -> int | None:
        return int(self.items[0][0]) if self.items else None

    def pop_due(self, until: int, strict: bool) -> list[Timer]:
        out = []
        while self.items and (
            self.items[0][0] < until or (not strict and self.items[0][0] == until)
        ):
            out.append(Timer(*heapq.heappop(self.items)))
        return out

    def __len__(self) -> int:
        return len(self.items)
