"""The power-matter types (权力事项): who produces them, how often, how they end, which
optional steps a matter takes and which anomalies can be injected into it.

Guarantees:
- Every type maps to the one producer system (and stream code) whose key scope covers it.
- `steps_taken` keeps every mandatory step of the flow, in the flow's order; a hearing is held
  only when one was requested, and legal review precedes every major decision.
- `applicable_kinds` lists only anomalies the matter's facts can carry (a penalty anomaly only
  for a penalty, an order swap only where the flow orders two adjacent steps), and
  `with_anomaly` changes the steps only as the kind names (one step type removed, or one
  adjacent ordered pair swapped).
"""

from __future__ import annotations

import random
from typing import Any

from ledger.flows import FlowStep, PowerFlow
from producers.sim.events import money
from producers.sim.world import CEILINGS, QUOTAS, Taxpayer

__all__ = [
    "DEDICATED",
    "MATTER_SYSTEMS",
    "MATTER_WEIGHTS",
    "OUTCOMES",
    "applicable_kinds",
    "quota_request",
    "steps_taken",
    "with_anomaly",
]

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
DEDICATED = {
    "legal_review": "matter.legal_review_completed",
    "penalty_notice": "matter.penalty_notice_served",
    "penalty_decided": "matter.penalty_decided",
}


def steps_taken(rng: random.Random, flow: PowerFlow, major: bool, hearing: bool) -> list[FlowStep]:
    """The steps of one matter: the mandatory ones and a draw of the optional ones."""
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
    return steps


def applicable_kinds(
    matter_type: str, major: bool, steps: list[FlowStep], hearing: bool
) -> list[str]:
    """The anomaly kinds that apply to a matter taking `steps`."""
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


def with_anomaly(steps: list[FlowStep], kind: str | None) -> list[FlowStep]:
    """`steps` as the anomaly `kind` leaves them (a skipped step, two steps swapped)."""
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
    return steps


def quota_request(
    rng: random.Random, tp: Taxpayer, matter_type: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """For a quota matter: the taxpayer's request and the quota granted; else (None, None)."""
    request: dict[str, Any] | None = None
    quota: dict[str, Any] | None = None
    if matter_type == "invoice_quota_change" and rng.random() < 0.7:
        new_q = next((q for q in QUOTAS if q > tp.quota), tp.quota * 2)
        request = {
            "quota_kind": "quantity",
            "quantity_before": tp.quota,
            "quantity_requested": new_q,
        }
        quota = {"quantity": new_q, "max_amount": money(tp.ceiling * 100)}
    elif matter_type in ("invoice_quota_change", "max_invoice_amount"):
        new_c = next((c for c in CEILINGS if c > tp.ceiling), tp.ceiling * 10)
        request = {
            "quota_kind": "denomination",
            "max_amount_before": money(tp.ceiling * 100),
            "max_amount_requested": money(new_c * 100),
        }
        quota = {"quantity": tp.quota, "max_amount": money(new_c * 100)}
    return request, quota
