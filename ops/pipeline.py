"""Running producers into a ledger in one process (the embedded default)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from ledger.appender import Appender, Outcome
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.transport import InProcessChannel
from producers.producer import Producer
from producers.simulator import SYSTEMS, SimEvent, producer_scope, simulate

__all__ = ["RunStats", "emit_simulated", "enrol_demo_producers", "run_simulation"]


@dataclass
class RunStats:
    published: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, batch: list[Outcome]) -> None:
        for o in batch:
            self.outcomes[o.status] = self.outcomes.get(o.status, 0) + 1


def enrol_demo_producers(ledger: Ledger) -> dict[str, Signer]:
    signers: dict[str, Signer] = {}
    for system in SYSTEMS:
        ledger.enrol_key(
            system,
            "producer",
            producer_scope(system),
            note="synthetic producer system for the demo",
        )
        signers[system] = Signer.from_file(ledger.key_path(system))
    return signers


def emit_simulated(
    producers: dict[str, Producer], source: Iterable[SimEvent]
) -> Iterator[SimEvent]:
    """Emit each simulated event through its system's producer; yield it once published."""
    for sim in source:
        producer = producers[sim.system]
        producer.emit(
            sim.stream,
            sim.type,
            actor=sim.actor,
            data=sim.data,
            occurred_at=sim.occurred_at,
            subject=sim.subject,
        )
        if sim.type in ("matter.concluded", "matter.withdrawn"):
            producer.forget(sim.stream)
        yield sim


def run_simulation(
    ledger: Ledger,
    signers: dict[str, Signer],
    *,
    events: int,
    seed: int,
    workers: int,
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> RunStats:
    """Emit `events` simulated events through the in-process channel and append them."""
    channel = InProcessChannel()
    rng = random.Random(seed ^ 0x5EED)  # noqa: S311 - reproducible ids
    producers = {s: Producer(s, signers[s], channel, rng=rng) for s in signers}
    appender: Appender = ledger.appender(workers=workers)
    stats = RunStats()
    source = simulate(seed, events)

    def batches() -> Iterator[list[bytes]]:
        for _ in emit_simulated(producers, source):
            stats.published += 1
            if len(channel) >= batch_size:
                yield list(channel.poll(batch_size))
        while len(channel):
            yield list(channel.poll(batch_size))

    started = time.perf_counter()
    for outcome in appender.submit_many(batches()):
        channel.commit(len(outcome))
        stats.add(outcome)
        if progress:
            progress(len(outcome))
    stats.seconds = time.perf_counter() - started
    return stats
