"""Conformance of matters to their flows: one positive matter per flow, and negatives for
every finding kind, with the holiday calendar at the deadline boundaries."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import ledger
from ledger.flows import STEP_EVENT_TYPES, PowerFlow, load_flow_versions, load_flows
from ledger.workdays import default_calendar, format_ts, parse_ts
from projections.base import LoggedEvent
from projections.conformance import ConformanceFinding, ConformanceKind, check_matter

FLOWS = load_flows()
CAL = default_calendar()
START = "2026-03-02T01:00:00Z"  # Monday 09:00 CST
STEP_TYPES = {step: event_type for event_type, step in STEP_EVENT_TYPES.items()}


class Matter:
    """Builds a matter's events as signed envelopes look (stream order, dict form)."""

    def __init__(self, flow: PowerFlow, *, at: str = START, pin: dict[str, Any] | None = None):
        self.flow = flow
        self.clock = parse_ts(at)
        self.events: list[dict[str, Any]] = []
        data: dict[str, Any] = {"matter_type": flow.matter_type, "flow": pin or flow.pin()}
        self.add("matter.accepted", "handler", data)

    def add(
        self, event_type: str, role: str, data: dict[str, Any], *, official: str | None = None
    ) -> Matter:
        self.events.append(
            {
                "type": event_type,
                "stream_seq": len(self.events) + 1,
                "occurred_at": format_ts(self.clock),
                "actor": {"official": official or f"O-{role}", "role": role, "unit": "4403-01"},
                "data": data,
            }
        )
        self.clock += timedelta(minutes=30)
        return self

    def step(self, name: str, *, role: str | None = None, official: str | None = None) -> Matter:
        spec = self.flow.step(name)
        actual_role = role or (spec.role if spec else "handler")
        if name in STEP_TYPES:
            return self.add(STEP_TYPES[name], actual_role, {}, official=official)
        return self.add(
            "matter.step_completed",
            actual_role,
            {"step": name, "outcome": "passed"},
            official=official,
        )

    def steps(self, *, optional: bool = False, skip: tuple[str, ...] = ()) -> Matter:
        for s in self.flow.steps:
            if (s.mandatory or optional) and s.name not in skip:
                self.step(s.name)
        return self

    def at(self, ts: str) -> Matter:
        self.clock = parse_ts(ts)
        return self

    def conclude(self, *, official: str | None = None) -> Matter:
        return self.add(
            "matter.concluded",
            "handler",
            {"outcome": "closed", "final_seq": len(self.events) + 1},
            official=official,
        )

    def withdraw(self) -> Matter:
        return self.add(
            "matter.withdrawn",
            "approver",
            {"reason": "applicant withdrew", "final_seq": len(self.events) + 1},
        )

    def extend(self, days: int, calendar: str = "working") -> Matter:
        return self.add(
            "matter.extension_approved",
            "approver",
            {"days": days, "calendar": calendar, "reason": "complex case"},
        )

    def check(self, **kwargs: Any) -> list[ConformanceFinding]:
        return check_matter(self.events, FLOWS, CAL, **kwargs)


def kinds(findings: list[ConformanceFinding]) -> list[tuple[str, str | None]]:
    return [(f.kind, f.step) for f in findings]


# --- positives --------------------------------------------------------------------------------


@pytest.mark.parametrize("flow_id", sorted(FLOWS))
def test_a_matter_with_the_mandatory_steps_conforms(flow_id: str) -> None:
    assert Matter(FLOWS[flow_id]).steps().conclude().check() == []


@pytest.mark.parametrize("flow_id", sorted(FLOWS))
def test_a_matter_with_every_step_conforms(flow_id: str) -> None:
    assert Matter(FLOWS[flow_id]).steps(optional=True).conclude().check() == []


@pytest.mark.parametrize("flow_id", sorted(FLOWS))
def test_each_flow_detects_a_missing_mandatory_step(flow_id: str) -> None:
    flow = FLOWS[flow_id]
    last = flow.mandatory_steps[-1]
    findings = Matter(flow).steps(skip=(last,)).conclude().check()
    assert (ConformanceKind.MISSING_STEP, last) in kinds(findings)


