"""A `RecordSource` over a Kafka consumer-group member (the ingest side), on kafka-python 3.0.x.

Settings: `enable_auto_commit=False`, `auto_offset_reset='earliest'`,
`isolation_level='read_committed'`, a group id shared by every `neikong ingest` process of one
topic (Kafka spreads the partitions over them).

Guarantees:
- `poll` hands out record values in partition order and remembers where each came from.
- `commit(count)` commits offsets for the oldest `count` records handed out and not yet
  committed, and for nothing else: the caller MUST call it only once those records are durably
  appended. Records handed out but never committed are delivered again after a restart or a
  rebalance; the appender turns a second copy into a no-op.
- A commit refused because the group rebalanced is logged and dropped: the partition's new
  owner reads those records again (idempotent), nothing is lost.
- `rewind()` seeks every partition back to its oldest uncommitted record, for a caller whose
  append failed (the records are handed out again).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, NamedTuple

import kafka.errors as kafka_errors
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from ledger.errors import NeikongError
from producers.kafka_transport import kafka_client, kafka_errors_translated

__all__ = ["KafkaRecordSource", "Origin"]

log = logging.getLogger("neikong.kafka")


class Origin(NamedTuple):
    topic: str
    partition: int
    offset: int


class _LogAssignments(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, topic: str, group: str) -> None:
        self.topic, self.group = topic, group
        self.changed_at = time.monotonic()
        self.awaiting_assignment = True  # revoked (or never assigned) and not assigned since

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.changed_at = time.monotonic()
        self.awaiting_assignment = True
        if revoked:
            log.info("%s/%s: partitions revoked %s", self.group, self.topic, _ids(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.changed_at = time.monotonic()
        self.awaiting_assignment = False
        log.info("%s/%s: partitions assigned %s", self.group, self.topic, _ids(assigned))


def _ids(partitions: Any) -> list[int]:
    return sorted(tp.partition for tp in partitions)


class KafkaRecordSource:
    """Consumer-group member of one topic; see the module docstring for the commit contract."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        *,
        client_id: str | None = None,
        session_timeout_ms: int = 10_000,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self.group = group
        settings: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "group_id": group,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "isolation_level": "read_committed",
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": max(1000, session_timeout_ms // 4),
            "max_poll_records": 2000,
            "fetch_max_wait_ms": 100,
            "bootstrap_timeout_ms": 30_000,
        }
        if client_id:
            settings["client_id"] = client_id
        settings.update(extra or {})
        self._consumer = kafka_client(
            lambda: KafkaConsumer(**settings), f"connecting a consumer of {topic} to {bootstrap}"
        )
        try:
            with kafka_errors_translated(f"subscribing to {topic}"):
                # Join the group only once this client knows the topic's partitions: a first
                # join without them can leave the member with no partitions at all.
                deadline = time.monotonic() + 30
                while not self._consumer.partitions_for_topic(topic):
                    if time.monotonic() > deadline:
                        raise NeikongError(f"topic {topic} has no partitions (does it exist?)")
                    time.sleep(0.2)
                self._listener = _LogAssignments(topic, group)
                self._consumer.subscribe([topic], listener=self._listener)
        except BaseException:
            self._consumer.close(autocommit=False)
            raise
        # kafka-python 3.0.12 can leave a member with no partitions after a join that raced
        # a metadata update, or revoke its partitions and never assign again (the member then
        # spins in poll); a member left without an assignment this long joins again
        self._rejoin_after_s = 3 * session_timeout_ms / 1000
        self._polled: deque[Origin] = deque()  # handed out, not committed, in order
        self._committed: dict[TopicPartition, int] = {}
        self._next: dict[TopicPartition, int] = {}  # next offset after the last one polled

    # -- RecordSource ----------------------------------------------------------------------

    def poll(self, max_records: int, timeout: float) -> Sequence[bytes]:
        self._rejoin_if_left_empty()
        with kafka_errors_translated(f"polling {self.topic}"):
            fetched = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        values: list[bytes] = []
        for tp, records in fetched.items():
            for r in records:
                values.append(r.value if r.value is not None else b"")
                self._polled.append(Origin(tp.topic, tp.partition, r.offset))
            if records:
                self._next[tp] = records[-1].offset + 1
        return values

    def commit(self, count: int | None = None) -> None:
        """Commit the oldest `count` handed-out records (default: all handed out)."""
        n = len(self._polled) if count is None else count
        if n > len(self._polled):
            raise ValueError(f"cannot commit {n} records: only {len(self._polled)} handed out")
        offsets: dict[TopicPartition, int] = {}
        for _ in range(n):
            origin = self._polled.popleft()
            tp = TopicPartition(origin.topic, origin.partition)
            offsets[tp] = max(offsets.get(tp, 0), origin.offset + 1)
        with kafka_errors_translated(f"reading the assignment of {self.topic}"):
            owned = self._consumer.assignment()
        commit = {
            tp: OffsetAndMetadata(offset, "", -1)
            for tp, offset in offsets.items()
            if tp in owned and offset > self._committed.get(tp, -1)
        }
        if not commit:
            return
        try:
            with kafka_errors_translated(f"committing offsets of {self.topic}"):
                self._consumer.commit(commit)
        except Exception as exc:
            cause = exc.__cause__
            if isinstance(
                cause, kafka_errors.CommitFailedError | kafka_errors.RebalanceInProgressError
            ):
                log.warning("offset commit dropped after a rebalance (records re-read): %s", exc)
                return
            raise
        for tp, meta in commit.items():
            self._committed[tp] = meta.offset

    def _rejoin_if_left_empty(self) -> None:
        if time.monotonic() - self._listener.changed_at < self._rejoin_after_s:
            return
        with kafka_errors_translated(f"checking the assignment of {self.topic}"):
            left = self._listener.awaiting_assignment or not self._consumer.assignment()
            if not left or not self._consumer.partitions_for_topic(self.topic):
                return
            log.warning(
                "%s/%s: no partitions assigned for %.0f s; joining the group again",
                self.group,
                self.topic,
                self._rejoin_after_s,
            )
            self._listener.changed_at = time.monotonic()
            self._consumer.unsubscribe()
            self._consumer.subscribe([self.topic], listener=self._listener)

    # -- extras for the ingest loop --------------------------------------------------------

    def origins(self, count: int) -> list[Origin]:
        """Where the oldest `count` uncommitted handed-out records came from."""
        return [self._polled[i] for i in range(min(count, len(self._polled)))]

    @property
    def uncommitted(self) -> int:
        return len(self._polled)

    def rewind(self) -> None:
        """Forget everything handed out and not committed; read it again from Kafka."""
        first: dict[TopicPartition, int] = {}
        for origin in self._polled:
            tp = TopicPartition(origin.topic, origin.partition)
            first[tp] = min(first.get(tp, origin.offset), origin.offset)
        self._polled.clear()
        with kafka_errors_translated(f"rewinding {self.topic}"):
            owned = self._consumer.assignment()
            for tp, offset in first.items():
                if tp in owned:
                    self._consumer.seek(tp, offset)
                    self._next[tp] = offset

    def lag(self) -> int | None:
        """Records in the assigned partitions after the last one handed out (None: unknown)."""
        total, known = 0, False
        with kafka_errors_translated(f"reading the lag of {self.topic}"):
            for tp in self._consumer.assignment():
                high = self._consumer.highwater(tp)
                position = self._next.get(tp)
                if high is None or position is None:
                    continue
                total += max(0, high - position)
                known = True
        return total if known else None

    def assignment(self) -> set[int]:
        with kafka_errors_translated(f"reading the assignment of {self.topic}"):
            return {tp.partition for tp in self._consumer.assignment()}

    def close(self) -> None:
        with kafka_errors_translated(f"closing the consumer of {self.topic}"):
            self._consumer.close(autocommit=False)

    def __enter__(self) -> KafkaRecordSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
