"""Rules R13–R21, R23, R25: their fixtures, a wrong expectation failing, and what fixtures
cannot express (the outlier statistic, the facts on malformed input, the deadline function)."""

from __future__ import annotations

import shutil
from datetime import date
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from alerts.facts_penalty import PENALTY_DEADLINES, PENALTY_FACTS
from alerts.fixtures import fixture_files, run_fixture
from alerts.outlier import outlier_verdict
from alerts.rules import RULES_DIR, load_ruleset

MINE = (
    "R13-",
    "R14-",
    "R15-",
    "R16-",
    "R17-",
    "R18-",
    "R19-",
    "R20-",
    "R21-",
    "R23-",
    "R25-",
)
FIXTURES = [p for p in fixture_files() if p.parent.name.startswith(MINE)]


def test_every_rule_of_mine_has_fixtures() -> None:
    ids = [r.id for r in load_ruleset() if r.id.startswith(MINE)]
    assert len(ids) == 15
    with_fixtures = {p.parent.name for p in FIXTURES}
    assert set(ids) == with_fixtures
    blocking = {r.id for r in load_ruleset() if r.id.startswith(MINE) and r.blocking}
    assert blocking == {
        "R14-hearing-right-violation",
        "R14-hearing-not-held",
        "R16-penalty-without-review",
    }


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture(path: Path) -> None:
    result = run_fixture(path)
    assert result.ok, "\n".join(result.failures)


def _mutated(tmp_path: Path, path: Path, mutate: object) -> Path:
    base = tmp_path / "rules"
    shutil.copytree(RULES_DIR, base, ignore=shutil.ignore_patterns("tests"))
    shutil.copytree(RULES_DIR / "tests" / "calendars", base / "tests" / "calendars")
    doc = yaml.safe_load(path.read_text("utf-8"))
    mutate(doc)  # type: ignore[operator]
    target = base / "tests" / path.parent.name / path.name
    target.parent.mkdir(parents=True)
    target.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    return target


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_wrong_expectation_fails(tmp_path: Path, path: Path) -> None:
    """Each fixture can fail: drop the expected warnings of its last check, or claim a
    warning the rule did not raise."""

    def mutate(doc: dict[str, object]) -> None:
        last = doc["expect"][-1]  # type: ignore[index]
        if last.get("warnings"):
            w = last["warnings"][0]
            w["level"] = "blue" if w["level"] != "blue" else "red"
        else:
            last["warnings"] = [{"rule": doc.get("rule"), "key": "nobody", "level": "red"}]

    target = _mutated(tmp_path, path, mutate)
    assert not run_fixture(target, tmp_path / "rules").ok


def test_fixture_fails_when_the_threshold_parameter_changes(tmp_path: Path) -> None:
    """R14's fixture depends on the entity threshold: raising it silences M1."""
    base = tmp_path / "rules"
    shutil.copytree(RULES_DIR, base)
    rule = base / "3" / "R14-hearing-right-violation.yaml"
    rule.write_text(
        rule.read_text("utf-8").replace('value: "10000.00"', 'value: "10000.01"'), "utf-8"
    )
    result = run_fixture(
        base / "tests" / "R14-hearing-right-violation" / "hearing_rights.yaml", base
    )
    assert any("matter/4403-jc/2026-1" in f for f in result.failures)


def _cases(*rows: tuple[str, str]) -> list[list[object]]:
    return [[i, f"e{i}", who, value] for i, (who, value) in enumerate(rows)]


def test_outlier_needs_min_cases_and_peers() -> None:
    peers = [(p, "0.75") for p in ("P1", "P2", "P3") for _ in range(5)]
    four = _cases(*peers, *[("O", "0.5")] * 4)
    assert outlier_verdict(four, "O", min_cases=5, min_peers=3, sigmas=Fraction(2)) is None
    five = _cases(*peers, *[("O", "0.5")] * 5)
    hits = outlier_verdict(five, "O", min_cases=5, min_peers=3, sigmas=Fraction(2))
    assert hits == [f"e{i}" for i in range(15, 20)]
    assert outlier_verdict(five, "O", min_cases=5, min_peers=4, sigmas=Fraction(2)) is None


