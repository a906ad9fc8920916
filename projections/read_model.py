"""Read-model storage: one table per projection, its refs and its tracking row.

URLs (one class, chosen by URL):

- `sqlite:///PATH` — a file (embedded default `<ledger dir>/projections.db`), WAL journal,
  `synchronous=FULL`, `secure_delete=FAST`.
- `sqlite://:memory:` — a scratch model (`neikong rebuild --check`); gone on close.
- `postgresql://…` — the ledger's PostgreSQL database, tables of its own (a `search_path`
  given in the URL's `options` is honoured).

Tables::

    proj_<name>(key TEXT PRIMARY KEY, doc BLOB/BYTEA, <index columns>)   one row per document
    proj_refs(projection, key, position)    which log positions touched which key (for `--at`)
    proj_tracking(projection PRIMARY KEY, version, position)

Guarantees:

- `commit_batch` MUST write documents, index values, refs and every projection's new tracking
  position in ONE transaction, and only if each projection's tracking row still holds the
  position the batch started from (compare-and-set). Otherwise it MUST write nothing and raise
  `TrackingConflict`; so two runners on one model never apply an event twice.
- A projection whose stored version differs from its code's `version` MUST be reset to empty
  (table, refs, position 0) by `ensure`.
- Keys are ordered by their UTF-8 bytes (`COLLATE "C"` on PostgreSQL, SQLite's BINARY
  collation); `iter_docs` MUST yield them in that order (state roots depend on it).
"""

# ruff: noqa: S608  (table and column names are checked identifiers; values are parameters)
from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ledger.errors import ConflictError, NeikongError, StoreError

if TYPE_CHECKING:
    from projections.base import Projection

__all__ = [
    "BatchWrite",
    "ReadModel",
    "ReadModelError",
    "TrackingConflict",
    "UnknownProjection",
    "read_model_url",
]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
_RESERVED = {"key", "doc"}
_CHUNK = 500

IndexValue = str | int | None


class ReadModelError(StoreError):
    """The read-model database failed (unreachable, disk full, bad index value …)."""


class TrackingConflict(ConflictError):
    """Another runner moved a projection's tracking position first; re-read and retry."""


class UnknownProjection(NeikongError, KeyError):
    """No projection of that name is registered with this runner or model."""


@dataclass
class BatchWrite:
    """What one catch-up batch changes: rows per projection, refs, tracking moves."""

    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)  # (key, doc, *index)
    refs: list[tuple[str, str, int]] = field(default_factory=list)  # (projection, key, position)
    moves: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (from, to)


def read_model_url(ledger_dir: Path, store_url: str) -> str:
    """The default read-model URL of a ledger: its PostgreSQL database, else projections.db."""
    if store_url.startswith(("postgres://", "postgresql://")):
        return store_url
    return f"sqlite:///{ledger_dir / 'projections.db'}"


def _check_name(kind: str, name: str) -> str:
    if not _NAME.match(name) or name in _RESERVED:
        raise NeikongError(f"{kind} name {name!r}: use [a-z][a-z0-9_]* (not key/doc)")
    return name


