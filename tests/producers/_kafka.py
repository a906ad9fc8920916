"""Shared helpers for the tests that run against the real Kafka broker (ops/kafka/start.sh).

`require_kafka()` skips a test on a developer machine without `NEIKONG_TEST_KAFKA`, and FAILS
it in CI (`CI` set): the Kafka tests are never skipped there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.verify import VerifyReport, verify_ledger
from ops.pipeline import SimEmitter
from producers.kafka_transport import TopicSpec, delete_topics, ensure_topics
from producers.producer import Producer
from producers.simulator import SYSTEMS, producer_scope, simulate

REPO = Path(__file__).resolve().parents[2]
# `neikong` with the Kafka commands registered (whether or not ops/cli.py imports them yet)
NEIKONG = [sys.executable, "-c", "import ops.cli_kafka; from ops.cli import main; main()"]

kafka = pytest.mark.kafka


def require_kafka() -> str:
    bootstrap = os.environ.get("NEIKONG_TEST_KAFKA") or None
    if bootstrap is None:
        if os.environ.get("CI"):
            pytest.fail("CI must provide the Kafka broker (NEIKONG_TEST_KAFKA); see ops/kafka/")
        pytest.skip("no Kafka broker: set NEIKONG_TEST_KAFKA (ops/kafka/start.sh prints it)")
    return bootstrap


@pytest.fixture
def kafka_bootstrap() -> str:
    return require_kafka()


@pytest.fixture
def make_topic(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """Create fresh topics (name prefix `test-`); deleted again after the test."""
    made: list[str] = []

    def make(partitions: int = 1, prefix: str = "test", name: str | None = None) -> str:
        name = name or f"{prefix}-{uuid.uuid4().hex[:10]}"
        ensure_topics(kafka_bootstrap, [TopicSpec(name, partitions=partitions)])
        made.append(name)
        return name

    yield make
    if made:
        try:
            delete_topics(kafka_bootstrap, made)
        except Exception as exc:  # the broker may be gone after a fault test
            print(f"could not delete test topics {made}: {exc}", file=sys.stderr)


# -- ledgers ----------------------------------------------------------------------------------


def demo_ledger(directory: Path) -> dict[str, Signer]:
    """A ledger with the four simulated producer systems enrolled; closed again."""
    with Ledger.init(directory) as ledger:
        signers: dict[str, Signer] = {}
        for system in SYSTEMS:
            ledger.enrol_key(system, "producer", producer_scope(system))
            signers[system] = Signer.from_file(ledger.key_path(system))
    return signers


def emit_simulated(producers: dict[str, Producer], events: int, seed: int) -> int:
    """Emit the first `events` simulated events; return how many were emitted."""
    emitter = SimEmitter(producers, seed=seed)  # references resolved, PII committed
    n = 0
    for sim in simulate(seed, events):
        emitter.emit(sim)
        n += 1
    return n


def ledger_rows(directory: Path) -> int:
    """Events in a SQLite ledger, read without opening it for writing."""
    db = directory / "ledger.db"
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM stored_events").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def wait_for_rows(directory: Path, target: int, timeout: float, proc: Any = None) -> int:
    deadline = time.monotonic() + timeout
    rows = ledger_rows(directory)
    while rows < target and time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
        rows = ledger_rows(directory)
    return rows


def check_exactly_once(directory: Path, expected_per_system: dict[str, int]) -> VerifyReport:
    """The ledger holds each emitted event once, verifies intact, producer seqs gap-free."""
    with Ledger.open(directory) as ledger:
        config, root = ledger.store.config, bytes.fromhex(ledger.config.root_key_id)
        heads = ledger.store.producer_heads()
        parked = ledger.store.parked()
        dead = ledger.store.dead_letter_counts()
    report = verify_ledger(config, root, workers=1)
    assert report.intact, report.finding_counts
    assert not parked, f"{len(parked)} records still parked"
    assert not dead, dead
    for system, count in expected_per_system.items():
        assert heads.get(system, 0) == count, (system, heads.get(system), count)
        assert report.producers.get(system, 0) == count, (system, report.producers)
    conn = sqlite3.connect(f"file:{directory / 'ledger.db'}?mode=ro", uri=True)
    try:
        ids = conn.execute("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM nk_event_ids").fetchone()
    finally:
        conn.close()
    assert ids[0] == ids[1]
    return report


def per_system(events: int, seed: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sim in simulate(seed, events):
        counts[sim.system] = counts.get(sim.system, 0) + 1
    return counts


# -- processes --------------------------------------------------------------------------------


def start_ingest(
    ledger_dir: Path, bootstrap: str, topic: str, group: str, *extra: str, log: Path
) -> subprocess.Popen[bytes]:
    """`neikong ingest` in its own session (so a SIGKILL can take its workers too)."""
    with log.open("ab") as handle:
        return subprocess.Popen(
            [
                *NEIKONG,
                "ingest",
                "--ledger",
                str(ledger_dir),
                "--bootstrap",
                bootstrap,
                "--topic",
                topic,
                "--group",
                group,
                "--session-timeout-ms",
                "6000",
                "--metrics-port",
                "0",  # several ingesters run at once; the default port fits one per host
                *extra,
            ],
            cwd=REPO,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal the process and everything in its session (workers, fork server)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    proc.wait(timeout=60)


def stop_gracefully(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[Any]:
    """Every record of `topic` from the beginning (plain consumer, no group)."""
    from kafka import KafkaConsumer, TopicPartition  # noqa: TID251 - a plain client on purpose

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def produce_raw(bootstrap: str, topic: str, items: Iterable[tuple[bytes | None, bytes]]) -> None:
    """Write straight to the topic with a plain kafka-python producer (hostile input)."""
    from kafka import KafkaProducer  # noqa: TID251 - a plain client on purpose

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        max_request_size=2 * 1024 * 1024,
    )
    try:
        for key, value in items:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=60)
    finally:
        producer.close()


# -- the broker itself (fault tests) ------------------------------------------------------------

_RESTARTED: list[subprocess.Popen[bytes]] = []  # kept referenced: the broker outlives the test


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def stop_and_restart_broker(bootstrap: str, down_s: float) -> None:
    """Stop the broker that ops/kafka/start.sh started (SIGTERM, clean shutdown), keep it down
    for `down_s` seconds, start it again with the same command line and data (NOT start.sh,
    which wipes the data), record the new PID where stop.sh looks, wait until it is ready."""
    home = Path(os.environ.get("NEIKONG_KAFKA_HOME") or Path.home() / ".cache/neikong/kafka")
    pidfile = home / "kafka.pid"
    pid = int(pidfile.read_text().strip())
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    assert b"kafka.Kafka" in argv, argv
    port = bootstrap.rsplit(":", 1)[1]
    assert f":{port}".encode() in Path(argv[-1].decode()).read_bytes(), "not this broker"
    cwd = os.readlink(f"/proc/{pid}/cwd")
    env = dict(
        item.split(b"=", 1)
        for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if b"=" in item
    )
    logs = next(a for a in argv if a.startswith(b"-Dkafka.logs.dir=")).split(b"=", 1)[1]
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    while _alive(pid):
        assert time.monotonic() - started < 60, "the broker did not stop"
        time.sleep(0.2)
    time.sleep(max(0.0, down_s - (time.monotonic() - started)))
    console = (Path(logs.decode()) / "console.log").open("ab")
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=console,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    console.close()
    _RESTARTED.append(proc)
    pidfile.write_text(f"{proc.pid}\n")
    subprocess.run(
        [
            sys.executable,
            str(REPO / "ops/kafka/kafka_ready.py"),
            "--host",
            "127.0.0.1",
            "--port",
            port,
            "--timeout",
            "120",
            "--pid",
            str(proc.pid),
            "-q",
        ],
        check=True,
        timeout=150,
    )
