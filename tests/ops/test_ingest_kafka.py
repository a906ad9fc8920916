"""`neikong ingest` against the real broker: end to end, hostile input, crashes, rebalances,
a broker outage. After each: the ledger holds exactly the emitted events, once each, verify
passes, every producer sequence is gap-free."""

from __future__ import annotations

import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from ledger.builder import build_body, new_event_id
from ledger.canonical import canonical_bytes
from ledger.envelope import HEADER_LEN, RECORD_MAGIC, SignedRecord
from ledger.keys import Signer, generate_private_key
from ledger.ledger import Ledger
from ledger.registry import KeyScope
from ledger.transport import InProcessChannel
from ops.ingest import REASON_HEADER, Ingester, IngestMetrics, IngestSettings, KafkaDeadLetters
from producers.kafka_source import KafkaRecordSource
from producers.kafka_transport import KafkaTransport
from producers.producer import Producer
from producers.simulator import SYSTEMS
from tests.producers._kafka import (
    NEIKONG,
    REPO,
    check_exactly_once,
    consume_all,
    demo_ledger,
    emit_simulated,
    kafka,
    kill_group,
    ledger_rows,
    per_system,
    produce_raw,
    start_ingest,
    stop_and_restart_broker,
    stop_gracefully,
    wait_for_rows,
)

pytestmark = kafka

BASE_ROWS = 1 + len(SYSTEMS)  # genesis + one enrolled key per simulated producer system


def _fill(bootstrap: str, topic: str, tmp_path: Path, events: int, seed: int) -> int:
    """Emit simulated events through the SDK (outbox + Kafka transport); all acknowledged."""
    signers = {s: Signer.from_file(tmp_path / "ledger" / "keys" / f"{s}.key") for s in SYSTEMS}
    transport = KafkaTransport(bootstrap, topic)
    producers = {
        s: Producer(s, signer, transport, outbox=tmp_path / "outbox" / f"{s}.db")
        for s, signer in signers.items()
    }
    try:
        n = emit_simulated(producers, events, seed)
    finally:
        for p in producers.values():
            p.close(timeout=60)
        transport.close()
    return n


