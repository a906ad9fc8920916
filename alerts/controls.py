"""Graded controls (分级防控): risk grade → category, control focus and the action per level.

DOMAIN.md §0 and §3: grade 1 行政决策类 → 抓全面 (comprehensive: every step watched, blocking
rules); grade 2 税收执法类 → 抓程序 (procedure: order, steps, deadlines); grade 3 税务处罚类 →
抓规范 (standards: discretion benchmarks, hearing rights); grade 4 日常工作类 → 抓公开
(disclosure: declarations, publication). The cross-grade rules (R24, R25) act on people
(cards, 一票否决, 组织调整). The actions follow the §1.2 sanction ladder (批评教育 → 书面检查 →
通报批评 → 待岗 → 取消执法资格) and the "graded control action" column of §3.

This module is data: `CONTROLS` MUST hold one entry per grade (1–4 and `cross`) with one
action for every warning level, and `BLOCKABLE` the catalogue numbers §3 lists as blockable
(事中阻断). `warnings show` and `rules show` print from it; nothing here decides a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alerts.errors import RuleError
from alerts.warnings import LEVELS

__all__ = ["BLOCKABLE", "CONTROLS", "GradeControl", "LevelAction", "control_for"]

# DOMAIN.md §3 design notes: the rules that can block, by catalogue number.
BLOCKABLE = ("R01", "R02", "R03", "R04", "R06", "R12", "R14", "R16")


@dataclass(frozen=True)
class LevelAction:
    """What a warning of one level triggers under its grade's control focus."""

    action: str  # code: remind | warn | supervise | block | accountability | refer …
    zh: str
    en: str

    def as_json(self) -> dict[str, str]:
        return {"action": self.action, "zh": self.zh, "en": self.en}


@dataclass(frozen=True)
class GradeControl:
    """One risk grade's control: category, focus (抓全面/抓程序/抓规范/抓公开) and actions."""

    grade: int | str
    category: str
    zh: str
    focus: str
    focus_zh: str
    watch: str
    actions: dict[str, LevelAction]

    def action(self, level: str) -> LevelAction:
        return self.actions[level]

    def as_json(self) -> dict[str, Any]:
        return {
            "grade": self.grade,
            "category": self.category,
            "zh": self.zh,
            "focus": self.focus,
            "focus_zh": self.focus_zh,
            "watch": self.watch,
            "actions": {level: self.actions[level].as_json() for level in LEVELS},
        }


def _actions(*rows: tuple[str, str, str]) -> dict[str, LevelAction]:
    return {level: LevelAction(*row) for level, row in zip(LEVELS, rows, strict=True)}


CONTROLS: dict[int | str, GradeControl] = {
    1: GradeControl(
        1,
        "admin_decision",
        "行政决策类",
        "comprehensive",
        "抓全面",
        "every step watched; blocking rules refuse the step (事中阻断)",
        _actions(
            ("remind", "提示提醒", "remind the decision-maker"),
            ("warn", "预警, 责令说明情况", "warn; the unit explains in writing"),
            ("block", "阻断 + 责令作出书面检查", "block the step; written self-criticism"),
            ("refer", "阻断 + 移送纪检监察", "block; refer to discipline inspection"),
        ),
    ),
    2: GradeControl(
        2,
        "tax_enforcement",
        "税收执法类",
        "procedure",
        "抓程序",
        "order of steps, mandatory steps, statutory time limits",
        _actions(
            ("remind", "提示承办人", "remind the handler"),
            ("remind", "提醒承办人, 限期办结", "remind the handler to finish in time"),
            ("supervise", "科长督办", "supervision (督办) by the section chief"),
            ("accountability", "执法过错责任追究", "open an accountability case (执法过错)"),
        ),
    ),
    3: GradeControl(
        3,
        "tax_penalty",
        "税务处罚类",
        "standards",
        "抓规范",
        "discretion benchmarks, case review, hearing rights",
        _actions(
            ("remind", "提示审理人员", "remind the case reviewer"),
            (
                "send_back",
                "退卷, 说明裁量理由",
                "send the file back (退卷) for the discretion reason",
            ),
            ("block", "阻断决定 + 法制审核", "block the decision; legal review"),
            ("accountability", "执法过错责任追究", "open an accountability case (执法过错)"),
        ),
    ),
    4: GradeControl(
        4,
        "routine",
        "日常工作类",
        "disclosure",
        "抓公开",
        "declarations, publication, integrity files kept current",
        _actions(
            ("remind", "提示提醒", "remind the official or the file keeper"),
            ("correct_by_deadline", "限期改正", "correct within a deadline"),
            ("written_check", "批评教育 / 责令作出检查", "criticism; written self-criticism"),
            ("circulated_criticism", "通报批评, 报告单位负责人", "circulated criticism; unit head"),
        ),
    ),
    "cross": GradeControl(
        "cross",
        "personnel",
        "干部管理 (跨类)",
        "personnel",
        "红黄牌 / 一票否决",
        "an official's accumulated warnings, assessments and appointments",
        _actions(
            ("remind", "提示提醒", "remind"),
            ("admonition", "诫勉谈话 (黄牌)", "admonishment talk (yellow card)"),
            ("review", "组织调整审查", "organisational-adjustment review"),
            ("veto", "一票否决 (红牌), 组织调整", "one-vote veto (red card); adjustment"),
        ),
    ),
}


def control_for(grade: int | str) -> GradeControl:
    """The graded control of `grade` (1–4 or "cross"); `RuleError` for any other value."""
    control = CONTROLS.get(grade)
    if control is None:
        raise RuleError(f"no graded control for grade {grade!r}; one of 1, 2, 3, 4, cross")
    return control
