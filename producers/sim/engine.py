"""The simulation clock: a time-ordered agenda of planned events, labels and callbacks.

Planners (matters, figures, personnel, cases) lay out whole episodes in advance as a `Plan`:
a list of items in time order. The engine keeps one heap entry per active plan (its next
item), so memory grows with the number of running episodes, not with the run's length.

Guarantees:
- Events are yielded in non-decreasing `occurred_at` order; within one stream the order is
  the plan's order, so stream sequence numbers follow time.
- Everything random comes from the run's one generator, consumed in a fixed order: the same
  seed gives the same events and labels.
- A label is delivered only when the run reaches its time (its evidence, or the deadline whose
  passing makes it a fact, lies inside the run).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

from ledger.flows import PowerFlow, load_flows
from ledger.workdays import OutsideCalendar, default_calendar
from producers.sim.anomalies import KINDS, SimAnomalies
from producers.sim.events import Label, SimEvent
from producers.sim.timing import OfficeClock, cst_date, utc_stamp
from producers.sim.world import Official, World

__all__ = ["CALL", "EVENT", "LABEL", "Engine", "Plan", "make_event"]

EVENT, LABEL, CALL = 0, 1, 2


class Plan:
    """Items `(t, kind, payload)` of one episode, appended in non-decreasing time."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[int, int, Any]] = []

    def event(self, t: int, sim: SimEvent) -> None:
        self.items.append((t, EVENT, sim))

    def label(self, t: int, label: Label) -> None:
        self.items.append((t, LABEL, label))

    def call(self, t: int, fn: Callable[[int], object]) -> None:
        self.items.append((t, CALL, fn))


def _is_working_day(day: date) -> bool:
    try:
        return default_calendar().is_working_day(day)
    except OutsideCalendar:  # beyond the holiday file: weekends only [A]
        return day.weekday() < 5


class Engine:
    """Shared state of one run: generator, world, clock, flows, counters and the agenda."""

    def __init__(
        self,
        seed: int,
        start: int,
        taxpayers: int,
        anomalies: SimAnomalies,
        on_label: Callable[[Label], None] | None,
    ) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - a simulation, not secrets
        self.start = start
        self.now = start
        first = date.fromisoformat(cst_date(start))
        self.clock = OfficeClock(_is_working_day, date.fromordinal(first.toordinal() - 7))
        self.world = World(self.rng, taxpayers)
        self.flows: dict[str, PowerFlow] = load_flows()
        self.anomalies = anomalies
        self.on_label = on_label
        self._heap: list[tuple[int, int, list[tuple[int, int, Any]], int]] = []
        self._serial = 0
        self._counters: dict[str, int] = {}
        self._refs = 0
        self._actors: dict[tuple[str, str], dict[str, str]] = {}
        self.outliers: dict[str, list[str]] = {}  # R18: lenient official -> decided matters
        self.last_decision_ref: str | None = None

    # -- helpers for planners ---------------------------------------------------------------

    def schedule(self, plan: Plan) -> None:
        items = plan.items
        if items:
            self._serial += 1
            heapq.heappush(self._heap, (max(items[0][0], self.now), self._serial, items, 0))

    def later(self, t: int, fn: Callable[[int], object]) -> None:
        plan = Plan()
        plan.call(t, fn)
        self.schedule(plan)

    def next_serial(self, prefix: str, year: str) -> str:
        key = f"{prefix}{year}"
        n = self._counters.get(key, 0) + 1
        self._counters[key] = n
        return f"{prefix}{year}-{n:06d}"

    def placeholder(self) -> str:
        """A fresh placeholder event id (a valid UUID) for `SimEvent.ref_key`."""
        self._refs += 1
        return f"00000000-0000-4000-8000-{self._refs:012x}"

    def actor(self, official: Official, role: str | None = None) -> dict[str, str]:
        key = (official.id, role or official.role)
        found = self._actors.get(key)
        if found is None:
            found = {"official": official.id, "role": key[1], "unit": official.unit}
            self._actors[key] = found
        return found

    def label(
        self,
        kind: str,
        key: dict[str, str],
        official: str | None,
        t: int,
        evidence: tuple[str, ...],
        *,
        also: tuple[str, ...] = (),
    ) -> Label:
        """The label of `kind`; `also` adds rules the facts of this instance trigger too."""
        rules = KINDS[kind].rules + tuple(r for r in also if r not in KINDS[kind].rules)
        return Label(kind, rules, key, official, utc_stamp(t), evidence)

    def choose(self, applicable: list[str]) -> str | None:
        return self.anomalies.choose(self.rng, applicable)

    def office_at(self, t: int, office_seconds: float) -> int:
        """`t` moved on by `office_seconds` of office time."""
        return self.clock.at(self.clock.office(t) + int(office_seconds))

    # -- the run ----------------------------------------------------------------------------

    def run(self, events: int) -> Iterator[SimEvent]:
        heap = self._heap
        pop, push = heapq.heappop, heapq.heappush
        emitted = 0
        now = self.now
        while emitted < events and heap:
            t, serial, items, i = pop(heap)
            if t > now:
                now = self.now = t
            _, kind, payload = items[i]
            if i + 1 < len(items):
                nxt = items[i + 1][0]
                push(heap, (nxt if nxt > now else now, serial, items, i + 1))
            if kind == EVENT:
                emitted += 1
                if emitted == events:  # the run ends: the labels of this very fact still count
                    j = i + 1
                    while j < len(items) and items[j][1] == LABEL and items[j][0] <= t:
                        if self.on_label is not None:
                            self.on_label(items[j][2])
                        j += 1
                yield payload
            elif kind == LABEL:
                if self.on_label is not None:
                    self.on_label(payload)
            else:
                payload(t)


def make_event(  # noqa: PLR0917 - positional on the hot path
    system: str,
    stream: str,
    type_: str,
    actor: dict[str, str],
    subject: dict[str, str],
    data: dict[str, Any],
    t: int,
    pii: dict[str, Any] | None = None,
    ref_key: str | None = None,
    refs: tuple[str, ...] = (),
) -> SimEvent:
    return SimEvent(
        system, stream, type_, actor, subject, data, utc_stamp(t), pii or _NO_PII, ref_key, refs
    )


_NO_PII: dict[str, Any] = {}  # shared and never mutated
