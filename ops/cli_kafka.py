"""CLI commands of the Kafka deployment: `kafka init-topics`, `ingest`, `gaps`.

Registered on `ops.cli.main` (this module is imported at the end of ops/cli.py). Exit codes as
for every command: 0 ok, 2 usage, 3 operational error (broker unreachable, no ledger, …).
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

import click
import yaml
from prometheus_client import CollectorRegistry

from ledger.appender import Appender
from ops.cli import EXIT_CODES_HELP, _emit_json, _open, ledger_option, main
from ops.cli_options import check_workers_option, metrics_port_option
from ops.ingest import Ingester, IngestMetrics, IngestSettings, KafkaDeadLetters, producer_gaps
from ops.metrics import NeikongMetrics, serve_metrics
from producers.kafka_source import KafkaRecordSource
from producers.kafka_transport import KafkaTransport, TopicSpec, ensure_topics

__all__ = ["DEFAULT_TOPIC", "dead_letter_topic_for"]

DEFAULT_TOPIC = "neikong.events"


def dead_letter_topic_for(topic: str) -> str:
    return f"{topic}.dead-letters"


bootstrap_option = click.option(
    "--bootstrap", required=True, metavar="HOST:PORT", help="Kafka bootstrap server(s)."
)


@main.group()
def kafka() -> None:
    """Kafka topics of the distributed deployment."""


def _topic_settings(config: Path | None) -> dict[str, Any]:
    if config is None:
        return {}
    loaded = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    if not isinstance(loaded, dict):
        raise click.BadParameter(f"{config} must hold a mapping", param_hint="--config")
    section = loaded.get("kafka", loaded)
    if not isinstance(section, dict):
        raise click.BadParameter(f"{config}: 'kafka' must be a mapping", param_hint="--config")
    known = {
        "topic",
        "dead_letter_topic",
        "partitions",
        "replication_factor",
        "retention_ms",
        "dead_letter_retention_ms",
        "min_insync_replicas",
    }
    unknown = set(section) - known
    if unknown:
        raise click.BadParameter(
            f"{config}: unknown keys {sorted(unknown)}; known: {sorted(known)}",
            param_hint="--config",
        )
    return section


@kafka.command("init-topics", epilog=EXIT_CODES_HELP)
@bootstrap_option
@click.option(
    "--config",
    "config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML/JSON file with the settings below (keys with underscores, optionally under "
    "'kafka:'); options given on the command line win.",
)
@click.option("--topic", default=None, help=f"Event topic. Default: {DEFAULT_TOPIC}.")
@click.option("--dead-letter-topic", default=None, help="Default: TOPIC.dead-letters.")
@click.option("--partitions", type=click.IntRange(1), default=None, help="Default: 6.")
@click.option("--replication-factor", type=click.IntRange(1), default=None, help="Default: 1.")
@click.option(
    "--retention-ms", type=click.IntRange(-1), default=None, help="Default: 7 days; -1 = forever."
)
@click.option(
    "--dead-letter-retention-ms", type=click.IntRange(-1), default=None, help="Default: 30 days."
)
@click.option(
    "--min-insync-replicas",
    type=click.IntRange(1),
    default=None,
    help="Default: 1 (single broker); use 2 with replication factor 3.",
)
def init_topics(config: Path | None, bootstrap: str, **options: Any) -> None:
    """Create the event topic and its dead-letter topic (existing topics are left alone)."""
    settings = _topic_settings(config)
    for key, value in options.items():
        if value is not None:
            settings[key] = value
    topic = settings.get("topic", DEFAULT_TOPIC)
    rf = int(settings.get("replication_factor", 1))
    isr = int(settings.get("min_insync_replicas", 1))
    if isr > rf:
        raise click.UsageError(f"min.insync.replicas {isr} exceeds the replication factor {rf}")
    common = {"replication_factor": rf, "min_insync_replicas": isr}
    specs = [
        TopicSpec(
            topic,
            partitions=int(settings.get("partitions", 6)),
            retention_ms=int(settings.get("retention_ms", 7 * 24 * 3600 * 1000)),
            **common,
        ),
        TopicSpec(
            settings.get("dead_letter_topic", dead_letter_topic_for(topic)),
            partitions=1,
            retention_ms=int(settings.get("dead_letter_retention_ms", 30 * 24 * 3600 * 1000)),
            **common,
        ),
    ]
    result = ensure_topics(bootstrap, specs)
    for spec in specs:
        click.echo(
            f"{result[spec.name]:<8} {spec.name}  partitions={spec.partitions} "
            f"replication={spec.replication_factor} "
            + " ".join(f"{k}={v}" for k, v in spec.configs().items())
        )


# -- ingest -----------------------------------------------------------------------------------


@main.command(epilog=EXIT_CODES_HELP)
@ledger_option
@bootstrap_option
@click.option("--topic", default=DEFAULT_TOPIC, show_default=True)
@click.option("--group", required=True, help="Consumer group shared by every ingest process.")
@click.option("--dead-letter-topic", default=None, help="Default: TOPIC.dead-letters.")
@metrics_port_option("neikong-ingest")
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="Address the metrics bind."
)
@check_workers_option
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.option(
    "--gap-timeout",
    type=click.FloatRange(0),
    default=None,
    help="Seconds before an unfilled gap raises producer_gap (default: the ledger's).",
)
@click.option(
    "--session-timeout-ms",
    type=click.IntRange(6000),
    default=10_000,
    show_default=True,
    help="Kafka group session timeout: how soon a dead ingester's partitions move.",
)
@click.option(
    "--idle-exit",
    type=click.FloatRange(0),
    default=None,
    help="Exit after this many seconds without input (default: run until SIGTERM).",
)
@click.option(
    "--connect-timeout",
    type=click.FloatRange(0.1),
    default=30.0,
    show_default=True,
    help="Seconds to reach the broker at start before giving up (exit code 3).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the final counts as JSON.")
def ingest(  # noqa: PLR0917 - one parameter per click option
    ledger_dir: Path | None,
    bootstrap: str,
    topic: str,
    group: str,
    dead_letter_topic: str | None,
    metrics_port: int,
    metrics_host: str,
    workers: int | None,
    batch_size: int,
    gap_timeout: float | None,
    session_timeout_ms: int,
    idle_exit: float | None,
    connect_timeout: float,
    as_json: bool,
) -> None:
    """Consume TOPIC as a member of GROUP and append to the ledger until SIGTERM.

    Offsets are committed only after the append is durable; rejected records go to the
    dead-letter topic with their reason code in the `neikong-reason` header.
    """
    import os

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("kafka", "kafka.conn", "kafka.coordinator"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    workers = (os.cpu_count() or 1) if workers is None else workers
    registry = CollectorRegistry()
    server = serve_metrics(registry, metrics_host, metrics_port) if metrics_port else None
    with _open(ledger_dir) as ledger, contextlib.ExitStack() as cleanup:
        if server is not None:
            cleanup.callback(server.close)
        config = ledger.config.append_config(workers, source=f"kafka:{topic}")
        if gap_timeout is not None:
            config = replace(config, gap_timeout_s=gap_timeout)
        appender = Appender(ledger.store, ledger.registry, config)
        connect = {"bootstrap_timeout_ms": int(connect_timeout * 1000)}
        source = KafkaRecordSource(
            bootstrap, topic, group, session_timeout_ms=session_timeout_ms, extra=connect
        )
        try:
            dlq = KafkaTransport(
                bootstrap, dead_letter_topic or dead_letter_topic_for(topic), extra=connect
            )
        except BaseException:
            source.close()
            raise
        try:
            click.echo(
                f"neikong ingest: consuming {topic} as group {group} into {ledger.directory}",
                err=True,
            )
            ingester = Ingester(
                appender,
                source,
                metrics=IngestMetrics(registry),
                ledger_metrics=NeikongMetrics(registry),
                dead_letters=KafkaDeadLetters(dlq),
                settings=IngestSettings(batch_size=batch_size, idle_exit_s=idle_exit),
                stop=stop,
            )
            stats = ingester.run()
        finally:
            source.close()
            dlq.close()
            appender.close()
    if as_json:
        _emit_json(stats.to_json())
    else:
        click.echo(
            f"neikong ingest: stopped after {stats.consumed} records: "
            f"{json.dumps(stats.outcomes, sort_keys=True)}, "
            f"{stats.ledger_gained} ledger positions gained",
            err=True,
        )


# -- gaps -------------------------------------------------------------------------------------


@main.command(epilog=EXIT_CODES_HELP)
@ledger_option
@click.option(
    "--timeout",
    type=click.FloatRange(0),
    default=None,
    help="Only gaps older than this many seconds (default: the ledger's gap timeout).",
)
@click.option("--json", "as_json", is_flag=True)
def gaps(ledger_dir: Path | None, timeout: float | None, as_json: bool) -> None:
    """List producer and stream gaps not filled in time (`producer_gap` findings)."""
    with _open(ledger_dir) as ledger:
        config = ledger.config.append_config()
        if timeout is not None:
            config = replace(config, gap_timeout_s=timeout)
        with Appender(ledger.store, ledger.registry, config) as appender:
            found = producer_gaps(appender)
    if as_json:
        _emit_json([g.to_json() for g in found])
    else:
        for gap in found:
            click.echo(gap.describe())
        click.echo(f"{len(found)} overdue gaps")
