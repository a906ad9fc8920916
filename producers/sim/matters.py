"""Power matters (权力事项) from acceptance to conclusion, following their flow definitions.

Each matter pins its flow (`data.flow = flow.pin()`), runs the flow's steps with the roles the
flow names (one handler, reviewer, approver … per matter, never one official in two separated
roles), inside office hours, and concludes within its time limit (working or natural days on
the holiday calendar). Major matters (三重一大) are decided only after a collective decision of
at least a quorum (> half) of the leadership team, which the `decide` step references
(`producers.sim.decisions`). Penalty matters carry the figures of `producers.sim.penalties`;
steps and anomalies per type come from `producers.sim.matter_types`, the schedule from
`producers.sim.matter_timing`, extensions, withdrawals and amended fines from
`producers.sim.amendments`.

Guarantees:
- A matter's events are on one `matter/4403-<code>/<year>-<serial>` stream of its type's
  producer system, ending with `matter.concluded` or `matter.withdrawn` whose `final_seq` is
  the number of events on that stream.
- An injected anomaly changes exactly the facts its kind names and adds a label, timed when
  it becomes a fact (the decision, the conclusion, the deadline passed).
"""

from __future__ import annotations

from typing import Any

from ledger.flows import PowerFlow
from producers.sim.amendments import amended_fine, insert_extension, withdrawal, withdrawn_at
from producers.sim.decisions import collective_decision
from producers.sim.engine import EVENT, Engine, Plan, make_event
from producers.sim.events import money
from producers.sim.matter_timing import time_steps
from producers.sim.matter_types import (
    DEDICATED,
    MATTER_SYSTEMS,
    MATTER_WEIGHTS,
    OUTCOMES,
    applicable_kinds,
    quota_request,
    steps_taken,
    with_anomaly,
)
from producers.sim.penalties import HEARING_THRESHOLD, notice_data, outlier_case, penalty_terms
from producers.sim.timing import OFFICE_DAY, cst_date, utc_stamp
from producers.sim.world import Bureau, Official, Taxpayer, Unit

__all__ = ["MATTER_SYSTEMS", "MATTER_WEIGHTS", "plan_matter"]

_AT_CONCLUSION = frozenset(
    {
        "approval_skipped",
        "step_out_of_order",
        "refund_fast_track",
        "same_person_handles_and_approves",
    }
)
_AT_DECISION = frozenset(
    {
        "penalty_outside_tier",
        "penalty_no_reason",
        "major_enforcement_without_legal_review",
        "penalty_without_review",
    }
)


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
    terms = penalty_terms(eng, party_kind, None, outlier) if (matter_type == "penalty") else None
    amount_fen = 0
    major = False
    if terms is not None:
        major = terms["data"]["major"]
    elif matter_type in ("licence", "max_invoice_amount", "inspection"):
        major = rng.random() < 0.12
    hearing = terms is not None and terms["fine"] >= HEARING_THRESHOLD[party_kind]
    steps = steps_taken(rng, flow, major, hearing)
    kind = (
        (forced or None)
        if forced is not None
        else eng.choose(applicable_kinds(matter_type, major, steps, hearing))
    )
    if terms is not None and kind in ("penalty_outside_tier", "penalty_no_reason"):
        terms = penalty_terms(eng, party_kind, kind, outlier, base=terms)
        # the notice follows the fine actually proposed (R14: hearing rights from the threshold)
        hearing = terms["fine"] >= HEARING_THRESHOLD[party_kind]
    approver = cast.approver
    if kind == "same_person_handles_and_approves":
        approver = cast.handler
    steps = with_anomaly(steps, kind)

    # timing: office seconds from acceptance
    timed, times, due, due_ext, warn, extension = time_steps(
        eng, t0, limit, matter_type=matter_type, steps=steps, kind=kind
    )

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
    else:
        request, quota = quota_request(rng, tp, matter_type)
    if request is not None:
        accepted["request"] = request
    emit(t0, "matter.accepted", cast.handler, "handler", accepted)

    decision_stream: str | None = None
    labels: list[tuple[int, str, str | None]] = []  # (time, kind, attributed official)
    withdraw_at = withdrawn_at(eng, kind, len(timed))
    terminal: dict[str, Any] = {}
    by_name = {s.name: s for s in steps}
    for index, (name, t) in enumerate(zip(timed, times, strict=False)):
        if withdraw_at is not None and index == withdraw_at:
            terminal = withdrawal(eng, bureau, kind, bool(terms))
            emit(t, "matter.withdrawn", cast.approver, "approver", terminal)
            if kind:
                labels.append((t, kind, cast.approver.id))
            break
        role = by_name[name].role
        who = approver if role == "approver" else cast.for_role(role)
        if name in ("decide", "penalty_decided") and major:
            decision_stream = collective_decision(
                eng, plan, bureau, stream, t, times, index, kind, matter_type
            )
        data: dict[str, Any]
        if name == "penalty_notice" and terms is not None:
            data = notice_data(terms, hearing, kind, party_kind, cst_date(t))
        elif name == "penalty_decided" and terms is not None:
            data = dict(terms["data"], major=major)
            if kind == "hearing_right_violation":
                # observable (R14) when the decision is taken without the hearing rights having
                # been told: labelled then, so a run that ends before the decision has no label
                labels.append((t, kind, cast.handler.id))
            if kind in _AT_DECISION:
                labels.append((t, kind, who.id))
            if kind == "penalty_case_overdue":
                labels.append((due + 1, kind, cast.handler.id))
            if who.id in eng.outliers:
                plan.call(t, outlier_case(eng, who.id, stream))
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
        if name == "penalty_decided" and terms is not None:
            amended = amended_fine(
                eng, bureau, kind, fine=terms["fine"], decided=t, following=times[index + 1]
            )
            if amended is not None:
                t_amend, amendment = amended
                emit(t_amend, "matter.amended", who, "approver", amendment)
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
        insert_extension(
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


def _quota_update(tp: Taxpayer, quota: dict[str, Any]) -> Any:
    def apply(t: int) -> None:
        tp.quota = int(quota["quantity"])
        tp.ceiling = int(quota["max_amount"].split(".")[0])
        tp.last_quota_change = t

    return apply
