"""Integrity file (廉政档案) per official: everything the log says about one official.

Keyed by official id. Folds appointments (with who recommended, examined, inspected and
decided: 用人失察 accountability needs all four), assessment votes, personal-matters reports
and income declarations (kind, year, filing date, item count and the *names* of personal
fields, never their values), verification findings, talks, complaints (信访) and their
findings, violations and rectifications, sanctions, training, file updates, personal-data
erasures and reads, and — when the detector emits them — warnings, cards and rejected
commands.

Guarantees:

- The document MUST NOT contain a personal value: only field names, the commitments signed in
  the log and whether the value was erased. Values are resolved (and checked against the
  commitment) by the reader, never stored here.
- Pure fold: the same events in the same order give the same bytes (`encode_doc`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from projections.base import Doc, LoggedEvent
from projections.support import event_ref, official_of

__all__ = ["IntegrityFile", "incompetent_share"]

_ROUTED_PREFIXES = (
    "personnel.",
    "declaration.",
    "complaint.",
    "violation.",
    "warning.",
    "card.",
    "command.",
)


def incompetent_share(votes: dict[str, int]) -> tuple[str, bool]:
    """The incompetent-vote share as a fraction string ("4/12") and whether it is ≥ 1/3."""
    total = sum(int(v) for v in votes.values())
    incompetent = int(votes.get("incompetent", 0))
    return f"{incompetent}/{total}", total > 0 and 3 * incompetent >= total


def _new(official: str) -> Doc:
    return {
        "official": official,
        "unit": None,
        "post": None,
        "rank": None,
        "reportable": False,
        "appointments": [],
        "assessments": [],
        "declarations": [],
        "verifications": [],
        "observed_matters": [],
        "talks": [],
        "complaints": [],
        "violations": [],
        "sanctions": [],
        "training": [],
        "file_updates": [],
        "erasures": [],
        "pii": [],
        "pii_reads": [],
        "warnings": [],
        "cards": [],
        "commands_rejected": [],
        "last_position": 0,
    }


def _by_stream(entries: list[dict[str, Any]], stream: str, **initial: Any) -> dict[str, Any]:
    for entry in entries:
        if entry["stream"] == stream:
            return entry
    entry = {"stream": stream, **initial}
    entries.append(entry)
    return entry


class IntegrityFile:
    """廉政档案: one document per official (key = official id)."""

    name: ClassVar[str] = "integrity_file"
    version: ClassVar[int] = 1
    types: ClassVar[tuple[str, ...]] = (*_ROUTED_PREFIXES, "pii.erased", "audit.pii_read")
    columns: ClassVar[tuple[tuple[str, str], ...]] = (
        ("unit", "text"),
        ("rank", "text"),
        ("post", "text"),
        ("reportable", "int"),
        ("violations", "int"),
        ("sanctions", "int"),
        ("red_cards", "int"),
    )

    def route(self, event: LoggedEvent) -> Iterable[str]:
        if event.type in ("pii.erased", "audit.pii_read"):
            official = event.data.get("official")
            return (official,) if isinstance(official, str) else ()
        if event.type.startswith(_ROUTED_PREFIXES):
            official = official_of(event) or _attributed_official(event)
            return (official,) if official else ()
        return ()

    def fold(self, doc: Doc | None, event: LoggedEvent, key: str) -> Doc:
        doc = doc if doc is not None else _new(key)
        doc["last_position"] = event.position
        if event.pii:
            _pii_fields(doc, event)
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(doc, event)
        elif event.type.startswith(("warning.", "card.")):
            _warning_or_card(doc, event)
        elif event.type.startswith("command."):
            _command(doc, event)
        return doc

    def index(self, key: str, doc: Doc) -> dict[str, str | int | None]:
        return {
            "unit": doc["unit"],
            "rank": doc["rank"],
            "post": doc["post"],
            "reportable": int(doc["reportable"]),
            "violations": len(doc["violations"]),
            "sanctions": len(doc["sanctions"]),
            "red_cards": sum(1 for c in doc["cards"] if c.get("color") == "red"),
        }


# -- one handler per event type -------------------------------------------------------------


def _pii_fields(doc: Doc, event: LoggedEvent) -> None:
    for field in sorted(event.pii):
        doc["pii"].append(
            {
                "event_id": event.event_id,
                "type": event.type,
                "field": field,
                "commitment": event.pii[field],
                "erased": False,
            }
        )


def _appointed(doc: Doc, event: LoggedEvent) -> None:
    d = event.data
    doc["appointments"].append(
        {
            **event_ref(event),
            "post": d.get("post"),
            "unit": d.get("unit"),
            "rank": d.get("rank"),
            "reportable": bool(d.get("reportable", False)),
            "recommended_by": d.get("recommended_by"),
            "examined_by": d.get("examined_by"),
            "inspected_by": d.get("inspected_by"),
            "decided_by": d.get("decided_by"),
            "effective_on": d.get("effective_on"),
        }
    )
    doc["unit"] = d.get("unit", doc["unit"])
    doc["post"] = d.get("post", doc["post"])
    doc["rank"] = d.get("rank", doc["rank"])
    doc["reportable"] = bool(d.get("reportable", False))


def _assessed(doc: Doc, event: LoggedEvent) -> None:
    votes = {k: int(v) for k, v in sorted(event.data.get("votes", {}).items())}
    share, third = incompetent_share(votes)
    doc["assessments"].append(
        {
            **event_ref(event),
            "year": event.data.get("year"),
            "votes": votes,
            "result": event.data.get("result"),
            "incompetent_share": share,
            "incompetent_share_at_least_one_third": third,
        }
    )


def _simple(section: str, *fields: str) -> Any:
    def handler(doc: Doc, event: LoggedEvent) -> None:
        doc[section].append({**event_ref(event), **{f: event.data.get(f) for f in fields}})

    return handler


def _reported(doc: Doc, event: LoggedEvent) -> None:
    d = event.data
    items = d.get("items", [])
    doc["declarations"].append(
        {
            **event_ref(event),
            "declaration": "personal_matters"
            if event.type == "declaration.personal_matters_reported"
            else "income",
            "kind": d.get("kind") or d.get("half"),
            "year": d.get("year"),
            "filed_on": d.get("filed_on"),
            "event_on": d.get("event_on"),
            "items": len(items),
            "item_codes": sorted({i.get("item_code") for i in items if i.get("item_code")}),
            "pii_fields": sorted({f for i in items for f in i.get("pii_fields", [])}),
        }
    )


def _verified(doc: Doc, event: LoggedEvent) -> None:
    d = event.data
    doc["verifications"].append(
        {
            **event_ref(event),
            "year": d.get("year"),
            "report_ref": d.get("report_ref"),
            "method": d.get("method"),
            "findings": [
                {"item_code": f.get("item_code"), "finding": f.get("finding")}
                for f in d.get("findings", [])
            ],
        }
    )


def _complaint(doc: Doc, event: LoggedEvent) -> None:
    entry = _by_stream(doc["complaints"], event.stream, finding=None, handling=None)
    entry.update({k: v for k, v in event.data.items() if k != "final_seq"})
    entry.setdefault("first_position", event.position)


def _violation(doc: Doc, event: LoggedEvent) -> None:
    entry = _by_stream(
        doc["violations"], event.stream, rectify_by=None, completed_on=None, unit=None
    )
    d = event.data
    if event.type == "violation.recorded":
        entry.update(
            {
                "unit": event.subject.get("unit"),
                "grade": d.get("grade"),
                "error_code": d.get("error_code"),
                "source": d.get("source"),
                "found_on": d.get("found_on"),
            }
        )
    elif event.type == "violation.rectification_ordered":
        entry["rectify_by"] = d.get("rectify_by")
    elif event.type == "violation.rectification_completed":
        entry["completed_on"] = d.get("completed_on")


def _erased(doc: Doc, event: LoggedEvent) -> None:
    d = event.data
    targets = {(f.get("event_id"), f.get("field")) for f in d.get("fields", [])}
    for entry in doc["pii"]:
        if (entry["event_id"], entry["field"]) in targets:
            entry["erased"] = True
    doc["erasures"].append(
        {
            **event_ref(event),
            "fields": len(targets),
            "reason": d.get("reason"),
            "approved_by": d.get("approved_by"),
            "legal_basis": d.get("legal_basis"),
            "occurred_at": event.occurred_at,
        }
    )


def _pii_read(doc: Doc, event: LoggedEvent) -> None:
    d = event.data
    doc["pii_reads"].append(
        {
            **event_ref(event),
            "reader": d.get("reader"),
            "role": d.get("role"),
            "command": d.get("command"),
            "fields": d.get("fields"),
            "occurred_at": event.occurred_at,
        }
    )


def _attributed_official(event: LoggedEvent) -> str | None:
    """The official a detector warning is attributed to (`data.attributed.official`)."""
    attributed = event.data.get("attributed") if event.type.startswith("warning.") else None
    official = attributed.get("official") if isinstance(attributed, dict) else None
    return official if isinstance(official, str) else None


def _command(doc: Doc, event: LoggedEvent) -> None:
    """A step the blocking guard refused (事中阻断), as `command.rejected` records it."""
    d = event.data
    rule_ids = list(d.get("rule_ids") or ([d["rule_id"]] if d.get("rule_id") else []))
    refused: dict[str, Any] = d["refused"] if isinstance(d.get("refused"), dict) else {}
    doc["commands_rejected"].append(
        {
            **event_ref(event),
            "type": event.type,
            "rule_id": rule_ids[0] if rule_ids else None,
            "rule_ids": rule_ids,
            "matter": d.get("matter"),
            "command": d.get("command") or refused.get("type"),
            "step": refused.get("step"),
            "reason_code": d.get("reason_code"),
            "occurred_at": event.occurred_at,
        }
    )


def _warning_or_card(doc: Doc, event: LoggedEvent) -> None:
    section = "cards" if event.type.startswith("card.") else "warnings"
    entry = _by_stream(doc[section], event.stream, events=0, first_position=event.position)
    d = event.data
    entry["events"] += 1
    entry["state"] = event.type.split(".", 1)[1]
    entry["updated_at"] = event.occurred_at
    fields = ("rule_id", "rule_version", "level", "color", "grade", "veto", "veto_flag")
    for field in (*fields, "assessment_year", "warning_ref", "rectify_by", "reason"):
        if field in d:
            entry[field] = d[field]


_HANDLERS: dict[str, Any] = {
    "personnel.appointed": _appointed,
    "personnel.assessment_tallied": _assessed,
    "personnel.talk_held": _simple("talks", "kind", "held_by", "held_on", "reason_code"),
    "personnel.sanctioned": _simple(
        "sanctions", "sanction", "decided_by", "basis_ref", "effective_on", "until"
    ),
    "personnel.training_completed": _simple("training", "course", "hours", "completed_on"),
    "personnel.integrity_file_updated": _simple(
        "file_updates", "sections", "updated_by", "updated_on"
    ),
    "declaration.personal_matters_reported": _reported,
    "declaration.income_declared": _reported,
    "declaration.verification_completed": _verified,
    "declaration.matter_observed": _simple(
        "observed_matters", "item_code", "observed_on", "source"
    ),
    "complaint.received": _complaint,
    "complaint.concluded": _complaint,
    "violation.recorded": _violation,
    "violation.rectification_ordered": _violation,
    "violation.rectification_completed": _violation,
    "pii.erased": _erased,
    "audit.pii_read": _pii_read,
}
