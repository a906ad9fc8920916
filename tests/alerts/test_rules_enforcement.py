"""Rules R01–R03, R06, R08–R12 (grades 1–2): their fixtures, mutation checks that a wrong
expectation fails, and the facts and engine features the fixtures cannot reach directly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from alerts.calendar import default_calendar
from alerts.engine import Engine
from alerts.facts_enforcement import ENFORCEMENT_FACTS
from alerts.fixtures import fixture_files, run_fixture
from alerts.rules import RULES_DIR, load_ruleset
from alerts.state import DetectorState
from projections.base import LoggedEvent

MINE = ("R01", "R02", "R03", "R06", "R08", "R09", "R10", "R11", "R12")
FIXTURES = [p for p in fixture_files() if p.parent.name.split("-")[0] in MINE]


def test_every_rule_of_mine_loads_with_its_fixtures() -> None:
    rules = [r for r in load_ruleset() if r.id.split("-")[0] in MINE]
    assert {r.id.split("-")[0] for r in rules} == set(MINE)
    dirs = {p.parent.name for p in FIXTURES}
    for rule in rules:
        assert rule.id in dirs, rule.id
        assert rule.doc["exceptions"], f"{rule.id} has no exception to test"
    blocking = {r.id.split("-")[0] for r in rules if r.blocking}
    assert blocking == {"R01", "R02", "R03", "R06", "R12"}
    assert [r.id for r in rules if r.blocking and r.id.startswith("R12")] == [
        "R12-refund-fast-track"
    ]


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fixture_passes(path: Path) -> None:
    result = run_fixture(path)
    assert result.ok, "\n".join(result.failures)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_wrong_expectation_fails(path: Path, tmp_path: Path) -> None:
    """Mutation check: flipping the level of the last expected warning must fail the fixture."""
    base = Path(shutil.copytree(RULES_DIR, tmp_path / "rules"))
    target = base / "tests" / path.parent.name / path.name
    doc = yaml.safe_load(target.read_text("utf-8"))
    last = next(e for e in reversed(doc["expect"]) if e.get("warnings"))
    warning = last["warnings"][-1]
    warning["level"] = "blue" if warning["level"] != "blue" else "red"
    target.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    assert not run_fixture(target, base).ok


def _usage(period: str, amount: str, **extra: object) -> dict[str, object]:
    return {"period": period, "amount": amount, "invoices": 100, "voided": 0, **extra}


def test_invoice_surge_needs_history_and_compares_exactly() -> None:
    surge = ENFORCEMENT_FACTS["invoice_surge"]
    params = {"surge_factor": "1.5", "min_history_months": 1}
    past = [{"type": "taxpayer.invoice_usage_reported", "data": _usage("2026-01", "100.00")}]
    view = {"data": _usage("2026-02", "150.01"), "history": past}
    assert surge(view, params)
    assert not surge({**view, "data": _usage("2026-02", "150.00")}, params)
    assert not surge({"data": _usage("2026-02", "900.00"), "history": []}, params)
    assert not surge({"data": {"amount": "not money"}, "history": past}, params)


def test_burden_periods_are_consecutive_across_a_year_end() -> None:
    low = ENFORCEMENT_FACTS["burden_low_consecutive"]
    params = {"burden_deviation": "0.3", "consecutive_periods": 2}

    def burden(period: str, ratio: str) -> dict[str, object]:
        return {
            "type": "taxpayer.tax_burden_computed",
            "data": {"period": period, "burden_ratio": ratio, "industry_warning_ratio": "0.02"},
        }

    assert low({**burden("2026-01", "0.01"), "history": [burden("2025-12", "0.01")]}, params)
    assert low({**burden("2026-Q1", "0.01"), "history": [burden("2025-Q4", "0.01")]}, params)
    assert not low({**burden("2026-01", "0.01"), "history": [burden("2025-11", "0.01")]}, params)
    assert not low({**burden("2026-01", "0.014"), "history": [burden("2025-12", "0.01")]}, params)


def test_approval_level_comes_from_the_pinned_flow() -> None:
    from ledger.flows import flow_for

    skipped = ENFORCEMENT_FACTS["approval_below_flow_level"]
    params = {"approval_steps": ["approve", "decide"]}
    flow = flow_for("max_invoice_amount")
    accepted = {
        "type": "matter.accepted",
        "data": {"matter_type": "max_invoice_amount", "flow": flow.pin()},
    }

    def approve(level: int) -> dict[str, object]:
        return {"type": "matter.step_completed", "data": {"step": "approve", "level": level}}

    view = {"type": "matter.concluded", "data": {}}
    assert flow.approval_level == 3
    assert skipped({**view, "history": [accepted, approve(2)]}, params)
    assert not skipped({**view, "history": [accepted, approve(3)]}, params)
    unknown = {**accepted, "data": {**accepted["data"], "flow": {**flow.pin(), "hash": "0" * 64}}}
    assert not skipped({**view, "history": [unknown]}, params)  # an unknown flow: not judged


def _event(position: int, stream: str, type_: str, data: dict[str, object]) -> LoggedEvent:
    return LoggedEvent(
        position,
        f"00000000-0000-4000-8000-{position:012d}",
        stream,
        position,
        type_,
        f"2026-03-0{2 + position // 10}T0{position % 10}:00:00Z",
        "fixture",
        {"official": "A1", "role": "approver", "unit": "4403-01"},
        {},
        data,
        {},
    )


def test_a_collective_record_fans_out_to_every_matter_and_history_is_forgotten() -> None:
    """key_for + list keys: one record reaches the history of each matter it lists; a
    conclusion drops the matter's history, so the snapshot stays bounded."""
    full = load_ruleset()
    engine = Engine(full.only(["R01-major-matter-few-deciders"]), default_calendar())
    m1, m2 = "matter/4403-xk/2026-1", "matter/4403-xk/2026-2"
    record = {"participants": ["L1", "L2", "L3"], "leadership_size": 5, "matters": [m1, m2]}
    events = [
        _event(1, m1, "matter.accepted", {"matter_type": "licence", "major": True}),
        _event(2, m2, "matter.accepted", {"matter_type": "licence", "major": True}),
        _event(3, "decision/4403-00/2026-1", "decision.collective_recorded", record),
    ]
    for event in events:
        assert engine.process(event, 2_000_000_000) == []
    kept = engine.state.rules["R01-major-matter-few-deciders#history"]
    assert [h["type"] for h in kept[m1]] == ["matter.accepted", "decision.collective_recorded"]
    assert [h["type"] for h in kept[m2]] == ["matter.accepted", "decision.collective_recorded"]
    assert engine.process(_event(4, m1, "matter.step_completed", {"step": "decide"}), 2**31) == []
    engine.process(_event(5, m1, "matter.concluded", {"outcome": "granted"}), 2**31)
    assert m1 not in kept
    assert m2 in kept
    restored = DetectorState.from_bytes(engine.state.to_bytes())
    assert restored.rules["R01-major-matter-few-deciders#history"] == kept
