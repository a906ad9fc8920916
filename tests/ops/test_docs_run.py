"""The README's commands and code, and `--help`, are executed so the docs cannot rot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ops.cli import main

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_the_two_setup_commands() -> None:
    block = re.search(r"```\n(.*?)```", README, re.S)
    assert block is not None
    lines = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert lines[:2] == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_python_example_runs(tmp_path: Path) -> None:
    code = re.search(r"```python\n(.*?)```", README, re.S)
    assert code is not None
    subprocess.run(
        [sys.executable, "-m", "ops.cli", "init", "--ledger", str(tmp_path / "l")],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "keys",
            "enrol",
            "4403-fapiao",
            "--ledger",
            str(tmp_path / "l"),
            "--system",
            "4403-fapiao",
            "--stream-prefix",
            "matter/4403-fp/",
            "--event-type",
            "matter.*",
        ],
    )
    assert result.exit_code == 0, result.output
    namespace: dict[str, object] = {"Path": Path}
    prelude = "from pathlib import Path\n"
    source = code.group(1).replace('Path("neikong-data")', f"Path({str(tmp_path / 'l')!r})")
    exec(compile(prelude + source, "README.md", "exec"), namespace)
    outcomes = namespace["outcomes"]
    assert [o.status for o in outcomes] == ["appended"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "args",
    [[], ["verify"], ["demo"], ["init"], ["keys", "enrol"], ["streams"], ["bench"]],
)
def test_help_documents_exit_codes(args: list[str]) -> None:
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output
    if args in ([], ["verify"], ["demo"], ["init"], ["bench"]):
        assert "Exit codes: 0" in result.output
        assert "3 operational" in result.output


def test_readme_documents_exit_codes() -> None:
    for text in ("**0** success", "**1** tamper evidence", "**2** usage", "**3** operational"):
        assert text in README


def test_missing_ledger_is_an_operational_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["streams", "--ledger", str(tmp_path / "none")])
    assert result.exit_code == 3
    assert "neikong init" in result.output


def test_usage_error_exits_2() -> None:
    result = CliRunner().invoke(main, ["verify", "--workers", "zero"])
    assert result.exit_code == 2
