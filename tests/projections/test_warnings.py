"""Warnings register and cards: schema-valid detector events folded; states, levels, episodes,
query-time overdue, late flags; cards per official and year with the veto."""

from __future__ import annotations

from projections.integrity_file import IntegrityFile
from projections.warnings import Cards, Warnings, warning_status
from tests.projections._log import Log, fold_all

W = "warning/R05-processing-deadline/0123456789abcdef0123456789abcdef"
OFFICIAL = "4403-00101"
HASH = "ab" * 32
TRIGGER = "0193a000-0000-7000-8000-000000000001"
SUPERVISOR = {"official": "4403-00900", "role": "supervisor", "unit": "4403-09"}


def _raised(level: str = "yellow", *, late: bool = False, attributed=None) -> dict:
    return {
        "rule_id": "R05-processing-deadline",
        "rule_version": 1,
        "ruleset_hash": HASH,
        "level": level,
        "grade": 2,
        "category": "tax_enforcement",
        "key": "matter/4403-xk/2026-1",
        "attributed": attributed
        if attributed is not None
        else {"official": OFFICIAL, "role": "handler"},
        "triggers": [TRIGGER],
        "late": late,
        "due_at": "2026-03-02T02:00:00Z",
        "action": "remind",
    }


def _lifecycle(log: Log, raised_id: str) -> None:
    subject = {"official": OFFICIAL}
    log.add(
        "warning.acknowledged",
        W,
        {"warning_ref": raised_id, "acknowledged_by": "4403-00900", "note_code": "seen"},
        subject=subject,
        actor=SUPERVISOR,
        at="2026-03-03T02:00:00Z",
    )
    log.add(
        "warning.rectification_ordered",
        W,
        {"warning_ref": raised_id, "rectify_by": "2026-03-10", "ordered_by": "4403-00900"},
        subject=subject,
        actor=SUPERVISOR,
        at="2026-03-04T02:00:00Z",
    )


def test_raise_escalate_and_the_lifecycle_in_order() -> None:
    log = Log()
    raised = log.add("warning.raised", W, _raised())
    escalated = {**_raised("orange"), "warning_ref": raised.event_id, "from_level": "yellow"}
    log.add("warning.escalated", W, escalated, at="2026-03-02T03:00:00Z")
    doc = fold_all(Warnings(), log.events)[W]
    assert (doc["state"], doc["level"], doc["warning_ref"]) == ("open", "orange", raised.event_id)
    assert [lv["level"] for lv in doc["levels"]] == ["yellow", "orange"]
    assert (doc["official"], doc["role"], doc["grade"]) == (OFFICIAL, "handler", 2)
    assert doc["triggers"] == [TRIGGER]
    _lifecycle(log, raised.event_id)
    doc = fold_all(Warnings(), log.events)[W]
    assert (doc["state"], doc["rectify_by"], doc["note_code"]) == (
        "rectification_ordered",
        "2026-03-10",
        "seen",
    )
    # overdue from the day after the deadline, judged at query time
    assert warning_status(doc, "2026-03-10") == "rectification_ordered"
    assert warning_status(doc, "2026-03-11") == "overdue"
    log.add(
        "warning.rectified",
        W,
        {"warning_ref": raised.event_id, "rectified_on": "2026-03-12", "evidence_ref": "EV-1"},
        actor=SUPERVISOR,
    )
    doc = fold_all(Warnings(), log.events)[W]
    assert (doc["state"], doc["rectified_late"]) == ("rectified", True)
    assert warning_status(doc, "2026-04-01") == "rectified"
    log.add(
        "warning.closed",
        W,
        {"warning_ref": raised.event_id, "reason": "rectified", "closed_by": "4403-00900"},
        actor=SUPERVISOR,
    )
    doc = fold_all(Warnings(), log.events)[W]
    assert (doc["state"], doc["close_reason"], doc["previous"]) == ("closed", "rectified", [])
    assert Warnings().index(W, doc)["state"] == "closed"


def test_a_raise_after_closure_starts_a_new_episode() -> None:
    log = Log()
    first = log.add("warning.raised", W, _raised("orange"))
    log.add(
        "warning.closed",
        W,
        {"warning_ref": first.event_id, "reason": "false_positive", "closed_by": "4403-00900"},
    )
    second = log.add("warning.raised", W, _raised("yellow", late=True))
    doc = fold_all(Warnings(), log.events)[W]
    assert (doc["warning_ref"], doc["state"], doc["level"]) == (second.event_id, "open", "yellow")
    assert doc["late"] is True
    (previous,) = doc["previous"]
    assert (previous["warning_ref"], previous["state"]) == (first.event_id, "closed")


def test_unit_attribution_and_other_streams_are_not_routed() -> None:
    log = Log()
    log.add("warning.raised", W, _raised(attributed={"unit": "4403-01", "role": "unit_head"}))
    log.example("matter.accepted")
    docs = fold_all(Warnings(), log.events)
    assert list(docs) == [W]
    assert (docs[W]["unit"], docs[W]["official"]) == ("4403-01", None)


def _card(color: str, veto: bool, year: int = 2026) -> dict:
    return {
        "rule_id": "R24-card-escalation",
        "rule_version": 1,
        "ruleset_hash": HASH,
        "color": color,
        "official": OFFICIAL,
        "veto": veto,
        "assessment_year": year,
        "warning_refs": [TRIGGER],
        "card_refs": [],
        "trigger": TRIGGER,
    }


def test_cards_per_official_and_year_with_the_veto() -> None:
    log = Log()
    subject = {"official": OFFICIAL}
    log.add("card.issued", f"card/{OFFICIAL}", _card("yellow", False), subject=subject)
    log.add("card.issued", f"card/{OFFICIAL}", _card("red", True), subject=subject)
    log.add("card.issued", f"card/{OFFICIAL}", _card("yellow", False, 2027), subject=subject)
    docs = fold_all(Cards(), log.events)
    this_year = docs[f"{OFFICIAL}/2026"]
    assert (this_year["yellow"], this_year["red"], this_year["veto"]) == (1, 1, True)
    assert docs[f"{OFFICIAL}/2027"]["veto"] is False
    assert Cards().index(f"{OFFICIAL}/2026", this_year)["veto"] == 1


def test_the_integrity_file_shows_attributed_warnings_cards_and_lifecycle() -> None:
    log = Log()
    raised = log.add("warning.raised", W, _raised())  # no subject: routed by attribution
    _lifecycle(log, raised.event_id)  # lifecycle steps carry the official as subject
    log.add("card.issued", f"card/{OFFICIAL}", _card("red", True), subject={"official": OFFICIAL})
    doc = fold_all(IntegrityFile(), log.events)[OFFICIAL]
    (warning,) = doc["warnings"]
    assert (warning["stream"], warning["events"], warning["state"]) == (
        W,
        3,
        "rectification_ordered",
    )
    assert warning["rectify_by"] == "2026-03-10"
    (card,) = doc["cards"]
    assert (card["color"], card["veto"], card["assessment_year"]) == ("red", True, 2026)
