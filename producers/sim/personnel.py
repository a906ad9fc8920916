"""Personnel records (人事) of officials, from the personnel system `4403-renshi`.

Appointments recording who recommended, examined, inspected and decided (after a
party-committee decision), each followed by a preventive talk, an integrity-file update and,
for a reportable post, the initial personal-matters report; yearly assessment tallies in
January; training; reminder talks; the yearly integrity-file update.

Guarantees:
- Every personnel event is on the official's `official/<official>` stream, recorded by the
  bureau's personnel officer.
- An appointment's party-committee decision is held before it, by a quorum (> half) of the
  leadership team.
- An injected anomaly (R21, R23, R25) changes only the facts its kind names and adds a label
  whose time is when it becomes a fact (the 30-day deadline passed, the tally recorded).
"""

from __future__ import annotations

from typing import Any

from producers.sim.decisions import record_decision
from producers.sim.declarations import report_initial
from producers.sim.engine import Engine, Plan, make_event
from producers.sim.timing import DAY, OFFICE_DAY, cst_date, end_of_day
from producers.sim.world import Bureau, Official

__all__ = [
    "plan_appointment",
    "plan_assessment",
    "plan_integrity_update",
    "plan_routine",
]

RANK_UP = {
    "staff": "section_deputy",
    "section_deputy": "section_chief",
    "section_chief": "county_deputy",
    "county_deputy": "county_chief",
}
REPORTABLE = frozenset({"county_deputy", "county_chief", "bureau_deputy", "bureau_chief"})


def _bureau(eng: Engine, o: Official) -> Bureau:
    return eng.world.bureaus[o.bureau]


def _personnel(  # noqa: PLR0917
    eng: Engine, plan: Plan, o: Official, t: int, type_: str, data: dict[str, Any]
) -> None:
    officer = _bureau(eng, o).personnel.members[0]
    plan.event(
        t,
        make_event(
            "4403-renshi",
            f"official/{o.id}",
            type_,
            eng.actor(officer, "personnel_officer"),
            {"official": o.id},
            data,
            t,
        ),
    )