class ReadModel:
    """The storage of every projection's documents, behind one URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect: Literal["sqlite", "postgres"] = (
            "postgres" if url.startswith(("postgres://", "postgresql://")) else "sqlite"
        )
        self._columns: dict[str, tuple[tuple[str, str], ...]] = {}
        try:
            if self.dialect == "sqlite":
                path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
                self.conn: Any = sqlite3.connect(
                    path, isolation_level=None, check_same_thread=False, timeout=30
                )
                if path != ":memory:":
                    self.conn.execute("PRAGMA journal_mode=WAL")
                    self.conn.execute("PRAGMA synchronous=FULL")
                # Freed pages are not zeroed (in-page deleted cells still are): this build
                # zeroes every page of a dropped table by default, which made a rebuild's
                # reset cost ~3 s per 300k events. The read model holds no personal value
                # (projections store commitments only) and nothing the ledger does not hold.
                self.conn.execute("PRAGMA secure_delete=FAST")
            else:
                import psycopg

                self.conn = psycopg.connect(url, autocommit=True)
            self._create_common()
        except (sqlite3.Error, OSError) as exc:
            raise ReadModelError(f"cannot open the read model {self.redacted()}: {exc}") from exc
        except Exception as exc:
            if _is_pg_error(exc):
                raise ReadModelError(
                    f"cannot open the read model {self.redacted()}: {exc}"
                ) from exc
            raise

    def redacted(self) -> str:
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", self.url)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ReadModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ----------------------------------------------------------------------------

    def _sql(self, statement: str) -> str:
        return statement if self.dialect == "sqlite" else statement.replace("?", "%s")

    def _text(self) -> str:
        return "TEXT" if self.dialect == "sqlite" else 'TEXT COLLATE "C"'

    def _without_rowid(self) -> str:
        return " WITHOUT ROWID" if self.dialect == "sqlite" else ""

    def _ddl_lock(self, cur: Any) -> None:
        """PostgreSQL: serialise DDL of concurrent runners (CREATE … IF NOT EXISTS races)."""
        if self.dialect == "postgres":
            cur.execute("SELECT pg_advisory_xact_lock(7013170566)")

    def _create_refs(self, cur: Any) -> None:
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS proj_refs (projection TEXT NOT NULL,"
            f" key {self._text()} NOT NULL, position BIGINT NOT NULL,"
            f" PRIMARY KEY (projection, key, position)){self._without_rowid()}"
        )

    def _create_common(self) -> None:
        with self._tx() as cur:
            self._ddl_lock(cur)
            self._create_refs(cur)
            cur.execute(
                "CREATE TABLE IF NOT EXISTS proj_tracking (projection TEXT PRIMARY KEY,"
                " version INTEGER NOT NULL, position BIGINT NOT NULL)"
            )

    def _create_table(
        self, cur: Any, name: str, columns: tuple[tuple[str, str], ...], indexes: bool = True
    ) -> None:
        blob = "BLOB" if self.dialect == "sqlite" else "BYTEA"
        defs = []
        for column, kind in columns:
            _check_name("column", column)
            if kind not in ("text", "int"):
                raise NeikongError(f"column {name}.{column}: type {kind!r} is not text or int")
            defs.append(f", {column} {'TEXT' if kind == 'text' else 'BIGINT'}")
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS proj_{name} (key {self._text()} PRIMARY KEY,"
            f" doc {blob} NOT NULL{''.join(defs)})"
        )
        if indexes:
            self._create_indexes(cur, name, columns)

    def _create_indexes(self, cur: Any, name: str, columns: tuple[tuple[str, str], ...]) -> None:
        for column, _ in columns:
            cur.execute(
                f"CREATE INDEX IF NOT EXISTS proj_{name}_{column} ON proj_{name} ({column})"
            )

    def create_indexes(self, projection: Projection) -> None:
        """Create the projection's secondary indexes that are missing (a rebuild defers them
        to its end: building an index once is cheaper than maintaining it row by row).
        A shard (`projections.shards.Shard`, which names its `parent`) gets none: they are
        built on the parent after `merge_parts`."""
        if getattr(projection, "parent", None):
            return
        name = _check_name("projection", projection.name)
        with self._tx() as cur:
            self._ddl_lock(cur)
            self._create_indexes(cur, name, tuple(projection.columns))

    def ensure(self, projections: Sequence[Projection]) -> list[str]:
        """Create missing tables and tracking rows; reset projections whose version changed.

        Returns the names that were reset (their stored version differed from the code's).
        """
        reset: list[str] = []
        for p in projections:
            name = _check_name("projection", p.name)
            self._columns[name] = tuple(p.columns)
            with self._tx() as cur:
                self._ddl_lock(cur)
                indexed = not getattr(p, "parent", None)  # shards: see create_indexes
                self._create_table(cur, name, tuple(p.columns), indexed)
                cur.execute(
                    self._sql("SELECT version FROM proj_tracking WHERE projection = ?"), (name,)
                )
                row = cur.fetchone()
                if row is None:
                    cur.execute(
                        self._sql(
                            "INSERT INTO proj_tracking (projection, version, position)"
                            " VALUES (?, ?, 0) ON CONFLICT (projection) DO NOTHING"
                        ),
                        (name, p.version),
                    )
                elif int(row[0]) != p.version:
                    self._reset(cur, name, tuple(p.columns), p.version)
                    reset.append(name)
        return reset

    def reset(self, projection: Projection, *, indexes: bool = True) -> None:
        """Empty one projection (table, refs) and set its tracking to (version, 0).

        `indexes=False` leaves the secondary indexes out (a rebuild creates them at its end
        with `create_indexes`; `ensure` creates any that are missing)."""
        name = _check_name("projection", projection.name)
        self._columns[name] = tuple(projection.columns)
        with self._tx() as cur:
            self._ddl_lock(cur)
            self._reset(cur, name, tuple(projection.columns), projection.version, indexes)

    def reset_all(self, projections: Sequence[Projection], *, indexes: bool = True) -> None:
        """`reset` each of `projections` in one transaction. When they are every projection
        the model tracks, the refs table is dropped and created again instead of being emptied
        row by row (a full rebuild: the same result, far cheaper)."""
        chosen = {_check_name("projection", p.name): p for p in projections}
        with self._tx() as cur:
            self._ddl_lock(cur)
            cur.execute("SELECT projection FROM proj_tracking")
            whole = {str(r[0]) for r in cur.fetchall()} <= set(chosen)
            if whole:
                cur.execute("DROP TABLE IF EXISTS proj_refs")
                self._create_refs(cur)
            for name, p in chosen.items():
                self._columns[name] = tuple(p.columns)
                self._reset(cur, name, tuple(p.columns), p.version, indexes, refs=not whole)

    def _reset(
        self,
        cur: Any,
        name: str,
        columns: tuple[tuple[str, str], ...],
        version: int,
        indexes: bool = True,
        *,
        refs: bool = True,
    ) -> None:
        cur.execute(f"DROP TABLE IF EXISTS proj_{name}")
        self._create_table(cur, name, columns, indexes)
        if refs:
            cur.execute(self._sql("DELETE FROM proj_refs WHERE projection = ?"), (name,))
        cur.execute(
            self._sql(
                "INSERT INTO proj_tracking (projection, version, position) VALUES (?, ?, 0)"
                " ON CONFLICT (projection) DO UPDATE SET version = excluded.version, position = 0"
            ),
            (name, version),
        )

    def drop_shards(self, names: Sequence[str]) -> None:
        """Drop the tables, refs and tracking rows of `names` (stray shards of a crash)."""
        with self._tx() as cur:
            self._ddl_lock(cur)
            for name in names:
                _check_name("projection", name)
                cur.execute(f"DROP TABLE IF EXISTS proj_{name}")
                cur.execute(self._sql("DELETE FROM proj_refs WHERE projection = ?"), (name,))
                cur.execute(self._sql("DELETE FROM proj_tracking WHERE projection = ?"), (name,))
                self._columns.pop(name, None)

    def merge_parts(self, projection: Projection, parts: Sequence[str]) -> int:
        """Move the rows and refs of the shard projections `parts` (same columns, disjoint
        keys, one common tracked position) into `projection`, which MUST be empty at
        position 0, and drop the shards: one transaction. Returns the position reached."""
        name = _check_name("projection", projection.name)
        with self._tx() as cur:
            self._ddl_lock(cur)
            cur.execute("SELECT projection, version, position FROM proj_tracking")
            tracking = {str(n): (int(v), int(p)) for n, v, p in cur.fetchall()}
            states = {tracking.get(part) for part in parts}
            if len(states) != 1 or None in states or tracking.get(name, (0, -1))[1] != 0:
                raise TrackingConflict(
                    f"cannot merge {list(parts)} into {name!r}: positions {tracking}"
                )
            version, position = next(iter(states))  # type: ignore[misc]
            if version != projection.version:
                raise TrackingConflict(f"shards of {name!r} are at version {version}")
            columns = ", ".join(["key", "doc", *(c for c, _ in projection.columns)])
            first, rest = parts[0], parts[1:]
            for part in rest:
                cur.execute(
                    f"INSERT INTO proj_{first} ({columns}) SELECT {columns} FROM proj_{part}"
                )
                cur.execute(f"DROP TABLE proj_{part}")
            cur.execute(f"DROP TABLE proj_{name}")
            cur.execute(f"ALTER TABLE proj_{first} RENAME TO proj_{name}")
            if self.dialect == "postgres":  # index names are per schema: free the shard's
                cur.execute(f"ALTER INDEX proj_{first}_pkey RENAME TO proj_{name}_pkey")
            for part in parts:
                cur.execute(
                    self._sql("UPDATE proj_refs SET projection = ? WHERE projection = ?"),
                    (name, part),
                )
                cur.execute(self._sql("DELETE FROM proj_tracking WHERE projection = ?"), (part,))
                self._columns.pop(part, None)
            cur.execute(
                self._sql("UPDATE proj_tracking SET position = ? WHERE projection = ?"),
                (position, name),
            )
        return int(position)

    # -- tracking and batches --------------------------------------------------------------

    def tracking(self) -> dict[str, tuple[int, int]]:
        """projection -> (version, position) as committed."""
        rows = self._fetch("SELECT projection, version, position FROM proj_tracking")
        return {str(n): (int(v), int(p)) for n, v, p in rows}

    def position(self, name: str) -> int:
        found = self.tracking().get(name)
        if found is None:
            raise UnknownProjection(f"projection {name!r} has no tracking row in this model")
        return found[1]

    def commit_batch(self, batch: BatchWrite) -> None:
        """Apply one batch atomically, guarded by compare-and-set on every tracking row."""
        with self._tx(write=True) as cur:
            for name, (old, new) in sorted(batch.moves.items()):
                cur.execute(
                    self._sql(
                        "UPDATE proj_tracking SET position = ?"
                        " WHERE projection = ? AND position = ?"
                    ),
                    (new, name, old),
                )
                if cur.rowcount != 1:
                    raise TrackingConflict(
                        f"projection {name!r} is no longer at position {old}: another runner"
                        " advanced or reset it"
                    )
            for name, rows in batch.rows.items():
                if not rows:
                    continue
                columns = [c for c, _ in self._columns[name]]
                names = ", ".join(["key", "doc", *columns])
                marks = ", ".join("?" * (2 + len(columns)))
                updates = ", ".join(f"{c} = excluded.{c}" for c in ["doc", *columns])
                cur.executemany(
                    self._sql(
                        f"INSERT INTO proj_{name} ({names}) VALUES ({marks})"
                        f" ON CONFLICT (key) DO UPDATE SET {updates}"
                    ),
                    rows,
                )
            if batch.refs:
                if self.dialect == "postgres":
                    with cur.copy("COPY proj_refs (projection, key, position) FROM STDIN") as cp:
                        for ref in batch.refs:
                            cp.write_row(ref)
                else:
                    cur.executemany(
                        "INSERT INTO proj_refs (projection, key, position) VALUES (?, ?, ?)",
                        batch.refs,
                    )

    # -- reading ---------------------------------------------------------------------------

    def load(self, name: str, keys: Sequence[str]) -> dict[str, bytes]:
        """The stored document bytes of each of `keys` that exists."""
        table = self._table(name)
        found: dict[str, bytes] = {}
        for i in range(0, len(keys), _CHUNK):
            chunk = list(keys[i : i + _CHUNK])
            marks = ", ".join("?" * len(chunk))
            for key, doc in self._fetch(
                f"SELECT key, doc FROM {table} WHERE key IN ({marks})", chunk
            ):
                found[str(key)] = bytes(doc)
        return found

    def doc(self, name: str, key: str) -> bytes | None:
        rows = self._fetch(f"SELECT doc FROM {self._table(name)} WHERE key = ?", (key,))
        return bytes(rows[0][0]) if rows else None

    def _column(self, name: str, column: str) -> str:
        if column != "key" and column not in {c for c, _ in self._columns.get(name, ())}:
            raise NeikongError(f"projection {name!r} has no index column {column!r}")
        return column

    def _where(self, name: str, where: Mapping[str, IndexValue]) -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        for column, value in sorted(where.items()):
            self._column(name, column)
            if value is None:
                parts.append(f"{column} IS NULL")
            else:
                parts.append(f"{column} = ?")
                params.append(value)
        return (" WHERE " + " AND ".join(parts)) if parts else "", params

    def query(
        self,
        name: str,
        where: Mapping[str, IndexValue] | None = None,
        order_by: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[tuple[str, bytes]]:
        """(key, doc bytes) of the documents matching `where` (column = value, all of them).

        `order_by` is an index column or `key`, `-column` for descending; ties by key.
        """
        table = self._table(name)
        clause, params = self._where(name, where or {})
        order = "key"
        if order_by:
            column = self._column(name, order_by.lstrip("-"))
            direction = "DESC" if order_by.startswith("-") else "ASC"
            order = f"{column} {direction}, key" if column != "key" else f"key {direction}"
        sql = f"SELECT key, doc FROM {table}{clause} ORDER BY {order}"
        if limit is not None or offset:
            sql += (
                f" LIMIT {-1 if limit is None else int(limit)}" if self.dialect == "sqlite" else ""
            )
            if self.dialect == "postgres" and limit is not None:
                sql += f" LIMIT {int(limit)}"
            sql += f" OFFSET {int(offset)}"
        return [(str(k), bytes(d)) for k, d in self._fetch(sql, params)]

    def count(self, name: str, where: Mapping[str, IndexValue] | None = None) -> int:
        clause, params = self._where(name, where or {})
        return int(self._fetch(f"SELECT COUNT(*) FROM {self._table(name)}{clause}", params)[0][0])

    def refs(self, name: str, key: str, upto: int | None = None) -> list[int]:
        """Positions of the events routed to `key` (at most `upto`), ascending."""
        sql = "SELECT position FROM proj_refs WHERE projection = ? AND key = ?"
        params: list[Any] = [name, key]
        if upto is not None:
            sql += " AND position <= ?"
            params.append(upto)
        return [int(r[0]) for r in self._fetch(sql + " ORDER BY position", params)]

    def keys_touched_after(self, name: str, position: int) -> set[str]:
        rows = self._fetch(
            "SELECT DISTINCT key FROM proj_refs WHERE projection = ? AND position > ?",
            (name, position),
        )
        return {str(r[0]) for r in rows}

    def iter_docs(self, name: str, page: int = 5000) -> Iterator[tuple[str, bytes]]:
        """Every (key, doc bytes) in UTF-8 byte order of the key, read in pages."""
        table = self._table(name)
        after: str | None = None
        while True:
            if after is None:
                rows = self._fetch(f"SELECT key, doc FROM {table} ORDER BY key LIMIT {page}")
            else:
                rows = self._fetch(
                    f"SELECT key, doc FROM {table} WHERE key > ? ORDER BY key LIMIT {page}",
                    (after,),
                )
            for key, doc in rows:
                yield str(key), bytes(doc)
            if len(rows) < page:
                return
            after = str(rows[-1][0])

    def set_doc(self, name: str, key: str, doc: bytes) -> None:
        """Overwrite one stored document (repair tooling and tamper tests; not for runners)."""
        with self._tx(write=True) as cur:
            cur.execute(
                self._sql(f"UPDATE {self._table(name)} SET doc = ? WHERE key = ?"), (doc, key)
            )

    def drop(self, name: str) -> None:
        """Remove a projection entirely (table, refs, tracking row)."""
        _check_name("projection", name)
        with self._tx(write=True) as cur:
            self._ddl_lock(cur)
            cur.execute(f"DROP TABLE IF EXISTS proj_{name}")
            cur.execute(self._sql("DELETE FROM proj_refs WHERE projection = ?"), (name,))
            cur.execute(self._sql("DELETE FROM proj_tracking WHERE projection = ?"), (name,))
        self._columns.pop(name, None)

    def snapshot(self) -> _Transaction:
        """A read transaction: every read inside it sees one committed state."""
        return _Transaction(self, write=False)

    # -- plumbing --------------------------------------------------------------------------

    def _table(self, name: str) -> str:
        if name not in self._columns and name in self.tracking():
            self._columns[name] = self._stored_columns(name)
        if name not in self._columns:
            raise UnknownProjection(f"projection {name!r} is not set up in this read model")
        return f"proj_{name}"

    def _stored_columns(self, name: str) -> tuple[tuple[str, str], ...]:
        """The index columns of an existing table (a model opened without its projection)."""
        if self.dialect == "sqlite":
            rows = self._fetch(f"SELECT name, type FROM pragma_table_info('proj_{name}')")
        else:
            rows = self._fetch(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_name = ? AND table_schema = current_schema()"
                " ORDER BY ordinal_position",
                (f"proj_{name}",),
            )
        return tuple(
            (str(c), "int" if "int" in str(t).lower() else "text")
            for c, t in rows
            if c not in _RESERVED
        )

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            cur = self.conn.cursor()
            try:
                cur.execute(self._sql(sql), list(params))
                return [tuple(r) for r in cur.fetchall()]
            finally:
                cur.close()
        except sqlite3.Error as exc:
            raise ReadModelError(f"read model query failed: {exc}") from exc
        except Exception as exc:
            if _is_pg_error(exc):
                raise ReadModelError(f"read model query failed: {exc}") from exc
            raise

    def _tx(self, *, write: bool = True) -> _Transaction:
        return _Transaction(self, write=write)


class _Transaction:
    """One transaction: SQLite `BEGIN IMMEDIATE` (writers serialise), psycopg transaction."""

    def __init__(self, model: ReadModel, *, write: bool) -> None:
        self.model = model
        self.write = write

    def __enter__(self) -> Any:
        conn = self.model.conn
        try:
            if self.model.dialect == "sqlite":
                conn.execute("BEGIN IMMEDIATE" if self.write else "BEGIN")
                self._cur = conn.cursor()
            else:
                self._pg_tx = conn.transaction()
                self._pg_tx.__enter__()
                self._cur = conn.cursor()
                if not self.write:
                    self._cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        except sqlite3.Error as exc:
            raise ReadModelError(f"read model transaction failed: {exc}") from exc
        except Exception as exc:
            if _is_pg_error(exc):
                raise ReadModelError(f"read model transaction failed: {exc}") from exc
            raise
        return self._cur

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        conn = self.model.conn
        try:
            self._cur.close()
            if self.model.dialect == "sqlite":
                conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
            else:
                self._pg_tx.__exit__(exc_type, exc, tb)
        except sqlite3.Error as error:
            if exc_type is None:
                raise ReadModelError(f"read model commit failed: {error}") from error
        except Exception as error:
            if exc_type is None and _is_pg_error(error):
                raise ReadModelError(f"read model commit failed: {error}") from error
            if exc_type is None:
                raise
        if exc_type is not None and (issubclass(exc_type, sqlite3.Error) or _is_pg_error(exc)):
            raise ReadModelError(f"read model write failed: {exc}") from exc


def _is_pg_error(exc: BaseException | None) -> bool:
    if exc is None:
        return False
    module = type(exc).__module__
    return module.startswith("psycopg")
