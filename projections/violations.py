"""Violation register (违规记录查询): one document per violation (key = its stream).

Folds `violation.recorded` (unit, official, grade, error code, source, matter, warning),
`violation.rectification_ordered` (限期整改: `rectify_by`, who ordered) and
`violation.rectification_completed` (`completed_on`, evidence).

Guarantees:

- The stored `state` is what the log says: `recorded` (no order yet), `ordered` (rectification
  ordered, not completed) or `rectified`. Whether an ordered rectification is `overdue` is a
  time judgement made by `violation_status` against an explicit `as_of`: overdue from the day
  after `rectify_by` (on `rectify_by` itself it is still `ordered`).
- A later order replaces the deadline (the last `rectify_by` counts); `rectified_late` says
  whether completion came after the deadline in force.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from projections.base import Doc, LoggedEvent
from projections.support import event_ref, official_of, parse_date

__all__ = ["STATUSES", "Violations", "violation_status"]

STATUSES = ("recorded", "ordered", "overdue", "rectified")


def violation_status(doc: Doc, as_of: str) -> str:
    """recorded / ordered / overdue / rectified, judged at `as_of` (YYYY-MM-DD)."""
    if doc["state"] == "ordered" and parse_date(as_of) > parse_date(doc["rectify_by"]):
        return "overdue"
    return str(doc["state"])


def _new(key: str) -> Doc:
    return {
        "violation": key,
        "official": None,
        "unit": None,
        "grade": None,
        "error_code": None,
        "source": None,
        "matter": None,
        "warning_ref": None,
        "found_on": None,
        "state": "recorded",
        "rectify_by": None,
        "ordered_by": None,
        "completed_on": None,
        "evidence_ref": None,
        "rectified_late": None,
        "events": [],
    }


class Violations:
    """违规记录: one document per violation stream (`violation/<year>-<serial>`)."""

    name: ClassVar[str] = "violations"
    version: ClassVar[int] = 1
    types: ClassVar[tuple[str, ...]] = ("violation.",)
    columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("unit", "text"),
        ("official", "text"),
        ("grade", "int"),
        ("error_code", "text"),
        ("source", "text"),
        ("state", "text"),
        ("found_on", "text"),
        ("rectify_by", "text"),
        ("completed_on", "text"),
    )

    def route(self, event: LoggedEvent) -> Iterable[str]:
        return (event.stream,) if event.type.startswith("violation.") else ()

    def fold(self, doc: Doc | None, event: LoggedEvent, key: str) -> Doc:
        doc = doc if doc is not None else _new(key)
        d = event.data
        doc["events"].append({**event_ref(event), "type": event.type, "at": event.occurred_at})
        if event.type == "violation.recorded":
            doc.update(
                {
                    "official": official_of(event),
                    "unit": event.subject.get("unit"),
                    "grade": d.get("grade"),
                    "error_code": d.get("error_code"),
                    "source": d.get("source"),
                    "matter": d.get("matter"),
                    "warning_ref": d.get("warning_ref"),
                    "found_on": d.get("found_on"),
                }
            )
        elif event.type == "violation.rectification_ordered":
            doc["rectify_by"] = d.get("rectify_by")
            doc["ordered_by"] = d.get("ordered_by")
            if doc["state"] != "rectified":
                doc["state"] = "ordered"
        elif event.type == "violation.rectification_completed":
            doc["completed_on"] = d.get("completed_on")
            doc["evidence_ref"] = d.get("evidence_ref")
            doc["state"] = "rectified"
        if doc["completed_on"] and doc["rectify_by"]:
            doc["rectified_late"] = parse_date(doc["completed_on"]) > parse_date(doc["rectify_by"])
        return doc

    def index(self, key: str, doc: Doc) -> dict[str, str | int | None]:
        return {
            "unit": doc["unit"],
            "official": doc["official"],
            "grade": doc["grade"],
            "error_code": doc["error_code"],
            "source": doc["source"],
            "state": doc["state"],
            "found_on": doc["found_on"],
            "rectify_by": doc["rectify_by"],
            "completed_on": doc["completed_on"],
        }
