"""`neikong bench`: baselines and the ledger's own rates, measured in one run.

Figures (keys of the JSON object):
- raw_verify_per_s      Ed25519 verifications per second on one core (cryptography), over the
                        very signatures and messages of this run.
- raw_append_per_s      plain eventsourcing (SQLite file, same record sizes, batches of 1000),
                        without any rule.
- ingest_per_s          the ledger's durable ingest: stage one (parse, canonical, schema,
                        signature) in worker processes, chains and idempotency, atomic append.
- verify_per_s          `neikong verify` over the same ledger (all checks, all cores).
- verify_peak_rss_mb    peak resident memory of the verify process tree (parent + workers).
Ratios: ingest_vs_raw_verify, verify_vs_raw_verify, ingest_vs_raw_append.
Projection figures (raw_read_per_s, rebuild_per_s, rebuild_vs_raw_read, official_show_ms,
case_show_ms): see ops/projection_bench.py.
Detector figures (detector_per_s, detector_precision_min, detector_recall_min, detector_p99_ms,
timer_p99_ms, the per-rule table `detector_quality`, …): see ops/detector_bench.py; on their
own with `neikong bench --only detector`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from eventsourcing.application import Application

from ledger.bundle_bench import bundle_bench
from ledger.envelope import SignedRecord
from ledger.keys import public_key_from_raw
from ledger.ledger import Ledger
from ledger.log_bench import run_log_bench
from ledger.store import RecordedEvent, RecordTranscoder
from ledger.transport import InProcessChannel
from ops.detector_bench import run_detector_bench
from ops.pipeline import emit_simulated, enrol_demo_producers
from ops.projection_bench import run_projection_bench
from producers.producer import Producer
from producers.simulator import SYSTEMS, simulate

__all__ = ["DETECTOR_EVENTS", "run_bench"]

DETECTOR_EVENTS = 50_000  # the detector's labelled run: at most this many events


class _PlainApp(Application[uuid.UUID]):
    name = "bench"

    def construct_transcoder(self) -> RecordTranscoder:
        return RecordTranscoder()


def _generate(ledger: Ledger, events: int, seed: int) -> list[bytes]:
    import random

    from ledger.keys import Signer

    channel = InProcessChannel()
    rng = random.Random(seed)  # noqa: S311 - reproducible ids
    producers = {
        s: Producer(s, Signer.from_file(ledger.key_path(s)), channel, rng=rng) for s in SYSTEMS
    }
    for _ in emit_simulated(producers, simulate(seed, events)):
        pass
    return list(channel.poll(len(channel)))


def _raw_verify(records: list[bytes], public: dict[bytes, bytes], limit: int) -> float:
    keys = {k: public_key_from_raw(v) for k, v in public.items()}
    sample = [SignedRecord.decode(r) for r in records[:limit]]
    started = time.perf_counter()
    for s in sample:
        keys[s.key_id].verify(s.signature, s.signing_message)
    return len(sample) / (time.perf_counter() - started)


def _raw_append(records: list[bytes], directory: Path) -> float:
    app = _PlainApp(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(directory / "raw.db"),
        }
    )
    version: dict[int, int] = {}
    started = time.perf_counter()
    for i in range(0, len(records), 1000):
        batch = []
        for j, record in enumerate(records[i : i + 1000]):
            stream = (i + j) % 5000
            version[stream] = version.get(stream, 0) + 1
            batch.append(RecordedEvent(uuid.UUID(int=stream + 1), version[stream], record))
        app.events.put(batch)
    elapsed = time.perf_counter() - started
    app.close()
    return len(records) / elapsed


def _verify_subprocess(directory: Path, workers: int) -> tuple[float, float]:
    """Run verify in a child process; return (events per second, peak RSS MB of the tree)."""
    code = (
        "import json,sys,time\n"
        "from pathlib import Path\n"
        "from ledger.ledger import Ledger\n"
        "from ledger.verify import verify_ledger\n"
        f"l=Ledger.open(Path({str(directory)!r})); c=l.store.config\n"
        "r=bytes.fromhex(l.config.root_key_id); l.close()\n"
        "t=time.perf_counter()\n"
        f"rep=verify_ledger(c, r, workers={workers})\n"
        "print(json.dumps({'s': time.perf_counter()-t, 'n': rep.events, "
        "'intact': rep.intact, 'f': rep.finding_counts}))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    out = proc.stdout.read() if proc.stdout else b""
    if proc.returncode != 0:
        raise RuntimeError(f"verify child failed with exit code {proc.returncode}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    if not result["intact"]:
        raise RuntimeError(f"benchmark ledger did not verify: {result['f']}")
    return result["n"] / result["s"], peak / 2**20


def run_bench(
    *,
    events: int,
    workers: int | None = None,
    work_dir: Path | None = None,
    log: Callable[[str], None] = print,
    seed: int = 11,
) -> dict[str, Any]:
    workers = workers or os.cpu_count() or 1
    scratch = Path(tempfile.mkdtemp(prefix="neikong-bench-", dir=work_dir))
    try:
        ledger = Ledger.init(scratch / "ledger")
        enrol_demo_producers(ledger)
        log(f"bench: generating and signing {events} events (not timed)…")
        records = _generate(ledger, events, seed)
        public = ledger.registry.public_keys()
        log("bench: raw Ed25519 verify on one core…")
        raw_verify = _raw_verify(records, public, min(len(records), 30_000))
        log("bench: raw eventsourcing batch append…")
        raw_append = _raw_append(records, scratch)
        log(f"bench: ledger ingest with {workers} workers…")
        appender = ledger.appender(workers=workers)
        batches = [records[i : i + 1000] for i in range(0, len(records), 1000)]
        started = time.perf_counter()
        appended = sum(
            sum(o.status == "appended" for o in out) for out in appender.submit_many(batches)
        )
        ingest = len(records) / (time.perf_counter() - started)
        if appended != len(records):
            raise RuntimeError(f"only {appended} of {len(records)} records were appended")
        ledger.close()
        del records, batches
        log("bench: full verify…")
        verify_rate, peak_mb = _verify_subprocess(scratch / "ledger", workers)
        log("bench: Merkle log (sealing, inclusion proofs on a 1M-leaf tree)…")
        log_figures = run_log_bench(work_dir=scratch, log=log)
        log("bench: evidence bundle of a 20-event case…")
        bundle_figures = bundle_bench(scratch)
        log("bench: projections (raw read vs rebuild, integrity file and case loads)…")
        projection_figures = run_projection_bench(scratch / "ledger", log=log)
        detector_figures = run_detector_bench(
            scratch, events=min(events, DETECTOR_EVENTS), workers=workers, log=log
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "events": events,
        "workers": workers,
        "cpu_count": os.cpu_count(),
        "raw_verify_per_s": round(raw_verify),
        "raw_append_per_s": round(raw_append),
        "ingest_per_s": round(ingest),
        "verify_per_s": round(verify_rate),
        "verify_peak_rss_mb": round(peak_mb, 1),
        "ingest_vs_raw_verify": round(ingest / raw_verify, 3),
        "verify_vs_raw_verify": round(verify_rate / raw_verify, 3),
        "ingest_vs_raw_append": round(ingest / raw_append, 3),
        **log_figures,
        **bundle_figures,
        **projection_figures,
        **detector_figures,
    }
