"""`neikong bench`: detector latency in the embedded pipeline, on the wall clock.

- detector_p99_ms   producer → appender → detector following the log → warning appended, all in
                    one process and one thread (the embedded default, in-process checks):
                    simulated events are signed and appended in batches of `batch`; after
                    each durable batch the detector catches up (`Detector.run_once`: read,
                    engine, sign + append its warnings, snapshot). Per event-triggered warning
                    (`warning.raised`/`escalated` without `due_at`), the time from the durable
                    append of its triggering event (the last appended of its `triggers`, the
                    detector's own cards included: R25 reads them) to
                    the durable append of the warning; p99 (and p50, max, sample count) over
                    all of them. Timer warnings are left to timer_p99_ms. The detector key is
                    enrolled before the run (a one-off in a detector's life, not timed).
- timer_p99_ms      absence timers due in the near future on the wall clock: `timers` starts of
                    R22 (rectification ordered) with its level moved to half the span to
                    `rectify_by`, back-dated so that the due times fall 2–5 s ahead; the
                    detector then ticks every `tick_s` (`run_once(int(time.time()))`, as
                    `neikong detect --interval` does). Per warning, wall time of its durable
                    append minus its `due_at`; p99 over all timers. The tick interval bounds
                    the latency from below: a timer due just after a tick waits for the next.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from alerts.calendar import end_of_local_day, format_ts, local_date, parse_ts
from alerts.detector import Detector, LedgerSink
from alerts.rules import RuleSet
from alerts.warnings import Emitted
from ledger.ledger import Ledger
from ledger.transport import InProcessChannel
from ops.pipeline import SimEmitter, enrol_demo_producers
from producers.producer import Producer
from producers.simulator import SimAnomalies, simulate

__all__ = ["TIMER_RULE", "percentile", "pipeline_latency", "timer_latency"]

TIMER_RULE = "R22-rectification-overdue"
WARNINGS = frozenset({"warning.raised", "warning.escalated"})


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _summary(prefix: str, values: list[float]) -> dict[str, Any]:
    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 1)

    return {
        f"{prefix}_p99_ms": ms(percentile(values, 99)),
        f"{prefix}_p50_ms": ms(percentile(values, 50)),
        f"{prefix}_max_ms": ms(max(values) if values else None),
        f"{prefix}_samples": len(values),
    }


class _TimedSink(LedgerSink):
    """The detector's sink, noting when each of its events became durable."""

    def __init__(self, ledger: Ledger, clock: Callable[[], float]) -> None:
        super().__init__(ledger)
        self.clock = clock
        self.appended: dict[str, tuple[float, Emitted]] = {}

    def emit(self, items: Sequence[Emitted]) -> int:
        count = super().emit(items)
        at = self.clock()
        for item in items:
            self.appended.setdefault(item.event_id, (at, item))
        return count


