"""The Kafka transport: durable settings, acknowledged delivery, errors translated at the
boundary; and the outbox → Kafka path of the producer SDK against the real broker."""

from __future__ import annotations

import inspect
import sqlite3
import subprocess
import sys
from pathlib import Path

import kafka.errors as kafka_errors  # noqa: TID251 - the mapping test enumerates them
import pytest

from ledger.errors import Backpressure, MalformedInput, NeikongError, StoreError
from ledger.reasons import ReasonCode
from producers.kafka_transport import KafkaTransport, producer_settings, translate_kafka_error
from producers.producer import AcknowledgingTransport, Producer
from tests.producers._kafka import (
    REPO,
    consume_all,
    demo_ledger,
    emit_simulated,
    kafka,
)


def _kafka_error_classes() -> list[type[BaseException]]:
    return sorted(
        (
            cls
            for _, cls in inspect.getmembers(kafka_errors, inspect.isclass)
            if issubclass(cls, BaseException) and cls.__module__ == kafka_errors.__name__
        ),
        key=lambda c: c.__name__,
    )


def _instance(cls: type[BaseException]) -> BaseException:
    try:
        return cls()
    except TypeError:
        return cls("detail")


@pytest.mark.parametrize("cls", _kafka_error_classes(), ids=lambda c: c.__name__)
def test_every_kafka_error_is_translated(cls: type[BaseException]) -> None:
    translated = translate_kafka_error(_instance(cls), "testing")
    assert isinstance(translated, NeikongError)
    if getattr(cls, "retriable", False):
        assert isinstance(translated, Backpressure)


def test_translation_classes() -> None:
    too_large = translate_kafka_error(kafka_errors.MessageSizeTooLargeError("big"))
    assert isinstance(too_large, MalformedInput)
    assert too_large.reason is ReasonCode.TOO_LARGE
    assert isinstance(translate_kafka_error(kafka_errors.KafkaTimeoutError()), Backpressure)
    assert isinstance(translate_kafka_error(kafka_errors.KafkaConnectionError()), Backpressure)
    assert isinstance(
        translate_kafka_error(kafka_errors.TopicAuthorizationFailedError()), StoreError
    )
    assert type(translate_kafka_error(ValueError("Not supported codec"))) is NeikongError


def test_durable_producer_settings() -> None:
    settings = producer_settings("127.0.0.1:9092")
    assert settings["acks"] == "all"
    assert settings["enable_idempotence"] is True  # explicit, so a conflict raises
    assert settings["max_in_flight_requests_per_connection"] <= 5
    assert settings["compression_type"] in ("lz4", "zstd")
    assert 0 < settings["linger_ms"] <= 20


NO_BROKER = """
from ledger.errors import Backpressure
from producers.kafka_transport import KafkaTransport
try:
    KafkaTransport("127.0.0.1:9", "t", extra={"bootstrap_timeout_ms": 1000})
except Backpressure as exc:
    print("Backpressure", exc)
"""


def test_no_broker_is_retry_later() -> None:
    # in a subprocess: kafka-python 3.0.12 leaves refused sockets to the garbage collector
    result = subprocess.run(
        [sys.executable, "-c", NO_BROKER], cwd=REPO, capture_output=True, timeout=120, check=True
    )
    assert result.stdout.decode().startswith("Backpressure connecting a producer"), result


@kafka
def test_publish_acked_reports_each_record_and_keys_by_stream(
    kafka_bootstrap: str, make_topic
) -> None:
    topic = make_topic(partitions=3)
    acks: list[BaseException | None] = []
    with KafkaTransport(kafka_bootstrap, topic) as transport:
        assert isinstance(transport, AcknowledgingTransport)
        assert transport._producer.config["enable_idempotence"] is True
        assert transport._producer.config["acks"] == -1
        for i in range(30):
            transport.publish_acked(f"matter/x/{i % 5}", b"record-%d" % i, acks.append)
        transport.flush(30)
    assert acks == [None] * 30
    records = consume_all(kafka_bootstrap, topic, 30)
    assert sorted(r.value for r in records) == sorted(b"record-%d" % i for i in range(30))
    partition_of: dict[bytes, set[int]] = {}
    for r in records:
        partition_of.setdefault(r.key, set()).add(r.partition)
    assert all(len(p) == 1 for p in partition_of.values())  # one stream, one partition
    for key in partition_of:  # in order within the stream
        values = [r.value for r in records if r.key == key]
        assert values == sorted(values, key=lambda v: int(v.split(b"-")[1]))


@kafka
def test_a_stream_goes_to_the_partition_of_the_default_partitioner(
    kafka_bootstrap: str, make_topic
) -> None:
    """The transport names the partition itself (cached per stream): it MUST be the one
    kafka-python's own partitioner picks for the key, so other clients agree."""
    from kafka import KafkaProducer  # noqa: TID251 - the reference partitioner

    topic = make_topic(partitions=6)
    streams = [f"matter/4403-fp/{i:04d}" for i in range(40)]
    reference = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        expected = {
            s: reference.send(topic, key=s.encode(), value=b"ref").get(timeout=30).partition
            for s in streams
        }
    finally:
        reference.close()
    assert len(set(expected.values())) > 1  # the keys do spread over the partitions
    with KafkaTransport(kafka_bootstrap, topic) as transport:
        for _ in range(2):  # the second round comes from the cache
            for s in streams:
                transport.publish(s, b"sdk")
        transport.flush(30)
    records = consume_all(kafka_bootstrap, topic, 3 * len(streams))
    got = [(r.key.decode(), r.partition) for r in records if r.value == b"sdk"]
    assert len(got) == 2 * len(streams)
    assert all(partition == expected[stream] for stream, partition in got)


@kafka
def test_a_message_over_the_size_limit_is_malformed_input(kafka_bootstrap: str, make_topic) -> None:
    topic = make_topic()
    with KafkaTransport(kafka_bootstrap, topic) as transport:
        with pytest.raises(MalformedInput) as caught:
            transport.publish("s", b"x" * (2 * 1024 * 1024))
        assert caught.value.reason is ReasonCode.TOO_LARGE


@kafka
def test_outbox_rows_are_marked_delivered_by_the_delivery_callback(
    kafka_bootstrap: str, make_topic, tmp_path: Path
) -> None:
    topic = make_topic(partitions=2)
    signers = demo_ledger(tmp_path / "ledger")
    transport = KafkaTransport(kafka_bootstrap, topic)
    producers = {
        s: Producer(s, signer, transport, outbox=tmp_path / f"{s}.outbox")
        for s, signer in signers.items()
    }
    emitted = emit_simulated(producers, 300, seed=5)
    for p in producers.values():
        p.flush(60)
        assert p.undelivered == 0
        p.close()
    transport.close()
    for s in signers:
        conn = sqlite3.connect(tmp_path / f"{s}.outbox")
        undelivered = conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL"
        ).fetchone()[0]
        conn.close()
        assert undelivered == 0
    assert len(consume_all(kafka_bootstrap, topic, emitted)) == emitted
