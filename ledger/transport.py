"""How records travel from producers to the appender.

Two sides, one contract, implemented in-process here and over Kafka in `producers.kafka`:

- `Transport` (producer side): `publish(stream, record)` hands one record over, keyed by stream
  so one stream keeps its order; `flush()` returns when everything published was accepted by
  the transport (durable in its log, or handed to the appender).
- `RecordSource` (ingest side): `poll()` gives the next records in order; `commit()` marks
  everything polled so far as durably appended. A source MUST re-deliver what was polled but
  not committed when the consumer restarts; the appender makes re-delivery a no-op.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Protocol

__all__ = ["InProcessChannel", "RecordSource", "Transport"]


class Transport(Protocol):
    def publish(self, stream: str, record: bytes) -> None: ...

    def flush(self, timeout: float | None = None) -> None: ...


class RecordSource(Protocol):
    def poll(self, max_records: int, timeout: float) -> Sequence[bytes]: ...

    def commit(self, count: int | None = None) -> None: ...


class InProcessChannel:
    """Both sides in one process: a FIFO of records (the embedded default).

    `poll` hands out records but keeps them until `commit`, so an ingest loop that fails before
    committing sees them again (`rewind`), like a Kafka consumer after a restart.
    """

    def __init__(self) -> None:
        self._queue: deque[bytes] = deque()
        self._inflight: list[bytes] = []
        self._lock = threading.Lock()

    def publish(self, stream: str, record: bytes) -> None:
        with self._lock:
            self._queue.append(record)

    def flush(self, timeout: float | None = None) -> None:
        return None

    def poll(self, max_records: int, timeout: float = 0.0) -> Sequence[bytes]:
        with self._lock:
            n = min(max_records, len(self._queue))
            batch = [self._queue.popleft() for _ in range(n)]
            self._inflight.extend(batch)
            return batch

    def commit(self, count: int | None = None) -> None:
        """Mark the oldest `count` polled records (default: all) as durably appended."""
        with self._lock:
            del self._inflight[: len(self._inflight) if count is None else count]

    def rewind(self) -> None:
        with self._lock:
            self._queue.extendleft(reversed(self._inflight))
            self._inflight.clear()

    def __len__(self) -> int:
        return len(self._queue)
