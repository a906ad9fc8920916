"""The detector's keyed state and its snapshots.

State = open warnings per (rule, key), per-rule keyed partial matches (windows, counters,
partial sequences, pending absences), the timer heap and the event-time watermark. It holds
only JSON values, so a snapshot is its canonical JSON.

Guarantees:

- `SnapshotStore.save` writes the state and the log position it covers in ONE transaction:
  after a crash the store holds either the old pair or the new one, never a mix.
- Embedded ledgers keep the snapshot in `<ledger dir>/detector.db` (SQLite); a PostgreSQL
  ledger keeps it in the table `nk_detector_snapshot` of the same database.
- `load` returns the state only for the same `ruleset_hash`; a snapshot taken under another
  rule set is reported (`DetectorStateError`) rather than silently reused.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from alerts.errors import DetectorStateError

__all__ = ["DetectorState", "PgSnapshotStore", "Snapshot", "SnapshotStore", "open_snapshots"]


@dataclass
class DetectorState:
    watermark: int = 0
    open: dict[str, dict[str, Any]] = field(default_factory=dict)  # "rule\nkey" -> open warning
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)  # rule -> key -> key state
    timers: list[list[Any]] = field(default_factory=list)
    late: dict[str, list[Any]] = field(default_factory=dict)  # "rule\nkey" -> [due, step, start]

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "watermark": self.watermark,
                "open": self.open,
                "rules": self.rules,
                "timers": sorted(self.timers),
                "late": self.late,
            },
            option=orjson.OPT_SORT_KEYS,
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> DetectorState:
        v = orjson.loads(raw)
        return cls(v["watermark"], v["open"], v["rules"], v["timers"], v["late"])


@dataclass(frozen=True)
class Snapshot:
    position: int
    ruleset_hash: str
    state: DetectorState


class SnapshotStore:
    """`<ledger dir>/detector.db`: one row, (position, ruleset_hash, state)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.conn = sqlite3.connect(path, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS detector_snapshot"
                " (id INTEGER PRIMARY KEY CHECK (id = 1), position INTEGER NOT NULL,"
                " ruleset_hash TEXT NOT NULL, state BLOB NOT NULL)"
            )
        except sqlite3.Error as exc:
            raise DetectorStateError(f"{path}: cannot open the detector state: {exc}") from exc

    def save(self, position: int, ruleset_hash: str, state: DetectorState) -> None:
        try:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute(
                    "INSERT INTO detector_snapshot (id, position, ruleset_hash, state)"
                    " VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                    " position = excluded.position, ruleset_hash = excluded.ruleset_hash,"
                    " state = excluded.state",
                    (position, ruleset_hash, state.to_bytes()),
                )
        except sqlite3.Error as exc:
            raise DetectorStateError(f"{self.path}: snapshot not written: {exc}") from exc

    def load(self, ruleset_hash: str) -> Snapshot | None:
        try:
            row = self.conn.execute(
                "SELECT position, ruleset_hash, state FROM detector_snapshot WHERE id = 1"
            ).fetchone()
        except sqlite3.Error as exc:
            raise DetectorStateError(f"{self.path}: snapshot unreadable: {exc}") from exc
        return _snapshot(row, ruleset_hash, self.path)

    def reset(self) -> None:
        """Forget the snapshot: the next detector replays the whole log."""
        self.conn.execute("DELETE FROM detector_snapshot")

    def close(self) -> None:
        self.conn.close()


class PgSnapshotStore(SnapshotStore):
    """The same single-row snapshot in PostgreSQL (table `nk_detector_snapshot`)."""

    def __init__(self, url: str) -> None:  # the same interface, another database
        import psycopg

        self.path = Path("nk_detector_snapshot")
        self._errors: tuple[type[Exception], ...] = (psycopg.Error,)
        try:
            self.conn = psycopg.connect(url, autocommit=True)  # type: ignore[assignment]
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS nk_detector_snapshot"
                " (id INTEGER PRIMARY KEY CHECK (id = 1), position BIGINT NOT NULL,"
                " ruleset_hash TEXT NOT NULL, state BYTEA NOT NULL)"
            )
        except psycopg.Error as exc:
            raise DetectorStateError(f"cannot open the detector state table: {exc}") from exc

    def save(self, position: int, ruleset_hash: str, state: DetectorState) -> None:
        try:
            self.conn.execute(
                "INSERT INTO nk_detector_snapshot (id, position, ruleset_hash, state)"
                " VALUES (1, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
                " position = excluded.position, ruleset_hash = excluded.ruleset_hash,"
                " state = excluded.state",
                (position, ruleset_hash, state.to_bytes()),
            )
        except self._errors as exc:
            raise DetectorStateError(f"snapshot not written: {exc}") from exc

    def load(self, ruleset_hash: str) -> Snapshot | None:
        try:
            row = self.conn.execute(
                "SELECT position, ruleset_hash, state FROM nk_detector_snapshot WHERE id = 1"
            ).fetchone()
        except self._errors as exc:
            raise DetectorStateError(f"snapshot unreadable: {exc}") from exc
        return _snapshot(row, ruleset_hash, "nk_detector_snapshot")

    def reset(self) -> None:
        self.conn.execute("DELETE FROM nk_detector_snapshot")


def _snapshot(row: Any, ruleset_hash: str, where: object) -> Snapshot | None:
    if row is None:
        return None
    if row[1] != ruleset_hash:
        raise DetectorStateError(
            f"{where}: snapshot was taken under rule set {row[1][:12]}…, the active one is"
            f" {ruleset_hash[:12]}…; run `neikong detect --reset` to rebuild from the log"
        )
    return Snapshot(int(row[0]), row[1], DetectorState.from_bytes(bytes(row[2])))


def open_snapshots(store_url: str, ledger_dir: Path) -> SnapshotStore:
    """The snapshot store beside a ledger: its PostgreSQL database, or DIR/detector.db."""
    if store_url.startswith(("postgres://", "postgresql://")):
        return PgSnapshotStore(store_url)
    return SnapshotStore(ledger_dir / "detector.db")
