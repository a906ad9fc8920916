"""How the engine routes one event to the rules it may concern (computed once per event type).

- `rule_reads(rule)`: the event types any selector of a rule names (plus `warning.closed`);
  an event of another type never reaches the rule, except an absence rule attributed by
  primary responsibility while it has something pending (it follows every event of the key
  for the roles).
- `handles(rule, type)`: False only when the rule's handler provably ignores the type (the
  trigger-gated kinds: their handler first checks the trigger's types); the engine then only
  keeps the event in the key's history.
- `remembers(rule, type)`: False only when an event of the type can neither enter nor drop
  the rule's `history`.
- `keys_of(getters, view)`: the keys of an event for compiled key paths (one per element of a
  list value; none for a missing, null or object value). Rules with the same paths share them.

These MUST NOT change what any rule emits: they only skip work whose result is known. The engine
compiles them once per rule and event type into `alerts.plans.Plan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerts.compiled import Getter
from alerts.matchers import selector_types
from alerts.rules import Rule
from alerts.view import MISSING

__all__ = ["TRIGGER_GATED", "handles", "keys_of", "remembers", "rule_reads"]


def rule_reads(rule: Rule) -> frozenset[str]:
    """The event types any selector of `rule` names."""
    m = rule.match
    selectors = [m.get("trigger"), m.get("start"), m.get("extend"), {"event": m.get("over", [])}]
    selectors += [*m.get("expect", []), *m.get("cancel", []), *m.get("steps", [])]
    selectors += [m.get("history"), *(m.get("history") or {}).get("drop", [])]
    selectors += m.get("escalate", [])
    types = {t for s in selectors if s and s.get("event") for t in selector_types(s)}
    return frozenset(types | {"warning.closed"})


# Kinds whose handler first checks that the event is of a `trigger` (or `over`) type and does
# nothing otherwise: for the other types a rule reads (its `history`), the engine only keeps
# the event in the key's history and calls no handler.
TRIGGER_GATED = {"predicate": "trigger", "threshold": "trigger", "value_count": "trigger"}
TRIGGER_GATED |= {"aggregate_outlier": "trigger", "escalation": "over"}


def handles(rule: Rule, event_type: str) -> bool:
    """False only when `rule`'s handler provably ignores events of `event_type`."""
    field_name = TRIGGER_GATED.get(rule.kind)
    if field_name is None:
        return True
    selector = rule.match.get(field_name)
    if field_name == "over":
        selector = {"event": selector or []}
    return not selector or event_type in selector_types(selector)


def remembers(rule: Rule, event_type: str) -> bool | None:
    """False only when an event of `event_type` can neither enter nor drop `rule`'s history;
    None when the rule keeps no history at all (its handler sees the bare event view)."""
    spec = rule.match.get("history")
    if not spec:
        return None
    selectors = [spec, *spec.get("drop", [])]
    if any("event" not in s for s in selectors):
        return True  # malformed: let `remember` decide (and fail) as before
    return any(event_type in selector_types(s) for s in selectors)


def keys_of(getters: tuple[Getter, ...], view: Mapping[str, Any]) -> list[str]:
    """The keys of `view` for key paths `getters`; a path holding a list of scalars fans the
    event out to one key per element (none if empty); a missing, null or object value: none."""
    if len(getters) == 1:  # the common case: one path, one scalar
        v = getters[0](view)
        if v.__class__ is str:
            return [v]
        if not isinstance(v, list):
            if v is MISSING or v is None or isinstance(v, dict):
                return []
            return [str(v)]
    combos: list[tuple[str, ...]] = [()]
    for getter in getters:
        v = getter(view)
        parts = v if isinstance(v, list) else [v]
        if any(p is MISSING or p is None or isinstance(p, dict | list) for p in parts):
            return []
        combos = [(*c, str(p)) for c in combos for p in dict.fromkeys(parts)]
    return ["|".join(c) for c in combos]
