"""`neikong rules lint`: the versioning discipline of the rule set (DOMAIN.md §5.1).

`alerts/rules/lock.json` maps each rule id to the version and semantics hash it was released
with. Lint fails when:

- a rule's semantics hash changed but its `version` did not (bump the version);
- a rule's version went down, or its `uuid` changed;
- a locked rule's file was deleted (set `status: deprecated` instead: ids are never reused);
- any file fails to load (schema or meaning).

A rule not yet in the lock, or a bumped one, is reported as pending; `write_lock` records the
current state (run it, and commit lock.json, together with the version bump).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerts.errors import RuleError
from alerts.rules import RULES_DIR, load_rule_file, rule_files, semantics_hash

__all__ = ["LOCK_FILE", "LintReport", "lint_rules", "write_lock"]

LOCK_FILE = "lock.json"


@dataclass
class LintReport:
    problems: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _current(base: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    rules: dict[str, dict[str, Any]] = {}
    problems = []
    for path in rule_files(base):
        try:
            doc, _ = load_rule_file(path, base)
        except RuleError as exc:
            problems.append(str(exc))
            continue
        rules[doc["id"]] = {
            "version": doc["version"],
            "uuid": doc["uuid"],
            "semantics_hash": semantics_hash(doc),
            "path": path.relative_to(base).as_posix(),
        }
    return rules, problems


def _lock(base: Path) -> dict[str, dict[str, Any]]:
    path = base / LOCK_FILE
    if not path.exists():
        return {}
    try:
        value = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise RuleError(f"{path}: unreadable lock file: {exc}") from exc
    return dict(value["rules"])


def lint_rules(base: Path = RULES_DIR) -> LintReport:
    current, problems = _current(base)
    report = LintReport(problems=problems, checked=len(current))
    for rule_id, locked in sorted(_lock(base).items()):
        now = current.get(rule_id)
        if now is None:
            if not any(rule_id in p for p in problems):
                report.problems.append(
                    f"{rule_id}: rule file deleted; keep it with status: deprecated instead"
                )
            continue
        if now["uuid"] != locked["uuid"]:
            report.problems.append(f"{rule_id}: uuid changed ({locked['uuid']} -> {now['uuid']})")
        if now["version"] < locked["version"]:
            report.problems.append(
                f"{rule_id}: version went down ({locked['version']} -> {now['version']})"
            )
        elif now["version"] == locked["version"]:
            if now["semantics_hash"] != locked["semantics_hash"]:
                report.problems.append(
                    f"{rule_id}: semantics changed without a version bump (version"
                    f" {now['version']}); bump `version` and run `neikong rules lint --write-lock`"
                )
        else:
            report.pending.append(f"{rule_id}: version {locked['version']} -> {now['version']}")
    for rule_id in sorted(set(current) - set(_lock(base))):
        report.pending.append(f"{rule_id}: new rule, not in {LOCK_FILE}")
    return report


def write_lock(base: Path = RULES_DIR) -> Path:
    """Record every rule's version and semantics hash (refuses while lint has problems)."""
    report = lint_rules(base)
    if not report.ok:
        raise RuleError("rules lint failed; fix it first: " + "; ".join(report.problems))
    current, _ = _current(base)
    locked = _lock(base)
    for rule_id, now in current.items():
        locked[rule_id] = {k: now[k] for k in ("version", "uuid", "semantics_hash")}
    path = base / LOCK_FILE
    text = json.dumps({"rules": dict(sorted(locked.items()))}, indent=2, sort_keys=True)
    path.write_text(text + "\n", "utf-8")
    return path
