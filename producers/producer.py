"""The producer SDK: one call per step of a matter, signed at the source.

`Producer.emit` stamps `event_id`, `stream_seq`, `prev` and the producer sequence, signs the
canonical body with the system's key and publishes the record through a `Transport`.
The chain state (per-stream seq and digest, producer seq) makes drops and reorders provable:
the ledger refuses gaps, forks and reused sequence numbers.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.builder import build_body, new_event_id
from ledger.envelope import b64
from ledger.keys import Signer
from ledger.transport import Transport

__all__ = ["EmittedEvent", "Producer"]


@dataclass(frozen=True)
class EmittedEvent:
    event_id: str
    stream: str
    stream_seq: int
    producer_seq: int
    record: bytes


class Producer:
    """Signs and publishes events for one producer system (one key)."""

    def __init__(
        self,
        system: str,
        signer: Signer,
        transport: Transport,
        *,
        rng: random.Random | None = None,
        producer_seq: int = 0,
    ) -> None:
        self.system = system
        self.signer = signer
        self.transport = transport
        self._rng = rng
        self._producer_seq = producer_seq
        self._streams: dict[str, tuple[int, bytes]] = {}

    def _event_id(self, occurred_at: str) -> str:
        if self._rng is None:
            return new_event_id()
        # Reproducible runs: time from the event, random bits from the seeded generator.
        moment = datetime.fromisoformat(occurred_at)
        return new_event_id(int(moment.timestamp() * 1000), self._rng.getrandbits(74))

    def emit(
        self,
        stream: str,
        type: str,
        *,
        actor: Mapping[str, str],
        data: Mapping[str, Any],
        occurred_at: str,
        subject: Mapping[str, str] | None = None,
        pii: Mapping[str, str] | None = None,
    ) -> EmittedEvent:
        seq, digest = self._streams.get(stream, (0, b""))
        self._producer_seq += 1
        event_id = self._event_id(occurred_at)
        body = build_body(
            event_id=event_id,
            stream=stream,
            stream_seq=seq + 1,
            prev=b64(digest) if seq else None,
            system=self.system,
            producer_seq=self._producer_seq,
            type=type,
            occurred_at=occurred_at,
            actor=actor,
            data=data,
            subject=subject,
            pii=pii,
        )
        signed = self.signer.sign(body)
        self._streams[stream] = (seq + 1, signed.digest)
        record = signed.encode()
        self.transport.publish(stream, record)
        return EmittedEvent(event_id, stream, seq + 1, self._producer_seq, record)

    def forget(self, stream: str) -> None:
        """Drop the chain state of a concluded stream (bounded memory)."""
        self._streams.pop(stream, None)
