"""CLI commands of the rule set: `rules test`, `rules lint`, `rules show`.

Registered on `ops.cli.main` (imported at the end of ops/cli.py). Exit codes: 0 every fixture
passed / lint is clean, 1 a fixture failed / lint found a problem, 2 usage, 3 operational (an
unreadable rule or fixture file is reported as a failure, exit 1).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from alerts.controls import control_for
from alerts.errors import RuleError
from alerts.fixtures import fixture_files, run_fixture
from alerts.lint import lint_rules, write_lock
from alerts.rules import RULES_DIR, load_ruleset
from ops.cli import _emit_json, main

__all__: list[str] = []

rules_dir_option = click.option(
    "--rules",
    "rules_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Rules directory (default: the packaged alerts/rules).",
)

region_option = click.option("--region", help="Apply alerts/rules/overrides/<region>.yaml.")

RULES_EXIT_HELP = "\b\nExit codes: 0 pass, 1 failure found, 2 usage error, 3 operational error."


@main.group()
def rules() -> None:
    """Detection rules: fixtures, versioning lint, the active rule set."""


@rules.command("test", epilog=RULES_EXIT_HELP)
@rules_dir_option
@click.option("--rule", "rule_id", help="Only the fixtures of rules whose id starts with this.")
@click.option("-v", "--verbose", is_flag=True, help="List every fixture, not only failures.")
def rules_test(rules_dir: Path | None, rule_id: str | None, verbose: bool) -> None:
    """Run the promtool-style fixtures under <rules>/tests/<rule id>/*.yaml."""
    base = rules_dir or RULES_DIR
    paths = fixture_files(base, rule_id)
    if not paths:
        click.echo("neikong: no fixtures found", err=True)
        sys.exit(1)
    failed = 0
    for path in paths:
        try:
            result = run_fixture(path, base)
        except RuleError as exc:
            failed += 1
            click.echo(f"FAIL {path.relative_to(base)}: {exc}")
            continue
        if not result.ok:
            failed += 1
            click.echo(f"FAIL {result.path}")
            for failure in result.failures:
                click.echo(f"  {failure}")
        elif verbose:
            click.echo(f"ok   {result.path} ({len(result.emitted)} events emitted)")
    click.echo(f"{len(paths) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


@rules.command("lint", epilog=RULES_EXIT_HELP)
@rules_dir_option
@click.option(
    "--write-lock", "write", is_flag=True, help="Record versions and semantics hashes (lock.json)."
)
def rules_lint(rules_dir: Path | None, write: bool) -> None:
    """Check schema, versioning (semantics hash vs version) and deletions against lock.json."""
    base = rules_dir or RULES_DIR
    report = lint_rules(base)
    for problem in report.problems:
        click.echo(f"error: {problem}")
    for pending in report.pending:
        click.echo(f"pending: {pending}")
    if report.ok and write:
        click.echo(f"wrote {write_lock(base)}")
    click.echo(f"{report.checked} rules checked, {len(report.problems)} problem(s)")
    sys.exit(0 if report.ok else 1)


@rules.command("show")
@rules_dir_option
@click.option("--region", help="Apply <rules>/overrides/<region>.yaml.")
def rules_show(rules_dir: Path | None, region: str | None) -> None:
    """Print the active rule set: hash, and each rule's id, version, grade, graded control
    (分级防控 focus) and parameters."""
    ruleset = load_ruleset(rules_dir or RULES_DIR, region)
    _emit_json(
        {
            "ruleset_hash": ruleset.ruleset_hash,
            "region": region,
            "rules": [
                {
                    "id": r.id,
                    "version": r.version,
                    "grade": r.grade,
                    "kind": r.kind,
                    "blocking": r.blocking,
                    "control": {
                        k: v
                        for k, v in control_for(r.grade).as_json().items()
                        if k in ("zh", "focus", "focus_zh")
                    },
                    "semantics_hash": r.semantics_hash,
                    "params": dict(r.params),
                }
                for r in ruleset
            ],
        }
    )
