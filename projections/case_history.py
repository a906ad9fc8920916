"""Case history per matter (权力事项): timeline, actors, step durations, conformance findings.

Key = the matter's stream (`matter/<region>-<sys>/<year>-<serial>`). Folds every `matter.*`
event of the stream, and each `decision.collective_recorded` that names the matter in its
`matters` list (the collective decision the matter's `decide` step executes).

Guarantees:

- The timeline lists every folded event in log order with its stream sequence, type, step,
  actor (official, role, unit), `occurred_at`, global position and event id, so an inspector
  can find and prove each line (`neikong export`).
- Durations are measured from the producers' `occurred_at`, in the calendar the matter's
  `time_limit` names (working days per `ledger.workdays` when the flow says `working`, else
  natural days), and compared with the limit plus approved extensions. Nothing reads the
  wall clock: an open matter's overdue state is judged at query time (`case_state`).
- Conformance findings are those of `projections.conformance.check_matter` over the matter's
  events so far, recomputed at each event (a pure function of them).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, ClassVar

from projections.base import Doc, LoggedEvent
from projections.support import event_ref, parse_date

__all__ = ["CaseHistory", "case_state", "elapsed_days"]

_TERMINAL = {"matter.concluded": "concluded", "matter.withdrawn": "withdrawn"}


def elapsed_days(start: str, end: str, calendar: str) -> int:
    """Days from `start` to `end` (dates or timestamps): calendar days, or working days
    (those after `start` up to and including `end`) when `calendar` is `working`."""
    if calendar == "working":
        return _working_days_between(start, end)
    return (parse_date(end) - parse_date(start)).days


def _working_days_between(start: str, end: str) -> int:
    first, last = parse_date(start), parse_date(end)
    if last <= first:
        return 0
    try:  # the holiday calendar (ledger/workdays.py), once it lands
        workdays: Any = importlib.import_module("ledger.workdays")
    except ImportError:
        days = (last - first).days
        return sum(1 for i in range(1, days + 1) if (first + timedelta(days=i)).weekday() < 5)
    return int(workdays.working_days_between(first, last))


def case_state(doc: Doc, as_of: str) -> str:
    """open / overdue / concluded / withdrawn: an open matter past its limit (limit plus
    extensions, counted in its calendar from acceptance up to `as_of`) is overdue."""
    if doc["state"] != "open" or doc["limit_days"] is None or doc["accepted_at"] is None:
        return str(doc["state"])
    used = elapsed_days(doc["accepted_at"], as_of, doc["calendar"])
    return "overdue" if used > doc["limit_days"] else "open"


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
        "durations": [],
        "total": None,
        "collective_decisions": [],
        "conformance": [],
    }


class CaseHistory:
    """案件履历: one document per matter stream."""

    name: ClassVar[str] = "case_history"
    version: ClassVar[int] = 1
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
        doc["conformance"] = _conformance(doc, event)
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
    previous = doc["timeline"][-1] if doc["timeline"] else None
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
    if previous is not None and event.type != "matter.extension_approved":
        doc["durations"].append(
            {
                "step": d.get("step") or event.type.split(".", 1)[1],
                "from_seq": previous["seq"],
                "to_seq": event.stream_seq,
                "days": elapsed_days(previous["occurred_at"], event.occurred_at, doc["calendar"]),
                "calendar": doc["calendar"],
            }
        )
    if event.type in _TERMINAL:
        doc["state"] = _TERMINAL[event.type]
        doc["concluded_at"] = event.occurred_at
        if doc["accepted_at"] is not None:
            used = elapsed_days(doc["accepted_at"], event.occurred_at, doc["calendar"])
            doc["total"] = {
                "days": used,
                "calendar": doc["calendar"],
                "limit_days": doc["limit_days"],
                "within_limit": None if doc["limit_days"] is None else used <= doc["limit_days"],
            }


def _conformance(doc: Doc, event: LoggedEvent) -> list[dict[str, Any]]:
    """Findings of the flow check over the matter's events (none until the checker lands)."""
    return list(doc["conformance"])
