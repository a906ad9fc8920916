"""Signing outside the outbox lock: bodies equal `build_body`'s, concurrent emits on many
streams and on one stream keep chains and sequences whole, a refused or failed event leaves no
gap, and a SIGKILL in the middle of concurrent emits leaves a file that resumes without gap."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.builder import build_body
from ledger.envelope import b64
from ledger.errors import MalformedInput
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.transport import InProcessChannel
from producers.outbox import Outbox
from producers.producer import Producer
from producers.stamping import BodyTemplate
from tests.producers.test_outbox import (
    ACTOR,
    PREFIX,
    REPO,
    SYSTEM,
    WHEN,
    append_all,
    assert_intact,
    emit_step,
    ledger,
    signer,
)

__all__ = ["ledger", "signer"]  # fixtures shared with test_outbox

EVENT_ID = "019a3c52-7d00-7000-8000-000000000001"

text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"]) | st.sampled_from('"\\\n\t\x00é😀𝄞'),
    max_size=12,
)
leaf = st.none() | st.booleans() | st.integers(-(2**60), 2**60) | text | st.floats(width=32)
json_value = st.recursive(
    leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=12,
)


def _both(**fields: Any) -> tuple[bytes | type[BaseException], bytes | type[BaseException]]:
    """(build_body's result or error class, the template's result or error class)."""
    digest = bytes(range(32))
    try:
        expected: bytes | type[BaseException] = build_body(
            event_id=EVENT_ID, stream_seq=7, prev=b64(digest), producer_seq=41, **fields
        )
    except (MalformedInput, TypeError) as exc:
        expected = type(exc)
    try:
        got: bytes | type[BaseException] = BodyTemplate.of(event_id=EVENT_ID, **fields).stamp(
            7, digest, 41
        )
    except (MalformedInput, TypeError) as exc:
        got = type(exc)
    return expected, got


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.dictionaries(text, json_value, max_size=4),
    actor=st.dictionaries(text, text, max_size=3),
    subject=st.none() | st.dictionaries(text, text, max_size=2),
    pii=st.none() | st.dictionaries(text, text, max_size=2),
    stream=text,
    type_=text,
)
def test_the_template_body_is_build_body(
    data: dict[str, Any],
    actor: dict[str, str],
    subject: dict[str, str] | None,
    pii: dict[str, str] | None,
    stream: str,
    type_: str,
) -> None:
    expected, got = _both(
        stream=stream,
        system=SYSTEM,
        type=type_,
        occurred_at=WHEN,
        actor=actor,
        data=data,
        subject=subject,
        pii=pii,
    )
    assert got == expected


def test_first_event_has_null_prev_and_deep_bodies_are_refused_alike() -> None:
    fields: dict[str, Any] = {
        "stream": PREFIX + "c1",
        "system": SYSTEM,
        "type": "matter.step_completed",
        "occurred_at": WHEN,
        "actor": ACTOR,
    }
    body = BodyTemplate.of(event_id=EVENT_ID, data={}, **fields).stamp(1, b"", 1)
    assert body == build_body(
        event_id=EVENT_ID, stream_seq=1, prev=None, producer_seq=1, data={}, **fields
    )
    for depth in (29, 30, 31, 32, 33):
        deep: Any = 1
        for _ in range(depth):
            deep = [deep]
        expected, got = _both(data={"x": deep}, **fields)
        assert got == expected, depth


def test_a_refused_event_takes_no_sequence(tmp_path: Path, ledger: Ledger, signer: Signer) -> None:
    channel = InProcessChannel()
    producer = Producer(SYSTEM, signer, channel, outbox=tmp_path / "o", background=False)
    emit_step(producer, "c1")
    with pytest.raises(MalformedInput):
        producer.emit(
            PREFIX + "c1",
            "matter.step_completed",
            actor=ACTOR,
            data={"amount": 1.5},
            occurred_at=WHEN,
        )
    emit_step(producer, "c1")
    producer.flush(10)
    assert append_all(ledger, channel.poll(10)) == {"appended": 2}
    assert_intact(ledger, 2)
    producer.close()


class _FailingKey:
    """An Ed25519 key whose n-th signature fails (out of memory, an interrupt)."""

    def __init__(self, real: Signer, fail_at: int) -> None:
        self.real, self.calls, self.fail_at = real, 0, fail_at

    def public_key(self) -> Any:
        return self.real.private_key.public_key()

    def sign(self, message: bytes) -> bytes:
        self.calls += 1
        if self.calls == self.fail_at:
            raise MemoryError("no memory for this signature")
        return self.real.private_key.sign(message)


def test_a_signature_failing_after_reservation_is_undone(
    tmp_path: Path, ledger: Ledger, signer: Signer
) -> None:
    channel = InProcessChannel()
    failing = Signer(_FailingKey(signer, fail_at=2))  # type: ignore[arg-type]
    producer = Producer(SYSTEM, failing, channel, outbox=tmp_path / "o", background=False)
    emit_step(producer, "c1")
    with pytest.raises(MemoryError):
        emit_step(producer, "c1")
    emit_step(producer, "c1", 2)  # seq 2 again: the failed reservation was the last, undone
    producer.flush(10)
    assert append_all(ledger, channel.poll(10)) == {"appended": 3}
    assert_intact(ledger, 3)
    producer.close()


def file_sequences(path: Path) -> tuple[list[int], list[int]]:
    conn = sqlite3.connect(path)
    try:
        ids = [r[0] for r in conn.execute("SELECT id FROM outbox ORDER BY id")]
        seqs = [r[0] for r in conn.execute("SELECT producer_seq FROM outbox ORDER BY id")]
        return ids, seqs
    finally:
        conn.close()


def test_concurrent_emits_on_many_streams_and_on_one_stream(
    tmp_path: Path, ledger: Ledger, signer: Signer
) -> None:
    channel = InProcessChannel()
    producer = Producer(SYSTEM, signer, channel, outbox=tmp_path / "o")
    failures: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for k in range(20):
                emit_step(producer, f"own{i}")
                emit_step(producer, "shared")  # every thread extends the same chain
                if k % 5 == 0:
                    emit_step(producer, f"pair{i % 2}")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    total = 8 * (20 + 20 + 4)
    producer.flush(30)
    ids, seqs = file_sequences(tmp_path / "o")
    assert seqs == list(range(1, total + 1))
    assert ids == list(range(1, total + 1))
    records = channel.poll(10_000)
    assert len(records) == total
    assert append_all(ledger, records) == {"appended": total}  # chains and seqs checked here
    assert_intact(ledger, total)
    producer.close()


CRASH_IN_CONCURRENT_EMITS = """
import os, signal, sys, threading
from pathlib import Path
from ledger.keys import Signer
from producers.producer import Producer

