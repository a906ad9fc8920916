"""A projection's `types` hint lets the runner skip parsing records; it MUST NOT change results.

For every catalogue event type (and the detector's), a projection whose `types` does not list
the type routes the event nowhere; and the type read from a record's bytes is its real type.
"""

from __future__ import annotations

import pytest

from ledger.builder import build_body
from ledger.envelope import RECORD_MAGIC
from projections.base import LoggedEvent, decode_record, record_type
from projections.registry import all_projections
from tests.catalogue_examples import EXAMPLES, envelope_for


def _logged(event_type: str) -> LoggedEvent:
    env = envelope_for(event_type, EXAMPLES[event_type])
    return LoggedEvent(
        1,
        env["event_id"],
        env["stream"],
        env["stream_seq"],
        env["type"],
        env["occurred_at"],
        env["producer"]["system"],
        env["actor"],
        env.get("subject") or {},
        env["data"],
        env.get("pii") or {},
    )


@pytest.mark.parametrize("projection", all_projections(), ids=lambda p: p.name)
def test_types_outside_the_hint_are_routed_nowhere(projection: object) -> None:
    types = getattr(projection, "types", None)
    assert types, "every registered projection declares the types it reads"
    routed = set()
    for event_type in sorted(EXAMPLES):
        keys = list(projection.route(_logged(event_type)))  # type: ignore[attr-defined]
        if keys:
            routed.add(event_type)
            assert event_type.startswith(tuple(types)), (event_type, keys)
    assert routed, "the projection routes at least one catalogue example"


@pytest.mark.parametrize("event_type", sorted(EXAMPLES))
def test_record_type_reads_the_top_level_type(event_type: str) -> None:
    env = envelope_for(event_type, EXAMPLES[event_type])
    fields = {k: v for k, v in env.items() if k not in ("v", "producer", "prev")}
    fields["data"] = {**fields["data"], "note": 'a "type":"decoy" inside a string'}
    body = build_body(
        prev=env["prev"],
        system=env["producer"]["system"],
        producer_seq=env["producer"]["seq"],
        **fields,
    )
    record = RECORD_MAGIC + bytes(96) + body
    assert record_type(record) == event_type == decode_record(1, record).type
