"""Running producers into a ledger in one process (the embedded default).

`emit_simulated` is the emitter for the simulated office: it resolves each event's references
to earlier events (placeholders → the event ids the producers assigned), turns personal values
into salted commitments (`ledger.pii`; values and salts go to the PII store when one is given),
and signs through the system's producer. Salts come from a generator seeded from the run, so
a simulated run is reproducible byte for byte; real producers MUST use random salts.

`run_simulation` writes the run's ground-truth labels as JSON lines to `<ledger>/labels.jsonl`
("beside the ledger"), replaced atomically once the run is appended: one file per run.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ledger.appender import Appender, Outcome
from ledger.files import replace_atomically
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.pii import PiiStore, commitment
from ledger.transport import InProcessChannel
from producers.producer import Producer
from producers.simulator import SYSTEMS, Label, SimAnomalies, SimEvent, producer_scope, simulate

__all__ = [
    "LABELS_FILE",
    "RunStats",
    "SimEmitter",
    "emit_simulated",
    "enrol_demo_producers",
    "run_simulation",
    "write_labels",
]

LABELS_FILE = "labels.jsonl"


@dataclass
class RunStats:
    published: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    by_type: dict[str, int] = field(default_factory=dict)
    labels: list[Label] = field(default_factory=list)

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


class SimEmitter:
    """Emits simulated events: references resolved, personal values committed.

    Personal values are held by the PII store (`commit_later`) until the caller flushes it,
    which it MUST do before the events carrying their commitments are appended
    (`run_simulation` flushes before handing each batch to the appender)."""

    def __init__(
        self,
        producers: dict[str, Producer],
        *,
        seed: int = 0,
        pii_store: PiiStore | None = None,
    ) -> None:
        self.producers = producers
        self.pii_store = pii_store
        self._salts = random.Random(seed ^ 0x5A175A17)  # noqa: S311 - reproducible simulation
        self._ids: dict[str, str] = {}  # placeholder -> the event id the producer assigned

    def emit(self, sim: SimEvent) -> str:
        """Sign and publish one simulated event; return its event id."""
        data: dict[str, Any] = sim.data
        if sim.refs:
            data = dict(data)
            for name in sim.refs:
                data[name] = self._ids.get(data[name], data[name])
        pii: dict[str, str] | None = None
        if sim.pii:
            official = sim.subject.get("official", sim.actor["official"])
            pii = {}
            for name, value in sim.pii.items():
                salt = self._salts.randbytes(32)
                if self.pii_store is not None:
                    pii[name] = self.pii_store.commit_later(official, name, value, salt)
                else:
                    pii[name] = commitment(value, salt)
        producer = self.producers[sim.system]
        emitted = producer.emit(
            sim.stream,
            sim.type,
            actor=sim.actor,
            data=data,
            occurred_at=sim.occurred_at,
            subject=sim.subject,
            pii=pii,
        )
        if sim.ref_key is not None:
            self._ids[sim.ref_key] = emitted.event_id
        if sim.type in _TERMINAL:
            producer.forget(sim.stream)
        return emitted.event_id


_TERMINAL = frozenset(
    {
        "matter.concluded",
        "matter.withdrawn",
        "complaint.concluded",
        "violation.rectification_completed",
    }
)


def emit_simulated(
    producers: dict[str, Producer],
    source: Iterable[SimEvent],
    *,
    seed: int = 0,
    pii_store: PiiStore | None = None,
) -> Iterator[SimEvent]:
    """Emit each simulated event through its system's producer; yield it once published."""
    emitter = SimEmitter(producers, seed=seed, pii_store=pii_store)
    for sim in source:
        emitter.emit(sim)
        yield sim


def write_labels(directory: Path, labels: Iterable[Label]) -> Path:
    """Write `labels` as JSON lines to `<directory>/labels.jsonl`, replacing it atomically."""
    path = directory / LABELS_FILE
    body = b"".join(
        orjson.dumps(label.to_json(), option=orjson.OPT_SORT_KEYS) + b"\n" for label in labels
    )
    replace_atomically(path, body)
    return path


def run_simulation(
    ledger: Ledger,
    signers: dict[str, Signer],
    *,
    events: int,
    seed: int,
    workers: int,
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
    anomalies: SimAnomalies | None = None,
    pii_store: PiiStore | None = None,
    labels: bool = True,
) -> RunStats:
    """Emit `events` simulated events through the in-process channel and append them; write
    the run's labels beside the ledger (unless `labels` is False)."""
    channel = InProcessChannel()
    rng = random.Random(seed ^ 0x5EED)  # noqa: S311 - reproducible ids
    producers = {s: Producer(s, signers[s], channel, rng=rng) for s in signers}
    appender: Appender = ledger.appender(workers=workers)
    stats = RunStats()
    source = simulate(seed, events, anomalies=anomalies, labels=stats.labels.append)
    by_type = stats.by_type

    def batches() -> Iterator[list[bytes]]:
        for sim in emit_simulated(producers, source, seed=seed, pii_store=pii_store):
            stats.published += 1
            by_type[sim.type] = by_type.get(sim.type, 0) + 1
            if len(channel) >= batch_size:
                if pii_store is not None:
                    pii_store.flush()  # values durable before their commitments are appended
                yield list(channel.poll(batch_size))
        if pii_store is not None:
            pii_store.flush()
        while len(channel):
            yield list(channel.poll(batch_size))

    started = time.perf_counter()
    for outcome in appender.submit_many(batches()):
        channel.commit(len(outcome))
        stats.add(outcome)
        if progress:
            progress(len(outcome))
    stats.seconds = time.perf_counter() - started
    if labels:
        write_labels(ledger.directory, stats.labels)
    return stats
