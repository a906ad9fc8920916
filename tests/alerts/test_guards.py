"""Blocking guards (事中阻断) on a real ledger: each guarded rule denies with its rule id and allows
the compliant case; a denial is a `command.rejected` signed by the detector key, verifiable,
and in the refused official's integrity file; an allow appends nothing; Producer.check."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerts.guards import BlockingGuard, guard_checks
from alerts.rules import RULES_DIR, RuleSet, load_ruleset
from ledger.builder import build_body
from ledger.envelope import HEADER_LEN, b64
from ledger.guard import ALLOW, CommandGuard, GuardDecision
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.registry import KeyScope
from ledger.transport import InProcessChannel
from producers.producer import Producer
from projections.integrity_file import IntegrityFile
from tests.alerts._support import at, make_ledger
from tests.ledger._support import read_rows, verify_dir
from tests.projections._log import fold_all

M = "matter/4403-xk/2026-9"
HANDLER = {"official": "4403-00101", "role": "handler", "unit": "4403-01"}
REVIEWER = {"official": "4403-00102", "role": "reviewer", "unit": "4403-01"}
APPROVER = {"official": "4403-00103", "role": "approver", "unit": "4403-01"}
CASE_REVIEWER = {"official": "4403-00104", "role": "case_reviewer", "unit": "4403-01"}
LEGAL = {"official": "4403-00105", "role": "legal_reviewer", "unit": "4403-01"}

# id, grade dir, category, params: the blocking rules the guard enforces, minimal files so the
# tests do not depend on the state of the packaged rule set.
RULES = [
    ("R01-major-matter-few-deciders", 1, "admin_decision", {"max_few_deciders": 2}),
    ("R02-approval-skipped", 1, "admin_decision", {}),
    ("R03-major-enforcement-without-legal-review", 1, "admin_decision", {}),
    ("R04-same-person-handles-and-approves", 1, "admin_decision", {}),
    ("R06-mandatory-step-missing-or-out-of-order", 2, "tax_enforcement", {}),
    ("R12-refund-fast-track", 2, "tax_enforcement", {}),
    ("R14-hearing-right-violation", 3, "tax_penalty", {"hearing_fine_individual": "2000.00"}),
    ("R16-penalty-without-review", 3, "tax_penalty", {}),
]


def _write_rules(base: Path) -> Path:
    for rule_id, grade, category, params in RULES:
        directory = base / str(grade)
        directory.mkdir(parents=True, exist_ok=True)
        declared = {
            name: {"type": "int" if isinstance(v, int) else "ratio", "doc": "t", "value": v}
            for name, v in params.items()
        }
        doc = {
            "id": rule_id,
            "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, rule_id)),
            "version": 1,
            "status": "test",
            "title": rule_id,
            "description": "guard test rule",
            "grade": grade,
            "category": category,
            "risk_point": "RP-test",
            "legal_basis": [{"ref": "test", "note": "test"}],
            "params": declared,
            "match": {"kind": "predicate", "key": ["stream"], "trigger": {"event": "x.never"}},
            "levels": [{"level": "orange", "action": "block"}],
            "attribution": {
                "rule": "field",
                "path": "actor.official",
                "role": "approver",
                "fallback": "unit_head",
            },
            "exceptions": [],
            "suppress": {"mode": "escalate_in_place"},
            "blocking": True,
            "tests": f"tests/{rule_id}/",
        }
        (directory / f"{rule_id}.yaml").write_bytes(orjson.dumps(doc))  # JSON is YAML
    return base


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    return load_ruleset(_write_rules(tmp_path_factory.mktemp("rules")))


class Matter:
    """Appends a matter's events (and collective decisions) by hand, signed at the source."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.heads: dict[str, tuple[int, str | None]] = {}
        self.seqs: dict[str, int] = {}
        self.day = 0

    def add(self, type_: str, data: dict[str, Any], actor: dict[str, str], stream: str = M) -> str:
        system = "4403-bangong" if stream.startswith("decision/") else "4403-xuke"
        seq, prev = self.heads.get(stream, (0, None))
        self.seqs[system] = self.seqs.get(system, 0) + 1
        self.day += 1
        event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{stream}#{seq + 1}"))
        body = build_body(
            event_id=event_id,
            stream=stream,
            stream_seq=seq + 1,
            prev=prev,
            system=system,
            producer_seq=self.seqs[system],
            type=type_,
            occurred_at=at(self.day),
            actor=actor,
            subject=None,
            data=data,
        )
        self.heads[stream] = (seq + 1, b64(hashlib.sha256(body).digest()))
        with Ledger.open(self.directory) as ledger:
            signer = Signer.from_file(ledger.key_path(system))
            outcome = ledger.appender().submit([signer.sign(body).encode()])[0]
        assert outcome.status == "appended", outcome
        return event_id

    def step(self, step: str, actor: dict[str, str], **data: Any) -> str:
        return self.add("matter.step_completed", {"step": step, **data}, actor)


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Path:
    directory = make_ledger(tmp_path / "ledger")
    with Ledger.open(directory) as ledger:
        ledger.enrol_key(
            "4403-bangong", "producer", KeyScope("4403-bangong", ("decision/",), ("decision.*",))
        )
    return directory


