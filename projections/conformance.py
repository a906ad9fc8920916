"""Conformance of one matter (权力事项) to its flowchart (权力运行图).

`check_matter` judges a matter's events, in stream order, against the flow pinned on its
acceptance (`matter.accepted` `data.flow` = id + version + content hash; if no flow is pinned,
the latest flow for its `matter_type`). It is a pure function of the events, the flows, the
calendar and `as_of`: the same inputs MUST give the same findings in the same order.

Findings (`ConformanceFinding.kind`):

- `unknown_flow` — no acceptance, or the pinned flow is not among `flows` (unknown id or
  version, a hash that differs from the file's, or a flow of another matter type); nothing else
  is judged, because the rules that applied are unknown.
- `missing_step` — the matter was concluded (`matter.concluded`) while a mandatory step had not
  happened. Never reported for an open or withdrawn matter.
- `out_of_order` — a step happened before one of its `after` steps (which is mandatory, or
  happens later in the matter). Each pair is reported once.
- `unexpected_step` — a step the flow does not have.
- `unauthorised_actor` — a step performed by an actor whose role is not the step's role.
- `duty_conflict` — one official acted in two roles the flow separates (承办/审批,
  审核/审批, 检查/审理/执行 …) within the matter; reported once per official and pair, at the
  event where the second role appeared.
- `deadline_exceeded` — the limit's end (`time_limit.until`: the conclusion, or a step such as
  the penalty decision; a withdrawal also ends it) came after the due time; or the matter is
  still open at `as_of` (when given) after the due time. Due times come from
  `ledger.workdays` (day 0 = the start day in CST, end of the last day at 24:00 CST). Approved
  extensions (`matter.extension_approved`) count only if approved no later than the due time
  then in force, and only up to the flow's `extension_days` in total.
- `deadline_unknown` — the due time cannot be computed (a date outside the holiday calendar).

Withdrawn matters get no `missing_step`, but actor, duty, order and deadline checks still apply.

`check_matter(..., kinds=K)` MUST return exactly the findings of the full check whose kind is in
K, in the same order; it skips the checks that cannot give such a finding (the detector's R06
asks only for `missing_step` and `out_of_order`, and needs neither deadlines nor actors).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from ledger.flows import STEP_EVENT_TYPES, PowerFlow
from ledger.workdays import OutsideCalendar, WorkCalendar, format_ts, parse_ts

__all__ = [
    "ConformanceFinding",
    "ConformanceKind",
    "MatterEvent",
    "check_matter",
    "matter_event",
    "resolve_flow",
    "step_of",
]

_TERMINAL = ("matter.concluded", "matter.withdrawn")


class ConformanceKind(StrEnum):
    """The kinds of finding (values are the strings stored in `ConformanceFinding.kind`)."""

    UNKNOWN_FLOW = "unknown_flow"
    MISSING_STEP = "missing_step"
    OUT_OF_ORDER = "out_of_order"
    UNEXPECTED_STEP = "unexpected_step"
    UNAUTHORISED_ACTOR = "unauthorised_actor"
    DUTY_CONFLICT = "duty_conflict"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    DEADLINE_UNKNOWN = "deadline_unknown"


_STEP_KINDS = frozenset(
    {
        ConformanceKind.DUTY_CONFLICT.value,
        ConformanceKind.UNEXPECTED_STEP.value,
        ConformanceKind.UNAUTHORISED_ACTOR.value,
        ConformanceKind.OUT_OF_ORDER.value,
    }
)
_ACTOR_KINDS = frozenset(
    {ConformanceKind.DUTY_CONFLICT.value, ConformanceKind.UNAUTHORISED_ACTOR.value}
)
_DEADLINE_KINDS = frozenset(
    {ConformanceKind.DEADLINE_EXCEEDED.value, ConformanceKind.DEADLINE_UNKNOWN.value}
)


class ConformanceFinding(NamedTuple):
    """One departure from the flow: `seq` is the stream_seq of the event that shows it (None
    for a deadline passed at `as_of` with no event)."""

    kind: str
    step: str | None
    seq: int | None
    detail: str


class MatterEvent(NamedTuple):
    """One event of a matter as the checker reads it (`matter_event` builds one)."""

    type: str
    seq: int
    at: str
    official: str | None
    role: str | None
    step: str | None  # the step this event completes, if any
    data: Mapping[str, Any]


def step_of(event_type: str, data: Mapping[str, Any]) -> str | None:
    """The flow step an event of `event_type` with `data` completes, if any."""
    if event_type == "matter.step_completed":
        step = data.get("step")
        return step if isinstance(step, str) else None
    return STEP_EVENT_TYPES.get(event_type)


def matter_event(
    event_type: str,
    seq: int,
    at: str,
    *,
    official: str | None,
    role: str | None,
    data: Mapping[str, Any],
) -> MatterEvent:
    """The checker's view of one event (callers that hold the fields skip the dict form)."""
    return MatterEvent(event_type, seq, at, official, role, step_of(event_type, data), data)


