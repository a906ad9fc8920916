"""Rule fixtures in the style of `promtool test rules` (DOMAIN.md §5.1), run without a ledger.

A fixture file `alerts/rules/tests/<rule id>/<case>.yaml`::

    rule: R05-processing-deadline        # or `rules: [...]` (R24 tests feed other rules' output)
    region: "4403"                       # optional: apply alerts/rules/overrides/<region>.yaml
    start: 2026-01-05                    # local date of "0d"
    calendar: cn                         # default: ledger/calendars/cn.yaml; or a name in
                                         # tests/calendars/, or {holidays: [...], working: [...]}
    downtime: [{from: "10d", to: "40d"}] # optional: the detector is down; nothing runs in between
    input_events:
      - {at: "0d 09:00", event: matter.accepted, stream: matter/4403-xk/2026-1,
         actor: {official: H1, role: handler, unit: 4403-01}, data: {matter_type: licence}}
    expect:
      - eval_at: "16d 09:00"
        warnings: [{rule: R05, key: matter/4403-xk/2026-1, level: yellow, late: false}]
        no_warnings_for: [matter/4403-xk/2026-2]
        cards: [{official: H1, color: yellow}]

`at` / `eval_at` are "<days>d[ HH:MM]" after local midnight of `start`. The clock ticks
continuously (timers fire at their due times) except during `downtime`: events that arrive
then are handled when it ends, with the clock at its end, then `advance` runs once.

At each `eval_at`, `warnings` is the EXACT set of open warnings (rule id or its `Rnn` prefix,
key, level); further fields (`late`, `attributed`, `due_at`, `action`) are compared with the
last event emitted for that warning. `cards` is the exact list of cards issued so far.
Emitted events are fed back into the engine, as the detector reads its own events in the log.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from alerts.calendar import (
    DAY_S,
    Calendar,
    default_calendar,
    end_of_local_day,
    fixture_calendar,
    format_ts,
)
from alerts.engine import Engine
from alerts.errors import RuleError
from alerts.rules import RULES_DIR, RuleSet, load_ruleset, read_yaml
from alerts.warnings import Emitted
from projections.base import LoggedEvent

__all__ = ["FixtureResult", "fixture_files", "run_fixture", "run_fixtures"]

DEFAULT_ACTOR = {"official": "H1", "role": "handler", "unit": "4403-01"}
FIXTURE_NS = uuid.uuid5(uuid.NAMESPACE_URL, "neikong/rule-fixture/v1")


@dataclass
class FixtureResult:
    path: str
    failures: list[str] = field(default_factory=list)
    emitted: list[Emitted] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def fixture_files(base: Path = RULES_DIR, rule: str | None = None) -> list[Path]:
    root = base / "tests"
    return sorted(
        p
        for p in root.glob("*/*.yaml")
        if p.parent.name != "calendars" and (rule is None or p.parent.name.startswith(rule))
    )


def _calendar(spec: Any, base: Path) -> Calendar:
    if spec is None or spec == "cn":
        return default_calendar()
    if isinstance(spec, str):
        spec = read_yaml(base / "tests" / "calendars" / f"{spec}.yaml")
    return fixture_calendar(spec.get("holidays", []), spec.get("working", []))


class _Run:
    def __init__(self, doc: Mapping[str, Any], ruleset: RuleSet, base: Path, name: str) -> None:
        self.name = name
        self.calendar = _calendar(doc.get("calendar"), base)
        self.origin = end_of_local_day(date.fromisoformat(str(doc["start"]))) - DAY_S
        self.engine = Engine(ruleset, self.calendar, late_after_s=int(doc.get("late_after_s", 60)))
        self.downtime = [(self.at(d["from"]), self.at(d["to"])) for d in doc.get("downtime", [])]
        self.position = 0
        self.seqs: dict[str, int] = {}
        self.emitted: list[Emitted] = []
        self.last: dict[str, Emitted] = {}

    def at(self, text: Any) -> int:
        days, _, clock = str(text).partition("d")
        hh, _, mm = clock.strip().partition(":")
        return self.origin + int(days) * DAY_S + int(hh or 0) * 3600 + int(mm or 0) * 60

    def down(self, ts: int) -> tuple[int, int] | None:
        return next((d for d in self.downtime if d[0] <= ts < d[1]), None)

    def logged(self, raw: Mapping[str, Any], index: int, ts: int) -> LoggedEvent:
        self.position += 1
        stream = str(raw["stream"])
        self.seqs[stream] = self.seqs.get(stream, 0) + 1
        return LoggedEvent(
            self.position,
            str(raw.get("event_id") or uuid.uuid5(FIXTURE_NS, f"{self.name}#{index}")),
            stream,
            self.seqs[stream],
            str(raw["event"]),
            format_ts(ts),
            "fixture",
            dict(raw.get("actor") or DEFAULT_ACTOR),
            dict(raw.get("subject") or {}),
            dict(raw.get("data") or {}),
            {},
        )

    def feed(self, out: list[Emitted], now: int) -> None:
        queue = list(out)
        while queue:
            item = queue.pop(0)
            self.emitted.append(item)
            self.last[item.stream] = item
            self.position += 1
            self.seqs[item.stream] = self.seqs.get(item.stream, 0) + 1
            event = LoggedEvent(
                self.position,
                item.event_id,
                item.stream,
                self.seqs[item.stream],
                item.type,
                item.occurred_at,
                "neikong-detector",
                {"official": "neikong-detector", "role": "detector"},
                item.subject or {},
                item.data,
                {},
            )
            queue += self.engine.process(event, now)

    def tick(self, target: int, inclusive: bool) -> None:
        while (due := self.engine.next_due()) is not None and (
            due < target or (inclusive and due == target)
        ):
            window = self.down(due)
            if window is not None and window[1] > due and window[1] >= target:
                return
            self.feed(self.engine.advance(due), due)


def _matches(expected: Mapping[str, Any], rule_id: str) -> bool:
    want = str(expected["rule"])
    return rule_id == want or rule_id.startswith(want + "-")


def _check(run: _Run, exp: Mapping[str, Any], label: str) -> list[str]:
    failures = []
    open_now = dict(run.engine.state.open)
    wanted = list(exp.get("warnings") or [])
    seen = set()
    for w in wanted:
        hits = [
            (rk, e)
            for rk, e in open_now.items()
            if _matches(w, rk.split("\n", 1)[0]) and rk.split("\n", 1)[1] == str(w["key"])
        ]
        if not hits:
            failures.append(f"{label}: expected an open warning {w['rule']} for {w['key']}")
            continue
        rk, entry = hits[0]
        seen.add(rk)
        if entry["level"] != w["level"]:
            failures.append(
                f"{label}: {w['rule']} {w['key']} is {entry['level']}, expected {w['level']}"
            )
        last = run.last[entry["stream"]].data
        for name in ("late", "attributed", "due_at", "action"):
            if name in w and last.get(name) != w[name]:
                failures.append(
                    f"{label}: {w['rule']} {w['key']} {name}={last.get(name)!r},"
                    f" expected {w[name]!r}"
                )
    if "warnings" in exp:
        for rk in sorted(set(open_now) - seen):
            rule_id, key = rk.split("\n", 1)
            failures.append(
                f"{label}: unexpected open warning {rule_id} {key} ({open_now[rk]['level']})"
            )
    for key in exp.get("no_warnings_for") or []:
        if any(rk.split("\n", 1)[1] == str(key) for rk in open_now):
            failures.append(f"{label}: expected no warning for {key}")
    if "emitted" in exp and len(run.emitted) != exp["emitted"]:
        failures.append(f"{label}: {len(run.emitted)} events emitted, expected {exp['emitted']}")
    if "cards" in exp:
        got = [
            {"official": c.data["official"], "color": c.data["color"]}
            for c in run.emitted
            if c.type == "card.issued"
        ]
        want = [{"official": str(c["official"]), "color": c["color"]} for c in exp["cards"] or []]
        if got != want:
            failures.append(f"{label}: cards {got}, expected {want}")
    return failures


def run_fixture(path: Path, base: Path = RULES_DIR) -> FixtureResult:
    """Run one fixture file; a malformed fixture is a `RuleError`."""
    doc = read_yaml(path)
    name = path.relative_to(base).as_posix() if path.is_relative_to(base) else str(path)
    try:
        ids = doc["rules"] if "rules" in doc else [doc["rule"]]
        full = load_ruleset(base, doc.get("region"))
        ruleset = full.only(
            [r.id for r in full if any(r.id == i or r.id.startswith(i + "-") for i in ids)]
        )
        run = _Run(doc, ruleset, base, name)
        timeline: list[tuple[int, int, int, str, Any]] = []
        for i, raw in enumerate(doc.get("input_events") or []):
            ts = run.at(raw["at"])
            window = run.down(ts)
            timeline.append((window[1] if window else ts, 0, i, "event", (i, raw, ts)))
        for j, (_, end) in enumerate(run.downtime):
            timeline.append((end, 1, j, "up", None))
        for k, exp in enumerate(doc.get("expect") or []):
            timeline.append((run.at(exp["eval_at"]), 2, k, "eval", exp))
    except (KeyError, TypeError, ValueError) as exc:
        raise RuleError(f"{name}: malformed fixture: {exc!r}") from exc
    result = FixtureResult(name)
    for when, _, _, action, payload in sorted(timeline, key=lambda t: t[:3]):
        if action == "event":
            i, raw, ts = payload
            run.tick(when, inclusive=False)
            run.feed(run.engine.process(run.logged(raw, i, ts), when), when)
        elif action == "up":
            run.feed(run.engine.advance(when), when)
        else:
            run.tick(when, inclusive=True)
            if run.down(when) is None:
                run.feed(run.engine.advance(when), when)
            result.failures += _check(run, payload, f"{name} @ {payload['eval_at']}")
    result.emitted = run.emitted
    return result


def run_fixtures(base: Path = RULES_DIR, rule: str | None = None) -> list[FixtureResult]:
    return [run_fixture(p, base) for p in fixture_files(base, rule)]