def test_outlier_bound_is_strict_and_exact() -> None:
    """Peer means 0.7 and 0.9: mean 0.8, σ = 0.1 exactly; 2σ below is 0.6."""
    rows = [("P1", "0.7")] * 5 + [("P2", "0.9")] * 5
    at = _cases(*rows, *[("O", "0.6")] * 5)
    below = _cases(*rows, *[("O", "0.599999")] * 5)
    assert outlier_verdict(at, "O", min_cases=5, min_peers=2, sigmas=Fraction(2)) is None
    assert outlier_verdict(below, "O", min_cases=5, min_peers=2, sigmas=Fraction(2)) is not None
    higher = _cases(*rows, *[("O", "2.0")] * 5)
    assert outlier_verdict(higher, "O", min_cases=5, min_peers=2, sigmas=Fraction(0)) is None


def test_outlier_ignores_malformed_values_and_peers_below_min_cases() -> None:
    rows = [("P1", "0.8")] * 5 + [("P2", "0.8")] * 5 + [("P3", "0.1")] * 4
    cases = _cases(*rows, *[("O", "0.5")] * 5, ("O", "not-a-number"))
    assert outlier_verdict(cases, "O", min_cases=5, min_peers=2, sigmas=Fraction(2)) is not None


def _decided(**data: object) -> dict[str, object]:
    base: dict[str, object] = {
        "fine": "1000.00",
        "ratio": "0.50",
        "violation_code": "tax_evasion",
        "circumstances": "uncooperative",
        "party_kind": "entity",
        "benchmark": {"region": "4403", "version": 1},
    }
    base.update(data)
    return {"type": "matter.penalty_decided", "data": base}


def test_benchmark_facts_are_total_and_pick_the_longest_prefix() -> None:
    rule = load_ruleset().get("R13-penalty-outside-benchmark")
    fact = PENALTY_FACTS["ratio_outside_benchmark"]
    assert not fact(_decided(), rule.params)
    assert fact(_decided(ratio="0.49"), rule.params)
    assert not fact(_decided(ratio="garbage"), rule.params)
    assert not fact(_decided(benchmark=None), rule.params)
    assert not fact(_decided(circumstances="unknown"), rule.params)
    assert not fact(_decided(violation_code="late_registration", ratio="9"), rule.params)
    local = {
        "benchmarks": [
            *rule.params["benchmarks"],
            {
                "region": "4403",
                "version": 1,
                "violation_code": "tax_evasion",
                "tiers": {"uncooperative": ["0.6", "1"]},
            },
        ]
    }
    assert fact(_decided(ratio="0.55"), local)  # the Shenzhen table overrides Guangdong's
    assert not fact(_decided(ratio="0.55", benchmark={"region": "4401", "version": 1}), local)


def test_hearing_and_vote_facts() -> None:
    params = load_ruleset().get("R14-hearing-right-violation").params
    reached = PENALTY_FACTS["hearing_threshold_reached"]
    assert reached(_decided(fine="10000.00"), params)
    assert not reached(_decided(fine="9999.99"), params)
    assert reached(_decided(fine="2000.00", party_kind="individual"), params)
    assert not reached(_decided(fine="1999.99", party_kind="individual"), params)
    assert not reached(_decided(fine=None), params)
    share = PENALTY_FACTS["incompetent_share_reached"]
    third = {"incompetent_share": "1/3"}
    votes = {"excellent": 0, "competent": 8, "basically_competent": 0, "incompetent": 4}
    assert share({"data": {"votes": votes}}, third)
    assert not share({"data": {"votes": {**votes, "competent": 9}}}, third)
    assert not share({"data": {"votes": dict.fromkeys(votes, 0)}}, third)
    assert not share({"data": {"votes": "many"}}, third)
    found = PENALTY_FACTS["concealment_found"]
    assert found({"data": {"findings": [{"item_code": "4.3", "finding": "concealment"}]}}, {})
    assert not found({"data": {"findings": [{"item_code": "4.3", "finding": "omission"}]}}, {})
    assert not found({"data": {"findings": None}}, {})


def test_annual_report_deadline() -> None:
    due = PENALTY_DEADLINES["annual_report_due"]
    params = {"annual_due": "01-31"}
    annual = {
        "type": "declaration.personal_matters_reported",
        "data": {"year": 2025, "kind": "annual"},
    }
    change = {
        "type": "declaration.personal_matters_reported",
        "data": {"year": 2025, "kind": "change"},
    }
    appointed = {"type": "personnel.appointed", "data": {"effective_on": "2026-01-10"}}
    assert due(annual, params) == date(2027, 1, 31)
    assert due(change, params) == date(2026, 1, 31)
    assert due(appointed, params) == date(2027, 1, 31)
    assert due({"type": "personnel.appointed", "data": {}}, params) is None
    assert due({"type": "declaration.income_declared", "data": {"year": "x"}}, params) is None
    assert due(annual, {"annual_due": "02-30"}) is None
