"""Escalation over warnings (R24 红黄牌): cards per attributed official.

Reads the detector's own `warning.raised` / `warning.escalated` events from the log. Per key
(the attributed official) it keeps, over a rolling window of event time, each warning at the
highest level it reached, and the cards already issued. Card specs are tried in file order; a
spec fires when any of its conditions holds (`count` warnings at exactly `level`, optionally of
`grade`; or `count` earlier `yellow` cards). The warnings (or cards) that satisfy a fired spec
are consumed, so no warning counts towards two cards.

Guarantees: a card's event id derives from the rule, the official, the colour and the
triggering warning event; its `occurred_at` is that warning's time; the data names the warning
and card event ids it consumed (ids only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from alerts.calendar import DAY_S, format_ts, local_date
from alerts.rules import Rule
from alerts.view import MISSING
from alerts.view import field as get
from alerts.warnings import Emitted, card_stream, derive_event_id, level_index

if TYPE_CHECKING:
    from alerts.engine import Engine

__all__ = ["CardCounter"]


class CardCounter:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # per rule: the window in seconds, and each card spec's conditions' counts (resolved
        # once: they depend on the rule only)
        self._by_rule: dict[str, tuple[int, list[list[int]]]] = {}

    def _compiled(self, rule: Rule) -> tuple[int, list[list[int]]]:
        found = self._by_rule.get(rule.id)
        if found is None:
            window = int(rule.value(rule.match["window"])["days"]) * DAY_S
            needs = [
                [int(rule.value(cond["count"])) for cond in spec["any"]]
                for spec in rule.match["cards"]
            ]
            found = self._by_rule[rule.id] = (window, needs)
        return found

    def on_warning(self, rule: Rule, key: str, view: Mapping[str, Any], ts: int) -> list[Emitted]:
        keys = self.engine.state.rules[rule.id]
        state = keys.get(key)
        if state is None:
            state = keys[key] = {"warnings": {}, "cards": [], "consumed": []}
        data = view["data"]
        ref = data.get("warning_ref") or view["event_id"]
        if ref in state["consumed"]:
            return []
        level = data.get("level")
        grade = get(view, "data.grade")
        warnings = state["warnings"]
        known = warnings.get(ref)
        if known is None:
            warnings[ref] = [ts, level, grade if grade is not MISSING else None]
        elif level_index(level) > level_index(known[1]):
            known[1] = level
        window, needs = self._compiled(rule)
        cutoff = ts - window
        for w in warnings.values():
            if w[0] <= cutoff:  # some fell out of the window (else nothing changes)
                warnings = state["warnings"] = {r: w for r, w in warnings.items() if w[0] > cutoff}
                state["consumed"] = [r for r in state["consumed"] if r in warnings]
                break
        for c in state["cards"]:
            if c[0] <= cutoff:
                state["cards"] = [c for c in state["cards"] if c[0] > cutoff]
                break
        out: list[Emitted] = []
        for _ in range(len(rule.match["cards"]) + 1):
            card = self._next_card(rule, key, state, view, ts, needs=needs)
            if card is None:
                break
            out.append(card)
        return out

    def _next_card(
        self,
        rule: Rule,
        key: str,
        state: dict[str, Any],
        view: Mapping[str, Any],
        ts: int,
        *,
        needs: list[list[int]],
    ) -> Emitted | None:
        consumed = set(state["consumed"])  # a set: the list can be long for a busy official
        by_level: dict[str, list[tuple[str, Any]]] = {}  # one pass over the window's warnings
        for r, (_, lvl, grd) in state["warnings"].items():
            if r not in consumed:
                by_level.setdefault(lvl, []).append((r, grd))
        for spec, spec_needs in zip(rule.match["cards"], needs, strict=True):
            for cond, need in zip(spec["any"], spec_needs, strict=True):
                if cond.get("cards"):
                    refs = [c[2] for c in state["cards"] if c[1] == cond["cards"] and not c[3]]
                else:
                    candidates = by_level.get(cond["level"], [])
                    if len(candidates) < need:
                        continue  # too few, whatever their grade
                    refs = sorted(
                        r for r, grd in candidates if "grade" not in cond or grd == cond["grade"]
                    )
                if len(refs) < need:
                    continue
                used = refs[:need]
                return self._issue(
                    rule,
                    key,
                    state,
                    spec,
                    used,
                    from_cards=bool(cond.get("cards")),
                    view=view,
                    ts=ts,
                )
        return None

    def _issue(
        self,
        rule: Rule,
        official: str,
        state: dict[str, Any],
        spec: Mapping[str, Any],
        used: list[str],
        *,
        from_cards: bool,
        view: Mapping[str, Any],
        ts: int,
    ) -> Emitted:
        color = spec["color"]
        if from_cards:
            for card in state["cards"]:
                if card[2] in used:
                    card[3] = True
        else:
            state["consumed"].extend(used)
        event_id = derive_event_id(
            rule.id, rule.version, official, color, "card.issued", view["event_id"]
        )
        state["cards"].append([ts, color, event_id, False])
        self.engine.stats.cards += 1
        data = {
            "rule_id": rule.id,
            "rule_version": rule.version,
            "ruleset_hash": self.engine.ruleset.ruleset_hash,
            "color": color,
            "official": official,
            "veto": bool(spec.get("veto", False)),
            "assessment_year": local_date(ts).year,
            "warning_refs": [] if from_cards else used,
            "card_refs": used if from_cards else [],
            "trigger": view["event_id"],
        }
        return Emitted(
            "card.issued",
            card_stream(official),
            event_id,
            format_ts(ts),
            data,
            {"official": official},
        )
