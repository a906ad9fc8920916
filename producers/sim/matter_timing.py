"""When a matter's steps happen: office-time schedules inside the matter's time limit.

Guarantees:
- Steps follow each other in office time, at least a minute apart, on the holiday calendar.
- A matter with no deadline anomaly concludes before the reminder point of the deadline rules
  (R05 yellow at 80 % of the limit, R15 at 75 of 90 days); an extended one after the original
  limit, before the reminder point moved by the extension.
- An injected `processing_deadline`, `refund_late` or `penalty_case_overdue` concludes after
  the limit (a late refund's payment itself is late, 实施细则 第78条); such a matter is never
  extended.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ledger.flows import FlowStep, TimeLimit
from producers.sim.engine import Engine
from producers.sim.timing import OFFICE_DAY

__all__ = ["WARN_FRACTION", "MatterTimes", "time_steps"]

WARN_FRACTION = 0.8  # R05 `warn_fraction` (R15 warns later: 75 of 90 days)
CAPS = {
    "case_filed": 0.3 * OFFICE_DAY,
    "hearing_requested": 2 * OFFICE_DAY,
    "hearing_held": 8 * OFFICE_DAY,
}


class MatterTimes(NamedTuple):
    """The schedule of one matter."""

    timed: list[str]  # the steps' names, in order
    times: list[int]  # one time per step, then the conclusion's
    due: int  # the time limit (from the limit's start step when it is not acceptance)
    due_ext: int  # the limit moved by the extension
    warn: int  # the reminder point of the original limit
    extension: int  # extension days granted (0: none)


def time_steps(
    eng: Engine,
    t0: int,
    limit: TimeLimit,
    *,
    matter_type: str,
    steps: list[FlowStep],
    kind: str | None,
) -> MatterTimes:
    """Times for `steps` of a matter accepted at `t0` (office time), and its deadlines."""
    rng, clock = eng.rng, eng.clock
    late = kind in ("processing_deadline", "refund_late", "penalty_case_overdue")
    extension = 0
    if (
        limit.extension_days
        and matter_type not in ("penalty", "inspection")
        and not late
        and (rng.random() < 0.08)
    ):
        extension = limit.extension_days
    w0 = clock.office(t0)
    due = clock.due(t0, limit.days, limit.calendar)
    due_ext = clock.due(t0, limit.days + extension, limit.calendar)
    budget = max(clock.office(due_ext) - w0 - 600, 600)
    # normal matters end before the reminder point of the deadline rules (R05 yellow at 80 %
    # of the limit, R15 at 75 of 90 days); an extended one after the original limit, before
    # the reminder point moved by the extension
    warn = clock.due(t0, math.ceil(limit.days * WARN_FRACTION), limit.calendar)
    if late:
        span = clock.office(due) - w0 + rng.uniform(0.1, 0.6) * max(budget, OFFICE_DAY) + 3600
    elif extension:
        warn_ext = clock.office(clock.due(warn - 1, extension, limit.calendar))
        span = (clock.office(due) - w0) + (
            min(budget, warn_ext - w0 - 600) - (clock.office(due) - w0)
        ) * rng.uniform(0.3, 0.9)
    else:
        span = max(min(budget, clock.office(warn) - w0 - 600), 600) * rng.uniform(0.15, 0.9)
    until = limit.until
    timed = [s.name for s in steps]
    if until != "concluded" and until in timed:
        head = timed[: timed.index(until) + 1]
        tail = timed[len(head) :]
    else:
        head, tail = timed, []
    gaps = _gaps(eng, [*head, "concluded"] if not tail else head, span)
    times: list[int] = []
    w = w0
    for g in gaps:
        w += max(int(g), 60)
        times.append(clock.at(w))
    for _ in tail:
        w += int(rng.uniform(0.2, 6) * OFFICE_DAY)
        times.append(clock.at(w))
    if tail:
        w += int(rng.uniform(0.1, 1) * OFFICE_DAY)
        times.append(clock.at(w))
    if kind == "refund_late" and "refund_pay" in timed:
        # 实施细则 第78条 ties the 30 (10) days to the refund itself: the payment is late
        i = timed.index("refund_pay")
        if times[i] <= due and times[-1] > due:
            w_pay = (clock.office(due) + clock.office(times[-1])) // 2
            times[i] = max(times[i], clock.at(w_pay))
    if limit.start != "accepted" and timed and timed[0] == limit.start:
        due = clock.due(times[0], limit.days, limit.calendar)
    return MatterTimes(timed, times, due, due_ext, warn, extension)


def _gaps(eng: Engine, names: list[str], span: float) -> list[float]:
    """Office-second gaps before each of `names`, summing to at most `span`."""
    weights = [eng.rng.uniform(0.3, 1.0) for _ in names]
    capped = {i: CAPS[n] for i, n in enumerate(names) if n in CAPS}
    free = sum(w for i, w in enumerate(weights) if i not in capped) or 1.0
    gaps: list[float] = []
    for i, w in enumerate(weights):
        if i in capped:
            gaps.append(min(capped[i], span * w / (sum(weights) or 1.0)))
        else:
            gaps.append(0.0)
    rest = max(span - sum(gaps), 0.0)
    return [g if i in capped else rest * weights[i] / free for i, g in enumerate(gaps)]
