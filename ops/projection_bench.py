"""`neikong bench`: projection figures on the bench ledger, against a raw read in the same run.

Figures (keys of the JSON object):
- raw_read_per_s        every stored event read through the eventsourcing application's
                        recorder (`select_notifications`, batches of 5000): the baseline.
- rebuild_per_s         a rebuild from zero of every registered projection together (reset,
                        decode, route, fold, write every document + index columns + refs +
                        tracking at each commit, build the secondary indexes) into the read
                        model of the same backend kind (SQLite file beside the ledger, or the
                        ledger's PostgreSQL database), as `neikong rebuild` runs it:
                        `rebuild_workers` processes, projections grouped by cost, the case
                        history sharded by stream (one process below PARALLEL_MIN_EVENTS,
                        where a second one gains nothing).
- rebuild_one_process_per_s  the same rebuild in one process (for comparison).
- rebuild_vs_raw_read   rebuild_per_s / raw_read_per_s (target >= 0.4).
- official_show_ms      median over ~50 random officials of the wall time of the real
                        `neikong official show ID` command run in-process (open, catch-up
                        check, load, judge as of today, render); likewise case_show_ms for
                        `neikong case show STREAM`. Target < 100 ms on a 1M-event ledger.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger.errors import NeikongError
from ledger.ledger import Ledger
from ledger.log_reader import LogReader
from projections import registry
from projections.parallel import PARALLEL_MIN_EVENTS, rebuild_parallel
from projections.read_model import ReadModel, read_model_url
from projections.runner import ProjectionRunner

__all__ = ["run_projection_bench"]


def _raw_read(ledger: Ledger, batch: int = 5000) -> tuple[int, float]:
    recorder = ledger.store.recorder
    count, start = 0, 1
    started = time.perf_counter()
    while True:
        rows = recorder.select_notifications(start, batch)
        count += len(rows)
        if len(rows) < batch:
            break
        start = rows[-1].id + 1
    return count, time.perf_counter() - started


def _show_ms(
    ledger_dir: Path, runner: ProjectionRunner, name: str, samples: int, seed: int
) -> float | None:
    """Median wall time of the real `neikong official show` / `case show` command, run
    in-process (no interpreter start-up): open the ledger and read model, confirm the model is
    caught up, load the document, judge it as of today, render the table."""
    from click.testing import CliRunner

    from ops.cli import main

    if name not in runner.projections:
        return None
    keys = [k for k, _ in runner.model.query(name)]
    if not keys:
        return None
    command = ["official", "show"] if name == "integrity_file" else ["case", "show"]
    rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
    cli = CliRunner()
    timings = []
    for key in rng.sample(keys, min(samples, len(keys))):
        started = time.perf_counter()
        result = cli.invoke(main, [*command, key, "--ledger", str(ledger_dir)])
        timings.append((time.perf_counter() - started) * 1000)
        if result.exit_code != 0:
            raise NeikongError(f"{' '.join(command)} {key} failed: {result.output[-300:]}")
    return round(statistics.median(timings), 3)


def run_projection_bench(
    ledger_dir: Path,
    *,
    model_url: str | None = None,
    log: Callable[[str], None] = print,
    samples: int = 50,
    seed: int = 5,
    workers: int = 2,
) -> dict[str, Any]:
    """Measure on an existing (bench) ledger; the read model is created fresh and kept."""
    with Ledger.open(ledger_dir) as ledger:
        log("bench: raw notification-log read (eventsourcing select_notifications)…")
        events, raw_s = _raw_read(ledger)
        # the ledger's own read model, which `neikong official show` / `case show` then use
        url = model_url or read_model_url(ledger_dir, ledger.config.store_url)
        projections = registry.all_projections()
        reader = LogReader(ledger.store.config)
        model = ReadModel(url)
        try:
            runner = ProjectionRunner(reader, model, projections)
            names = [p.name for p in projections]
            log(f"bench: rebuild of {len(projections)} projections, one process…")
            started = time.perf_counter()
            rebuilt = runner.rebuild(batch=20_000)
            serial_s = time.perf_counter() - started
            log(f"bench: rebuild of {len(projections)} projections, {workers} processes…")
            started = time.perf_counter()
            rebuild_parallel(ledger.store.config, url, names, workers=workers)
            rebuild_s = time.perf_counter() - started
            log("bench: `neikong official show` and `neikong case show`…")
            official = _show_ms(ledger_dir, runner, "integrity_file", samples, seed)
            case = _show_ms(ledger_dir, runner, "case_history", samples, seed)
            rows = {p.name: model.count(p.name) for p in projections}
        finally:
            model.close()
            reader.close()
    raw_rate = events / raw_s if raw_s else 0.0
    rebuild_rate = rebuilt / rebuild_s if rebuild_s else 0.0
    serial_rate = rebuilt / serial_s if serial_s else 0.0
    return {
        "projection_events": rebuilt,
        "projections": sorted(rows),
        "projection_rows": rows,
        "raw_read_per_s": round(raw_rate),
        "rebuild_per_s": round(rebuild_rate),
        "rebuild_workers": workers if rebuilt >= PARALLEL_MIN_EVENTS else 1,
        "rebuild_one_process_per_s": round(serial_rate),
        "rebuild_vs_raw_read": round(rebuild_rate / raw_rate, 3) if raw_rate else None,
        "official_show_ms": official,
        "case_show_ms": case,
    }
