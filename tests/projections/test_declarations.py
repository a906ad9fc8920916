"""Declaration register: due dates stored by the fold, status judged at as_of (Jan 31, +30 days)."""

from __future__ import annotations

from typing import Any

import pytest

from projections.declarations import (
    Declarations,
    annual_due_on,
    annual_owed,
    obligation_status,
    register_rows,
)
from tests.projections._log import Log, fold_all

OFFICIAL = "4403-00871"
SUBJECT = {"official": OFFICIAL}


def _appoint(log: Log, on: str, *, reportable: bool = True, unit: str = "4403-01") -> None:
    log.add(
        "personnel.appointed",
        f"official/{OFFICIAL}",
        {
            "post": "deputy director",
            "unit": unit,
            "rank": "county_deputy" if reportable else "staff",
            "reportable": reportable,
            "recommended_by": "4403-00100",
            "examined_by": "4403-00101",
            "inspected_by": "4403-00102",
            "decided_by": "4403-party-committee",
            "effective_on": on,
        },
        subject=SUBJECT,
    )


def _report(log: Log, kind: str, year: int, filed_on: str, **extra: Any) -> str:
    items = extra.pop(
        "items",
        [
            {
                "item_code": "3.1",
                "subject_role": "self",
                "no_change": False,
                "count": 1,
                "pii_fields": ["spouse_name"],
            },
            {"item_code": "4.3", "subject_role": "self", "no_change": True, "count": 0},
        ],
    )
    event = log.add(
        "declaration.personal_matters_reported",
        f"declaration/{OFFICIAL}",
        {"year": year, "kind": kind, "filed_on": filed_on, "items": items, **extra},
        subject=SUBJECT,
        pii={"spouse_name": "B" * 43 + "="},
    )
    return event.event_id


def _observed(log: Log, item: str, observed_on: str, event_on: str | None = None) -> None:
    data = {"item_code": item, "observed_on": observed_on, "source": "marriage_registry"}
    if event_on:
        data["event_on"] = event_on
    log.add("declaration.matter_observed", f"declaration/{OFFICIAL}", data, subject=SUBJECT)


def _rows(log: Log, year: int, as_of: str) -> list[dict[str, Any]]:
    docs = fold_all(Declarations(), log.events)
    mine = [d for d in docs.values() if d["official"] == OFFICIAL]
    return register_rows(mine, OFFICIAL, year, as_of)


def test_status_boundaries() -> None:
    assert obligation_status("2027-01-31", None, "2027-01-31") == "due"
    assert obligation_status("2027-01-31", None, "2027-02-01") == "missing"
    assert obligation_status("2027-01-31", "2027-01-31", "2030-01-01") == "filed"
    assert obligation_status("2027-01-31", "2027-02-01", "2027-02-01") == "late"
    assert annual_due_on(2026) == "2027-01-31"


@pytest.mark.parametrize(
    ("as_of", "status"),
    [("2027-01-30", "due"), ("2027-01-31", "due"), ("2027-02-01", "missing")],
)
def test_annual_report_missing_after_january_31(as_of: str, status: str) -> None:
    log = Log()
    _appoint(log, "2025-06-01")
    rows = _rows(log, 2026, as_of)
    annual = [r for r in rows if r["kind"] == "annual"]
    assert len(annual) == 1
    assert annual[0]["due_on"] == "2027-01-31"
    assert annual[0]["status"] == status


@pytest.mark.parametrize(("filed_on", "status"), [("2027-01-31", "filed"), ("2027-02-01", "late")])
def test_annual_report_filed_or_late(filed_on: str, status: str) -> None:
    log = Log()
    _appoint(log, "2025-06-01")
    event_id = _report(log, "annual", 2026, filed_on)
    (annual,) = [r for r in _rows(log, 2026, "2027-03-01") if r["kind"] == "annual"]
    assert annual["status"] == status
    assert annual["filing"] == event_id
    assert annual["items"] == 2
    assert annual["pii_fields"] == ["spouse_name"]


def test_annual_owed_follows_the_last_appointment() -> None:
    log = Log()
    _appoint(log, "2024-03-01")
    _appoint(log, "2026-05-01", reportable=False)
    docs = list(fold_all(Declarations(), log.events).values())
    assert annual_owed(docs, 2025)
    assert not annual_owed(docs, 2026)
    assert not annual_owed(docs, 2023)
    assert [r["kind"] for r in register_rows(docs, OFFICIAL, 2026, "2027-03-01")] == []


