"""Warnings register (预警跟踪) and cards (红黄牌) as read models.

`Warnings`: one document per warning stream (`warning/<rule_id>/<hash of key>`, the detector's
one open warning per (rule, key)). Folds `warning.raised` / `warning.escalated` (rule, version,
rule-set hash, grade, category, key, attributed official/role or unit, triggers, level
history, late) and the lifecycle steps a person takes (`warning.acknowledged`,
`warning.rectification_ordered`, `warning.rectified`, `warning.closed`).

`Cards`: one document per official and assessment year (key `<official>/<year>`), folding
`card.issued`: yellow and red cards, and whether the year is vetoed (一票否决).

Guarantees:

- Stored `state` is what the log says: `open` → `acknowledged` → `rectification_ordered` →
  `rectified` → `closed`. An escalation changes the level, never the state. A `warning.raised`
  on a closed stream (the detector raises a new warning after closure) starts a new episode:
  the document then describes the new warning and lists the closed ones in `previous`.
- Whether an ordered rectification is `overdue` is judged at query time by `warning_status`
  against an explicit `as_of` (from the day after `rectify_by`); `rectified_late` says whether
  the rectification came after the deadline in force. `late` is the detector's flag (a timer
  fired after downtime).
- Pure folds: no wall clock, no other document; rebuild equals the incremental result.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from projections.base import Doc, LoggedEvent
from projections.support import event_ref, parse_date

__all__ = ["STATES", "STATUSES", "Cards", "Warnings", "warning_status"]

STATES = ("open", "acknowledged", "rectification_ordered", "rectified", "closed")
STATUSES = (*STATES, "overdue")

_RAISING = ("warning.raised", "warning.escalated")
_STEPS = {
    "warning.acknowledged": "acknowledged",
    "warning.rectification_ordered": "rectification_ordered",
    "warning.rectified": "rectified",
    "warning.closed": "closed",
}


def warning_status(doc: Doc, as_of: str) -> str:
    """The state, or `overdue` for an ordered rectification past `rectify_by` at `as_of`."""
    if (
        doc["state"] == "rectification_ordered"
        and doc["rectify_by"]
        and parse_date(as_of) > parse_date(doc["rectify_by"])
    ):
        return "overdue"
    return str(doc["state"])


def _episode(key: str) -> Doc:
    return {
        "warning": key,
        "warning_ref": None,
        "rule_id": None,
        "rule_version": None,
        "ruleset_hash": None,
        "grade": None,
        "category": None,
        "key": None,
        "level": None,
        "levels": [],
        "official": None,
        "role": None,
        "unit": None,
        "triggers": [],
        "late": False,
        "due_at": None,
        "action": None,
        "raised_at": None,
        "state": "open",
        "acknowledged_by": None,
        "note_code": None,
        "rectify_by": None,
        "ordered_by": None,
        "rectified_on": None,
        "evidence_ref": None,
        "rectified_late": None,
        "closed_by": None,
        "close_reason": None,
        "events": [],
    }


class Warnings:
    """预警: one document per warning stream (the current warning and its closed episodes)."""

    name: ClassVar[str] = "warnings"
    version: ClassVar[int] = 1
    types: ClassVar[tuple[str, ...]] = ("warning.",)
    columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("rule_id", "text"),
        ("level", "text"),
        ("grade", "text"),
        ("category", "text"),
        ("state", "text"),
        ("official", "text"),
        ("unit", "text"),
        ("warning_ref", "text"),
        ("raised_at", "text"),
        ("rectify_by", "text"),
    )

    def route(self, event: LoggedEvent) -> Iterable[str]:
        if event.type.startswith("warning.") and event.stream.startswith("warning/"):
            return (event.stream,)
        return ()

    def fold(self, doc: Doc | None, event: LoggedEvent, key: str) -> Doc:
        if doc is None:
            doc = {**_episode(key), "previous": []}
        elif event.type == "warning.raised" and doc["warning_ref"] is not None:
            closed = {k: v for k, v in doc.items() if k != "previous"}
            doc = {**_episode(key), "previous": [*doc["previous"], closed]}
        d = event.data
        entry = {**event_ref(event), "type": event.type, "at": event.occurred_at}
        if event.actor.get("official"):
            entry["by"] = event.actor["official"]
        doc["events"].append(entry)
        if event.type in _RAISING:
            _raise(doc, event)
        elif event.type in _STEPS:
            doc["state"] = _STEPS[event.type]
            if event.type == "warning.acknowledged":
                doc["acknowledged_by"] = d.get("acknowledged_by")
                doc["note_code"] = d.get("note_code")
            elif event.type == "warning.rectification_ordered":
                doc["rectify_by"] = d.get("rectify_by")
                doc["ordered_by"] = d.get("ordered_by")
            elif event.type == "warning.rectified":
                doc["rectified_on"] = d.get("rectified_on")
                doc["evidence_ref"] = d.get("evidence_ref")
            else:
                doc["closed_by"] = d.get("closed_by")
                doc["close_reason"] = d.get("reason")
        if doc["rectified_on"] and doc["rectify_by"]:
            doc["rectified_late"] = parse_date(doc["rectified_on"]) > parse_date(doc["rectify_by"])
        return doc

    def index(self, key: str, doc: Doc) -> dict[str, str | int | None]:
        return {
            "rule_id": doc["rule_id"],
            "level": doc["level"],
            "grade": None if doc["grade"] is None else str(doc["grade"]),
            "category": doc["category"],
            "state": doc["state"],
            "official": doc["official"],
            "unit": doc["unit"],
            "warning_ref": doc["warning_ref"],
            "raised_at": doc["raised_at"],
            "rectify_by": doc["rectify_by"],
        }


def _raise(doc: Doc, event: LoggedEvent) -> None:
    d = event.data
    if event.type == "warning.raised":
        doc["warning_ref"] = event.event_id
        doc["raised_at"] = event.occurred_at
    attributed: dict[str, Any] = d.get("attributed") or {}
    doc.update(
        {
            "rule_id": d.get("rule_id"),
            "rule_version": d.get("rule_version"),
            "ruleset_hash": d.get("ruleset_hash"),
            "grade": d.get("grade"),
            "category": d.get("category"),
            "key": d.get("key"),
            "level": d.get("level"),
            "official": attributed.get("official"),
            "role": attributed.get("role"),
            "unit": attributed.get("unit"),
            "due_at": d.get("due_at", doc["due_at"]),
            "action": d.get("action", doc["action"]),
        }
    )
    doc["late"] = bool(doc["late"] or d.get("late"))
    for trigger in d.get("triggers", []):
        if trigger not in doc["triggers"]:
            doc["triggers"].append(trigger)
    doc["levels"].append(
        {
            **event_ref(event),
            "level": d.get("level"),
            "from_level": d.get("from_level"),
            "at": event.occurred_at,
            "late": bool(d.get("late")),
        }
    )


class Cards:
    """红黄牌: one document per official and assessment year (key `<official>/<year>`)."""

    name: ClassVar[str] = "cards"
    version: ClassVar[int] = 1
    types: ClassVar[tuple[str, ...]] = ("card.",)
    columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("official", "text"),
        ("year", "int"),
        ("yellow", "int"),
        ("red", "int"),
        ("veto", "int"),
    )

    def route(self, event: LoggedEvent) -> Iterable[str]:
        if event.type != "card.issued":
            return ()
        official, year = event.data.get("official"), event.data.get("assessment_year")
        return (f"{official}/{year}",) if official and isinstance(year, int) else ()

    def fold(self, doc: Doc | None, event: LoggedEvent, key: str) -> Doc:
        d = event.data
        doc = doc or {
            "official": d.get("official"),
            "year": d.get("assessment_year"),
            "yellow": 0,
            "red": 0,
            "veto": False,
            "cards": [],
        }
        color = d.get("color")
        if color in ("yellow", "red"):
            doc[color] += 1
        doc["veto"] = bool(doc["veto"] or d.get("veto"))
        doc["cards"].append(
            {
                **event_ref(event),
                "color": color,
                "veto": bool(d.get("veto")),
                "rule_id": d.get("rule_id"),
                "at": event.occurred_at,
                "warning_refs": list(d.get("warning_refs", [])),
                "card_refs": list(d.get("card_refs", [])),
            }
        )
        return doc

    def index(self, key: str, doc: Doc) -> dict[str, str | int | None]:
        return {
            "official": doc["official"],
            "year": doc["year"],
            "yellow": doc["yellow"],
            "red": doc["red"],
            "veto": int(doc["veto"]),
        }
