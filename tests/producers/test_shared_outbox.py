"""One outbox file shared by every producer system of a process: one fsync covers the events
of all of them, each system keeps its own dense producer sequence, one delivery sends them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.errors import NeikongError
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.registry import KeyScope
from ledger.transport import InProcessChannel
from ledger.verify import verify_ledger
from producers.outbox import Outbox
from producers.producer import Producer

SYSTEMS = {"4403-fapiao": "matter/4403-fp/", "4403-ctais": "matter/4403-ct/"}
ACTOR = {"official": "4403-00001", "role": "handler", "unit": "4403-01"}
WHEN = "2026-11-02T01:30:00Z"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.init(tmp_path / "ledger") as fresh:
        for system, prefix in SYSTEMS.items():
            fresh.enrol_key(system, "producer", KeyScope(system, (prefix,), ("matter.*",)))
        yield fresh


def producers(ledger: Ledger, outbox: Outbox, transport: InProcessChannel) -> list[Producer]:
    return [
        Producer(s, Signer.from_file(ledger.key_path(s)), transport, outbox=outbox) for s in SYSTEMS
    ]


def emit(producer: Producer, case: str, n: int) -> None:
    for _ in range(n):
        producer.emit(
            SYSTEMS[producer.system] + case,
            "matter.step_completed",
            actor=ACTOR,
            data={"step": "review", "outcome": "passed"},
            occurred_at=WHEN,
        )


def test_systems_sharing_an_outbox_keep_their_own_sequences(tmp_path: Path, ledger: Ledger) -> None:
    channel = InProcessChannel()
    outbox = Outbox(tmp_path / "shared.db")
    fapiao, ctais = producers(ledger, outbox, channel)
    threads = [
        threading.Thread(target=emit, args=(p, f"c{i}", 20))
        for p in (fapiao, ctais)
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fapiao.flush(30)
    assert outbox.producer_seq_of("4403-fapiao") == outbox.producer_seq_of("4403-ctais") == 80
    fapiao.close()
    ctais.close()
    outbox.close()
    records = channel.poll(1000)
    assert len(records) == 160  # one delivery, nothing sent twice
    outcomes = ledger.appender().submit(records)
    assert {o.status for o in outcomes} == {"appended"}
    report = verify_ledger(ledger.store.config, bytes.fromhex(ledger.config.root_key_id), workers=1)
    assert report.intact, report.finding_counts
    assert report.producers["4403-fapiao"] == report.producers["4403-ctais"] == 80


def test_a_shared_outbox_resumes_every_system_after_a_restart(
    tmp_path: Path, ledger: Ledger
) -> None:
    channel = InProcessChannel()
    outbox = Outbox(tmp_path / "shared.db")
    first = producers(ledger, outbox, channel)
    for p in first:
        emit(p, "c1", 3)
    for p in first:
        p.close(timeout=0)
    outbox.close()
    reopened = Outbox(tmp_path / "shared.db")
    second = producers(ledger, reopened, channel)
    for p in second:
        emit(p, "c1", 2)
    second[0].flush(30)
    assert reopened.producer_seq_of("4403-fapiao") == 5
    for p in second:
        p.close()
    reopened.close()
    records = channel.poll(1000)
    outcomes = ledger.appender().submit(records)
    assert [o.status for o in outcomes].count("appended") == 10
    assert {o.status for o in outcomes} <= {"appended", "duplicate"}


def test_a_shared_outbox_refuses_a_dedicated_open_and_a_second_transport(
    tmp_path: Path, ledger: Ledger
) -> None:
    outbox = Outbox(tmp_path / "shared.db")
    fapiao, ctais = producers(ledger, outbox, InProcessChannel())
    emit(fapiao, "c1", 1)
    emit(ctais, "c1", 1)
    with pytest.raises(NeikongError, match="another transport"):
        Producer(
            "4403-ctais",
            Signer.from_file(ledger.key_path("4403-ctais")),
            InProcessChannel(),
            outbox=outbox,
        )
    fapiao.close()
    ctais.close()
    outbox.close()
    with pytest.raises(NeikongError, match="belongs to producer system"):
        Outbox(tmp_path / "shared.db", "4403-fapiao")


class CountingOutbox(Outbox):
    """Counts the commits that carry rows."""

    commits_with_rows = 0

    def _commit(self, rows, marks, prune):  # type: ignore[no-untyped-def]
        if rows:
            self.commits_with_rows += 1
        super()._commit(rows, marks, prune)


def test_a_batch_gathers_its_rows_and_does_not_stall_other_emits(
    tmp_path: Path, ledger: Ledger
) -> None:
    channel = InProcessChannel()
    outbox = CountingOutbox(tmp_path / "shared.db")
    fapiao, ctais = producers(ledger, outbox, channel)
    other: list[float] = []
    with fapiao.batch() as done:
        emit(fapiao, "c1", 150)
        # a per-call emit of another system while the batch is open returns once durable,
        # bounded by the hold (HOLD_S), not by the end of the batch
        thread = threading.Thread(target=lambda: other.append(_timed_emit(ctais)))
        thread.start()
        thread.join(timeout=30)
        emit(fapiao, "c2", 150)
    assert len(done) == 300
    assert other
    assert other[0] < 5.0
    assert outbox.commits_with_rows <= 4  # 301 rows: the batch's rows went in a few commits
    fapiao.flush(30)
    fapiao.close()
    ctais.close()
    outbox.close()
    outcomes = ledger.appender().submit(channel.poll(1000))
    assert [o.status for o in outcomes].count("appended") == 301


def _timed_emit(producer: Producer) -> float:
    import time

    started = time.monotonic()
    emit(producer, "c9", 1)
    return time.monotonic() - started
