"""Officials' records: personnel (人事) and personal-matters declarations (干部监督).

Personnel: appointments recording who recommended, examined, inspected and decided (after a
party-committee decision); a preventive talk and an integrity-file update after each
appointment; yearly assessment tallies in January; training; reminder talks; the yearly
integrity-file update. Declarations for reportable officials: the annual report by 31 January,
income declarations (H2 in January, H1 in July), a change report within 30 days of a personal
matter observed in a registry, an initial report within 30 days of a reportable appointment,
and random verification of annual reports with findings. Personal values (names, areas,
amounts) travel in `SimEvent.pii`, never in `data`.
"""

from __future__ import annotations

from typing import Any

from producers.sim.engine import Engine, Plan, make_event
from producers.sim.matters import money
from producers.sim.timing import DAY, OFFICE_DAY, cst_date, end_of_day
from producers.sim.world import Bureau, Official

__all__ = [
    "plan_annual",
    "plan_appointment",
    "plan_assessment",
    "plan_income",
    "plan_integrity_update",
    "plan_observed",
    "plan_routine",
]

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛")
ITEMS = (
    "3.1",
    "3.2",
    "3.3",
    "3.4",
    "3.5",
    "3.6",
    "3.7",
    "3.8",
    "4.1",
    "4.2",
    "4.3",
    "4.4",
    "4.5",
    "4.6",
)
OBSERVED = (
    ("3.1", "marriage_registry"),
    ("3.2", "exit_entry"),
    ("3.3", "exit_entry"),
    ("3.7", "business_registry"),
    ("4.6", "business_registry"),
    ("3.8", "court"),
)
RANK_UP = {
    "staff": "section_deputy",
    "section_deputy": "section_chief",
    "section_chief": "county_deputy",
    "county_deputy": "county_chief",
}
REPORTABLE = frozenset({"county_deputy", "county_chief", "bureau_deputy", "bureau_chief"})


def _name(eng: Engine) -> str:
    return eng.rng.choice(SURNAMES) + eng.rng.choice(GIVEN) + eng.rng.choice(GIVEN)


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


def _declaration(  # noqa: PLR0917
    eng: Engine,
    plan: Plan,
    o: Official,
    t: int,
    type_: str,
    data: dict[str, Any],
    by_self: bool,
    **extra: Any,
) -> None:
    who = (
        eng.actor(o, "declarant")
        if by_self
        else eng.actor(_bureau(eng, o).personnel.members[-1], "cadre_supervisor")
    )
    plan.event(
        t,
        make_event(
            "4403-ganbu", f"declaration/{o.id}", type_, who, {"official": o.id}, data, t, **extra
        ),
    )


def _item(eng: Engine, code: str, changed: bool, pii: dict[str, Any]) -> dict[str, Any]:
    """One declared item; its personal values go to `pii` under `i<code>_<field>` keys."""
    rng = eng.rng
    p = "i" + code.replace(".", "_") + "_"
    role = {
        "3.4": "child",
        "3.5": "child",
        "3.6": "spouse",
        "3.7": "spouse",
        "3.8": "spouse",
        "4.5": "spouse",
        "4.6": "spouse",
    }.get(code, "self")
    values: dict[str, Any] = {}
    if code == "3.1":
        values = {"status": "married", "spouse_name": _name(eng)}
    elif code in ("3.2", "3.3") and changed:
        values = {
            "document_no": f"E{rng.randrange(10**8):08d}",
            "trip_country": rng.choice(("JP", "SG", "TH", "HK", "MO")),
        }
    elif code == "3.7":
        values = {
            "employer": rng.choice(("某某科技有限公司", "某某医院", "某某中学")),
            "position": rng.choice(("职员", "教师", "医生")),
        }
    elif code == "4.1":
        values = {"amount": money(rng.randint(150_000, 400_000) * 100)}
    elif code == "4.2" and changed:
        values = {"amount": money(rng.randint(1_000, 20_000) * 100)}
    elif code == "4.3":
        values = {
            "address": f"深圳市某区某路{rng.randint(1, 999)}号",
            "area_m2": f"{rng.randint(60, 180)}.{rng.randint(0, 99):02d}",
        }
    elif code == "4.4" and (changed or rng.random() < 0.4):
        values = {"value": money(rng.randint(10_000, 900_000) * 100)}
    elif code in ("4.6", "3.8") and changed:
        values = {"entity" if code == "4.6" else "case_no": f"X{rng.randrange(10**6):06d}"}
    fields = []
    for k, v in values.items():
        pii[p + k] = v
        fields.append(p + k)
    return {
        "item_code": code,
        "subject_role": role,
        "no_change": not changed,
        "count": 1 if values else 0,
        "pii_fields": fields,
    }