def _metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def test_produce_ingest_verify_intact_with_metrics(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    topic, dlq = make_topic(partitions=3), make_topic()
    demo_ledger(tmp_path / "ledger")
    n = _fill(kafka_bootstrap, topic, tmp_path, 1200, seed=3)
    registry = CollectorRegistry()
    with Ledger.open(tmp_path / "ledger") as ledger:
        source = KafkaRecordSource(kafka_bootstrap, topic, f"g-{uuid.uuid4().hex[:8]}")
        dead = KafkaTransport(kafka_bootstrap, dlq)
        try:
            stats = Ingester(
                ledger.appender(workers=1),
                source,
                metrics=IngestMetrics(registry),
                dead_letters=KafkaDeadLetters(dead),
                settings=IngestSettings(batch_size=250, idle_exit_s=60),
                stop_when=lambda s: s.consumed >= n,
            ).run()
        finally:
            source.close()
            dead.close()
    check_exactly_once(tmp_path / "ledger", per_system(1200, 3))
    assert stats.consumed == n
    assert stats.ledger_gained == n
    assert stats.still_parked == 0
    assert _metric(registry, "neikong_ingest_records_consumed_total") == n
    assert _metric(registry, "neikong_ingest_events_appended_total") == n
    assert _metric(registry, "neikong_ledger_position") == BASE_ROWS + n
    assert _metric(registry, "neikong_ingest_records_rejected_total", reason="fork") == 0
    assert _metric(registry, "neikong_ingest_batch_duration_seconds_count") == stats.batches
    assert _metric(registry, "neikong_ingest_consumer_lag_records") == 0
    assert consume_all(kafka_bootstrap, dlq, 1, timeout=2) == []


# -- hostile input ------------------------------------------------------------------------------

FP = "4403-fapiao"
PREFIX = "matter/4403-fp/"
ACTOR = {"official": "4403-00001", "role": "handler", "unit": "4403-01"}
WHEN = "2026-11-02T01:30:00Z"


def _body(stream: str, seq: int, prev: str | None, pseq: int, **over: object) -> bytes:
    fields: dict[str, object] = {
        "event_id": new_event_id(),
        "stream": stream,
        "stream_seq": seq,
        "prev": prev,
        "system": FP,
        "producer_seq": pseq,
        "type": "matter.step_completed",
        "occurred_at": WHEN,
        "actor": ACTOR,
        "data": {"step": "review", "outcome": "passed"},
    }
    fields.update(over)
    return build_body(**fields)  # type: ignore[arg-type]


def test_hostile_input_lands_in_the_dead_letter_topic_and_ingest_keeps_going(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    topic = make_topic(partitions=1)  # one partition: the order below is the order consumed
    dlq = make_topic(name=f"{topic}.dead-letters")
    with Ledger.init(tmp_path / "ledger") as ledger:
        ledger.enrol_key("fp", "producer", KeyScope(FP, (PREFIX,), ("matter.*",)))
        old_id = ledger.enrol_key("old", "producer", KeyScope(FP, (PREFIX,), ("matter.*",)))
        ledger.revoke_key(old_id, "compromised")
        fp = Signer.from_file(ledger.key_path("fp"))
        old = Signer.from_file(ledger.key_path("old"))
    stranger = Signer(generate_private_key())
    # valid events, made by the SDK
    channel = InProcessChannel()
    sdk = Producer(FP, fp, channel)
    for case in ("c1", "c1", "c2", "c1", "c2", "c3", "c3"):
        sdk.emit(
            PREFIX + case,
            "matter.step_completed",
            actor=ACTOR,
            data={"step": "review", "outcome": "passed"},
            occurred_at=WHEN,
        )
    valid = list(channel.poll(100))
    first = SignedRecord.decode(valid[0])
    first_id = first.body.split(b'"event_id":"')[1].split(b'"')[0].decode()
    bad_sig = bytearray(valid[4])
    bad_sig[HEADER_LEN - 1] ^= 0x01
    good_body = _body(PREFIX + "c9", 1, None, 99)
    hostile: list[tuple[str, bytes]] = [
        ("bad_framing", random.Random(1).randbytes(300)),
        ("malformed_json", RECORD_MAGIC + fp.key_id + b"\0" * 64 + b"{not json"),
        ("schema_invalid", fp.sign(canonical_bytes({"v": 1, "hello": "world"})).encode()),
        ("bad_signature", bytes(bad_sig)),
        ("unknown_key", stranger.sign(good_body).encode()),
        ("revoked_key", old.sign(good_body).encode()),
        ("out_of_scope", fp.sign(_body("matter/4403-zg/x", 1, None, 99)).encode()),
        (
            "out_of_scope",
            fp.sign(
                _body(
                    PREFIX + "x",
                    1,
                    None,
                    99,
                    type="key.revoked",
                    data={"key_id": "00" * 32, "reason": "retired"},
                )
            ).encode(),
        ),
        (
            "too_large",
            fp.sign(
                _body(
                    PREFIX + "big", 1, None, 99, data={"step": "review", "reference": "x" * 70_000}
                )
            ).encode(),
        ),
        (
            "event_id_conflict",  # a replayed event id with an altered body
            fp.sign(
                _body(
                    PREFIX + "c1",
                    1,
                    None,
                    1,
                    event_id=first_id,
                    data={"step": "approve", "outcome": "approved"},
                )
            ).encode(),
        ),
        ("fork", fp.sign(_body(PREFIX + "c1", 1, None, 1)).encode()),  # same seq, other bytes
    ]
    assert hostile[-1][1] != valid[0]
    # valid events before, between and after the hostile ones; the fork and the replay come
    # after the event they collide with
    stream = [
        valid[0],
        valid[1],
        *[h[1] for h in hostile[:5]],
        valid[2],
        valid[3],
        *[h[1] for h in hostile[5:]],
        *valid[4:],
    ]
    produce_raw(kafka_bootstrap, topic, [(None, r) for r in stream])
    log = tmp_path / "ingest.log"
    group = f"g-{uuid.uuid4().hex[:8]}"
    proc = start_ingest(
        tmp_path / "ledger",
        kafka_bootstrap,
        topic,
        group,
        "--workers",
        "1",
        "--dead-letter-topic",
        dlq,
        log=log,
    )
    try:
        # genesis, two enrolments, one revocation + the valid events
        assert wait_for_rows(tmp_path / "ledger", 4 + len(valid), 90, proc) == 4 + len(valid)
        letters = consume_all(kafka_bootstrap, dlq, len(hostile), timeout=60)
        time.sleep(1.0)
        assert proc.poll() is None, log.read_text()  # still running after all of that
    finally:
        code = stop_gracefully(proc)
    assert code == 0, log.read_text()
    got = sorted((dict(m.headers)[REASON_HEADER].decode(), m.value) for m in letters)
    assert got == sorted(hostile), [g[0] for g in got]
    with Ledger.open(tmp_path / "ledger") as ledger:
        counts = ledger.store.dead_letter_counts()
        config, root = ledger.store.config, bytes.fromhex(ledger.config.root_key_id)
    assert sum(counts.values()) == len(hostile)
    from ledger.verify import verify_ledger

    assert verify_ledger(config, root, workers=1).intact


# -- crashes and rebalances ---------------------------------------------------------------------


@pytest.mark.slow
def test_sigkilled_ingester_restarted_appends_nothing_twice_and_loses_nothing(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    topic = make_topic(partitions=2)
    make = make_topic(name=f"{topic}.dead-letters")
    demo_ledger(tmp_path / "ledger")
    n = _fill(kafka_bootstrap, topic, tmp_path, 3000, seed=11)
    group = f"g-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "ingest.log"
    args = ("--workers", "1", "--batch-size", "200", "--dead-letter-topic", make)
    first = start_ingest(tmp_path / "ledger", kafka_bootstrap, topic, group, *args, log=log)
    try:
        reached = wait_for_rows(tmp_path / "ledger", BASE_ROWS + n // 3, 120, first)
    finally:
        kill_group(first)  # SIGKILL the ingester and its workers, mid-batch
    assert BASE_ROWS < reached < BASE_ROWS + n, log.read_text()
    second = start_ingest(
        tmp_path / "ledger", kafka_bootstrap, topic, group, *args, "--idle-exit", "8", log=log
    )
    try:
        assert second.wait(timeout=300) == 0, log.read_text()
    finally:
        if second.poll() is None:
            kill_group(second)
    assert ledger_rows(tmp_path / "ledger") == BASE_ROWS + n
    check_exactly_once(tmp_path / "ledger", per_system(3000, 11))
    verify = subprocess.run(
        [*NEIKONG, "verify", "--ledger", str(tmp_path / "ledger"), "--workers", "1"],
        cwd=REPO,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout.decode()


@pytest.mark.slow
def test_two_ingesters_with_rebalances_append_each_event_once(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    topic = make_topic(partitions=4)
    dlq = make_topic(name=f"{topic}.dead-letters")
    demo_ledger(tmp_path / "ledger")
    n = _fill(kafka_bootstrap, topic, tmp_path, 3000, seed=12)
    group = f"g-{uuid.uuid4().hex[:8]}"
    args = ("--workers", "0", "--batch-size", "100", "--dead-letter-topic", dlq)
    a = start_ingest(
        tmp_path / "ledger", kafka_bootstrap, topic, group, *args, log=tmp_path / "a.log"
    )
    b = None
    try:
        wait_for_rows(tmp_path / "ledger", BASE_ROWS + 300, 120, a)
        b = start_ingest(
            tmp_path / "ledger",
            kafka_bootstrap,
            topic,
            group,
            *args,
            "--idle-exit",
            "10",
            log=tmp_path / "b.log",
        )  # rebalance: A and B
        wait_for_rows(tmp_path / "ledger", BASE_ROWS + 1500, 180, b)
        assert stop_gracefully(a) == 0  # rebalance again: B takes every partition
        assert b.wait(timeout=300) == 0, (tmp_path / "b.log").read_text()
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                kill_group(proc)
    logs = (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()
    assert ledger_rows(tmp_path / "ledger") == BASE_ROWS + n, logs
    check_exactly_once(tmp_path / "ledger", per_system(3000, 12))


PRODUCER_SCRIPT = """
import sys
from pathlib import Path
from ledger.keys import Signer
from producers.kafka_transport import KafkaTransport
from producers.producer import Producer

key, outbox, bootstrap, topic, n = sys.argv[1:6]
transport = KafkaTransport(bootstrap, topic)
producer = Producer("4403-fapiao", Signer.from_file(Path(key)), transport, outbox=outbox)
for i in range(int(n)):
    producer.emit("matter/4403-fp/c%d" % (i % 7), "matter.step_completed",
                  actor={"official": "4403-00001", "role": "handler"},
                  data={"step": "review"}, occurred_at="2026-11-02T01:30:00Z")
    if i % 50 == 49:
        print("emitted", i + 1, flush=True)
producer.close(timeout=60)
transport.close()
print("done", flush=True)
"""


@pytest.mark.slow
def test_sigkilled_producer_restarted_resends_without_duplicates(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    topic = make_topic(partitions=2)
    with Ledger.init(tmp_path / "ledger") as ledger:
        ledger.enrol_key("fp", "producer", KeyScope(FP, (PREFIX,), ("matter.*",)))
        key = ledger.key_path("fp")
    outbox = tmp_path / "fp.outbox"
    cmd = [sys.executable, "-c", PRODUCER_SCRIPT, str(key), str(outbox), kafka_bootstrap, topic]
    crashing = subprocess.Popen(
        [*cmd, "2000"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert crashing.stdout is not None
    for line in crashing.stdout:
        if line.startswith(b"emitted 400"):
            crashing.kill()  # SIGKILL while rows are being written and sent
            break
    crashing.wait(timeout=60)
    crashing.stdout.close()
    resumed = subprocess.run([*cmd, "300"], cwd=REPO, capture_output=True, timeout=300, check=True)
    assert resumed.stdout.decode().strip().endswith("done")
    import sqlite3

    conn = sqlite3.connect(outbox)
    total, undelivered = conn.execute(
        "SELECT (SELECT seq FROM producer), COUNT(*) FROM outbox WHERE delivered_at IS NULL"
    ).fetchone()
    conn.close()
    assert undelivered == 0
    assert 700 <= total < 2300
    with Ledger.open(tmp_path / "ledger") as ledger:
        source = KafkaRecordSource(kafka_bootstrap, topic, f"g-{uuid.uuid4().hex[:8]}")
        try:
            Ingester(
                ledger.appender(workers=0),
                source,
                settings=IngestSettings(idle_exit_s=5),
                stop_when=lambda s: ledger.store.max_position() >= 2 + total and s.consumed > 0,
            ).run()
        finally:
            source.close()
    check_exactly_once(tmp_path / "ledger", {FP: total})


SLOW_PRODUCERS = """
import sys, time
from pathlib import Path
from ledger.keys import Signer
from producers.kafka_transport import KafkaTransport
from producers.producer import Producer
from producers.simulator import SYSTEMS, simulate
from ops.pipeline import SimEmitter

ledger, outbox, bootstrap, topic, n, seed = sys.argv[1:7]
transport = KafkaTransport(bootstrap, topic,
                           extra={"delivery_timeout_ms": 300_000, "request_timeout_ms": 10_000})
producers = {
    s: Producer(s, Signer.from_file(Path(ledger, "keys", s + ".key")), transport,
                outbox=Path(outbox, s + ".db"))
    for s in SYSTEMS
}
emitter = SimEmitter(producers, seed=int(seed))
for i, sim in enumerate(simulate(int(seed), int(n))):
    emitter.emit(sim)
    if i % 50 == 49:
        print("emitted", i + 1, flush=True)
        time.sleep(0.9)  # ~50 events/s: before, during and after the broker stop
for p in producers.values():
    p.flush(240)
    p.close()
transport.close()
print("done", flush=True)
"""


@pytest.mark.slow
def test_broker_down_for_20_s_while_producers_keep_emitting(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    topic = make_topic(partitions=2)
    dlq = make_topic(name=f"{topic}.dead-letters")
    demo_ledger(tmp_path / "ledger")
    group = f"g-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "ingest.log"
    ingest = start_ingest(
        tmp_path / "ledger",
        kafka_bootstrap,
        topic,
        group,
        "--workers",
        "0",
        "--dead-letter-topic",
        dlq,
        log=log,
    )
    with (tmp_path / "producer.log").open("wb") as producer_log:
        producer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SLOW_PRODUCERS,
                str(tmp_path / "ledger"),
                str(tmp_path / "outbox"),
                kafka_bootstrap,
                topic,
                "1500",
                "21",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=producer_log,
        )
    try:
        assert producer.stdout is not None
        for line in producer.stdout:
            if line.startswith(b"emitted 200"):
                break
        stop_and_restart_broker(kafka_bootstrap, down_s=20)  # producers keep emitting
        out = producer.stdout.read()
        assert producer.wait(timeout=300) == 0, (tmp_path / "producer.log").read_text()
        assert out.decode().strip().endswith("done")
        assert wait_for_rows(tmp_path / "ledger", BASE_ROWS + 1500, 240, ingest) == (
            BASE_ROWS + 1500
        ), log.read_text()
    finally:
        if producer.poll() is None:
            kill_group(producer)
        if producer.stdout is not None:
            producer.stdout.close()
        stop_gracefully(ingest)
    check_exactly_once(tmp_path / "ledger", per_system(1500, 21))
