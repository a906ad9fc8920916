"""Rules compiled once for the engine's hot path: per rule (`RuleCode`) and per rule and event
type (`Plan`).

The engine used to look each selector up and compile it on first use, then test the event's
type against it on every call. Here everything that depends on the rule (and the event type)
alone is resolved when the engine first sees the type:

- `RuleCode`: the rule's constants (window and span in seconds, counts, history bounds, the
  levels' `when` and the exceptions' `when` as compiled conditions, expiry dates, attribution
  getters, `bind` getters of sequence steps, due-time fractions).
- `Plan`: for one event type, each selector of the rule compiled to its `where` if the selector
  names the type, else left out (`None` or absent from a tuple): a selector that does not name
  the event's type never matches it (`alerts.engine.Engine._matches`), so leaving it out gives
  the same result without the call.

Guarantees: every value here MUST equal what the interpreted path computes from the rule for
the same event (`alerts.predicates.evaluate`, `alerts.rules.Rule.value`, `parse_ratio`); a plan
only moves work out of the per-event path. Conditions stay data compiled into closures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any

from alerts.calendar import DAY_S
from alerts.compiled import Getter, Pred, compile_condition, compile_path
from alerts.dispatch import handles, remembers
from alerts.rules import Rule, parse_ratio

__all__ = ["GATED_KINDS", "NEVER", "ExceptionCode", "LevelDue", "Plan", "RuleCode", "compile_plan"]


GATED_KINDS = frozenset({"predicate", "threshold", "value_count", "aggregate_outlier"})


def _types(selector: Mapping[str, Any]) -> frozenset[str]:
    event = selector["event"]
    return frozenset((event,) if isinstance(event, str) else event)


def _days_s(rule: Rule, ref: Any) -> int | None:
    return None if ref is None else int(rule.value(ref)["days"]) * DAY_S


@dataclass(frozen=True, slots=True, eq=False)
class ExceptionCode:
    """One compiled exception: `when` and the last local date it applies on."""

    when: Pred
    expires: date


@dataclass(frozen=True, slots=True, eq=False)
class LevelDue:
    """A level's `at`, resolved: None for a level raised only by `escalate` events."""

    fraction: Fraction
    plus: Mapping[str, Any] | None
    plus_extension: bool


class RuleCode:
    """What the engine needs of one rule, compiled once (see the module docstring)."""

    def __init__(self, rule: Rule) -> None:
        m, params = rule.match, rule.params
        self.rule = rule
        self.id = rule.id
        self.history_id = f"{rule.id}#history"
        history = m.get("history")
        self.history: Mapping[str, Any] | None = history or None
        self.history_max = int(rule.value(history["max"])) if history else 0
        self.history_window_s = _days_s(rule, history.get("window")) if history else None
        self.window_s = _days_s(rule, m.get("window"))
        self.span_s = _days_s(rule, m.get("maxspan"))
        self.count = int(rule.value(m["count"])) if "count" in m else 0
        self.distinct: Getter | None = compile_path(m["distinct"]) if "distinct" in m else None
        self.levels_when: tuple[Pred | None, ...] = tuple(
            compile_condition(spec["when"], params) if "when" in spec else None
            for spec in rule.levels
        )
        self.exceptions = tuple(
            ExceptionCode(compile_condition(e["when"], params), date.fromisoformat(e["expires"]))
            for e in rule.exceptions
        )
        self.primary = rule.attribution["rule"] == "primary_responsibility"
        within = m.get("within") or {}
        self.within_by: Getter | None = compile_path(within["by"]) if "by" in within else None
        self.rearm = bool(m.get("rearm"))
        self.binds: tuple[tuple[tuple[str, Getter], ...], ...] = tuple(
            tuple((name, compile_path(path)) for name, path in (s.get("bind") or {}).items())
            for s in m.get("steps", [])
        )
        self.level_dues: tuple[LevelDue | None, ...] = tuple(
            None
            if "at" not in spec
            else LevelDue(
                parse_ratio(rule.value(spec["at"]["fraction"])),
                rule.value(spec["at"]["plus"]) if "plus" in spec["at"] else None,
                bool(spec["at"].get("plus_extension")),
            )
            for spec in rule.levels
        )
        if rule.kind == "aggregate_outlier":
            self.subject: Getter = compile_path(m["subject"])
            self.value: Getter = compile_path(m["value"])
            self.group: tuple[Getter, ...] = tuple(compile_path(p) for p in m["group"])
            self.min_cases = int(rule.value(m["min_cases"]))
            self.min_peers = int(rule.value(m["min_peers"]))
            self.sigmas = parse_ratio(rule.value(m["sigmas"]))

    def level_step(self, view: Mapping[str, Any], bound: Mapping[str, Any]) -> int:
        """The first level whose `when` holds for the triggering event (no `when`: always)."""
        for step, when in enumerate(self.levels_when):
            if when is None or when(view, bound):
                return step
        return 0


