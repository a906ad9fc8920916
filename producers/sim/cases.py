"""Complaints (信访, 纪检) and violations with supervised rectification (督察内审).

A complaint is received and concluded 15–50 working days later; a substantiated one leads to
an admonition talk or a sanction. A violation is recorded, a rectification is ordered with a
deadline, and completed before it, unless a late rectification is injected (R22).
"""

from __future__ import annotations

from producers.sim.engine import Engine, Plan, make_event
from producers.sim.timing import DAY, OFFICE_DAY, cst_date, end_of_day
from producers.sim.world import Official

__all__ = ["plan_complaint", "plan_violation"]

ERRORS = ("E-STEP-MISSING", "E-DEADLINE", "E-DISCRETION", "E-FILE-INCOMPLETE", "E-HALL-SERVICE")


def plan_complaint(eng: Engine, o: Official, t: int) -> None:
    rng = eng.rng
    b = eng.world.bureaus[o.bureau]
    inspector = eng.actor(b.discipline.members[-1], "discipline_inspector")
    stream = eng.next_serial("complaint/", cst_date(t)[:4])
    subject = {"official": o.id}
    plan = Plan()
    plan.event(
        t,
        make_event(
            "4403-jijian",
            stream,
            "complaint.received",
            inspector,
            subject,
            {
                "channel": rng.choice(("letter", "visit", "online", "online", "phone", "referral")),
                "category": rng.choice(("conduct", "enforcement", "integrity", "other")),
                "received_on": cst_date(t),
            },
            t,
        ),
    )
    t2 = eng.office_at(t, rng.uniform(15, 50) * OFFICE_DAY)
    finding = rng.choices(("unsubstantiated", "partly_substantiated", "substantiated"), (7, 2, 1))[
        0
    ]
    handling = "none"
    if finding != "unsubstantiated":
        handling = rng.choice(("talk", "sanction"))
    plan.event(
        t2,
        make_event(
            "4403-jijian",
            stream,
            "complaint.concluded",
            inspector,
            subject,
            {"finding": finding, "handling": handling, "concluded_on": cst_date(t2)},
            t2,
        ),
    )
    officer = eng.actor(b.personnel.members[0], "personnel_officer")
    t3 = eng.office_at(t2, rng.uniform(1, 5) * OFFICE_DAY)
    if handling == "talk":
        plan.event(
            t3,
            make_event(
                "4403-renshi",
                f"official/{o.id}",
                "personnel.talk_held",
                officer,
                subject,
                {
                    "kind": "admonition",
                    "held_by": b.leadership[-1].id,
                    "held_on": cst_date(t3),
                    "reason_code": "complaint",
                },
                t3,
            ),
        )
    elif handling == "sanction":
        plan.event(
            t3,
            make_event(
                "4403-renshi",
                f"official/{o.id}",
                "personnel.sanctioned",
                officer,
                subject,
                {
                    "sanction": rng.choice(("criticism", "written_check")),
                    "decided_by": b.leadership[0].id,
                    "effective_on": cst_date(t3),
                },
                t3,
            ),
        )
    eng.schedule(plan)


def plan_violation(eng: Engine, o: Official, t: int) -> None:
    rng = eng.rng
    b = eng.world.bureaus[o.bureau]
    auditor = eng.actor(b.audit.members[-1], "auditor")
    stream = eng.next_serial("violation/", cst_date(t)[:4])
    subject = {"official": o.id, "unit": o.unit}
    plan = Plan()
    plan.event(
        t,
        make_event(
            "4403-ducha",
            stream,
            "violation.recorded",
            auditor,
            subject,
            {
                "grade": rng.randint(2, 4),
                "error_code": rng.choice(ERRORS),
                "source": rng.choice(("inspection", "audit", "self_check")),
                "matter": None,
                "warning_ref": None,
                "found_on": cst_date(t),
            },
            t,
        ),
    )
    t2 = eng.office_at(t, rng.uniform(0.2, 2) * OFFICE_DAY)
    rectify_by = cst_date(t2 + rng.randint(15, 45) * DAY)
    plan.event(
        t2,
        make_event(
            "4403-ducha",
            stream,
            "violation.rectification_ordered",
            auditor,
            subject,
            {"rectify_by": rectify_by, "ordered_by": b.audit.members[0].id},
            t2,
        ),
    )
    if rng.random() < 0.5:  # the unit head's handling of the official: a light sanction
        t_s = eng.office_at(t2, rng.uniform(1, 10) * OFFICE_DAY)
        plan.event(
            t_s,
            make_event(
                "4403-renshi",
                f"official/{o.id}",
                "personnel.sanctioned",
                eng.actor(b.personnel.members[0], "personnel_officer"),
                {"official": o.id},
                {
                    "sanction": rng.choice(("criticism", "written_check", "correct_by_deadline")),
                    "decided_by": b.leadership[0].id,
                    "effective_on": cst_date(t_s),
                },
                t_s,
            ),
        )
    deadline = end_of_day(rectify_by)
    kind = eng.choose(["rectification_overdue"])
    if kind:
        plan.label(deadline + 1, eng.label(kind, {"official": o.id}, o.id, deadline + 1, (stream,)))
        if rng.random() < 0.5:  # late rather than never
            t3 = eng.office_at(deadline, rng.uniform(3, 25) * OFFICE_DAY)
            plan.event(
                t3,
                make_event(
                    "4403-ducha",
                    stream,
                    "violation.rectification_completed",
                    auditor,
                    subject,
                    {"completed_on": cst_date(t3), "evidence_ref": f"RECT-{stream[-6:]}"},
                    t3,
                ),
            )
    else:
        span = eng.clock.office(deadline) - eng.clock.office(t2)
        t3 = eng.clock.at(eng.clock.office(t2) + int(span * rng.uniform(0.2, 0.9)))
        plan.event(
            t3,
            make_event(
                "4403-ducha",
                stream,
                "violation.rectification_completed",
                auditor,
                subject,
                {"completed_on": cst_date(t3), "evidence_ref": f"RECT-{stream[-6:]}"},
                t3,
            ),
        )
    plan.items.sort(key=lambda item: item[0])
    eng.schedule(plan)
