"""Side tables written in the same transaction as the events, in two SQL dialects.

They make the append rules cheap (stream heads, event ids, producer heads, parked records,
dead letters) but are never trusted by `verify`, which reads only the stored events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Dialect", "ParkedRow", "SideWrites", "ddl", "write_side"]

Dialect = Literal["sqlite", "postgres"]


@dataclass(frozen=True)
class ParkedRow:
    digest: bytes
    stream: str
    stream_seq: int
    system: str
    producer_seq: int
    event_id: str
    record: bytes
    parked_at: float


@dataclass
class SideWrites:
    """Everything a batch changes besides the events themselves."""

    expected_max_position: int = 0
    event_ids: list[tuple[str, bytes]] = field(default_factory=list)  # per appended event
    producers: dict[str, int] = field(default_factory=dict)  # system -> last seq
    parked: list[ParkedRow] = field(default_factory=list)
    unparked: list[bytes] = field(default_factory=list)  # digests
    dead_letters: list[tuple[float, str, str, bytes, bytes, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            self.event_ids or self.producers or self.parked or self.unparked or self.dead_letters
        )


def ddl(dialect: Dialect) -> list[str]:
    blob = "BLOB" if dialect == "sqlite" else "BYTEA"
    real = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    without_rowid = " WITHOUT ROWID" if dialect == "sqlite" else ""
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT" if dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"
    return [
        "CREATE TABLE IF NOT EXISTS nk_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        # event ids as 16 bytes; UUIDv7 ids make this index append-mostly
        f"CREATE TABLE IF NOT EXISTS nk_event_ids (event_id {blob} PRIMARY KEY,"
        f" position BIGINT NOT NULL, digest {blob} NOT NULL){without_rowid}",
        "CREATE TABLE IF NOT EXISTS nk_producers (system TEXT PRIMARY KEY,"
        " last_seq BIGINT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS nk_parked (digest {blob} PRIMARY KEY, stream TEXT NOT NULL,"
        " stream_seq BIGINT NOT NULL, system TEXT NOT NULL, producer_seq BIGINT NOT NULL,"
        f" event_id TEXT NOT NULL, record {blob} NOT NULL, parked_at {real} NOT NULL)",
        "CREATE INDEX IF NOT EXISTS nk_parked_stream ON nk_parked (stream, stream_seq)",
        "CREATE INDEX IF NOT EXISTS nk_parked_producer ON nk_parked (system, producer_seq)",
        f"CREATE TABLE IF NOT EXISTS nk_dead_letters (id {serial}, received_at {real} NOT NULL,"
        f" reason TEXT NOT NULL, detail TEXT NOT NULL, digest {blob} NOT NULL,"
        f" record {blob} NOT NULL, source TEXT NOT NULL, UNIQUE (digest, reason))",
    ]


def _sql(dialect: Dialect, statement: str) -> str:
    return statement if dialect == "sqlite" else statement.replace("?", "%s")


def write_side(cursor: Any, dialect: Dialect, side: SideWrites, positions: Sequence[int]) -> None:
    """Apply `side` with `cursor` inside the caller's transaction."""

    def many(statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            cursor.executemany(_sql(dialect, statement), rows)

    if side.event_ids:
        many(
            "INSERT INTO nk_event_ids (event_id, position, digest) VALUES (?, ?, ?)",
            [
                (bytes.fromhex(eid.replace("-", "")), pos, dig)
                for (eid, dig), pos in zip(side.event_ids, positions, strict=True)
            ],
        )
    many(
        "INSERT INTO nk_producers (system, last_seq) VALUES (?, ?)"
        " ON CONFLICT (system) DO UPDATE SET last_seq = excluded.last_seq",
        list(side.producers.items()),
    )
    many("DELETE FROM nk_parked WHERE digest = ?", [(d,) for d in side.unparked])
    many(
        "INSERT INTO nk_parked (digest, stream, stream_seq, system, producer_seq, event_id,"
        " record, parked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING",
        [
            (
                p.digest,
                p.stream,
                p.stream_seq,
                p.system,
                p.producer_seq,
                p.event_id,
                p.record,
                p.parked_at,
            )
            for p in side.parked
        ],
    )
    many(
        "INSERT INTO nk_dead_letters (received_at, reason, detail, digest, record, source)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (digest, reason) DO NOTHING",
        side.dead_letters,
    )
