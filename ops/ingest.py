"""The ingest loop behind `neikong ingest`: a record source → the appender → durable ledger.

Guarantees:
- Source offsets are committed only after the batch they cover is durable in the ledger
  (`Appender.submit_many` yields a batch's outcomes only then), so a crash at any point loses
  nothing: uncommitted records are delivered again and the appender makes a second copy a
  no-op. Exactly-once effect from at-least-once delivery.
- Input never stops the loop: every record gets an outcome; a rejected record is in the
  ledger's dead-letter table (same transaction as the batch) and, when a dead-letter sink is
  given, on the dead-letter topic with its reason code in the `neikong-reason` header and the
  original bytes as the value. The sink is flushed before the offsets are committed.
- An operational failure (broker unreachable, database busy, a concurrent writer) rewinds the
  source to the oldest uncommitted record and retries after a pause; nothing is skipped.
- Gaps: every `gap_check_every_s` the parked records older than the ledger's gap timeout are
  reported once per gap as a `producer_gap` warning naming the missing range (log line,
  metric, `Ingester.gaps`).
- With `ledger_metrics`, each durable batch also moves the ledger families of DOMAIN.md §5.2
  (`ops.ledger_metrics.record_batch`) beside the `neikong_ingest_*` ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ledger.appender import Appender, Outcome
from ledger.errors import NeikongError
from ledger.reasons import ReasonCode
from ledger.transport import RecordSource
from ops.ledger_metrics import record_batch
from ops.metrics import NeikongMetrics
from producers.kafka_source import Origin
from producers.kafka_transport import KafkaTransport

__all__ = [
    "DeadLetterSink",
    "IngestMetrics",
    "IngestSettings",
    "IngestStats",
    "Ingester",
    "KafkaDeadLetters",
    "ProducerGap",
    "producer_gaps",
]

log = logging.getLogger("neikong.ingest")

REASON_HEADER = "neikong-reason"
DETAIL_HEADER = "neikong-detail"
ORIGIN_HEADER = "neikong-origin"


class DeadLetterSink(Protocol):
    def send(self, record: bytes, reason: str, detail: str, origin: Origin | None) -> None: ...

    def flush(self) -> None: ...


@runtime_checkable
class _TracksOrigins(Protocol):
    def origins(self, count: int) -> list[Origin]: ...

    def rewind(self) -> None: ...

    def lag(self) -> int | None: ...

    def assignment(self) -> set[int]: ...


class KafkaDeadLetters:
    """The dead-letter topic: original bytes as the value, reason code and detail as headers."""

    def __init__(self, transport: KafkaTransport) -> None:
        self.transport = transport

    def send(self, record: bytes, reason: str, detail: str, origin: Origin | None) -> None:
        headers = [
            (REASON_HEADER, reason.encode()),
            (DETAIL_HEADER, detail[:500].encode("utf-8", "replace")),
        ]
        if origin is not None:
            headers.append((ORIGIN_HEADER, f"{origin[0]}/{origin[1]}@{origin[2]}".encode()))
        key = None if origin is None else f"{origin[0]}/{origin[1]}".encode()
        self.transport.send_raw(key, record, headers)

    def flush(self) -> None:
        self.transport.flush(30.0)


@dataclass(frozen=True)
class IngestSettings:
    batch_size: int = 1000
    poll_timeout_s: float = 0.2
    gap_check_every_s: float = 5.0
    retry_pause_s: float = 1.0
    idle_exit_s: float | None = None  # stop after this long without input (tests, demos)


@dataclass
class IngestStats:
    """Counts of one ingest run. `outcomes` are the appender's per-record statuses; a parked
    record that is appended later (when its gap fills) stays counted as `parked` there, while
    `ledger_gained` counts the ledger positions gained while this loop ran (with several
    ingesters on one ledger it includes the others' appends)."""

    consumed: int = 0
    ledger_gained: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    retries: int = 0
    gap_warnings: int = 0
    seconds: float = 0.0

    @property
    def still_parked(self) -> int:
        """Records parked by this run and not appended since (single ingester)."""
        unparked = self.ledger_gained - self.outcomes.get("appended", 0)
        return max(0, self.outcomes.get("parked", 0) - unparked)

    def to_json(self) -> dict[str, Any]:
        return {
            "consumed": self.consumed,
            "ledger_gained": self.ledger_gained,
            "outcomes": dict(self.outcomes),
            "rejected": dict(self.rejected),
            "batches": self.batches,
            "retries": self.retries,
            "gap_warnings": self.gap_warnings,
            "seconds": round(self.seconds, 3),
        }


class IngestMetrics:
    """Prometheus metrics of one ingest loop, in the registry given (never the global one)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter(
            "neikong_ingest_records_consumed", "Records read from the source.", registry=registry
        )
        self.appended = Counter(
            "neikong_ingest_events_appended",
            "Events appended to the ledger (including parked ones appended once their gap filled).",
            registry=registry,
        )
        self.position = Gauge(
            "neikong_ledger_position",
            "Events in the ledger (its last global position).",
            registry=registry,
        )
        self.duplicates = Counter(
            "neikong_ingest_records_duplicate",
            "Records already in the ledger (re-delivery; no-op).",
            registry=registry,
        )
        self.parked = Counter(
            "neikong_ingest_records_parked",
            "Records parked until a stream or producer gap fills.",
            registry=registry,
        )
        self.rejected = Counter(
            "neikong_ingest_records_rejected",
            "Records rejected (dead letters), by reason code.",
            ["reason"],
            registry=registry,
        )
        for reason in ReasonCode:
            self.rejected.labels(reason=reason.value)
        self.dead_letters = Counter(
            "neikong_ingest_dead_letters_published",
            "Rejected records published to the dead-letter topic.",
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "neikong_ingest_batch_duration_seconds",
            "From poll to durable append and offset commit, per batch.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=registry,
        )
        self.lag = Gauge(
            "neikong_ingest_consumer_lag_records",
            "Records in the assigned partitions not yet read.",
            registry=registry,
        )
        self.gaps_open = Gauge(
            "neikong_ingest_producer_gaps",
            "Producer or stream gaps not filled within the gap timeout.",
            registry=registry,
        )
        self.gap_warnings = Counter(
            "neikong_ingest_producer_gap_warnings",
            "producer_gap warnings raised (one per gap).",
            registry=registry,
        )
        self.retries = Counter(
            "neikong_ingest_retries",
            "Operational failures (broker, database) after which the loop rewound and retried.",
            registry=registry,
        )


@dataclass(frozen=True)
class ProducerGap:
    """A range of sequence numbers that has not arrived within the gap timeout."""

    kind: str  # "producer" or "stream"
    name: str  # producer system or stream name
    first_missing: int
    last_missing: int
    waiting_s: float

    @property
    def key(self) -> tuple[str, str, int, int]:
        return (self.kind, self.name, self.first_missing, self.last_missing)

    def describe(self) -> str:
        span = (
            f"seq {self.first_missing}"
            if self.first_missing == self.last_missing
            else f"seqs {self.first_missing}-{self.last_missing}"
        )
        return f"producer_gap: {self.kind} {self.name} is missing {span} for {self.waiting_s:.0f} s"

    def to_json(self) -> dict[str, Any]:
        return {
            "finding": "producer_gap",
            "kind": self.kind,
            "name": self.name,
            "missing": [self.first_missing, self.last_missing],
            "waiting_s": round(self.waiting_s, 1),
        }


def producer_gaps(appender: Appender, now: float | None = None) -> list[ProducerGap]:
    """The overdue gaps of `appender`, one per producer or stream (the first missing range)."""
    found: dict[tuple[str, str], ProducerGap] = {}
    for row in appender.overdue_gaps(now):
        waiting = float(row["parked_for_s"])  # type: ignore[arg-type]
        for kind, name_key, seqs_key in (
            ("producer", "producer", "missing_producer_seqs"),
            ("stream", "stream", "missing_stream_seqs"),
        ):
            seqs = row[seqs_key]
            if not isinstance(seqs, list) or len(seqs) != 2:
                continue
            name = str(row[name_key])
            gap = ProducerGap(kind, name, int(seqs[0]), int(seqs[1]), waiting)
            old = found.get((kind, name))
            if old is None or gap.last_missing < old.last_missing:
                found[(kind, name)] = ProducerGap(
                    kind,
                    name,
                    gap.first_missing,
                    gap.last_missing,
                    max(waiting, old.waiting_s if old else 0.0),
                )
    return sorted(found.values(), key=lambda g: (g.kind, g.name))


class Ingester:
    """Reads batches from a `RecordSource`, appends them, commits what is durable."""

    def __init__(
        self,
        appender: Appender,
        source: RecordSource,
        *,
        metrics: IngestMetrics | None = None,
        dead_letters: DeadLetterSink | None = None,
        settings: IngestSettings | None = None,
        stop: threading.Event | None = None,
        stop_when: Callable[[IngestStats], bool] | None = None,
        progress: Callable[[int], None] | None = None,
        ledger_metrics: NeikongMetrics | None = None,
    ) -> None:
        self.appender = appender
        self.ledger_metrics = ledger_metrics
        self.source = source
        self.metrics = metrics
        self.dead_letters = dead_letters
        self.settings = settings or IngestSettings()
        self.stop = stop or threading.Event()
        self.stop_when = stop_when
        self.progress = progress
        self.stats = IngestStats()
        self.gaps: list[ProducerGap] = []
        self._warned: set[tuple[str, str, int, int]] = set()
        self._inflight: deque[tuple[Sequence[bytes], float]] = deque()
        self._tracks = source if isinstance(source, _TracksOrigins) else None
        self._last_gap_check = time.monotonic()
        self._position = 0
        self._parked_since_retry = False

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> IngestStats:
        """Ingest until `stop` is set, `stop_when` holds, or the source stays idle too long."""
        started = time.perf_counter()
        idle_since = time.monotonic()
        self._position = self.appender.store.max_position()
        try:
            while not self.stop.is_set():
                try:
                    handled = self._burst()
                except NeikongError as exc:
                    self._recover(exc)
                    continue
                if handled or not self._assigned():
                    idle_since = time.monotonic()
                self._housekeeping(idle=not handled)
                if self.stop_when is not None and self.stop_when(self.stats):
                    break
                idle = self.settings.idle_exit_s
                if not handled and idle is not None and time.monotonic() - idle_since > idle:
                    break
        finally:
            self.stats.seconds = time.perf_counter() - started
        return self.stats

    def _burst(self) -> int:
        """Pipelined appends while the source has records; returns the records handled."""
        handled = 0
        for outcomes in self.appender.submit_many(self._batches()):
            records, polled_at = self._inflight.popleft()
            self._settle(outcomes, records, polled_at)
            handled += len(records)
        return handled

    def _batches(self) -> Iterator[Sequence[bytes]]:
        while not self.stop.is_set():
            records = self.source.poll(self.settings.batch_size, self.settings.poll_timeout_s)
            if not records:
                return
            self.stats.consumed += len(records)
            if self.metrics:
                self.metrics.consumed.inc(len(records))
            self._inflight.append((records, time.perf_counter()))
            yield records

    def _settle(self, outcomes: list[Outcome], records: Sequence[bytes], polled_at: float) -> None:
        """The batch is durable: count it, dead-letter its rejects, then commit its offsets."""
        stats, metrics = self.stats, self.metrics
        rejected = [(i, o) for i, o in enumerate(outcomes) if o.status == "rejected"]
        for o in outcomes:
            stats.outcomes[o.status] = stats.outcomes.get(o.status, 0) + 1
            if o.status == "parked":
                self._parked_since_retry = True
        for _, o in rejected:
            reason = o.reason.value if o.reason else "unknown"
            stats.rejected[reason] = stats.rejected.get(reason, 0) + 1
        if rejected and self.dead_letters is not None:
            origins = self._tracks.origins(len(records)) if self._tracks else []
            for i, o in rejected:
                reason = o.reason.value if o.reason else "unknown"
                origin = origins[i] if i < len(origins) else None
                self.dead_letters.send(bytes(records[i]), reason, o.detail, origin)
            self.dead_letters.flush()
        if self.ledger_metrics is not None:
            record_batch(self.ledger_metrics, outcomes, records, time.perf_counter() - polled_at)
        self.source.commit(len(records))
        stats.batches += 1
        position = self.appender.store.max_position()
        gained, self._position = max(0, position - self._position), position
        stats.ledger_gained += gained
        if metrics:
            counts = {"duplicate": 0, "parked": 0}
            for o in outcomes:
                if o.status in counts:
                    counts[o.status] += 1
            metrics.appended.inc(gained)
            metrics.position.set(position)
            metrics.duplicates.inc(counts["duplicate"])
            metrics.parked.inc(counts["parked"])
            for _, o in rejected:
                metrics.rejected.labels(reason=o.reason.value if o.reason else "unknown").inc()
            if rejected and self.dead_letters is not None:
                metrics.dead_letters.inc(len(rejected))
            metrics.batch_seconds.observe(time.perf_counter() - polled_at)
        if self.progress:
            self.progress(len(records))

    def _assigned(self) -> bool:
        """Idle time counts only once the source has partitions (a group join takes a while)."""
        if self._tracks is None:
            return True
        try:
            return bool(self._tracks.assignment())
        except NeikongError:
            return False

    def _recover(self, exc: NeikongError) -> None:
        """An operational failure: re-read everything not committed, after a pause."""
        self.stats.retries += 1
        if self.metrics:
            self.metrics.retries.inc()
        log.warning("ingest: %s; rewinding to the last commit and retrying", exc)
        self._inflight.clear()
        try:
            rewind = getattr(self.source, "rewind", None)
            if callable(rewind):
                rewind()
        except NeikongError as rewind_exc:
            log.warning("ingest: rewind failed (%s); retrying", rewind_exc)
        self.stop.wait(self.settings.retry_pause_s)

    # -- periodic work ---------------------------------------------------------------------

    def _housekeeping(self, idle: bool = False) -> None:
        now = time.monotonic()
        due = now - self._last_gap_check >= self.settings.gap_check_every_s
        if due or (idle and self._parked_since_retry):
            self._retry_parked()
        if self.metrics and self._tracks is not None:
            try:
                lag = self._tracks.lag()
            except NeikongError:
                lag = None
            if lag is not None:
                self.metrics.lag.set(lag)
        if due:
            self._last_gap_check = now
            self.check_gaps()

    def _retry_parked(self) -> None:
        """Append parked records whose gap another writer filled (several ingesters on one
        ledger). Uses `Appender.retry_parked` where the ledger core provides it."""
        retry = getattr(self.appender, "retry_parked", None)
        self._parked_since_retry = False
        if not callable(retry):
            return
        try:
            appended = int(retry())
        except NeikongError as exc:
            log.info("ingest: retrying parked records later (%s)", exc)
            self._parked_since_retry = True
            return
        if appended:
            log.info("ingest: %d parked records appended after their gaps filled", appended)
        position = self.appender.store.max_position()
        gained, self._position = max(0, position - self._position), position
        self.stats.ledger_gained += gained
        if self.metrics:
            self.metrics.appended.inc(gained)
            self.metrics.position.set(position)

    def check_gaps(self, now: float | None = None) -> list[ProducerGap]:
        """Warn once per overdue gap (log line `producer_gap: …` and metric); return all."""
        gaps = producer_gaps(self.appender, now)
        for gap in gaps:
            if gap.key not in self._warned:
                self._warned.add(gap.key)
                self.stats.gap_warnings += 1
                log.warning(gap.describe())
                if self.metrics:
                    self.metrics.gap_warnings.inc()
        if self.metrics:
            self.metrics.gaps_open.set(len(gaps))
        self.gaps = gaps
        return gaps
