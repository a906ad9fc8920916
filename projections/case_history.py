"""Case history per matter (权力事项): timeline, actors, step durations, conformance findings.

Key = the matter's stream (`matter/<region>-<sys>/<year>-<serial>`). Folds every `matter.*`
event of the stream, and each `decision.collective_recorded` that names the matter in its
`matters` list (the collective decision the matter's `decide` step executes).

Guarantees:

- The timeline lists every folded event in log order with its stream sequence, type, step,
  actor (official, role, unit), `occurred_at`, global position and event id, so an inspector
  can find and prove each line (`neikong export`).
- Durations are measured from the producers' `occurred_at` (as CST civil dates), in the
  calendar the matter's `time_limit` names (working days per `ledger.workdays` when it says
  `working`, else natural days), and the conclusion is compared with the last day of the limit
  plus approved extensions (`ledger.workdays` conventions: day 0 = acceptance, natural limits
  roll forward to a working day). Nothing reads the wall clock: an open matter's overdue state
  is judged at query time (`case_state`).
- Conformance findings are those of `projections.conformance.check_matter` over the matter's
  events against its pinned flow (packaged flow versions) and the holiday calendar. The stored
  `conformance` list is the verdict on a closed matter (computed at its terminal event); an
  open matter's stored list is empty and its findings so far are computed at query time by
  `conformance_at(doc, as_of)`, which also judges an open matter past its due time. (Checking
  the whole matter again at every event made the case history 55 % of a rebuild.)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from functools import cache
from typing import Any, ClassVar

from ledger.flows import PowerFlow, load_flow_versions
from ledger.workdays import OutsideCalendar, WorkCalendar, default_calendar
from projections.base import Doc, LoggedEvent
from projections.conformance import MatterEvent, check_matter, matter_event
from projections.support import event_ref, parse_date

__all__ = [
    "CaseHistory",
    "case_state",
    "conformance_at",
    "due_day",
    "durations",
    "elapsed_days",
    "total",
]

_TERMINAL = {"matter.concluded": "concluded", "matter.withdrawn": "withdrawn"}


def _local(text: str) -> date:
    """A date as is; a UTC timestamp as its civil date in China Standard Time."""
    return WorkCalendar.local_date(text) if len(text) > 10 else parse_date(text)


def elapsed_days(start: str, end: str, calendar: str) -> int | None:
    """Days from `start` to `end` (dates or UTC timestamps, taken as CST civil dates):
    natural days, or working days d with start < d <= end when `calendar` is `working`
    (None when a date lies outside the holiday calendar: never guessed)."""
    a, b = _local(start), _local(end)
    if calendar != "working":
        return (b - a).days
    try:
        return default_calendar().working_days_between(a, b)
    except OutsideCalendar:
        return None


def due_day(doc: Doc) -> str | None:
    """The last day of the matter's limit (plus extensions), per `ledger.workdays`."""
    if doc["limit_days"] is None or doc["accepted_at"] is None:
        return None
    try:
        return (
            default_calendar()
            .due_day(_local(doc["accepted_at"]), doc["limit_days"], doc["calendar"])
            .isoformat()
        )
    except OutsideCalendar:
        return None


def case_state(doc: Doc, as_of: str) -> str:
    """open / overdue / concluded / withdrawn: an open matter is overdue from the day after
    the last day of its limit (limit plus approved extensions, in its calendar)."""
    last = due_day(doc)
    if doc["state"] != "open" or last is None:
        return str(doc["state"])
    return "overdue" if parse_date(as_of) > parse_date(last) else "open"


def _new(key: str) -> Doc:
    return {
        "matter": key,
        "matter_type": None,
        "unit": None,
        "handler": None,
        "state": "open",
        "accepted_at": None,
        "accepted_on": None,
        "concluded_at": None,
        "flow": None,
        "major": False,
        "calendar": "natural",
        "limit_days": None,
        "extension_days": 0,
        "due_at": None,
        "timeline": [],
        "actors": {},
        "collective_decisions": [],
        "conformance": [],
    }