@pytest.mark.parametrize(
    ("as_of", "status"),
    [("2026-07-01", "due"), ("2026-07-31", "due"), ("2026-08-01", "missing")],
)
def test_initial_report_due_30_days_after_a_reportable_appointment(as_of: str, status: str) -> None:
    log = Log()
    _appoint(log, "2026-07-01")
    (initial,) = [r for r in _rows(log, 2026, as_of) if r["kind"] == "initial"]
    assert initial["due_on"] == "2026-07-31"
    assert initial["status"] == status


def test_no_initial_report_for_a_non_reportable_post() -> None:
    log = Log()
    _appoint(log, "2026-07-01", reportable=False)
    assert _rows(log, 2026, "2027-03-01") == []


def test_initial_report_filed_matches_the_obligation() -> None:
    log = Log()
    _appoint(log, "2026-07-01")
    _report(log, "initial", 2026, "2026-08-01")
    (initial,) = [r for r in _rows(log, 2026, "2026-09-01") if r["kind"] == "initial"]
    assert initial["status"] == "late"


def test_change_report_due_30_days_after_the_event() -> None:
    log = Log()
    _observed(log, "3.1", observed_on="2026-05-20", event_on="2026-05-10")
    (change,) = [r for r in _rows(log, 2026, "2026-06-09") if r["kind"] == "change"]
    assert change["due_on"] == "2026-06-09"
    assert change["status"] == "due"
    (change,) = [r for r in _rows(log, 2026, "2026-06-10") if r["kind"] == "change"]
    assert change["status"] == "missing"


def test_change_report_filed_before_the_observation_arrives_still_matches() -> None:
    log = Log()
    event_id = _report(log, "change", 2026, "2026-05-25", event_on="2026-05-10")
    _observed(log, "3.1", observed_on="2026-07-01", event_on="2026-05-10")
    (change,) = [r for r in _rows(log, 2026, "2026-08-01") if r["kind"] == "change"]
    assert change["filing"] == event_id
    assert change["status"] == "filed"


def test_change_report_of_another_item_does_not_satisfy() -> None:
    log = Log()
    _observed(log, "3.6", observed_on="2026-05-10")
    _report(log, "change", 2026, "2026-05-25", event_on="2026-05-10")  # items 3.1, 4.3
    rows = _rows(log, 2026, "2026-07-01")
    assert [(r["kind"], r["status"]) for r in rows] == [("change", "missing"), ("change", "filed")]
    assert rows[0]["item_code"] == "3.6"
    assert rows[1]["due_on"] is None  # a filing no obligation explains


def test_change_observed_in_december_is_keyed_by_the_event_year() -> None:
    log = Log()
    _observed(log, "3.1", observed_on="2027-01-05", event_on="2026-12-20")
    docs = fold_all(Declarations(), log.events)
    assert list(docs) == [f"{OFFICIAL}/2026"]
    (change,) = _rows(log, 2026, "2027-01-19")
    assert (change["due_on"], change["status"]) == ("2027-01-19", "due")


def test_verification_findings_and_income() -> None:
    log = Log()
    _appoint(log, "2025-01-10")
    report = _report(log, "annual", 2026, "2027-01-20")
    log.add(
        "declaration.verification_completed",
        f"declaration/{OFFICIAL}",
        {
            "year": 2026,
            "report_ref": report,
            "method": "random_check",
            "findings": [
                {"item_code": "3.1", "finding": "consistent"},
                {"item_code": "4.3", "finding": "concealment"},
            ],
        },
        subject=SUBJECT,
    )
    log.add(
        "declaration.income_declared",
        f"declaration/{OFFICIAL}",
        {
            "year": 2026,
            "half": "H1",
            "filed_on": "2026-07-15",
            "items": [{"item_code": "4.1", "pii_fields": ["salary"]}],
        },
        subject=SUBJECT,
        pii={"salary": "C" * 43 + "="},
    )
    docs = fold_all(Declarations(), log.events)
    doc = docs[f"{OFFICIAL}/2026"]
    assert doc["income"][0]["pii_fields"] == ["salary"]
    assert Declarations().index(f"{OFFICIAL}/2026", doc)["worst_finding"] == "concealment"
    (annual,) = register_rows(list(docs.values()), OFFICIAL, 2026, "2027-03-01")
    assert annual["status"] == "filed"
    assert [f["finding"] for f in annual["findings"]] == ["consistent", "concealment"]
    assert "salary" not in str(doc["filings"])  # names only where they belong; no values


def test_document_holds_no_values() -> None:
    log = Log()
    _report(log, "annual", 2026, "2027-01-20")
    doc = fold_all(Declarations(), log.events)[f"{OFFICIAL}/2026"]
    assert "B" * 43 not in str(doc)  # not even the commitment: names only
