"""`neikong bench --kafka HOST:PORT`: the Kafka path measured against its baselines, in one run.

Figures (keys of the JSON object):
- kafka_raw_per_s           plain kafka-python, the same record bytes and keys, the same durable
                            producer settings: produce everything (acknowledged), then consume it
                            all from the beginning; events / (produce + consume seconds).
- sdk_emit_per_s            `Producer.emit` with its durable outbox (each call returns only once
                            its row is fsynced) from `emit_threads` threads of one process, the
                            Kafka transport delivering in the background meanwhile. The nine
                            producer systems of the process share one outbox file (one fsync
                            per group commit covers all of them).
- sdk_emit_cpu_us_per_event CPU time of the whole process (emitting threads, outbox writer,
                            delivery) during that emit phase, per event: with `emit_threads`
                            callers each waiting for its fsync, the rate is bounded by
                            emit_threads / commit latency and by the CPU the process gets.
- e2e_per_s                 producer SDK → Kafka → `neikong ingest` (its own process) → durable
                            ledger: events / seconds from the first emit until the ledger holds
                            the last event; the producers call `emit` from `emit_threads`
                            threads, each call waiting for its fsync (as sdk_emit_per_s).
- e2e_batched_per_s         the same with the producers emitting as `neikong demo --kafka` does:
                            in simulation order, 500 events per durable commit
                            (`Producer.batch`).
- e2e_vs_inprocess_ingest   e2e_per_s / the in-process ingest rate (the appender fed from
                            memory, as `neikong bench` measures `ingest_per_s`) of the same run.
Extra figures: the raw produce and consume halves, the SDK's delivery rate, `Producer.batch`
emits, and `neikong ingest` alone draining a topic that is already full (kafka_ingest_per_s).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from ledger.keys import Signer
from ledger.ledger import CONFIG_FILE, Ledger
from ops.pipeline import enrol_demo_producers
from producers.kafka_transport import (
    COMPRESSION,
    KafkaTransport,
    TopicSpec,
    delete_topics,
    ensure_topics,
    producer_settings,
)
from producers.outbox import Outbox
from producers.producer import Producer
from producers.simulator import SimEvent, simulate

__all__ = ["run_kafka_bench"]

INGEST = [sys.executable, "-c", "import ops.cli_kafka; from ops.cli import main; main()"]


class _Capture:
    """A transport that keeps (stream, record) in memory (records made once, not timed)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []

    def publish(self, stream: str, record: bytes) -> None:
        self.items.append((stream, record))

    def flush(self, timeout: float | None = None) -> None:
        return None


def _emit(producer: Producer, sim: SimEvent) -> None:
    producer.emit(
        sim.stream,
        sim.type,
        actor=sim.actor,
        data=sim.data,
        occurred_at=sim.occurred_at,
        subject=sim.subject,
    )


def _rows(directory: Path) -> int:
    conn = sqlite3.connect(f"file:{directory / 'ledger.db'}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM stored_events").fetchone()[0])
    finally:
        conn.close()


