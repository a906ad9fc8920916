"""A writer killed with SIGKILL mid-run leaves a ledger that verifies, holds every batch wholly
or not at all, and takes a full resend as a no-op for what it holds (DESIGN.md: "A batch … is
durable as a whole or not at all"; "Resending anything already appended is a no-op").

The child (`tests/ledger/crash_writer.py`) appends one complete matter of K events per batch
and is killed at a random moment; the parent then inspects the database and resends
everything the child had started to send, plus one batch it never reached.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.store import stream_uuid
from tests.ledger._support import FP_SCOPE, REPO, verify_dir
from tests.ledger.crash_writer import KEY_NAME, batch_records, stream_name

pytestmark = pytest.mark.slow


def _start_writer(directory: Path, size: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.ledger.crash_writer",
                str(directory),
                str(size),
                str(workers),
            ],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _sent(log: Path) -> list[int]:
    return [
        int(line.split()[1]) for line in log.read_text().splitlines() if line.startswith("sending ")
    ]


def _kill_after_some_batches(
    child: subprocess.Popen[bytes], log: Path, rng: random.Random, min_batches: int
) -> None:
    deadline = time.monotonic() + 60
    while len(_sent(log)) < min_batches:
        if child.poll() is not None:
            pytest.fail(f"writer exited early ({child.returncode}):\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail("writer made no progress in 60 s")
        time.sleep(0.02)
    time.sleep(rng.uniform(0.3, 1.2))
    os.killpg(child.pid, signal.SIGKILL)  # the writer's own session: it and its workers
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, log.read_text()[-3000:]


def _stream_counts(db: Path) -> Counter[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return Counter(
            dict(
                conn.execute(
                    "SELECT originator_id, COUNT(*) FROM stored_events GROUP BY originator_id"
                )
            )
        )
    finally:
        conn.close()


def _side_tables(db: Path) -> tuple[int, int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        events = conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0]
        ids = conn.execute("SELECT COUNT(*) FROM nk_event_ids").fetchone()[0]
        head = conn.execute(
            "SELECT last_seq FROM nk_producers WHERE system = '4403-fapiao'"
        ).fetchone()
        return events, ids, head[0] if head else 0
    finally:
        conn.close()


@pytest.mark.parametrize(("size", "workers"), [(20, 0), (80, 2)], ids=["in_process", "worker_pool"])
def test_sigkill_mid_append_leaves_whole_batches_and_resend_is_idempotent(
    tmp_path: Path, size: int, workers: int
) -> None:
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    directory = tmp_path / "ledger"
    with Ledger.init(directory) as ledger:
        ledger.enrol_key(KEY_NAME, "producer", FP_SCOPE)
        signer = Signer.from_file(ledger.key_path(KEY_NAME))
        base_events = ledger.store.max_position()

    log = tmp_path / "writer.log"
    child = _start_writer(directory, size, workers, log)
    _kill_after_some_batches(child, log, rng, min_batches=3)
    sent = _sent(log)
    assert sent == list(range(len(sent))), f"seed {seed}"
    last_sent = sent[-1]

    # 1. what survived verifies, and every batch (= one stream) is whole or absent
    report = verify_dir(directory, workers=2)
    assert report.intact, (seed, report.findings[:5])
    counts = _stream_counts(directory / "ledger.db")
    present = [i for i in range(last_sent + 1) if counts.get(stream_uuid(stream_name(i)).hex)]
    for i in present:
        assert counts[stream_uuid(stream_name(i)).hex] == size, (seed, i)
    complete = len(present)
    assert present == list(range(complete)), f"batches must land in order (seed {seed})"
    assert complete >= last_sent, f"only the batch in flight may be missing (seed {seed})"
    events, ids, producer_head = _side_tables(directory / "ledger.db")
    assert events == base_events + complete * size
    assert ids == events  # side tables committed with the events, never apart
    assert producer_head == complete * size

    # 2. the producer resends everything it sent, and one batch it never reached
    with Ledger.open(directory) as ledger:
        appender = ledger.appender(workers=workers)
        outcomes = Counter()
        for i in range(last_sent + 2):
            for outcome in appender.submit(batch_records(signer, i, size)):
                outcomes[(outcome.status, i < complete)] += 1
        assert ledger.store.dead_letters() == []
        assert ledger.store.parked() == []
    assert set(outcomes) <= {("duplicate", True), ("appended", False)}, (seed, outcomes)
    assert outcomes[("duplicate", True)] == complete * size
    assert outcomes[("appended", False)] == (last_sent + 2 - complete) * size

    counts = _stream_counts(directory / "ledger.db")
    assert all(counts[stream_uuid(stream_name(i)).hex] == size for i in range(last_sent + 2))
    events, ids, producer_head = _side_tables(directory / "ledger.db")
    assert events == ids == base_events + (last_sent + 2) * size
    assert producer_head == (last_sent + 2) * size
    report = verify_dir(directory, workers=2)
    assert report.intact, (seed, report.findings[:5])
    assert report.events == events
