"""docs/producer-guide.md is executed: its Python examples run (against the real broker for the
Kafka one) and its commands' options exist."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

import ops.cli_kafka  # noqa: F401 - registers ingest, gaps and kafka on the main group
from ledger.ledger import Ledger
from ledger.registry import KeyScope
from ops.cli import main
from ops.ingest import Ingester, IngestSettings
from producers.kafka_source import KafkaRecordSource
from tests.producers._kafka import kafka

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "producer-guide.md").read_text(encoding="utf-8")
PYTHON = re.findall(r"```python\n(.*?)```", GUIDE, re.S)
BASH = re.findall(r"```bash\n(.*?)```", GUIDE, re.S)


def _ledger(tmp_path: Path) -> Path:
    with Ledger.init(tmp_path / "ledger") as ledger:
        ledger.enrol_key(
            "4403-fapiao", "producer", KeyScope("4403-fapiao", ("matter/4403-fp/",), ("matter.*",))
        )
        return ledger.directory


def test_the_in_process_example_runs(tmp_path: Path) -> None:
    directory = _ledger(tmp_path)
    source = PYTHON[1].replace('Path("neikong-data")', f"Path({str(directory)!r})")
    namespace: dict[str, object] = {}
    exec(compile(source, "producer-guide.md", "exec"), namespace)
    assert [o.status for o in namespace["outcomes"]] == ["appended"]  # type: ignore[attr-defined]


@kafka
def test_the_kafka_example_runs_and_its_events_are_ingested(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    directory = _ledger(tmp_path)
    topic = make_topic(partitions=2)
    source = (
        PYTHON[0]
        .replace('"kafka1:9092"', repr(kafka_bootstrap))
        .replace('"neikong.events"', repr(topic))
        .replace(
            'Path("neikong-data/keys/4403-fapiao.key")',
            f"Path({str(directory / 'keys' / '4403-fapiao.key')!r})",
        )
        .replace('Path("var/neikong-outbox.db")', f"Path({str(tmp_path / 'outbox.db')!r})")
    )
    assert kafka_bootstrap in source
    assert topic in source
    exec(compile(source, "producer-guide.md", "exec"), {})
    with Ledger.open(directory) as ledger:
        consumer = KafkaRecordSource(kafka_bootstrap, topic, f"g-{uuid.uuid4().hex[:8]}")
        try:
            stats = Ingester(
                ledger.appender(),
                consumer,
                settings=IngestSettings(idle_exit_s=30),
                stop_when=lambda s: s.consumed >= 3,
            ).run()
        finally:
            consumer.close()
        assert stats.outcomes == {"appended": 3}
        assert ledger.store.stream_info("matter/4403-fp/2026-000123").closed


@pytest.mark.parametrize("line", [ln for b in BASH for ln in b.split("\n\n")])
def test_the_commands_options_exist(line: str) -> None:
    words = " ".join(line.replace("\\\n", " ").split()).split()
    while words and words[0] != "neikong":
        words.pop(0)
    for start in [i for i, w in enumerate(words) if w == "neikong"]:
        command = []
        for w in words[start + 1 :]:
            if w.startswith("-") or w == "neikong":
                break
            command.append(w)
        rest = words[start + 1 :]
        end = rest.index("neikong") if "neikong" in rest else len(rest)
        options = [w for w in rest[:end] if w.startswith("--")]
        while command:
            result = CliRunner().invoke(main, [*command, "--help"])
            if result.exit_code == 0:
                break
            command.pop()
        assert command, line
        for option in options:
            assert option in result.output, (command, option)