def _check(
    directory: Path,
    rules: RuleSet,
    only: str | None,
    type_: str,
    data: dict[str, Any],
    actor: dict[str, str] = APPROVER,
) -> GuardDecision:
    ruleset = rules.only([only]) if only else rules
    with Ledger.open(directory) as ledger:
        return BlockingGuard(ledger, ruleset).check(M, type_, actor=actor, data=data)


def _rejections(directory: Path) -> list[dict[str, Any]]:
    return [
        orjson.loads(r.state[HEADER_LEN:])
        for r in read_rows(directory / "ledger.db")
        if r.type == "command.rejected"
    ]


PENALTY = {
    "fine": "5000.00",
    "unpaid_tax": "10000.00",
    "ratio": "0.5",
    "violation_code": "tax_evasion",
    "circumstances": "first_corrected",
    "discretion_reason": "r",
    "party_kind": "individual",
    "benchmark": {"region": "4400", "version": 1},
    "major": False,
}


def _penalty_case(m: Matter, *, review: bool = True, notice: bool = True, rights: bool = True):
    m.add("matter.accepted", {"matter_type": "penalty", "party_kind": "individual"}, HANDLER)
    m.step("case_filed", APPROVER)
    m.step("investigation", HANDLER)
    if review:
        m.step("case_review", CASE_REVIEWER, outcome="passed")
    if notice:
        served = {
            "proposed_fine": "5000.00",
            "hearing_rights": rights,
            "party_kind": "individual",
            "served_on": "2026-01-20",
        }
        m.add("matter.penalty_notice_served", served, HANDLER)


# -- each guarded rule ---------------------------------------------------------------------------


def test_r02_conclusion_without_the_required_approval_level(ledger_dir, rules) -> None:
    m = Matter(ledger_dir)
    m.add("matter.accepted", {"matter_type": "licence"}, HANDLER)
    m.step("review", REVIEWER, outcome="passed")
    m.step("approve", APPROVER, outcome="approved", level=1)  # licence needs level 2
    concluded = {"outcome": "granted", "final_seq": 5}
    decision = _check(ledger_dir, rules, "R02-approval-skipped", "matter.concluded", concluded)
    assert decision.rule_ids == ("R02-approval-skipped",)
    assert "level 2" in decision.reasons[0]
    m.step("approve", APPROVER, outcome="approved", level=2)
    assert _check(ledger_dir, rules, "R02-approval-skipped", "matter.concluded", concluded)


def test_r04_approving_ones_own_handling_or_review(ledger_dir, rules) -> None:
    m = Matter(ledger_dir)
    m.add("matter.accepted", {"matter_type": "licence"}, HANDLER)
    m.step("review", REVIEWER, outcome="passed")
    rid = "R04-same-person-handles-and-approves"
    data = {"step": "approve", "outcome": "approved", "level": 2}
    for actor in (
        {**HANDLER, "role": "approver"},  # accepted it
        {**REVIEWER, "role": "approver"},  # reviewed it
    ):
        decision = _check(ledger_dir, rules, rid, "matter.step_completed", data, actor)
        assert (decision.allowed, decision.rule_ids) == (False, (rid,))
    assert _check(ledger_dir, rules, rid, "matter.step_completed", data, APPROVER)


