"""The match kinds of the engine (DOMAIN.md §5.1): predicate, threshold, value_count, sequence,
absence, aggregate_outlier and escalation, each a handler `_on_<kind>(rule, key, view, ts)` over
the keyed state.

Predicate and sequence rules MAY give levels a `when` condition: the warning takes the first
level whose `when` holds for the triggering event (a level without `when` always holds).
An absence rule with `rearm: true` treats an event that fulfils the pending absence and also
matches `start` as the start of the next period (recurring obligations: R19, R23); its
`within: {deadline: NAME}` takes the deadline date from a named deadline function.

A mixin of `alerts.engine.Engine` (split out to keep each module small); the guarantees are
the engine's. Keyed state per kind (JSON values, snapshotted with the log position):

- threshold / value_count: `[[ts, event_id, value], …]` inside the rule's window (event time);
- sequence: up to 32 partial matches `{step, ts, ids, bound}`; a `cancel` event drops them;
- absence: `{start, dues, fired, roles}`; its timers sit in the engine's heap;
- aggregate_outlier: `"group|<values>" -> [[ts, event_id, official, value], …]` inside the
  window (see `alerts.outlier`);
- escalation: see `alerts.escalation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from alerts.calendar import DAY_S, extend_due
from alerts.outlier import outlier_verdict
from alerts.predicates import DEADLINES, evaluate
from alerts.rules import Rule, parse_ratio
from alerts.timers import Limit, Timer, level_due
from alerts.view import MISSING
from alerts.view import field as get
from alerts.warnings import Emitted
from ledger.workdays import OutsideCalendar

if TYPE_CHECKING:
    from alerts.calendar import Calendar
    from alerts.engine import EngineStats
    from alerts.escalation import CardCounter
    from alerts.state import DetectorState
    from alerts.timers import TimerHeap

__all__ = ["MAX_PARTIALS", "ROLE_BY_STEP", "MatchKinds", "selector_types"]

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

    if TYPE_CHECKING:

        def _keys(self, rule: Rule) -> dict[str, Any]: ...

        def _matches(
            self,
            rule: Rule,
            selector: Mapping[str, Any],
            view: Mapping[str, Any],
            bound: Mapping[str, Any] | None = None,
        ) -> bool: ...

        def _trigger(
            self,
            rule: Rule,
            key: str,
            view: Mapping[str, Any],
            ts: int,
            *,
            triggers: list[str],
            level_step: int = 0,
        ) -> list[Emitted]: ...

    @staticmethod
    def _level_step(
        rule: Rule, view: Mapping[str, Any], bound: Mapping[str, Any] | None = None
    ) -> int:
        """The first level whose `when` holds for the triggering event (no `when`: always)."""
        for step, spec in enumerate(rule.levels):
            if "when" not in spec or evaluate(spec["when"], view, rule.params, bound):
                return step
        return 0

    # -- per-key history (match.history) -------------------------------------------------

    def with_history(self, rule: Rule, key: str, view: dict[str, Any], ts: int) -> dict[str, Any]:
        """`view` plus `history`: the earlier events of `key` the rule keeps (oldest first,
        inside `history.window`), for facts to read; `view` itself if the rule keeps none."""
        spec = rule.match.get("history")
        if not spec:
            return view
        kept = self.state.rules.get(f"{rule.id}#history", {}).get(key, [])
        window = spec.get("window")
        if window is not None and kept:
            cutoff = ts - int(rule.value(window)["days"]) * DAY_S
            kept = [h for h in kept if h["ts"] > cutoff]
        return {**view, "history": kept}

    def remember(self, rule: Rule, key: str, view: Mapping[str, Any], ts: int) -> None:
        """Keep `view` in `key`'s history when it matches `history` (at most `max` events,
        the latest); forget the key after an event matching one of `history.drop`."""
        spec = rule.match.get("history")
        if not spec:
            return
        store = self.state.rules.setdefault(f"{rule.id}#history", {})
        if self._matches(rule, spec, view):
            slim = {k: view[k] for k in ("type", "event_id", "occurred_at", "actor", "data")}
            slim["ts"], slim["seq"] = ts, view.get("position", 0)
            limit = int(rule.value(spec["max"]))
            kept = store.get(key)
            if kept is None:
                store[key] = [slim][-limit:]
            else:  # in place: no copy of the whole history per event
                kept.append(slim)
                if len(kept) > limit:
                    del kept[:-limit]
        if key in store and any(self._matches(rule, d, view) for d in spec.get("drop", [])):
            del store[key]

    def _on_predicate(
        self, rule: Rule, key: str, view: Mapping[str, Any], ts: int
    ) -> list[Emitted]:
        if not self._matches(rule, rule.match["trigger"], view):
            return []
        return self._trigger(
            rule,
            key,
            view,
            ts,
            triggers=[view["event_id"]],
            level_step=self._level_step(rule, view),
        )

    def _on_aggregate_outlier(
        self, rule: Rule, key: str, view: Mapping[str, Any], ts: int
    ) -> list[Emitted]:
        """Per peer group, the cases of the window; the event's official compared with peers."""
        m = rule.match
        if not self._matches(rule, m["trigger"], view):
            return []
        official, value = get(view, m["subject"]), get(view, m["value"])
        group = [get(view, path) for path in m["group"]]
        if not isinstance(official, str) or not isinstance(value, str | int):
            return []
        if any(g is MISSING or isinstance(g, dict | list) for g in group):
            return []
        gkey = "group|" + "|".join(str(g) for g in group)
        cutoff = ts - int(rule.value(m["window"])["days"]) * DAY_S
        keys = self._keys(rule)
        cases = [c for c in keys.get(gkey, []) if c[0] > cutoff]
        cases.append([ts, view["event_id"], official, str(value)])
        keys[gkey] = cases
        hits = outlier_verdict(
            cases,
            official,
            min_cases=int(rule.value(m["min_cases"])),
            min_peers=int(rule.value(m["min_peers"])),
            sigmas=parse_ratio(rule.value(m["sigmas"])),
        )
        if hits is None:
            return []
        return self._trigger(rule, key, view, ts, triggers=hits)

    def _window_hits(
        self, rule: Rule, key: str, view: Mapping[str, Any], ts: int, value: Any
    ) -> list[list[Any]] | None:
        if not self._matches(rule, rule.match["trigger"], view):
            return None
        window = rule.value(rule.match["window"])
        cutoff = ts - int(window["days"]) * DAY_S
        hits = [h for h in self._keys(rule).get(key, []) if h[0] > cutoff]
        hits.append([ts, view["event_id"], value])
        self._keys(rule)[key] = hits
        return hits

    def _on_threshold(
        self, rule: Rule, key: str, view: Mapping[str, Any], ts: int
    ) -> list[Emitted]:
        hits = self._window_hits(rule, key, view, ts, None)
        if hits is None or len(hits) < int(rule.value(rule.match["count"])):
            return []
        return self._trigger(rule, key, view, ts, triggers=[h[1] for h in hits])

    def _on_value_count(
        self, rule: Rule, key: str, view: Mapping[str, Any], ts: int
    ) -> list[Emitted]:
        value = get(view, rule.match["distinct"])
        hits = self._window_hits(rule, key, view, ts, None if value is MISSING else value)
        if hits is None or len({h[2] for h in hits if h[2] is not None}) < int(
            rule.value(rule.match["count"])
        ):
            return []
        return self._trigger(rule, key, view, ts, triggers=[h[1] for h in hits])

    def _on_sequence(self, rule: Rule, key: str, view: Mapping[str, Any], ts: int) -> list[Emitted]:
        steps = rule.match["steps"]
        keys = self._keys(rule)
        partials: list[dict[str, Any]] = keys.get(key, [])
        span = rule.match.get("maxspan")
        if span is not None:
            cutoff = ts - int(rule.value(span)["days"]) * DAY_S
            partials = [p for p in partials if p["ts"] > cutoff]
        if partials and any(self._matches(rule, s, view) for s in rule.match.get("cancel", [])):
            keys.pop(key, None)  # the matter ended: its partial matches can never complete
            return []
        out: list[Emitted] = []
        for partial in list(partials):
            if self._matches(rule, steps[partial["step"]], view, partial["bound"]):
                partial["step"] += 1
                partial["ids"].append(view["event_id"])
                self._bind(steps[partial["step"] - 1], view, partial["bound"])
                if partial["step"] == len(steps):
                    partials.remove(partial)
                    step = self._level_step(rule, view, partial["bound"])
                    out += self._trigger(
                        rule, key, view, ts, triggers=partial["ids"], level_step=step
                    )
        if not out and self._matches(rule, steps[0], view):
            partial = {"step": 1, "ts": ts, "ids": [view["event_id"]], "bound": {}}
            self._bind(steps[0], view, partial["bound"])
            partials = [*partials, partial][-MAX_PARTIALS:]
        if partials:
            keys[key] = partials
        else:
            keys.pop(key, None)
        return out

    @staticmethod
    def _bind(selector: Mapping[str, Any], view: Mapping[str, Any], bound: dict[str, Any]) -> None:
        for name, path in (selector.get("bind") or {}).items():
            value = get(view, path)
            if value is not MISSING:
                bound[name] = value

    def _limit(self, rule: Rule, view: Mapping[str, Any]) -> Limit | None:
        within = rule.match["within"]
        if "until" in within:
            value = get(view, within["until"])
            return Limit.until(date.fromisoformat(value)) if isinstance(value, str) else None
        if "deadline" in within:
            day = DEADLINES[within["deadline"]](view, rule.params)
            return Limit.until(day) if day is not None else None
        if "param" in within:
            table = rule.params[within["param"]]
            if "by" in within:
                entry = table.get(str(get(view, within["by"])))
                return Limit.of(entry) if entry else None
            return Limit.of(table)
        return Limit.of(within)

    def _on_absence(self, rule: Rule, key: str, view: Mapping[str, Any], ts: int) -> list[Emitted]:
        m = rule.match
        keys = self._keys(rule)
        pending = keys.get(key)
        if pending is not None:
            if not any(self._matches(rule, s, view) for s in [*m["expect"], *m.get("cancel", [])]):
                if any(self._matches(rule, s, view) for s in m.get("escalate") or []):
                    return self._trigger(  # a level without `at`: raised by this event
                        rule,
                        key,
                        view,
                        ts,
                        triggers=[pending["start"]["id"], view["event_id"]],
                        level_step=len(rule.levels) - 1,
                    )
                extend = m.get("extend")
                if extend and view["type"] in selector_types(extend):
                    self._extend(rule, key, pending, view)
                if rule.attribution["rule"] == "primary_responsibility":
                    self._track_role(pending, view)
                return []
            del keys[key]
            if not m.get("rearm"):
                return []  # with `rearm`, an event that fulfils and starts opens the next period
        if not self._matches(rule, m["start"], view):
            return []
        try:
            limit = self._limit(rule, view)
            dues = self._dues(rule, limit, ts) if limit else None
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
        for step, due in enumerate(dues):
            if due is not None:  # a level without `at` is raised by `escalate` events only
                self.timers.push(Timer(due, rule.id, key, step, view["event_id"]))
        return []

    def _dues(self, rule: Rule, limit: Limit, ts: int) -> list[int | None]:
        return [
            None
            if "at" not in spec
            else level_due(
                ts,
                limit,
                fraction=parse_ratio(rule.value(spec["at"]["fraction"])),
                plus=rule.value(spec["at"]["plus"]) if "plus" in spec["at"] else None,
                plus_extension=bool(spec["at"].get("plus_extension")),
                calendar=self.calendar,
            )
            for spec in rule.levels
        ]

    def _extend(
        self, rule: Rule, key: str, pending: dict[str, Any], view: Mapping[str, Any]
    ) -> None:
        extend = rule.match["extend"]
        days, kind = get(view, extend["days"]), get(view, extend["calendar"])
        if not isinstance(days, int) or kind not in ("working", "natural"):
            return
        try:
            moved = [
                None if due is None else extend_due(due, days, kind, self.calendar)
                for due in pending["dues"]
            ]
        except OutsideCalendar:
            self.stats.outside_calendar += 1
            return
        for step, due in enumerate(moved):
            if step > pending["fired"] and due is not None:
                pending["dues"][step] = due
                self.timers.push(
                    Timer(pending["dues"][step], rule.id, key, step, pending["start"]["id"])
                )

    @staticmethod
    def _track_role(pending: dict[str, Any], view: Mapping[str, Any]) -> None:
        actor = view.get("actor") or {}
        role = actor.get("role")
        if role not in ("handler", "reviewer", "approver"):
            step = get(view, "data.step")
            role = ROLE_BY_STEP.get(step) if isinstance(step, str) else None
            if view["type"] == "matter.accepted":
                role = "handler"
        if role and isinstance(actor.get("official"), str):
            pending["roles"][role] = actor["official"]

    def _on_escalation(
        self, rule: Rule, key: str, view: Mapping[str, Any], ts: int
    ) -> list[Emitted]:
        if view["type"] not in selector_types({"event": rule.match["over"]}):
            return []
        return self.cards.on_warning(rule, key, view, ts)
