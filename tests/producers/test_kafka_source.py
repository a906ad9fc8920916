"""The Kafka record source: commits only what it is told is durable; rewinds; reports lag."""

from __future__ import annotations

import time
import uuid

from producers.kafka_source import KafkaRecordSource
from producers.kafka_transport import KafkaTransport
from tests.producers._kafka import kafka

pytestmark = kafka


def _fill(bootstrap: str, topic: str, n: int) -> None:
    with KafkaTransport(bootstrap, topic) as transport:
        for i in range(n):
            transport.publish("s", b"r%03d" % i)
        transport.flush(30)


def _poll_at_least(source: KafkaRecordSource, n: int, timeout: float = 30.0) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got.extend(source.poll(n - len(got), 0.5))
    return got


def test_commit_count_commits_only_the_oldest_records(kafka_bootstrap: str, make_topic) -> None:
    topic = make_topic()
    group = f"g-{uuid.uuid4().hex[:8]}"
    _fill(kafka_bootstrap, topic, 10)
    with KafkaRecordSource(kafka_bootstrap, topic, group, session_timeout_ms=6000) as source:
        assert _poll_at_least(source, 10) == [b"r%03d" % i for i in range(10)]
        assert [o.offset for o in source.origins(3)] == [0, 1, 2]
        source.commit(4)  # only the first four are durable
        assert source.uncommitted == 6
    with KafkaRecordSource(kafka_bootstrap, topic, group, session_timeout_ms=6000) as again:
        assert _poll_at_least(again, 6) == [b"r%03d" % i for i in range(4, 10)]


def test_rewind_hands_out_uncommitted_records_again(kafka_bootstrap: str, make_topic) -> None:
    topic = make_topic()
    _fill(kafka_bootstrap, topic, 8)
    with KafkaRecordSource(kafka_bootstrap, topic, f"g-{uuid.uuid4().hex[:8]}") as source:
        assert len(_poll_at_least(source, 8)) == 8
        source.commit(3)
        source.rewind()
        assert source.uncommitted == 0
        assert _poll_at_least(source, 5) == [b"r%03d" % i for i in range(3, 8)]


def test_lag_counts_records_not_yet_handed_out(kafka_bootstrap: str, make_topic) -> None:
    topic = make_topic()
    _fill(kafka_bootstrap, topic, 50)
    with KafkaRecordSource(kafka_bootstrap, topic, f"g-{uuid.uuid4().hex[:8]}") as source:
        assert source.lag() is None  # nothing fetched yet
        got = _poll_at_least(source, 20)
        source.commit()
        lag = source.lag()
        assert lag is not None
        assert lag == 50 - len(got)
        assert source.assignment() == {0}
