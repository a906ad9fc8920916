"""Unit statistics for the internal-control assessment (内控考核), one document per unit.

Key = unit id. Counts matters by type and state (a matter counts under the unit that accepted
it; its terminal event moves it from `open` to `concluded` or `withdrawn`), violations by
grade, rectifications completed (and completed late), and keeps each open rectification
deadline so that overdue = count(rectify_by < as_of) is judged at query time (`unit_report`).

Guarantees:

- Only open matters and open rectifications are kept by name, so a document stays bounded by
  the unit's open work, not its history.
- Conformance findings by kind are not folded here (they need each matter's whole history,
  which `case_history` holds): `unit_report` adds them from the case-history documents of the
  unit, so one report combines both projections at the same log position.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from projections.base import Doc, LoggedEvent
from projections.support import parse_date

__all__ = ["UnitStats", "unit_report"]

_TERMINAL = {"matter.concluded": "concluded", "matter.withdrawn": "withdrawn"}


def _new(key: str) -> Doc:
    return {
        "unit": key,
        "matters": {},
        "open_matters": {},
        "violations": 0,
        "violations_by_grade": {},
        "rectified": 0,
        "rectified_late": 0,
        "open_rectifications": {},
        "violation_grades": {},
    }


class UnitStats:
    """单位内控统计: one document per unit."""

    name: ClassVar[str] = "unit_stats"
    version: ClassVar[int] = 1
    types: ClassVar[tuple[str, ...]] = (
        "matter.accepted",
        "matter.concluded",
        "matter.withdrawn",
        "violation.",
    )
    columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("open_matters", "int"),
        ("violations", "int"),
        ("open_rectifications", "int"),
        ("earliest_rectify_by", "text"),
    )

    def route(self, event: LoggedEvent) -> Iterable[str]:
        if event.type == "matter.accepted" or event.type in _TERMINAL:
            unit = event.actor.get("unit")
            return (unit,) if unit else ()
        if event.type.startswith("violation."):
            unit = event.subject.get("unit")
            return (unit,) if unit else ()
        return ()

    def fold(self, doc: Doc | None, event: LoggedEvent, key: str) -> Doc:
        doc = doc if doc is not None else _new(key)
        d = event.data
        if event.type == "matter.accepted":
            kind = str(d.get("matter_type"))
            doc["open_matters"][event.stream] = kind
            _bump(doc["matters"].setdefault(kind, {}), "open", 1)
        elif event.type in _TERMINAL:
            kind = doc["open_matters"].pop(event.stream, None)
            counts = doc["matters"].setdefault(kind or "unknown", {})
            if kind is not None:
                _bump(counts, "open", -1)
            _bump(counts, _TERMINAL[event.type], 1)
        elif event.type == "violation.recorded":
            grade = str(d.get("grade"))
            doc["violations"] += 1
            _bump(doc["violations_by_grade"], grade, 1)
            doc["violation_grades"][event.stream] = grade
        elif event.type == "violation.rectification_ordered":
            doc["open_rectifications"][event.stream] = d["rectify_by"]
        elif event.type == "violation.rectification_completed":
            deadline = doc["open_rectifications"].pop(event.stream, None)
            doc["rectified"] += 1
            if deadline is not None and parse_date(d["completed_on"]) > parse_date(deadline):
                doc["rectified_late"] += 1
            doc["violation_grades"].pop(event.stream, None)
        return doc

    def index(self, key: str, doc: Doc) -> dict[str, str | int | None]:
        deadlines = list(doc["open_rectifications"].values())
        return {
            "open_matters": len(doc["open_matters"]),
            "violations": doc["violations"],
            "open_rectifications": len(deadlines),
            "earliest_rectify_by": min(deadlines) if deadlines else None,
        }


def _bump(counts: dict[str, int], name: str, by: int) -> None:
    counts[name] = counts.get(name, 0) + by


def unit_report(doc: Doc, case_docs: Sequence[Doc], as_of: str) -> dict[str, Any]:
    """The unit's figures at `as_of`: the folded counts, overdue rectifications (deadline
    before `as_of`, by grade) and conformance findings by kind from its case histories."""
    day = parse_date(as_of)
    overdue = {
        stream: by for stream, by in doc["open_rectifications"].items() if parse_date(by) < day
    }
    overdue_by_grade: dict[str, int] = {}
    for stream in overdue:
        _bump(overdue_by_grade, doc["violation_grades"].get(stream, "unknown"), 1)
    findings: dict[str, int] = {}
    for case in case_docs:
        for finding in case.get("conformance", []):
            _bump(findings, str(finding.get("kind")), 1)
    return {
        "unit": doc["unit"],
        "as_of": as_of,
        "matters": doc["matters"],
        "violations": doc["violations"],
        "violations_by_grade": doc["violations_by_grade"],
        "rectified": doc["rectified"],
        "rectified_late": doc["rectified_late"],
        "open_rectifications": len(doc["open_rectifications"]),
        "overdue_rectifications": len(overdue),
        "overdue_by_grade": dict(sorted(overdue_by_grade.items())),
        "conformance_by_kind": dict(sorted(findings.items())),
    }
