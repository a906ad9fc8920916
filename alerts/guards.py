"""Blocking guards (事中阻断): refuse a step of a matter before it is taken.

`BlockingGuard(ledger, ruleset)` implements `ledger.guard.CommandGuard`. For a proposed event on
a matter stream it reads that stream from the log (and, for R01, the collective decision the
step names), and runs the check of every rule of the rule set marked `blocking: true` whose
catalogue number it knows:

    R01  a `decide` step of a major matter (三重一大) without a collective decision on file:
         `data.decision_ref` names a `decision.collective_recorded` event that lists the
         matter, was approved, had more than `max_deciders` participants and a quorum
         (participants > `quorum_fraction` × leadership size)
    R02  `matter.concluded` without an approve/decide step of the flow's approval level
         (`ledger.flows`, the version the matter pinned) — only flows that have such a step
    R03  a major penalty decision (`major`, or the fine at or above the hearing threshold)
         without an approved `matter.legal_review_completed` before it
    R04  an approve/decide step by the official who accepted or reviewed the matter
    R06  a step taken before a mandatory step that precedes it in the flow (directly or
         transitively) has happened; conclusion before every mandatory step
    R12b a refund paid without a check step, or approved by the official who accepted it
    R14  a penalty decision with the fine at or above the hearing threshold (individual /
         entity) and no `matter.penalty_notice_served` with `hearing_rights: true` before it;
         (R14-hearing-not-held) a decision while a requested hearing has not been held
    R16  a penalty decision without a `case_review` step before it

Thresholds are the rule's parameters when its file declares them under the names in
`DEFAULTS` (region overrides apply), else the DOMAIN.md values in `DEFAULTS`.

Guarantees:

- The decision is a pure function of the log (the matter's stream, the referenced decision)
  and the rule set: no wall clock, no detector state. A rule absent from the rule set, or not
  marked blocking, never denies.
- A denial MUST be appended before `check` returns, as `command.rejected` on stream
  `command/<matter stream>`, signed with the ledger's detector key, with the refused actor as
  `subject.official` (so it appears in that official's integrity file). An allow appends
  nothing. The proposed event itself is never appended here.
- Not wired into the simulated demo (`ops/pipeline.py`): the simulator injects labelled
  anomalies on purpose so the detector can be measured against them, appends in batches (the
  ledger lags the producer, so a check would judge a stale stream) and must stay reproducible
  byte for byte, which random-id denials would break. A tax system wires it through
  `Producer(..., guard=BlockingGuard(ledger, ruleset))` (docs/producer-guide.md). Cost measured
  on a SQLite ledger: ~1 ms per allowed check, ~17 ms per denial (the signed append).
- The detector key has one writer at a time (`Ledger.append_as`): run guards in the process
  that owns the detector key, or give them a ledger of their own process and retry on error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from typing import Any

from alerts.rules import Rule, RuleSet
from ledger.flows import STEP_EVENT_TYPES, PowerFlow, load_flow_versions
from ledger.guard import ALLOW, GuardDecision
from ledger.ledger import AppendedEvent, Ledger
from projections.base import LoggedEvent, decode_record
from projections.conformance import resolve_flow

__all__ = ["DEFAULTS", "GUARD_ACTOR", "BlockingGuard", "MatterState", "guard_checks"]

GUARD_ACTOR = {"official": "neikong-detector", "role": "detector"}

# Parameter name -> value used when the rule file does not declare it (DOMAIN.md §1.3, §3).
DEFAULTS: dict[str, Any] = {
    "max_few_deciders": 2,  # R01: "decided by one or two people"
    "quorum_fraction": "1/2",  # R01: attendance MUST exceed half the leadership team [A]
    "approval_steps": ["approve", "decide"],  # R02
    "review_opinions": ["approved"],  # R03: legal-review opinions that clear a decision
    "hearing_fine_individual": "2000.00",  # R03/R14: 听证 scope, 元
    "hearing_fine_entity": "10000.00",
    "check_steps": ["refund_check"],  # R12b
    "paid_steps": ["refund_pay"],
}

_APPROVING = ("approve", "decide")
_NOT_DONE = ("returned", "rejected", "refused")


@cache
def _flows() -> dict[tuple[str, int], PowerFlow]:
    return load_flow_versions()


def _money(text: Any) -> Fraction:
    return Fraction(str(text)) if text is not None else Fraction(0)


@dataclass
class MatterState:
    """What the log says about one matter so far, and the step proposed next."""

    stream: str
    events: list[LoggedEvent]
    type: str
    step: str | None
    actor: Mapping[str, str]
    data: Mapping[str, Any]
    ledger: Ledger

    @property
    def accepted(self) -> Mapping[str, Any]:
        for event in self.events:
            if event.type == "matter.accepted":
                return event.data
        return {}

    @property
    def acceptor(self) -> str | None:
        for event in self.events:
            if event.type == "matter.accepted":
                return event.actor.get("official")
        return None

    def steps(self) -> list[tuple[str, LoggedEvent]]:
        """(step name, event) of every step already taken (not returned / rejected)."""
        out = []
        for event in self.events:
            name = _step_of(event.type, event.data)
            if name is not None and event.data.get("outcome") not in _NOT_DONE:
                out.append((name, event))
        return out

    def flow(self) -> PowerFlow | None:
        found = resolve_flow(self.accepted, _flows())
        return None if isinstance(found, str) else found

    @property
    def major(self) -> bool:
        return bool(self.data.get("major")) or bool(self.accepted.get("major"))


def _step_of(type_: str, data: Mapping[str, Any]) -> str | None:
    if type_ == "matter.step_completed":
        step = data.get("step")
        return step if isinstance(step, str) else None
    return STEP_EVENT_TYPES.get(type_)


def _param(rule: Rule, name: str) -> Any:
    return rule.params[name] if name in rule.params else DEFAULTS[name]


def _hearing_threshold(rule: Rule, m: MatterState) -> Fraction:
    kind = m.data.get("party_kind") or m.accepted.get("party_kind") or "individual"
    return _money(_param(rule, f"hearing_fine_{'entity' if kind == 'entity' else 'individual'}"))


# -- the checks: each returns a reason (denied) or None (allowed) -------------------------------


def _r01(rule: Rule, m: MatterState) -> str | None:
    if m.step != "decide" or not m.major:
        return None
    ref = m.data.get("decision_ref")
    if not isinstance(ref, str):
        return "major matter decided without a collective decision on file (no decision_ref)"
    found = m.ledger.store.event_ids([ref])
    if ref not in found:
        return f"collective decision {ref} is not in the ledger"
    rows = m.ledger.store.read(found[ref][0], 1)
    decision = decode_record(rows[0].position, rows[0].record)
    d = decision.data
    participants = len(d.get("participants", []))
    if decision.type != "decision.collective_recorded" or m.stream not in d.get("matters", []):
        return f"event {ref} is not a collective decision on {m.stream}"
    if d.get("outcome") != "approved":
        return f"the collective decision {ref} was {d.get('outcome')}, not approved"
    if participants <= int(_param(rule, "max_few_deciders")):
        return f"decided by {participants} people (三重一大 needs a collective decision)"
    if participants <= Fraction(str(_param(rule, "quorum_fraction"))) * int(
        d.get("leadership_size", 0)
    ):
        return f"{participants} of {d.get('leadership_size')} present: below quorum"
    return None


def _r02(rule: Rule, m: MatterState) -> str | None:
    flow = m.flow()
    if m.type != "matter.concluded" or flow is None or flow.approval_level <= 0:
        return None
    approving = list(_param(rule, "approval_steps"))
    if not any(flow.step(name) for name in approving):
        return None  # the flow's own decision step is its approval (e.g. penalty_decided)
    levels = [int(e.data.get("level", 0)) for name, e in m.steps() if name in approving]
    if any(level >= flow.approval_level for level in levels):
        return None
    best = max(levels, default=0)
    return f"conclusion needs approval at level {flow.approval_level}; highest on file {best}"


def _is_penalty_decision(m: MatterState) -> bool:
    return m.step == "penalty_decided"


def _r03(rule: Rule, m: MatterState) -> str | None:
    if not _is_penalty_decision(m):
        return None
    fine = _money(m.data.get("fine"))
    if not (m.major or fine >= _hearing_threshold(rule, m)):
        return None
    opinions = list(_param(rule, "review_opinions"))
    reviewed = any(
        name == "legal_review" and e.data.get("opinion") in opinions for name, e in m.steps()
    )
    return (
        None if reviewed else "major penalty decision without an approved legal review (法制审核)"
    )


def _r04(rule: Rule, m: MatterState) -> str | None:
    if m.step not in _APPROVING:
        return None
    me = m.actor.get("official")
    handled = {m.acceptor} | {
        e.actor.get("official") for name, e in m.steps() if name in ("accept", "review")
    }
    if me and me in handled:
        return f"{me} accepted or reviewed this matter and may not approve it (分工制约)"
    return None


def _r06(rule: Rule, m: MatterState) -> str | None:
    flow = m.flow()
    if flow is None:
        return None
    done = {name for name, _ in m.steps()}
    if m.type == "matter.concluded":
        missing = [s for s in flow.mandatory_steps if s not in done]
        return f"conclusion before mandatory steps {missing}" if missing else None
    step = flow.step(m.step) if m.step else None
    if step is None:
        return None
    missing = [s for s in sorted(_before(flow, step.name)) if s not in done]
    return f"step {m.step} before mandatory steps {missing}" if missing else None


def _before(flow: PowerFlow, name: str) -> set[str]:
    """The mandatory steps that come before `name` in the flow, directly or transitively."""
    seen: set[str] = set()
    todo = [s.after for s in flow.steps if s.name == name]
    while todo:
        for prev in todo.pop():
            if prev not in seen:
                seen.add(prev)
                found = flow.step(prev)
                if found is not None:
                    todo.append(found.after)
    return {s for s in seen if (found := flow.step(s)) is not None and found.mandatory}


def _r14(rule: Rule, m: MatterState) -> str | None:
    if not _is_penalty_decision(m):
        return None
    fine = _money(m.data.get("fine"))
    threshold = _hearing_threshold(rule, m)
    if fine < threshold:
        return None
    notified = any(
        name == "penalty_notice" and e.data.get("hearing_rights") is True for name, e in m.steps()
    )
    if notified:
        return None
    return f"fine {fine} ≥ {threshold} without a notice of hearing rights (听证告知)"


def _r14_hearing_not_held(rule: Rule, m: MatterState) -> str | None:
    if not _is_penalty_decision(m):
        return None
    done = [name for name, _ in m.steps()]
    if "hearing_requested" in done and "hearing_held" not in done:
        return "penalty decision while the requested hearing has not been held (听证)"
    return None


def _r12_fast_track(rule: Rule, m: MatterState) -> str | None:
    if m.step not in list(_param(rule, "paid_steps")):
        return None
    steps = m.steps()
    checks = list(_param(rule, "check_steps"))
    if not any(name in checks for name, _ in steps):
        return f"refund paid without a check step {checks} (查实)"
    approvers = {e.actor.get("official") for name, e in steps if name in _APPROVING}
    if m.acceptor is not None and m.acceptor in approvers:
        return f"{m.acceptor} accepted and approved this refund (分工制约)"
    return None


def _r16(rule: Rule, m: MatterState) -> str | None:
    if not _is_penalty_decision(m):
        return None
    if any(name == "case_review" for name, _ in m.steps()):
        return None
    return "penalty decision without case review (审理)"


Check = Callable[[Rule, MatterState], "str | None"]

# By catalogue number; a rule id listed in _BY_ID (one catalogue row split into several rule
# files) takes that entry instead, None meaning "not enforced here".
_CHECKS: dict[str, Check] = {
    "R01": _r01,
    "R02": _r02,
    "R03": _r03,
    "R04": _r04,
    "R06": _r06,
    "R12": _r12_fast_track,
    "R14": _r14,
    "R16": _r16,
}
_BY_ID: dict[str, Check | None] = {
    "R12-refund-late": None,
    "R14-hearing-not-held": _r14_hearing_not_held,
}


def _check_for(rule_id: str) -> Check | None:
    if rule_id in _BY_ID:
        return _BY_ID[rule_id]
    return _CHECKS.get(rule_id[:3])


def _reason_code(rule_id: str) -> str:
    """`R02-approval-skipped` -> `approval_skipped` (the schema's code pattern)."""
    code = re.sub(r"[^a-z_]", "", rule_id[4:].replace("-", "_")).strip("_")
    return (code or "blocked")[:40]


def guard_checks() -> tuple[str, ...]:
    """The catalogue numbers this guard can enforce."""
    return tuple(_CHECKS)


class BlockingGuard:
    """`CommandGuard` over the ledger and the blocking rules of `ruleset` (see module doc)."""

    def __init__(self, ledger: Ledger, ruleset: RuleSet) -> None:
        self.ledger = ledger
        self.ruleset = ruleset
        self.rules = [
            (r, check) for r in ruleset if r.blocking and (check := _check_for(r.id)) is not None
        ]

    def decide(
        self, stream: str, type: str, *, actor: Mapping[str, str], data: Mapping[str, Any]
    ) -> GuardDecision:
        """The decision alone, recording nothing (what `check` would answer)."""
        if not stream.startswith("matter/") or not self.rules:
            return ALLOW
        events = [decode_record(p, r) for p, r in self.ledger.store.stream_rows(stream)]
        state = MatterState(stream, events, type, _step_of(type, data), actor, data, self.ledger)
        denied = [(r.id, reason) for r, check in self.rules if (reason := check(r, state))]
        if not denied:
            return ALLOW
        denied.sort()
        return GuardDecision(False, tuple(i for i, _ in denied), tuple(w for _, w in denied))

    def check(
        self,
        stream: str,
        type: str,
        *,
        actor: Mapping[str, str],
        data: Mapping[str, Any],
        subject: Mapping[str, str] | None = None,
    ) -> GuardDecision:
        """`decide`, and append a denial as `command.rejected` before returning it."""
        decision = self.decide(stream, type, actor=actor, data=data)
        if not decision.allowed:
            self.record(stream, type, actor, data, decision)
        return decision

    def record(
        self,
        stream: str,
        type: str,
        actor: Mapping[str, str],
        data: Mapping[str, Any],
        decision: GuardDecision,
    ) -> AppendedEvent:
        refused: dict[str, str] = {"type": type}
        step = _step_of(type, data)
        if step is not None:
            refused["step"] = step
        official = actor.get("official")
        if official:
            refused["actor"] = official
        body: dict[str, Any] = {
            "rule_ids": list(decision.rule_ids),
            "ruleset_hash": self.ruleset.ruleset_hash,
            "matter": stream,
            "refused": refused,
            "reason_code": _reason_code(decision.rule_ids[0]),
        }
        return self.ledger.append_as(
            "detector",
            f"command/{stream}",
            "command.rejected",
            actor=GUARD_ACTOR,
            data=body,
            subject={"official": official} if official else None,
        )
