"""Case history: timeline, actors by role, durations in the flow's calendar, query-time state."""

from __future__ import annotations

from typing import Any

import pytest

from projections.case_history import (
    CaseHistory,
    case_state,
    conformance_at,
    durations,
    elapsed_days,
    total,
)
from tests.projections._log import Log, fold_all

MATTER = "matter/4403-fp/2026-000123"
UNIT = "4403-01"


def _actor(official: str, role: str) -> dict[str, str]:
    return {"official": official, "role": role, "unit": UNIT}


def _licence(log: Log, *, conclude_at: str | None, limit: dict[str, Any] | None = None) -> None:
    log.add(
        "matter.accepted",
        MATTER,
        {
            "matter_type": "licence",
            "time_limit": limit or {"days": 20, "calendar": "working"},
            "channel": "hall",
        },
        actor=_actor("4403-00112", "handler"),
        at="2026-03-02T02:00:00Z",  # Monday 10:00 CST
    )
    log.add(
        "matter.step_completed",
        MATTER,
        {"step": "review", "outcome": "passed"},
        actor=_actor("4403-00214", "reviewer"),
        at="2026-03-04T03:00:00Z",
    )
    log.add(
        "matter.step_completed",
        MATTER,
        {"step": "approve", "outcome": "approved", "level": 2},
        actor=_actor("4403-00305", "approver"),
        at="2026-03-09T03:00:00Z",
    )
    if conclude_at:
        log.add(
            "matter.concluded",
            MATTER,
            {"outcome": "granted", "final_seq": 4},
            actor=_actor("4403-00112", "handler"),
            at=conclude_at,
        )


def test_timeline_actors_and_durations() -> None:
    log = Log()
    _licence(log, conclude_at="2026-03-30T08:00:00Z")
    doc = fold_all(CaseHistory(), log.events)[MATTER]
    assert [(t["seq"], t["type"], t["step"]) for t in doc["timeline"]] == [
        (1, "matter.accepted", None),
        (2, "matter.step_completed", "review"),
        (3, "matter.step_completed", "approve"),
        (4, "matter.concluded", None),
    ]
    assert [t["position"] for t in doc["timeline"]] == [1, 2, 3, 4]
    assert doc["timeline"][0]["event_id"] == log.events[0].event_id
    assert doc["actors"] == {
        "approver": ["4403-00305"],
        "handler": ["4403-00112"],
        "reviewer": ["4403-00214"],
    }
    # working days: Mar 2 -> Mar 4 = 2; Mar 4 -> Mar 9 (Thu, Fri, Mon) = 3; Mar 9 -> Mar 30 = 15
    assert [(d["step"], d["days"]) for d in durations(doc)] == [
        ("review", 2),
        ("approve", 3),
        ("concluded", 15),
    ]
    assert total(doc) == {
        "days": 20,
        "calendar": "working",
        "limit_days": 20,
        "due_day": "2026-03-30",
        "within_limit": True,
    }
    assert doc["state"] == "concluded"
    assert CaseHistory().index(MATTER, doc) == {
        "matter_type": "licence",
        "unit": UNIT,
        "state": "concluded",
        "accepted_on": "2026-03-02",
        "handler": "4403-00112",
        "conformance_findings": len(doc["conformance"]),
    }


def test_concluded_a_day_late_is_not_within_limit() -> None:
    log = Log()
    _licence(log, conclude_at="2026-03-31T02:00:00Z")
    doc = fold_all(CaseHistory(), log.events)[MATTER]
    assert total(doc)["within_limit"] is False


@pytest.mark.parametrize(("as_of", "state"), [("2026-03-30", "open"), ("2026-03-31", "overdue")])
def test_open_matter_overdue_from_the_day_after_its_last_day(as_of: str, state: str) -> None:
    log = Log()
    _licence(log, conclude_at=None)
    doc = fold_all(CaseHistory(), log.events)[MATTER]
    assert case_state(doc, as_of) == state


