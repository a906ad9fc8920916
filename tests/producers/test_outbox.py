"""The producer's durable outbox: durable before `emit` returns, resumable chains, resend after
a crash without duplicates or gaps, bounded by a retry-later limit."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ledger.envelope import SignedRecord
from ledger.errors import Backpressure, NeikongError, StoreError
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.registry import KeyScope
from ledger.transport import InProcessChannel
from ledger.verify import verify_ledger
from producers.outbox import Outbox
from producers.producer import Producer

SYSTEM = "4403-fapiao"
PREFIX = "matter/4403-fp/"
ACTOR = {"official": "4403-00001", "role": "handler", "unit": "4403-01"}
WHEN = "2026-11-02T01:30:00Z"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.init(tmp_path / "ledger") as fresh:
        fresh.enrol_key("fp", "producer", KeyScope(SYSTEM, (PREFIX,), ("matter.*",)))
        yield fresh


@pytest.fixture
def signer(ledger: Ledger) -> Signer:
    return Signer.from_file(ledger.key_path("fp"))


def emit_step(producer: Producer, case: str, n: int = 1) -> None:
    for _ in range(n):
        producer.emit(
            PREFIX + case,
            "matter.step_completed",
            actor=ACTOR,
            data={"step": "review", "outcome": "passed"},
            occurred_at=WHEN,
        )


def append_all(ledger: Ledger, records: Sequence[bytes]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in ledger.appender().submit(list(records)):
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts


def assert_intact(ledger: Ledger, producer_seq: int) -> None:
    report = verify_ledger(ledger.store.config, bytes.fromhex(ledger.config.root_key_id), workers=1)
    assert report.intact, report.finding_counts
    assert report.producers[SYSTEM] == producer_seq


class Refusing:
    """A transport that is down: every publish fails with retry-later."""

    def __init__(self) -> None:
        self.attempts = 0

    def publish(self, stream: str, record: bytes) -> None:
        self.attempts += 1
        raise Backpressure("transport down")

    def flush(self, timeout: float | None = None) -> None:
        return None


def rows(path: Path) -> list[tuple[int, str, int, object]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT id, stream, producer_seq, delivered_at FROM outbox ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


def test_emit_is_in_the_outbox_file_before_it_returns(tmp_path: Path, signer: Signer) -> None:
    path = tmp_path / "fp.outbox"
    producer = Producer(SYSTEM, signer, InProcessChannel(), outbox=path, background=False)
    emit_step(producer, "c1")
    # read by another connection: committed, with chain state and producer seq
    assert [r[:3] for r in rows(path)] == [(1, PREFIX + "c1", 1)]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT seq FROM chains").fetchall() == [(1,)]
        assert conn.execute("SELECT system, seq FROM producer").fetchall() == [(SYSTEM, 1)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()
    producer.close(timeout=5)


def test_delivery_on_flush_marks_rows_delivered(
    tmp_path: Path, ledger: Ledger, signer: Signer
) -> None:
    channel = InProcessChannel()
    producer = Producer(SYSTEM, signer, channel, outbox=tmp_path / "o", background=False)
    emit_step(producer, "c1", 3)
    assert len(channel) == 0
    assert producer.undelivered == 3
    producer.flush(10)
    assert producer.undelivered == 0
    assert len(channel) == 3
    assert all(r[3] is not None for r in rows(tmp_path / "o"))
    assert append_all(ledger, channel.poll(10)) == {"appended": 3}
    producer.close()


def test_background_delivery(tmp_path: Path, ledger: Ledger, signer: Signer) -> None:
    channel = InProcessChannel()
    with Producer(SYSTEM, signer, channel, outbox=tmp_path / "o") as producer:
        emit_step(producer, "c1", 5)
        producer.flush(10)
    assert append_all(ledger, channel.poll(10)) == {"appended": 5}


def test_restart_resumes_chains_without_gap_or_fork(
    tmp_path: Path, ledger: Ledger, signer: Signer
) -> None:
    channel = InProcessChannel()
    first = Producer(SYSTEM, signer, channel, outbox=tmp_path / "o", background=False)
    emit_step(first, "c1", 2)
    emit_step(first, "c2", 1)
    first.close(timeout=0)  # nothing delivered: the rows stay
    second = Producer(SYSTEM, signer, channel, outbox=tmp_path / "o", background=False)
    emit_step(second, "c1", 1)
    emit_step(second, "c3", 1)
    second.flush(10)
    records = channel.poll(100)
    assert len(records) == 5
    bodies = [SignedRecord.decode(r).body for r in records]
    assert b'"stream_seq":3' in bodies[3]
    assert b'"seq":4' in bodies[3]
    assert append_all(ledger, records) == {"appended": 5}
    assert_intact(ledger, 5)
    second.close()


def test_unacknowledged_rows_are_resent_after_restart_without_duplicates(
    tmp_path: Path, ledger: Ledger, signer: Signer
) -> None:
    down = Refusing()
    first = Producer(SYSTEM, signer, down, outbox=tmp_path / "o", background=False)
    emit_step(first, "c1", 4)
    with pytest.raises(Backpressure):
        first.flush(0.5)
    assert down.attempts > 0
    assert first.undelivered == 4
    first.close(timeout=0)
    channel = InProcessChannel()
    second = Producer(SYSTEM, signer, channel, outbox=tmp_path / "o", background=False)
    second.flush(10)
    assert len(channel) == 4
    second.flush(1)  # nothing is sent twice by one producer
    assert len(channel) == 4
    assert append_all(ledger, channel.poll(10)) == {"appended": 4}
    second.close()


def test_a_resend_of_delivered_rows_is_a_no_op_in_the_ledger(
    tmp_path: Path, ledger: Ledger, signer: Signer
) -> None:
    """A crash after the transport acknowledged but before the mark committed: resend."""
    channel = InProcessChannel()
    producer = Producer(SYSTEM, signer, channel, outbox=tmp_path / "o", background=False)
    emit_step(producer, "c1", 3)
    producer.flush(10)
    producer.close()
    conn = sqlite3.connect(tmp_path / "o")
    conn.execute("UPDATE outbox SET delivered_at = NULL")  # as if the marks were lost
    conn.commit()
    conn.close()
    again = Producer(SYSTEM, signer, channel, outbox=tmp_path / "o", background=False)
    again.flush(10)
    assert append_all(ledger, channel.poll(100)) == {"appended": 3, "duplicate": 3}
    again.close()


def test_limit_raises_backpressure_and_stamps_nothing(
    tmp_path: Path, ledger: Ledger, signer: Signer
) -> None:
    channel = InProcessChannel()
    producer = Producer(
        SYSTEM, signer, channel, outbox=tmp_path / "o", outbox_limit=3, background=False
    )
    emit_step(producer, "c1", 3)
    with pytest.raises(Backpressure, match="limit 3"):
        emit_step(producer, "c1")
    with pytest.raises(TimeoutError):  # Backpressure is a TimeoutError: retry later
        emit_step(producer, "c2")
    assert producer.outbox is not None
    assert producer.outbox.producer_seq == 3
    producer.flush(10)
    emit_step(producer, "c1")
    producer.flush(10)
    assert append_all(ledger, channel.poll(10)) == {"appended": 4}
    assert_intact(ledger, 4)
    producer.close()


def test_a_failed_commit_reuses_no_sequence_and_leaves_no_gap(
    tmp_path: Path, ledger: Ledger, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = InProcessChannel()
    producer = Producer(SYSTEM, signer, channel, outbox=tmp_path / "o", background=False)
    emit_step(producer, "c1", 2)
    original = Outbox._commit
    calls = {"n": 0}

    def failing(self: Outbox, *args: object) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise sqlite3.OperationalError("disk I/O error")
        original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Outbox, "_commit", failing)
    with pytest.raises(StoreError, match="disk I/O error"):
        emit_step(producer, "c1")
    monkeypatch.setattr(Outbox, "_commit", original)
    emit_step(producer, "c1")  # takes seq 3 again: the failed one never existed
    producer.flush(10)
    records = channel.poll(10)
    assert len(records) == 3
    assert append_all(ledger, records) == {"appended": 3}
    assert_intact(ledger, 3)
    producer.close()


def test_concurrent_emitters_make_valid_chains(
    tmp_path: Path, ledger: Ledger, signer: Signer
) -> None:
    channel = InProcessChannel()
    producer = Producer(SYSTEM, signer, channel, outbox=tmp_path / "o")

    def work(case: str) -> None:
        emit_step(producer, case, 25)

    threads = [threading.Thread(target=work, args=(f"c{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    producer.flush(30)
    records = channel.poll(1000)
    assert len(records) == 200
    # delivery order follows the producer sequence, so nothing parks
    assert append_all(ledger, records) == {"appended": 200}
    assert_intact(ledger, 200)
    producer.close()


def test_forget_keeps_the_chain_on_disk(tmp_path: Path, ledger: Ledger, signer: Signer) -> None:
    channel = InProcessChannel()
    producer = Producer(SYSTEM, signer, channel, outbox=tmp_path / "o", background=False)
    emit_step(producer, "c1")
    producer.forget(PREFIX + "c1")
    emit_step(producer, "c1")  # seq 2, not a fork at seq 1
    producer.flush(10)
    assert append_all(ledger, channel.poll(10)) == {"appended": 2}
    producer.close()


def test_an_outbox_belongs_to_one_system(tmp_path: Path, signer: Signer) -> None:
    Outbox(tmp_path / "o", SYSTEM).close()
    with pytest.raises(NeikongError, match="belongs to producer system"):
        Outbox(tmp_path / "o", "4403-ctais")


CRASHING_PRODUCER = """
import os, signal, sys
from pathlib import Path
from ledger.keys import Signer
from producers.producer import Producer

