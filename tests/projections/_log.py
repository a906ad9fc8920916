"""Hand-built logs for projection tests: schema-valid events as `LoggedEvent`s, and folding.

Every event is built with `ledger.builder.build_body` and validated against the ledger's
schema catalogue, so a test cannot fold data the ledger would have refused.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from ledger.builder import build_body
from ledger.schema import SchemaCatalogue
from projections.base import Doc, LoggedEvent, Projection, encode_doc
from tests.ledger._support import deterministic_event_id

_CATALOGUE = SchemaCatalogue()

SYSTEMS = {
    "matter": "4403-fapiao",
    "decision": "4403-bangong",
    "official": "4403-renshi",
    "declaration": "4403-ganbu",
    "complaint": "4403-jijian",
    "violation": "4403-ducha",
    "pii": "neikong-console",
    "taxpayer": "4403-fapiao",
    "audit": "neikong-console",
    "warning": "neikong-detector",
    "card": "neikong-detector",
    "command": "neikong-detector",
}

ACTOR = {"official": "4403-00900", "role": "clerk", "unit": "4403-09"}


class Log:
    """A growing log: positions and per-stream sequences are assigned as events are added."""

    def __init__(self) -> None:
        self.events: list[LoggedEvent] = []
        self._seqs: dict[str, int] = {}
        self._producer: dict[str, int] = {}

    def example(self, type: str, **override: Any) -> LoggedEvent:
        """The catalogue example of `type` (tests/catalogue_examples.py): its stream, data,
        actor, subject and pii, with `override` replacing any of them."""
        from tests.catalogue_examples import envelope_for

        env = envelope_for(type)
        fields: dict[str, Any] = {
            "stream": env["stream"],
            "data": env["data"],
            "subject": env.get("subject"),
            "actor": env["actor"],
            "pii": env.get("pii"),
            "at": env["occurred_at"],
        }
        fields.update(override)
        return self.add(type, **fields)

    def add(
        self,
        type: str,
        stream: str,
        data: dict[str, Any],
        *,
        subject: dict[str, str] | None = None,
        actor: dict[str, str] | None = None,
        pii: dict[str, str] | None = None,
        at: str = "2026-03-02T02:00:00Z",
        validate: bool = True,
    ) -> LoggedEvent:
        system = SYSTEMS[stream.split("/", 1)[0]]
        seq = self._seqs.get(stream, 0) + 1
        pseq = self._producer.get(system, 0) + 1
        position = len(self.events) + 1
        body = build_body(
            event_id=deterministic_event_id("proj-test", position),
            stream=stream,
            stream_seq=seq,
            prev=None if seq == 1 else "A" * 43 + "=",
            system=system,
            producer_seq=pseq,
            type=type,
            occurred_at=at,
            actor=actor or ACTOR,
            data=data,
            subject=subject,
            pii=pii,
        )
        value = orjson.loads(body)
        if validate:
            _CATALOGUE.validate(value)
        self._seqs[stream] = seq
        self._producer[system] = pseq
        event = LoggedEvent(
            position,
            value["event_id"],
            stream,
            seq,
            type,
            at,
            system,
            value["actor"],
            value.get("subject") or {},
            value["data"],
            value.get("pii") or {},
        )
        self.events.append(event)
        return event


def fold_all(projection: Projection, events: list[LoggedEvent]) -> dict[str, Doc]:
    """Fold `events` in order; checks the fold is deterministic (a second run from scratch
    gives the same bytes) and that `index` gives a value for every declared column."""
    docs = _fold(projection, events)
    again = _fold(projection, copy.deepcopy(events))
    assert {k: encode_doc(v) for k, v in docs.items()} == {
        k: encode_doc(v) for k, v in again.items()
    }
    names = {name for name, _ in projection.columns}
    for key, doc in docs.items():
        assert set(projection.index(key, doc)) == names
    return docs


def _fold(projection: Projection, events: list[LoggedEvent]) -> dict[str, Doc]:
    docs: dict[str, Doc] = {}
    for event in events:
        for key in projection.route(event):
            docs[key] = projection.fold(docs.get(key), event, key)
    return docs
