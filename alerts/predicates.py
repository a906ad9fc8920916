"""Declarative conditions over one event: structured predicates and named facts.

A condition is data, never code: nothing here evaluates a string. Forms (YAML):

    {eq: [PATH, VALUE]}   {ne: [PATH, VALUE]}   {in: [PATH, [VALUE, …]]}
    {gte: [PATH, VALUE]}  {lte: [PATH, VALUE]}  {exists: PATH}
    {all: [COND, …]}      {any: [COND, …]}      {not: COND}
    {fact: NAME}

PATH is a dotted field path into the event view (`type`, `stream`, `event_id`, `occurred_at`,
`system`, `actor.official`, `subject.taxpayer`, `data.matter_type`, …). VALUE is a literal, or
`{param: NAME}` (a rule parameter), `{param_keys: NAME}` (the keys of a table parameter),
`{ref: PATH}` (another field of the same event) or `{bound: NAME}` (a value bound by an
earlier step of a sequence). `gte`/`lte` compare integers, or decimal strings exactly
(`Decimal`, never floats). A missing field makes every comparison false (and `ne` true).

Facts are the domain computations a rule needs, each a documented pure function of the event
(`FACTS`); a rule names them, it cannot define new ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from alerts.facts_enforcement import ENFORCEMENT_FACTS
from alerts.facts_penalty import PENALTY_DEADLINES, PENALTY_FACTS
from alerts.view import MISSING, View, as_decimal, compare, field

__all__ = [
    "DEADLINES",
    "FACTS",
    "MISSING",
    "Deadline",
    "Fact",
    "evaluate",
    "field",
    "resolve_value",
]

# A fact: a documented pure function of the event view and the rule's parameters.
Fact = Callable[[View, Mapping[str, Any]], bool]
# A deadline: the local date an absence that starts at this event must be fulfilled by
# (`within: {deadline: NAME}`), or None when the event sets no deadline.
Deadline = Callable[[View, Mapping[str, Any]], date | None]


def _quota_increase(view: View, params: Mapping[str, Any]) -> bool:
    """增版增量: an invoice request asks for more than it had (quantity or max amount)."""
    req = field(view, "data.request")
    if not isinstance(req, Mapping):
        return False
    q0, q1 = req.get("quantity_before"), req.get("quantity_requested")
    if isinstance(q0, int) and isinstance(q1, int) and q1 > q0:
        return True
    a0, a1 = as_decimal(req.get("max_amount_before")), as_decimal(req.get("max_amount_requested"))
    return a0 is not None and a1 is not None and a1 > a0


def _burden_below_industry_line(view: View, params: Mapping[str, Any]) -> bool:
    """税负明显偏低: `burden_ratio` < `industry_warning_ratio` (both decimal strings)."""
    b = as_decimal(field(view, "data.burden_ratio"))
    line = as_decimal(field(view, "data.industry_warning_ratio"))
    return b is not None and line is not None and b < line


def _discretion_reason_missing(view: View, params: Mapping[str, Any]) -> bool:
    """A penalty decision without the reasons for the discretion (`discretion_reason` empty)."""
    reason = field(view, "data.discretion_reason")
    return reason is MISSING or reason == ""


FACTS: dict[str, Fact] = {
    "quota_increase": _quota_increase,
    "burden_below_industry_line": _burden_below_industry_line,
    "discretion_reason_missing": _discretion_reason_missing,
    **ENFORCEMENT_FACTS,  # grades 1–2 (alerts/facts_enforcement.py)
    **PENALTY_FACTS,  # grades 3–4 and cross (alerts/facts_penalty.py)
}


DEADLINES: dict[str, Deadline] = {
    **PENALTY_DEADLINES,  # grades 3–4 and cross (alerts/facts_penalty.py)
}


def resolve_value(
    value: Any, view: View, params: Mapping[str, Any], bound: Mapping[str, Any]
) -> Any:
    if isinstance(value, Mapping) and len(value) == 1:
        ((op, arg),) = value.items()
        if op == "param":
            return params[arg]
        if op == "param_keys":
            return list(params[arg])
        if op == "ref":
            return field(view, arg)
        if op == "bound":
            return bound.get(arg, MISSING)
    return value


def evaluate(
    cond: Mapping[str, Any] | None,
    view: View,
    params: Mapping[str, Any],
    bound: Mapping[str, Any] | None = None,
) -> bool:
    """True when the event view satisfies `cond` (an absent condition is true)."""
    if not cond:
        return True
    bound = bound or {}
    ((op, arg),) = cond.items()
    if op == "all":
        return all(evaluate(c, view, params, bound) for c in arg)
    if op == "any":
        return any(evaluate(c, view, params, bound) for c in arg)
    if op == "not":
        return not evaluate(arg, view, params, bound)
    if op == "exists":
        return field(view, arg) is not MISSING
    if op == "fact":
        return FACTS[arg](view, params)
    path, raw = arg
    return compare(op, field(view, path), resolve_value(raw, view, params, bound))
