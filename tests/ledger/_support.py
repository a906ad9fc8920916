"""Builders shared by the ledger tests: demo ledgers, byte-exact copies, hand-made envelopes.

Nothing here re-implements a ledger rule: bodies come from `ledger.builder.build_body` (or are
made wrong on purpose, byte by byte), records from `Signer.sign(body).encode()`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.builder import build_body, new_event_id
from ledger.canonical import parse_strict
from ledger.envelope import SignedRecord, b64
from ledger.keys import Signer
from ledger.ledger import CONFIG_FILE, Ledger
from ledger.registry import ADMIN_SYSTEM, REGISTRY_STREAM, KeyScope
from ledger.store import StoreConfig
from ledger.verify import VerifyReport, verify_ledger

REPO = Path(__file__).resolve().parents[2]
NEIKONG = REPO / ".venv" / "bin" / "neikong"

ACTOR = {"official": "4403-00001", "role": "handler", "unit": "4403-01"}
WHEN = "2026-11-02T01:30:00Z"

# the producer system most tests sign for, and its scope
FP_SYSTEM = "4403-fapiao"
FP_PREFIX = "matter/4403-fp/"
FP_SCOPE = KeyScope(FP_SYSTEM, (FP_PREFIX,), ("matter.*",))


def default_data(event_type: str, stream_seq: int) -> dict[str, Any]:
    """A schema-valid `data` for each matter type."""
    return {
        "matter.accepted": {"matter_type": "licence", "channel": "hall"},
        "matter.step_completed": {"step": "review", "outcome": "passed"},
        "matter.extension_approved": {"days": 10, "calendar": "working", "reason": "complex"},
        "matter.concluded": {"outcome": "granted", "final_seq": stream_seq},
        "matter.withdrawn": {"reason": "applicant withdrew", "final_seq": stream_seq},
    }.get(event_type, {})


def signed(signer: Signer, body: bytes) -> bytes:
    return signer.sign(body).encode()


def digest_b64(body: bytes) -> str:
    return b64(hashlib.sha256(body).digest())


def body_of(record: bytes) -> dict[str, Any]:
    value = parse_strict(SignedRecord.decode(record).body)
    assert isinstance(value, dict)
    return value


@dataclass
class Feed:
    """One producer system writing by hand: knows its stream heads and producer sequence.

    `body()` builds the next envelope without advancing; `commit(body)` advances as if it was
    appended; `next()` does both and returns the signed record.
    """

    system: str
    signer: Signer
    prefix: str
    producer_seq: int = 0
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)  # stream -> (seq, prev)

    def stream(self, name: str) -> str:
        return name if "/" in name else self.prefix + name

    def body(
        self,
        name: str,
        type: str = "matter.accepted",
        data: dict[str, Any] | None = None,
        **override: Any,
    ) -> bytes:
        stream = self.stream(name)
        seq, prev = self.heads.get(stream, (0, None))
        fields: dict[str, Any] = {
            "event_id": new_event_id(),
            "stream": stream,
            "stream_seq": seq + 1,
            "prev": prev,
            "system": self.system,
            "producer_seq": self.producer_seq + 1,
            "type": type,
            "occurred_at": WHEN,
            "actor": ACTOR,
            "data": data if data is not None else default_data(type, seq + 1),
        }
        fields.update(override)
        return build_body(**fields)

    def commit(self, body: bytes) -> None:
        value = parse_strict(body)
        self.heads[value["stream"]] = (value["stream_seq"], digest_b64(body))
        self.producer_seq = max(self.producer_seq, value["producer"]["seq"])

    def record(self, body: bytes, signer: Signer | None = None) -> bytes:
        return signed(signer or self.signer, body)

    def next(
        self,
        name: str,
        type: str = "matter.accepted",
        data: dict[str, Any] | None = None,
        **override: Any,
    ) -> bytes:
        body = self.body(name, type, data, **override)
        self.commit(body)
        return self.record(body)


def registry_body(ledger: Ledger, type: str, data: dict[str, Any], *, seq_offset: int = 0) -> bytes:
    """The next `ledger/keys` event (admin system), as `Ledger._admin_append` would build it."""
    info = ledger.store.stream_info(REGISTRY_STREAM)
    assert info is not None
    return build_body(
        event_id=new_event_id(),
        stream=REGISTRY_STREAM,
        stream_seq=info.length + 1 + seq_offset,
        prev=b64(info.head_digest),
        system=ADMIN_SYSTEM,
        producer_seq=ledger.store.producer_heads()[ADMIN_SYSTEM] + 1 + seq_offset,
        type=type,
        occurred_at=WHEN,
        actor={"official": "ledger-admin", "role": "admin"},
        data=data,
    )


def deterministic_event_id(*parts: object) -> str:
    raw = hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:16]
    return str(uuid.UUID(bytes=raw, version=4))


# -- ledger copies ---------------------------------------------------------------------------


def copy_ledger(source: Path, target: Path) -> Path:
    """A byte-exact copy of a ledger's database (SQLite backup API: pages, rowids and all)
    plus a `ledger.json` pointing at the copy, so the CLI can open it."""
    target.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source / 'ledger.db'}?mode=ro", uri=True)
    dst = sqlite3.connect(target / "ledger.db")
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    config = json.loads((source / CONFIG_FILE).read_text("utf-8"))
    config["store_url"] = f"sqlite:///{target / 'ledger.db'}"
    (target / CONFIG_FILE).write_text(json.dumps(config), "utf-8")
    return target


def root_key_id(directory: Path) -> bytes:
    return bytes.fromhex(json.loads((directory / CONFIG_FILE).read_text("utf-8"))["root_key_id"])


def verify_dir(directory: Path, workers: int = 1) -> VerifyReport:
    config = StoreConfig(f"sqlite:///{directory / 'ledger.db'}")
    return verify_ledger(config, root_key_id(directory), workers=workers)


def kinds(report: VerifyReport) -> set[str]:
    return set(report.finding_counts)


@dataclass(frozen=True, repr=False)
class Row:
    """One stored event with the envelope fields the tamper tests reason about."""

    position: int
    stream_id: str
    version: int
    state: bytes
    stream: str
    stream_seq: int
    system: str
    producer_seq: int
    type: str

    def __repr__(self) -> str:
        return (
            f"Row(position={self.position}, {self.type}, {self.stream}#{self.stream_seq},"
            f" {self.system}#{self.producer_seq}, {len(self.state)} bytes)"
        )


def read_rows(db: Path) -> list[Row]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        raw = conn.execute(
            "SELECT rowid, originator_id, originator_version, state FROM stored_events"
            " ORDER BY rowid"
        ).fetchall()
    finally:
        conn.close()
    rows = []
    for position, sid, version, state in raw:
        value = body_of(bytes(state))
        rows.append(
            Row(
                position,
                sid,
                version,
                bytes(state),
                value["stream"],
                value["stream_seq"],
                value["producer"]["system"],
                value["producer"]["seq"],
                value["type"],
            )
        )
    return rows


class Db:
    """Direct SQL on a copied ledger: what an attacker with file access can do."""

    def __init__(self, directory: Path) -> None:
        self.conn = sqlite3.connect(directory / "ledger.db")

    def __enter__(self) -> Db:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.commit()
        self.conn.close()

    def state(self, position: int) -> bytes:
        return bytes(
            self.conn.execute(
                "SELECT state FROM stored_events WHERE rowid = ?", (position,)
            ).fetchone()[0]
        )

    def set_state(self, position: int, state: bytes) -> None:
        cur = self.conn.execute(
            "UPDATE stored_events SET state = ? WHERE rowid = ?", (state, position)
        )
        assert cur.rowcount == 1

    def delete(self, position: int) -> None:
        cur = self.conn.execute("DELETE FROM stored_events WHERE rowid = ?", (position,))
        assert cur.rowcount == 1

    def swap_rows(self, a: int, b: int) -> None:
        """Exchange the contents of two positions (stream id, version, state): a reorder."""
        ra = self.conn.execute(
            "SELECT originator_id, originator_version, topic, state"
            " FROM stored_events WHERE rowid = ?",
            (a,),
        ).fetchone()
        rb = self.conn.execute(
            "SELECT originator_id, originator_version, topic, state"
            " FROM stored_events WHERE rowid = ?",
            (b,),
        ).fetchone()
        self.conn.execute("DELETE FROM stored_events WHERE rowid IN (?, ?)", (a, b))
        self.conn.execute(
            "INSERT INTO stored_events (rowid, originator_id, originator_version,"
            " topic, state) VALUES (?, ?, ?, ?, ?)",
            (a, *rb),
        )
        self.conn.execute(
            "INSERT INTO stored_events (rowid, originator_id, originator_version,"
            " topic, state) VALUES (?, ?, ?, ?, ?)",
            (b, *ra),
        )

    def insert(self, stream_id: str, version: int, state: bytes) -> int:
        top = self.conn.execute("SELECT MAX(rowid) FROM stored_events").fetchone()[0]
        self.conn.execute(
            "INSERT INTO stored_events (rowid, originator_id, originator_version,"
            " topic, state) VALUES (?, ?, ?, 'ledger.store:RecordedEvent', ?)",
            (top + 1, stream_id, version, state),
        )
        return int(top + 1)

    def max_version(self, stream_id: str) -> int:
        return int(
            self.conn.execute(
                "SELECT MAX(originator_version) FROM stored_events WHERE originator_id = ?",
                (stream_id,),
            ).fetchone()[0]
        )