def pipeline_latency(
    directory: Path,
    ruleset: RuleSet,
    *,
    events: int = 20_000,
    seed: int = 23,
    anomaly_rate: float = 0.5,
    batch: int = 200,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """detector_p99_ms (and p50/max/samples) over one embedded run of `events` events."""
    clock = time.perf_counter
    appended_at: dict[str, float] = {}
    with Ledger.init(directory) as ledger:
        signers = enrol_demo_producers(ledger)
        channel = InProcessChannel()
        rng = random.Random(seed)  # noqa: S311 - reproducible ids
        producers = {s: Producer(s, signers[s], channel, rng=rng) for s in signers}
        emitter = SimEmitter(producers, seed=seed)
        appender = ledger.appender()  # workers=0: the sink's appender, no process pool
        ledger.service_signer("detector")  # enrolled once in a detector's life: not timed
        detector = Detector(ledger, ruleset)
        sink = _TimedSink(ledger, clock)
        detector.sink = sink
        try:
            pending: list[str] = []
            source = simulate(seed, events, anomalies=SimAnomalies(rate=anomaly_rate))
            for number, sim in enumerate(source, 1):
                pending.append(emitter.emit(sim))
                if len(pending) >= batch or number == events:
                    outcomes = appender.submit(list(channel.poll(len(pending))))
                    at = clock()
                    channel.commit(len(outcomes))
                    appended_at.update(dict.fromkeys(pending, at))
                    pending = []
                    detector.run_once(int(time.time()))
        finally:
            detector.close()
    samples: list[float] = []
    worst: dict[str, float] = {}
    appended_at.update((i, at) for i, (at, _) in sink.appended.items())  # cards trigger too
    for at, item in sink.appended.values():
        if item.type not in WARNINGS or "due_at" in item.data:
            continue
        times = [appended_at[t] for t in item.data["triggers"] if t in appended_at]
        if times:
            samples.append(at - max(times))
            rule = item.data["rule_id"]
            worst[rule] = max(worst.get(rule, 0.0), samples[-1])
    log(f"bench: {len(samples)} event-triggered warnings timed")
    slowest = sorted(worst.items(), key=lambda kv: -kv[1])[:3]
    return {
        **_summary("detector", samples),
        "detector_latency_batch": batch,
        "detector_max_ms_by_rule": {r: round(v * 1000, 1) for r, v in slowest},
    }


def _timer_ruleset(ruleset: RuleSet) -> RuleSet:
    rule = ruleset.get(TIMER_RULE)
    level = {**rule.levels[0], "at": {"fraction": "1/2"}}
    doc = {**rule.doc, "levels": [level]}
    digest = hashlib.sha256(f"bench-timers\n{ruleset.ruleset_hash}".encode()).hexdigest()
    return RuleSet((dataclasses.replace(rule, doc=doc),), digest)


def timer_latency(
    directory: Path,
    ruleset: RuleSet,
    *,
    timers: int = 200,
    tick_s: float = 0.25,
    lead_s: int = 2,
    spread_s: int = 4,
    timeout_s: float = 30.0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """timer_p99_ms (and p50/max/samples): `timers` absences due lead_s..lead_s+spread_s ahead."""
    single = _timer_ruleset(ruleset)
    with Ledger.init(directory) as ledger:
        signers = enrol_demo_producers(ledger)
        channel = InProcessChannel()
        producer = Producer("4403-ducha", signers["4403-ducha"], channel, rng=random.Random(3))  # noqa: S311
        ledger.service_signer("detector")
        detector = Detector(ledger, single)
        sink = _TimedSink(ledger, time.time)
        detector.sink = sink
        try:
            t0 = int(time.time())
            rectify_by = local_date(t0) + timedelta(days=1)
            deadline = end_of_local_day(rectify_by)
            for i in range(timers):
                due = t0 + lead_s + i % spread_s
                producer.emit(
                    f"violation/bench-timer-{i:05d}",
                    "violation.rectification_ordered",
                    actor={"official": "4403-bench-auditor", "role": "auditor", "unit": "4403-98"},
                    subject={"official": f"4403-bench-{i:05d}", "unit": "4403-98"},
                    data={"rectify_by": rectify_by.isoformat(), "ordered_by": "4403-bench-head"},
                    occurred_at=format_ts(2 * due - deadline),  # due = start + (deadline-start)/2
                )
            ledger.appender().submit(list(channel.poll(timers)))
            stop = time.monotonic() + timeout_s
            while len(sink.appended) < timers and time.monotonic() < stop:
                detector.run_once(int(time.time()))
                time.sleep(tick_s)
        finally:
            detector.close()
    samples = [at - _due(item) for at, item in sink.appended.values() if item.type in WARNINGS]
    log(f"bench: {len(samples)} of {timers} timers fired (tick {tick_s} s)")
    return {**_summary("timer", samples), "timer_tick_s": tick_s, "timer_count": timers}


def _due(item: Emitted) -> float:
    return float(parse_ts(item.data["due_at"]))
