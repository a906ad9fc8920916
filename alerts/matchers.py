"""The match kinds of the engine (DOMAIN.md §5.1): predicate, threshold, value_count, sequence,
absence and escalation, each a handler `_on_<kind>(rule, key, view, ts)` over the keyed state.

A mixin of `alerts.engine.Engine` (split out to keep each module small); the guarantees are
the engine's. Keyed state per kind (JSON values, snapshotted with the log position):

- threshold / value_count: `[[ts, event_id, value], …]` inside the rule's window (event time);
- sequence: up to 32 partial matches `{step, ts, ids, bound}`; a `cancel` event drops them;
- absence: `{start, dues, fired, roles}`; its timers sit in the engine's heap;
- escalation: see `alerts.escalation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from alerts.calendar import DAY_S, extend_due
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

    def _on_predicate(
        self, rule: Rule, key: str, view: Mapping[str, Any], ts: int
    ) -> list[Emitted]:
        if not self._matches(rule, rule.match["trigger"], view):
            return []
        return self._trigger(rule, key, view, ts, triggers=[view["event_id"]])

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
                    out += self._trigger(rule, key, view, ts, triggers=partial["ids"])
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
            if any(self._matches(rule, s, view) for s in [*m["expect"], *m.get("cancel", [])]):
                del keys[key]
                return []
            extend = m.get("extend")
            if extend and view["type"] in selector_types(extend):
                self._extend(rule, key, pending, view)
            if rule.attribution["rule"] == "primary_responsibility":
                self._track_role(pending, view)
            return []
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
            self.timers.push(Timer(due, rule.id, key, step, view["event_id"]))
        return []

    def _dues(self, rule: Rule, limit: Limit, ts: int) -> list[int]:
        return [
            level_due(
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
            moved = [extend_due(due, days, kind, self.calendar) for due in pending["dues"]]
        except OutsideCalendar:
            self.stats.outside_calendar += 1
            return
        for step, due in enumerate(moved):
            if step > pending["fired"]:
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
