"""Rule files: schema rejection, parameters and overrides, hashes, and the versioning lint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from alerts.errors import RuleError
from alerts.lint import lint_rules, write_lock
from alerts.rules import RULES_DIR, load_ruleset, semantics_hash

R04 = "1/R04-same-person-handles-and-approves.yaml"
R05 = "2/R05-processing-deadline.yaml"
R07 = "2/R07-frequent-invoice-quota-increase.yaml"


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    return Path(shutil.copytree(RULES_DIR, tmp_path / "rules"))


def _replace(base: Path, rel: str, old: str, new: str) -> None:
    path = base / rel
    text = path.read_text("utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), "utf-8")


def test_the_packaged_rules_load() -> None:
    ruleset = load_ruleset()
    assert {r.id.split("-")[0] for r in ruleset} >= {"R04", "R05", "R07", "R22", "R24"}
    assert {r.kind for r in ruleset} >= {"sequence", "absence", "threshold", "escalation"}
    assert len(ruleset.ruleset_hash) == 64


@pytest.mark.parametrize(
    ("rel", "old", "new", "message"),
    [
        (R05, "  within: {param: limits, by: data.matter_type}\n", "", '"within" is a required'),
        (R05, "kind: absence", "kind: eventually", "match"),
        (R04, "{eq: [type", "{python: [type", "python"),
        (R07, "{fact: quota_increase}", "{fact: looks_suspicious}", "looks_suspicious"),
        (
            R07,
            "- {eq: [data.matter_type, invoice_quota_change]}",
            "- \"data.matter_type == 'invoice_quota_change'\"",
            "match",
        ),
        (R05, 'value: "0.8"', "value: 0.8", "float"),
        (R05, "grade: 2", "grade: 5", "grade"),
        (R07, "version: 1", "version: 0", "version"),
        (R05, "blocking: false\n", "", '"blocking" is a required'),
        (R05, "{param: warn_fraction}", "{param: warn_share}", "undeclared parameter 'warn_share'"),
        (R07, "value: 3", "value: three", "must be a int"),
    ],
    ids=[
        "absence-without-within",
        "unknown-kind",
        "unknown-operator",
        "unknown-fact",
        "python-string-condition",
        "float-ratio",
        "grade-out-of-range",
        "version-zero",
        "missing-blocking",
        "undeclared-param",
        "param-type",
    ],
)
def test_malformed_rule_files_are_rejected(
    rules: Path, rel: str, old: str, new: str, message: str
) -> None:
    _replace(rules, rel, old, new)
    with pytest.raises(RuleError, match=message.replace("(", r"\(")):
        load_ruleset(rules)


def test_a_rule_under_the_wrong_grade_directory_is_rejected(rules: Path) -> None:
    (rules / R07).rename(rules / "1" / Path(R07).name)
    with pytest.raises(RuleError, match="grade 2 but the file is under 1/"):
        load_ruleset(rules)


def test_region_overrides_are_typed_and_named(rules: Path) -> None:
    assert (
        load_ruleset(rules, "4403").get("R05-processing-deadline").params["warn_fraction"] == "0.75"
    )
    assert load_ruleset(rules).get("R05-processing-deadline").params["warn_fraction"] == "0.8"
    assert load_ruleset(rules, "4403").ruleset_hash != load_ruleset(rules).ruleset_hash
    _replace(rules, "overrides/4403.yaml", 'warn_fraction: "0.75"', "warn_fraction: lots")
    with pytest.raises(RuleError, match="must be a ratio"):
        load_ruleset(rules, "4403")
    _replace(rules, "overrides/4403.yaml", "warn_fraction: lots", 'warn_share: "0.5"')
    with pytest.raises(RuleError, match="has no parameter 'warn_share'"):
        load_ruleset(rules, "4403")
    _replace(rules, "overrides/4403.yaml", "versions: [1, 2]", "versions: [1]")  # not this version
    assert (
        load_ruleset(rules, "4403").get("R05-processing-deadline").params["warn_fraction"] == "0.8"
    )


def test_ruleset_hash_ignores_layout_and_follows_values(rules: Path) -> None:
    before = load_ruleset(rules).ruleset_hash
    _replace(rules, R05, "title: 办理时限预警", "# a comment\ntitle:    办理时限预警")
    assert load_ruleset(rules).ruleset_hash == before
    _replace(rules, R05, "days: 20, calendar: working", "days: 21, calendar: working")
    assert load_ruleset(rules).ruleset_hash != before


def test_semantics_hash_ignores_prose_and_follows_meaning() -> None:
    doc = json.loads(json.dumps(load_ruleset().get("R07-frequent-invoice-quota-increase").doc))
    base = semantics_hash(doc)
    assert semantics_hash({**doc, "title": "other", "status": "stable", "version": 9}) == base
    doc["params"]["min_count"]["doc"] = "reworded"
    assert semantics_hash(doc) == base
    doc["params"]["min_count"]["value"] = 4
    assert semantics_hash(doc) != base


def test_the_packaged_rules_match_their_lock() -> None:
    report = lint_rules()
    assert report.problems == []
    assert report.pending == []


def test_lint_refuses_a_semantic_change_without_a_version_bump(rules: Path) -> None:
    _replace(rules, R07, "value: 3", "value: 4")
    report = lint_rules(rules)
    assert report.problems == [
        "R07-frequent-invoice-quota-increase: semantics changed without a version bump (version 1);"
        " bump `version` and run `neikong rules lint --write-lock`"
    ]
    _replace(rules, R07, "version: 1", "version: 2")
    report = lint_rules(rules)
    assert report.ok
    assert report.pending == ["R07-frequent-invoice-quota-increase: version 1 -> 2"]
    write_lock(rules)
    assert lint_rules(rules).pending == []


def test_lint_accepts_a_prose_change_and_refuses_a_deletion(rules: Path) -> None:
    _replace(rules, R07, "title: 频繁申请增版增量", "title: 频繁申请增版增量 (reworded)")
    assert lint_rules(rules).ok
    (rules / R07).unlink()
    assert lint_rules(rules).problems == [
        "R07-frequent-invoice-quota-increase: rule file deleted; keep it with status: deprecated"
        " instead"
    ]


def test_a_deprecated_rule_is_kept_for_lint_but_not_loaded(rules: Path) -> None:
    _replace(rules, R07, "status: test", "status: deprecated")
    assert lint_rules(rules).ok
    assert "R07-frequent-invoice-quota-increase" not in {r.id for r in load_ruleset(rules)}


def test_cli_rules_lint_exit_codes(rules: Path) -> None:
    from ops.cli import main

    assert CliRunner().invoke(main, ["rules", "lint"]).exit_code == 0
    _replace(rules, R05, 'value: "0.8"', 'value: "0.9"')
    result = CliRunner().invoke(main, ["rules", "lint", "--rules", str(rules)])
    assert result.exit_code == 1
    assert "R05-processing-deadline: semantics changed without a version bump" in result.output


def test_the_rule_schema_names_exactly_the_facts_that_exist() -> None:
    import json

    from alerts.predicates import FACTS

    schema = json.loads((Path(__file__).parents[2] / "alerts" / "rule.schema.json").read_text())

    def fact_enums(node: object) -> list[list[str]]:
        found: list[list[str]] = []
        if isinstance(node, dict):
            fact = node.get("fact")
            if isinstance(fact, dict) and isinstance(fact.get("enum"), list):
                found.append(fact["enum"])
            for value in node.values():
                found += fact_enums(value)
        elif isinstance(node, list):
            for value in node:
                found += fact_enums(value)
        return found

    enums = fact_enums(schema)
    assert enums, "the schema lists the fact names a rule may use"
    for names in enums:
        assert set(names) == set(FACTS)
