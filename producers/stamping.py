"""Envelope bodies in two steps: everything that can fail first, the stamp afterwards.

`BodyTemplate.of(...)` canonicalises what the calling system supplied (type, stream, actor,
subject, data, pii, occurred_at) and the event id; `stamp(stream_seq, prev, producer_seq)`
then only joins bytes. This lets the producer check an event completely BEFORE it reserves the
event's sequence numbers, and sign it AFTER, outside the outbox lock.

Guarantees:
- `stamp` returns exactly the bytes `ledger.builder.build_body` returns for the same fields
  (RFC 8785 serialises an object member by member, each value on its own, keys in order).
- `of` raises `MalformedInput` (or `TypeError`) in every case where `build_body` would raise,
  and `stamp` MUST NOT raise for sequence numbers and digests the outbox hands out.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ledger.canonical import canonical_bytes

__all__ = ["BodyTemplate"]

# Top-level keys of an envelope body, in RFC 8785 order (all ASCII: plain byte order):
# actor data event_id occurred_at pii prev producer stream stream_seq subject type v


@functools.lru_cache(maxsize=256)
def _system_json(system: str) -> bytes:
    return canonical_bytes(system)


def _sorted_dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class BodyTemplate:
    """A body with its three stamped values (prev, producer seq, stream seq) left open."""

    event_id: str
    head: bytes  # up to and including '"prev":'
    middle: bytes  # between the producer seq and the stream seq
    tail: bytes  # after the stream seq

    @classmethod
    def of(
        cls,
        *,
        event_id: str,
        stream: str,
        system: str,
        type: str,
        occurred_at: str,
        actor: Mapping[str, str],
        data: Mapping[str, Any],
        subject: Mapping[str, str] | None = None,
        pii: Mapping[str, str] | None = None,
    ) -> BodyTemplate:
        """Canonicalise the supplied fields; raise whatever `build_body` would raise."""
        actor_d, data_d = dict(actor), dict(data)
        subject_d = dict(subject) if subject else None
        pii_d = dict(pii) if pii else None
        # One check of everything the caller supplied: the same leaves at the same depths as
        # in the body (members of a list here, of the body object there).
        checked = canonical_bytes([actor_d, data_d, subject_d, pii_d, type, occurred_at, stream])
        if checked.isascii() or max(checked) < 0xF0:  # orjson's form is RFC 8785 here
            dumps: Callable[[Any], bytes] = _sorted_dumps
        else:  # text beyond the BMP: key order by UTF-16 code units, rfc8785 decides
            dumps = canonical_bytes
        actor_b, data_b = dumps(actor_d), dumps(data_d)
        subject_b = dumps(subject_d) if subject_d else None
        pii_b = dumps(pii_d) if pii_d else None
        type_b, occurred_b, stream_b = dumps(type), dumps(occurred_at), dumps(stream)
        system_b = _system_json(system)
        head = b"".join(
            (
                b'{"actor":',
                actor_b,
                b',"data":',
                data_b,
                b',"event_id":"',
                event_id.encode("ascii"),
                b'","occurred_at":',
                occurred_b,
                b',"pii":' + pii_b if pii_b is not None else b"",
                b',"prev":',
            )
        )
        middle = b',"system":' + system_b + b'},"stream":' + stream_b + b',"stream_seq":'
        tail = b"".join(
            (
                b',"subject":' + subject_b if subject_b is not None else b"",
                b',"type":',
                type_b,
                b',"v":1}',
            )
        )
        return cls(event_id, head, middle, tail)

    def stamp(self, stream_seq: int, prev: bytes, producer_seq: int) -> bytes:
        """The canonical body; `prev` is the previous event's digest (b"" for the first)."""
        prev_b = b'"' + base64.b64encode(prev) + b'"' if stream_seq > 1 else b"null"
        return b"".join(
            (
                self.head,
                prev_b,
                b',"producer":{"seq":',
                str(producer_seq).encode("ascii"),
                self.middle,
                str(stream_seq).encode("ascii"),
                self.tail,
            )
        )
