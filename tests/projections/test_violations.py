"""Violation register: state from the log, overdue judged at as_of (boundary: rectify_by)."""

from __future__ import annotations

import pytest

from projections.violations import Violations, violation_status
from tests.projections._log import Log, fold_all

SUBJECT = {"official": "4403-00871", "unit": "4403-01"}


def _recorded(log: Log, stream: str, grade: int = 2, **subject: str) -> None:
    log.add(
        "violation.recorded",
        stream,
        {
            "grade": grade,
            "error_code": "E-205",
            "source": "inspection",
            "matter": "matter/4403-fp/2026-000123",
            "warning_ref": None,
            "found_on": "2026-03-01",
        },
        subject={**SUBJECT, **subject},
    )


def _ordered(log: Log, stream: str, by: str) -> None:
    log.add(
        "violation.rectification_ordered",
        stream,
        {"rectify_by": by, "ordered_by": "4403-00010"},
        subject=SUBJECT,
    )


def _completed(log: Log, stream: str, on: str) -> None:
    log.add(
        "violation.rectification_completed",
        stream,
        {"completed_on": on, "evidence_ref": "DOC-77"},
        subject=SUBJECT,
    )


def test_recorded_only() -> None:
    log = Log()
    _recorded(log, "violation/2026-0001", grade=3)
    doc = fold_all(Violations(), log.events)["violation/2026-0001"]
    assert doc["state"] == "recorded"
    assert (doc["official"], doc["unit"], doc["grade"]) == ("4403-00871", "4403-01", 3)
    assert doc["matter"] == "matter/4403-fp/2026-000123"
    assert violation_status(doc, "2030-01-01") == "recorded"
    idx = Violations().index("violation/2026-0001", doc)
    assert idx["state"] == "recorded"
    assert idx["grade"] == 3
    assert idx["unit"] == "4403-01"


@pytest.mark.parametrize(
    ("as_of", "status"),
    [("2026-03-30", "ordered"), ("2026-03-31", "ordered"), ("2026-04-01", "overdue")],
)
def test_overdue_from_the_day_after_rectify_by(as_of: str, status: str) -> None:
    log = Log()
    _recorded(log, "violation/2026-0002")
    _ordered(log, "violation/2026-0002", "2026-03-31")
    doc = fold_all(Violations(), log.events)["violation/2026-0002"]
    assert doc["state"] == "ordered"
    assert doc["rectify_by"] == "2026-03-31"
    assert violation_status(doc, as_of) == status


@pytest.mark.parametrize(("on", "late"), [("2026-03-31", False), ("2026-04-01", True)])
def test_rectified_on_time_or_late_is_never_overdue(on: str, late: bool) -> None:
    log = Log()
    _recorded(log, "violation/2026-0003")
    _ordered(log, "violation/2026-0003", "2026-03-31")
    _completed(log, "violation/2026-0003", on)
    doc = fold_all(Violations(), log.events)["violation/2026-0003"]
    assert doc["state"] == "rectified"
    assert doc["rectified_late"] is late
    assert violation_status(doc, "2027-01-01") == "rectified"
    assert [e["type"] for e in doc["events"]] == [
        "violation.recorded",
        "violation.rectification_ordered",
        "violation.rectification_completed",
    ]


def test_a_new_order_replaces_the_deadline() -> None:
    log = Log()
    _recorded(log, "violation/2026-0004")
    _ordered(log, "violation/2026-0004", "2026-03-10")
    _ordered(log, "violation/2026-0004", "2026-04-30")
    doc = fold_all(Violations(), log.events)["violation/2026-0004"]
    assert violation_status(doc, "2026-04-01") == "ordered"
    assert violation_status(doc, "2026-05-01") == "overdue"


def test_other_events_are_not_routed() -> None:
    log = Log()
    log.add(
        "complaint.received",
        "complaint/2026-0001",
        {"channel": "letter", "category": "conduct", "received_on": "2026-03-01"},
        subject={"official": "4403-00871"},
    )
    assert fold_all(Violations(), log.events) == {}
