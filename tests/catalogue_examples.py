"""One realistic, schema-valid `data` object per event type of docs/event-catalogue.md.

Other tests reuse these: `EXAMPLES[type]` is the `data`, `envelope_for(type, data)` wraps it in
a full envelope (dict, not yet canonical bytes) on a plausible stream, with the producer
system, actor and subject the catalogue gives that type, and a `pii` map holding a commitment
for every name a declaration item lists in `pii_fields`. Every example MUST validate against
`ledger/schemas/<type>.json` (tests/ledger/test_catalogue.py checks it); the values follow
DOMAIN.md (Guangdong benchmark tiers, hearing thresholds, declaration item codes).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import uuid
from typing import Any

from tests.alerts.catalogue_additions import WARNING_EXAMPLES, WARNING_STREAMS

__all__ = [
    "EXAMPLES",
    "OCCURRED_AT",
    "PRODUCERS",
    "envelope_for",
    "pii_commitment",
    "producer_for",
    "stream_for",
]

OCCURRED_AT = "2026-11-02T01:30:00Z"

# identifiers of the example world
OFFICIAL = "4403-00871"  # the official the personnel / declaration / complaint events are about
HANDLER = "4403-00112"
REVIEWER = "4403-00214"
APPROVER = "4403-00305"
BUREAU_HEAD = "4403-00001"
UNIT = "4403-01"
TAXPAYER = "91440300MA5F3K7P2X"
MATTER_FP = "matter/4403-fp/2026-000123"
MATTER_JC = "matter/4403-jc/2026-000042"
REPORT_EVENT = "0193a1b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b"
DECISION_EVENT = "0193a0ff-1111-7abc-8def-0123456789ab"
WARNING_EVENT = "0193a2c3-2222-7abc-9def-0123456789ab"

EXAMPLES: dict[str, dict[str, Any]] = {
    # -- matter lifecycle (权力事项) --------------------------------------------------------
    "matter.accepted": {
        "matter_type": "invoice_quota_change",
        "flow": {
            "id": "invoice_quota_change",
            "version": 1,
            "hash": "3f0c6a4e9b1d2c7f8a5e6d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a",
        },
        "time_limit": {"days": 5, "calendar": "working"},
        "due_at": "2026-11-09T15:59:59Z",
        "channel": "online",
        "major": False,
        "request": {
            "quota_kind": "quantity",
            "quantity_before": 25,
            "quantity_requested": 100,
            "max_amount_before": "100000.00",
            "max_amount_requested": "100000.00",
        },
    },
    "matter.step_completed": {
        "step": "approve",
        "outcome": "approved",
        "level": 2,
        "due_at": "2026-11-09T15:59:59Z",
        "reference": "SZSW-ZZ-2026-0415",
    },
    "matter.extension_approved": {
        "days": 10,
        "calendar": "working",
        "reason": "site check of the premises needs a second visit",
        "new_due_at": "2026-11-23T15:59:59Z",
    },
    "matter.legal_review_completed": {
        "opinion": "approved",
        "reviewed_decision": "penalty",
        "note_code": "LR-OK",
    },
    "matter.penalty_notice_served": {
        "proposed_fine": "60000.00",
        "hearing_rights": True,
        "party_kind": "entity",
        "served_on": "2026-10-20",
    },
    "matter.penalty_decided": {
        "fine": "60000.00",
        "unpaid_tax": "120000.00",
        "ratio": "0.5",
        "violation_code": "tax_evasion",
        "circumstances": "first_corrected",
        "discretion_reason": "first offence, tax and late fees paid before the decision",
        "party_kind": "entity",
        "benchmark": {"region": "4400", "version": 2014},
        "major": True,
    },
    "matter.amended": {
        "field": "fine",
        "before": "60000.00",
        "after": "45000.00",
        "reason": "administrative reconsideration reduced the fine",
        "approved_by": BUREAU_HEAD,
    },
    "matter.withdrawn": {
        "reason": "the taxpayer withdrew the application",
        "approved_by": APPROVER,
        "final_seq": 4,
    },
    "matter.concluded": {
        "outcome": "granted",
        "final_seq": 6,
        "quota": {"quantity": 100, "max_amount": "100000.00"},
    },
    # -- taxpayer figures ------------------------------------------------------------------
    "taxpayer.invoice_usage_reported": {
        "period": "2026-10",
        "industry": "5191",
        "invoices": 96,
        "amount": "8731250.00",
        "voided": 7,
        "reversed_amount": "45200.00",
        "at_ceiling": 81,
        "max_invoice_amount": "100000.00",
        "quota_quantity": 100,
    },
    "taxpayer.tax_burden_computed": {
        "period": "2026-Q3",
        "industry": "5191",
        "revenue": "25410000.00",
        "tax_paid": "101640.00",
        "burden_ratio": "0.004",
        "industry_warning_ratio": "0.012",
    },
    "taxpayer.risk_response_recorded": {
        "period": "2026-10",
        "trigger": "invoice_surge",
        "response": "desk_review",
        "note_code": "RR-2026-118",
    },
    # -- collective decisions --------------------------------------------------------------
    "decision.collective_recorded": {
        "meeting": "bureau_office",
        "topic": "major_enforcement",
        "participants": [BUREAU_HEAD, "4403-00002", "4403-00003", "4403-00004", "4403-00005"],
        "leadership_size": 7,
        "matters": [MATTER_JC],
        "outcome": "approved",
        "held_on": "2026-10-28",
    },
    # -- personnel -------------------------------------------------------------------------
    "personnel.appointed": {
        "post": "稽查局审理科科长",
        "unit": UNIT,
        "rank": "county_deputy",
        "reportable": True,
        "recommended_by": "4403-00003",
        "examined_by": "4403-rs-exam",
        "inspected_by": "4403-00041",
        "decided_by": "4403-party-committee",
        "effective_on": "2026-03-01",
    },
    "personnel.assessment_tallied": {
        "year": 2025,
        "votes": {"excellent": 9, "competent": 21, "basically_competent": 3, "incompetent": 1},
        "result": "competent",
    },
    "personnel.talk_held": {
        "kind": "preventive",
        "held_by": "4403-00041",
        "held_on": "2026-03-05",
        "reason_code": "new_post",
    },
    "personnel.sanctioned": {
        "sanction": "written_check",
        "decided_by": BUREAU_HEAD,
        "basis_ref": WARNING_EVENT,
        "effective_on": "2026-06-10",
    },
    "personnel.training_completed": {
        "course": "税务行政处罚裁量基准专题培训",
        "hours": 16,
        "completed_on": "2026-05-22",
    },
    "personnel.integrity_file_updated": {
        "sections": ["basic_info", "personal_matters", "integrity_talks"],
        "updated_by": "4403-00041",
        "updated_on": "2026-03-20",
    },
    # -- declarations ----------------------------------------------------------------------
    "declaration.personal_matters_reported": {
        "year": 2025,
        "kind": "annual",
        "filed_on": "2026-01-26",
        "items": [
            {
                "item_code": "3.1",
                "subject_role": "self",
                "no_change": False,
                "count": 1,
                "pii_fields": ["i3_1_status", "i3_1_spouse_name"],
            },
            {"item_code": "3.2", "subject_role": "self", "no_change": True, "count": 0},
            {
                "item_code": "4.3",
                "subject_role": "self",
                "no_change": False,
                "count": 2,
                "pii_fields": ["i4_3_1_address", "i4_3_1_area_m2", "i4_3_2_address"],
            },
            {"item_code": "4.5", "subject_role": "spouse", "no_change": True, "count": 0},
        ],
    },
    "declaration.income_declared": {
        "year": 2026,
        "half": "H1",
        "filed_on": "2026-07-15",
        "items": [
            {"item_code": "4.1", "pii_fields": ["i4_1_amount_cny"]},
            {"item_code": "4.2", "pii_fields": ["i4_2_kind", "i4_2_amount_cny"]},
        ],
    },
    "declaration.matter_observed": {
        "item_code": "3.1",
        "observed_on": "2026-09-14",
        "event_on": "2026-08-30",
        "source": "marriage_registry",
    },
    "declaration.verification_completed": {
        "year": 2025,
        "report_ref": REPORT_EVENT,
        "method": "random_check",
        "findings": [
            {"item_code": "3.1", "finding": "consistent"},
            {"item_code": "4.3", "finding": "omission"},
        ],
    },
    # -- complaints ------------------------------------------------------------------------
    "complaint.received": {
        "channel": "online",
        "category": "enforcement",
        "received_on": "2026-07-03",
    },
    "complaint.concluded": {
        "finding": "partly_substantiated",
        "handling": "talk",
        "concluded_on": "2026-08-21",
    },
    # -- violations ------------------------------------------------------------------------
    "violation.recorded": {
        "grade": 2,
        "error_code": "E2-05-overdue",
        "source": "warning",
        "matter": MATTER_FP,
        "warning_ref": WARNING_EVENT,
        "found_on": "2026-11-10",
    },
    "violation.rectification_ordered": {"rectify_by": "2026-12-10", "ordered_by": "4403-00041"},
    "violation.rectification_completed": {
        "completed_on": "2026-12-03",
        "evidence_ref": "DC-2026-0311",
    },
    # -- the ledger's own ------------------------------------------------------------------
    "pii.erased": {
        "official": OFFICIAL,
        "fields": [
            {"event_id": REPORT_EVENT, "field": "i3_1_spouse_name"},
            {"event_id": REPORT_EVENT, "field": "i4_3_1_address"},
        ],
        "reason": "retention period ended after the official left the service",
        "approved_by": BUREAU_HEAD,
        "legal_basis": "个人信息保护法 第四十七条",
    },
    "audit.pii_read": {
        "reader": "4403-00041",
        "role": "integrity_file_keeper",
        "official": OFFICIAL,
        "command": "pii show",
        "fields": 3,
    },
    "projection.root_published": {
        "projection": "integrity_file",
        "version": 1,
        "log_size": 1048576,
        "root": "9b2f0c1d4e5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e",
        "rows": 1873,
    },
}
EXAMPLES.update(WARNING_EXAMPLES)  # the detector's types (tests/alerts/catalogue_additions.py)

# type family -> (producer system, actor role)
_FAMILY: dict[str, tuple[str, str]] = {
    "matter": ("4403-fapiao", "handler"),
    "taxpayer": ("4403-fapiao", "risk_officer"),
    "decision": ("4403-bangong", "secretary"),
    "personnel": ("4403-renshi", "personnel_officer"),
    "declaration": ("4403-ganbu", "cadre_supervisor"),
    "complaint": ("4403-jijian", "discipline_inspector"),
    "violation": ("4403-ducha", "inspector"),
    "pii": ("neikong-console", "integrity_file_keeper"),
    "audit": ("neikong-console", "integrity_file_keeper"),
    "projection": ("neikong-projector", "projector"),
    "warning": ("neikong-detector", "detector"),
    "card": ("neikong-detector", "detector"),
    "command": ("neikong-detector", "detector"),
}
# penalty-procedure types come from the inspection system (稽查), taxpayer figures from the
# invoice or the core tax system
_BY_TYPE: dict[str, str] = {
    "matter.legal_review_completed": "4403-jicha",
    "matter.penalty_notice_served": "4403-jicha",
    "matter.penalty_decided": "4403-jicha",
    "matter.amended": "4403-jicha",
    "taxpayer.invoice_usage_reported": "4403-fapiao",
    "taxpayer.tax_burden_computed": "4403-ctais",
    "taxpayer.risk_response_recorded": "4403-ctais",
}
_STREAM_CODE = {"4403-fapiao": "4403-fp", "4403-jicha": "4403-jc", "4403-ctais": "4403-zg"}

PRODUCERS: dict[str, str] = {
    t: _BY_TYPE.get(t) or _FAMILY[t.split(".", 1)[0]][0] for t in sorted(EXAMPLES)
}


def producer_for(event_type: str) -> str:
    """The producer system that signs `event_type` (catalogue table "Streams and producers")."""
    return PRODUCERS[event_type]


def stream_for(event_type: str) -> str:
    """A plausible stream for `event_type`, with the catalogue's prefix for its family."""
    family = event_type.split(".", 1)[0]
    system = producer_for(event_type)
    if family == "matter":
        return MATTER_JC if system == "4403-jicha" else MATTER_FP
    return {
        "taxpayer": f"taxpayer/{TAXPAYER}/{_STREAM_CODE.get(system, system)}",
        "decision": f"decision/{UNIT}/2026-0031",
        "personnel": f"official/{OFFICIAL}",
        "declaration": f"declaration/{OFFICIAL}",
        "complaint": "complaint/2026-000117",
        "violation": "violation/2026-000058",
        "pii": f"pii/{OFFICIAL}",
        "audit": "audit/4403-00041",
        "projection": "projection/integrity_file",
        **WARNING_STREAMS,
    }[family]


