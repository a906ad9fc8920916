"""Read-only access to the stored events, by position or in stream order.

Each `verify` worker opens its own `LogReader` (a read-only SQLite connection, or its own
PostgreSQL connection): it reads the events table directly, never the side tables.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

from ledger.store import StoreConfig, stream_uuid

__all__ = ["LogReader", "Row"]

Row = tuple[int, str, int, bytes]  # position, stream id hex, version, record


class LogReader:
    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.sqlite = config.dialect == "sqlite"
        if self.sqlite:
            self.conn: Any = sqlite3.connect(f"file:{config.sqlite_path}?mode=ro", uri=True)
        else:
            import psycopg

            self.conn = psycopg.connect(config.url, autocommit=True)
        self.table = config.events_table
        self.pos = "rowid" if self.sqlite else "notification_id"

    def _rows(self, sql: str, params: tuple[Any, ...]) -> Iterator[Row]:
        if not self.sqlite:
            sql = sql.replace("?", "%s")
        cursor = self.conn.cursor()
        cursor.execute(sql, params)
        while True:
            batch = cursor.fetchmany(2000)
            if not batch:
                return
            if self.sqlite:  # rowid and version come as int, the id as text, the state as bytes
                yield from batch
                continue
            for p, oid, ver, state in batch:
                yield int(p), oid if isinstance(oid, str) else oid.hex, int(ver), bytes(state)

    def by_position(self, lo: int, hi: int) -> Iterator[Row]:
        return self._rows(
            f"SELECT {self.pos}, originator_id, originator_version, state FROM {self.table}"
            f" WHERE {self.pos} >= ? AND {self.pos} < ? ORDER BY {self.pos}",
            (lo, hi),
        )

    def by_stream_range(self, lo: str, hi: str | None) -> Iterator[Row]:
        low: Any = lo if self.sqlite else uuid.UUID(lo)
        params: tuple[Any, ...]
        if hi is None:
            where, params = "originator_id >= ?", (low,)
        else:
            high: Any = hi if self.sqlite else uuid.UUID(hi)
            where, params = "originator_id >= ? AND originator_id < ?", (low, high)
        return self._rows(
            f"SELECT {self.pos}, originator_id, originator_version, state FROM {self.table}"
            f" WHERE {where} ORDER BY originator_id, originator_version",
            params,
        )

    def stream(self, stream: str) -> Iterator[Row]:
        sid = stream_uuid(stream)
        return self._rows(
            f"SELECT {self.pos}, originator_id, originator_version, state FROM {self.table}"
            " WHERE originator_id = ? ORDER BY originator_version",
            (sid.hex if self.sqlite else sid,),
        )

    def max_position(self) -> int:
        cursor = self.conn.cursor()
        cursor.execute(f"SELECT MAX({self.pos}) FROM {self.table}")
        row = cursor.fetchone()
        return int(row[0] or 0)

    def close(self) -> None:
        self.conn.close()