def test_extension_moves_the_last_day_natural_calendar() -> None:
    log = Log()
    _licence(log, conclude_at=None, limit={"days": 30, "calendar": "natural"})
    # 30 natural days from Mon 2 March: 1 April (a Wednesday, a working day)
    doc = fold_all(CaseHistory(), log.events)[MATTER]
    assert case_state(doc, "2026-04-01") == "open"
    assert case_state(doc, "2026-04-02") == "overdue"
    log.add(
        "matter.extension_approved",
        MATTER,
        {"days": 5, "calendar": "natural", "reason": "complex"},
        actor=_actor("4403-00001", "bureau_head"),
        at="2026-03-20T02:00:00Z",
    )
    doc = fold_all(CaseHistory(), log.events)[MATTER]
    assert doc["limit_days"] == 35
    assert case_state(doc, "2026-04-02") == "open"


def test_withdrawn_and_collective_decision() -> None:
    log = Log()
    _licence(log, conclude_at=None)
    log.add(
        "decision.collective_recorded",
        "decision/4403-01/2026-0031",
        {
            "meeting": "bureau_office",
            "topic": "major_matter",
            "participants": ["4403-00001", "4403-00003", "4403-00305"],
            "leadership_size": 5,
            "matters": [MATTER, "matter/4403-fp/2026-000999"],
            "outcome": "approved",
            "held_on": "2026-03-10",
        },
        subject={"unit": UNIT},
    )
    log.add(
        "matter.withdrawn",
        MATTER,
        {"reason": "applicant withdrew", "approved_by": "4403-00001", "final_seq": 4},
        actor=_actor("4403-00112", "handler"),
        at="2026-03-12T02:00:00Z",
    )
    docs = fold_all(CaseHistory(), log.events)
    assert sorted(docs) == [MATTER, "matter/4403-fp/2026-000999"]
    doc = docs[MATTER]
    assert doc["state"] == "withdrawn"
    assert case_state(doc, "2027-01-01") == "withdrawn"
    (decision,) = doc["collective_decisions"]
    assert (decision["participants"], decision["leadership_size"]) == (
        ["4403-00001", "4403-00003", "4403-00305"],
        5,
    )
    assert len(doc["timeline"]) == 4  # the decision is not a matter step


def test_elapsed_days_uses_cst_dates_and_holidays() -> None:
    # 16:00Z is 00:00 CST of the next day
    assert elapsed_days("2026-03-02T15:59:59Z", "2026-03-02T16:00:00Z", "natural") == 1
    # National Day week 2026 (1-7 October): no working day between 30 Sep and 7 Oct
    assert elapsed_days("2026-09-30", "2026-10-07", "working") == 0
    assert elapsed_days("2026-09-30", "2026-10-07", "natural") == 7
    assert elapsed_days("2016-01-01", "2016-01-05", "working") is None  # outside the calendar


def test_conformance_findings_from_the_flow() -> None:
    log = Log()
    _licence(log, conclude_at="2026-03-30T08:00:00Z")
    doc = fold_all(CaseHistory(), log.events)[MATTER]
    # the licence flow's mandatory steps: review, approve, decide, license_document
    missing = sorted(f["step"] for f in doc["conformance"] if f["kind"] == "missing_step")
    assert missing == ["decide", "license_document"]
    assert CaseHistory().index(MATTER, doc)["conformance_findings"] == len(doc["conformance"])


def test_open_matter_past_its_due_time_is_a_query_time_finding() -> None:
    log = Log()
    _licence(log, conclude_at=None)
    doc = fold_all(CaseHistory(), log.events)[MATTER]
    assert not [f for f in doc["conformance"] if f["kind"] == "deadline_exceeded"]
    on_last_day = conformance_at(doc, "2026-03-30")
    assert not [f for f in on_last_day if f["kind"] == "deadline_exceeded"]
    day_after = conformance_at(doc, "2026-03-31")
    assert [f["kind"] for f in day_after if f["kind"] == "deadline_exceeded"] == [
        "deadline_exceeded"
    ]
