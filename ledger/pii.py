"""Personal data: salted commitments in the signed events, values in an erasable store.

A signed event never carries a personal value in clear (a spouse's name, an address, a
declared amount). Its envelope's `pii` map holds, per field, the commitment

    b64( SHA-256( salt ‖ RFC 8785 canonical bytes of the value ) )      (salt: 32 random bytes)

and the value with its salt lives here, in the PII store, keyed by the commitment. Guarantees:

- `get` MUST NOT return a value that does not match its commitment: a row whose value or salt
  was altered is reported as `PiiTampered` (the caller shows "tampered", never the value).
- `erase(official)` deletes every value and salt of that official's fields; afterwards the
  commitments in the log cannot be opened (the salt is gone, so a guessed value cannot be
  confirmed either), and `neikong verify` still passes because it never needed the values.
  SQLite runs with `secure_delete` and checkpoints its WAL after an erasure, so the freed pages
  are overwritten on disk.

Embedded ledgers keep the store in `DIR/pii.db` (mode 0600); a PostgreSQL ledger keeps it in
the table `nk_pii` of the same database.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from ledger.canonical import canonical_bytes
from ledger.errors import NeikongError, StoreError

__all__ = ["PiiStore", "PiiTampered", "PiiValue", "commitment"]

SALT_LEN = 32


class PiiTampered(NeikongError, ValueError):
    """A stored value or salt no longer matches the commitment signed in the log."""


def _is_database_error(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        return True
    module = type(exc).__module__
    return module.startswith("psycopg")


class PiiValue(NamedTuple):
    commitment: str
    official: str
    field: str
    value: Any


def commitment(value: Any, salt: bytes) -> str:
    """The commitment signed in an event's `pii` map for `value` under `salt`."""
    digest = hashlib.sha256(salt + canonical_bytes(value)).digest()
    return base64.b64encode(digest).decode("ascii")


class PiiStore:
    """The erasable store of personal values, on SQLite (a path) or PostgreSQL (a URL)."""

    def __init__(self, location: Path | str) -> None:
        text = str(location)
        self.postgres = text.startswith(("postgres://", "postgresql://"))
        self._mark = "%s" if self.postgres else "?"
        self._held: list[tuple[str, str, str, bytes, str]] = []
        if self.postgres:
            import psycopg

            self._conn: Any = psycopg.connect(text, autocommit=True)
        else:
            path = Path(text)
            if not path.exists():
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.close(fd)
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA secure_delete=ON")
        blob = "BYTEA" if self.postgres else "BLOB"
        self._execute(
            "CREATE TABLE IF NOT EXISTS nk_pii (commitment TEXT PRIMARY KEY,"
            f" official TEXT NOT NULL, field TEXT NOT NULL, salt {blob} NOT NULL,"
            " value TEXT NOT NULL)"
        )
        self._execute("CREATE INDEX IF NOT EXISTS nk_pii_official ON nk_pii (official)")

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            cursor = self._conn.cursor()
            cursor.execute(sql.replace("?", self._mark), params)
            rows: list[tuple[Any, ...]] = cursor.fetchall() if cursor.description else []
        except Exception as exc:  # sqlite3.Error / psycopg.Error, translated at the boundary
            if isinstance(exc, NeikongError) or not _is_database_error(exc):
                raise
            raise StoreError(f"the PII store failed: {exc}") from exc
        return rows

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self.postgres:
            with self._conn.transaction():
                yield
        else:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def commit(self, official: str, field: str, value: Any, salt: bytes | None = None) -> str:
        """Store `value` for `official`'s `field`; return the commitment to sign. Idempotent."""
        salt = salt if salt is not None else secrets.token_bytes(SALT_LEN)
        if len(salt) != SALT_LEN:
            raise NeikongError(f"a PII salt is {SALT_LEN} bytes, got {len(salt)}")
        made = commitment(value, salt)
        self._execute(
            "INSERT INTO nk_pii (commitment, official, field, salt, value) VALUES (?,?,?,?,?)"
            " ON CONFLICT (commitment) DO NOTHING",
            (made, official, field, salt, canonical_bytes(value).decode("utf-8")),
        )
        return made

    def commit_later(self, official: str, field: str, value: Any, salt: bytes | None = None) -> str:
        """Like `commit`, but held in memory until `flush()` writes all held values in one
        transaction. Callers MUST flush before the events carrying these commitments are
        appended, or a crash could leave a signed commitment whose value was never stored."""
        salt = salt if salt is not None else secrets.token_bytes(SALT_LEN)
        if len(salt) != SALT_LEN:
            raise NeikongError(f"a PII salt is {SALT_LEN} bytes, got {len(salt)}")
        made = commitment(value, salt)
        self._held.append((made, official, field, salt, canonical_bytes(value).decode("utf-8")))
        return made

    def flush(self) -> int:
        """Write every value held by `commit_later` durably (one transaction); return how many."""
        held, self._held = self._held, []
        if held:
            with self._transaction():
                for row in held:
                    self._execute(
                        "INSERT INTO nk_pii (commitment, official, field, salt, value)"
                        " VALUES (?,?,?,?,?) ON CONFLICT (commitment) DO NOTHING",
                        row,
                    )
        return len(held)

    def get(self, made: str) -> PiiValue | None:
        """The value behind a commitment, checked against it; None if absent or erased."""
        rows = self._execute(
            "SELECT official, field, salt, value FROM nk_pii WHERE commitment = ?", (made,)
        )
        if not rows:
            return None
        official, field, salt, text = rows[0]
        value = orjson.loads(text)
        if commitment(value, bytes(salt)) != made:
            raise PiiTampered(
                f"the stored value of {official}'s field {field!r} does not match its signed"
                " commitment; the PII store was altered: restore it from backup"
            )
        return PiiValue(made, official, field, value)

    def fields_of(self, official: str) -> list[tuple[str, str]]:
        """(commitment, field) of every value held for `official`, sorted."""
        rows = self._execute(
            "SELECT commitment, field FROM nk_pii WHERE official = ? ORDER BY field, commitment",
            (official,),
        )
        return [(str(c), str(f)) for c, f in rows]

    def erase(self, official: str) -> list[tuple[str, str]]:
        """Delete every value and salt held for `official`; return what was erased."""
        with self._transaction():
            erased = self.fields_of(official)
            self._execute("DELETE FROM nk_pii WHERE official = ?", (official,))
        if not self.postgres:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return erased

    def close(self) -> None:
        self.flush()
        self._conn.close()

    def __enter__(self) -> PiiStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
