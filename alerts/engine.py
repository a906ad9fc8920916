"""The streaming detector engine: events in log order -> warnings (and cards) out.

`Engine.process(event, now)` handles one logged event; `Engine.advance(now)` fires the timers
due by `now` (the wall clock in `neikong detect`, a fake clock in tests). Both return the events
to append (`Emitted`); the engine never writes anything itself.

Guarantees:

- Deterministic: with the same rule set, the same events in the same order and the same
  sequence of `now` values, the emitted events are identical, byte for byte. Warning content
  depends on event time only; `now` decides just whether a timer fired `late`.
- Timers run on event time: before an event is handled, timers due strictly before the highest
  event time seen so far (capped at `now`: an event stamped in the future, such as a key
  enrolment by wall clock, never fires a timer early) fire; `advance(now)` fires those due at
  or before `now`.
- A timer evaluated more than `late_after_s` after its due time is late: all the levels of one
  (rule, key) that fell due while the detector was behind fire ONCE, at the highest due level,
  with `late: true` (before the next event of that key, or at the end of `advance`).
- One open warning per (rule, key): a higher level escalates it in place (`warning.escalated`);
  a repeated trigger at the same level escalates one step if the rule's suppress mode is
  `escalate_in_place`, else is counted as suppressed. `warning.closed` in the log closes it.
- An active exception (its `when` holds and the trigger's local date is on or before
  `expires`) drops the trigger and is counted; an expired one does not apply.

Speed (one core): each rule is compiled once per event type (`alerts.plans`), and work whose
result is known is skipped (`alerts.dispatch`, `Plan.opener` / `gate` / `roles_only`: a
handler is not called when a condition it needs provably fails); pure computations are
memoised per engine (due times, the calendar's limit ends, R06/R02 fact verdicts: reset when
an engine is created); R18's peer groups keep running sums (`alerts.outlier.OutlierGroup`,
rebuilt from the state's cases after a restore); a pending absence keeps one live timer.
None of this changes what is emitted or kept (tests/alerts/test_plans.py runs the engine with
and without the shortcuts, and with a timer per level).
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alerts.calendar import Calendar, DueMemo, format_ts, local_date, parse_ts
from alerts.compiled import Getter, Pred, compile_path
from alerts.dispatch import keys_of, rule_reads
from alerts.escalation import CardCounter
from alerts.facts_enforcement import reset_memos
from alerts.matchers import NO_BOUND, MatchKinds
from alerts.plans import NEVER, Plan, RuleCode, compile_plan
from alerts.rules import Rule, RuleSet
from alerts.state import DetectorState
from alerts.timers import TimerHeap
from alerts.view import MISSING
from alerts.view import field as get
from alerts.warnings import LEVELS, Emitted, derive_event_id, level_index, warning_stream
from projections.base import LoggedEvent

__all__ = ["Engine", "EngineStats", "event_view"]


def event_view(event: LoggedEvent) -> dict[str, Any]:
    return {
        "type": event.type,
        "stream": event.stream,
        "event_id": event.event_id,
        "occurred_at": event.occurred_at,
        "system": event.system,
        "actor": event.actor,
        "subject": event.subject,
        "data": event.data,
        "position": event.position,
    }


_Row = tuple[Plan, str, bool, int, tuple[Getter, ...], bool | None, bool, Pred | None, Pred | None]


def _row(plan: Plan) -> _Row:
    """What `Engine.process` reads of a plan for every event, as one tuple to unpack."""
    return (
        plan,
        plan.rule_id,
        plan.follower,
        plan.slot,
        plan.getters,
        plan.keeps,
        plan.acts,
        plan.opener,
        plan.gate,
    )


@dataclass
class EngineStats:
    """Plain counters since the engine was created (not part of the snapshot); `ops/`
    translates them into Prometheus metrics, so `alerts/` needs no metrics library."""

    processed: int = 0
    raised: int = 0
    escalated: int = 0
    suppressed: int = 0
    exceptions_applied: int = 0
    late: int = 0
    outside_calendar: int = 0
    cards: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    processed_by_type: dict[str, int] = field(default_factory=dict)
    emitted_by_rule_level: dict[tuple[str, str], int] = field(default_factory=dict)
    suppressed_by_rule: dict[str, int] = field(default_factory=dict)
    exceptions_by_rule: dict[str, int] = field(default_factory=dict)


class Engine(MatchKinds):
    def __init__(
        self,
        ruleset: RuleSet,
        calendar: Calendar,
        state: DetectorState | None = None,
        late_after_s: int = 60,
    ) -> None:
        self.ruleset = ruleset
        self.calendar = calendar
        self.state = state or DetectorState()
        self.timers = TimerHeap(self.state.timers)
        self.state.timers = self.timers.items
        self.late_after_s = late_after_s
        self.stats = EngineStats()
        self.cards = CardCounter(self)
        self._reads: dict[str, frozenset[str]] = {}
        self._follows: dict[str, bool] = {}
        self._codes: dict[str, RuleCode] = {}
        for rule in ruleset:
            self.state.rules.setdefault(rule.id, {})
            self._reads[rule.id] = rule_reads(rule)
            self._follows[rule.id] = (
                rule.kind == "absence" and rule.attribution["rule"] == "primary_responsibility"
            )
            self._codes[rule.id] = RuleCode(rule)
        # Per-event dispatch, compiled once (rules depend on the rule set only): event type ->
        # (plans in rule-set order, whether a rule reads the type); key paths -> getters.
        self._routes: dict[str, tuple[tuple[Plan, ...], bool, int]] = {}
        self._key_getters: dict[tuple[str, ...], tuple[Getter, ...]] = {}
        self._rows: dict[str, tuple[tuple[Plan, ...], tuple[_Row, ...]]] = {}
        self._due_cache = {}
        self._outlier_groups = {}
        self._limits = {}
        self.due_memo = DueMemo(calendar)
        reset_memos()  # memoised fact verdicts never outlive a run (alerts.facts_enforcement)

    # -- public surface --------------------------------------------------------------------

    def next_due(self) -> int | None:
        items = self.timers.items  # as `TimerHeap.next_due`, one call less (per event)
        return int(items[0][0]) if items else None

    def open_warnings(self) -> dict[str, dict[str, Any]]:
        return self.state.open

    def process(self, event: LoggedEvent, now: int) -> list[Emitted]:
        stats, state = self.stats, self.state
        stats.processed += 1
        event_type = event.type
        by_type = stats.processed_by_type
        by_type[event_type] = by_type.get(event_type, 0) + 1
        ts = parse_ts(event.occurred_at)
        plans, read, slots = self._routes.get(event_type) or self._route(event_type)
        if read:  # a rule reads this type (not only follows it)
            # Only events some rule reads move event time: the ledger's own events (key
            # registry, projection roots, audit records) are stamped by the wall clock of the
            # service that wrote them, and a replayed history must not jump to "now" because an
            # enrolment sits before it in the log (every pending timer would fire at once).
            state.watermark = max(state.watermark, min(ts, now))
        heap = self.timers.items
        out: list[Emitted] = []
        if heap and heap[0][0] < state.watermark:
            out = self._fire(state.watermark, strict=True, now=now)
        if event_type == "warning.closed":
            self._close(event.stream)
        if not plans:
            return out
        rows = self._rows.get(event_type)
        if rows is None or rows[0] is not plans:  # the plans' fields, unpacked per row
            rows = self._rows[event_type] = (plans, tuple(_row(p) for p in plans))
        view = event_view(event)
        late = state.late
        rules = state.rules
        entry: dict[str, Any] | None = None  # the event's history entry, shared by rules
        with_history: dict[str, Any] | None = None  # the view plus a rule's key's history
        keyed: list[list[str] | None] = [None] * slots  # plans with the same key paths share
        for plan, rule_id, follower, slot, getters, keeps, acts, opens, gate in rows[1]:
            kstate = rules[rule_id]
            if follower and not kstate:
                continue  # not a selector's type: only a possible role for a pending absence
            keys = keyed[slot]
            if keys is None:
                value = getters[0](view) if len(getters) == 1 else None  # one path: inline
                keys = [value] if value.__class__ is str else keys_of(getters, view)
                keyed[slot] = keys
            for key in keys:
                if late and f"{rule_id}\n{key}" in late:
                    out += self._flush_late(plan.rule, key)
                if key in kstate:
                    opener = None
                elif follower:
                    continue  # no absence pending for this key: nothing to track
                else:
                    opener = opens  # no state: only an event that opens one acts
                if acts and opener is not NEVER and (gate is None or gate(view, NO_BOUND)):
                    seen = view
                    if keeps is not None:  # the rule keeps a history: its facts read it
                        if with_history is None:  # one copy per event; no handler keeps it
                            with_history = dict(view)
                        with_history["history"] = self._history_of(plan.code, key, ts)
                        seen = with_history
                    if opener is None or opener(seen, NO_BOUND):
                        out += plan.handler(plan, key, seen, ts)
                if keeps:
                    entry = self._remember(plan, key, view, ts, entry)
        return out

    def _route(self, event_type: str) -> tuple[tuple[Plan, ...], bool, int]:
        """The rules an event of `event_type` may concern, in rule-set order, each compiled
        for the type (`alerts.plans.Plan`: handler, whether the rule only follows the type
        for a pending absence's roles, whether the handler can act on it, whether it may
        enter or drop the key's history, key getters, selectors); and whether any of them
        reads the type (not only follows it); and the number of distinct key paths."""
        route = self._routes.get(event_type)
        if route is None:
            slots: dict[int, int] = {}  # id(getters) -> slot (getters are shared per paths)
            plans = []
            for rule in self.ruleset:
                if event_type not in self._reads[rule.id] and not self._follows[rule.id]:
                    continue
                getters = self._getters(rule, event_type)
                plan = compile_plan(
                    rule,
                    self._codes[rule.id],
                    event_type,
                    handler=getattr(self, f"_on_{rule.kind}"),
                    follower=event_type not in self._reads[rule.id],
                    getters=getters,
                    slot=slots.setdefault(id(getters), len(slots)),
                )
                if plan.roles_only:  # the same outcome without the absence's other checks
                    plan = dataclasses.replace(plan, handler=self._on_absence_roles)
                plans.append(plan)
            read = any(not p.follower for p in plans)
            route = self._routes[event_type] = (tuple(plans), read, len(slots))
        return route

    def advance(self, now: int) -> list[Emitted]:
        out = self._fire(now, strict=False, now=now)
        for rk in sorted(self.state.late):
            rule_id, key = rk.split("\n", 1)
            out += self._flush_late(self._rule(rule_id), key)
        return out

    # -- keys, exceptions, attribution -----------------------------------------------------

    def _rule(self, rule_id: str) -> Rule:
        code = self._codes.get(rule_id)
        return code.rule if code is not None else self.ruleset.get(rule_id)  # raises RuleError

    def _getters(self, rule: Rule, event_type: str) -> tuple[Getter, ...]:
        """`match.key_for[type]` or `match.key` paths, compiled; one tuple per distinct paths."""
        paths = tuple((rule.match.get("key_for") or {}).get(event_type, rule.match["key"]))
        getters = self._key_getters.get(paths)
        if getters is None:
            getters = self._key_getters[paths] = tuple(compile_path(p) for p in paths)
        return getters

    def _keys(self, rule: Rule) -> dict[str, Any]:
        rules = self.state.rules
        keys = rules.get(rule.id)
        if keys is None:
            keys = rules[rule.id] = {}
        return keys

    def exception_applies(self, rule: Rule, view: Mapping[str, Any], ts: int) -> bool:
        exceptions = self._codes[rule.id].exceptions
        if not exceptions:
            return False
        day = local_date(ts)
        for exc in exceptions:
            if day <= exc.expires and exc.when(view, NO_BOUND):
                self.stats.exceptions_applied += 1
                by_rule = self.stats.exceptions_by_rule
                by_rule[rule.id] = by_rule.get(rule.id, 0) + 1
                return True
        return False

    def _attributed(
        self, rule: Rule, view: Mapping[str, Any], roles: Mapping[str, str] | None = None
    ) -> dict[str, str] | None:
        spec = rule.attribution
        official: Any = MISSING
        role = spec.get("role", "official")
        if spec["rule"] == "field":
            official = get(view, spec["path"])
        elif roles:
            for candidate in ("reviewer", "approver", "handler"):
                if candidate == "reviewer" and "approver" not in roles:
                    continue
                if candidate in roles:
                    official, role = roles[candidate], candidate
                    break
        if isinstance(official, str):
            return {"official": official, "role": role}
        unit = get(view, spec.get("unit_path", "actor.unit"))
        if spec["fallback"] == "unit_head" and isinstance(unit, str):
            return {"unit": unit, "role": "unit_head"}
        return None

    # -- raising, escalating, suppressing --------------------------------------------------

    def raise_warning(
        self,
        rule: Rule,
        key: str,
        level: str,
        *,
        trigger: str,
        triggers: list[str],
        ts: int,
        attributed: dict[str, str] | None,
        repeat: bool,
        due_at: int | None = None,
        late: bool = False,
        action: str | None = None,
    ) -> list[Emitted]:
        rk = f"{rule.id}\n{key}"
        current = self.state.open.get(rk)
        if current is not None:
            have = level_index(current["level"])
            want = level_index(level)
            if want <= have:
                if not repeat or rule.suppress_mode != "escalate_in_place" or have == 3:
                    self.stats.suppressed += 1
                    by_rule = self.stats.suppressed_by_rule
                    by_rule[rule.id] = by_rule.get(rule.id, 0) + 1
                    return []
                want = have + 1
            level = LEVELS[want]
        data: dict[str, Any] = {
            "rule_id": rule.id,
            "rule_version": rule.version,
            "ruleset_hash": self.ruleset.ruleset_hash,
            "level": level,
            "grade": rule.grade,
            "category": rule.category,
            "key": key,
            "attributed": attributed,
            "triggers": triggers[-64:],  # the schema bounds the list; the latest matter most
            "late": late,
        }
        if due_at is not None:
            data["due_at"] = format_ts(due_at)
        if action:
            data["action"] = action
        kind = "warning.raised" if current is None else "warning.escalated"
        event_id = derive_event_id(rule.id, rule.version, key, level, kind, trigger)
        if current is None:
            stream = warning_stream(rule.id, key)
            self.state.open[rk] = {"level": level, "raised_id": event_id, "stream": stream}
            self.stats.raised += 1
        else:
            stream = current["stream"]
            data["warning_ref"] = current["raised_id"]
            data["from_level"] = current["level"]
            current["level"] = level
            self.stats.escalated += 1
        self.stats.late += int(late)
        self.stats.by_rule[rule.id] = self.stats.by_rule.get(rule.id, 0) + 1
        emitted = self.stats.emitted_by_rule_level
        emitted[(rule.id, level)] = emitted.get((rule.id, level), 0) + 1
        return [Emitted(kind, stream, event_id, format_ts(ts), data)]

    def _close(self, stream: str) -> None:
        for rk, entry in list(self.state.open.items()):
            if entry["stream"] == stream:
                del self.state.open[rk]

    # -- timers ----------------------------------------------------------------------------

    def _fire(self, until: int, *, strict: bool, now: int) -> list[Emitted]:
        out: list[Emitted] = []
        heap = self.timers.items
        if not heap or heap[0][0] > until:
            return out  # nothing due (the common case: checked before every event)
        rules = self.state.rules
        # one at a time: firing a level arms the absence's next level, which may be due too
        # (it sorts after the popped timer: the heap still pops in (due, rule, key, step) order)
        while heap and (heap[0][0] < until or (not strict and heap[0][0] == until)):
            due_at, rule_id, key, step, start_id = heapq.heappop(heap)
            rule = self._rule(rule_id)
            pending = rules.setdefault(rule.id, {}).get(key)
            # current: its absence is still pending from the same start, the step is not yet
            # fired and the due time still holds (an extension pushes a new timer)
            if (
                pending is None
                or pending["start"]["id"] != start_id
                or step <= pending["fired"]
                or pending["dues"][step] != due_at
            ):
                continue
            pending["fired"] = step
            self._arm(rule.id, key, pending)
            rk = f"{rule.id}\n{key}"
            if now - due_at > self.late_after_s:
                self.state.late[rk] = [due_at, step, start_id]
                continue
            self.state.late.pop(rk, None)
            out += self._timer_warning(rule, key, pending, due_at, step, late=False)
        return out

    def _flush_late(self, rule: Rule, key: str) -> list[Emitted]:
        entry = self.state.late.pop(f"{rule.id}\n{key}", None)
        if entry is None:
            return []
        pending = self._keys(rule).get(key)
        if pending is None or pending["start"]["id"] != entry[2]:
            return []
        return self._timer_warning(rule, key, pending, entry[0], entry[1], late=True)

    def _timer_warning(
        self, rule: Rule, key: str, pending: Mapping[str, Any], due: int, step: int, *, late: bool
    ) -> list[Emitted]:
        start = pending["start"]
        if self.exception_applies(rule, start["view"], due):
            return []
        spec = rule.levels[step]
        return self.raise_warning(
            rule,
            key,
            spec["level"],
            trigger=f"{start['id']}#{step}",
            triggers=[start["id"]],
            ts=due,
            attributed=self._attributed(rule, start["view"], pending.get("roles")),
            repeat=False,
            due_at=due,
            late=late,
            action=spec.get("action"),
        )

    # -- match kinds -----------------------------------------------------------------------

    def _trigger(
        self,
        code: RuleCode,
        key: str,
        view: Mapping[str, Any],
        ts: int,
        *,
        triggers: list[str],
        level_step: int = 0,
    ) -> list[Emitted]:
        rule = code.rule
        if self.exception_applies(rule, view, ts):
            return []
        spec = rule.levels[level_step]
        return self.raise_warning(
            rule,
            key,
            spec["level"],
            trigger=view["event_id"],
            triggers=triggers,
            ts=ts,
            attributed=self._attributed(rule, view),
            repeat=True,
            action=spec.get("action"),
        )
