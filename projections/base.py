"""What a projection is: a deterministic fold of logged events into one document per key.

A projection MUST be a pure function of the log prefix it has seen: `fold` may read only the
document it is given and the event, never the wall clock, the database or another projection,
so that a rebuild from position 0 equals the incremental result byte for byte and a document
can be recomputed as it stood at any past log size (`--at SIZE`) from the events routed to its
key alone. Time-dependent judgements (overdue, late, missing) are made at query time against an
explicit `as_of`, from dates the document stores.

The events a projection sees were verified by the ledger at append (signature, key scope,
schema, chain); `neikong verify` proves the store still holds exactly those bytes. Projections
therefore parse the stored body without re-checking the signature.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, NamedTuple, Protocol

import orjson

from ledger.envelope import HEADER_LEN

__all__ = ["Doc", "LoggedEvent", "Projection", "decode_record", "encode_doc", "record_type"]

Doc = dict[str, Any]


class LoggedEvent(NamedTuple):
    """One appended event, as a projection sees it."""

    position: int  # global log position (notification id, 1-based; tree size N covers 1..N)
    event_id: str
    stream: str
    stream_seq: int
    type: str
    occurred_at: str
    system: str  # producer system
    actor: dict[str, str]
    subject: dict[str, str]
    data: dict[str, Any]
    pii: dict[str, str]  # field -> commitment (never a value)


def decode_record(position: int, record: bytes) -> LoggedEvent:
    """Parse a stored record (`NKE1 ‖ key_id ‖ signature ‖ body`) into a `LoggedEvent`."""
    body = orjson.loads(record[HEADER_LEN:])
    return LoggedEvent(
        position,
        body["event_id"],
        body["stream"],
        body["stream_seq"],
        body["type"],
        body["occurred_at"],
        body["producer"]["system"],
        body["actor"],
        body.get("subject") or {},
        body["data"],
        body.get("pii") or {},
    )


def record_type(record: bytes) -> str:
    """The `type` of a stored record, read from its bytes without parsing the JSON.

    The body is RFC 8785 canonical (keys sorted), so `"type":"…"` is its last-but-one member,
    followed only by `"v":1`; `"type":"` cannot occur inside a later string (quotes in strings
    are escaped), so the last occurrence is the member.
    """
    start = record.rfind(b'"type":"') + 8
    return record[start : record.index(b'"', start)].decode("ascii")


def encode_doc(doc: Doc) -> bytes:
    """The canonical stored form of a document: sorted keys, no whitespace, UTF-8.

    Documents hold only str, int, bool, None, lists and dicts (no floats), so this is the
    RFC 8785 form as well; state roots hash these bytes.
    """
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


class Projection(Protocol):
    """A read model: `route` picks the keys an event touches, `fold` updates one document.

    `columns` names the indexed query columns (name, "text" | "int") that `index` fills from a
    document, for filtered listing (unit, official, grade, status …). `types` (optional) lists
    the event types or `prefix.` families `route` can accept: the runner does not even parse a
    record whose type none of its projections lists. `route` MUST return nothing for any type
    outside `types`, so the hint never changes a result (the contract suite checks it).

    `stream_keyed` (optional, default False): the read model then keeps no refs row for an
    event the projection routes to the key equal to the event's own stream; `doc_at` and
    `refs` find those events by reading stream `key` and routing each again. It saves one
    refs row per event for projections keyed by stream (the case history).
    `own_stream_types` (optional): type names and prefixes that `route` MUST send to the
    event's own stream and nowhere else (a shard of a parallel rebuild then declines records
    of other shards' streams without parsing them; `skips_record(type, stream id hex)`).
    """

    name: ClassVar[str]
    version: ClassVar[int]
    columns: ClassVar[tuple[tuple[str, str], ...]]

    def route(self, event: LoggedEvent) -> Iterable[str]:
        """The keys whose documents this event changes (empty: not interesting)."""
        ...

    def fold(self, doc: Doc | None, event: LoggedEvent, key: str) -> Doc:
        """The document for `key` after `event`. MAY mutate and return `doc`; MUST be pure."""
        ...

    def index(self, key: str, doc: Doc) -> dict[str, str | int | None]:
        """Values for `columns`, derived from the document alone."""
        ...
