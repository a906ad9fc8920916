"""The match kinds of the engine (DOMAIN.md §5.1): predicate, threshold, value_count, sequence,
absence, aggregate_outlier and escalation, each a handler `_on_<kind>(plan, key, view, ts)` over
the keyed state; `plan` is the rule compiled for the event's type (`alerts.plans.Plan`).

Predicate and sequence rules MAY give levels a `when` condition: the warning takes the first
level whose `when` holds for the triggering event (a level without `when` always holds).
An absence rule with `rearm: true` treats an event that fulfils the pending absence and also
matches `start` as the start of the next period (recurring obligations: R19, R23); its
`within: {deadline: NAME}` takes the deadline date from a named deadline function.

A mixin of `alerts.engine.Engine` (split out to keep each module small); the guarantees are
the engine's. Keyed state per kind (JSON values, snapshotted with the log position):

- threshold / value_count: `[[ts, event_id, value], …]` inside the rule's window (event time);
- sequence: up to 32 partial matches `{step, ts, ids, bound}`; a `cancel` event drops them;
- absence: `{start, dues, fired, roles}`; the timer of its next level sits in the engine's
  heap;
- aggregate_outlier: `"group|<values>" -> [[ts, event_id, official, value], …]` inside the
  window (see `alerts.outlier`);
- escalation: see `alerts.escalation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from alerts.calendar import DAY_S
from alerts.compiled import TRUE, Getter
from alerts.outlier import OutlierGroup
from alerts.predicates import DEADLINES
from alerts.rules import Rule
from alerts.timers import Limit, level_due
from alerts.view import MISSING, View
from alerts.view import field as get
from alerts.warnings import Emitted
from ledger.workdays import OutsideCalendar

if TYPE_CHECKING:
    from alerts.calendar import Calendar, DueMemo
    from alerts.engine import EngineStats
    from alerts.escalation import CardCounter
    from alerts.plans import Plan, RuleCode
    from alerts.state import DetectorState
    from alerts.timers import TimerHeap

__all__ = ["MAX_PARTIALS", "NO_BOUND", "ROLE_BY_STEP", "MatchKinds", "selector_types"]

NO_BOUND: Mapping[str, Any] = MappingProxyType({})  # read-only: shared by every evaluation
LOCAL_OFFSET_S = 8 * 3600  # China Standard Time (ledger.workdays.CST): no daylight saving
MAX_DUE_CACHE = 65_536

ROLE_BY_STEP = {
    "accept": "handler",
    "review": "reviewer",
    "approve": "approver",
    "decide": "approver",
}
MAX_PARTIALS = 32


def selector_types(selector: Mapping[str, Any]) -> tuple[str, ...]:
    event = selector["event"]
    return (event,) if isinstance(event, str) else tuple(event)


class MatchKinds:
    """Handlers of the match kinds; `Engine` supplies the state and the raising."""

    state: DetectorState
    timers: TimerHeap
    calendar: Calendar
    cards: CardCounter
    stats: EngineStats

    _due_cache: dict[tuple[str, Limit, int], tuple[int | None, ...]]
    _outlier_groups: dict[tuple[str, str], OutlierGroup]  # (rule, group key) -> its sums
    _limits: dict[tuple[str, str | None], Limit | None]  # (rule, `within.by` value) -> limit
    due_memo: DueMemo

    if TYPE_CHECKING:

        def _keys(self, rule: Rule) -> dict[str, Any]: ...

        def _trigger(
            self,
            code: RuleCode,
            key: str,
            view: View,
            ts: int,
            *,
            triggers: list[str],
            level_step: int = 0,
        ) -> list[Emitted]: ...

    # -- per-key history (match.history) -------------------------------------------------

    def _history_of(self, code: RuleCode, key: str, ts: int) -> list[dict[str, Any]]:
        """The earlier events of `key` the rule keeps (oldest first, inside `history.window`),
        for facts to read as `view["history"]` (the rule MUST keep a history)."""
        store = self.state.rules.get(code.history_id)
        kept: list[dict[str, Any]] | None = store.get(key) if store is not None else None
        if kept is None:
            return []
        cutoff_s = code.history_window_s
        if cutoff_s is not None:
            cutoff = ts - cutoff_s
            for h in kept:
                if h["ts"] <= cutoff:  # something fell out of the window: a filtered copy
                    return [h for h in kept if h["ts"] > cutoff]
        return kept

    def _remember(
        self, plan: Plan, key: str, view: View, ts: int, entry: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Keep `view` in `key`'s history when it matches `history` (at most `max` events,
        the latest); forget the key after an event matching one of `history.drop`. Returns
        the kept entry: the caller passes it back for the next rule or key of the same event
        (histories share one entry per event; nothing mutates an entry once kept)."""
        code = plan.code
        if code.history is None:
            return entry
        rules = self.state.rules
        store = rules.get(code.history_id)
        if store is None:
            store = rules[code.history_id] = {}
        enter = plan.enter
        if enter is not None and (enter is TRUE or enter(view, NO_BOUND)):
            if entry is None:
                entry = {
                    "type": view["type"],
                    "event_id": view["event_id"],
                    "occurred_at": view["occurred_at"],
                    "actor": view["actor"],
                    "data": view["data"],
                    "ts": ts,
                    "seq": view.get("position", 0),
                }
            limit = code.history_max
            kept = store.get(key)
            if kept is None:
                store[key] = [entry][-limit:]
            else:  # in place: no copy of the whole history per event
                kept.append(entry)
                if len(kept) > limit:
                    del kept[:-limit]
        drop = plan.drop
        if drop and key in store:
            for d in drop:
                if d(view, NO_BOUND):
                    del store[key]
                    break
        return entry

    def _on_predicate(self, plan: Plan, key: str, view: View, ts: int) -> list[Emitted]:
        trigger = plan.trigger
        if trigger is None or not trigger(view, NO_BOUND):
            return []
        return self._trigger(
            plan.code,
            key,
            view,
            ts,
            triggers=[view["event_id"]],
            level_step=plan.code.level_step(view, NO_BOUND),
        )

    def _on_aggregate_outlier(self, plan: Plan, key: str, view: View, ts: int) -> list[Emitted]:
        """Per peer group, the cases of the window; the event's official compared with peers."""
        trigger, code = plan.trigger, plan.code
        if trigger is None or not trigger(view, NO_BOUND):
            return []
        official, value = code.subject(view), code.value(view)
        group = [g(view) for g in code.group]
        if not isinstance(official, str) or not isinstance(value, str | int):
            return []
        if any(g is MISSING or isinstance(g, dict | list) for g in group):
            return []
        gkey = "group|" + "|".join(str(g) for g in group)
        assert code.window_s is not None
        keys = self._keys(plan.rule)
        cases = keys.get(gkey)
        if cases is None:
            cases = keys[gkey] = []
        groups = self._outlier_groups
        aggregate = groups.get((code.id, gkey))
        if aggregate is None or aggregate.cases is not cases:  # new, or state restored
            aggregate = groups[(code.id, gkey)] = OutlierGroup(cases)
        aggregate.expire(ts - code.window_s)  # the window's cases, in place
        case = [ts, view["event_id"], official, str(value)]
        cases.append(case)
        aggregate.add(case)
        hits = aggregate.verdict(
            official, min_cases=code.min_cases, min_peers=code.min_peers, sigmas=code.sigmas
        )
        if hits is None:
            return []
        return self._trigger(code, key, view, ts, triggers=hits)

    def _window_hits(
        self, plan: Plan, key: str, view: View, ts: int, value: Any
    ) -> list[list[Any]] | None:
        trigger = plan.trigger
        if trigger is None or not trigger(view, NO_BOUND):
            return None
        assert plan.code.window_s is not None
        cutoff = ts - plan.code.window_s
        keys = self._keys(plan.rule)
        hits = [h for h in keys.get(key, []) if h[0] > cutoff]
        hits.append([ts, view["event_id"], value])
        keys[key] = hits
        return hits

    def _on_threshold(self, plan: Plan, key: str, view: View, ts: int) -> list[Emitted]:
        hits = self._window_hits(plan, key, view, ts, None)
        if hits is None or len(hits) < plan.code.count:
            return []
        return self._trigger(plan.code, key, view, ts, triggers=[h[1] for h in hits])

    def _on_value_count(self, plan: Plan, key: str, view: View, ts: int) -> list[Emitted]:
        assert plan.code.distinct is not None
        value = plan.code.distinct(view)
        hits = self._window_hits(plan, key, view, ts, None if value is MISSING else value)
        if hits is None or len({h[2] for h in hits if h[2] is not None}) < plan.code.count:
            return []
        return self._trigger(plan.code, key, view, ts, triggers=[h[1] for h in hits])

    def _on_sequence(self, plan: Plan, key: str, view: View, ts: int) -> list[Emitted]:
        steps, code = plan.steps, plan.code
        keys = self._keys(plan.rule)
        partials: list[dict[str, Any]] = keys.get(key, [])
        if code.span_s is not None:
            cutoff = ts - code.span_s
            partials = [p for p in partials if p["ts"] > cutoff]
        if partials and plan.cancel and any(c(view, NO_BOUND) for c in plan.cancel):
            keys.pop(key, None)  # the matter ended: its partial matches can never complete
            return []
        out: list[Emitted] = []
        if partials and plan.advances:
            for partial in list(partials):
                step = steps[partial["step"]]
                if step is not None and step(view, partial["bound"] or NO_BOUND):
                    partial["step"] += 1
                    partial["ids"].append(view["event_id"])
                    self._bind(code.binds[partial["step"] - 1], view, partial["bound"])
                    if partial["step"] == len(steps):
                        partials.remove(partial)
                        level = code.level_step(view, partial["bound"] or NO_BOUND)
                        out += self._trigger(
                            code, key, view, ts, triggers=partial["ids"], level_step=level
                        )
        first = steps[0]
        if not out and first is not None and first(view, NO_BOUND):
            partial = {"step": 1, "ts": ts, "ids": [view["event_id"]], "bound": {}}
            self._bind(code.binds[0], view, partial["bound"])
            partials = [*partials, partial][-MAX_PARTIALS:]
        if partials:
            keys[key] = partials
        else:
            keys.pop(key, None)
        return out

    @staticmethod
    def _bind(binds: tuple[tuple[str, Getter], ...], view: View, bound: dict[str, Any]) -> None:
        for name, getter in binds:
            value = getter(view)
            if value is not MISSING:
                bound[name] = value

    def _limit(self, rule: Rule, view: Mapping[str, Any], by: Getter | None = None) -> Limit | None:
        """The absence's limit for a start event; `by`: `within.by` compiled, if given."""
        within = rule.match["within"]
        if "until" in within:
            value = get(view, within["until"])
            return Limit.until(date.fromisoformat(value)) if isinstance(value, str) else None
        if "deadline" in within:
            day = DEADLINES[within["deadline"]](view, rule.params)
            return Limit.until(day) if day is not None else None
        if "param" in within:  # depends on the rule and `by` only: resolved once per engine
            value = None
            if "by" in within:
                value = str(by(view) if by is not None else get(view, within["by"]))
            memo_key = (rule.id, value)
            if memo_key in self._limits:
                return self._limits[memo_key]
            table = rule.params[within["param"]]
            if value is not None:
                entry = table.get(value)
                if not entry:
                    return None  # not memoised: the memo holds the table's keys at most
                limit = Limit.of(entry)
            else:
                limit = Limit.of(table)
            self._limits[memo_key] = limit
            return limit
        return Limit.of(within)

    def _on_absence(self, plan: Plan, key: str, view: View, ts: int) -> list[Emitted]:
        rule, code = plan.rule, plan.code
        keys = self._keys(rule)
        pending = keys.get(key)
        if pending is not None:
            ended = False
            for end in plan.ends:
                if end(view, NO_BOUND):
                    ended = True
                    break
            if not ended:
                if plan.escalate and any(p(view, NO_BOUND) for p in plan.escalate):
                    return self._trigger(  # a level without `at`: raised by this event
                        code,
                        key,
                        view,
                        ts,
                        triggers=[pending["start"]["id"], view["event_id"]],
                        level_step=len(rule.levels) - 1,
                    )
                if plan.extends:
                    self._extend(rule, key, pending, view)
                if code.primary:
                    self._track_role(pending, view)
                return []
            del keys[key]
            if not code.rearm:
                return []  # with `rearm`, an event that fulfils and starts opens the next period
        start = plan.start
        if start is None or not start(view, NO_BOUND):
            return []
        try:
            limit = self._limit(rule, view, code.within_by)
            dues = self._dues(code, limit, ts) if limit else None
        except OutsideCalendar:
            self.stats.outside_calendar += 1
            return []
        if dues is None:
            return []
        slim = {k: view[k] for k in ("type", "stream", "actor", "subject", "data")}
        pending = {
            "start": {"id": view["event_id"], "ts": ts, "view": slim},
            "dues": dues,
            "fired": -1,
            "roles": {},
        }
        self._track_role(pending, view)
        keys[key] = pending
        self._arm(rule.id, key, pending)
        return []

    def _arm(self, rule_id: str, key: str, pending: Mapping[str, Any]) -> None:
        """Push the timer of the absence's next level: of the levels after the last fired one
        that have a due time (a level without `at` is raised by `escalate` events only), the
        one due first (then the lowest step). Each pending absence keeps one live timer; the
        engine arms the next level when one fires, so levels fire in the order, and with the
        skips, that one timer per level would give."""
        after = pending["fired"]
        best_due, best_step = None, -1
        for step, due in enumerate(pending["dues"]):
            if step > after and due is not None and (best_due is None or due < best_due):
                best_due, best_step = due, step
        if best_due is not None:
            self.timers.push_at(best_due, rule_id, key, best_step, pending["start"]["id"])

    def _on_absence_roles(self, plan: Plan, key: str, view: View, ts: int) -> list[Emitted]:
        """`_on_absence` for a type that can neither start, fulfil, escalate nor extend the
        absence (`Plan.roles_only`): all it can do is note the actor's role on a pending one."""
        if plan.code.primary:
            pending = self._keys(plan.rule).get(key)
            if pending is not None:
                self._track_role(pending, view)
        return []

    def _dues(self, code: RuleCode, limit: Limit, ts: int) -> list[int | None]:
        """The due time of each level (None: no `at`). A limit in days depends on the start's
        local date only (`ledger.workdays`: day 0 is the start day), so its due times are
        computed once per (rule, limit, local date); a date deadline depends on the instant."""
        cache_key = None
        if limit.deadline is None:
            cache_key = (code.id, limit, (ts + LOCAL_OFFSET_S) // DAY_S)
            known = self._due_cache.get(cache_key)
            if known is not None:
                return list(known)
        dues = [
            None
            if spec is None
            else level_due(
                ts,
                limit,
                fraction=spec.fraction,
                plus=spec.plus,
                plus_extension=spec.plus_extension,
                calendar=self.calendar,
                memo=self.due_memo,
            )
            for spec in code.level_dues
        ]
        if cache_key is not None:
            if len(self._due_cache) >= MAX_DUE_CACHE:
                self._due_cache.clear()
            self._due_cache[cache_key] = tuple(dues)
        return dues

    def _extend(self, rule: Rule, key: str, pending: dict[str, Any], view: View) -> None:
        extend = rule.match["extend"]
        days, kind = get(view, extend["days"]), get(view, extend["calendar"])
        if not isinstance(days, int) or kind not in ("working", "natural"):
            return
        try:
            moved = [
                None if due is None else self.due_memo.extend_due(due, days, kind)
                for due in pending["dues"]
            ]
        except OutsideCalendar:
            self.stats.outside_calendar += 1
            return
        for step, due in enumerate(moved):
            if step > pending["fired"] and due is not None:
                pending["dues"][step] = due
        self._arm(rule.id, key, pending)  # the old timer no longer matches its due time

    @staticmethod
    def _track_role(pending: dict[str, Any], view: View) -> None:
        actor = view.get("actor") or {}
        role = actor.get("role")
        if role not in ("handler", "reviewer", "approver"):
            data = view.get("data")
            step = data.get("step") if data.__class__ is dict else get(view, "data.step")
            role = ROLE_BY_STEP.get(step) if isinstance(step, str) else None
            if view["type"] == "matter.accepted":
                role = "handler"
        if role and isinstance(actor.get("official"), str):
            pending["roles"][role] = actor["official"]

    def _on_escalation(self, plan: Plan, key: str, view: View, ts: int) -> list[Emitted]:
        if plan.trigger is None:
            return []
        return self.cards.on_warning(plan.rule, key, view, ts)
