"""Declaration register (个人有关事项报告 / 收入申报) per official and year.

Key `official/year`. What the log obliges and what was filed:

- annual report for year Y, due **Y+1-01-31**, owed when the official's last appointment on
  or before the end of Y was reportable (`annual_owed`, judged over the official's documents);
- change report, due **30 days** after the event each `declaration.matter_observed` reports
  (its `event_on`, else `observed_on`; key: the year of that date);
- initial report, due **30 days** after a reportable appointment (key: the year of
  `effective_on`).

A filing is matched to the earliest open obligation of its kind (a change report to one whose
`item_code` it reports, preferring the same `event_on`), whichever of the two arrives first.
Filings carry their `year`; a change report is filed under the year of its `event_on`.

Guarantees:

- The fold stores due dates and filing dates only; status (due / filed / late / missing) is
  computed by `obligation_status` against an explicit `as_of`, never from the wall clock. On
  the due date itself an unfiled obligation is `due`; the day after it is `missing`. A filing
  on the due date is `filed`; one day later it is `late`.
- The document MUST NOT hold personal values: item codes, counts and pii field names only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from projections.base import Doc, LoggedEvent
from projections.support import add_days, event_ref, official_of, parse_date, year_of

__all__ = [
    "ANNUAL_DUE_MONTH_DAY",
    "CHANGE_REPORT_DAYS",
    "INITIAL_REPORT_DAYS",
    "Declarations",
    "annual_due_on",
    "annual_owed",
    "obligation_status",
    "register_rows",
]

ANNUAL_DUE_MONTH_DAY = "01-31"  # 第五条: annual report by 31 January of the next year [S]
CHANGE_REPORT_DAYS = 30  # change report within 30 days of the event [S]
INITIAL_REPORT_DAYS = 30  # newly appointed: within 30 days [S]

_FINDING_RANK = {"consistent": 0, "omission": 1, "concealment": 2}


def annual_due_on(year: int) -> str:
    return f"{year + 1}-{ANNUAL_DUE_MONTH_DAY}"


def obligation_status(due_on: str, filed_on: str | None, as_of: str) -> str:
    """`filed` / `late` once filed (by the due date or after it); else `due` up to and
    including the due date and `missing` from the day after."""
    if filed_on is not None:
        return "filed" if parse_date(filed_on) <= parse_date(due_on) else "late"
    return "due" if parse_date(as_of) <= parse_date(due_on) else "missing"


def _new(key: str) -> Doc:
    official, _, year = key.rpartition("/")
    return {
        "official": official,
        "year": int(year),
        "unit": None,
        "appointments": [],
        "reportable_at_year_end": None,
        "obligations": [],
        "filings": [],
        "income": [],
        "verifications": [],
    }


def _matches(obligation: dict[str, Any], filing: dict[str, Any]) -> bool:
    if obligation["kind"] != filing["kind"] or obligation["filing"] is not None:
        return False
    if filing["matched"]:
        return False
    return obligation["kind"] != "change" or obligation["item_code"] in filing["item_codes"]


def _match(doc: Doc) -> None:
    """Pair open obligations with unmatched filings (earliest first; same event date first)."""
    for obligation in sorted(doc["obligations"], key=lambda o: (o["due_on"], o["position"])):
        candidates = [f for f in doc["filings"] if _matches(obligation, f)]
        if not candidates:
            continue
        exact = [f for f in candidates if f.get("event_on") == obligation.get("event_on")]
        filing = (exact or candidates)[0]
        filing["matched"] = True
        obligation["filing"] = filing["event_id"]
        obligation["filed_on"] = filing["filed_on"]


class Declarations:
    """个人有关事项报告 register: one document per official and year (key `official/year`)."""

    name: ClassVar[str] = "declarations"
    version: ClassVar[int] = 1
    types: ClassVar[tuple[str, ...]] = ("personnel.appointed", "declaration.")
    columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("official", "text"),
        ("year", "int"),
        ("unit", "text"),
        ("annual_filed_on", "text"),
        ("open_obligations", "int"),
        ("earliest_open_due", "text"),
        ("worst_finding", "text"),
    )

    def route(self, event: LoggedEvent) -> Iterable[str]:
        official = official_of(event)
        if official is None:
            return ()
        d = event.data
        if event.type == "personnel.appointed":
            when = d.get("effective_on")
            return (f"{official}/{year_of(when)}",) if when else ()
        if event.type == "declaration.matter_observed":
            return (f"{official}/{year_of(_change_trigger(d))}",)
        if event.type == "declaration.personal_matters_reported":
            if d.get("kind") == "change" and d.get("event_on"):
                return (f"{official}/{year_of(d['event_on'])}",)
            return (f"{official}/{d['year']}",)
        if event.type in ("declaration.income_declared", "declaration.verification_completed"):
            return (f"{official}/{d['year']}",)
        return ()

    def fold(self, doc: Doc | None, event: LoggedEvent, key: str) -> Doc:
        doc = doc if doc is not None else _new(key)
        d = event.data
        if event.type == "personnel.appointed":
            reportable = bool(d.get("reportable", False))
            doc["appointments"].append(
                {
                    **event_ref(event),
                    "effective_on": d["effective_on"],
                    "unit": d.get("unit"),
                    "rank": d.get("rank"),
                    "reportable": reportable,
                }
            )
            last = max(doc["appointments"], key=lambda a: (a["effective_on"], a["position"]))
            doc["reportable_at_year_end"] = last["reportable"]
            doc["unit"] = last["unit"]
            if reportable:
                doc["obligations"].append(
                    _obligation(event, "initial", d["effective_on"], INITIAL_REPORT_DAYS)
                )
        elif event.type == "declaration.matter_observed":
            obligation = _obligation(event, "change", _change_trigger(d), CHANGE_REPORT_DAYS)
            obligation["item_code"] = d.get("item_code")
            obligation["source"] = d.get("source")
            doc["obligations"].append(obligation)
        elif event.type == "declaration.personal_matters_reported":
            items = d.get("items", [])
            doc["filings"].append(
                {
                    **event_ref(event),
                    "kind": d.get("kind"),
                    "filed_on": d.get("filed_on"),
                    "event_on": d.get("event_on"),
                    "items": len(items),
                    "item_codes": sorted({i["item_code"] for i in items if "item_code" in i}),
                    "no_change_items": sum(1 for i in items if i.get("no_change")),
                    "pii_fields": sorted({f for i in items for f in i.get("pii_fields", [])}),
                    "matched": False,
                }
            )
        elif event.type == "declaration.income_declared":
            items = d.get("items", [])
            doc["income"].append(
                {
                    **event_ref(event),
                    "half": d.get("half"),
                    "filed_on": d.get("filed_on"),
                    "items": len(items),
                    "pii_fields": sorted({f for i in items for f in i.get("pii_fields", [])}),
                }
            )
        elif event.type == "declaration.verification_completed":
            findings = [
                {"item_code": f.get("item_code"), "finding": f.get("finding")}
                for f in d.get("findings", [])
            ]
            doc["verifications"].append(
                {
                    **event_ref(event),
                    "report_ref": d.get("report_ref"),
                    "method": d.get("method"),
                    "findings": findings,
                }
            )
        _match(doc)
        return doc

    def index(self, key: str, doc: Doc) -> dict[str, str | int | None]:
        annual = [f["filed_on"] for f in doc["filings"] if f["kind"] == "annual"]
        open_dues = [o["due_on"] for o in doc["obligations"] if o["filing"] is None]
        return {
            "official": doc["official"],
            "year": doc["year"],
            "unit": doc["unit"],
            "annual_filed_on": min(annual) if annual else None,
            "open_obligations": len(open_dues),
            "earliest_open_due": min(open_dues) if open_dues else None,
            "worst_finding": _worst_finding(doc),
        }


def _change_trigger(data: dict[str, Any]) -> str:
    """A change report is due 30 days after the reported event (`event_on`); when the
    observation does not date the event, after the day it was observed."""
    return str(data.get("event_on") or data["observed_on"])


def _obligation(event: LoggedEvent, kind: str, trigger_on: str, days: int) -> dict[str, Any]:
    return {
        **event_ref(event),
        "kind": kind,
        "event_on": trigger_on,
        "due_on": add_days(trigger_on, days),
        "filing": None,
        "filed_on": None,
    }


def _worst_finding(doc: Doc) -> str | None:
    findings = [f["finding"] for v in doc["verifications"] for f in v["findings"]]
    return max(findings, key=lambda f: _FINDING_RANK.get(f, -1)) if findings else None


def annual_owed(docs: Sequence[Doc], year: int) -> bool:
    """Whether the official owes the annual report for `year`: their last appointment on or
    before 31 December of `year` (over all their documents) was reportable."""
    earlier = [d for d in docs if d["year"] <= year and d["reportable_at_year_end"] is not None]
    if not earlier:
        return False
    return bool(max(earlier, key=lambda d: d["year"])["reportable_at_year_end"])


def register_rows(docs: Sequence[Doc], official: str, year: int, as_of: str) -> list[Doc]:
    """The register lines of one official for `year`, with status as of `as_of`.

    `docs` are the official's documents (any years); lines: the annual report (when owed or
    filed), each initial and change obligation, and filings no obligation explains.
    """
    this = next((d for d in docs if d["year"] == year), None) or _new(f"{official}/{year}")
    rows: list[Doc] = []
    annual = sorted(
        (f for f in this["filings"] if f["kind"] == "annual"), key=lambda f: f["position"]
    )
    if annual or annual_owed(docs, year):
        due = annual_due_on(year)
        filed_on = annual[0]["filed_on"] if annual else None
        rows.append(
            _row(
                official,
                year,
                "annual",
                obligation=None,
                due_on=due,
                filed_on=filed_on,
                filing=annual[0] if annual else None,
            )
        )
    for o in sorted(this["obligations"], key=lambda o: (o["due_on"], o["position"])):
        filing = next((f for f in this["filings"] if f["event_id"] == o["filing"]), None)
        rows.append(
            _row(
                official,
                year,
                o["kind"],
                obligation=o,
                due_on=o["due_on"],
                filed_on=o["filed_on"],
                filing=filing,
            )
        )
    for f in this["filings"]:
        if f["kind"] not in ("annual",) and not f["matched"]:
            rows.append(
                _row(
                    official,
                    year,
                    f["kind"],
                    obligation=None,
                    due_on=None,
                    filed_on=f["filed_on"],
                    filing=f,
                )
            )
    for row in rows:
        row["status"] = (
            obligation_status(row["due_on"], row["filed_on"], as_of)
            if row["due_on"] is not None
            else "filed"
        )
        row["findings"] = [
            f
            for v in this["verifications"]
            if v["report_ref"] is not None and v["report_ref"] == row["filing"]
            for f in v["findings"]
        ]
    return rows


def _row(
    official: str,
    year: int,
    kind: str,
    *,
    obligation: dict[str, Any] | None,
    due_on: str | None,
    filed_on: str | None,
    filing: dict[str, Any] | None,
) -> Doc:
    return {
        "official": official,
        "year": year,
        "kind": kind,
        "trigger_on": obligation["event_on"] if obligation else None,
        "item_code": obligation.get("item_code") if obligation else None,
        "due_on": due_on,
        "filed_on": filed_on,
        "filing": filing["event_id"] if filing else None,
        "items": filing["items"] if filing else None,
        "pii_fields": filing["pii_fields"] if filing else [],
    }
