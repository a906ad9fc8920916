"""Named facts and deadlines for the rules of grades 3–4 and the cross-grade rules (R13–R25).

A fact is a documented pure function of one event view and the rule's parameters (every
threshold comes from `params`, never a literal); rules name facts in `{fact: NAME}`. A deadline
(`within: {deadline: NAME}` of an absence rule) is a pure function of the start event and the
parameters giving the local date the obligation falls due, or None.

Guarantees: every function here MUST be total (a malformed or missing field gives False or
None, never an exception), MUST compare money and ratios exactly (`Decimal`/`Fraction`, never
floats) and MUST read its thresholds from the rule's parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from fractions import Fraction
from typing import Any

from alerts.view import MISSING, View, as_decimal, field

__all__ = ["PENALTY_DEADLINES", "PENALTY_FACTS", "benchmark_tier"]


def benchmark_tier(view: View, params: Mapping[str, Any]) -> tuple[Any, Any] | None:
    """The (min, max) ratio tier of a `matter.penalty_decided` under its discretion benchmark.

    `params["benchmarks"]` is a list of region-versioned benchmark tables (裁量基准)::

        {region: "44", version: 1, violation_code: tax_evasion,
         tiers: {first_corrected: ["0.5", "0.5"], uncooperative: ["0.5", "1"], …}}

    A table applies when its `region` is a prefix of the decision's `benchmark.region` (the
    Guangdong table `44` covers Shenzhen `4403`; the longest prefix wins) and its `version`
    equals `benchmark.version`. No table, or no tier for the recorded circumstances: None.
    """
    bench = field(view, "data.benchmark")
    code = field(view, "data.violation_code")
    circumstances = field(view, "data.circumstances")
    if not isinstance(bench, Mapping) or not isinstance(circumstances, str):
        return None
    region, version = bench.get("region"), bench.get("version")
    best: Mapping[str, Any] | None = None
    for table in params.get("benchmarks") or []:
        if not isinstance(table, Mapping) or not isinstance(region, str):
            continue
        prefix = str(table.get("region", ""))
        if (
            region.startswith(prefix)
            and table.get("version") == version
            and table.get("violation_code") == code
            and (best is None or len(prefix) > len(str(best.get("region", ""))))
        ):
            best = table
    tier = (best or {}).get("tiers", {}).get(circumstances)
    if not isinstance(tier, list) or len(tier) != 2:
        return None
    return tier[0], tier[1]


def _ratio_outside_benchmark(view: View, params: Mapping[str, Any]) -> bool:
    """R13: the decision's `ratio` lies outside the benchmark tier of its circumstances
    (bounds inclusive). Without an applicable tier there is no finding (False)."""
    tier = benchmark_tier(view, params)
    ratio = as_decimal(field(view, "data.ratio"))
    if tier is None or ratio is None:
        return False
    low, high = as_decimal(str(tier[0])), as_decimal(str(tier[1]))
    if low is None or high is None:
        return False
    return ratio < low or ratio > high


def _hearing_threshold_reached(view: View, params: Mapping[str, Any]) -> bool:
    """R14: the fine reaches the hearing threshold of the party's kind (听证范围):
    `fine >= hearing_fine_individual` for individuals, `>= hearing_fine_entity` otherwise."""
    fine = as_decimal(field(view, "data.fine"))
    kind = field(view, "data.party_kind")
    name = "hearing_fine_individual" if kind == "individual" else "hearing_fine_entity"
    limit = as_decimal(params.get(name))
    return fine is not None and limit is not None and kind is not MISSING and fine >= limit


def _incompetent_share_reached(view: View, params: Mapping[str, Any]) -> bool:
    """R25(a): incompetent votes / all votes >= `incompetent_share` (exact fraction)."""
    votes = field(view, "data.votes")
    if not isinstance(votes, Mapping):
        return False
    counts = [v for v in votes.values() if isinstance(v, int) and not isinstance(v, bool)]
    total = sum(counts)
    bad = votes.get("incompetent")
    if total <= 0 or not isinstance(bad, int) or isinstance(bad, bool):
        return False
    return Fraction(bad, total) >= Fraction(str(params["incompetent_share"]))


def _concealment_found(view: View, params: Mapping[str, Any]) -> bool:
    """R20: a verification (查核) classified at least one item as 隐瞒不报 (concealment)."""
    findings = field(view, "data.findings")
    return isinstance(findings, list) and any(
        isinstance(f, Mapping) and f.get("finding") == "concealment" for f in findings
    )


def _month_day(params: Mapping[str, Any]) -> tuple[int, int]:
    month, day = str(params["annual_due"]).split("-")
    return int(month), int(day)


def _annual_report_due(view: View, params: Mapping[str, Any]) -> date | None:
    """R19: the date the next annual report (年度集中报告) falls due, from an event that shows
    the official must report: an annual report for year Y -> the report for Y+1, due on
    `annual_due` (MM-DD) of Y+2; any other declaration about year Y -> the report for Y, due
    in Y+1; a reportable appointment effective in year Y -> the report for Y, due in Y+1."""
    try:
        month, day = _month_day(params)
        if view.get("type") == "personnel.appointed":
            effective = field(view, "data.effective_on")
            if not isinstance(effective, str):
                return None
            return date(int(effective[:4]) + 1, month, day)
        year = field(view, "data.year")
        if not isinstance(year, int) or isinstance(year, bool):
            return None
        ahead = 2 if field(view, "data.kind") == "annual" else 1
        return date(year + ahead, month, day)
    except (ValueError, KeyError):
        return None


PENALTY_FACTS: dict[str, Callable[[View, Mapping[str, Any]], bool]] = {
    "ratio_outside_benchmark": _ratio_outside_benchmark,
    "hearing_threshold_reached": _hearing_threshold_reached,
    "incompetent_share_reached": _incompetent_share_reached,
    "concealment_found": _concealment_found,
}

PENALTY_DEADLINES: dict[str, Callable[[View, Mapping[str, Any]], date | None]] = {
    "annual_report_due": _annual_report_due,
}
