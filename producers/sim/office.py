"""The running office: arrivals of matters and personnel events, and the calendar of monthly
and yearly duties, driving the planners of the other modules.

Volumes [A] per taxpayer and month: one invoice-usage and one tax-burden report, about half a
matter. Per official and year: 0.2 appointments, one training or talk, 0.25 complaints, 0.3
violations; per reportable official 0.5 personal matters observed in registries. The office is
sized from the run's length (one taxpayer per 40 events, at least 300), so a run covers about
half a year of office life whatever its size, and always at least a month.
"""

from __future__ import annotations

from datetime import date

from producers.sim.cases import plan_complaint, plan_violation
from producers.sim.declarations import plan_annual, plan_income, plan_observed
from producers.sim.engine import Engine
from producers.sim.figures import plan_month
from producers.sim.matters import MATTER_WEIGHTS, plan_matter
from producers.sim.personnel import (
    plan_appointment,
    plan_assessment,
    plan_integrity_update,
    plan_routine,
)
from producers.sim.timing import OFFICE_DAY, cst_date, end_of_day

__all__ = ["open_office"]

MATTERS_PER_TAXPAYER_MONTH = 0.5
WORKING_DAYS_PER_MONTH = 21
OFFICIAL_RATES = {  # per official and year
    "appointment": 0.2,
    "routine": 1.2,
    "complaint": 0.25,
    "violation": 0.3,
    "observed": 0.5,  # reportable officials only
}


def open_office(eng: Engine) -> None:
    """Schedule the drivers; the engine's run does the rest."""
    world = eng.world
    for bureau in world.bureaus:  # R18: lenient deciders, chosen once per run
        for leader in bureau.leadership[:4]:
            if eng.choose(["discretion_outlier"]):
                eng.outliers[leader.id] = []
    types = list(MATTER_WEIGHTS)
    weights = list(MATTER_WEIGHTS.values())
    per_second = (
        len(world.taxpayers) * MATTERS_PER_TAXPAYER_MONTH / (WORKING_DAYS_PER_MONTH * OFFICE_DAY)
    )

    def arrival(t: int) -> None:
        tp = eng.rng.choice(world.taxpayers)
        matter_type = eng.rng.choices(types, weights)[0]
        if matter_type == "invoice_quota_change" and t - tp.last_quota_change < 120 * 86400:
            matter_type = "invoice_purchase"
        if matter_type == "invoice_quota_change":
            tp.last_quota_change = t
        if matter_type == "tax_assessment" and t < tp.busy_until:
            matter_type = "invoice_purchase"  # a risk episode decides whether one is opened
        plan_matter(eng, tp, matter_type, t)
        eng.later(eng.office_at(t, eng.rng.expovariate(per_second)), arrival)

    officials = list(world.officials.values())
    kinds = list(OFFICIAL_RATES)
    official_rate = (
        len(officials) * sum(OFFICIAL_RATES.values()) / (12 * WORKING_DAYS_PER_MONTH * OFFICE_DAY)
    )

    def personnel(t: int) -> None:
        what = eng.rng.choices(kinds, list(OFFICIAL_RATES.values()))[0]
        o = eng.rng.choice(officials)
        if what == "observed":
            plan_observed(eng, eng.rng.choice(world.reportable), t)
        elif what == "appointment":
            if eng.rng.random() < 0.5:  # rotations of leading cadres (交流任职)
                o = eng.rng.choice(world.reportable)
            plan_appointment(eng, o, t)
        elif what == "complaint":
            plan_complaint(eng, o, t)
        elif what == "violation":
            plan_violation(eng, o, t)
        else:
            plan_routine(eng, o, t)
        eng.later(eng.office_at(t, eng.rng.expovariate(official_rate)), personnel)

    offsets = {o.id: eng.rng.randrange(12) for o in officials}

    def month(t: int) -> None:
        today = date.fromisoformat(cst_date(t))
        prev = date(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 1)
        period = f"{prev.year}-{prev.month:02d}"
        for tp in world.taxpayers:
            plan_month(eng, tp, period, eng.office_at(t, eng.rng.uniform(0.1, 7) * OFFICE_DAY))
        for o in officials:
            if offsets[o.id] == today.month - 1:
                plan_integrity_update(eng, o, eng.office_at(t, eng.rng.uniform(0, 15) * OFFICE_DAY))
        if today.month == 1:
            for o in officials:
                plan_assessment(
                    eng, o, today.year - 1, eng.office_at(t, eng.rng.uniform(3, 12) * OFFICE_DAY)
                )
        if today.month in (1, 7):
            limit = end_of_day(f"{today.year}-{today.month:02d}-20") - 3600 * 12
            for o in world.reportable:
                when = _before(eng, t, limit)
                plan_income(
                    eng,
                    o,
                    today.year - (today.month == 1),
                    "H2" if today.month == 1 else "H1",
                    when,
                )
        if today.month == 1:
            limit = end_of_day(f"{today.year}-01-31") - 3600 * 12
            for o in world.reportable:
                plan_annual(eng, o, today.year - 1, _before(eng, t, limit))
        first = date(today.year + (today.month == 12), today.month % 12 + 1, 1)
        eng.later(eng.clock.at(eng.clock.office(end_of_day(first.isoformat()) - 86400)), month)

    eng.later(eng.start, month)
    eng.later(eng.start, arrival)
    eng.later(eng.start, personnel)


def _before(eng: Engine, t: int, limit: int) -> int:
    """A random office time between `t` and `limit` (or `t` if the window is closed)."""
    lo, hi = eng.clock.office(t), eng.clock.office(limit)
    return eng.clock.at(lo + int(max(0, hi - lo) * eng.rng.uniform(0.05, 0.9)))
