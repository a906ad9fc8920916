"""`neikong demo --kafka HOST:PORT`: the main job with the distributed transport.

The same simulated run as `ops.pipeline.run_simulation`, but each producer system writes
through its durable outbox and the Kafka transport to a fresh topic, and an ingest loop
(`ops.ingest.Ingester`, the code behind `neikong ingest`) consumes it as a consumer-group member
and appends to the ledger. Returns the same `RunStats`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ledger.keys import Signer
from ledger.ledger import Ledger
from ops.ingest import Ingester, IngestSettings, IngestStats, KafkaDeadLetters
from ops.pipeline import RunStats, SimEmitter
from producers.kafka_source import KafkaRecordSource
from producers.kafka_transport import KafkaTransport, TopicSpec, delete_topics, ensure_topics
from producers.producer import Producer
from producers.simulator import simulate

__all__ = ["run_demo_via_kafka"]

log = logging.getLogger("neikong.demo")


def run_demo_via_kafka(
    ledger: Ledger,
    signers: dict[str, Signer],
    events: int,
    seed: int,
    bootstrap: str,
    *,
    workers: int = 0,
    partitions: int = 3,
    batch_size: int = 1000,
    emit_batch: int = 200,
    outbox_dir: Path | None = None,
    keep_topics: bool = False,
    progress: Callable[[int], None] | None = None,
) -> RunStats:
    """Emit `events` simulated events through outbox + Kafka; ingest them into `ledger`.

    Producers emit in chunks of `emit_batch` events per durable outbox commit
    (`Producer.batch`); the ingest loop runs in a thread meanwhile and stops once the ledger
    holds every event. Topics are `neikong-demo-<id>` and its dead-letter topic, deleted
    afterwards unless `keep_topics`.
    """
    run = uuid.uuid4().hex[:8]
    topic, dlq_topic = f"neikong-demo-{run}", f"neikong-demo-{run}.dead-letters"
    ensure_topics(bootstrap, [TopicSpec(topic, partitions=partitions), TopicSpec(dlq_topic, 1)])
    outbox_dir = outbox_dir or ledger.directory / "outbox"
    base = ledger.store.max_position()
    transport = KafkaTransport(bootstrap, topic, client_id=f"neikong-demo-{run}")
    rng = random.Random(seed ^ 0x5EED)  # noqa: S311 - reproducible ids
    producers = {
        s: Producer(s, signers[s], transport, rng=rng, outbox=outbox_dir / f"{s}-{run}.db")
        for s in signers
    }
    source = KafkaRecordSource(bootstrap, topic, f"neikong-demo-{run}")
    dead = KafkaTransport(bootstrap, dlq_topic)
    published = 0
    emitted = threading.Event()

    def done(_: IngestStats) -> bool:
        return emitted.is_set() and ledger.store.max_position() >= base + published

    ingester = Ingester(
        ledger.appender(workers=workers, source=f"kafka:{topic}"),
        source,
        dead_letters=KafkaDeadLetters(dead),
        settings=IngestSettings(batch_size=batch_size),
        stop_when=done,
        progress=progress,
    )
    failure: list[BaseException] = []

    def ingest() -> None:
        try:
            ingester.run()
        except BaseException as exc:  # reported by the caller's thread
            failure.append(exc)

    started = time.perf_counter()
    thread = threading.Thread(target=ingest, name="neikong-demo-ingest", daemon=True)
    thread.start()
    try:
        sims = simulate(seed, events)
        emitter = SimEmitter(producers, seed=seed)
        while True:
            chunk = [sim for _, sim in zip(range(emit_batch), sims, strict=False)]
            if not chunk:
                break
            # every system's outbox group-commits the chunk; events go out in simulation
            # order, so a reference (a decision a matter step executes) is already resolved
            with contextlib.ExitStack() as batches:
                for system in dict.fromkeys(sim.system for sim in chunk):
                    batches.enter_context(producers[system].batch())
                for sim in chunk:
                    emitter.emit(sim)
            published += len(chunk)
            if failure:
                break
        for producer in producers.values():
            producer.flush(300)
        emitted.set()
        while thread.is_alive() and not failure:
            thread.join(0.5)
    finally:
        emitted.set()
        ingester.stop.set()
        thread.join(60)
        for producer in producers.values():
            producer.close(timeout=30)
        transport.close()
        source.close()
        dead.close()
        if not keep_topics:
            try:
                delete_topics(bootstrap, [topic, dlq_topic])
            except Exception as exc:
                log.warning("could not delete the demo topics: %s", exc)
    if failure:
        raise failure[0]
    stats = ingester.stats
    outcomes = {"appended": stats.ledger_gained}
    for status in ("duplicate", "rejected"):
        if stats.outcomes.get(status):
            outcomes[status] = stats.outcomes[status]
    if stats.still_parked:
        outcomes["parked"] = stats.still_parked
    return RunStats(published=published, outcomes=outcomes, seconds=time.perf_counter() - started)
