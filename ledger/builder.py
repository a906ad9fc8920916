"""Building envelope bodies: what every producer (and the ledger's own admin) signs."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ledger.canonical import canonical_bytes

__all__ = ["build_body", "new_event_id", "utc_timestamp"]


def new_event_id(now_ms: int | None = None, rand: int | None = None) -> str:
    """A UUIDv7 (RFC 9562) in canonical lowercase form: the idempotency key.

    Time-ordered ids keep the ledger's event-id index append-mostly (a random v4 id would
    touch a random index page per event). `now_ms` and `rand` (74 random bits) make it
    reproducible for simulations; by default the clock and `secrets` are used.
    """
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    bits = secrets.randbits(74) if rand is None else rand & ((1 << 74) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (bits >> 62) << 64 | 0b10 << 62
    value |= bits & ((1 << 62) - 1)
    h = f"{value:032x}"  # what str(uuid.UUID(int=value)) gives, without its validation
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def utc_timestamp(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_body(
    *,
    event_id: str,
    stream: str,
    stream_seq: int,
    prev: str | None,
    system: str,
    producer_seq: int,
    type: str,
    occurred_at: str,
    actor: Mapping[str, str],
    data: Mapping[str, Any],
    subject: Mapping[str, str] | None = None,
    pii: Mapping[str, str] | None = None,
) -> bytes:
    """RFC 8785 canonical bytes of one envelope (see DESIGN.md for the fields)."""
    body: dict[str, Any] = {
        "v": 1,
        "event_id": event_id,
        "stream": stream,
        "stream_seq": stream_seq,
        "prev": prev,
        "producer": {"system": system, "seq": producer_seq},
        "type": type,
        "occurred_at": occurred_at,
        "actor": dict(actor),
        "data": dict(data),
    }
    if subject:
        body["subject"] = dict(subject)
    if pii:
        body["pii"] = dict(pii)
    return canonical_bytes(body)