def test_logged_events_are_accepted_as_well_as_dicts() -> None:
    matter = Matter(FLOWS["invoice_book"]).steps().conclude()
    logged = [
        LoggedEvent(
            i,
            f"e{i}",
            "matter/4403-fp/2026-000001",
            e["stream_seq"],
            e["type"],
            e["occurred_at"],
            "4403-fapiao",
            e["actor"],
            {},
            e["data"],
            {},
        )
        for i, e in enumerate(matter.events, 1)
    ]
    assert check_matter(logged, FLOWS, CAL) == []
    broken = logged[:2] + logged[3:]  # no approve
    assert ("missing_step", "approve") in kinds(check_matter(broken, FLOWS, CAL))


# --- missing steps ----------------------------------------------------------------------------


def test_missing_step_is_reported_at_conclusion_only() -> None:
    flow = FLOWS["invoice_book"]
    open_matter = Matter(flow).step("review")
    assert open_matter.check() == []
    concluded = Matter(flow).step("review").step("approve").conclude()
    findings = concluded.check()
    assert findings == [
        ConformanceFinding("missing_step", "issue", 4, "concluded without issue"),
    ]


def test_a_withdrawn_matter_has_no_missing_steps_but_keeps_actor_checks() -> None:
    flow = FLOWS["invoice_book"]
    assert Matter(flow).step("review").withdraw().check() == []
    findings = Matter(flow).step("review", role="approver").withdraw().check()
    assert kinds(findings) == [("unauthorised_actor", "review")]


def test_a_step_after_conclusion_was_missing_at_conclusion() -> None:
    flow = FLOWS["invoice_book"]
    matter = Matter(flow).step("review").step("approve").conclude().step("issue")
    assert ("missing_step", "issue") in kinds(matter.check())


# --- order ------------------------------------------------------------------------------------


def test_approval_before_review_is_out_of_order() -> None:
    flow = FLOWS["invoice_book"]
    findings = Matter(flow).step("approve").step("review").step("issue").conclude().check()
    assert kinds(findings) == [("out_of_order", "approve")]
    assert findings[0].seq == 2
    assert "before review" in findings[0].detail


def test_an_optional_step_is_ordered_when_present() -> None:
    flow = FLOWS["penalty"]
    m = Matter(flow)
    for name in ("case_filed", "investigation", "case_review", "penalty_notice"):
        m.step(name)
    m.step("hearing_requested").step("penalty_decided").step("hearing_held")
    m.step("decision_served").step("penalty_executed").conclude()
    assert kinds(m.check()) == [("out_of_order", "penalty_decided")]


def test_an_absent_optional_prerequisite_is_not_out_of_order() -> None:
    # licence: approve is after [review, site_check]; site_check is optional.
    flow = FLOWS["licence"]
    assert Matter(flow).steps().conclude().check() == []


def test_a_step_not_in_the_flow_is_unexpected() -> None:
    flow = FLOWS["registration"]
    findings = Matter(flow).step("review").step("refund_pay", role="handler").conclude().check()
    assert kinds(findings) == [("unexpected_step", "refund_pay")]


def test_repeated_step_after_a_return_is_fine() -> None:
    flow = FLOWS["invoice_book"]
    m = Matter(flow).step("review").step("review").step("approve").step("issue").conclude()
    assert m.check() == []


# --- actors and duties ------------------------------------------------------------------------


def test_a_step_by_the_wrong_role_is_unauthorised() -> None:
    flow = FLOWS["refund_applied"]
    findings = (
        Matter(flow)
        .step("refund_check")
        .step("approve", role="reviewer", official="O-x")
        .step("refund_pay")
        .conclude()
        .check()
    )
    assert kinds(findings) == [("unauthorised_actor", "approve")]
    assert "'reviewer'" in findings[0].detail