def test_r01_major_decision_needs_a_collective_decision_on_file(ledger_dir, rules) -> None:
    m = Matter(ledger_dir)
    m.add("matter.accepted", {"matter_type": "licence", "major": True}, HANDLER)
    rid = "R01-major-matter-few-deciders"
    decide = {"step": "decide", "outcome": "approved", "level": 4}
    denied = _check(ledger_dir, rules, rid, "matter.step_completed", decide)
    assert denied.rule_ids == (rid,)
    assert "decision_ref" in denied.reasons[0]
    record = {
        "meeting": "bureau_office",
        "topic": "major_matter",
        "leadership_size": 7,
        "matters": [M],
        "outcome": "approved",
        "held_on": "2026-01-10",
    }
    few = m.add(
        "decision.collective_recorded",
        {**record, "participants": ["4403-00001", "4403-00002"]},
        APPROVER,
        stream="decision/4403-01/2026-1",
    )
    denied = _check(
        ledger_dir, rules, rid, "matter.step_completed", {**decide, "decision_ref": few}
    )
    assert denied.rule_ids == (rid,)
    assert "2 people" in denied.reasons[0]
    quorum = m.add(
        "decision.collective_recorded",
        {**record, "participants": ["4403-00001", "4403-00002", "4403-00003"]},
        APPROVER,
        stream="decision/4403-01/2026-2",
    )
    denied = _check(
        ledger_dir, rules, rid, "matter.step_completed", {**decide, "decision_ref": quorum}
    )
    assert "quorum" in denied.reasons[0]  # 3 of 7 is not more than half
    ok = m.add(
        "decision.collective_recorded",
        {**record, "participants": [f"4403-0000{i}" for i in range(1, 6)]},
        APPROVER,
        stream="decision/4403-01/2026-3",
    )
    assert _check(ledger_dir, rules, rid, "matter.step_completed", {**decide, "decision_ref": ok})


def test_r03_major_penalty_without_legal_review(ledger_dir, rules) -> None:
    m = Matter(ledger_dir)
    _penalty_case(m)
    rid = "R03-major-enforcement-without-legal-review"
    major = {**PENALTY, "fine": "500.00", "major": True}
    decision = _check(ledger_dir, rules, rid, "matter.penalty_decided", major)
    assert decision.rule_ids == (rid,)
    minor = {**PENALTY, "fine": "500.00"}  # below the hearing threshold, not major
    assert _check(ledger_dir, rules, rid, "matter.penalty_decided", minor)
    m.add(
        "matter.legal_review_completed",
        {"opinion": "returned", "reviewed_decision": "penalty"},
        LEGAL,
    )
    assert not _check(ledger_dir, rules, rid, "matter.penalty_decided", major)
    m.add(
        "matter.legal_review_completed",
        {"opinion": "approved", "reviewed_decision": "penalty"},
        LEGAL,
    )
    assert _check(ledger_dir, rules, rid, "matter.penalty_decided", major)


def test_r14_penalty_above_the_hearing_threshold_without_hearing_rights(ledger_dir, rules) -> None:
    m = Matter(ledger_dir)
    _penalty_case(m, rights=False)
    rid = "R14-hearing-right-violation"
    assert _check(ledger_dir, rules, rid, "matter.penalty_decided", PENALTY).rule_ids == (rid,)
    # exactly at the threshold counts; one fen below does not
    at_limit = {**PENALTY, "fine": "2000.00"}
    assert not _check(ledger_dir, rules, rid, "matter.penalty_decided", at_limit)
    assert _check(ledger_dir, rules, rid, "matter.penalty_decided", {**PENALTY, "fine": "1999.99"})
    served = {
        "proposed_fine": "5000.00",
        "hearing_rights": True,
        "party_kind": "individual",
        "served_on": "2026-01-21",
    }
    m.add("matter.penalty_notice_served", served, HANDLER)
    assert _check(ledger_dir, rules, rid, "matter.penalty_decided", PENALTY)


