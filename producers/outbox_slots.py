"""The small parts of the outbox: a reserved slot, the ticket of a group commit, a row handed
to delivery.

Guarantees:
- `Ticket.wait()` returns only after `_finish()` (the commit of every row of the ticket is on
  disk) and raises the commit's error if it failed; `_finish` takes effect once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ledger.errors import Backpressure, NeikongError

__all__ = ["OutboxRow", "Slot", "Ticket"]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    stream: str
    record: bytes


class Ticket:
    """The commit a reserved row belongs to; shared by the rows reserved between two commits.

    A lock held until the commit ends: each waiter takes it and passes it on at once, so a
    commit wakes its waiters one after another without a condition variable's shared lock.
    """

    __slots__ = ("_done", "_finished", "error")

    def __init__(self) -> None:
        self._done = threading.Lock()
        self._done.acquire()
        self._finished = False
        self.error: NeikongError | None = None

    def wait(self, timeout: float | None = None) -> None:
        """Return once the rows are durable; raise `StoreError` if their commit failed."""
        if not self._done.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            raise Backpressure(f"the outbox did not commit within {timeout} s; retry later")
        self._done.release()
        if self.error is not None:
            raise self.error

    def _finish(self, error: NeikongError | None = None) -> None:
        if self._finished:
            return
        self._finished = True
        self.error = error
        self._done.release()


@dataclass(slots=True)
class Slot:
    """A reserved place in the outbox: row id, stream seq and producer seq are fixed; the
    signed record is filled in later (`Outbox.fill`), outside the outbox lock."""

    id: int
    stream: str
    stream_seq: int
    prev: bytes  # digest of the stream's previous event (b"" before the first)
    system: str
    producer_seq: int
    ticket: Ticket
    generation: int
    record: bytes | None = None
    digest: bytes = b""
