"""The outbox file's schema and its one-statement group commit.

Tables (see `producers.outbox`): `outbox` (the rows), `chains` (each stream's last seq and
digest), `producer` (each system's last producer seq). Writes go through the view
`outbox_ops`, whose INSTEAD OF trigger applies one operation per inserted row:

    kind 0  a new outbox row, and with it its stream's chain state and its producer seq
    kind 1  rows `id`..`last_id` acknowledged by the transport at `created_at`
    kind 2  nothing (pads a statement to a cached size)

Guarantees:
- `commit` applies the rows and the acknowledgements in ONE transaction (one fsync, since the
  connection runs with `synchronous=FULL`): a crash keeps all of it or none of it. Rows MUST
  be given in id order; a stream's chain state and a system's producer seq end up as those
  of their last row.
- Up to `ONE_STATEMENT` operations take one SQL statement (autocommit): one statement step
  releases and retakes the GIL once, instead of once per statement, which matters when many
  emitting threads queue for the GIL.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["ONE_STATEMENT", "SCHEMA", "QueuedRow", "commit"]

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, stream TEXT NOT NULL,"
    " record BLOB NOT NULL, producer_seq INTEGER NOT NULL, created_at REAL NOT NULL,"
    " delivered_at REAL)",
    "CREATE INDEX IF NOT EXISTS outbox_undelivered ON outbox (id) WHERE delivered_at IS NULL",
    "CREATE TABLE IF NOT EXISTS chains (stream TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
    " digest BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS producer (system TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
    "CREATE VIEW IF NOT EXISTS outbox_ops AS SELECT 0 AS kind, 0 AS id, '' AS stream,"
    " x'' AS record, 0 AS producer_seq, 0.0 AS created_at, 0 AS stream_seq, x'' AS digest,"
    " '' AS system, 0 AS last_id WHERE 0",
    "CREATE TRIGGER IF NOT EXISTS outbox_ops_apply INSTEAD OF INSERT ON outbox_ops BEGIN"
    " INSERT INTO outbox (id, stream, record, producer_seq, created_at)"
    "  SELECT NEW.id, NEW.stream, NEW.record, NEW.producer_seq, NEW.created_at"
    "  WHERE NEW.kind = 0;"
    " INSERT INTO chains (stream, seq, digest) SELECT NEW.stream, NEW.stream_seq, NEW.digest"
    "  WHERE NEW.kind = 0"
    "  ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq, digest = excluded.digest;"
    " INSERT INTO producer (system, seq) SELECT NEW.system, NEW.producer_seq"
    "  WHERE NEW.kind = 0 ON CONFLICT (system) DO UPDATE SET seq = excluded.seq;"
    " UPDATE outbox SET delivered_at = NEW.created_at"
    "  WHERE NEW.kind = 1 AND id BETWEEN NEW.id AND NEW.last_id;"
    " END",
)

# (id, stream, record, producer_seq, created_at, stream_seq, digest, system)
QueuedRow = tuple[int, str, bytes, int, float, int, bytes, str]

_INSERT = "INSERT INTO outbox_ops VALUES "
_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
ONE_STATEMENT = 2048  # operations per statement at most (10 parameters each)
_NOTHING = (2, 0, "", b"", 0, 0.0, 0, b"", "", 0)


def commit(
    conn: sqlite3.Connection,
    rows: Sequence[QueuedRow],
    marks: Sequence[tuple[float, int]],
    retain_delivered_s: float | None = None,
    prune_below: int = 0,
) -> None:
    """Write `rows` and the acknowledgements `marks` ((time, row id)) in one transaction; with
    `retain_delivered_s`, also delete delivered rows older than that below `prune_below`."""
    ops: list[tuple[Any, ...]] = [(0, *r, 0) for r in rows]
    ops += [(1, lo, "", b"", 0, at, 0, b"", "", hi) for at, lo, hi in _runs(marks)]
    if len(ops) <= ONE_STATEMENT and retain_delivered_s is None:
        _insert(conn, ops)  # autocommit: the statement is the transaction
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for i in range(0, len(ops), ONE_STATEMENT):
            _insert(conn, ops[i : i + ONE_STATEMENT])
        if retain_delivered_s is not None:
            conn.execute(
                "DELETE FROM outbox WHERE id < ? AND delivered_at < ?",
                (prune_below, time.time() - retain_delivered_s),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _insert(conn: sqlite3.Connection, ops: Sequence[tuple[Any, ...]]) -> None:
    if not ops:
        return
    # statement sizes are rounded up to a power of two (few distinct cached statements),
    # padded with operations of kind 2, which the trigger ignores
    size = 1 << (len(ops) - 1).bit_length()
    padded = list(ops) + [_NOTHING] * (size - len(ops))
    conn.execute(_INSERT + ", ".join([_VALUES] * size), [v for op in padded for v in op])


def _runs(marks: Sequence[tuple[float, int]]) -> list[tuple[float, int, int]]:
    """(time, first id, last id) of each run of consecutive acknowledged ids."""
    out: list[tuple[float, int, int]] = []
    for at, row_id in sorted(marks, key=lambda m: m[1]):
        if out and row_id <= out[-1][2] + 1:
            if row_id > out[-1][2]:
                out[-1] = (out[-1][0], out[-1][1], row_id)
        else:
            out.append((at, row_id, row_id))
    return out
