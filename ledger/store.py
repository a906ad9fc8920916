"""The event store: an eventsourcing application with one aggregate per stream.

- Aggregate id = UUIDv5(STREAM_NAMESPACE, stream name); aggregate version = `stream_seq`, so the
  store's unique (originator_id, originator_version) constraint also blocks forks.
- The stored state of each event is the record bytes exactly (see `ledger.envelope`): the
  transcoder passes them through, so what is stored is what was signed.
- Notification id = global position = Merkle leaf index + 1 (positions start at 1).
- SQLite file by default; PostgreSQL by configuration, with the same code.
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlparse

import orjson
from eventsourcing.application import Application
from eventsourcing.persistence import (
    IntegrityError,
    PersistenceError,
    StoredEvent,
    Transcoder,
)
from eventsourcing.utils import get_topic

from ledger.envelope import HEADER_LEN, TERMINAL_TYPES
from ledger.errors import ConflictError, StoreError
from ledger.recorders import LedgerPostgresRecorder, LedgerSQLiteRecorder
from ledger.side_tables import Dialect, ParkedRow, SideWrites, write_side

__all__ = [
    "STREAM_NAMESPACE",
    "LedgerApplication",
    "LedgerStore",
    "RecordTranscoder",
    "RecordedEvent",
    "StoreConfig",
    "StoredRow",
    "StreamInfo",
    "stream_id_hex",
    "stream_uuid",
]

STREAM_NAMESPACE = uuid.UUID("6e656b6f-6e67-5f6c-6564-6765722d7631")  # "neikong_ledger-v1"


@lru_cache(maxsize=65536)
def stream_uuid(stream: str) -> uuid.UUID:
    return uuid.uuid5(STREAM_NAMESPACE, stream)


@lru_cache(maxsize=65536)
def stream_id_hex(stream: str) -> str:
    return stream_uuid(stream).hex


class RecordedEvent:
    """A domain event whose whole state is the record bytes."""

    __slots__ = ("__dict__",)

    def __init__(self, originator_id: uuid.UUID, originator_version: int, record: bytes) -> None:
        self.originator_id = originator_id
        self.originator_version = originator_version
        self.record = record

    @property
    def timestamp(self) -> datetime:  # eventsourcing's protocol; positions order the log
        return datetime.fromtimestamp(0, tz=UTC)


class RecordTranscoder(Transcoder):
    """Stores `record` bytes verbatim; no JSON, no re-serialisation."""

    def encode(self, obj: Any) -> bytes:
        record = obj["record"]
        assert isinstance(record, bytes)
        return record

    def decode(self, data: bytes) -> Any:
        return {"record": bytes(data)}


class LedgerApplication(Application[uuid.UUID]):
    name = "neikong"

    def construct_transcoder(self) -> Transcoder:
        return RecordTranscoder()


RECORD_TOPIC = get_topic(RecordedEvent)


@dataclass(frozen=True)
class StoreConfig:
    """Where the events live: `sqlite:///path/ledger.db` or `postgresql://user:pw@host/db`."""

    url: str

    @property
    def dialect(self) -> Dialect:
        return "postgres" if self.url.startswith(("postgres://", "postgresql://")) else "sqlite"

    @property
    def sqlite_path(self) -> Path:
        return Path(self.url.removeprefix("sqlite:///").removeprefix("sqlite://"))

    def eventsourcing_env(self) -> dict[str, str]:
        if self.dialect == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(self.sqlite_path),
                "SQLITE_LOCK_TIMEOUT": "30",
                "APPLICATION_RECORDER_TOPIC": get_topic(LedgerSQLiteRecorder),
            }
        parsed = urlparse(self.url)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": parsed.path.lstrip("/"),
            "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parsed.port or 5432),
            "POSTGRES_USER": unquote(parsed.username or ""),
            "POSTGRES_PASSWORD": unquote(parsed.password or ""),
            "POSTGRES_LOCK_TIMEOUT": "30",
            "POSTGRES_POOL_SIZE": "2",
            "APPLICATION_RECORDER_TOPIC": get_topic(LedgerPostgresRecorder),
        }

    @property
    def events_table(self) -> str:
        return "stored_events" if self.dialect == "sqlite" else "neikong_events"

    def redacted(self) -> str:
        parsed = urlparse(self.url)
        if parsed.password:
            return self.url.replace(f":{parsed.password}@", ":***@")
        return self.url


@dataclass(frozen=True, slots=True)
class StoredRow:
    position: int
    stream_id: str  # hex of the aggregate UUID
    version: int
    record: bytes


@dataclass(frozen=True)
class StreamInfo:
    """The head of a stream, derived from its last stored event."""

    name: str
    length: int
    head_digest: bytes
    closed: bool
    last_position: int


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, IntegrityError):
        return ConflictError(f"a concurrent writer appended first: {exc}")
    return StoreError(f"event store failed: {exc}")


class LedgerStore:
    """Appends records atomically with their side rows; reads positions, streams, tables."""

    PAGE: ClassVar[int] = 1000

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.dialect: Dialect = config.dialect
        try:
            self.app = LedgerApplication(env=config.eventsourcing_env())
        except (PersistenceError, OSError) as exc:
            raise StoreError(f"cannot open the event store {config.redacted()}: {exc}") from exc
        self.recorder: Any = self.app.recorder

    def close(self) -> None:
        self.app.close()

    # -- writing ---------------------------------------------------------------------------

    def append(self, events: Sequence[tuple[str, int, bytes]], side: SideWrites) -> list[int]:
        """Append (stream, stream_seq, record) in order, with `side`; return positions."""
        if not events:
            self.write_side_only(side)
            return []
        # The transcoder is a pass-through, so the stored events are built directly (the same
        # objects the application's mapper would make) and handed to its recorder in one call.
        stored = [StoredEvent(stream_uuid(s), seq, RECORD_TOPIC, rec) for s, seq, rec in events]
        try:
            ids = self.recorder.insert_events(stored, side=side)
        except ConflictError:
            raise
        except (PersistenceError, sqlite3.Error) as exc:
            raise _translate(exc) from exc
        return list(ids or [])

    def write_side_only(self, side: SideWrites) -> None:
        if side.empty:
            return
        with self._transaction(commit=True) as cursor:
            write_side(cursor, self.dialect, side, [])

    # -- reading ---------------------------------------------------------------------------

    def max_position(self) -> int:
        try:
            return int(self.recorder.max_notification_id() or 0)
        except PersistenceError as exc:
            raise _translate(exc) from exc

    def read(self, start: int, limit: int, stop: int | None = None) -> list[StoredRow]:
        try:
            rows = self.recorder.select_notifications(start, limit, stop)
        except PersistenceError as exc:
            raise _translate(exc) from exc
        return [
            StoredRow(n.id, uuid.UUID(str(n.originator_id)).hex, n.originator_version, n.state)
            for n in rows
        ]

    def iter_log(self, start: int = 1, stop: int | None = None) -> Iterator[StoredRow]:
        while True:
            page = self.read(start, self.PAGE, stop)
            yield from page
            if len(page) < self.PAGE:
                return
            start = page[-1].position + 1

    def stream_records(self, stream: str, *, after: int = 0) -> list[bytes]:
        try:
            stored = self.recorder.select_events(stream_uuid(stream), gt=after or None)
        except PersistenceError as exc:
            raise _translate(exc) from exc
        return [bytes(s.state) for s in stored]

    def stream_record(self, stream: str, seq: int) -> bytes | None:
        stored = self.recorder.select_events(stream_uuid(stream), gt=seq - 1, lte=seq)
        return bytes(stored[0].state) if stored else None

    def stream_info(self, stream: str) -> StreamInfo | None:
        return self.stream_infos([stream]).get(stream)

    def stream_infos(self, names: Sequence[str]) -> dict[str, StreamInfo]:
        """Head of each named stream that exists, derived from its last stored event."""
        found: dict[str, StreamInfo] = {}
        for i in range(0, len(names), 500):
            chunk = list(names[i : i + 500])
            ids = [self._sid(stream_uuid(n)) for n in chunk]
            marks = ",".join("?" * len(ids))
            rows = self._query(self._heads_sql(f"WHERE originator_id IN ({marks})"), ids)
            by_id = {self._sid(stream_uuid(n)): n for n in chunk}
            for row in rows:
                info = _head_info(row, by_id.get(row[0]))
                if info is not None:
                    found[info.name] = info
        return found

    def streams(self, prefix: str = "") -> list[StreamInfo]:
        """Every stream (name starting with `prefix`) with its length and state, by name."""
        infos = [_head_info(row, None) for row in self._query(self._heads_sql(""))]
        return sorted(
            (i for i in infos if i is not None and i.name.startswith(prefix)),
            key=lambda i: i.name,
        )

    def _sid(self, sid: uuid.UUID) -> Any:
        return sid.hex if self.dialect == "sqlite" else sid

    def _heads_sql(self, where: str) -> str:
        pos = "rowid" if self.dialect == "sqlite" else "notification_id"
        table = self.config.events_table
        return (
            f"SELECT e.originator_id, e.originator_version, e.{pos}, e.state FROM {table} e"
            f" JOIN (SELECT originator_id, MAX(originator_version) AS v FROM {table} {where}"
            " GROUP BY originator_id) m"
            " ON e.originator_id = m.originator_id AND e.originator_version = m.v"
        )

    def stream_rows(self, stream: str) -> list[tuple[int, bytes]]:
        """(position, record) of every event of `stream`, in stream order."""
        pos = "rowid" if self.dialect == "sqlite" else "notification_id"
        sid: Any = stream_uuid(stream)
        sid = sid.hex if self.dialect == "sqlite" else sid
        rows = self._query(
            f"SELECT {pos}, state FROM {self.config.events_table} WHERE originator_id = ?"
            " ORDER BY originator_version",
            (sid,),
        )
        return [(int(p), bytes(r)) for p, r in rows]

    def event_ids(self, event_ids: Sequence[str]) -> dict[str, tuple[int, bytes]]:
        """Position and body digest of each already-appended event id among `event_ids`."""
        found: dict[str, tuple[int, bytes]] = {}
        for i in range(0, len(event_ids), 500):
            keys = [bytes.fromhex(e.replace("-", "")) for e in event_ids[i : i + 500]]
            marks = ",".join("?" * len(keys))
            for eid, pos, dig in self._query(
                f"SELECT event_id, position, digest FROM nk_event_ids WHERE event_id IN ({marks})",
                keys,
            ):
                found[str(uuid.UUID(bytes=bytes(eid)))] = (int(pos), bytes(dig))
        return found

    def producer_heads(self) -> dict[str, int]:
        return {s: int(q) for s, q in self._query("SELECT system, last_seq FROM nk_producers")}

    def parked(self) -> list[ParkedRow]:
        rows = self._query(
            "SELECT digest, stream, stream_seq, system, producer_seq, event_id, record, parked_at"
            " FROM nk_parked ORDER BY parked_at, stream, stream_seq"
        )
        return [
            ParkedRow(bytes(r[0]), r[1], int(r[2]), r[3], int(r[4]), r[5], bytes(r[6]), float(r[7]))
            for r in rows
        ]

    def dead_letters(self, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT id, received_at, reason, detail, digest, record, source FROM nk_dead_letters"
            " ORDER BY id LIMIT ?",
            (limit,),
        )
        return [
            {
                "id": int(r[0]),
                "received_at": float(r[1]),
                "reason": r[2],
                "detail": r[3],
                "digest": bytes(r[4]).hex(),
                "record": bytes(r[5]),
                "source": r[6],
            }
            for r in rows
        ]

    def dead_letter_counts(self) -> dict[str, int]:
        rows = self._query("SELECT reason, COUNT(*) FROM nk_dead_letters GROUP BY reason")
        return {r: int(n) for r, n in rows}

    def get_meta(self) -> dict[str, str]:
        return dict(self._query("SELECT key, value FROM nk_meta"))

    def set_meta(self, values: dict[str, str]) -> None:
        statement = (
            "INSERT INTO nk_meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        with self._transaction(commit=True) as cursor:
            cursor.executemany(self._sql(statement), list(values.items()))

    # -- plumbing --------------------------------------------------------------------------

    def _sql(self, statement: str) -> str:
        return statement if self.dialect == "sqlite" else statement.replace("?", "%s")

    def _query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._transaction(commit=False) as cursor:
            cursor.execute(self._sql(statement), list(params))
            return [
                tuple(row.values()) if isinstance(row, dict) else tuple(row)
                for row in cursor.fetchall()
            ]

    def _transaction(self, *, commit: bool) -> Any:
        datastore = self.recorder.datastore
        if self.dialect == "sqlite":
            return datastore.transaction(commit=commit)
        return _PgTransaction(datastore, commit=commit)


class _PgTransaction:
    def __init__(self, datastore: Any, *, commit: bool) -> None:
        self.datastore = datastore
        self.commit = commit

    def __enter__(self) -> Any:
        self._conn_cm = self.datastore.get_connection()
        conn = self._conn_cm.__enter__()
        self._tx = conn.transaction(force_rollback=not self.commit)
        self._tx.__enter__()
        self._cursor = conn.cursor()
        return self._cursor

    def __exit__(self, *exc: Any) -> None:
        try:
            self._cursor.close()
            self._tx.__exit__(*exc)
        finally:
            self._conn_cm.__exit__(*exc)


def _head_info(row: tuple[Any, ...], name: str | None) -> StreamInfo | None:
    """StreamInfo from (originator_id, version, position, record); None if unreadable."""
    try:
        body = orjson.loads(bytes(row[3])[HEADER_LEN:])
        stream = name or str(body["stream"])
        closed = body["type"] in TERMINAL_TYPES
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return StreamInfo(
        name=stream,
        length=int(row[1]),
        head_digest=hashlib.sha256(bytes(row[3])[HEADER_LEN:]).digest(),
        closed=closed,
        last_position=int(row[2]),
    )
