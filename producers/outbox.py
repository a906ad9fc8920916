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
- `Outbox.add` returns a ticket; `Ticket.wait()` returns only once the row is on disk (group
  commit: one fsync covers every row queued while the previous commit ran).
- If a commit fails, every row queued after it fails too and the in-memory chain state is
  reloaded from the file, so no later event is built on an event that was never stored.
- Rows stay until `mark_delivered`; after a restart every undelivered row is handed out again
  (`take`). A resend can duplicate a record in the transport; the ledger treats the second copy
  as a no-op (same event_id, same bytes).
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
from dataclasses import dataclass
from pathlib import Path

from ledger.errors import Backpressure, NeikongError, StoreError

__all__ = ["Outbox", "OutboxRow", "Ticket"]

log = logging.getLogger("neikong.outbox")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, stream TEXT NOT NULL,"
    " record BLOB NOT NULL, producer_seq INTEGER NOT NULL, created_at REAL NOT NULL,"
    " delivered_at REAL)",
    "CREATE INDEX IF NOT EXISTS outbox_undelivered ON outbox (id) WHERE delivered_at IS NULL",
    "CREATE TABLE IF NOT EXISTS chains (stream TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
    " digest BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS producer (system TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    stream: str
    record: bytes


class Ticket:
    """The commit a queued row belongs to; shared by every row of one group commit.

    A lock held until the commit ends: each waiter takes it and passes it on at once, so a
    commit wakes its waiters one after another without a condition variable's shared lock.
    """

    __slots__ = ("_done", "error")

    def __init__(self) -> None:
        self._done = threading.Lock()
        self._done.acquire()
        self.error: NeikongError | None = None

    def wait(self, timeout: float | None = None) -> None:
        """Return once the rows are durable; raise `StoreError` if their commit failed."""
        if not self._done.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            raise Backpressure(f"the outbox did not commit within {timeout} s; retry later")
        self._done.release()
        if self.error is not None:
            raise self.error

    def _finish(self, error: NeikongError | None = None) -> None:
        self.error = error
        self._done.release()