def plan_annual(eng: Engine, o: Official, year: int, t: int) -> None:
    """The annual report for `year`, due by 31 January of `year + 1` (R19), maybe verified."""
    rng = eng.rng
    plan = Plan()
    stream = f"declaration/{o.id}"
    kind = eng.choose(["annual_report_missing"])
    if kind:
        deadline = end_of_day(f"{year + 1}-01-31")
        plan.label(deadline + 1, eng.label(kind, {"official": o.id}, o.id, deadline + 1, (stream,)))
        eng.schedule(plan)
        return
    pii: dict[str, Any] = {}
    items = [_item(eng, code, rng.random() < 0.15, pii) for code in ITEMS]
    ref = eng.placeholder()
    _declaration(
        eng,
        plan,
        o,
        t,
        "declaration.personal_matters_reported",
        {"year": year, "kind": "annual", "filed_on": cst_date(t), "items": items},
        True,
        pii=pii,
        ref_key=ref,
    )
    if rng.random() < 0.4:
        _verify(eng, plan, o, year, ref, t=eng.office_at(t, rng.uniform(15, 40) * OFFICE_DAY))
    eng.schedule(plan)


def _verify(eng: Engine, plan: Plan, o: Official, year: int, ref: str, *, t: int) -> None:
    kind = eng.choose(["concealment_found"])
    findings = [{"item_code": c, "finding": "consistent"} for c in ITEMS]
    if kind:
        hidden = eng.rng.choice(("3.2", "4.3", "4.4", "4.5", "4.6"))
        findings = [
            dict(f, finding="concealment") if f["item_code"] == hidden else f for f in findings
        ]
        plan.label(t, eng.label(kind, {"official": o.id}, o.id, t, (f"declaration/{o.id}",)))
    _declaration(
        eng,
        plan,
        o,
        t,
        "declaration.verification_completed",
        {"year": year, "report_ref": ref, "method": "random_check", "findings": findings},
        False,
        refs=("report_ref",),
    )


def plan_income(eng: Engine, o: Official, year: int, half: str, t: int) -> None:
    plan = Plan()
    pii: dict[str, Any] = {}
    codes = ("4.1", "4.2") if eng.rng.random() < 0.3 else ("4.1",)
    items = [
        {"item_code": item["item_code"], "pii_fields": item["pii_fields"]}
        for item in (_item(eng, code, True, pii) for code in codes)
    ]
    _declaration(
        eng,
        plan,
        o,
        t,
        "declaration.income_declared",
        {"year": year, "half": half, "filed_on": cst_date(t), "items": items},
        True,
        pii=pii,
    )
    eng.schedule(plan)


def plan_observed(eng: Engine, o: Official, t: int) -> None:
    """A personal matter seen in a registry, and the change report within 30 days (R20)."""
    rng = eng.rng
    plan = Plan()
    code, source = rng.choice(OBSERVED)
    event_on = cst_date(t - rng.randint(1, 5) * DAY)
    _declaration(
        eng,
        plan,
        o,
        t,
        "declaration.matter_observed",
        {"item_code": code, "observed_on": cst_date(t), "event_on": event_on, "source": source},
        False,
    )
    # only the family and personal items of Article 3 need a change report within 30 days
    kind = eng.choose(["change_not_reported"] if code.startswith("3.") else [])
    if kind:
        deadline = eng.clock.due(t, 30, "natural")  # a last day off work rolls forward
        plan.label(
            deadline + 1,
            eng.label(kind, {"official": o.id}, o.id, deadline + 1, (f"declaration/{o.id}",)),
        )
    else:
        t2 = eng.office_at(t, rng.uniform(1, 14) * OFFICE_DAY)
        pii: dict[str, Any] = {}
        _declaration(
            eng,
            plan,
            o,
            t2,
            "declaration.personal_matters_reported",
            {
                "year": int(cst_date(t2)[:4]),
                "kind": "change",
                "filed_on": cst_date(t2),
                "event_on": event_on,
                "items": [_item(eng, code, True, pii)],
            },
            True,
            pii=pii,
        )
    eng.schedule(plan)


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
    dstream = eng.next_serial(f"decision/{b.office_unit}/", cst_date(held)[:4])
    plan.event(
        held,
        make_event(
            "4403-bangong",
            dstream,
            "decision.collective_recorded",
            eng.actor(leaders[0], "chair"),
            {"unit": b.office_unit},
            {
                "meeting": "party_committee",
                "topic": "appointment",
                "participants": [
                    x.id for x in leaders[: rng.randint(len(leaders) // 2 + 1, len(leaders))]
                ],
                "leadership_size": len(leaders),
                "matters": [],
                "outcome": "approved",
                "held_on": cst_date(held),
            },
            held,
        ),
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
            t_rep = eng.office_at(t, rng.uniform(3, 16) * OFFICE_DAY)
            pii: dict[str, Any] = {}
            items = [_item(eng, code, False, pii) for code in ITEMS]
            _declaration(
                eng,
                plan,
                o,
                t_rep,
                "declaration.personal_matters_reported",
                {
                    "year": int(cst_date(t_rep)[:4]),
                    "kind": "initial",
                    "filed_on": cst_date(t_rep),
                    "items": items,
                },
                True,
                pii=pii,
            )
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
