"""`neikong bench`: the detector's speed, latency and detection quality (issue 6 item 7).

On a labelled simulated ledger (`ops.pipeline.run_simulation`, anomalies on, labels.jsonl
beside the ledger), in one run:

- raw_detector_read_per_s  every event read by position (`LogReader.by_position`) and decoded
                           (`projections.base.decode_record`): the baseline.
- detector_per_s           the engine alone (`Engine.process` + a final `advance`) over the
                           decoded log with every loaded rule, on one core (the calling
                           thread); nothing is appended. Its clock is event time: `now` is the
                           highest `occurred_at` seen, and before an event the engine advances
                           to each earlier due time (`advance(due)`), as a detector that keeps
                           up live and ticks often does, so absence timers fire on time (not
                           `late`); the final tick is at the engine's watermark (the last
                           event a rule reads), not at a wall-clock stamp of the ledger's own
                           events.
                           The engine's warnings are fed straight back to it as logged events
                           (the escalation rule R24 reads them), as the live detector does.
                           Median of `repeats` runs, each from a fresh engine.
- detector_cpu_per_s       the same runs by the process's CPU time (`time.process_time`): what
                           one core does when other processes share the machine.
- detector_vs_raw_read     detector_per_s / raw_detector_read_per_s.
- detector_precision_min, detector_recall_min, detector_quality: the warnings of the first
                           engine run scored against labels.jsonl (see `ops.detector_quality`
                           for the exact matching), per rule and per anomaly kind.
- detector_p99_ms, timer_p99_ms: see `ops.detector_latency`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from alerts.calendar import default_calendar, parse_ts
from alerts.detector import DETECTOR_ACTOR
from alerts.engine import Engine
from alerts.rules import RULES_DIR, RuleSet, load_ruleset
from alerts.warnings import Emitted
from ledger.gc_pause import gc_paused
from ledger.ledger import SERVICES, Ledger
from ledger.log_reader import LogReader
from ops.detector_latency import pipeline_latency, timer_latency
from ops.detector_quality import Quality, score
from ops.pipeline import LABELS_FILE, enrol_demo_producers, run_simulation
from producers.simulator import SimAnomalies
from projections.base import LoggedEvent, decode_record

__all__ = [
    "engine_pass",
    "quality_lines",
    "quality_of",
    "read_log",
    "run_detector_bench",
    "simulated_ledger",
]

WARNING_TYPES = frozenset({"warning.raised", "warning.escalated"})


def simulated_ledger(
    directory: Path, *, events: int, seed: int, anomaly_rate: float, workers: int
) -> Path:
    """Create a ledger in `directory` holding a simulated run with labels; return it."""
    ledger = Ledger.init(directory)
    try:
        signers = enrol_demo_producers(ledger)
        run_simulation(
            ledger,
            signers,
            events=events,
            seed=seed,
            workers=workers,
            anomalies=SimAnomalies(rate=anomaly_rate),
        )
    finally:
        ledger.close()
    return directory


def read_log(directory: Path) -> tuple[list[LoggedEvent], float]:
    """Every event of the ledger, decoded in log order, and the seconds it took."""
    with Ledger.open(directory) as ledger:
        reader = LogReader(ledger.store.config)
        try:
            started = time.perf_counter()
            head = reader.max_position()
            events = [decode_record(p, r) for p, _, _, r in reader.by_position(1, head + 1)]
            return events, time.perf_counter() - started
        finally:
            reader.close()


def _logged(item: Emitted) -> LoggedEvent:
    return LoggedEvent(
        0,
        item.event_id,
        item.stream,
        0,
        item.type,
        item.occurred_at,
        SERVICES["detector"].system,
        DETECTOR_ACTOR,
        item.subject or {},
        item.data,
        {},
    )


def engine_pass(ruleset: RuleSet, events: list[LoggedEvent]) -> tuple[list[Emitted], float]:
    """Run a fresh engine over `events` on event time; return its output and the seconds."""
    engine = Engine(ruleset, default_calendar())
    out: list[Emitted] = []
    now = 0
    started = time.perf_counter()

    def feed_back(emitted: list[Emitted], now: int) -> None:
        while emitted:  # the live detector reads its own warnings back from the log
            out.extend(emitted)
            emitted = [e for item in emitted for e in engine.process(_logged(item), now)]

    process, next_due = engine.process, engine.next_due
    with gc_paused():  # as `Detector.run_once` runs the engine
        for event in events:
            ts = parse_ts(event.occurred_at)
            due = next_due()
            while due is not None and due < ts:  # a live detector ticks at each due time
                feed_back(engine.advance(due), due)
                due = next_due()
            now = max(now, ts)
            emitted = process(event, now)
            if emitted:
                feed_back(emitted, now)
        # the run ends at its last simulated event (the engine's watermark: events no rule
        # reads, such as the wall-clock-stamped key enrolments before the history, do not move
        # it)
        end = engine.state.watermark
        feed_back(engine.advance(end), end)
    return out, time.perf_counter() - started


def _labels(directory: Path) -> list[dict[str, Any]]:
    path = directory / LABELS_FILE
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def quality_of(ruleset: RuleSet, out: list[Emitted], directory: Path) -> Quality:
    warnings = [
        (e.data["rule_id"], e.data["key"], e.data["level"]) for e in out if e.type in WARNING_TYPES
    ]
    return score(warnings, _labels(directory), [r.id for r in ruleset])


def run_detector_bench(
    work_dir: Path,
    *,
    events: int = 50_000,
    seed: int = 17,
    anomaly_rate: float = 0.05,
    workers: int = 1,
    repeats: int = 3,
    rules_dir: Path = RULES_DIR,
    latency_events: int | None = None,
    timers: int = 200,
    tick_s: float = 0.25,
    timer_lead_s: int = 2,
    timer_spread_s: int = 4,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure in `work_dir` (a scratch directory the caller removes)."""
    ruleset = load_ruleset(rules_dir)
    directory = work_dir / "detector-ledger"
    log(f"bench: simulating {events} labelled events for the detector (not timed)…")
    simulated_ledger(
        directory, events=events, seed=seed, anomaly_rate=anomaly_rate, workers=workers
    )
    log("bench: raw log read (LogReader + decode)…")
    reads = [read_log(directory) for _ in range(repeats)]
    logged = reads[0][0]
    read_s = statistics.median(s for _, s in reads)
    log(f"bench: detector engine with {len(ruleset.rules)} rules on one core…")
    runs = []
    for _ in range(repeats):
        cpu = time.process_time()
        emitted, seconds = engine_pass(ruleset, logged)
        runs.append((emitted, seconds, time.process_time() - cpu))
    out = runs[0][0]
    engine_s = statistics.median(s for _, s, _ in runs)
    engine_cpu_s = statistics.median(c for _, _, c in runs)
    quality = quality_of(ruleset, out, directory)
    log("bench: detector latency in the embedded pipeline…")
    latency = pipeline_latency(
        work_dir / "latency-ledger",
        ruleset,
        events=latency_events or min(events, 20_000),
        seed=seed,
        log=log,
    )
    log("bench: absence-timer latency on the wall clock…")
    timer_figures = timer_latency(
        work_dir / "timer-ledger",
        ruleset,
        timers=timers,
        tick_s=tick_s,
        lead_s=timer_lead_s,
        spread_s=timer_spread_s,
        log=log,
    )
    read_rate = len(logged) / read_s
    rate = len(logged) / engine_s
    return {
        "detector_events": len(logged),
        "detector_rules": len(ruleset.rules),
        "raw_detector_read_per_s": round(read_rate),
        "detector_per_s": round(rate),
        "detector_cpu_per_s": round(len(logged) / engine_cpu_s) if engine_cpu_s else None,
        "detector_vs_raw_read": round(rate / read_rate, 3),
        "detector_warnings": sum(e.type == "warning.raised" for e in out),
        "detector_precision_min": quality.precision_min,
        "detector_recall_min": quality.recall_min,
        "detector_quality": quality.as_json(),
        **latency,
        **timer_figures,
    }


