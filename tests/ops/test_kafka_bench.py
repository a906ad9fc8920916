"""`neikong bench --kafka`: every figure measured against the real broker, in one small run."""

from __future__ import annotations

from pathlib import Path

from ops.kafka_bench import run_kafka_bench
from tests.producers._kafka import kafka, require_kafka

KEYS = (
    "kafka_raw_per_s",
    "sdk_emit_per_s",
    "sdk_emit_cpu_us_per_event",
    "sdk_batch_emit_per_s",
    "kafka_ingest_per_s",
    "e2e_per_s",
    "e2e_batched_per_s",
    "inprocess_ingest_per_s",
)


@kafka
def test_kafka_bench_measures_every_figure(tmp_path: Path) -> None:
    kafka_bootstrap = require_kafka()
    figures = run_kafka_bench(
        events=1500, bootstrap=kafka_bootstrap, work_dir=tmp_path, log=lambda _: None
    )
    for key in KEYS:
        assert figures[key] > 0, key
    assert figures["e2e_vs_inprocess_ingest"] == round(
        figures["e2e_per_s"] / figures["inprocess_ingest_per_s"], 3
    )
    assert not list(tmp_path.iterdir())  # the scratch directory is removed
