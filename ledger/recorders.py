"""eventsourcing recorders that also write the side tables in the same transaction.

Guarantees (both backends):
- A batch of events, its side-table rows and its dead letters commit together or not at all.
- Positions (notification ids) are dense: 1, 2, 3… with no holes, even on PostgreSQL where a
  `bigserial` would skip values after a rolled-back insert. Ids are assigned under the
  table's EXCLUSIVE lock as MAX+1…MAX+n.
- If another writer appended since the batch was checked (`expected_max_position`), the
  insert MUST fail with `ConflictError` so the appender re-reads heads and retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from ledger.errors import ConflictError
from ledger.side_tables import SideWrites, ddl, write_side

__all__ = ["LedgerPostgresRecorder", "LedgerSQLiteRecorder"]


def _side(kwargs: dict[str, Any]) -> SideWrites | None:
    side = kwargs.get("side")
    return side if isinstance(side, SideWrites) else None


class LedgerSQLiteRecorder(SQLiteApplicationRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + ddl("sqlite")

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        side = _side(kwargs)
        if side is not None:
            current = self._max_notification_id(c) or 0
            if current != side.expected_max_position:
                raise ConflictError(
                    f"log grew from {side.expected_max_position} to {current} during the batch"
                )
        else:
            current = self._max_notification_id(c) or 0
        # Positions are assigned explicitly (we hold the write lock): dense, and one
        # executemany instead of a statement per row.
        ids = list(range(current + 1, current + 1 + len(stored_events)))
        c.executemany(
            f"INSERT INTO {self.events_table_name}"
            " (rowid, originator_id, originator_version, topic, state) VALUES (?,?,?,?,?)",
            [
                (
                    i,
                    s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
                    s.originator_version,
                    s.topic,
                    s.state,
                )
                for i, s in zip(ids, stored_events, strict=True)
            ],
        )
        if side is not None:
            write_side(c, "sqlite", side, ids)
        return ids


class LedgerPostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.sql_create_statements.extend(SQL(s).format() for s in ddl("postgres"))
        table = SQL("{0}.{1}").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name)
        )
        self._dense_insert = SQL(
            "INSERT INTO {t} (originator_id, originator_version, topic, state, notification_id)"
            " SELECT e.originator_id, e.originator_version, e.topic, e.state,"
            " (SELECT COALESCE(MAX(notification_id), 0) FROM {t}) + e.n"
            " FROM unnest(%s::{ty}[]) WITH ORDINALITY AS e(originator_id, originator_version,"
            " topic, state, n) RETURNING notification_id"
        ).format(t=table, ty=Identifier(self.datastore.schema, self.stored_event_type_name))
        self._max_id = SQL("SELECT COALESCE(MAX(notification_id), 0) AS m FROM {t}").format(t=table)

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        self._lock_table(curs)
        side = _side(kwargs)
        if side is not None:
            curs.execute(self._max_id)
            row = curs.fetchone()
            current = int(row["m"]) if row else 0
            if current != side.expected_max_position:
                raise ConflictError(
                    f"log grew from {side.expected_max_position} to {current} during the batch"
                )
        events = [
            self.construct_pg_stored_event(s.originator_id, s.originator_version, s.topic, s.state)
            for s in stored_events
        ]
        curs.execute(self._dense_insert, (events,))

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = sorted(int(row["notification_id"]) for row in curs.fetchall())
        side = _side(kwargs)
        if side is not None:
            write_side(curs, "postgres", side, ids)
        return ids