class Outbox:
    """Durable outbox of one producer system, with a group-committing writer thread.

    Thread-safe. Producers stamp events while holding `lock` (so chain state, ids and queue
    order agree), then wait on the returned ticket without it.
    """

    HOLD_ROWS = 2000  # an open batch is committed in pieces of at most this many rows
    HOLD_S = 0.05  # and no row of it waits longer than this for its commit to start

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
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # fsync the WAL on every commit
        return conn

    def _create(self) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
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
        self._seq_updates: dict[str, int] = {}
        self._next_id = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0])
        self._next_id += 1
        ids = conn.execute(
            "SELECT id FROM outbox WHERE delivered_at IS NULL ORDER BY id"
        ).fetchall()
        self._undelivered: OrderedDict[int, None] = OrderedDict((int(i), None) for (i,) in ids)
        # undelivered rows of an earlier run are read back in pages (`take`)
        self._backlog_after = 0
        self._backlog_end = max(self._undelivered, default=0)
        self._heads: dict[str, tuple[int, bytes]] = {}
        self._uncommitted: dict[str, int] = {}
        self._queue: list[tuple[int, str, bytes, int, float]] = []
        self._chain_updates: dict[str, tuple[int, bytes]] = {}
        self._ticket = Ticket()
        self._ready: deque[OutboxRow] = deque()
        self._marks: list[tuple[float, int]] = []

    # -- stamping (callers hold `lock`) ----------------------------------------------------

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

    def head(self, stream: str) -> tuple[int, bytes]:
        """(last stream_seq, SHA-256 of its body) of `stream`; (0, b"") for a new stream."""
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

    def add(
        self,
        stream: str,
        record: bytes,
        stream_seq: int,
        digest: bytes,
        producer_seq: int,
        *,
        system: str | None = None,
    ) -> tuple[int, Ticket]:
        """Queue one signed record with the chain state it creates; return (row id, ticket).

        `system` may be left out for a dedicated outbox."""
        system = system or self.system
        if system is None:
            raise ValueError("a shared outbox needs the producer system of each record")
        last = self.producer_seq_of(system)
        if producer_seq != last + 1:
            raise ValueError(f"producer seq {producer_seq} of {system} does not follow {last}")
        if stream_seq != self.head(stream)[0] + 1:
            raise ValueError(f"stream seq {stream_seq} does not follow the head of {stream}")
        row_id = self._next_id
        self._next_id += 1
        self._producer_seqs[system] = producer_seq
        self._seq_updates[system] = producer_seq
        self._heads[stream] = (stream_seq, digest)
        self._chain_updates[stream] = (stream_seq, digest)
        self._uncommitted[stream] = self._uncommitted.get(stream, 0) + 1
        self._undelivered[row_id] = None
        self._queue.append((row_id, stream, record, producer_seq, time.time()))
        if not self._holds or len(self._queue) in (1, self.HOLD_ROWS):
            self._wake_writer.notify()  # held: only to start the hold's clock, or to commit
        return row_id, self._ticket

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
        """Records queued or committed and not yet acknowledged by the transport."""
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
            self._marks.extend((now, i) for i in ids)
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
                while not (self._queue or self._marks or self._closing):
                    if not self._wake_writer.wait(prune_every):
                        break
                self._wait_while_held()
                if self._closing and not (self._queue or self._marks):
                    return
                rows, self._queue = self._queue, []
                chains, self._chain_updates = self._chain_updates, {}
                marks, self._marks = self._marks, []
                ticket, self._ticket = self._ticket, Ticket()
                seqs, self._seq_updates = self._seq_updates, {}
            prune = time.monotonic() - last_prune >= prune_every
            if not (rows or marks or prune):
                continue
            try:
                self._commit(rows, chains, seqs, marks, prune)
            except sqlite3.Error as exc:
                self._failed(marks, ticket, exc)
                continue
            if prune:
                last_prune = time.monotonic()
            with self.lock:
                for row in rows:
                    left = self._uncommitted[row[1]] - 1
                    if left:
                        self._uncommitted[row[1]] = left
                    else:
                        del self._uncommitted[row[1]]
                self._ready.extend(OutboxRow(r[0], r[1], r[2]) for r in rows)
                for _, row_id in marks:
                    self._undelivered.pop(row_id, None)
                if rows:
                    self._ready_cond.notify_all()
                if marks:
                    self._delivered_cond.notify_all()
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

    def hold(self) -> None:
        """A batch is open: gather its rows into as few commits as possible (see
        `_wait_while_held`). Every `hold` MUST be matched by one `release`."""
        with self.lock:
            self._holds += 1

    def release(self) -> None:
        with self.lock:
            self._holds -= 1
            self._wake_writer.notify()

    def _commit(
        self,
        rows: list[tuple[int, str, bytes, int, float]],
        chains: dict[str, tuple[int, bytes]],
        seqs: dict[str, int],
        marks: list[tuple[float, int]],
        prune: bool,
    ) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                conn.executemany(
                    "INSERT INTO outbox (id, stream, record, producer_seq, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                conn.executemany(
                    "INSERT INTO chains (stream, seq, digest) VALUES (?, ?, ?)"
                    " ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq,"
                    " digest = excluded.digest",
                    [(s, q, d) for s, (q, d) in chains.items()],
                )
                conn.executemany(
                    "INSERT INTO producer (system, seq) VALUES (?, ?)"
                    " ON CONFLICT (system) DO UPDATE SET seq = excluded.seq",
                    list(seqs.items()),
                )
            if marks:
                conn.executemany("UPDATE outbox SET delivered_at = ? WHERE id = ?", marks)
            if prune:
                self._prune(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _prune(self, conn: sqlite3.Connection) -> None:
        """Delete delivered rows older than the retention, below the oldest undelivered id."""
        with self.lock:
            below = next(iter(self._undelivered), self._next_id)
        conn.execute(
            "DELETE FROM outbox WHERE id < ? AND delivered_at < ?",
            (below, time.time() - self.retain_delivered_s),
        )

    def _failed(self, marks: list[tuple[float, int]], ticket: Ticket, exc: sqlite3.Error) -> None:
        """A commit failed: fail it and everything queued after it (built on it), then reload
        the committed state. Undelivered rows are handed out again from the file; a record
        sent twice is a no-op in the ledger."""
        log.error("outbox commit failed: %s", exc)
        error = StoreError(f"outbox {self.path} commit failed: {exc}")
        with self.lock:
            later = self._ticket
            pending_marks = marks + self._marks
            try:
                self._load()
            except sqlite3.Error as reload_exc:
                self._broken = StoreError(f"outbox {self.path} unusable: {reload_exc}")
            self._marks = pending_marks
            self._ready_cond.notify_all()
            self._delivered_cond.notify_all()
        ticket._finish(error)
        later._finish(error)

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Commit what is queued, stop the writer and close the file."""
        with self.lock:
            if self._closing:
                return
            self._closing = True
            self._wake_writer.notify_all()
            self._ready_cond.notify_all()
        self._writer.join()
        self._conn.close()
        self._reader.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
