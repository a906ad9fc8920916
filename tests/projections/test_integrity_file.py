"""Integrity file (廉政档案): every folded event type lands in its section; no personal values."""

from __future__ import annotations

from projections.base import encode_doc
from projections.integrity_file import IntegrityFile, incompetent_share
from tests.catalogue_examples import EXAMPLES
from tests.projections._log import Log, fold_all

OFFICIAL = "4403-00871"

FOLDED = [
    "personnel.appointed",
    "personnel.assessment_tallied",
    "personnel.talk_held",
    "personnel.sanctioned",
    "personnel.training_completed",
    "personnel.integrity_file_updated",
    "declaration.personal_matters_reported",
    "declaration.income_declared",
    "declaration.matter_observed",
    "declaration.verification_completed",
    "complaint.received",
    "complaint.concluded",
    "violation.recorded",
    "violation.rectification_ordered",
    "violation.rectification_completed",
]


def _full_file() -> tuple[Log, dict]:
    log = Log()
    for event_type in FOLDED:
        log.example(event_type)
    docs = fold_all(IntegrityFile(), log.events)
    return log, docs


def test_every_section_is_filled_from_its_event_type() -> None:
    log, docs = _full_file()
    assert list(docs) == [OFFICIAL]
    doc = docs[OFFICIAL]
    (appointment,) = doc["appointments"]
    assert appointment["recommended_by"] == "4403-00003"
    assert appointment["examined_by"] == "4403-rs-exam"
    assert appointment["inspected_by"] == "4403-00041"
    assert appointment["decided_by"] == "4403-party-committee"
    assert (doc["unit"], doc["rank"], doc["reportable"]) == ("4403-01", "county_deputy", True)
    (assessment,) = doc["assessments"]
    assert assessment["incompetent_share"] == "1/34"
    assert assessment["incompetent_share_at_least_one_third"] is False
    assert doc["talks"][0]["kind"] == "preventive"
    assert doc["sanctions"][0]["sanction"] == "written_check"
    assert doc["training"][0]["hours"] == 16
    assert doc["file_updates"][0]["sections"] == [
        "basic_info",
        "personal_matters",
        "integrity_talks",
    ]
    report, income = doc["declarations"]
    assert (report["declaration"], report["kind"], report["year"]) == (
        "personal_matters",
        "annual",
        2025,
    )
    assert report["items"] == 4
    assert report["pii_fields"] == [
        "i3_1_spouse_name",
        "i3_1_status",
        "i4_3_1_address",
        "i4_3_1_area_m2",
        "i4_3_2_address",
    ]
    assert (income["declaration"], income["kind"]) == ("income", "H1")
    assert doc["observed_matters"][0]["item_code"] == "3.1"
    assert [f["finding"] for f in doc["verifications"][0]["findings"]] == ["consistent", "omission"]
    (complaint,) = doc["complaints"]
    assert (complaint["received_on"], complaint["finding"]) == (
        "2026-07-03",
        "partly_substantiated",
    )
    (violation,) = doc["violations"]
    assert (violation["grade"], violation["rectify_by"], violation["completed_on"]) == (
        2,
        "2026-12-10",
        "2026-12-03",
    )
    # the pii section names each committed field of each event, never a value
    assert {(p["type"], p["field"]) for p in doc["pii"]} == {
        ("declaration.personal_matters_reported", f) for f in report["pii_fields"]
    } | {("declaration.income_declared", f) for f in income["pii_fields"]}
    assert all(not p["erased"] for p in doc["pii"])
    assert doc["last_position"] == len(log.events)
    idx = IntegrityFile().index(OFFICIAL, doc)
    assert idx == {
        "unit": "4403-01",
        "rank": "county_deputy",
        "post": EXAMPLES["personnel.appointed"]["post"],
        "reportable": 1,
        "violations": 1,
        "sanctions": 1,
        "red_cards": 0,
    }


def test_erasure_marks_exactly_the_named_fields() -> None:
    log, _ = _full_file()
    report = next(e for e in log.events if e.type == "declaration.personal_matters_reported")
    log.example(
        "pii.erased",
        data={
            **EXAMPLES["pii.erased"],
            "fields": [
                {"event_id": report.event_id, "field": "i3_1_spouse_name"},
                {"event_id": report.event_id, "field": "i4_3_1_address"},
            ],
        },
    )
    log.example("audit.pii_read")
    doc = fold_all(IntegrityFile(), log.events)[OFFICIAL]
    erased = sorted(p["field"] for p in doc["pii"] if p["erased"])
    assert erased == ["i3_1_spouse_name", "i4_3_1_address"]
    (erasure,) = doc["erasures"]
    assert erasure["fields"] == 2
    assert erasure["approved_by"] == "4403-00001"
    assert erasure["legal_basis"] == "个人信息保护法 第四十七条"
    (read,) = doc["pii_reads"]
    assert (read["reader"], read["fields"]) == ("4403-00041", 3)


def test_incompetent_share_at_one_third() -> None:
    assert incompetent_share({"competent": 8, "incompetent": 4}) == ("4/12", True)
    assert incompetent_share({"competent": 9, "incompetent": 4}) == ("4/13", False)
    assert incompetent_share({}) == ("0/0", False)


def test_warnings_cards_and_rejected_commands_are_routed_when_present() -> None:
    log = Log()
    subject = {"official": OFFICIAL}
    for type_, stream, data in [
        ("warning.raised", "warning/R05/x1", {"rule_id": "R05", "level": "yellow"}),
        ("warning.escalated", "warning/R05/x1", {"rule_id": "R05", "level": "orange"}),
        ("card.issued", f"card/{OFFICIAL}/2026-1", {"color": "red", "veto_flag": True}),
        ("command.rejected", "command/c1", {"rule_id": "R02", "command": "conclude"}),
    ]:
        log.add(type_, stream, data, subject=subject, validate=False)
    doc = fold_all(IntegrityFile(), log.events)[OFFICIAL]
    (warning,) = doc["warnings"]
    assert (warning["state"], warning["level"], warning["events"]) == ("escalated", "orange", 2)
    assert doc["cards"][0]["color"] == "red"
    assert doc["commands_rejected"][0]["rule_id"] == "R02"
    assert IntegrityFile().index(OFFICIAL, doc)["red_cards"] == 1


def test_matter_and_taxpayer_events_are_not_routed() -> None:
    log = Log()
    log.example("matter.accepted")
    log.example("taxpayer.invoice_usage_reported")
    assert fold_all(IntegrityFile(), log.events) == {}


def test_fold_is_a_prefix_function() -> None:
    """Folding a prefix equals the document as it stood then (what `--at SIZE` relies on)."""
    log, docs = _full_file()
    half = len(log.events) // 2
    prefix = fold_all(IntegrityFile(), log.events[:half])[OFFICIAL]
    assert prefix["last_position"] == half
    assert encode_doc(prefix) != encode_doc(docs[OFFICIAL])