@dataclass(frozen=True, slots=True, eq=False)
class Plan:
    """One rule for one event type: the engine's route entry (see the module docstring).

    `follower`: the rule does not read the type, it only follows it for a pending absence's
    roles; `acts`: the handler can act on it (`alerts.dispatch.handles`); `keeps`: the event
    may enter or drop the key's history (`alerts.dispatch.remembers`; None: no history)."""

    rule: Rule
    rule_id: str
    code: RuleCode
    handler: Callable[..., Any]
    follower: bool
    acts: bool
    keeps: bool | None
    getters: tuple[Getter, ...]
    slot: int  # plans of one type with the same key paths share a slot (their keys)
    trigger: Pred | None  # trigger (or `over` for escalation: always true) naming the type
    start: Pred | None
    ends: tuple[Pred, ...]  # absence: expect + cancel
    escalate: tuple[Pred, ...]
    extends: bool
    cancel: tuple[Pred, ...]  # sequence: cancel
    steps: tuple[Pred | None, ...]
    enter: Pred | None  # history
    drop: tuple[Pred, ...]
    # For a key with no state, the handler provably does nothing unless this holds (an
    # absence's `start`, a sequence's first step; `NEVER` when it does not name the type);
    # None: no such shortcut (the handler is called)
    opener: Pred | None
    advances: bool  # sequence: some step names the type (a partial match may advance)

    @property
    def roles_only(self) -> bool:
        """An absence plan whose type can neither start, fulfil, escalate nor extend it."""
        return (
            self.rule.kind == "absence"
            and self.start is None
            and not self.ends
            and not self.escalate
            and not self.extends
        )

    # a condition the handler needs to do anything, on the bare view (false: it does nothing):
    # trigger-gated kinds: the trigger's `where` (with a history: the parts of its `all` that
    # read no history); a sequence without `maxspan`: some step's or cancel's bound-free part
    gate: Pred | None


def _always(view: Any, bound: Any) -> bool:
    return True


def _never(view: Any, bound: Any) -> bool:
    return False


NEVER: Pred = _never  # an opener that never holds: a key with no state stays without


def _reads_history(cond: Any) -> bool:
    """Whether a condition may read the view's `history`: a fact (facts may), or a path or
    reference into it. Conservative: anything not understood counts as reading it."""
    if isinstance(cond, Mapping):
        if "fact" in cond:
            return True
        return any(_reads_history(k) or _reads_history(v) for k, v in cond.items())
    if isinstance(cond, list | tuple):
        return any(_reads_history(c) for c in cond)
    if isinstance(cond, str):
        return cond == "history" or cond.startswith("history.")
    return False


def _reads_bound(cond: Any) -> bool:
    """Whether a condition may read a sequence's bound values (conservative, as above)."""
    if isinstance(cond, Mapping):
        return "bound" in cond or any(_reads_bound(v) for v in cond.values())
    if isinstance(cond, list | tuple):
        return any(_reads_bound(c) for c in cond)
    return False


