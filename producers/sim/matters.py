"""Power matters (权力事项) from acceptance to conclusion, following their flow definitions.

Each matter pins its flow (`data.flow = flow.pin()`), runs the flow's steps with the roles the
flow names (one handler, reviewer, approver … per matter, never one official in two separated
roles), inside office hours, and concludes within its time limit (working or natural days on
the holiday calendar). Major matters (三重一大) are decided only after a collective decision of
at least a quorum (> half) of the leadership team, which the `decide` step references. Penalty
matters carry realistic amounts: the fine is the unpaid tax times a ratio inside the Guangdong
tier for the recorded circumstances (0.5×; 0.5–1×; 1–5×), hearing rights are granted from
2,000 元 (individual) / 10,000 元 (entity), and a legal review precedes every major decision.

An injected anomaly changes exactly the facts its kind names and adds a label.
"""

from __future__ import annotations

import math
from typing import Any

from ledger.flows import FlowStep, PowerFlow
from producers.sim.engine import EVENT, Engine, Plan, make_event
from producers.sim.timing import OFFICE_DAY, cst_date, utc_stamp
from producers.sim.world import CEILINGS, QUOTAS, Bureau, Official, Taxpayer, Unit

__all__ = ["MATTER_SYSTEMS", "MATTER_WEIGHTS", "plan_matter"]

# matter type -> (producer system, stream code)
MATTER_SYSTEMS: dict[str, tuple[str, str]] = {
    "registration": ("4403-ctais", "zg"),
    "refund_applied": ("4403-ctais", "zg"),
    "refund_discovered": ("4403-ctais", "zg"),
    "tax_assessment": ("4403-ctais", "zg"),
    "invoice_book": ("4403-fapiao", "fp"),
    "invoice_purchase": ("4403-fapiao", "fp"),
    "invoice_quota_change": ("4403-fapiao", "fp"),
    "max_invoice_amount": ("4403-xuke", "xk"),
    "licence": ("4403-xuke", "xk"),
    "penalty": ("4403-jicha", "jc"),
    "inspection": ("4403-jicha", "jc"),
}

MATTER_WEIGHTS: dict[str, float] = {
    "registration": 0.07,
    "invoice_purchase": 0.28,
    "invoice_book": 0.06,
    "invoice_quota_change": 0.05,
    "max_invoice_amount": 0.03,
    "licence": 0.04,
    "refund_applied": 0.14,
    "refund_discovered": 0.05,
    "penalty": 0.14,
    "tax_assessment": 0.06,
    "inspection": 0.04,
}

WARN_FRACTION = 0.8  # R05 `warn_fraction` (R15 warns later: 75 of 90 days)
HEARING_THRESHOLD = {"individual": 200_000, "entity": 1_000_000}  # in fen: 2,000 / 10,000 元
COMMITTEE_THRESHOLD = 20_000_000  # fen: 查补 ≥ 200,000 元 goes to the case review committee
OUTCOMES = {
    "registration": "registered",
    "invoice_book": "issued",
    "invoice_purchase": "issued",
    "invoice_quota_change": "granted",
    "max_invoice_amount": "granted",
    "licence": "granted",
    "refund_applied": "refunded",
    "refund_discovered": "refunded",
    "penalty": "penalised",
    "tax_assessment": "closed",
    "inspection": "closed",
}
OPTIONAL_P = {
    "site_check": 0.4,
    "forward": 0.3,
    "defence_heard": 0.3,
    "penalty_executed": 0.7,
    "legal_review": 0.25,
}
CAPS = {
    "case_filed": 0.3 * OFFICE_DAY,
    "hearing_requested": 2 * OFFICE_DAY,
    "hearing_held": 8 * OFFICE_DAY,
}
DEDICATED = {
    "legal_review": "matter.legal_review_completed",
    "penalty_notice": "matter.penalty_notice_served",
    "penalty_decided": "matter.penalty_decided",
}


