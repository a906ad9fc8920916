"""Warnings and cards as ledger events: their streams, derived event ids and data.

Guarantees:

- An emitted event's `event_id` MUST be derived (UUIDv5) from the rule id and version, the key,
  the level or colour, the event type and the id of the triggering event (for a timer: the
  start event and level step), never random; so replaying the same log emits the same ids and
  the ledger's idempotency turns a re-emission after a crash into a no-op.
- Its `occurred_at` is the triggering event's time, or a timer's due time; never the wall clock.
- Its data holds ids only (rule, key, official or unit ids, event ids), never personal data.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LEVELS",
    "WARNING_NAMESPACE",
    "Emitted",
    "card_stream",
    "derive_event_id",
    "level_index",
    "warning_stream",
]

LEVELS = ("blue", "yellow", "orange", "red")
WARNING_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "neikong/warning/v1")


def level_index(level: str) -> int:
    return LEVELS.index(level)


_NAMESPACE_BYTES = WARNING_NAMESPACE.bytes


def derive_event_id(*parts: object) -> str:
    """`str(uuid.uuid5(WARNING_NAMESPACE, "\\n".join(map(str, parts))))`, without UUID objects."""
    name = "\n".join(map(str, parts)).encode()
    # UUIDv5 is defined on SHA-1 (RFC 4122 §4.3): a name-based id, not a security hash
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest())
    digest[6] = digest[6] & 0x0F | 0x50  # version 5
    digest[8] = digest[8] & 0x3F | 0x80  # RFC 4122 variant
    x = digest[:16].hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def warning_stream(rule_id: str, key: str) -> str:
    """`warning/<rule_id>/<first 32 hex of SHA-256(key)>`: the key itself stays out of names."""
    return f"warning/{rule_id}/{hashlib.sha256(key.encode()).hexdigest()[:32]}"


def card_stream(official: str) -> str:
    return f"card/{official}"


@dataclass(frozen=True)
class Emitted:
    """One event the detector appends (signed with the detector key)."""

    type: str  # warning.raised | warning.escalated | card.issued
    stream: str
    event_id: str
    occurred_at: str
    data: dict[str, Any]
    subject: dict[str, str] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "stream": self.stream,
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "data": self.data,
        }
        if self.subject:
            out["subject"] = self.subject
        return out
