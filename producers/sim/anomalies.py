"""Which anomalies the simulator injects, how often, and the rules each should trigger.

Every kind corresponds to one rule of the catalogue (DOMAIN.md §3), first in `rules`; other
rules listed are ones the same facts trigger by definition (skipping a mandatory approval is
also a mandatory step missing, R06). Rates are per candidate: a matter, a taxpayer-month, an
official at the moment the obligation arises (annual report, appointment, assessment,
observed personal matter), a violation.

Guarantees:
- With every rate 0 the simulator injects nothing and delivers no label.
- A kind at rate 1 is injected into every candidate it applies to (kinds with an explicit
  rate are tried before the kinds left at the default share).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ledger.errors import NeikongError

__all__ = ["KINDS", "AnomalyKind", "SimAnomalies", "SimConfigError"]


class SimConfigError(NeikongError, ValueError):
    """An anomaly configuration names an unknown kind or a rate outside [0, 1]."""


@dataclass(frozen=True)
class AnomalyKind:
    name: str
    rules: tuple[str, ...]
    population: str  # matter | taxpayer | official | violation
    zh: str


_KINDS = (
    AnomalyKind("major_matter_few_deciders", ("R01",), "matter", "重大事项少数人决策"),
    AnomalyKind("approval_skipped", ("R02", "R06"), "matter", "该报批的不报批"),
    AnomalyKind("major_enforcement_without_legal_review", ("R03",), "matter", "重大执法未法制审核"),
    AnomalyKind("same_person_handles_and_approves", ("R04",), "matter", "承办审批同一人"),
    AnomalyKind("processing_deadline", ("R05",), "matter", "超期办理"),
    AnomalyKind("step_out_of_order", ("R06",), "matter", "环节顺序颠倒"),
    AnomalyKind("refund_late", ("R12", "R05"), "matter", "退税超期"),
    AnomalyKind("refund_fast_track", ("R12", "R06"), "matter", "退税未经查实"),
    AnomalyKind("penalty_outside_tier", ("R13",), "matter", "处罚超出裁量基准"),
    AnomalyKind("penalty_no_reason", ("R13",), "matter", "未说明裁量理由"),
    AnomalyKind("hearing_right_violation", ("R14",), "matter", "未告知听证权利"),
    AnomalyKind("penalty_case_overdue", ("R15",), "matter", "处罚案件超期"),
    AnomalyKind("penalty_without_review", ("R16", "R06"), "matter", "未经审理作出处罚"),
    AnomalyKind("withdrawn_without_approval", ("R17",), "matter", "未经批准撤销案件"),
    AnomalyKind("reduced_without_approval", ("R17",), "matter", "未经批准减轻处罚"),
    AnomalyKind("frequent_quota_increase", ("R07",), "taxpayer", "频繁增版增量"),
    AnomalyKind("invoice_surge_ignored", ("R08",), "taxpayer", "发票用量猛增不理"),
    AnomalyKind("low_tax_burden_ignored", ("R09",), "taxpayer", "税负明显偏低未评估"),
    AnomalyKind("void_ratio_high", ("R10",), "taxpayer", "作废红冲率高"),
    AnomalyKind("ceiling_invoicing", ("R11",), "taxpayer", "顶额开票"),
    AnomalyKind("discretion_outlier", ("R18",), "official", "裁量畸轻"),
    AnomalyKind("annual_report_missing", ("R19",), "official", "未按时年度报告"),
    AnomalyKind("change_not_reported", ("R20",), "official", "变化事项未在30日内报告"),
    AnomalyKind("concealment_found", ("R20",), "official", "查核发现隐瞒不报"),
    AnomalyKind("initial_report_missing", ("R21",), "official", "新任未报告"),
    AnomalyKind("integrity_file_stale", ("R23",), "official", "廉政档案未建立更新"),
    AnomalyKind("incompetent_votes", ("R25",), "official", "不称职票超过三分之一"),
    AnomalyKind("rectification_overdue", ("R22",), "violation", "逾期未整改"),
)

KINDS: dict[str, AnomalyKind] = {k.name: k for k in _KINDS}


@dataclass(frozen=True)
class SimAnomalies:
    """Injection rates: `rate` is the total per candidate, shared equally among the kinds
    that apply to it; `kinds` overrides single kinds (0 disables one, 1 forces it)."""

    rate: float = 0.02
    kinds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise SimConfigError(f"anomaly rate {self.rate} is outside [0, 1]")
        for name, value in self.kinds.items():
            if name not in KINDS:
                raise SimConfigError(
                    f"unknown anomaly kind {name!r}; known: {', '.join(sorted(KINDS))}"
                )
            if not 0.0 <= value <= 1.0:
                raise SimConfigError(f"rate {value} of {name!r} is outside [0, 1]")

    @classmethod
    def none(cls) -> SimAnomalies:
        return cls(rate=0.0)

    @classmethod
    def only(cls, kind: str, rate: float = 1.0) -> SimAnomalies:
        """Just `kind`, at `rate`; every other kind disabled."""
        return cls(rate=0.0, kinds={kind: rate})

    @classmethod
    def from_mapping(cls, value: Any) -> SimAnomalies:
        if not isinstance(value, dict) or set(value) - {"rate", "kinds"}:
            raise SimConfigError("an anomaly configuration is a mapping with `rate` and `kinds`")
        kinds = value.get("kinds") or {}
        if not isinstance(kinds, dict):
            raise SimConfigError("`kinds` maps kind names to rates")
        try:
            return cls(
                rate=float(value.get("rate", 0.02)),
                kinds={str(k): float(v) for k, v in kinds.items()},
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, SimConfigError):
                raise
            raise SimConfigError(f"rates are numbers between 0 and 1: {exc}") from exc

    @classmethod
    def from_yaml(cls, path: Path) -> SimAnomalies:
        """Load `{rate: 0.02, kinds: {approval_skipped: 0.01, …}}` from a YAML file."""
        try:
            value = yaml.safe_load(path.read_text("utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise SimConfigError(f"cannot read anomaly configuration {path}: {exc}") from exc
        return cls.from_mapping(value)

    def with_rate(self, rate: float) -> SimAnomalies:
        return SimAnomalies(rate=rate, kinds=dict(self.kinds))

    def choose(self, rng: random.Random, applicable: list[str]) -> str | None:
        """The kind to inject into one candidate to which `applicable` kinds apply, or None.

        Draws from `rng` exactly once, whatever the rates, so runs stay comparable.
        """
        u = rng.random()
        if not applicable:
            return None
        share = self.rate / len(applicable)
        if not self.kinds:  # the common case: one shared rate
            return applicable[int(u / share)] if u < self.rate else None
        ordered = [k for k in applicable if k in self.kinds] + [
            k for k in applicable if k not in self.kinds
        ]
        total = 0.0
        for kind in ordered:
            total += self.kinds.get(kind, share)
            if u < total:
                return kind
        return None