def _normalise(events: Sequence[Any]) -> list[MatterEvent]:
    out: list[MatterEvent] = []
    for event in events:
        if isinstance(event, MatterEvent):
            out.append(event)
            continue
        if isinstance(event, dict):
            event_type, seq, at = event["type"], event["stream_seq"], event["occurred_at"]
            actor, data = event.get("actor") or {}, event.get("data") or {}
        else:
            event_type, seq, at = event.type, event.stream_seq, event.occurred_at
            actor, data = event.actor or {}, event.data or {}
        step = step_of(event_type, data)
        out.append(
            MatterEvent(event_type, seq, at, actor.get("official"), actor.get("role"), step, data)
        )
    return out


def resolve_flow(
    accepted: Mapping[str, Any], flows: Mapping[Any, PowerFlow] | Iterable[PowerFlow]
) -> PowerFlow | str:
    """The flow a matter's acceptance data names, or the reason there is none (a string)."""
    matter_type = accepted.get("matter_type")
    pin = accepted.get("flow")
    if pin is not None and isinstance(flows, Mapping):
        # flows keyed by (id, version), as `load_flow_versions` returns them: one lookup
        try:
            keyed = flows.get((pin.get("id"), pin.get("version")))
        except TypeError:  # an unhashable id or version in the pin: scan below
            keyed = None
        if keyed is not None and (keyed.id, keyed.version) == (pin.get("id"), pin.get("version")):
            return _pinned(keyed, pin, matter_type)
    candidates: list[PowerFlow] = list(flows.values() if isinstance(flows, Mapping) else flows)
    if pin is None:
        latest = [f for f in candidates if f.matter_type == matter_type]
        if not latest:
            return f"no flow for matter type {matter_type!r}"
        return max(latest, key=lambda f: f.version)
    for flow in candidates:
        if (flow.id, flow.version) == (pin.get("id"), pin.get("version")):
            return _pinned(flow, pin, matter_type)
    return f"unknown flow {pin.get('id')!r} version {pin.get('version')!r}"


def _pinned(flow: PowerFlow, pin: Mapping[str, Any], matter_type: Any) -> PowerFlow | str:
    """The flow a pin names by id and version, if its hash and matter type agree."""
    if flow.hash != pin.get("hash"):
        return (
            f"flow {flow.id} v{flow.version} pinned with hash {pin.get('hash')}, "
            f"the definition's hash is {flow.hash}"
        )
    if flow.matter_type != matter_type:
        return f"flow {flow.id} is for {flow.matter_type}, the matter is {matter_type}"
    return flow


class _Seen(NamedTuple):
    seq: int
    at: str


def check_matter(
    events: Sequence[Any],
    flows: Mapping[Any, PowerFlow] | Iterable[PowerFlow],
    calendar: WorkCalendar,
    *,
    as_of: str | datetime | None = None,
    kinds: Collection[str] | None = None,
) -> list[ConformanceFinding]:
    """Judge one matter's events (stream order) against its flow; see the module docstring.

    `events` are the matter's envelopes as dicts (type, stream_seq, occurred_at, actor, data)
    or objects with those attributes (`projections.base.LoggedEvent`). `kinds`: only the
    findings of these kinds (the module docstring).
    """
    matter = _normalise(events)
    accepted = next((e for e in matter if e.type == "matter.accepted"), None)
    wanted = None if kinds is None else frozenset(kinds)
    if accepted is None:
        found = [
            ConformanceFinding(ConformanceKind.UNKNOWN_FLOW.value, None, None, "no acceptance")
        ]
        return _only(found, wanted)
    flow = resolve_flow(accepted.data, flows)
    if isinstance(flow, str):
        found = [ConformanceFinding(ConformanceKind.UNKNOWN_FLOW.value, None, accepted.seq, flow)]
        return _only(found, wanted)
    findings: list[ConformanceFinding] = []
    if wanted is None or wanted & _STEP_KINDS:
        occurring = {e.step for e in matter if e.step is not None}
        actors = wanted is None or bool(wanted & _ACTOR_KINDS)
        findings += _check_steps_and_actors(matter, flow, occurring, actors=actors)
    if wanted is None or ConformanceKind.MISSING_STEP.value in wanted:
        findings += _check_completeness(matter, flow)
    if wanted is None or wanted & _DEADLINE_KINDS:
        findings += _check_deadline(matter, flow, calendar, as_of)
    big = 1 << 62
    return _only(sorted(findings, key=lambda f: big if f.seq is None else f.seq), wanted)


def _only(
    findings: list[ConformanceFinding], kinds: frozenset[str] | None
) -> list[ConformanceFinding]:
    return findings if kinds is None else [f for f in findings if f.kind in kinds]


