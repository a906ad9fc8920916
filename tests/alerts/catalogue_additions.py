"""Catalogue examples for the detector's event types, ready for tests/catalogue_examples.py.

The catalogue tests (tests/ledger/test_catalogue.py) need one example per type; these are
kept here, checked by tests/alerts/test_warning_schemas.py, so the catalogue's owner can merge
them: `EXAMPLES.update(WARNING_EXAMPLES)`, `PRODUCERS.update(WARNING_PRODUCERS)`, the streams
of `WARNING_STREAMS` in `stream_for`, and the families warning/card/command in the test's
expected family set.
"""

from __future__ import annotations

from typing import Any

__all__ = ["WARNING_EXAMPLES", "WARNING_PRODUCERS", "WARNING_STREAMS"]

_RAISED = "5b0c4a53-6a51-5d1e-9d7c-4c0b6f0e2a11"
_HASH = "9afb8b8073fa9a661c7ff0e4bc3773989cae6c41c57bcde68fcbb9b58ada9eac"
_TRIGGER = "0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"

WARNING_EXAMPLES: dict[str, dict[str, Any]] = {
    "warning.raised": {
        "rule_id": "R05-processing-deadline",
        "rule_version": 1,
        "ruleset_hash": _HASH,
        "level": "yellow",
        "grade": 2,
        "category": "tax_enforcement",
        "key": "matter/4403-xk/2026-000123",
        "attributed": {"official": "4403-00112", "role": "handler"},
        "triggers": [_TRIGGER],
        "late": False,
        "due_at": "2026-01-27T16:00:00Z",
        "action": "remind_handler",
    },
    "warning.escalated": {
        "rule_id": "R05-processing-deadline",
        "rule_version": 1,
        "ruleset_hash": _HASH,
        "level": "orange",
        "grade": 2,
        "category": "tax_enforcement",
        "key": "matter/4403-xk/2026-000123",
        "attributed": {"unit": "4403-01", "role": "unit_head"},
        "triggers": [_TRIGGER],
        "late": True,
        "due_at": "2026-02-02T16:00:00Z",
        "action": "supervise",
        "warning_ref": _RAISED,
        "from_level": "yellow",
    },
    "warning.acknowledged": {
        "warning_ref": _RAISED,
        "acknowledged_by": "4403-00305",
        "note_code": "seen_by_section",
    },
    "warning.rectification_ordered": {
        "warning_ref": _RAISED,
        "rectify_by": "2026-02-13",
        "ordered_by": "4403-00001",
    },
    "warning.rectified": {
        "warning_ref": _RAISED,
        "rectified_on": "2026-02-10",
        "evidence_ref": "EV-2026-0031",
    },
    "warning.closed": {"warning_ref": _RAISED, "reason": "rectified", "closed_by": "4403-00001"},
    "card.issued": {
        "rule_id": "R24-card-escalation",
        "rule_version": 1,
        "ruleset_hash": _HASH,
        "color": "yellow",
        "official": "4403-00112",
        "veto": False,
        "assessment_year": 2026,
        "warning_refs": [_RAISED, _TRIGGER, "7d1e2f3a-4b5c-5d6e-8f70-8192a3b4c5d6"],
        "card_refs": [],
        "trigger": _TRIGGER,
    },
    "command.rejected": {
        "rule_ids": ["R04-same-person-handles-and-approves"],
        "ruleset_hash": _HASH,
        "matter": "matter/4403-fp/2026-000123",
        "refused": {"type": "matter.step_completed", "step": "approve", "actor": "4403-00112"},
        "reason_code": "same_person_handles_and_approves",
    },
}

WARNING_PRODUCERS = dict.fromkeys(WARNING_EXAMPLES, "neikong-detector")

WARNING_STREAMS = {
    "warning": "warning/R05-processing-deadline/3f1e0c5b7a9d2e4f6a8b0c1d2e3f4a5b",
    "card": "card/4403-00112",
    "command": "command/matter/4403-fp/2026-000123",
}
