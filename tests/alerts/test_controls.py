"""Graded controls (分级防控): one per grade, an action per level; `rules show` uses it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from alerts.controls import BLOCKABLE, CONTROLS, control_for
from alerts.errors import RuleError
from alerts.warnings import LEVELS
from ops.cli import main


def test_every_grade_has_its_focus_and_an_action_per_level() -> None:
    focus = {g: c.focus_zh for g, c in CONTROLS.items()}
    assert focus == {
        1: "抓全面",
        2: "抓程序",
        3: "抓规范",
        4: "抓公开",
        "cross": "红黄牌 / 一票否决",
    }
    for control in CONTROLS.values():
        assert set(control.actions) == set(LEVELS)
        assert control.as_json()["actions"]["red"]["action"]
    assert control_for(1).action("orange").action == "block"  # grade 1: blocking rules
    assert BLOCKABLE == ("R01", "R02", "R03", "R04", "R06", "R12", "R14", "R16")
    with pytest.raises(RuleError, match="no graded control"):
        control_for(5)


def test_rules_show_prints_each_rules_control() -> None:
    result = CliRunner().invoke(main, ["rules", "show"])
    assert result.exit_code == 0, result.output
    for rule in json.loads(result.output)["rules"]:
        assert rule["control"]["focus"] == control_for(rule["grade"]).focus
