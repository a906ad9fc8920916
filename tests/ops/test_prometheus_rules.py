"""ops/prometheus: the alert rules and the scrape config, checked and unit-tested with the real
promtool; every alert covered (firing, not firing, pending), labelled and with a runbook."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.metrics import DEFAULT_METRICS_PORTS
from tests.ops._monitoring import (
    PROMETHEUS_DIR,
    ROOT,
    alert_rules,
    load_rules,
    require_tool,
    run,
)

TEST_FILES = ["tests.yml", "tests-calendar.yml"]
# the alerts DOMAIN.md §5.2 asks for, plus the ingest ones of the brief
REQUIRED_ALERTS = {
    "NeikongDetectorDown",
    "NeikongDetectorLagHigh",
    "NeikongNoEventsDuringWorkHours",
    "NeikongLedgerIntegrityFailure",
    "NeikongSnapshotStale",
    "NeikongRedWarningOpen",
    "NeikongRectificationOverdue",
    "NeikongWarningStorm",
    "NeikongIngestDeadLettersRising",
    "NeikongIngestConsumerLagHigh",
    "NeikongDeclarationsOverdue",
}
BUSINESS_GROUP = "neikong-business-aggregates"


def _duration_s(text: str) -> int:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    assert parts, text
    assert "".join(n + u for n, u in parts) == text, text
    return int(sum(int(n) * units[u] for n, u in parts))


def _unit_tests() -> list[dict[str, Any]]:
    tests = []
    for name in TEST_FILES:
        doc = yaml.safe_load((PROMETHEUS_DIR / name).read_text(encoding="utf-8"))
        assert doc["rule_files"] == ["neikong.rules.yml"]
        tests += doc["tests"]
    return tests


# ----------------------------------------------------------------------------- promtool


def test_rules_pass_promtool_check() -> None:
    promtool = require_tool("promtool")
    result = run([promtool, "check", "rules", "neikong.rules.yml"], cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_rule_unit_tests_pass() -> None:
    promtool = require_tool("promtool")
    result = run([promtool, "test", "rules", *TEST_FILES], cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TEST_FILES)


def test_unit_tests_catch_a_missing_pending_window(tmp_path: Path) -> None:
    """Mutation check: without their `for:` (and keep_firing_for) the rules fail the unit
    tests, for every alert that has one, so the pending checks are real."""
    promtool = require_tool("promtool")
    shutil.copy(PROMETHEUS_DIR / "tests.yml", tmp_path / "tests.yml")
    mutated = re.sub(
        r"^\s+(for|keep_firing_for): .*\n",
        "",
        (PROMETHEUS_DIR / "neikong.rules.yml").read_text(encoding="utf-8"),
        flags=re.MULTILINE,
    )
    (tmp_path / "neikong.rules.yml").write_text(mutated, encoding="utf-8")
    result = run([promtool, "test", "rules", "tests.yml"], cwd=tmp_path)
    assert result.returncode != 0
    with_for = [r["alert"] for r in alert_rules() if "for" in r]
    assert len(with_for) >= 10
    for alert in with_for:
        assert f"alertname: {alert}," in result.stdout + result.stderr, alert


def test_scrape_config_passes_promtool_and_scrapes_the_services_on_loopback() -> None:
    promtool = require_tool("promtool")
    result = run([promtool, "check", "config", "prometheus.yml"], cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout

    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    assert config["rule_files"] == ["neikong.rules.yml"]
    jobs = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert jobs == {job: [f"127.0.0.1:{port}"] for job, port in DEFAULT_METRICS_PORTS.items()}
    assert set(jobs) == {"neikong-detector", "neikong-ingest", "neikong-serve"}


# --------------------------------------------------------------------------- the rules


def test_required_alerts_exist_and_names_are_unique() -> None:
    names = [r["alert"] for r in alert_rules()]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED_ALERTS
    assert all(n.startswith("Neikong") for n in names)


def test_every_alert_has_severity_summary_and_a_runbook() -> None:
    for rule in alert_rules():
        alert = rule["alert"]
        assert rule["labels"]["severity"] in {"page", "ticket"}, alert
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), alert
        runbook = ROOT / annotations["runbook"]
        assert runbook.is_file(), f"{alert}: {runbook} missing"
        text = runbook.read_text(encoding="utf-8")
        assert text.startswith(f"# {alert}\n"), alert
        for section in ("## What it means", "## What to check", "## What to do"):
            assert section in text, f"{runbook.name}: {section} missing"
        severity = rule["labels"]["severity"]
        assert f"Severity: **{severity}**" in text, runbook.name


def test_every_runbook_belongs_to_an_alert() -> None:
    linked = {Path(r["annotations"]["runbook"]).name for r in alert_rules()}
    pages = {p.name for p in (ROOT / "docs" / "runbooks").glob("*.md")} - {"README.md"}
    assert pages == linked
    index = (ROOT / "docs" / "runbooks" / "README.md").read_text(encoding="utf-8")
    for rule in alert_rules():
        assert rule["alert"] in index


def test_business_alerts_carry_a_grade() -> None:
    groups = {g["name"]: g["rules"] for g in load_rules()["groups"]}
    assert len(groups[BUSINESS_GROUP]) >= 4
    for rule in groups[BUSINESS_GROUP]:
        expr = re.sub(r"\s+", " ", rule["expr"])
        static = rule["labels"].get("grade")
        from_expr = re.search(r"by \(grade\)|group_left \(grade\)", expr)
        assert static in {"1", "2", "3", "4"} or from_expr, rule["alert"]
    # and no health/ingest alert pretends to be graded (they are routed without one)
    for name, rules in groups.items():
        if name != BUSINESS_GROUP:
            for rule in rules:
                assert "grade" not in rule["labels"], rule["alert"]
                assert "grade" not in re.sub(r"\s+", " ", rule["expr"]), rule["alert"]


def test_every_alert_is_unit_tested_firing_not_firing_and_pending() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    pending: set[str] = set()
    for test in _unit_tests():
        checks: dict[str, list[tuple[int, bool]]] = {}
        for check in test["alert_rule_test"]:
            firing = bool(check.get("exp_alerts"))
            checks.setdefault(check["alertname"], []).append(
                (_duration_s(check["eval_time"]), firing)
            )
            (fires if firing else quiet).add(check["alertname"])
            for exp in check.get("exp_alerts", []):
                assert "severity" in exp["exp_labels"], (test["name"], check["alertname"])
        for alert, evals in checks.items():
            first_firing = min((t for t, f in evals if f), default=None)
            if first_firing is not None and any(not f and t < first_firing for t, f in evals):
                pending.add(alert)
    names = {r["alert"] for r in alert_rules()}
    assert names - fires == set(), "alerts never seen firing"
    assert names - quiet == set(), "alerts never checked quiet"
    with_for = {r["alert"] for r in alert_rules() if "for" in r}
    assert with_for - pending == set(), "alerts with `for` but no pending check before firing"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_for_windows_are_sane(rule: dict[str, Any]) -> None:
    if "for" in rule:
        assert 60 <= _duration_s(rule["for"]) <= 3 * 3600
    if "keep_firing_for" in rule:
        assert _duration_s(rule["keep_firing_for"]) <= 3 * 3600
