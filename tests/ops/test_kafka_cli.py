"""`neikong kafka init-topics` and `neikong demo --kafka` (run_demo_via_kafka) against the real
broker; --help of the Kafka commands."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

import ops.cli_kafka  # noqa: F401 - registers ingest, gaps and kafka on the main group
from ledger.ledger import Ledger
from ledger.verify import verify_ledger
from ops.cli import main
from ops.kafka_demo import run_demo_via_kafka
from ops.pipeline import enrol_demo_producers
from producers.kafka_transport import KafkaTransport, delete_topics
from tests.producers._kafka import NEIKONG, REPO, kafka


@pytest.mark.parametrize("args", [["kafka", "init-topics"], ["ingest"], ["gaps"]])
def test_help(args: list[str]) -> None:
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Exit codes: 0" in result.output


def test_ingest_without_a_broker_is_an_operational_error(tmp_path: Path) -> None:
    # in a subprocess: kafka-python 3.0.12 leaves refused sockets to the garbage collector
    Ledger.init(tmp_path / "ledger").close()
    result = subprocess.run(
        [
            *NEIKONG,
            "ingest",
            "--ledger",
            str(tmp_path / "ledger"),
            "--bootstrap",
            "127.0.0.1:9",
            "--topic",
            "t",
            "--group",
            "g",
            "--workers",
            "0",
            "--connect-timeout",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 3, result.stderr.decode()
    assert "retry later" in result.stderr.decode()


def test_init_topics_rejects_an_impossible_min_isr() -> None:
    result = CliRunner().invoke(
        main,
        ["kafka", "init-topics", "--bootstrap", "127.0.0.1:9", "--min-insync-replicas", "2"],
    )
    assert result.exit_code == 2
    assert "exceeds the replication factor" in result.output


@kafka
def test_init_topics_from_a_config_file(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = f"test-{uuid.uuid4().hex[:10]}"
    config = tmp_path / "neikong.yaml"
    config.write_text(
        f"kafka:\n  topic: {topic}\n  partitions: 3\n  retention_ms: 3600000\n"
        "  min_insync_replicas: 1\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    try:
        first = runner.invoke(
            main, ["kafka", "init-topics", "--bootstrap", kafka_bootstrap, "--config", str(config)]
        )
        assert first.exit_code == 0, first.output
        assert f"created  {topic}  partitions=3" in first.output
        assert "retention.ms=3600000" in first.output
        assert f"created  {topic}.dead-letters  partitions=1" in first.output
        again = runner.invoke(
            main,
            [
                "kafka",
                "init-topics",
                "--bootstrap",
                kafka_bootstrap,
                "--config",
                str(config),
                "--partitions",
                "5",
            ],
        )
        assert again.exit_code == 0, again.output
        assert f"exists   {topic}" in again.output
        with KafkaTransport(kafka_bootstrap, topic) as transport:
            assert transport.partitions() == {0, 1, 2}
    finally:
        delete_topics(kafka_bootstrap, [topic, f"{topic}.dead-letters"])


@kafka
def test_demo_through_kafka(kafka_bootstrap: str, tmp_path: Path) -> None:
    with Ledger.init(tmp_path / "ledger") as ledger:
        signers = enrol_demo_producers(ledger)
        stats = run_demo_via_kafka(
            ledger, signers, 800, 7, kafka_bootstrap, workers=1, partitions=3
        )
        config, root = ledger.store.config, bytes.fromhex(ledger.config.root_key_id)
        assert ledger.store.max_position() == 1 + len(signers) + 800  # genesis, enrolments
    assert stats.published == 800
    assert stats.outcomes == {"appended": 800}
    assert stats.seconds > 0
    assert verify_ledger(config, root, workers=1).intact
    assert json.dumps(stats.outcomes)