def plan_appointment(eng: Engine, o: Official, t: int) -> None:
    """An appointment (after a party-committee decision), its talk, file and reports."""
    rng = eng.rng
    b = _bureau(eng, o)
    plan = Plan()
    unit = eng.world.units[o.unit]
    if rng.random() < 0.5 and o.rank in RANK_UP and o.role not in ("approver",):
        o.rank = RANK_UP[o.rank]
    o.reportable = o.rank in REPORTABLE
    leaders = b.leadership
    held = t - rng.randint(2, 10) * DAY
    held = eng.clock.at(eng.clock.office(max(held, eng.now)))
    record_decision(
        eng,
        plan,
        b,
        held,
        meeting="party_committee",
        topic="appointment",
        participants=[x.id for x in leaders[: rng.randint(len(leaders) // 2 + 1, len(leaders))]],
        matters=[],
    )
    t = max(t, eng.office_at(held, 3600))
    head = next((m for m in unit.members if m.role == "approver" and m is not o), leaders[0])
    _personnel(
        eng,
        plan,
        o,
        t,
        "personnel.appointed",
        {
            "post": o.post,
            "unit": o.unit,
            "rank": o.rank,
            "reportable": o.reportable,
            "recommended_by": head.id,
            "examined_by": b.personnel.members[0].id,
            "inspected_by": b.personnel.members[-1].id,
            "decided_by": f"{b.office_unit}-party-committee",
            "effective_on": cst_date(t),
        },
    )
    t_talk = eng.office_at(t, rng.uniform(0.5, 8) * OFFICE_DAY)
    _personnel(
        eng,
        plan,
        o,
        t_talk,
        "personnel.talk_held",
        {
            "kind": "preventive",
            "held_by": b.discipline.members[0].id,
            "held_on": cst_date(t_talk),
            "reason_code": "new_post",
        },
    )
    kind = eng.choose(
        ["integrity_file_stale"] + (["initial_report_missing"] if o.reportable else [])
    )
    if kind == "integrity_file_stale":
        deadline = end_of_day(cst_date(t)) + 30 * DAY
        plan.label(
            deadline + 1,
            eng.label(kind, {"official": o.id}, o.id, deadline + 1, (f"official/{o.id}",)),
        )
    else:
        t_file = eng.office_at(t, rng.uniform(2, 15) * OFFICE_DAY)
        _personnel(
            eng,
            plan,
            o,
            t_file,
            "personnel.integrity_file_updated",
            {
                "sections": ["basic_info", "integrity_commitment"],
                "updated_by": b.discipline.members[-1].id,
                "updated_on": cst_date(t_file),
            },
        )
    if o.reportable:
        if kind == "initial_report_missing":
            deadline = end_of_day(cst_date(t)) + 30 * DAY
            plan.label(
                deadline + 1,
                eng.label(
                    kind,
                    {"official": o.id},
                    o.id,
                    deadline + 1,
                    (f"official/{o.id}", f"declaration/{o.id}"),
                ),
            )
        else:
            report_initial(eng, plan, o, eng.office_at(t, rng.uniform(3, 16) * OFFICE_DAY))
    plan.items.sort(key=lambda item: item[0])
    eng.schedule(plan)


def plan_assessment(eng: Engine, o: Official, year: int, t: int) -> None:
    """The yearly assessment tally (考核); ≥ 1/3 incompetent votes is R25."""
    rng = eng.rng
    voters = rng.randint(12, 30)
    kind = eng.choose(["incompetent_votes"])
    incompetent = -(-voters // 3) + rng.randint(0, 3) if kind else rng.choice((0, 0, 0, 1, 2))
    basic = rng.randint(0, 2)
    excellent = rng.randint(0, max(0, voters - incompetent - basic) // 3)
    competent = voters - incompetent - basic - excellent
    if kind:
        result = "incompetent"
    elif excellent * 2 > voters:
        result = "excellent"
    else:
        result = "competent"
    plan = Plan()
    _personnel(
        eng,
        plan,
        o,
        t,
        "personnel.assessment_tallied",
        {
            "year": year,
            "votes": {
                "excellent": excellent,
                "competent": max(competent, 0),
                "basically_competent": basic,
                "incompetent": incompetent,
            },
            "result": result,
        },
    )
    if kind:
        plan.label(t, eng.label(kind, {"official": o.id}, o.id, t, (f"official/{o.id}",)))
    eng.schedule(plan)


def plan_integrity_update(eng: Engine, o: Official, t: int) -> None:
    plan = Plan()
    b = _bureau(eng, o)
    _personnel(
        eng,
        plan,
        o,
        t,
        "personnel.integrity_file_updated",
        {
            "sections": ["assessment", "personal_matters", "training"],
            "updated_by": b.discipline.members[-1].id,
            "updated_on": cst_date(t),
        },
    )
    eng.schedule(plan)


def plan_routine(eng: Engine, o: Official, t: int) -> None:
    """Training or a reminder talk."""
    rng = eng.rng
    plan = Plan()
    b = _bureau(eng, o)
    if rng.random() < 0.75:
        _personnel(
            eng,
            plan,
            o,
            t,
            "personnel.training_completed",
            {
                "course": rng.choice(
                    (
                        "廉政教育专题培训",
                        "税收执法规范培训",
                        "发票管理业务培训",
                        "行政处罚裁量基准培训",
                    )
                ),
                "hours": rng.choice((4, 8, 16, 24)),
                "completed_on": cst_date(t),
            },
        )
    else:
        _personnel(
            eng,
            plan,
            o,
            t,
            "personnel.talk_held",
            {
                "kind": "reminder",
                "held_by": b.discipline.members[0].id,
                "held_on": cst_date(t),
                "reason_code": "routine_reminder",
            },
        )
    eng.schedule(plan)
