"""Unit statistics: matters by type and state, violations by grade, overdue at as_of."""

from __future__ import annotations

from projections.case_history import CaseHistory
from projections.unit_stats import UnitStats, unit_report
from tests.projections._log import Log, fold_all

UNIT = "4403-01"
ACTOR = {"official": "4403-00112", "role": "handler", "unit": UNIT}


def _matter(log: Log, serial: str, matter_type: str) -> str:
    stream = f"matter/4403-fp/2026-{serial}"
    log.add("matter.accepted", stream, {"matter_type": matter_type}, actor=ACTOR)
    return stream


def _violation(log: Log, serial: str, grade: int, rectify_by: str | None, done: str | None) -> None:
    stream = f"violation/2026-{serial}"
    subject = {"official": "4403-00112", "unit": UNIT}
    log.add(
        "violation.recorded",
        stream,
        {"grade": grade, "error_code": "E1", "source": "audit", "found_on": "2026-03-01"},
        subject=subject,
    )
    if rectify_by:
        log.add(
            "violation.rectification_ordered",
            stream,
            {"rectify_by": rectify_by, "ordered_by": "4403-00001"},
            subject=subject,
        )
    if done:
        log.add(
            "violation.rectification_completed",
            stream,
            {"completed_on": done, "evidence_ref": "DOC-1"},
            subject=subject,
        )


def test_matters_by_type_and_state() -> None:
    log = Log()
    a = _matter(log, "000001", "licence")
    b = _matter(log, "000002", "licence")
    _matter(log, "000003", "refund_applied")
    log.add("matter.concluded", a, {"outcome": "granted", "final_seq": 2}, actor=ACTOR)
    log.add("matter.withdrawn", b, {"reason": "withdrawn", "final_seq": 2}, actor=ACTOR)
    doc = fold_all(UnitStats(), log.events)[UNIT]
    assert doc["matters"] == {
        "licence": {"open": 0, "concluded": 1, "withdrawn": 1},
        "refund_applied": {"open": 1},
    }
    assert list(doc["open_matters"]) == ["matter/4403-fp/2026-000003"]
    assert UnitStats().index(UNIT, doc)["open_matters"] == 1


def test_violations_rectified_and_overdue_at_as_of() -> None:
    log = Log()
    _violation(log, "0001", 1, "2026-04-30", None)
    _violation(log, "0002", 2, "2026-05-31", None)
    _violation(log, "0003", 2, "2026-04-10", "2026-04-12")  # rectified late
    _violation(log, "0004", 3, None, None)
    doc = fold_all(UnitStats(), log.events)[UNIT]
    assert doc["violations_by_grade"] == {"1": 1, "2": 2, "3": 1}
    assert (doc["rectified"], doc["rectified_late"]) == (1, 1)
    assert UnitStats().index(UNIT, doc)["earliest_rectify_by"] == "2026-04-30"
    on_deadline = unit_report(doc, [], "2026-04-30")
    assert on_deadline["overdue_rectifications"] == 0
    day_after = unit_report(doc, [], "2026-05-01")
    assert day_after["overdue_rectifications"] == 1
    assert day_after["overdue_by_grade"] == {"1": 1}
    later = unit_report(doc, [], "2026-06-01")
    assert later["overdue_by_grade"] == {"1": 1, "2": 1}


def test_conformance_findings_come_from_case_histories() -> None:
    log = Log()
    stream = _matter(log, "000001", "licence")
    log.add("matter.concluded", stream, {"outcome": "granted", "final_seq": 2}, actor=ACTOR)
    stats = fold_all(UnitStats(), log.events)[UNIT]
    cases = list(fold_all(CaseHistory(), log.events).values())
    report = unit_report(stats, cases, "2026-12-31")
    expected: dict[str, int] = {}
    for case in cases:
        for finding in case["conformance"]:
            expected[finding["kind"]] = expected.get(finding["kind"], 0) + 1
    assert report["conformance_by_kind"] == dict(sorted(expected.items()))
