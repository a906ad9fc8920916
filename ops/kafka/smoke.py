#!/usr/bin/env python3
"""End-to-end smoke check of a running Kafka broker with kafka-python 3.0.x.

Run it after ``ops/kafka/start.sh``, with an interpreter that has kafka-python
(the project's venv has it pinned)::

    python ops/kafka/smoke.py [--bootstrap 127.0.0.1:9092] [--timeout 60]

The bootstrap address comes from ``--bootstrap``, else ``$NEIKONG_TEST_KAFKA``, else
the ``bootstrap`` file that start.sh writes in ``$NEIKONG_KAFKA_HOME``, else
127.0.0.1:9092. Standard library + kafka-python only.

Steps: create a fresh topic (admin client, 1 partition, replication 1); produce
one record with a durable, idempotent producer (``acks='all'``,
``enable_idempotence=True`` set explicitly, ``api_version`` left to negotiation);
consume it in a new consumer group with manual commits and ``read_committed``;
commit the offset and read it back from the broker with a second consumer of the
same group; delete the topic. Exit status 0 on success, 1 on any failure
(message on stderr), 2 when kafka-python is not installed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any


def default_bootstrap() -> str:
    env = os.environ.get("NEIKONG_TEST_KAFKA")
    if env:
        return env
    home = os.environ.get("NEIKONG_KAFKA_HOME") or str(Path.home() / ".cache" / "neikong" / "kafka")
    recorded = Path(home) / "bootstrap"
    if recorded.is_file():
        text = recorded.read_text(encoding="utf-8").strip()
        if text:
            return text
    return "127.0.0.1:9092"


def run(bootstrap: str, timeout_s: float) -> None:
    # imported here so that main() can report a missing kafka-python clearly;
    # ops/ may import kafka (see the banned-api message in pyproject.toml)
    from kafka import (
        KafkaAdminClient,
        KafkaConsumer,
        KafkaProducer,
        TopicPartition,
    )
    from kafka.structs import OffsetAndMetadata

    run_id = uuid.uuid4().hex[:12]
    topic = f"neikong-smoke-{run_id}"
    group = f"neikong-smoke-group-{run_id}"
    key = b"stream-smoke"
    value = f"smoke record {run_id}".encode()
    timeout_ms = int(timeout_s * 1000)
    common: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": f"neikong-smoke-{run_id}",
    }

    def step(msg: str) -> None:
        print(f"kafka smoke: {msg}", file=sys.stderr)

    admin = KafkaAdminClient(**common)
    try:
        step(f"connected to {bootstrap}; creating topic {topic}")
        admin.create_topics(
            {topic: {"num_partitions": 1, "replication_factor": 1}},
            timeout_ms=timeout_ms,
            wait_for_metadata=True,
        )

        producer = KafkaProducer(
            **common,
            acks="all",
            enable_idempotence=True,
            max_in_flight_requests_per_connection=5,
            linger_ms=5,
            compression_type="gzip",  # stdlib codec; the app may use zstd/lz4
            retries=5,
        )
        try:
            meta = producer.send(topic, key=key, value=value).get(timeout=timeout_s)
            producer.flush(timeout=timeout_s)
            # kafka-python internals (3.0.x): an idempotent producer has a transaction
            # manager holding the producer id the broker assigned (InitProducerId).
            tm = getattr(producer, "_transaction_manager", "n/a")
            if tm is None:
                raise RuntimeError("the producer is not idempotent (no transaction manager)")
            pid_epoch = getattr(tm, "producer_id_and_epoch", None)
            producer_id = getattr(pid_epoch, "producer_id", "?")
        finally:
            producer.close(timeout=timeout_s)
        step(
            f"produced to {meta.topic}[{meta.partition}] at offset {meta.offset} "
            f"(idempotent, producer id {producer_id})"
        )
        tp = TopicPartition(topic, meta.partition)

        consumer = KafkaConsumer(
            topic,
            **common,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        try:
            got = None
            deadline = time.monotonic() + timeout_s
            while got is None and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=1000).values():
                    for record in records:
                        if record.key == key:
                            got = record
            if got is None:
                raise RuntimeError(f"no record consumed from {topic} within {timeout_s:g}s")
            if got.value != value or got.offset != meta.offset:
                raise RuntimeError(
                    f"consumed the wrong record: offset {got.offset} value {got.value!r}"
                )
            step(f"consumed it in group {group} (offset {got.offset})")
            consumer.commit({tp: OffsetAndMetadata(got.offset + 1, "", -1)})
            committed = consumer.committed(tp)
            if committed != got.offset + 1:
                raise RuntimeError(
                    f"committed offset reads back as {committed}, expected {got.offset + 1}"
                )
        finally:
            consumer.close()

        # A new member of the same group must see the commit stored by the broker.
        checker = KafkaConsumer(**common, group_id=group, enable_auto_commit=False)
        try:
            stored = checker.committed(tp)
        finally:
            checker.close()
        if stored != meta.offset + 1:
            raise RuntimeError(
                f"the broker holds committed offset {stored}, expected {meta.offset + 1}"
            )
        step(f"offset {stored} committed and read back from the group coordinator")

        admin.delete_topics([topic], timeout_ms=timeout_ms)
        step(f"deleted topic {topic}")
    finally:
        admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Smoke-check a Kafka broker with kafka-python.")
    parser.add_argument("--bootstrap", default=None, help="host:port (see module docstring)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per step (default 60)")
    parser.add_argument("-v", "--verbose", action="store_true", help="kafka-python INFO logging")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR)
    bootstrap = args.bootstrap or default_bootstrap()

    try:
        import kafka
    except ImportError:
        print(
            f"kafka smoke: FAILED: kafka-python is not installed for {sys.executable}; "
            "use the project's venv or: pip install kafka-python==3.0.12",
            file=sys.stderr,
        )
        return 2
    version = getattr(kafka, "__version__", "?")
    started = time.monotonic()
    try:
        run(bootstrap, args.timeout)
    except Exception as exc:
        print(
            f"kafka smoke: FAILED against {bootstrap} (kafka-python {version}): "
            f"{type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 1
    print(
        f"kafka smoke: OK: {bootstrap}, kafka-python {version}, {time.monotonic() - started:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
