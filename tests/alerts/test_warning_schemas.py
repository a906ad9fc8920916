"""The detector's event schemas (ledger/schemas/warning.*, card.issued, command.rejected)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ledger.errors import MalformedInput
from ledger.reasons import ReasonCode
from ledger.schema import SchemaCatalogue
from tests.alerts.catalogue_additions import WARNING_EXAMPLES, WARNING_STREAMS

CATALOGUE = SchemaCatalogue()


def envelope(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "v": 1,
        "event_id": "0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2c",
        "stream": WARNING_STREAMS[event_type.split(".")[0]],
        "stream_seq": 1,
        "prev": None,
        "producer": {"system": "neikong-detector", "seq": 1},
        "type": event_type,
        "occurred_at": "2026-01-27T16:00:00Z",
        "actor": {"official": "neikong-detector", "role": "detector"},
        "data": data,
    }


@pytest.mark.parametrize("event_type", sorted(WARNING_EXAMPLES))
def test_example_validates(event_type: str) -> None:
    CATALOGUE.validate(envelope(event_type, WARNING_EXAMPLES[event_type]))


BAD: list[tuple[str, str, Any]] = [
    ("warning.raised", "level", "purple"),
    ("warning.raised", "grade", 5),
    ("warning.raised", "rule_version", 0),
    ("warning.raised", "ruleset_hash", "abc"),
    ("warning.raised", "triggers", []),
    ("warning.raised", "late", "no"),
    ("warning.raised", "attributed", {"official": "4403-00112", "role": "handler", "name": "x"}),
    ("warning.raised", "attributed", {"unit": "4403-01", "role": "handler"}),
    ("warning.raised", "spouse_name", "personal data is never in a warning"),
    ("warning.escalated", "warning_ref", "not-a-uuid"),
    ("warning.rectification_ordered", "rectify_by", "2026-13-01"),
    ("warning.closed", "reason", "bored"),
    ("card.issued", "color", "green"),
    ("card.issued", "assessment_year", "2026"),
    ("command.rejected", "rule_ids", []),
    ("command.rejected", "refused", {"step": "approve"}),
]


@pytest.mark.parametrize(("event_type", "field", "value"), BAD)
def test_malformed_data_is_schema_invalid(event_type: str, field: str, value: Any) -> None:
    data = copy.deepcopy(WARNING_EXAMPLES[event_type])
    data[field] = value
    with pytest.raises(MalformedInput) as caught:
        CATALOGUE.validate(envelope(event_type, data))
    assert caught.value.reason is ReasonCode.SCHEMA_INVALID


@pytest.mark.parametrize("event_type", sorted(WARNING_EXAMPLES))
def test_every_required_field_is_required(event_type: str) -> None:
    schema = CATALOGUE.type_schemas[event_type]
    for name in schema["required"]:
        data = copy.deepcopy(WARNING_EXAMPLES[event_type])
        del data[name]
        with pytest.raises(MalformedInput):
            CATALOGUE.validate(envelope(event_type, data))