def test_r16_penalty_without_case_review(ledger_dir, rules) -> None:
    m = Matter(ledger_dir)
    _penalty_case(m, review=False)
    rid = "R16-penalty-without-review"
    assert _check(ledger_dir, rules, rid, "matter.penalty_decided", PENALTY).rule_ids == (rid,)
    m.step("case_review", CASE_REVIEWER, outcome="returned")  # sent back: not a review done
    assert not _check(ledger_dir, rules, rid, "matter.penalty_decided", PENALTY)
    m.step("case_review", CASE_REVIEWER, outcome="passed")
    assert _check(ledger_dir, rules, rid, "matter.penalty_decided", PENALTY)


def test_r06_and_r12b_steps_before_their_mandatory_predecessors(ledger_dir, rules) -> None:
    m = Matter(ledger_dir)
    m.add("matter.accepted", {"matter_type": "refund_applied"}, HANDLER)
    pay = {"step": "refund_pay", "amount": "100.00"}
    both = _check(ledger_dir, rules, None, "matter.step_completed", pay, HANDLER)
    assert both.rule_ids == ("R06-mandatory-step-missing-or-out-of-order", "R12-refund-fast-track")
    m.step("refund_check", REVIEWER, outcome="passed")
    m.step("approve", APPROVER, outcome="approved", level=2)
    assert _check(ledger_dir, rules, None, "matter.step_completed", pay, HANDLER)


def test_several_rules_deny_together_in_id_order(ledger_dir, rules) -> None:
    m = Matter(ledger_dir)
    _penalty_case(m, review=False, rights=False)
    decision = _check(ledger_dir, rules, None, "matter.penalty_decided", {**PENALTY, "major": True})
    assert decision.rule_ids == (
        "R03-major-enforcement-without-legal-review",
        "R06-mandatory-step-missing-or-out-of-order",
        "R14-hearing-right-violation",
        "R16-penalty-without-review",
    )
    assert len(decision.reasons) == 4


# -- what a denial leaves in the ledger ----------------------------------------------------------


def test_a_denial_is_a_signed_verifiable_command_rejected_in_the_actors_file(
    ledger_dir, rules
) -> None:
    m = Matter(ledger_dir)
    _penalty_case(m, review=False)
    before = _domain_rows(ledger_dir)
    decision = _check(ledger_dir, rules, None, "matter.penalty_decided", PENALTY)
    assert not decision.allowed
    (rejected,) = _rejections(ledger_dir)
    assert _domain_rows(ledger_dir) == before + 1  # the decision itself: never
    assert rejected["stream"] == f"command/{M}"
    assert rejected["producer"]["system"] == "neikong-detector"
    assert rejected["subject"] == {"official": APPROVER["official"]}
    assert rejected["data"]["rule_ids"] == list(decision.rule_ids)
    assert rejected["data"]["matter"] == M
    assert rejected["data"]["refused"] == {
        "type": "matter.penalty_decided",
        "step": "penalty_decided",
        "actor": APPROVER["official"],
    }
    assert rejected["data"]["ruleset_hash"] == rules.ruleset_hash
    with Ledger.open(ledger_dir) as ledger:
        detector_key = ledger.service_signer("detector").key_id
    record = next(
        r.state for r in read_rows(ledger_dir / "ledger.db") if r.type == "command.rejected"
    )
    assert record[4 : 4 + 32] == detector_key  # NKE1 ‖ key_id ‖ signature ‖ body
    assert verify_dir(ledger_dir).intact
    # the official's integrity file lists it
    from projections.base import decode_record

    events = [decode_record(r.position, r.state) for r in read_rows(ledger_dir / "ledger.db")]
    doc = fold_all(IntegrityFile(), events)[APPROVER["official"]]
    (entry,) = doc["commands_rejected"]
    assert entry["rule_ids"] == list(decision.rule_ids)
    assert (entry["matter"], entry["command"]) == (M, "matter.penalty_decided")


def _domain_rows(directory: Path) -> int:
    """Rows other than the key registry's (a first denial enrols the detector key)."""
    return sum(1 for r in read_rows(directory / "ledger.db") if not r.type.startswith("key."))


