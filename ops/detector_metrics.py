"""Detector metrics: the engine's plain counters and state, translated into Prometheus.

`alerts/` counts into plain objects (`EngineStats`, the open warnings, the timer heap) and never
imports a metrics library; `DetectorMetrics` reads them after each pass and moves the families
of `ops.metrics.NeikongMetrics`. It also wraps the detector's sink to time each appended
warning and to count the cards appended.

Guarantees:

- Counters move by the difference since the last `after_pass`, so they never go backwards
  and never count one engine increment twice.
- Label values are rule ids, grades, levels, event types and card colours only: never an
  official, taxpayer or matter id, and never a warning key.
- `neikong_detector_event_to_warning_seconds{grade}` is measured from the moment the detector
  started reading the batch that holds the completing event (or started the pass that fires
  the timer) to the durable append of the warning; the time the event waited in the ledger
  before that is `neikong_detector_lag_seconds` (event time of the ledger head minus event time
  of the last processed event, both capped at the wall clock, at the start of a pass).
- What the detector appends (warnings raised/escalated by rule and level, cards by colour,
  events by type) is counted when the append is durable, and only for events the ledger did
  not hold: a restart that replays warnings already appended counts none of them again.
  Engine counters (events processed, suppressed, exceptions, late timers) are per process.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from importlib import metadata

from prometheus_client import Counter

from alerts.calendar import parse_ts
from alerts.detector import Detector, LedgerSink
from alerts.warnings import Emitted
from ledger.ledger import Ledger
from ledger.log_reader import LogReader
from ops.metrics import GRADES, LEVELS, NeikongMetrics
from projections.base import decode_record

__all__ = ["DetectorMetrics", "MeteredSink", "ruleset_version"]

_WARNING_TYPES = frozenset({"warning.raised", "warning.escalated"})


def ruleset_version() -> str:
    """The packaged rules' version: the neikong distribution's (rules ship as package data)."""
    try:
        return metadata.version("neikong")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return "dev"


class MeteredSink(LedgerSink):
    """The detector's `LedgerSink`, counting what it appends (by event type; cards by colour;
    rejected commands by rule) and timing each batch's warnings. Events the ledger already
    held (re-emitted on replay) are not counted."""

    def __init__(self, ledger: Ledger, metrics: NeikongMetrics) -> None:
        super().__init__(ledger)
        self.metrics = metrics
        self.batch_started = time.monotonic()

    def mark(self) -> None:
        """A pass (and its first batch) starts now."""
        self.batch_started = time.monotonic()

    def emit(self, items: Sequence[Emitted]) -> int:
        present = self.ledger.store.event_ids([i.event_id for i in items]) if items else set()
        appended = super().emit(items)
        done = time.monotonic()
        m = self.metrics
        for item in items:
            if item.event_id in present:
                continue  # appended before a restart: re-emitted on replay, a no-op now
            m.ledger_events_appended.labels(event_type=item.type).inc()
            if item.type in _WARNING_TYPES:
                grade = str(item.data.get("grade"))
                m.detector_warnings_raised.labels(
                    rule_id=str(item.data.get("rule_id")), level=str(item.data.get("level"))
                ).inc()
                m.detector_event_to_warning.labels(grade=grade).observe(done - self.batch_started)
            elif item.type == "card.issued":
                m.cards_issued.labels(color=str(item.data.get("color"))).inc()
            elif item.type == "command.rejected":
                m.ledger_commands_rejected.labels(rule_id=str(item.data.get("rule_id"))).inc()
        self.batch_started = done  # the next batch is read from here on
        return appended


class DetectorMetrics:
    """Moves the detector families of `metrics` from one `Detector` (call `after_pass`)."""

    def __init__(self, detector: Detector, metrics: NeikongMetrics) -> None:
        self.detector = detector
        self.metrics = metrics
        self.sink = MeteredSink(detector.ledger, metrics)
        detector.sink = self.sink
        ruleset = detector.ruleset
        self._grades = {rule.id: str(rule.grade) for rule in ruleset}
        metrics.set_ruleset(ruleset_version(), ruleset.ruleset_hash, self._grades)
        self._seen: dict[str, dict[object, int]] = {}
        self._open_labels: set[tuple[str, str]] = {(g, lv) for g in GRADES for lv in LEVELS}

    # -- around a pass ----------------------------------------------------------------------

    def before_pass(self, now: int) -> None:
        """Measure the lag the detector carries into this pass; start timing its first batch."""
        self.metrics.detector_lag.set(self.lag(now))
        self.sink.mark()

    def after_pass(self, *, snapshot_saved: bool = True) -> None:
        """Translate the engine's counters and state into the metric families."""
        m, stats = self.metrics, self.detector.engine.stats
        self._add("type", stats.processed_by_type, m.detector_events_processed, "event_type")
        self._add("supp", stats.suppressed_by_rule, m.detector_warnings_suppressed, "rule_id")
        self._add("exc", stats.exceptions_by_rule, m.detector_exceptions_applied, "rule_id")
        late = stats.late - self._seen.setdefault("late", {}).get("late", 0)
        if late > 0:
            m.detector_timers_fired_late.inc(late)
            self._seen["late"]["late"] = stats.late
        self._open_warnings()
        m.detector_timers_pending.set(len(self.detector.engine.timers))
        if snapshot_saved:
            m.detector_snapshot_last_success.set(time.time())

    def _add(self, name: str, counts: dict[str, int], counter: Counter, label: str) -> None:
        seen = self._seen.setdefault(name, {})
        for value, count in counts.items():
            delta = count - seen.get(value, 0)
            if delta > 0:
                counter.labels(**{label: value}).inc(delta)
                seen[value] = count

    def _open_warnings(self) -> None:
        counts: dict[tuple[str, str], int] = dict.fromkeys(self._open_labels, 0)
        for rk, entry in self.detector.engine.open_warnings().items():
            grade = self._grades.get(rk.split("\n", 1)[0], "unknown")
            label = (grade, str(entry["level"]))
            counts[label] = counts.get(label, 0) + 1
        for (grade, level), count in counts.items():
            self.metrics.detector_open_warnings.labels(grade=grade, level=level).set(count)
        self._open_labels = set(counts)

    # -- lag --------------------------------------------------------------------------------

    def lag(self, now: int) -> float:
        """Event time of the ledger head minus that of the last processed event (capped at
        `now`); 0 when the detector has processed the head."""
        reader = LogReader(self.detector.ledger.store.config)
        try:
            head = reader.max_position()
            position = self.detector.position
            if position >= head:
                return 0.0
            head_at = _event_time(reader, head, now)
            done_at = _event_time(reader, position, now) if position else head_at
            return float(max(0, head_at - done_at))
        finally:
            reader.close()

    def restored(self, seconds: float) -> None:
        """The restore (snapshot load + replay to the head) took `seconds`."""
        self.metrics.detector_restore_duration.set(seconds)


def _event_time(reader: LogReader, position: int, now: int) -> int:
    for pos, _, _, record in reader.by_position(position, position + 1):
        return min(now, parse_ts(decode_record(pos, record).occurred_at))
    return now
