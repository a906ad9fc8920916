"""The engine's shortcuts (alerts.plans: gates on history-free trigger parts, handlers skipped
for keys with no state that the event cannot open, role tracking alone for types an absence
only follows) never change what it emits or keeps: on a
simulated labelled log, the engine with them equals the engine without them, byte for byte."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.calendar import (
    DueMemo,
    default_calendar,
    end_of_local_day,
    extend_due,
    format_ts,
    limit_due,
    local_date,
    parse_ts,
)
from alerts.engine import Engine
from alerts.plans import Plan, _gate, _reads_history
from alerts.rules import load_ruleset
from alerts.warnings import WARNING_NAMESPACE, derive_event_id
from ledger.workdays import CST, OutsideCalendar, WorkCalendar
from ops.detector_bench import engine_pass, read_log, simulated_ledger


class Plain(Engine):
    """The engine with every shortcut of its plans turned off."""

    def _route(self, event_type: str) -> tuple[tuple[Plan, ...], bool, int]:
        plans, read, slots = super()._route(event_type)
        plain = tuple(
            dataclasses.replace(
                p, gate=None, opener=None, handler=getattr(self, f"_on_{p.rule.kind}")
            )
            for p in plans
        )
        self._routes[event_type] = (plain, read, slots)
        return self._routes[event_type]


def _both_engines(
    tmp_path: Path, monkeypatch: Any, other: type[Engine], *, seed: int, anomaly_rate: float
) -> tuple[list[Any], Any, list[Any], list[Any]]:
    """One simulated log, the rule set, and what the engine and `other` emit over it."""
    directory = simulated_ledger(
        tmp_path / "ledger", events=2500, seed=seed, anomaly_rate=anomaly_rate, workers=1
    )
    events, _ = read_log(directory)
    ruleset = load_ruleset()
    ours, _ = engine_pass(ruleset, events)
    monkeypatch.setattr("ops.detector_bench.Engine", other)
    theirs, _ = engine_pass(ruleset, events)
    return events, ruleset, ours, theirs


def _dumped(emitted: list[Any]) -> list[bytes]:
    return [orjson.dumps(e.as_json()) for e in emitted]


def test_shortcuts_change_nothing_on_a_simulated_log(tmp_path: Path, monkeypatch) -> None:
    events, ruleset, fast, plain = _both_engines(
        tmp_path, monkeypatch, Plain, seed=5, anomaly_rate=0.2
    )
    assert fast, "the simulated log raises warnings"
    assert _dumped(fast) == _dumped(plain)
    shortcut = Engine(ruleset, default_calendar())
    plain_engine = Plain(ruleset, default_calendar())
    for event in events:
        shortcut.process(event, 2_000_000_000)
        plain_engine.process(event, 2_000_000_000)
    assert shortcut.state.to_bytes() == plain_engine.state.to_bytes()


def test_gates_keep_only_history_free_parts() -> None:
    rules = {r.id.split("-")[0]: r for r in load_ruleset()}
    r01 = _gate(rules["R01"], rules["R01"].match["trigger"])
    assert r01 is not None
    decide = {"type": "matter.step_completed", "data": {"step": "decide"}}
    review = {"type": "matter.step_completed", "data": {"step": "review"}}
    assert r01(decide, {})
    assert not r01(review, {})
    assert _gate(rules["R06"], rules["R06"].match["trigger"]) is None  # a fact only
    assert _reads_history({"fact": "x"})
    assert _reads_history({"eq": ["history.0.type", "a"]})
    assert not _reads_history({"all": [{"eq": ["data.step", "decide"]}]})


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(1_600_000_000, 2_100_000_000), min_size=1, max_size=4),
    st.integers(0, 40),
    st.sampled_from(["working", "natural"]),
)
def test_the_due_memo_equals_the_plain_calendar(instants: list[int], days: int, kind: str) -> None:
    calendar = default_calendar()
    memo = DueMemo(calendar, max_entries=3)
    for ts in [*instants, *instants]:  # the second round from the memo
        for fn, plain in (
            (memo.limit_due, limit_due),
            (memo.extend_due, extend_due),
        ):
            try:
                want: int | str = plain(ts, days, kind, calendar)
            except OutsideCalendar:
                want = "outside"
            try:
                got: int | str = fn(ts, days, kind)
            except OutsideCalendar:
                got = "outside"
            assert got == want


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1_500_000_000, 2_100_000_000),
    st.integers(0, 40),
    st.sampled_from(["working", "natural"]),
)
def test_calendar_arithmetic_equals_the_datetime_forms(ts: int, days: int, kind: str) -> None:
    calendar = default_calendar()
    moment = datetime.fromtimestamp(ts, UTC)
    assert local_date(ts) == (moment + CST).date()
    assert end_of_local_day(local_date(ts)) == int(WorkCalendar.end_of(local_date(ts)).timestamp())
    try:
        want: int | str = int(calendar.due_at(moment, days, kind).timestamp())
    except OutsideCalendar:
        want = "outside"
    try:
        got: int | str = limit_due(ts, days, kind, calendar)
    except OutsideCalendar:
        got = "outside"
    assert got == want


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 4_000_000_000), st.sampled_from(["", ".5", ".123456"]))
def test_parse_ts_equals_the_datetime_parse(ts: int, fraction: str) -> None:
    text = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"
    assert parse_ts(text) == ts
    assert parse_ts(text) == ts  # from the caches


@settings(max_examples=500, deadline=None)
@given(st.integers(-62_135_596_800, 253_402_300_799))
def test_format_ts_equals_the_datetime_format(ts: int) -> None:
    want = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert format_ts(ts) == want
    assert format_ts(ts) == want  # from the day cache


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(), st.integers()), min_size=1, max_size=6))
def test_derived_event_ids_equal_uuid5(parts: list[object]) -> None:
    name = "\n".join(map(str, parts))
    try:
        want = str(uuid.uuid5(WARNING_NAMESPACE, name))
    except UnicodeEncodeError:  # a lone surrogate: both refuse it
        with pytest.raises(UnicodeEncodeError):
            derive_event_id(*parts)
        return
    assert derive_event_id(*parts) == want


class EveryLevelTimer(Engine):
    """The engine as it was: every level of an absence pushed as a timer when it starts or is
    extended (stale ones skipped when popped), instead of arming one level at a time."""

    def _arm(self, rule_id: str, key: str, pending: Mapping[str, Any]) -> None:
        for step, due in enumerate(pending["dues"]):
            if step > pending["fired"] and due is not None:
                self.timers.push_at(due, rule_id, key, step, pending["start"]["id"])


def test_one_armed_level_per_absence_fires_as_every_level_timer(
    tmp_path: Path, monkeypatch
) -> None:
    events, ruleset, armed, every = _both_engines(
        tmp_path, monkeypatch, EveryLevelTimer, seed=11, anomaly_rate=0.3
    )
    assert any(e.data.get("due_at") for e in armed), "timers fired in the simulated log"
    assert _dumped(armed) == _dumped(every)
    # and after a stop part-way, late: all levels that fell due fire once, at the highest
    one, other = Engine(ruleset, default_calendar()), EveryLevelTimer(ruleset, default_calendar())
    for engine in (one, other):
        for event in events[: len(events) // 2]:
            engine.process(event, 0)
    last = max(parse_ts(e.occurred_at) for e in events)
    late_one, late_other = one.advance(last + 400 * 86_400), other.advance(last + 400 * 86_400)
    assert any(e.data.get("late") for e in late_one)
    assert [e.as_json() for e in late_one] == [e.as_json() for e in late_other]
    assert (
        orjson.loads(one.state.to_bytes())["rules"] == orjson.loads(other.state.to_bytes())["rules"]
    )