class Never:
    def publish(self, stream, record):
        raise AssertionError("not reached: delivery happens on flush only")
    def flush(self, timeout=None):
        return None

key, outbox = Path(sys.argv[1]), Path(sys.argv[2])
producer = Producer("4403-fapiao", Signer.from_file(key), Never(), outbox=outbox,
                    background=False)
done = [0]
lock = threading.Lock()

def work(i):
    for k in range(10_000):
        stream = "matter/4403-fp/shared" if k % 2 else "matter/4403-fp/own%d" % i
        producer.emit(stream, "matter.step_completed",
                      actor={"official": "4403-00001", "role": "handler"},
                      data={"step": "review"}, occurred_at="2026-11-02T01:30:00Z")
        with lock:
            done[0] += 1
            if done[0] == 300:
                print("killing after", done[0], flush=True)
                os.kill(os.getpid(), signal.SIGKILL)  # the other threads are mid-emit

for i in range(8):
    threading.Thread(target=work, args=(i,)).start()
"""


def test_sigkill_in_the_middle_of_concurrent_emits_leaves_no_gap(
    tmp_path: Path, ledger: Ledger, signer: Signer
) -> None:
    outbox_path = tmp_path / "o"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CRASH_IN_CONCURRENT_EMITS,
            str(ledger.key_path("fp")),
            str(outbox_path),
        ],
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    ids, seqs = file_sequences(outbox_path)
    committed = len(seqs)
    assert committed >= 300  # every emit that returned is durable
    assert seqs == list(range(1, committed + 1))  # no committed seq after a missing one
    assert ids == list(range(1, committed + 1))
    channel = InProcessChannel()
    producer = Producer(SYSTEM, signer, channel, outbox=Outbox(outbox_path, SYSTEM))
    emit_step(producer, "shared", 2)  # the chain resumes where the file left it
    producer.flush(30)
    records = channel.poll(100_000)
    assert len(records) == committed + 2
    assert append_all(ledger, records) == {"appended": committed + 2}
    assert_intact(ledger, committed + 2)
    producer.close()
    assert producer.outbox is not None
    producer.outbox.close()


def test_undoing_the_last_reservation_releases_the_commit_waiting_for_it(
    tmp_path: Path,
) -> None:
    with Outbox(tmp_path / "o", SYSTEM) as outbox:
        first = outbox.reserve(PREFIX + "a")
        second = outbox.reserve(PREFIX + "b")  # same ticket as the first
        outbox.fill(first, b"record-1", bytes(32))
        time.sleep(0.2)  # the writer committed row 1; the ticket also waits for row 2
        outbox.abandon(second, MemoryError("signing failed"))
        first.ticket.wait(5)  # returns: nothing left to wait for
        again = outbox.reserve(PREFIX + "b")
        assert (again.id, again.producer_seq, again.stream_seq) == (2, 2, 1)
        outbox.fill(again, b"record-2", bytes(32))
        again.ticket.wait(5)
    ids, seqs = file_sequences(tmp_path / "o")
    assert ids == seqs == [1, 2]