def _check_steps_and_actors(
    events: list[MatterEvent], flow: PowerFlow, occurring: set[str], *, actors: bool = True
) -> list[ConformanceFinding]:
    """Duty conflicts, unexpected steps, unauthorised actors and order; with `actors` False
    the actor checks (duty_conflict, unauthorised_actor) are skipped."""
    out: list[ConformanceFinding] = []
    separated = flow.separated
    roles_of: dict[str, set[str]] = {}
    reported_pairs: set[tuple[str, frozenset[str]]] = set()
    reported_order: set[tuple[str, str]] = set()
    seen: set[str] = set()
    for event in events:
        seq, official, role = event.seq, event.official, event.role
        if actors and isinstance(official, str) and isinstance(role, str):
            held = roles_of.setdefault(official, set())
            for other in sorted(held) if held and role not in held else ():
                pair = frozenset((other, role))
                if pair in separated and (official, pair) not in reported_pairs:
                    reported_pairs.add((official, pair))
                    detail = f"official {official} acted as {other} and as {role}"
                    out.append(
                        ConformanceFinding(ConformanceKind.DUTY_CONFLICT.value, None, seq, detail)
                    )
            held.add(role)
        name = event.step
        if name is None:
            continue
        step = flow.step(name)
        if step is None:
            detail = f"step {name!r} is not in flow {flow.id} v{flow.version}"
            out.append(ConformanceFinding(ConformanceKind.UNEXPECTED_STEP.value, name, seq, detail))
            continue
        if actors and role != step.role:
            detail = f"{name} performed by role {role!r}; the flow requires {step.role!r}"
            out.append(
                ConformanceFinding(ConformanceKind.UNAUTHORISED_ACTOR.value, name, seq, detail)
            )
        for before in step.after:
            if before in seen or (name, before) in reported_order:
                continue
            prerequisite = flow.step(before)
            if (prerequisite is not None and prerequisite.mandatory) or before in occurring:
                reported_order.add((name, before))
                detail = f"{name} happened before {before}"
                out.append(
                    ConformanceFinding(ConformanceKind.OUT_OF_ORDER.value, name, seq, detail)
                )
        seen.add(name)
    return out


def _check_completeness(events: list[MatterEvent], flow: PowerFlow) -> list[ConformanceFinding]:
    seen: set[str] = set()
    for event in events:
        if event.type == "matter.concluded":
            seq = event.seq
            return [
                ConformanceFinding(
                    ConformanceKind.MISSING_STEP.value, name, seq, f"concluded without {name}"
                )
                for name in flow.mandatory_steps
                if name not in seen
            ]
        if event.type == "matter.withdrawn":
            return []
        if event.step is not None:
            seen.add(event.step)
    return []


def _first(events: list[MatterEvent], boundary: str) -> _Seen | None:
    for event in events:
        if (
            (boundary == "accepted" and event.type == "matter.accepted")
            or (boundary == "concluded" and event.type in _TERMINAL)
            or event.step == boundary
        ):
            return _Seen(event.seq, event.at)
    return None


def _check_deadline(
    events: list[MatterEvent],
    flow: PowerFlow,
    calendar: WorkCalendar,
    as_of: str | datetime | None,
) -> list[ConformanceFinding]:
    limit = flow.time_limit
    start = _first(events, limit.start)
    if start is None:
        return []  # the start step has not happened (a missing step, judged elsewhere)
    end = _first(events, limit.until) or _first(events, "concluded")
    if end is not None:
        end_at = parse_ts(end.at)
    elif as_of is not None:
        end_at = parse_ts(as_of)
    else:
        return []
    try:
        start_day = calendar.local_date(start.at)
        same_days = limit.days
        other: list[tuple[int, str]] = []

        def due() -> datetime:
            day = calendar.due_day(start_day, same_days, limit.calendar)
            for days, cal in other:
                day = calendar.due_day(day, days, cal)
            return calendar.end_of(day)

        due_at = due()
        used = 0
        for event in events:
            if event.type != "matter.extension_approved":
                continue
            data = event.data
            if parse_ts(event.at) > due_at or used >= limit.extension_days:
                continue
            grant = min(int(data.get("days", 0)), limit.extension_days - used)
            used += grant
            if data.get("calendar", limit.calendar) == limit.calendar:
                same_days += grant
            else:
                other.append((grant, str(data["calendar"])))
            due_at = due()
    except OutsideCalendar as exc:
        return [
            ConformanceFinding(
                ConformanceKind.DEADLINE_UNKNOWN.value, limit.until, start.seq, str(exc)
            )
        ]
    if end_at <= due_at:
        return []
    seq = end.seq if end is not None else None
    what = "open at as_of" if end is None else f"{limit.until} at"
    detail = (
        f"{limit.days} {limit.calendar} days (+{used} extension) from {limit.start}: "
        f"due {format_ts(due_at)}, {what} {format_ts(end_at)}"
    )
    return [ConformanceFinding(ConformanceKind.DEADLINE_EXCEEDED.value, limit.until, seq, detail)]
