"""The ingest loop without a broker: producer_gap warnings (log line, metric, `neikong gaps`),
recovery from operational failures, outcome accounting."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

import ops.cli_kafka  # noqa: F401 - registers ingest, gaps and kafka on the main group
from ledger.appender import Appender
from ledger.errors import Backpressure
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.registry import KeyScope
from ledger.transport import InProcessChannel
from ops.cli import main
from ops.ingest import Ingester, IngestMetrics, IngestSettings, producer_gaps
from producers.producer import Producer

SYSTEM = "4403-fapiao"
PREFIX = "matter/4403-fp/"
ACTOR = {"official": "4403-00001", "role": "handler", "unit": "4403-01"}
WHEN = "2026-11-02T01:30:00Z"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.init(tmp_path / "ledger") as fresh:
        fresh.enrol_key("fp", "producer", KeyScope(SYSTEM, (PREFIX,), ("matter.*",)))
        yield fresh


def _records(ledger: Ledger, n: int) -> list[bytes]:
    channel = InProcessChannel()
    producer = Producer(SYSTEM, Signer.from_file(ledger.key_path("fp")), channel)
    for i in range(n):
        producer.emit(
            PREFIX + f"c{i % 3}",
            "matter.step_completed",
            actor=ACTOR,
            data={"step": "review", "outcome": "passed"},
            occurred_at=WHEN,
        )
    return list(channel.poll(n))


def _appender(ledger: Ledger, gap_timeout_s: float) -> Appender:
    config = replace(ledger.config.append_config(), gap_timeout_s=gap_timeout_s)
    return Appender(ledger.store, ledger.registry, config)


def _ingest(appender: Appender, records: Sequence[bytes], metrics: IngestMetrics) -> Ingester:
    channel = InProcessChannel()
    for r in records:
        channel.publish("s", r)
    ingester = Ingester(
        appender,
        channel,
        metrics=metrics,
        settings=IngestSettings(batch_size=2, gap_check_every_s=0.0, idle_exit_s=0.0),
    )
    ingester.run()
    return ingester


def test_a_gap_not_filled_in_time_raises_one_producer_gap_warning(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    records = _records(ledger, 5)
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    appender = _appender(ledger, gap_timeout_s=0.2)
    # producer seqs 3 and 4 are lost on the way (for now): 5 parks behind them
    ingester = _ingest(appender, [records[0], records[1], records[4]], metrics)
    assert ingester.stats.outcomes == {"appended": 2, "parked": 1}
    assert ingester.check_gaps() == []  # not overdue yet
    time.sleep(0.3)
    with caplog.at_level(logging.WARNING, logger="neikong.ingest"):
        gaps = ingester.check_gaps()
        ingester.check_gaps()  # warned once per gap
    producer_gap = [g for g in gaps if g.kind == "producer"]
    assert [(g.name, g.first_missing, g.last_missing) for g in producer_gap] == [(SYSTEM, 3, 4)]
    warnings = [r.getMessage() for r in caplog.records if "producer_gap" in r.getMessage()]
    assert any(f"producer {SYSTEM} is missing seqs 3-4" in w for w in warnings), warnings
    assert len([w for w in warnings if w.startswith("producer_gap: producer")]) == 1
    assert registry.get_sample_value("neikong_ingest_producer_gap_warnings_total") == len(gaps)
    assert registry.get_sample_value("neikong_ingest_producer_gaps") == len(gaps)
    # the missing events arrive: the parked one follows, the gap closes
    late = _ingest(appender, [records[2], records[3]], metrics)
    assert late.stats.ledger_gained == 3
    assert late.check_gaps() == []
    assert registry.get_sample_value("neikong_ingest_producer_gaps") == 0
    assert ledger.store.producer_heads()[SYSTEM] == 5


def test_gaps_command_lists_overdue_gaps(ledger: Ledger) -> None:
    records = _records(ledger, 3)
    appender = _appender(ledger, gap_timeout_s=300)
    _ingest(appender, [records[0], records[2]], IngestMetrics(CollectorRegistry()))
    assert producer_gaps(appender) == []  # within the timeout
    runner = CliRunner()
    args = ["gaps", "--ledger", str(ledger.directory), "--json"]
    quiet = runner.invoke(main, args)
    assert quiet.exit_code == 0, quiet.output
    assert json.loads(quiet.output) == []
    result = runner.invoke(main, [*args, "--timeout", "0"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert {"finding": "producer_gap", "kind": "producer", "name": SYSTEM, "missing": [2, 2]} in [
        {k: v for k, v in g.items() if k != "waiting_s"} for g in found
    ]
    text = runner.invoke(main, ["gaps", "--ledger", str(ledger.directory), "--timeout", "0"])
    assert f"producer_gap: producer {SYSTEM} is missing seq 2" in text.output


class FlakySource:
    """An in-process source whose broker fails once, in the middle of the run."""

    def __init__(self, records: Sequence[bytes]) -> None:
        self.channel = InProcessChannel()
        for r in records:
            self.channel.publish("s", r)
        self.polls = 0

    def poll(self, max_records: int, timeout: float) -> Sequence[bytes]:
        self.polls += 1
        if self.polls == 3:
            raise Backpressure("broker unreachable")
        return self.channel.poll(max_records, timeout)

    def commit(self, count: int | None = None) -> None:
        self.channel.commit(count)

    def rewind(self) -> None:
        self.channel.rewind()


def test_an_operational_failure_rewinds_and_loses_nothing(ledger: Ledger) -> None:
    records = _records(ledger, 9)
    source = FlakySource(records)
    ingester = Ingester(
        ledger.appender(),
        source,
        settings=IngestSettings(batch_size=2, idle_exit_s=0.0, retry_pause_s=0.01),
    )
    stats = ingester.run()
    assert stats.retries == 1
    assert stats.ledger_gained == 9
    assert stats.outcomes.get("appended", 0) == 9
    assert stats.consumed > 9  # the batches read before the failure were read again
    assert ledger.store.producer_heads()[SYSTEM] == 9


def test_garbage_never_stops_the_loop(ledger: Ledger) -> None:
    records = _records(ledger, 2)
    registry = CollectorRegistry()
    ingester = _ingest(
        ledger.appender(),
        [b"", b"\xff" * 10, records[0], b"NKE1", records[1]],
        IngestMetrics(registry),
    )
    assert ingester.stats.outcomes == {"rejected": 3, "appended": 2}
    assert ingester.stats.rejected == {"bad_framing": 3}
    assert (
        registry.get_sample_value(
            "neikong_ingest_records_rejected_total", {"reason": "bad_framing"}
        )
        == 3
    )