def test_an_allow_appends_nothing(ledger_dir, rules) -> None:
    m = Matter(ledger_dir)
    _penalty_case(m)
    reviewed = {"opinion": "approved", "reviewed_decision": "penalty"}
    m.add("matter.legal_review_completed", reviewed, LEGAL)
    before = len(read_rows(ledger_dir / "ledger.db"))
    assert _check(ledger_dir, rules, None, "matter.penalty_decided", PENALTY) == ALLOW
    assert len(read_rows(ledger_dir / "ledger.db")) == before
    assert _rejections(ledger_dir) == []


def test_rules_not_blocking_or_absent_never_deny(ledger_dir, rules) -> None:
    m = Matter(ledger_dir)
    _penalty_case(m, review=False)
    others = rules.only(["R02-approval-skipped"])  # R16 not in the rule set
    with Ledger.open(ledger_dir) as ledger:
        assert (
            BlockingGuard(ledger, others)
            .check(M, "matter.penalty_decided", actor=APPROVER, data=PENALTY)
            .allowed
        )
    assert _rejections(ledger_dir) == []


def test_every_blocking_rule_of_the_packaged_set_has_a_guard() -> None:
    """§3: R01–R04, R06, R12b, R14, R16 block; the guard knows each that the rule set marks."""
    packaged = load_ruleset(RULES_DIR)
    assert set(guard_checks()) == {"R01", "R02", "R03", "R04", "R06", "R12", "R14", "R16"}
    for rule in packaged:
        if rule.blocking:
            assert rule.id[:3] in guard_checks(), rule.id


# -- the SDK -------------------------------------------------------------------------------------


def test_producer_check_asks_the_guard_and_emits_nothing(ledger_dir, rules) -> None:
    m = Matter(ledger_dir)
    _penalty_case(m, review=False)
    channel = InProcessChannel()
    with Ledger.open(ledger_dir) as ledger:
        signer = Signer.from_file(ledger.key_path("4403-xuke"))
        guard = BlockingGuard(ledger, rules)
        assert isinstance(guard, CommandGuard)
        guarded = Producer("4403-xuke", signer, channel, guard=guard)
        small = {**PENALTY, "fine": "500.00"}
        decision = guarded.check(M, "matter.penalty_decided", actor=APPROVER, data=small)
        assert decision.rule_ids == (
            "R06-mandatory-step-missing-or-out-of-order",
            "R16-penalty-without-review",
        )
        free = Producer("4403-xuke", signer, channel)
        assert free.check(M, "matter.penalty_decided", actor=APPROVER, data=small) == ALLOW
    assert channel.poll(10, 0.0) == []  # check never publishes
    assert GuardDecision(True).as_json() == {"allowed": True, "rule_ids": [], "reasons": []}
    with pytest.raises(ValueError, match="a denial names its rules"):
        GuardDecision(False)


def test_the_producer_guide_check_example_runs(tmp_path: Path) -> None:
    """docs/producer-guide.md's `Producer.check` example, run against a scratch ledger."""
    import re

    guide = (Path(__file__).resolve().parents[2] / "docs" / "producer-guide.md").read_text("utf-8")
    (source,) = [b for b in re.findall(r"```python\n(.*?)```", guide, re.S) if ".check(" in b]
    with Ledger.init(tmp_path / "ledger") as ledger:
        scope = KeyScope("4403-fapiao", ("matter/4403-fp/",), ("matter.*",))
        ledger.enrol_key("4403-fapiao", "producer", scope)
        directory = ledger.directory
    namespace: dict[str, Any] = {}
    source = source.replace('Path("neikong-data")', f"Path({str(directory)!r})")
    exec(compile(source, "producer-guide.md", "exec"), namespace)
    decision = namespace["decision"]
    assert not decision.allowed
    assert "R04-same-person-handles-and-approves" in decision.rule_ids
    (rejected,) = _rejections(directory)
    assert rejected["data"]["rule_ids"] == list(decision.rule_ids)
    assert [r.type for r in read_rows(directory / "ledger.db") if r.type.startswith("matter.")] == [
        "matter.accepted"
    ]