_AT_CONCLUSION = frozenset(
    {
        "approval_skipped",
        "step_out_of_order",
        "refund_fast_track",
        "same_person_handles_and_approves",
    }
)


def money(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


class _Cast:
    """Who acts in each role of one matter: one official per role, drawn when first needed."""

    def __init__(
        self, eng: Engine, bureau: Bureau, unit: Unit, flow: PowerFlow, tp: Taxpayer
    ) -> None:
        self._eng, self._bureau, self._unit, self._flow = eng, bureau, unit, flow
        rng = eng.rng
        if unit.kind == "branch" and rng.random() < 0.6:
            self.handler = eng.world.officials[tp.manager]
        else:
            self.handler = rng.choice(unit.by_role("handler"))
        self._chosen: dict[str, Official] = {"handler": self.handler}
        self.approver = self.for_role("approver")

    def for_role(self, role: str) -> Official:
        found = self._chosen.get(role)
        if found is None:
            bureau, unit = self._bureau, self._unit
            if role == "approver":
                pool = self._eng.world.approvers(bureau, unit, self._flow.approval_level)
            elif role == "reviewer":
                pool = unit.by_role("reviewer") or unit.by_role("case_reviewer")
            elif role == "legal_reviewer":
                pool = bureau.legal.by_role(role)
            else:
                pool = bureau.inspection.by_role(role) or unit.by_role(role)
            found = self._chosen[role] = self._eng.rng.choice(pool)
        return found


def _applicable(
    matter_type: str, major: bool, steps: list[FlowStep], flow: PowerFlow, hearing: bool
) -> list[str]:
    names = {s.name for s in steps}
    kinds = []
    if major and ("decide" in names or "penalty_decided" in names):
        kinds.append("major_matter_few_deciders")
    if "approve" in names and not matter_type.startswith("refund"):
        kinds += ["approval_skipped", "same_person_handles_and_approves"]
    if matter_type == "penalty":
        if major:
            kinds.append("major_enforcement_without_legal_review")
        kinds += [
            "penalty_outside_tier",
            "penalty_no_reason",
            "penalty_case_overdue",
            "penalty_without_review",
            "withdrawn_without_approval",
            "reduced_without_approval",
        ]
        if hearing:
            kinds.append("hearing_right_violation")
    elif matter_type.startswith("refund"):
        kinds += ["refund_late", "refund_fast_track", "same_person_handles_and_approves"]
    elif matter_type != "inspection":
        kinds.append("processing_deadline")
    if any(b.name in a.after for a, b in zip(steps[1:], steps, strict=False)):
        kinds.append("step_out_of_order")
    return kinds


def _penalty_terms(
    eng: Engine,
    party_kind: str,
    kind: str | None,
    outlier: bool,
    base: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The case's unpaid tax, circumstances, ratio and fine. With `base` (the terms first
    drawn) an anomaly changes only what its kind names (the ratio or the reason): the unpaid
    tax, hence `major`, stays, so the steps chosen from it stay right."""
    rng = eng.rng
    if base is not None:
        unpaid, circumstances = base["unpaid"], base["data"]["circumstances"]
        ratio = base["ratio"]
    else:
        unpaid = int(300_000 * (2_000 ** rng.random()))  # fen: 3,000 元 … 6,000,000 元
        if party_kind == "individual":
            unpaid //= 20
        circumstances = rng.choices(("first_corrected", "uncooperative", "serious"), (3, 5, 2))[0]
        if circumstances == "first_corrected":
            ratio = 50
        elif circumstances == "uncooperative":
            ratio = 50 if outlier else rng.randint(50, 100)
        else:
            ratio = 100 if outlier else rng.choice((100, 100, 150, 200, 300, rng.randint(100, 500)))
    if kind == "penalty_outside_tier":
        ratio = {"first_corrected": 150, "uncooperative": 30, "serious": 60}[circumstances]
    reason = {
        "first_corrected": "corrected_before_decision",
        "uncooperative": "refused_to_cooperate",
        "serious": "repeated_concealment",
    }[circumstances]
    if kind == "penalty_no_reason":
        reason = ""
    fine = unpaid * ratio // 100
    return {
        "unpaid": unpaid,
        "ratio": ratio,
        "fine": fine,
        "data": {
            "fine": money(fine),
            "unpaid_tax": money(unpaid),
            "ratio": f"{ratio // 100}.{ratio % 100:02d}",
            "violation_code": "tax_evasion",
            "circumstances": circumstances,
            "discretion_reason": reason,
            "party_kind": party_kind,
            "benchmark": {"region": "4403", "version": 1},
            "major": unpaid >= COMMITTEE_THRESHOLD,
        },
    }


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


def plan_matter(
    eng: Engine, tp: Taxpayer, matter_type: str, t0: int, forced: str | None = None
) -> str:
    """Plan one matter of `matter_type` for taxpayer `tp`, accepted at `t0` (office time);
    return its stream. `forced` fixes the anomaly kind ("" for none) instead of drawing it."""
    rng, clock = eng.rng, eng.clock
    flow = eng.flows[matter_type]
    system, code = MATTER_SYSTEMS[matter_type]
    bureau = eng.world.bureaus[tp.bureau]
    unit = (
        bureau.inspection
        if matter_type in ("penalty", "inspection")
        else (eng.world.units[tp.unit])
    )
    cast = _Cast(eng, bureau, unit, flow, tp)
    limit = flow.time_limit
    if limit.days == 0 and clock.office(t0) % OFFICE_DAY > OFFICE_DAY - 3600:
        t0 = eng.office_at(t0, 3600 + rng.uniform(0, 3600))  # same-day matters: next morning
    year = cst_date(t0)[:4]
    stream = eng.next_serial(f"matter/4403-{code}/", year)
    subject = {"taxpayer": tp.id}
    if matter_type == "registration":
        subject = {"taxpayer": f"91440300R{rng.randrange(10**8):08d}"}

    # which steps this matter takes
    party_kind = tp.party_kind
    outlier = cast.approver.id in eng.outliers
    terms = _penalty_terms(eng, party_kind, None, outlier) if (matter_type == "penalty") else None
    amount_fen = 0
    major = False
    if terms is not None:
        major = terms["data"]["major"]
    elif matter_type in ("licence", "max_invoice_amount", "inspection"):
        major = rng.random() < 0.12
    hearing = terms is not None and terms["fine"] >= HEARING_THRESHOLD[party_kind]
    steps: list[FlowStep] = []
    for step in flow.steps:
        if step.mandatory:
            steps.append(step)
        elif step.name == "legal_review":
            if major or rng.random() < OPTIONAL_P["legal_review"]:
                steps.append(step)
        elif step.name in ("hearing_requested", "hearing_held"):
            if hearing and (step.name == "hearing_held" or rng.random() < 0.3):
                steps.append(step)
        elif rng.random() < OPTIONAL_P.get(step.name, 0.3):
            steps.append(step)
    names = [s.name for s in steps]
    if "hearing_held" in names and "hearing_requested" not in names:
        steps = [s for s in steps if s.name != "hearing_held"]

    applicable = _applicable(matter_type, major, steps, flow, hearing)
    kind = (forced or None) if forced is not None else eng.choose(applicable)
    if terms is not None and kind in ("penalty_outside_tier", "penalty_no_reason"):
        terms = _penalty_terms(eng, party_kind, kind, outlier, base=terms)
        # the notice follows the fine actually proposed (R14: hearing rights from the threshold)
        hearing = terms["fine"] >= HEARING_THRESHOLD[party_kind]
    approver = cast.approver
    if kind == "same_person_handles_and_approves":
        approver = cast.handler
    removed = {
        "approval_skipped": "approve",
        "refund_fast_track": "refund_check",
        "penalty_without_review": "case_review",
        "major_enforcement_without_legal_review": "legal_review",
    }.get(kind or "")
    if kind == "hearing_right_violation":
        removed = "hearing"
    if removed:
        steps = [s for s in steps if not s.name.startswith(removed)]
    if kind == "step_out_of_order":
        for i in range(len(steps) - 1):
            if steps[i].name in steps[i + 1].after:
                steps[i], steps[i + 1] = steps[i + 1], steps[i]
                break

    # timing: office seconds from acceptance
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

    # the events
    plan = Plan()

    def emit(
        t: int, type_: str, who: Official, role: str, data: dict[str, Any], **extra: Any
    ) -> None:
        plan.event(
            t, make_event(system, stream, type_, eng.actor(who, role), subject, data, t, **extra)
        )

    accepted: dict[str, Any] = {
        "matter_type": matter_type,
        "flow": flow.pin(),
        "time_limit": {"days": limit.days, "calendar": limit.calendar},
        "due_at": utc_stamp(due),
        "channel": "internal"
        if matter_type in ("penalty", "inspection", "refund_discovered", "tax_assessment")
        else rng.choice(("hall", "online", "online", "mail")),
        "major": major,
    }
    request: dict[str, Any] | None = None
    quota: dict[str, Any] | None = None
    if matter_type in ("refund_applied", "refund_discovered"):
        amount_fen = int(100_000 * (3_000 ** rng.random()))
        accepted["amount"] = money(amount_fen)
    elif terms is not None:
        accepted["amount"] = money(terms["unpaid"])
        accepted["party_kind"] = party_kind
    elif matter_type == "invoice_quota_change":
        if rng.random() < 0.7:
            new_q = next((q for q in QUOTAS if q > tp.quota), tp.quota * 2)
            request = {
                "quota_kind": "quantity",
                "quantity_before": tp.quota,
                "quantity_requested": new_q,
            }
            quota = {"quantity": new_q, "max_amount": money(tp.ceiling * 100)}
        else:
            new_c = next((c for c in CEILINGS if c > tp.ceiling), tp.ceiling * 10)
            request = {
                "quota_kind": "denomination",
                "max_amount_before": money(tp.ceiling * 100),
                "max_amount_requested": money(new_c * 100),
            }
            quota = {"quantity": tp.quota, "max_amount": money(new_c * 100)}
    elif matter_type == "max_invoice_amount":
        new_c = next((c for c in CEILINGS if c > tp.ceiling), tp.ceiling * 10)
        request = {
            "quota_kind": "denomination",
            "max_amount_before": money(tp.ceiling * 100),
            "max_amount_requested": money(new_c * 100),
        }
        quota = {"quantity": tp.quota, "max_amount": money(new_c * 100)}
    if request is not None:
        accepted["request"] = request
    emit(t0, "matter.accepted", cast.handler, "handler", accepted)

    decision_stream: str | None = None
    labels: list[tuple[int, str, str | None]] = []  # (time, kind, attributed official)
    withdraw_at = None
    if kind == "withdrawn_without_approval" or (kind is None and rng.random() < 0.02):
        withdraw_at = max(1, len(timed) // 2)
    terminal: dict[str, Any] = {}
    by_name = {s.name: s for s in steps}
    for index, (name, t) in enumerate(zip(timed, times, strict=False)):
        if withdraw_at is not None and index == withdraw_at:
            approved_by = (
                None
                if kind == "withdrawn_without_approval"
                else rng.choice(bureau.leadership[:4]).id
            )
            terminal = {
                "reason": "party_corrected" if terms else "applicant_withdrew",
                "approved_by": approved_by,
                "final_seq": 1,
            }
            emit(t, "matter.withdrawn", cast.approver, "approver", terminal)
            if kind:
                labels.append((t, kind, cast.approver.id))
            break
        role = by_name[name].role
        who = approver if role == "approver" else cast.for_role(role)
        if name in ("decide", "penalty_decided") and major:
            decision_stream = _collective(
                eng, plan, bureau, stream, t, times, index, kind, matter_type
            )
        data: dict[str, Any]
        if name == "penalty_notice" and terms is not None:
            rights = hearing and kind != "hearing_right_violation"
            data = {
                "proposed_fine": money(terms["fine"]),
                "hearing_rights": rights,
                "party_kind": party_kind,
                "served_on": cst_date(t),
            }
        elif name == "penalty_decided" and terms is not None:
            data = dict(terms["data"], major=major)
            if kind == "hearing_right_violation":
                # observable (R14) when the decision is taken without the hearing rights having
                # been told: labelled then, so a run that ends before the decision has no label
                labels.append((t, kind, cast.handler.id))
            if kind in (
                "penalty_outside_tier",
                "penalty_no_reason",
                "major_enforcement_without_legal_review",
                "penalty_without_review",
            ):
                labels.append((t, kind, who.id))
            if kind == "penalty_case_overdue":
                labels.append((due + 1, kind, cast.handler.id))
            if who.id in eng.outliers:
                plan.call(t, _outlier_case(eng, who.id, stream))
        elif name == "legal_review":
            data = {
                "opinion": "approved",
                "reviewed_decision": "penalty" if terms else "major_enforcement",
                "note_code": "LR-OK",
            }
        else:
            data = {
                "step": name,
                "outcome": "approved"
                if name in ("approve", "decide")
                else "passed"
                if name in ("review", "refund_check", "case_review", "site_check")
                else "completed",
            }
            if name in ("approve", "decide"):
                data["level"] = flow.approval_level or 1
                if name == "decide" and decision_stream is not None:
                    data["level"] = 4
                    data["decision_ref"] = eng.last_decision_ref
            if name == "refund_pay":
                data["amount"] = money(amount_fen)
            if name in ("issue", "license_document"):
                data["reference"] = f"{code.upper()}{year}-{eng.rng.randrange(10**6):06d}"
        emit(
            t,
            DEDICATED.get(name, "matter.step_completed"),
            who,
            role,
            data,
            **({"refs": ("decision_ref",)} if "decision_ref" in data else {}),
        )
        if (
            name == "penalty_decided"
            and terms is not None
            and (kind == "reduced_without_approval" or (kind is None and rng.random() < 0.05))
        ):
            after_fen = terms["fine"] * rng.randint(40, 80) // 100
            t_amend = eng.clock.at((eng.clock.office(t) + eng.clock.office(times[index + 1])) // 2)
            emit(
                t_amend,
                "matter.amended",
                who,
                "approver",
                {
                    "field": "fine",
                    "before": money(terms["fine"]),
                    "after": money(after_fen),
                    "reason": "administrative_review",
                    "approved_by": None if kind else rng.choice(bureau.leadership[:4]).id,
                },
            )
            if kind:
                labels.append((t_amend, kind, who.id))
    else:
        t_end = times[-1]
        concluded: dict[str, Any] = {"outcome": OUTCOMES[matter_type], "final_seq": 1}
        terminal = concluded
        if matter_type.startswith("refund"):
            concluded["amount"] = money(amount_fen)
        elif terms is not None:
            concluded["amount"] = money(terms["fine"])
        if quota is not None:
            concluded["quota"] = quota
        emit(t_end, "matter.concluded", cast.handler, "handler", concluded)
        if quota is not None:
            plan.call(t_end, _quota_update(tp, quota))
        if kind in ("processing_deadline", "refund_late"):
            labels.append((due + 1, kind, cast.handler.id))
        elif kind in _AT_CONCLUSION:
            labels.append((t_end, kind, cast.handler.id))
        elif kind == "major_matter_few_deciders":
            labels.append((t_end, kind, bureau.leadership[0].id))
    if extension:
        _insert_extension(
            eng,
            plan,
            system,
            stream,
            subject,
            cast.approver,
            extension,
            limit.calendar,
            warn,
            due_ext,
        )
    terminal["final_seq"] = sum(
        1 for item in plan.items if item[1] == EVENT and item[2].stream == stream
    )
    evidence = (stream,) if decision_stream is None else (stream, decision_stream)
    # a refund whose handler also approves is R12(b) fast-track as well as R04
    also = ("R12",) if matter_type.startswith("refund") else ()
    for t, k, who_id in labels:
        extra = also if k == "same_person_handles_and_approves" else ()
        plan.label(t, eng.label(k, {"matter": stream}, who_id, t, evidence, also=extra))
    plan.items.sort(key=lambda item: item[0])
    eng.schedule(plan)
    return stream


def _outlier_case(eng: Engine, official: str, stream: str) -> Any:
    """Count an outlier's lenient decisions; at the fifth (R18's minimum) label them."""

    def count(t: int) -> None:
        cases = eng.outliers[official]
        cases.append(stream)
        if len(cases) == 5 and eng.on_label is not None:
            eng.on_label(
                eng.label("discretion_outlier", {"official": official}, official, t, tuple(cases))
            )

    return count


def _quota_update(tp: Taxpayer, quota: dict[str, Any]) -> Any:
    def apply(t: int) -> None:
        tp.quota = int(quota["quantity"])
        tp.ceiling = int(quota["max_amount"].split(".")[0])
        tp.last_quota_change = t

    return apply


def _collective(  # noqa: PLR0917
    eng: Engine,
    plan: Plan,
    bureau: Bureau,
    stream: str,
    t: int,
    times: list[int],
    index: int,
    kind: str | None,
    matter_type: str,
) -> str | None:
    """The collective decision a major matter's decision executes (R01: too few or none)."""
    rng = eng.rng
    if kind == "major_matter_few_deciders" and rng.random() < 0.3:
        eng.last_decision_ref = None
        return None
    before = times[index - 1] if index > 0 else t - 3600
    held = eng.clock.at((eng.clock.office(before) + eng.clock.office(t)) // 2)
    leaders = bureau.leadership
    size = len(leaders)
    if kind == "major_matter_few_deciders":
        participants = [leaders[0].id, leaders[1].id][: rng.choice((1, 2))]
    else:
        participants = [o.id for o in leaders[: rng.randint(size // 2 + 1, size)]]
    dstream = eng.next_serial(f"decision/{bureau.office_unit}/", cst_date(held)[:4])
    ref = eng.placeholder()
    eng.last_decision_ref = ref
    enforcement = matter_type in ("penalty", "inspection")
    plan.event(
        held,
        make_event(
            "4403-bangong",
            dstream,
            "decision.collective_recorded",
            eng.actor(leaders[0], "chair"),
            {"unit": bureau.office_unit},
            {
                "meeting": "case_review_committee" if enforcement else "bureau_office",
                "topic": "major_enforcement" if enforcement else "major_matter",
                "participants": participants,
                "leadership_size": size,
                "matters": [stream],
                "outcome": "approved",
                "held_on": cst_date(held),
            },
            held,
            ref_key=ref,
        ),
    )
    return dstream


def _insert_extension(  # noqa: PLR0917
    eng: Engine,
    plan: Plan,
    system: str,
    stream: str,
    subject: dict[str, str],
    approver: Official,
    days: int,
    calendar: str,
    due: int,
    due_ext: int,
) -> None:
    """An approved extension, before `due` (the reminder point of the original limit, so the
    deadline rules move every level) and before conclusion."""
    matter = [it for it in plan.items if it[1] == 0 and it[2].stream == stream]
    last_before = max((it[0] for it in matter[:-1] if it[0] < due), default=matter[0][0])
    t = min(eng.clock.at(eng.clock.office(due) - 1800), eng.office_at(last_before, 600))
    t = max(t, eng.office_at(matter[0][0], 60))
    plan.event(
        t,
        make_event(
            system,
            stream,
            "matter.extension_approved",
            eng.actor(approver, "approver"),
            subject,
            {
                "days": days,
                "calendar": calendar,
                "reason": "complex_case_head_approved",
                "new_due_at": utc_stamp(due_ext),
            },
            t,
        ),
    )