class _Bench:
    STALL_S = 180.0  # no new ledger row this long: the end-to-end run has failed

    def __init__(  # noqa: PLR0917 - private, called once
        self,
        scratch: Path,
        bootstrap: str,
        events: int,
        seed: int,
        workers: int,
        partitions: int,
        emit_threads: int,
        log: Callable[[str], None],
    ) -> None:
        self.scratch = scratch
        self.bootstrap = bootstrap
        self.events = events
        self.seed = seed
        self.workers = workers
        self.partitions = partitions
        self.emit_threads = emit_threads
        self.log = log
        self.run = uuid.uuid4().hex[:8]
        self.topics: list[str] = []
        self.sims = list(simulate(seed, events))

    # -- set-up ----------------------------------------------------------------------------

    def topic(self, name: str) -> str:
        topic = f"neikong-bench-{self.run}-{name}"
        ensure_topics(
            self.bootstrap,
            [
                TopicSpec(topic, partitions=self.partitions),
                TopicSpec(f"{topic}.dead-letters", partitions=1),
            ],
        )
        self.topics += [topic, f"{topic}.dead-letters"]
        return topic

    def ledger_copy(self, template: Path, name: str) -> Path:
        """A copy of the template ledger (same keys) with its own database file."""
        target = self.scratch / name
        shutil.copytree(template, target)
        config_path = target / CONFIG_FILE
        config = json.loads(config_path.read_text("utf-8"))
        config["store_url"] = f"sqlite:///{target / 'ledger.db'}"
        config_path.write_text(json.dumps(config, indent=2), "utf-8")
        return target

    def signers(self, ledger_dir: Path) -> dict[str, Signer]:
        return {
            s: Signer.from_file(ledger_dir / "keys" / f"{s}.key")
            for s in sorted({sim.system for sim in self.sims})
        }

    def records(self, ledger_dir: Path) -> list[tuple[str, bytes]]:
        capture = _Capture()
        rng = random.Random(self.seed)  # noqa: S311 - reproducible ids
        producers = {
            s: Producer(s, k, capture, rng=rng) for s, k in self.signers(ledger_dir).items()
        }
        for sim in self.sims:
            _emit(producers[sim.system], sim)
        return capture.items

    # -- figures ---------------------------------------------------------------------------

    def inprocess_ingest(self, ledger_dir: Path, records: list[tuple[str, bytes]]) -> float:
        batches = [[r for _, r in records[i : i + 1000]] for i in range(0, len(records), 1000)]
        with Ledger.open(ledger_dir) as ledger:
            appender = ledger.appender(workers=self.workers)
            started = time.perf_counter()
            appended = sum(
                sum(o.status == "appended" for o in out) for out in appender.submit_many(batches)
            )
            elapsed = time.perf_counter() - started
        if appended != len(records):
            raise RuntimeError(f"in-process ingest appended {appended} of {len(records)}")
        return len(records) / elapsed

    def kafka_raw(self, records: list[tuple[str, bytes]]) -> tuple[float, float, float]:
        topic = self.topic("raw")
        producer = KafkaProducer(**producer_settings(self.bootstrap))
        started = time.perf_counter()
        for stream, record in records:
            producer.send(topic, key=stream.encode(), value=record)
        producer.flush(timeout=600)
        produced = time.perf_counter() - started
        producer.close()
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_poll_records=5000,
        )
        try:
            tps = [TopicPartition(topic, p) for p in range(self.partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            got = 0
            started = time.perf_counter()
            while got < len(records):
                for batch in consumer.poll(timeout_ms=1000).values():
                    got += len(batch)
                if time.perf_counter() - started > 600:
                    raise RuntimeError(f"raw consume got {got} of {len(records)} records")
            consumed = time.perf_counter() - started
        finally:
            consumer.close()
        n = len(records)
        return n / (produced + consumed), n / produced, n / consumed

    def _producers(
        self, ledger_dir: Path, topic: str, name: str
    ) -> tuple[dict[str, Producer], KafkaTransport, Outbox]:
        """One producer per system, all sharing one outbox file (one fsync per group commit
        covers every system of the process) and one Kafka transport."""
        transport = KafkaTransport(self.bootstrap, topic)
        outbox = Outbox(self.scratch / f"outbox-{name}.db", limit=max(100_000, self.events))
        producers = {
            s: Producer(s, k, transport, outbox=outbox) for s, k in self.signers(ledger_dir).items()
        }
        return producers, transport, outbox

    @staticmethod
    def _close(producers: dict[str, Producer], transport: KafkaTransport, outbox: Outbox) -> None:
        for p in producers.values():
            p.close()
        outbox.close()
        transport.close()

    def emit_threaded(self, producers: dict[str, Producer]) -> float:
        """Emit every simulated event from `emit_threads` threads (a stream stays in one
        thread, in order); return the seconds until the last `emit` returned."""
        shares: list[list[SimEvent]] = [[] for _ in range(self.emit_threads)]
        for sim in self.sims:
            shares[hash(sim.stream) % self.emit_threads].append(sim)
        failures: list[BaseException] = []

        def work(share: list[SimEvent]) -> None:
            try:
                for sim in share:
                    _emit(producers[sim.system], sim)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(s,)) for s in shares]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise failures[0]
        return time.perf_counter() - started

    def sdk_emit(self, ledger_dir: Path) -> tuple[float, float, float, str]:
        """(emits/s, delivered/s, process CPU µs per event during the emit phase, topic)."""
        topic = self.topic("sdk")
        producers, transport, outbox = self._producers(ledger_dir, topic, "sdk")
        try:
            cpu = time.process_time()
            started = time.perf_counter()
            emitted = self.emit_threaded(producers)
            cpu = time.process_time() - cpu
            for p in producers.values():
                p.flush(600)
            delivered = time.perf_counter() - started
        finally:
            self._close(producers, transport, outbox)
        return self.events / emitted, self.events / delivered, cpu / self.events * 1e6, topic

    def emit_batched(self, producers: dict[str, Producer], chunk: int = 500) -> None:
        """Emit every simulated event in simulation order, `chunk` at a time inside the
        `batch()` blocks of every producer (one shared outbox: one commit covers the chunk)."""
        for i in range(0, len(self.sims), chunk):
            with contextlib.ExitStack() as blocks:
                for p in producers.values():
                    blocks.enter_context(p.batch())
                for sim in self.sims[i : i + chunk]:
                    _emit(producers[sim.system], sim)

    def sdk_batch_emit(self, ledger_dir: Path) -> float:
        topic = self.topic("batch")
        producers, transport, outbox = self._producers(ledger_dir, topic, "batch")
        try:
            started = time.perf_counter()
            self.emit_batched(producers)
            elapsed = time.perf_counter() - started
            for p in producers.values():
                p.flush(600)
        finally:
            self._close(producers, transport, outbox)
        return self.events / elapsed

    def start_ingest(
        self, ledger_dir: Path, topic: str, name: str
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = self.scratch / f"ingest-{name}.log"
        with log_path.open("wb") as handle:
            proc = subprocess.Popen(
                [
                    *INGEST,
                    "ingest",
                    "--ledger",
                    str(ledger_dir),
                    "--bootstrap",
                    self.bootstrap,
                    "--topic",
                    topic,
                    "--group",
                    f"bench-{self.run}-{name}",
                    "--workers",
                    str(self.workers),
                    "--session-timeout-ms",
                    "6000",
                ],
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while b"partitions assigned" not in log_path.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop(proc)
                raise RuntimeError(f"neikong ingest did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        return proc, log_path

    @staticmethod
    def stop(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)

    def wait_ledger(
        self, ledger_dir: Path, target: int, proc: subprocess.Popen[bytes], log_path: Path
    ) -> None:
        """Wait until the ledger holds `target` rows; fail if ingest exits or the ledger does
        not grow for STALL_S seconds (a stalled consumer rejoins well within that)."""
        rows, moved = _rows(ledger_dir), time.monotonic()
        while rows < target:
            if proc.poll() is not None or time.monotonic() - moved > self.STALL_S:
                raise RuntimeError(
                    f"the ledger holds {rows} of {target} rows "
                    f"(no progress for {time.monotonic() - moved:.0f} s): "
                    f"{log_path.read_text()[-2000:]}"
                )
            time.sleep(0.02)
            now_rows = _rows(ledger_dir)
            if now_rows != rows:
                rows, moved = now_rows, time.monotonic()

    def kafka_ingest(self, ledger_dir: Path, topic: str) -> float:
        """`neikong ingest` draining a full topic (timed from its partition assignment)."""
        base = _rows(ledger_dir)
        proc, log_path = self.start_ingest(ledger_dir, topic, "drain")
        started = time.perf_counter()
        try:
            self.wait_ledger(ledger_dir, base + self.events, proc, log_path)
            return self.events / (time.perf_counter() - started)
        finally:
            self.stop(proc)

    def e2e(self, ledger_dir: Path, *, threaded: bool) -> float:
        name = "e2e-threaded" if threaded else "e2e"
        topic = self.topic(name)
        base = _rows(ledger_dir)
        proc, log_path = self.start_ingest(ledger_dir, topic, name)
        try:
            producers, transport, outbox = self._producers(ledger_dir, topic, name)
            try:
                started = time.perf_counter()
                if threaded:
                    self.emit_threaded(producers)
                else:
                    self.emit_batched(producers)
                self.wait_ledger(ledger_dir, base + self.events, proc, log_path)
                return self.events / (time.perf_counter() - started)
            finally:
                self._close(producers, transport, outbox)
        finally:
            self.stop(proc)


def run_kafka_bench(
    *,
    events: int,
    bootstrap: str,
    workers: int | None = None,
    work_dir: Path | None = None,
    log: Callable[[str], None] = print,
    seed: int = 11,
    partitions: int = 1,
    emit_threads: int = 16,
    inprocess_ingest_per_s: float | None = None,
) -> dict[str, Any]:
    """Measure the Kafka figures (module docstring). Pass `inprocess_ingest_per_s` when the
    caller measured the in-process ingest rate already; otherwise it is measured here."""
    workers = workers or os.cpu_count() or 1
    scratch = Path(tempfile.mkdtemp(prefix="neikong-kafka-bench-", dir=work_dir))
    bench = _Bench(scratch, bootstrap, events, seed, workers, partitions, emit_threads, log)
    try:
        template = scratch / "template"
        with Ledger.init(template) as ledger:
            enrol_demo_producers(ledger)
        log(f"kafka bench: signing {events} events (not timed)…")
        records = bench.records(template)
        if inprocess_ingest_per_s is None:
            log(f"kafka bench: in-process ingest with {workers} workers…")
            inprocess_ingest_per_s = bench.inprocess_ingest(
                bench.ledger_copy(template, "inprocess"), records
            )
        log(f"kafka bench: raw kafka-python produce then consume ({partitions} partitions)…")
        raw, raw_produce, raw_consume = bench.kafka_raw(records)
        del records
        log(f"kafka bench: SDK emit with its durable outbox ({emit_threads} threads)…")
        sdk, sdk_delivered, sdk_cpu_us, sdk_topic = bench.sdk_emit(template)
        log("kafka bench: SDK batch emit…")
        batch = bench.sdk_batch_emit(template)
        log("kafka bench: neikong ingest draining the SDK's topic…")
        drain = bench.kafka_ingest(bench.ledger_copy(template, "drain"), sdk_topic)
        log("kafka bench: end to end, SDK → Kafka → neikong ingest → ledger…")
        e2e = bench.e2e(bench.ledger_copy(template, "e2e-threaded"), threaded=True)
        log("kafka bench: end to end with batched emits…")
        e2e_batched = bench.e2e(bench.ledger_copy(template, "e2e"), threaded=False)
    finally:
        try:
            if bench.topics:
                delete_topics(bootstrap, bench.topics)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return {
        "kafka_events": events,
        "kafka_partitions": partitions,
        "kafka_compression": COMPRESSION,
        "emit_threads": emit_threads,
        "kafka_raw_per_s": round(raw),
        "kafka_raw_produce_per_s": round(raw_produce),
        "kafka_raw_consume_per_s": round(raw_consume),
        "sdk_emit_per_s": round(sdk),
        "sdk_delivered_per_s": round(sdk_delivered),
        "sdk_emit_cpu_us_per_event": round(sdk_cpu_us),
        "sdk_batch_emit_per_s": round(batch),
        "kafka_ingest_per_s": round(drain),
        "e2e_per_s": round(e2e),
        "e2e_batched_per_s": round(e2e_batched),
        "inprocess_ingest_per_s": round(inprocess_ingest_per_s),
        "e2e_vs_inprocess_ingest": round(e2e / inprocess_ingest_per_s, 3),
    }