class CaseHistory:
    """案件履历: one document per matter stream."""

    name: ClassVar[str] = "case_history"
    version: ClassVar[int] = 2
    # folds most events: measured ~4x the CPU of the six others together (300k events): a
    # group of its own in a parallel rebuild (or shards of it, `rebuild_parallel(shard=True)`)
    cost: ClassVar[int] = 12
    stream_keyed: ClassVar[bool] = True  # matter.* events: found in the stream, not in refs
    own_stream_types: ClassVar[tuple[str, ...]] = ("matter.",)  # routed to their stream only
    types: ClassVar[tuple[str, ...]] = ("matter.", "decision.collective_recorded")
    columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("matter_type", "text"),
        ("unit", "text"),
        ("state", "text"),
        ("accepted_on", "text"),
        ("handler", "text"),
        ("conformance_findings", "int"),
    )

    def route(self, event: LoggedEvent) -> Iterable[str]:
        if event.type.startswith("matter."):
            return (event.stream,)
        if event.type == "decision.collective_recorded":
            matters = event.data.get("matters") or []
            return sorted({m for m in matters if isinstance(m, str)})
        return ()

    def fold(self, doc: Doc | None, event: LoggedEvent, key: str) -> Doc:
        doc = doc if doc is not None else _new(key)
        if event.type == "decision.collective_recorded":
            d = event.data
            doc["collective_decisions"].append(
                {
                    **event_ref(event),
                    "meeting": d.get("meeting"),
                    "topic": d.get("topic"),
                    "participants": list(d.get("participants", [])),
                    "leadership_size": d.get("leadership_size"),
                    "outcome": d.get("outcome"),
                    "held_on": d.get("held_on"),
                }
            )
            return doc
        _fold_matter_event(doc, event)
        if event.type in _TERMINAL:
            doc["conformance"] = conformance_at(doc)
        return doc

    def index(self, key: str, doc: Doc) -> dict[str, str | int | None]:
        return {
            "matter_type": doc["matter_type"],
            "unit": doc["unit"],
            "state": doc["state"],
            "accepted_on": doc["accepted_on"],
            "handler": doc["handler"],
            "conformance_findings": len(doc["conformance"]),
        }


def _fold_matter_event(doc: Doc, event: LoggedEvent) -> None:
    d = event.data
    actor = event.actor
    entry: dict[str, Any] = {
        **event_ref(event),
        "seq": event.stream_seq,
        "type": event.type,
        "step": d.get("step"),
        "outcome": d.get("outcome"),
        "level": d.get("level"),
        "official": actor.get("official"),
        "role": actor.get("role"),
        "unit": actor.get("unit"),
        "occurred_at": event.occurred_at,
        "data": d,
    }
    doc["timeline"].append(entry)
    role, official = actor.get("role"), actor.get("official")
    if role and official:
        people = doc["actors"].setdefault(role, [])
        if official not in people:
            people.append(official)
            people.sort()
    if event.type == "matter.accepted":
        doc["matter_type"] = d.get("matter_type")
        doc["unit"] = actor.get("unit")
        doc["accepted_at"] = event.occurred_at
        doc["accepted_on"] = event.occurred_at[:10]
        doc["flow"] = d.get("flow")
        doc["major"] = bool(d.get("major", False))
        doc["due_at"] = d.get("due_at")
        limit = d.get("time_limit")
        if limit:
            doc["calendar"] = limit["calendar"]
            doc["limit_days"] = int(limit["days"])
    elif event.type == "matter.extension_approved":
        doc["extension_days"] += int(d.get("days", 0))
        if doc["limit_days"] is not None:
            doc["limit_days"] += int(d.get("days", 0))
    if doc["handler"] is None and role == "handler":
        doc["handler"] = official
    if event.type in _TERMINAL:
        doc["state"] = _TERMINAL[event.type]
        doc["concluded_at"] = event.occurred_at


def durations(doc: Doc) -> list[dict[str, Any]]:
    """Days between consecutive steps (extension approvals are not steps), in the matter's
    calendar. Computed from the timeline when asked, not stored: cheaper folds."""
    out: list[dict[str, Any]] = []
    previous: dict[str, Any] | None = None
    for entry in doc["timeline"]:
        if entry["type"] == "matter.extension_approved":
            continue
        if previous is not None:
            out.append(
                {
                    "step": entry["step"] or entry["type"].split(".", 1)[1],
                    "from_seq": previous["seq"],
                    "to_seq": entry["seq"],
                    "days": elapsed_days(
                        previous["occurred_at"], entry["occurred_at"], doc["calendar"]
                    ),
                    "calendar": doc["calendar"],
                }
            )
        previous = entry
    return out


def total(doc: Doc) -> dict[str, Any] | None:
    """A closed matter's total days against its limit (None while open)."""
    if doc["state"] == "open" or doc["accepted_at"] is None or doc["concluded_at"] is None:
        return None
    last = due_day(doc)
    return {
        "days": elapsed_days(doc["accepted_at"], doc["concluded_at"], doc["calendar"]),
        "calendar": doc["calendar"],
        "limit_days": doc["limit_days"],
        "due_day": last,
        "within_limit": None if last is None else _local(doc["concluded_at"]) <= parse_date(last),
    }


@cache
def _flows() -> dict[tuple[str, int], PowerFlow]:
    return load_flow_versions()


def _events(doc: Doc) -> list[MatterEvent]:
    return [
        matter_event(
            t["type"],
            t["seq"],
            t["occurred_at"],
            official=t["official"],
            role=t["role"],
            data=t["data"] or {},
        )
        for t in doc["timeline"]
    ]


def conformance_at(doc: Doc, as_of: str | None = None) -> list[dict[str, Any]]:
    """`check_matter` over the matter's events against its pinned flow (packaged flow
    versions) and the holiday calendar; with `as_of`, an open matter past its due time is a
    `deadline_exceeded` finding too (a query-time judgement)."""
    moment = None if as_of is None else f"{as_of}T15:59:59Z"  # end of as_of in CST
    findings = check_matter(_events(doc), _flows(), default_calendar(), as_of=moment)
    return [f._asdict() for f in findings]