def test_handler_who_also_approves_is_a_duty_conflict() -> None:
    flow = FLOWS["invoice_book"]
    m = Matter(flow)
    m.events[0]["actor"]["official"] = "O-same"
    m.step("review").step("approve", official="O-same").step("issue").conclude()
    findings = m.check()
    assert kinds(findings) == [("duty_conflict", None)]
    assert findings[0].seq == 3
    assert "O-same" in findings[0].detail


def test_reviewer_who_approves_conflicts_once_per_pair() -> None:
    flow = FLOWS["max_invoice_amount"]
    m = Matter(flow)
    m.step("review", official="O-r").step("site_check")
    m.step("approve", official="O-r").step("decide", official="O-r")
    m.step("license_document").conclude()
    assert kinds(m.check()) == [("duty_conflict", None)]


def test_one_approver_approving_and_deciding_is_not_a_conflict() -> None:
    flow = FLOWS["licence"]
    m = Matter(flow).step("review").step("approve", official="O-a").step("decide", official="O-a")
    m.step("license_document").conclude()
    assert m.check() == []


def test_penalty_investigator_who_executes_is_a_duty_conflict() -> None:
    flow = FLOWS["penalty"]
    m = Matter(flow)
    for s in flow.steps:
        if s.mandatory:
            m.step(
                s.name,
                official="O-inv" if s.name in ("investigation", "penalty_executed") else None,
            )
    findings = m.conclude().check()
    assert kinds(findings) == [("duty_conflict", None)]
    assert "investigator" in findings[0].detail
    assert "handler" in findings[0].detail


def test_case_reviewer_who_investigated_is_a_duty_conflict() -> None:
    flow = FLOWS["inspection"]
    m = Matter(flow).step("case_filed").step("investigation", official="O-1")
    m.step("case_review", official="O-1").step("decide").step("decision_served").conclude()
    assert kinds(m.check()) == [("duty_conflict", None)]


# --- deadlines --------------------------------------------------------------------------------


def _invoice_book_concluded_at(ts: str) -> list[ConformanceFinding]:
    # Accepted Wed 30 Sep 2026 16:00 CST; 5 working days -> due 24:00 CST Tue 13 Oct.
    m = Matter(FLOWS["invoice_book"], at="2026-09-30T08:00:00Z").steps()
    return m.at(ts).conclude().check()


def test_five_working_days_across_national_day_exactly_at_the_limit() -> None:
    assert _invoice_book_concluded_at("2026-10-13T16:00:00Z") == []


def test_five_working_days_across_national_day_one_second_late() -> None:
    findings = _invoice_book_concluded_at("2026-10-13T16:00:01Z")
    assert kinds(findings) == [("deadline_exceeded", "concluded")]
    assert "due 2026-10-13T16:00:00Z" in findings[0].detail


def test_the_make_up_saturday_counts_towards_the_limit() -> None:
    # 3 working days after 30 Sep end on Sat 10 Oct (a make-up working day): a matter with a
    # 3-day limit concluded on Mon 12 Oct is late.
    assert CAL.due_at("2026-09-30T08:00:00Z", 3, "working") == parse_ts("2026-10-10T16:00:00Z")


def test_same_day_registration() -> None:
    flow = FLOWS["registration"]
    ok = Matter(flow, at="2026-03-02T08:00:00Z").step("review").at("2026-03-02T15:59:59Z")
    assert ok.conclude().check() == []
    late = Matter(flow, at="2026-03-02T08:00:00Z").step("review").at("2026-03-02T16:00:01Z")
    assert kinds(late.conclude().check()) == [("deadline_exceeded", "concluded")]


def test_an_open_matter_is_late_only_with_as_of() -> None:
    m = Matter(FLOWS["refund_discovered"], at="2026-03-02T01:00:00Z").step("refund_check")
    assert m.check() == []
    assert m.check(as_of="2026-03-12T16:00:00Z") == []  # 10 natural days: due 12 Mar 24:00
    findings = m.check(as_of="2026-03-12T16:00:01Z")
    assert findings == [
        ConformanceFinding(
            "deadline_exceeded",
            "concluded",
            None,
            "10 natural days (+0 extension) from accepted: due 2026-03-12T16:00:00Z, "
            "open at as_of 2026-03-12T16:00:01Z",
        )
    ]