def _free_part(where: Any, reads: Callable[[Any], bool]) -> Any:
    """A condition implied by `where` that `reads` nothing of: `where` itself, or the parts
    of its `all` that read nothing; None (no such condition: treat as true) otherwise."""
    if not where:
        return {}  # an absent condition: always true
    if not isinstance(where, Mapping) or len(where) != 1:
        return None
    if not reads(where):
        return where
    parts = where.get("all")
    if not isinstance(parts, list):
        return None
    free = [c for c in parts if not reads(c)]
    return {"all": free} if free else None


def _sequence_gate(rule: Rule, event_type: str) -> Pred | None:
    """For a sequence without `maxspan` (its handler then changes nothing unless a step or a
    `cancel` matches): whether the bound-free part of some step or cancel naming the type
    holds; None when one of them has no such part (no gate)."""
    m = rule.match
    if m.get("maxspan") is not None:
        return None  # the handler also drops expired partial matches
    conditions = []
    for selector in [*m.get("steps", []), *m.get("cancel", [])]:
        if event_type not in _types(selector):
            continue
        free = _free_part(selector.get("where"), _reads_bound)
        if free is None:
            return None
        conditions.append(free)
    if not conditions:
        return None  # nothing names the type: the plan does not act on it anyway
    return compile_condition({"any": conditions}, rule.params)


def _gate(rule: Rule, trigger: Mapping[str, Any] | None) -> Pred | None:
    """The history-free part of `trigger`'s `where` (an `all`'s parts that read no history,
    or the whole condition; for a rule without a history, the whole condition: its facts
    see no history), or None when there is none."""
    where = (trigger or {}).get("where")
    if not rule.match.get("history"):
        reads: Callable[[Any], bool] = lambda cond: False  # noqa: E731
    else:
        reads = _reads_history
    free = _free_part(where, reads) if where else None
    return compile_condition(free, rule.params) if free else None


def compile_plan(
    rule: Rule,
    code: RuleCode,
    event_type: str,
    *,
    handler: Callable[..., Any],
    follower: bool,
    getters: tuple[Getter, ...],
    slot: int,
) -> Plan:
    """The plan of `rule` for events of `event_type`."""
    m, params = rule.match, rule.params

    def one(selector: Mapping[str, Any] | None) -> Pred | None:
        if not selector or event_type not in _types(selector):
            return None
        return compile_condition(selector.get("where"), params)

    def some(selectors: list[Mapping[str, Any]]) -> tuple[Pred, ...]:
        return tuple(p for p in map(one, selectors) if p is not None)

    trigger = one(m.get("trigger"))
    if rule.kind == "escalation":
        trigger = _always if event_type in _types({"event": m.get("over", [])}) else None
    history = m.get("history")
    start, steps = one(m.get("start")), tuple(one(s) for s in m.get("steps", []))
    opener: Pred | None = None
    if rule.kind == "absence":
        opener = start or NEVER
    elif rule.kind == "sequence":
        opener = (steps[0] if steps else None) or NEVER
    return Plan(
        rule=rule,
        rule_id=rule.id,
        code=code,
        handler=handler,
        follower=follower,
        acts=handles(rule, event_type),
        keeps=remembers(rule, event_type),
        getters=getters,
        slot=slot,
        trigger=trigger,
        start=start,
        ends=some([*m.get("expect", []), *m.get("cancel", [])]),
        escalate=some(m.get("escalate") or []),
        extends=bool(m.get("extend")) and event_type in _types(m["extend"]),
        cancel=some(m.get("cancel", [])) if rule.kind == "sequence" else (),
        steps=steps,
        enter=one(history),
        drop=some(history.get("drop", [])) if history else (),
        opener=opener,
        advances=any(p is not None for p in steps),
        gate=_gate(rule, m.get("trigger"))
        if trigger is not None and rule.kind in GATED_KINDS
        else _sequence_gate(rule, event_type)
        if rule.kind == "sequence"
        else None,
    )