def quality_lines(quality: dict[str, Any]) -> list[str]:
    """The per-rule and per-kind tables of `detector_quality`, as text lines."""

    def fmt(value: Any) -> str:
        return "-" if value is None else str(value)

    lines = [
        f"{'rule':<6} {'warn':>5} {'tp':>5} {'fp':>5} {'fp<=y':>5} {'labels':>6} {'fn':>5}"
        " prec   recall  files"
    ]
    for rule, row in quality["per_rule"].items():
        files = " ".join(f"{r}:{c['tp']}/{c['warnings']}" for r, c in row["rules"].items())
        lines.append(
            f"{rule:<6} {row['warnings']:>5} {row['tp']:>5} {row['fp']:>5}"
            f" {row['fp_reminder']:>5} {row['labels']:>6} {row['fn']:>5}"
            f" {fmt(row['precision']):<6} {fmt(row['recall']):<7} {files}"
        )
    lines.append(f"{'anomaly kind':<44} {'labels':>6} {'primary':>8} {'any':>5} recall")
    for kind, row in quality["per_kind"].items():
        lines.append(
            f"{kind:<44} {row['labels']:>6} {row['detected_primary']:>8}"
            f" {row['detected_any']:>5} {fmt(row['recall_primary'])} ({row['primary']})"
        )
    for rule, count in quality["unloaded_rules_labels"].items():
        lines.append(f"labels of a rule that is not loaded: {rule} x{count}")
    return lines
