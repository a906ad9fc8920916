"""Personal-matters declarations (干部监督) of reportable officials.

The annual report by 31 January (R19), income declarations (H2 in January, H1 in July), a
change report within 30 days of a personal matter observed in a registry (R20), the initial
report after a reportable appointment (`report_initial`, R21), and random verification of
annual reports with findings (concealment found, R20).

Guarantees:
- Personal values (names, areas, amounts) travel in `SimEvent.pii`, keyed `i<code>_<field>`
  and named in the item's `pii_fields`; they MUST NOT appear in `data`.
- Every declaration event is on the declarant's `declaration/<official>` stream, emitted by
  `4403-ganbu`: by the declarant, or by the bureau's cadre supervisor (observations and
  verifications).
- A verification refers to the report it checks through `refs=("report_ref",)`.
"""

from __future__ import annotations

from typing import Any

from producers.sim.engine import Engine, Plan, make_event
from producers.sim.events import money
from producers.sim.timing import DAY, OFFICE_DAY, cst_date, end_of_day
from producers.sim.world import Official

__all__ = ["ITEMS", "plan_annual", "plan_income", "plan_observed", "report_initial"]

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


def _name(eng: Engine) -> str:
    return eng.rng.choice(SURNAMES) + eng.rng.choice(GIVEN) + eng.rng.choice(GIVEN)


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
        else eng.actor(eng.world.bureaus[o.bureau].personnel.members[-1], "cadre_supervisor")
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


def report_initial(eng: Engine, plan: Plan, o: Official, t: int) -> None:
    """The initial report of an official newly appointed to a reportable post, filed at `t`
    (R21: within 30 days of the appointment)."""
    pii: dict[str, Any] = {}
    items = [_item(eng, code, False, pii) for code in ITEMS]
    _declaration(
        eng,
        plan,
        o,
        t,
        "declaration.personal_matters_reported",
        {
            "year": int(cst_date(t)[:4]),
            "kind": "initial",
            "filed_on": cst_date(t),
            "items": items,
        },
        True,
        pii=pii,
    )
