"""`check_matter(..., kinds=K)` gives exactly the full check's findings of the kinds in K, in
the same order (the detector's faster verdict path for R06), on generated matters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.flows import STEP_EVENT_TYPES, load_flow_versions
from ledger.workdays import default_calendar, format_ts, parse_ts
from projections.conformance import ConformanceKind, check_matter

FLOWS = load_flow_versions()
FLOW_LIST = sorted(FLOWS.values(), key=lambda f: (f.id, f.version))
CAL = default_calendar()
KINDS = [k.value for k in ConformanceKind]
ROLES = ["handler", "reviewer", "approver", "inspector", "legal"]
START = int(
    parse_ts("2026-09-20T01:00:00Z").timestamp()
)  # before National Day: holidays inside the limits


@st.composite
def matters(draw: st.DrawFn) -> list[dict[str, Any]]:
    flow = draw(st.sampled_from(FLOW_LIST))
    names = [s.name for s in flow.steps] + ["not_a_step"]
    pin = draw(st.sampled_from([flow.pin(), {**flow.pin(), "hash": "0" * 64}, None]))
    events: list[dict[str, Any]] = []
    clock = START
    accepted = draw(st.booleans()) or draw(st.booleans())
    body: list[tuple[str, dict[str, Any]]] = []
    if accepted:
        data: dict[str, Any] = {"matter_type": flow.matter_type}
        if pin is not None:
            data["flow"] = pin
        body.append(("matter.accepted", data))
    for _ in range(draw(st.integers(0, 10))):
        name = draw(st.sampled_from(names))
        if draw(st.integers(0, 5)) == 0:
            body.append(("matter.extension_approved", {"days": draw(st.integers(0, 20))}))
        elif name in STEP_EVENT_TYPES.values():
            event_type = next(t for t, s in STEP_EVENT_TYPES.items() if s == name)
            body.append((event_type, {}))
        else:
            body.append(("matter.step_completed", {"step": name, "outcome": "passed"}))
    end = draw(st.sampled_from(["matter.concluded", "matter.withdrawn", None]))
    if end:
        body.append((end, {"outcome": "closed"}))
    for seq, (event_type, data) in enumerate(body, 1):
        clock += draw(st.integers(0, 40)) * 86_400 // 4
        events.append(
            {
                "type": event_type,
                "stream_seq": seq,
                "occurred_at": format_ts(datetime.fromtimestamp(clock, UTC)),
                "actor": {
                    "official": draw(st.sampled_from(["O-1", "O-2", "O-3"])),
                    "role": draw(st.sampled_from(ROLES)),
                },
                "data": data,
            }
        )
    return events


@settings(max_examples=300, deadline=None)
@given(
    matters(),
    st.lists(st.sampled_from(KINDS), unique=True, max_size=4),
    st.sampled_from([None, "2027-06-01T00:00:00Z"]),
)
def test_only_the_asked_kinds_exactly_as_the_full_check(
    events: list[dict[str, Any]], kinds: list[str], as_of: str | None
) -> None:
    full = check_matter(events, FLOWS, CAL, as_of=as_of)
    assert check_matter(events, FLOWS, CAL, as_of=as_of, kinds=kinds) == [
        f for f in full if f.kind in kinds
    ]


def test_r06_kinds_skip_deadlines_but_find_order_and_missing_steps() -> None:
    flow = next(
        f
        for f in FLOW_LIST
        if len(f.mandatory_steps) >= 2
        and f.time_limit.start == "accepted"
        and f.time_limit.until == "concluded"
    )
    events = [
        {
            "type": "matter.accepted",
            "stream_seq": 1,
            "occurred_at": "2026-03-02T01:00:00Z",
            "actor": {"official": "O-1", "role": "handler"},
            "data": {"matter_type": flow.matter_type, "flow": flow.pin()},
        },
        {
            "type": "matter.concluded",
            "stream_seq": 2,
            "occurred_at": "2027-03-02T01:00:00Z",  # a year later: overdue for every flow
            "actor": {"official": "O-1", "role": "handler"},
            "data": {"outcome": "closed"},
        },
    ]
    full = check_matter(events, FLOWS, CAL)
    assert {f.kind for f in full} >= {"deadline_exceeded"}
    only = check_matter(events, FLOWS, CAL, kinds=["missing_step", "out_of_order"])
    assert only
    assert {f.kind for f in only} == {"missing_step"}
