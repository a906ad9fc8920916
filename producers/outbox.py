"""The producer's durable outbox: signed records wait here until the transport has them.

One SQLite file (WAL, `synchronous=FULL`: every commit is fsynced), either dedicated to one
producer system (`Outbox(path, system)`, the usual embedding: one tax system, one key) or
shared by every producer system of one process (`Outbox(path)`): then one fsync covers the
events of all of them, which is what makes a process hosting several systems fast::

    outbox    id, stream, record (the signed bytes), producer_seq, created_at,
              delivered_at (NULL until the transport acknowledged the record)
    chains    stream -> last stream_seq and SHA-256 of that event's body (the next `prev`)
    producer  each system writing to this file and its last producer sequence

Guarantees:
- A row, the chain state of its stream and the producer sequence are committed in ONE
  transaction. After a crash the producer resumes exactly where the last commit left it: no
  stream_seq or producer seq is reused (no fork) and none is skipped (no gap).
- An event is `reserve`d (row id, stream seq, producer seq, `prev`: under the lock), signed by
  the caller without the lock, then `fill`ed. Only the contiguous prefix of filled slots is
  committed, in row id order: a committed producer seq or stream seq never follows a missing
  one, whatever order the signing threads finish in. A stream's next event waits for the
  previous one's fill (it needs that digest); other streams sign in parallel.
- `slot.ticket.wait()` returns only once the row is on disk (group commit: one fsync covers
  every row filled while the previous commit ran, plus those being signed, `GATHER_S`).
- If a commit fails, every row queued after it fails too and the in-memory chain state is
  reloaded from the file, so no later event is built on an event that was never stored.
- Rows stay until `mark_delivered` / `acknowledge`; after a restart every undelivered row is
  handed out again (`take`). A resend can duplicate a record in the transport; the ledger
  treats the second copy as a no-op (same event_id, same bytes).
- Past `limit` undelivered rows, `check_capacity` raises `Backpressure`: the caller MUST retry
  later; the outbox MUST NOT grow without bound.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from pathlib import Path

from ledger.errors import Backpressure, NeikongError, StoreError
from producers.outbox_slots import OutboxRow, Slot, Ticket
from producers.outbox_sql import SCHEMA, QueuedRow, commit

__all__ = ["Outbox", "OutboxRow", "Slot", "Ticket"]

log = logging.getLogger("neikong.outbox")


class Outbox:
    """Durable outbox of one producer system, with a group-committing writer thread.

    Thread-safe. An event is stamped in three steps: `reserve` (under `lock`: capacity, row id,
    stream seq, producer seq, the previous digest), signing (no lock: threads sign in
    parallel), `fill` (under `lock`). The writer commits only the contiguous prefix of filled
    slots, in row id order: a committed producer seq is never preceded by a missing one, and
    a stream's next event is reserved only once its previous one is filled (it needs its
    digest), so chains stay whole on disk whatever the order in which threads finish signing.
    """

    HOLD_ROWS = 2000  # an open batch is committed in pieces of at most this many rows
    HOLD_S = 0.05  # and no row of it waits longer than this for its commit to start
    GATHER_S = 0.001  # a commit waits at most this long for events being signed

    def __init__(
        self,
        path: str | os.PathLike[str],
        system: str | None = None,
        *,
        limit: int = 100_000,
        retain_delivered_s: float = 60.0,
        max_cached_streams: int = 100_000,
    ) -> None:
        if limit < 1:
            raise ValueError("outbox limit must be at least 1")
        self.path = Path(path)
        self.system = system
        self.limit = limit
        self.retain_delivered_s = retain_delivered_s
        self.max_cached_streams = max_cached_streams
        self.lock = threading.Lock()
        self._wake_writer = threading.Condition(self.lock)
        self._ready_cond = threading.Condition(self.lock)
        self._delivered_cond = threading.Condition(self.lock)
        self._filled_cond = threading.Condition(self.lock)
        self._fill_waiters = 0
        self._generation = 0
        self._acks: deque[tuple[float, int]] = deque()  # appended without the lock
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = self._connect()
            self._reader = self._connect()
            self._create()
            self._load()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the outbox {self.path}: {exc}") from exc
        self._closing = False
        self._holds = 0
        self._broken: StoreError | None = None
        self._writer = threading.Thread(
            target=self._write_loop, name=f"neikong-outbox-{system}", daemon=True
        )
        self._writer.start()

    # -- opening ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=30.0,
            cached_statements=256,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # fsync the WAL on every commit
        return conn

    def _create(self) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in SCHEMA:
                conn.execute(statement)
            systems = [r[0] for r in conn.execute("SELECT system FROM producer").fetchall()]
            others = [x for x in systems if x != self.system]
            if self.system is not None and others:
                raise NeikongError(
                    f"the outbox {self.path} belongs to producer system {others[0]!r}, "
                    f"not {self.system!r}; give each system its own outbox file "
                    "(or open it shared, without a system)"
                )
            if self.system is not None and not systems:
                conn.execute("INSERT INTO producer (system, seq) VALUES (?, 0)", (self.system,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _load(self) -> None:
        """(Re)load the committed state: producer seq, undelivered rows, next row id."""
        conn = self._reader
        self._producer_seqs: dict[str, int] = {
            str(system): int(seq)
            for system, seq in conn.execute("SELECT system, seq FROM producer").fetchall()
        }
        self._next_id = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0])
        self._committed = self._next_id
        self._next_id += 1
        ids = conn.execute(
            "SELECT id FROM outbox WHERE delivered_at IS NULL ORDER BY id"
        ).fetchall()
        self._undelivered: OrderedDict[int, None] = OrderedDict((int(i), None) for (i,) in ids)
        # undelivered rows of an earlier run are read back in pages (`take`)
        self._backlog_after = 0
        self._backlog_end = max(self._undelivered, default=0)
        # stream -> (last seq, its digest); digest None while that event is being signed
        self._heads: dict[str, tuple[int, bytes | None]] = {}
        self._uncommitted: dict[str, int] = {}
        self._slots: deque[Slot] = deque()  # reserved, not yet queued (id order)
        self._queue: list[QueuedRow] = []
        self._open = Ticket()  # the ticket of rows reserved since the writer last took rows
        self._open_first = self._open_last = 0
        self._closed: deque[tuple[int, Ticket]] = deque()  # (last row id, ticket)
        self._ready: deque[OutboxRow] = deque()
        self._marks: list[tuple[float, int]] = []

    # -- stamping --------------------------------------------------------------------------

    @property
    def producer_seq(self) -> int:
        """The last producer sequence handed out (committed or queued) of a dedicated outbox."""
        if self.system is None:
            raise NeikongError("a shared outbox has one producer sequence per system")
        return self._producer_seqs.get(self.system, 0)

    def producer_seq_of(self, system: str) -> int:
        """The last producer sequence handed out (committed or queued) for `system`."""
        if self.system is not None and system != self.system:
            raise NeikongError(f"outbox of {self.system!r} given to producer {system!r}")
        return self._producer_seqs.get(system, 0)

    def check_capacity(self) -> None:
        """Raise `Backpressure` when `limit` records are still undelivered."""
        if self._broken is not None:
            raise self._broken
        if self._closing:
            raise NeikongError(f"the outbox {self.path} is closed")
        if len(self._undelivered) >= self.limit:
            raise Backpressure(
                f"outbox {self.path} holds {len(self._undelivered)} undelivered events "
                f"(limit {self.limit}); the transport is behind, retry later"
            )

    def _head(self, stream: str) -> tuple[int, bytes | None]:
        """(last stream_seq, its digest or None while it is signed); (0, b"") if new."""
        head = self._heads.get(stream)
        if head is None:
            try:
                row = self._reader.execute(
                    "SELECT seq, digest FROM chains WHERE stream = ?", (stream,)
                ).fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"outbox {self.path} unreadable: {exc}") from exc
            head = (int(row[0]), bytes(row[1])) if row else (0, b"")
            if len(self._heads) >= self.max_cached_streams:
                self._trim_heads()
            self._heads[stream] = head
        return head

    def reserve(self, stream: str, system: str | None = None) -> Slot:
        """Reserve the next row: its stream seq, producer seq and the `prev` digest.

        Raises `Backpressure` past the limit (nothing reserved). If the stream's previous
        event is still being signed, waits for its `fill`. Every reservation MUST be followed
        by exactly one `fill` or `abandon` of the returned slot.
        """
        system = system or self.system
        if system is None:
            raise ValueError("a shared outbox needs the producer system of each record")
        with self.lock:
            while True:
                self.check_capacity()
                seq, digest = self._head(stream)
                if digest is not None:
                    break
                self._fill_waiters += 1
                try:
                    self._filled_cond.wait()
                finally:
                    self._fill_waiters -= 1
            producer_seq = self.producer_seq_of(system) + 1
            row_id = self._next_id
            slot = Slot(
                row_id, stream, seq + 1, digest, system, producer_seq, self._open, self._generation
            )
            self._next_id += 1
            self._producer_seqs[system] = producer_seq
            self._heads[stream] = (seq + 1, None)
            self._uncommitted[stream] = self._uncommitted.get(stream, 0) + 1
            self._undelivered[row_id] = None
            self._slots.append(slot)
            if not self._open_first:
                self._open_first = row_id
            self._open_last = row_id
            return slot

    def fill(self, slot: Slot, record: bytes, digest: bytes) -> None:
        """Put the signed record in its reserved slot; queue every slot filled in order.

        Raises `StoreError` if a failed commit discarded the reservation (the slot's ticket
        carries the same error); the event then never existed."""
        with self.lock:
            if slot.generation != self._generation:
                raise slot.ticket.error or StoreError(f"outbox {self.path}: reservation lost")
            slot.record, slot.digest = record, digest
            self._heads[slot.stream] = (slot.stream_seq, digest)
            if self._fill_waiters:
                self._filled_cond.notify_all()
            if self._slots[0] is slot:
                self._queue_filled()

    def _queue_filled(self) -> None:
        """Move the filled prefix of the reservations to the writer's queue (lock held)."""
        slots, queue = self._slots, self._queue
        before = len(queue)
        now = time.time()
        while slots and slots[0].record is not None:
            s = slots.popleft()
            assert s.record is not None
            queue.append(
                (s.id, s.stream, s.record, s.producer_seq, now, s.stream_seq, s.digest, s.system)
            )
        if before == 0 or (not slots and not self._holds) or len(queue) >= self.HOLD_ROWS > before:
            # the first row wakes the writer; the writer then gathers the rows being signed
            # (`_gather`) and is woken again once none is left in flight
            self._wake_writer.notify()

    def abandon(self, slot: Slot, error: BaseException) -> None:
        """The event of `slot` cannot be made (it MUST NOT happen: the producer checks every
        input before `reserve`; this is for out-of-memory and interrupts). The last
        reservation is undone; any other leaves a hole the writer cannot commit past, so the
        outbox refuses further events (`StoreError`) and fails the reservations behind it,
        until it is reopened. What was committed before stays durable."""
        with self.lock:
            if slot.generation != self._generation:
                return
            if self._slots and self._slots[-1] is slot:
                tickets = self._undo_last(slot)
                broken = None  # their rows are all on disk
            else:
                broken = StoreError(f"outbox {self.path}: an event could not be signed: {error!r}")
                self._broken = broken
                tickets = self._break()
        for ticket in tickets:
            ticket._finish(broken)

    def _undo_last(self, slot: Slot) -> list[Ticket]:
        """Undo the last reservation (lock held); return the tickets left with no row to wait
        for."""
        self._slots.pop()
        self._next_id -= 1
        self._producer_seqs[slot.system] = slot.producer_seq - 1
        self._heads[slot.stream] = (slot.stream_seq - 1, slot.prev)
        self._settle(slot.stream)
        self._undelivered.pop(slot.id, None)
        if self._open_last == slot.id:
            self._open_last = slot.id - 1
            if self._open_last < self._open_first:
                self._open_first = self._open_last = 0
        if self._fill_waiters:
            self._filled_cond.notify_all()
        return self._unreserve_closed(slot.id)

    def _break(self) -> list[Ticket]:
        """A reservation that is not the last was abandoned: refuse further events, void the
        reservations, return every ticket not finished yet (lock held)."""
        self._generation += 1
        tickets = [t for _, t in self._closed] + [self._open]
        self._closed.clear()
        self._open, self._open_first, self._open_last = Ticket(), 0, 0
        for lost in self._slots:
            self._undelivered.pop(lost.id, None)
        self._slots.clear()
        self._filled_cond.notify_all()
        return tickets

    def _unreserve_closed(self, row_id: int) -> list[Ticket]:
        """The last reservation `row_id` was undone: a ticket the writer already closed with it
        as its last row now ends one row earlier; returned if all its rows are committed."""
        closed = self._closed
        if not closed or closed[-1][0] != row_id:
            return []
        closed[-1] = (row_id - 1, closed[-1][1])
        done: list[Ticket] = []
        while closed and closed[0][0] <= self._committed:
            done.append(closed.popleft()[1])
        return done

    def _settle(self, stream: str) -> None:
        left = self._uncommitted[stream] - 1
        if left:
            self._uncommitted[stream] = left
        else:
            del self._uncommitted[stream]

    def forget(self, stream: str) -> None:
        """Drop a stream's cached head (its chain state stays on disk)."""
        with self.lock:
            if stream not in self._uncommitted:
                self._heads.pop(stream, None)

    def _trim_heads(self) -> None:
        keep = {s: h for s, h in self._heads.items() if s in self._uncommitted}
        self._heads = keep

    # -- delivery --------------------------------------------------------------------------

    @property
    def undelivered(self) -> int:
        """Records reserved, queued or committed and not yet acknowledged by the transport."""
        return len(self._undelivered)

    @property
    def last_id(self) -> int:
        return self._next_id - 1

    def take(self, max_rows: int, timeout: float | None = None) -> list[OutboxRow]:
        """Committed rows not handed out yet: first an earlier run's backlog, then new rows."""
        with self.lock:
            if self._backlog_after < self._backlog_end:
                return self._read_backlog(max_rows)
            if not self._ready and timeout:
                self._ready_cond.wait(timeout)
            n = min(max_rows, len(self._ready))
            return [self._ready.popleft() for _ in range(n)]

    def _read_backlog(self, max_rows: int) -> list[OutboxRow]:
        try:
            rows = self._reader.execute(
                "SELECT id, stream, record FROM outbox WHERE delivered_at IS NULL"
                " AND id > ? AND id <= ? ORDER BY id LIMIT ?",
                (self._backlog_after, self._backlog_end, max_rows),
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"outbox {self.path} unreadable: {exc}") from exc
        if not rows:
            self._backlog_after = self._backlog_end
            return []
        self._backlog_after = int(rows[-1][0])
        return [OutboxRow(int(i), s, bytes(r)) for i, s, r in rows]

    def requeue(self, rows: Iterable[OutboxRow]) -> None:
        """Hand rows out again (their delivery failed), ahead of newer ones."""
        with self.lock:
            self._ready.extendleft(reversed(list(rows)))
            self._ready_cond.notify_all()

    def mark_delivered(self, ids: Iterable[int]) -> None:
        """The transport acknowledged these rows; recorded with the next commit."""
        now = time.time()
        with self.lock:
            idle = not self._marks
            self._marks.extend((now, i) for i in ids)
            if idle:
                self._wake_writer.notify()  # later marks ride along with that commit

    def acknowledge(self, row_id: int) -> None:
        """One row acknowledged (called on the transport's I/O thread for every record):
        takes the lock only to wake an idle writer; recorded with the next commit."""
        idle = not self._acks
        self._acks.append((time.time(), row_id))
        if idle:
            with self.lock:
                self._wake_writer.notify()

    def wait_delivered(self, up_to: int, timeout: float | None) -> bool:
        """Wait until every row with id <= `up_to` is delivered and recorded as such."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            while self._undelivered and next(iter(self._undelivered)) <= up_to:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._delivered_cond.wait(left)
            return True

    # -- the writer thread -----------------------------------------------------------------

    def _write_loop(self) -> None:
        prune_every = max(self.retain_delivered_s, 1.0)
        last_prune = time.monotonic()
        while True:
            with self.lock:
                while not (self._queue or self._marks or self._acks or self._closing):
                    if not self._wake_writer.wait(prune_every):
                        break
                self._wait_while_held()
                self._gather()
                while self._closing and self._slots and not self._queue:
                    self._wake_writer.wait(0.1)  # let reserved events be filled first
                if self._closing and not (self._queue or self._marks or self._acks):
                    return
                rows, self._queue = self._queue, []
                marks, self._marks = self._marks, []
                while self._acks:
                    marks.append(self._acks.popleft())
                if self._open_last:  # rows reserved from now on belong to the next commit
                    self._closed.append((self._open_last, self._open))
                    self._open, self._open_first, self._open_last = Ticket(), 0, 0
            prune = time.monotonic() - last_prune >= prune_every
            if not (rows or marks or prune):
                continue
            try:
                self._commit(rows, marks, prune)
            except sqlite3.Error as exc:
                self._failed(marks, exc)
                continue
            if prune:
                last_prune = time.monotonic()
            self._committed_rows(rows, marks)

    def _committed_rows(self, rows: list[QueuedRow], marks: list[tuple[float, int]]) -> None:
        """After a commit: hand the rows to delivery, wake the waiters of every ticket whose
        rows are all on disk now."""
        done: list[Ticket] = []
        with self.lock:
            for row in rows:
                self._settle(row[1])
            self._ready.extend(OutboxRow(r[0], r[1], r[2]) for r in rows)
            for _, row_id in marks:
                self._undelivered.pop(row_id, None)
            if rows:
                self._ready_cond.notify_all()
                self._committed = max(self._committed, rows[-1][0])
            if marks:
                self._delivered_cond.notify_all()
            closed = self._closed
            while closed and closed[0][0] <= self._committed:
                done.append(closed.popleft()[1])
        for ticket in done:
            ticket._finish()

    def _wait_while_held(self) -> None:
        """While a batch is open (`hold`), let rows gather: commit once it is released, once
        `HOLD_ROWS` rows wait, or `HOLD_S` after the first one was queued (caller holds the
        lock)."""
        while self._holds and self._queue and not self._closing:
            if len(self._queue) >= self.HOLD_ROWS:
                return
            left = self._queue[0][4] + self.HOLD_S - time.time()
            if left <= 0:
                return
            self._wake_writer.wait(left)

    def _gather(self) -> None:
        """Before a commit, wait (at most `GATHER_S`) for the events already reserved and
        being signed: they join this commit instead of waiting for the next fsync (caller
        holds the lock)."""
        if not (self._slots and self._queue):
            return
        deadline = time.monotonic() + self.GATHER_S
        while self._slots and not self._closing and len(self._queue) < self.HOLD_ROWS:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake_writer.wait(left)

    def hold(self) -> None:
        """A batch is open: gather its rows into as few commits as possible (see
        `_wait_while_held`). Every `hold` MUST be matched by one `release`."""
        with self.lock:
            self._holds += 1

    def release(self) -> None:
        with self.lock:
            self._holds -= 1
            self._wake_writer.notify()

    def _commit(self, rows: list[QueuedRow], marks: list[tuple[float, int]], prune: bool) -> None:
        """One transaction, one fsync (`producers.outbox_sql.commit`)."""
        if not prune:
            commit(self._conn, rows, marks)
            return
        with self.lock:
            below = next(iter(self._undelivered), self._next_id)
        commit(self._conn, rows, marks, self.retain_delivered_s, below)

    def _failed(self, marks: list[tuple[float, int]], exc: sqlite3.Error) -> None:
        """A commit failed: fail it and everything reserved after it (built on it), then
        reload the committed state. Undelivered rows are handed out again from the file; a
        record sent twice is a no-op in the ledger."""
        log.error("outbox commit failed: %s", exc)
        error = StoreError(f"outbox {self.path} commit failed: {exc}")
        with self.lock:
            tickets = [t for _, t in self._closed] + [self._open]
            pending_marks = marks + self._marks
            self._generation += 1  # reservations being signed now are void (`fill` raises)
            try:
                self._load()
            except sqlite3.Error as reload_exc:
                self._broken = StoreError(f"outbox {self.path} unusable: {reload_exc}")
            self._marks = pending_marks
            self._ready_cond.notify_all()
            self._delivered_cond.notify_all()
            self._filled_cond.notify_all()
        for ticket in tickets:
            ticket._finish(error)

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Commit what is queued, stop the writer and close the file."""
        with self.lock:
            if self._closing:
                return
            self._closing = True
            self._wake_writer.notify_all()
            self._ready_cond.notify_all()
            self._filled_cond.notify_all()
        self._writer.join()
        self._conn.close()
        self._reader.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