def test_natural_limit_ending_on_a_holiday_rolls_to_the_next_working_day() -> None:
    # Refund found on Thu 24 Sep 2026: day 10 is Sun 4 Oct (holiday) -> due 24:00 CST 8 Oct.
    m = Matter(FLOWS["refund_discovered"], at="2026-09-24T02:00:00Z").steps()
    assert m.at("2026-10-08T09:00:00Z").conclude().check() == []


def _licence(extensions: list[tuple[str, int]], concluded: str) -> list[ConformanceFinding]:
    # Accepted Mon 2 Mar 2026: 20 working days -> Mon 30 Mar; +10 -> Tue 14 Apr (Mon 6 Apr is
    # the Qingming holiday).
    m = Matter(FLOWS["licence"], at="2026-03-02T01:00:00Z").step("review")
    for at, days in extensions:
        m.at(at).extend(days)
    m.step("approve").step("decide").step("license_document")
    return m.at(concluded).conclude().check()


def test_an_approved_extension_moves_the_deadline() -> None:
    assert _licence([], "2026-03-30T16:00:00Z") == []
    assert kinds(_licence([], "2026-04-01T02:00:00Z")) == [("deadline_exceeded", "concluded")]
    assert _licence([("2026-03-20T02:00:00Z", 10)], "2026-04-14T16:00:00Z") == []
    late = _licence([("2026-03-20T02:00:00Z", 10)], "2026-04-14T16:00:01Z")
    assert kinds(late) == [("deadline_exceeded", "concluded")]
    assert "(+10 extension)" in late[0].detail


def test_extensions_count_only_up_to_the_flow_allowance() -> None:
    # 8 + 8 asked, 10 allowed: due 14 Apr (16 would give 22 Apr).
    extensions = [("2026-03-20T02:00:00Z", 8), ("2026-03-23T02:00:00Z", 8)]
    assert _licence(extensions, "2026-04-14T16:00:00Z") == []
    findings = _licence(extensions, "2026-04-15T02:00:00Z")
    assert kinds(findings) == [("deadline_exceeded", "concluded")]
    assert "(+10 extension)" in findings[0].detail


def test_an_extension_approved_after_the_deadline_does_not_count() -> None:
    findings = _licence([("2026-03-31T02:00:00Z", 10)], "2026-04-02T02:00:00Z")
    assert kinds(findings) == [("deadline_exceeded", "concluded")]


def test_penalty_limit_runs_from_filing_to_decision() -> None:
    flow = FLOWS["penalty"]

    def run(decided_at: str) -> list[ConformanceFinding]:
        m = Matter(flow, at="2026-01-05T02:00:00Z")
        m.at("2026-03-02T02:00:00Z").step("case_filed")  # 90 days -> Sun 31 May -> Mon 1 Jun
        m.step("investigation").step("case_review").step("penalty_notice")
        m.at(decided_at).step("penalty_decided")
        m.step("decision_served").at("2026-09-01T02:00:00Z").step("penalty_executed")
        return m.conclude().check()

    assert run("2026-06-01T15:00:00Z") == []
    findings = run("2026-06-01T16:00:01Z")
    assert kinds(findings) == [("deadline_exceeded", "penalty_decided")]
    assert findings[0].seq == 6


def test_a_withdrawal_after_the_due_time_is_late() -> None:
    m = Matter(FLOWS["invoice_book"], at="2026-03-02T01:00:00Z").step("review")
    assert kinds(m.at("2026-03-20T01:00:00Z").withdraw().check()) == [
        ("deadline_exceeded", "concluded")
    ]


def test_a_date_outside_the_calendar_is_reported_not_guessed() -> None:
    m = Matter(FLOWS["invoice_book"], at="2027-12-28T01:00:00Z").steps()
    findings = m.at("2028-01-10T01:00:00Z").conclude().check()
    assert kinds(findings) == [("deadline_unknown", "concluded")]


