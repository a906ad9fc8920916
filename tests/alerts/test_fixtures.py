"""The rule fixtures (alerts/rules/tests/), through the `neikong rules test` machinery."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from alerts.errors import RuleError
from alerts.fixtures import fixture_files, run_fixture
from alerts.rules import RULES_DIR

FIXTURES = fixture_files()


def test_every_rule_has_fixtures() -> None:
    ids = {p.parent.name for p in FIXTURES}
    assert {p.stem for p in RULES_DIR.glob("[1-4c]*/*.yaml")} <= ids


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fixture_passes(path: Path) -> None:
    result = run_fixture(path)
    assert result.ok, "\n".join(result.failures)


def _copy_rules(tmp_path: Path) -> Path:
    return Path(shutil.copytree(RULES_DIR, tmp_path / "rules"))


def _edit_fixture(base: Path, name: str, change: object) -> Path:
    path = base / "tests" / name
    doc = yaml.safe_load(path.read_text("utf-8"))
    change(doc)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    return path


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    base = _copy_rules(tmp_path)

    def wrong_level(doc: dict) -> None:
        doc["expect"][1]["warnings"][0]["level"] = "orange"  # it is yellow at "23d"

    path = _edit_fixture(base, "R05-processing-deadline/positive.yaml", wrong_level)
    result = run_fixture(path, base)
    assert not result.ok
    assert any("is yellow, expected orange" in f for f in result.failures)


def test_a_missing_warning_and_an_unexpected_one_fail(tmp_path: Path) -> None:
    base = _copy_rules(tmp_path)

    def drop_conclusion(doc: dict) -> None:  # M2 no longer concludes: it warns too
        doc["input_events"] = [e for e in doc["input_events"] if e["event"] != "matter.concluded"]

    path = _edit_fixture(base, "R05-processing-deadline/positive.yaml", drop_conclusion)
    failures = run_fixture(path, base).failures
    assert any(
        "unexpected open warning R05-processing-deadline matter/4403-xk/2026-2" in f
        for f in failures
    )
    assert any("expected no warning for matter/4403-xk/2026-2" in f for f in failures)


def test_an_expired_exception_no_longer_applies(tmp_path: Path) -> None:
    base = _copy_rules(tmp_path)
    rule = base / "1" / "R04-same-person-handles-and-approves.yaml"
    rule.write_text(rule.read_text("utf-8").replace("expires: 2026-06-30", "expires: 2026-06-29"))
    failures = run_fixture(
        base / "tests/R04-same-person-handles-and-approves/exception.yaml", base
    ).failures
    assert failures == [
        "tests/R04-same-person-handles-and-approves/exception.yaml @ 3d: unexpected open warning"
        " R04-same-person-handles-and-approves matter/4403-fp/2026-7 (orange)",
        "tests/R04-same-person-handles-and-approves/exception.yaml @ 3d: expected no warning for"
        " matter/4403-fp/2026-7",
    ]


def test_a_malformed_fixture_is_a_rule_error(tmp_path: Path) -> None:
    base = _copy_rules(tmp_path)
    path = base / "tests" / "R07-frequent-invoice-quota-increase" / "broken.yaml"
    path.write_text("rule: R07\ninput_events: []\n", "utf-8")  # no start date
    with pytest.raises(RuleError, match="malformed fixture"):
        run_fixture(path, base)


def test_cli_rules_test_exit_codes(tmp_path: Path) -> None:
    from ops.cli import main

    ok = CliRunner().invoke(main, ["rules", "test"])
    assert ok.exit_code == 0, ok.output
    assert f"{len(FIXTURES)} passed, 0 failed" in ok.output
    base = _copy_rules(tmp_path)

    def wrong_key(doc: dict) -> None:
        doc["expect"][1]["warnings"][0]["key"] = "T9"

    _edit_fixture(base, "R07-frequent-invoice-quota-increase/threshold.yaml", wrong_key)
    bad = CliRunner().invoke(main, ["rules", "test", "--rules", str(base), "--rule", "R07"])
    assert bad.exit_code == 1
    assert "FAIL tests/R07-frequent-invoice-quota-increase/threshold.yaml" in bad.output