def _subject(event_type: str) -> dict[str, str] | None:
    family = event_type.split(".", 1)[0]
    if family in ("matter", "taxpayer"):
        return {"taxpayer": TAXPAYER}
    if family == "decision":
        return {"unit": UNIT}
    if family == "violation":
        return {"official": OFFICIAL, "unit": UNIT}
    if family in ("personnel", "declaration", "complaint", "pii", "audit"):
        return {"official": OFFICIAL}
    return None


def pii_commitment(name: str, value: Any = "example") -> str:
    """A stand-in commitment (b64 SHA-256) for a PII field: right shape, not a real salt."""
    digest = hashlib.sha256(f"{name}={value!r}".encode()).digest()
    return base64.b64encode(digest).decode("ascii")


def _pii_names(data: Any) -> list[str]:
    names: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "pii_fields" and isinstance(value, list):
                names.extend(v for v in value if isinstance(v, str))
            else:
                names.extend(_pii_names(value))
    elif isinstance(data, list):
        for value in data:
            names.extend(_pii_names(value))
    return names


def envelope_for(
    event_type: str, data: dict[str, Any] | None = None, **override: Any
) -> dict[str, Any]:
    """A full envelope (as a dict) carrying `data` (default: a copy of `EXAMPLES[event_type]`).

    The envelope is the first event of its stream (`stream_seq` 1, `prev` null); `override`
    replaces top-level envelope fields. `pii` holds a commitment for every `pii_fields` name.
    """
    family = event_type.split(".", 1)[0]
    system = producer_for(event_type)
    role = "approver" if event_type == "matter.amended" else _FAMILY[family][1]
    actor = {
        "official": HANDLER if family == "matter" else "4403-00041",
        "role": role,
        "unit": UNIT,
    }
    if family in ("pii", "audit", "projection"):
        actor = {"official": "4403-00041" if family != "projection" else "neikong", "role": role}
    body = copy.deepcopy(EXAMPLES[event_type]) if data is None else data
    envelope: dict[str, Any] = {
        "v": 1,
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"neikong-example:{event_type}")),
        "stream": stream_for(event_type),
        "stream_seq": 1,
        "prev": None,
        "producer": {"system": system, "seq": 1},
        "type": event_type,
        "occurred_at": OCCURRED_AT,
        "actor": actor,
        "data": body,
    }
    subject = _subject(event_type)
    if subject is not None:
        envelope["subject"] = subject
    names = _pii_names(body)
    if names:
        envelope["pii"] = {name: pii_commitment(name) for name in names}
    envelope.update(override)
    return envelope
