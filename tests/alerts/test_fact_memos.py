"""R06's memoised verdict (alerts.facts_enforcement): equal to the conformance check it stands
for on generated matters, whatever the memo already holds, and reset by every new engine."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import alerts.facts_enforcement as facts
from alerts.calendar import default_calendar
from alerts.engine import Engine
from alerts.rules import load_ruleset
from ledger.flows import load_flow_versions
from ledger.workdays import default_calendar as workdays_calendar
from projections.conformance import check_matter

FLOW_MAP = load_flow_versions()
FLOWS = sorted(FLOW_MAP.values(), key=lambda f: (f.id, f.version))
R06 = facts.ENFORCEMENT_FACTS["flow_nonconforming"]
KIND_SETS = [["missing_step", "out_of_order"], ["out_of_order"], ["unexpected_step"]]
KIND_SETS += [["missing_step", "deadline_exceeded"]]  # not memoised: reads times


@st.composite
def matters(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    flow = draw(st.sampled_from(FLOWS))
    names = [s.name for s in flow.steps] + ["not_a_step"]
    history: list[dict[str, Any]] = []
    pin = draw(st.sampled_from([flow.pin(), None, {**flow.pin(), "version": 99}]))
    data: dict[str, Any] = {"matter_type": flow.matter_type}
    if pin is not None:
        data["flow"] = pin
    history.append({"type": "matter.accepted", "data": data})
    for name in draw(st.lists(st.sampled_from(names), max_size=8)):
        history.append({"type": "matter.step_completed", "data": {"step": name}})
    for i, event in enumerate(history, 1):
        day = draw(st.integers(1, 28))
        event["seq"] = i
        event["occurred_at"] = f"2026-0{draw(st.integers(1, 9))}-{day:02d}T02:00:00Z"
        event["actor"] = {"official": draw(st.sampled_from(["O-1", "O-2"])), "role": "handler"}
    end = draw(st.sampled_from(["matter.concluded", "matter.withdrawn"]))
    view = {"type": end, "data": {}, "occurred_at": "2026-12-30T02:00:00Z", "position": 99}
    return history, view


def plain(history: list[dict[str, Any]], view: dict[str, Any], kinds: list[str]) -> bool:
    events = [
        {
            "type": e["type"],
            "stream_seq": e.get("seq", e.get("position", 0)),
            "occurred_at": e["occurred_at"],
            "actor": e.get("actor") or {},
            "data": e["data"],
        }
        for e in [*history, view]
    ]
    found = check_matter(events, FLOW_MAP, workdays_calendar())
    return any(f.kind in kinds for f in found)


@settings(max_examples=200, deadline=None)
@given(matters(), st.sampled_from(KIND_SETS))
def test_the_memoised_verdict_equals_the_full_check(
    matter: tuple[list[dict[str, Any]], dict[str, Any]], kinds: list[str]
) -> None:
    history, view = matter
    want = plain(history, view, kinds)
    params = {"finding_kinds": kinds}
    assert R06({**view, "history": history}, params) == want
    assert R06({**view, "history": history}, params) == want  # from the memo, if memoised


def test_a_new_engine_starts_with_an_empty_memo() -> None:
    flow = FLOWS[0]
    history = [
        {
            "type": "matter.accepted",
            "data": {"matter_type": flow.matter_type, "flow": flow.pin()},
            "occurred_at": "2026-03-02T01:00:00Z",
        }
    ]
    view = {"type": "matter.concluded", "data": {}, "occurred_at": "2026-03-02T02:00:00Z"}
    R06({**view, "history": history}, {"finding_kinds": ["missing_step"]})
    facts.ENFORCEMENT_FACTS["approval_below_flow_level"](
        {**view, "history": history}, {"approval_steps": ["approve"]}
    )
    assert facts._VERDICTS
    assert facts._FLOWS_OF
    Engine(load_ruleset(), default_calendar())
    assert not facts._VERDICTS
    assert not facts._FLOWS_OF


def test_the_flow_memo_tells_pins_apart() -> None:
    skipped = facts.ENFORCEMENT_FACTS["approval_below_flow_level"]
    params = {"approval_steps": ["approve", "decide"]}
    flow = next(f for f in FLOWS if f.approval_level >= 2 and f.step("approve"))
    view = {"type": "matter.concluded", "data": {}}
    for pin in (flow.pin(), {**flow.pin(), "hash": "0" * 64}, flow.pin(), None):
        data = {"matter_type": flow.matter_type, **({} if pin is None else {"flow": pin})}
        history = [{"type": "matter.accepted", "data": data}]
        known = pin is None or pin["hash"] == flow.hash
        latest = max(
            (f for f in FLOWS if f.matter_type == flow.matter_type), key=lambda f: f.version
        )
        expect = known and (pin is not None or latest.approval_level >= 1)
        assert skipped({**view, "history": history}, params) is expect
