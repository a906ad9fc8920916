"""The embedded deployment as one long-running process (`neikong serve`).

One thread, one pass per tick: (optionally) the simulated tax office publishes the events due
by now through the in-process channel; the `Ingester` appends them to the ledger; the
projections catch up; the detector catches up and fires the timers due by the wall clock; the
business gauges are recounted from the registers; the metrics of every stage move. Doing the
stages in turn keeps a single writer on the ledger at any moment (the detector and the ingest
loop share the ledger's appender).

Guarantees:

- Nothing is appended except through the ledger's append rules (`Appender`): the simulator
  signs with enrolled producer keys, the detector with the detector key.
- `stop()` (SIGTERM/SIGINT in the CLI) ends the loop after the pass in progress; `close()` then
  runs a final pass without new input, so the detector's snapshot and the projections' tracking
  hold the last position, and releases the ledger's resources.
- The simulated feed never runs ahead of its rate: after a pause it publishes at most
  `max_backlog_s` seconds' worth of events, not the whole backlog at once.
- Metrics carry only the bounded labels of `ops.metrics` (no official, taxpayer or matter id).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from alerts.detector import Detector
from alerts.rules import RuleSet
from ledger.errors import NeikongError
from ledger.ledger import Ledger
from ledger.log_reader import LogReader
from ledger.transport import InProcessChannel
from ops.business_metrics import BusinessGauges
from ops.detector_metrics import DetectorMetrics
from ops.ingest import Ingester, IngestMetrics, IngestSettings
from ops.metrics import NeikongMetrics
from ops.pipeline import SimEmitter, enrol_demo_producers
from producers.producer import Producer
from producers.simulator import SYSTEMS, SimAnomalies, SimEvent, simulate
from projections.read_model import ReadModel, read_model_url
from projections.registry import all_projections
from projections.runner import ProjectionRunner

__all__ = ["PassReport", "Service", "ServiceSettings", "SimulationSettings"]

_CST = timedelta(hours=8)


@dataclass(frozen=True)
class SimulationSettings:
    """The simulated tax office feeding the ledger (`--simulate RATE`)."""

    rate: float  # events per second of wall time
    anomalies: SimAnomalies = field(default_factory=SimAnomalies)
    seed: int = 7
    events: int = 100_000  # size of the simulated run (office size follows it)
    start: datetime | None = None  # simulated time of the first event (default: now)
    max_backlog_s: float = 5.0


@dataclass(frozen=True)
class ServiceSettings:
    interval_s: float = 1.0  # seconds between passes
    gauges_every_s: float = 10.0  # recount the business gauges at most this often
    simulation: SimulationSettings | None = None


@dataclass(frozen=True)
class PassReport:
    """What one pass did."""

    published: int  # simulated events published
    appended: int  # ledger positions gained by the ingest loop
    projected: int  # events the projections applied
    detected: int  # events the detector processed
    emitted: int  # warnings and cards the detector emitted
    position: int  # the detector's position afterwards
    seconds: float

    def line(self) -> str:
        return (
            f"pass: {self.published} simulated, {self.appended} appended, "
            f"{self.projected} projected, {self.detected} detected, {self.emitted} warnings/cards"
            f" emitted, position {self.position} ({self.seconds:.2f} s)"
        )


class _Feed:
    """Publishes simulated events at a steady rate into the in-process channel."""

    def __init__(self, ledger: Ledger, channel: InProcessChannel, sim: SimulationSettings) -> None:
        heads = ledger.store.producer_heads()
        if any(heads.get(system) for system in SYSTEMS):
            raise NeikongError(
                f"{ledger.directory} already holds a simulated run (its streams would collide);"
                " simulate into a fresh ledger, or serve without --simulate"
            )
        signers = enrol_demo_producers(ledger)
        rng = random.Random(sim.seed ^ 0x5EED)  # noqa: S311 - reproducible simulated ids
        producers = {s: Producer(s, signers[s], channel, rng=rng) for s in signers}
        self.emitter = SimEmitter(producers, seed=sim.seed)
        start = sim.start or datetime.now(UTC)
        self.source: Iterator[SimEvent] = simulate(
            sim.seed, sim.events, start, anomalies=sim.anomalies
        )
        self.sim = sim
        self.credit = 0.0
        self.last = time.monotonic()
        self.exhausted = False

    def publish_due(self) -> int:
        """Publish the events the rate allows since the last call; returns how many."""
        now = time.monotonic()
        elapsed = min(now - self.last, self.sim.max_backlog_s)
        self.last = now
        self.credit += elapsed * self.sim.rate
        count = int(self.credit)
        self.credit -= count
        published = 0
        for sim in itertools.islice(self.source, count):
            self.emitter.emit(sim)
            published += 1
        if published < count:
            self.exhausted = True
        return published

    def done(self) -> bool:
        """Whether the simulated run has no events left."""
        return self.exhausted


class Service:
    """The embedded deployment over one ledger: feed → ingest → projections → detector."""

    def __init__(
        self,
        ledger: Ledger,
        ruleset: RuleSet,
        registry: CollectorRegistry,
        settings: ServiceSettings | None = None,
        *,
        log: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.ledger = ledger
        self.settings = settings or ServiceSettings()
        self.log = log
        self.metrics = NeikongMetrics(registry)
        self._stop = threading.Event()
        self._closed = False
        self.channel = InProcessChannel()
        self.ingest_metrics = IngestMetrics(registry)
        self.ingester = Ingester(
            ledger.appender(),
            self.channel,
            metrics=self.ingest_metrics,
            ledger_metrics=self.metrics,
            settings=IngestSettings(poll_timeout_s=0.0, idle_exit_s=0.0),
        )
        self.reader = LogReader(ledger.store.config)
        self.model = ReadModel(read_model_url(ledger.directory, ledger.config.store_url))
        try:
            self.runner = ProjectionRunner(self.reader, self.model, all_projections())
            started = time.monotonic()
            self.detector = Detector(ledger, ruleset)
            self.detector_metrics = DetectorMetrics(self.detector, self.metrics)
            self._restore_started: float | None = started
            self.gauges = BusinessGauges(self.model, self.metrics)
            self._gauges_at = 0.0
            sim = self.settings.simulation
            self.feed = _Feed(ledger, self.channel, sim) if sim and sim.rate > 0 else None
        except BaseException:
            self.reader.close()
            self.model.close()
            raise
        self.log(
            f"serving {ledger.directory}: rule set {ruleset.ruleset_hash[:12]}…"
            f" ({len(ruleset.rules)} rules), detector from position {self.detector.position + 1}"
            + (f", simulating {sim.rate:g} events/s" if self.feed and sim else "")
        )

    # -- one pass --------------------------------------------------------------------------

    def run_pass(self, now: float | None = None, *, feed: bool = True) -> PassReport:
        """Feed (when simulating), ingest, project, detect at `now` (default: the wall clock)."""
        started = time.monotonic()
        published = 0
        if feed and self.feed is not None and not self.feed.exhausted:
            published = self.feed.publish_due()
            if self.feed.done():
                self.log("simulation: the simulated run is complete; following the ledger only")
        before = self.ingester.stats.ledger_gained
        if len(self.channel):
            self.ingester.run()
        appended = self.ingester.stats.ledger_gained - before
        projected = self.runner.catch_up()
        clock = int(time.time() if now is None else now)
        self.detector_metrics.before_pass(clock)
        run = self.detector.run_once(clock)
        self.detector_metrics.after_pass()
        if self._restore_started is not None:
            self.detector_metrics.restored(time.monotonic() - self._restore_started)
            self._restore_started = None
        if run.appended:  # the detector's own events feed the registers too
            projected += self.runner.catch_up()
        self.ingest_metrics.position.set(self.ledger.store.max_position())
        if time.monotonic() - self._gauges_at >= self.settings.gauges_every_s:
            as_of = (datetime.fromtimestamp(clock, UTC) + _CST).date().isoformat()
            self.gauges.update(as_of)
            self._gauges_at = time.monotonic()
        return PassReport(
            published,
            appended,
            projected,
            run.events,
            run.emitted,
            run.position,
            time.monotonic() - started,
        )

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        """Pass after pass, `interval_s` apart, until `stop()`; log the passes that did work."""
        while not self._stop.is_set():
            report = self.run_pass()
            if report.published or report.appended or report.detected or report.emitted:
                self.log(report.line())
            self._stop.wait(self.settings.interval_s)

    def stop(self) -> None:
        """Ask the loop to end after the pass in progress (safe from a signal handler)."""
        self._stop.set()

    def close(self) -> None:
        """A final pass without new input (snapshot and tracking at the last position), then
        release the read model, the log reader and the detector's snapshot store. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            report = self.run_pass(feed=False)
            self.log(f"stopped: final snapshot at position {report.position}")
        finally:
            self.detector.close()
            self.reader.close()
            self.model.close()