class Never:
    def publish(self, stream, record):
        raise AssertionError("must not be reached before the crash")
    def flush(self, timeout=None):
        return None

key, outbox, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
producer = Producer("4403-fapiao", Signer.from_file(key), Never(), outbox=outbox,
                    background=False)
for i in range(n):
    producer.emit("matter/4403-fp/c%d" % (i % 3), "matter.step_completed",
                  actor={"official": "4403-00001", "role": "handler"},
                  data={"step": "review"}, occurred_at="2026-11-02T01:30:00Z")
print("emitted", n, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # after the outbox write, before any send
"""


def test_sigkill_between_outbox_write_and_send_then_restart_resends(
    tmp_path: Path, ledger: Ledger, signer: Signer
) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CRASHING_PRODUCER,
            str(ledger.key_path("fp")),
            str(tmp_path / "o"),
            "30",
        ],
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "emitted 30"
    channel = InProcessChannel()
    producer = Producer(SYSTEM, signer, channel, outbox=tmp_path / "o", background=False)
    emit_step(producer, "c9", 2)  # continues the producer sequence at 31
    producer.flush(10)
    records = channel.poll(100)
    assert len(records) == 32
    assert append_all(ledger, records) == {"appended": 32}
    assert_intact(ledger, 32)
    producer.close()