# --- flow pinning -----------------------------------------------------------------------------


def test_a_matter_pinned_to_an_unknown_hash_is_reported() -> None:
    flow = FLOWS["invoice_book"]
    pin = dict(flow.pin(), hash="0" * 64)
    findings = Matter(flow, pin=pin).steps().conclude().check()
    assert kinds(findings) == [("unknown_flow", None)]
    assert flow.hash in findings[0].detail


def test_a_matter_pinned_to_an_unknown_version_is_reported() -> None:
    flow = FLOWS["invoice_book"]
    findings = Matter(flow, pin=dict(flow.pin(), version=99)).conclude().check()
    assert kinds(findings) == [("unknown_flow", None)]


def test_a_flow_of_another_matter_type_is_reported() -> None:
    m = Matter(FLOWS["invoice_book"], pin=FLOWS["licence"].pin()).steps().conclude()
    assert kinds(m.check()) == [("unknown_flow", None)]


def test_without_a_pin_the_latest_flow_for_the_matter_type_applies() -> None:
    m = Matter(FLOWS["invoice_book"]).step("review").step("approve").conclude()
    del m.events[0]["data"]["flow"]
    assert kinds(m.check()) == [("missing_step", "issue")]


def test_no_acceptance_is_an_unknown_flow() -> None:
    m = Matter(FLOWS["invoice_book"]).steps().conclude()
    findings = check_matter(m.events[1:], FLOWS, CAL)
    assert kinds(findings) == [("unknown_flow", None)]


def test_an_edited_flow_file_no_longer_matches_old_pins(tmp_path: Path) -> None:
    directory = tmp_path / "flows"
    shutil.copytree(Path(ledger.__file__).parent / "flows", directory)
    path = directory / "invoice_book.v1.yaml"
    path.write_bytes(path.read_bytes() + b"\n")  # one byte added, same meaning
    edited = load_flows(directory)
    m = Matter(FLOWS["invoice_book"]).steps().conclude()  # pinned to the packaged bytes
    findings = check_matter(m.events, edited, CAL)
    assert kinds(findings) == [("unknown_flow", None)]


def test_an_older_pinned_version_is_judged_by_its_own_definition(tmp_path: Path) -> None:
    directory = tmp_path / "flows"
    shutil.copytree(Path(ledger.__file__).parent / "flows", directory)
    v1 = (directory / "invoice_book.v1.yaml").read_text("utf-8")
    v2 = v1.replace("version: 1", "version: 2").replace(
        "mandatory: true, after: [approve]}", "mandatory: false, after: [approve]}"
    )
    (directory / "invoice_book.v2.yaml").write_text(v2, "utf-8")
    versions = load_flow_versions(directory)
    old, new = versions[("invoice_book", 1)], versions[("invoice_book", 2)]
    no_issue_old = Matter(old).step("review").step("approve").conclude()
    no_issue_new = Matter(new).step("review").step("approve").conclude()
    assert kinds(check_matter(no_issue_old.events, versions, CAL)) == [("missing_step", "issue")]
    assert check_matter(no_issue_new.events, versions, CAL) == []
    # With only the latest versions loaded, the v1 pin is unknown.
    assert kinds(check_matter(no_issue_old.events, load_flows(directory), CAL)) == [
        ("unknown_flow", None)
    ]


def test_findings_are_deterministic_and_in_stream_order() -> None:
    flow = FLOWS["invoice_book"]
    m = Matter(flow, at="2026-03-02T01:00:00Z")
    m.events[0]["actor"]["official"] = "O-same"
    m.step("approve", official="O-same").step("review", role="handler").at("2026-03-31T01:00:00Z")
    m.conclude()
    first = m.check()
    assert first == m.check()
    assert [f.seq for f in first] == sorted(f.seq for f in first)
    assert {f.kind for f in first} == {
        "duty_conflict",
        "out_of_order",
        "unauthorised_actor",
        "missing_step",
        "deadline_exceeded",
    }
