"""The Kafka transport (producer side), on kafka-python 3.0.x.

Settings that make a record durable once acknowledged: `acks='all'`, `enable_idempotence=True`
set explicitly (kafka-python 3.0 silently turns idempotence off if a conflicting option is
passed while it is left implicit; explicit, a conflict raises), at most 5 requests in flight,
key = stream (one stream stays in one partition, in order), lz4 compression, a few ms linger.

Guarantees:
- `publish_acked(stream, record, on_delivery)` calls `on_delivery(None)` only after the broker
  acknowledged the record under `acks='all'`; otherwise it calls it with a `NeikongError`.
- A stream's records go to the partition kafka-python's default partitioner assigns its key
  (computed here once per stream and partition count, passed explicitly).
- `publish` + `flush` (the `Transport` protocol): `flush` returns only when every record
  published before it was acknowledged, and raises the first delivery error otherwise.
- Every kafka-python exception is translated at this boundary (`translate_kafka_error`):
  retriable ones (timeouts, broker unavailable, leader moves) become `Backpressure` (retry
  later), a message over the broker's size limit becomes `MalformedInput(too_large)`, the rest
  `StoreError`; configuration mistakes become `NeikongError`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient, KafkaProducer
from kafka.partitioner.default import murmur2

from ledger.errors import Backpressure, MalformedInput, NeikongError, StoreError
from ledger.reasons import ReasonCode

__all__ = [
    "COMPRESSION",
    "KafkaTransport",
    "TopicSpec",
    "delete_topics",
    "ensure_topics",
    "kafka_client",
    "kafka_errors_translated",
    "producer_settings",
    "translate_kafka_error",
]

log = logging.getLogger("neikong.kafka")

_T = TypeVar("_T")

COMPRESSION = "lz4"
_PARTITION_CACHE = 100_000  # keys (streams) whose partition is remembered


def translate_kafka_error(exc: BaseException, doing: str = "Kafka") -> NeikongError:
    """The neikong error for a kafka-python exception (or anything kafka-python raised)."""
    if isinstance(exc, NeikongError):
        return exc
    text = f"{doing}: {type(exc).__name__}: {exc}"
    if isinstance(
        exc, kafka_errors.MessageSizeTooLargeError | kafka_errors.RecordListTooLargeError
    ):
        return MalformedInput(ReasonCode.TOO_LARGE, text)
    if isinstance(exc, kafka_errors.KafkaError):
        if exc.retriable or isinstance(exc, kafka_errors.NodeNotReadyError):
            return Backpressure(f"{text} (retry later)")
        if isinstance(
            exc, kafka_errors.KafkaConfigurationError | kafka_errors.IllegalArgumentError
        ):
            return NeikongError(text)
        return StoreError(text)
    if isinstance(exc, TimeoutError | ConnectionError):
        return Backpressure(f"{text} (retry later)")
    if isinstance(exc, OSError):
        return StoreError(text)
    # kafka-python reports bad settings and missing codec libraries as ValueError,
    # TypeError, AssertionError or RuntimeError
    return NeikongError(text)


@contextmanager
def kafka_errors_translated(doing: str) -> Iterator[None]:
    """Run a kafka-python call; re-raise whatever it raises as a `NeikongError`."""
    try:
        yield
    except NeikongError:
        raise
    except Exception as exc:
        raise translate_kafka_error(exc, doing) from exc


def kafka_client(factory: Callable[[], _T], doing: str) -> _T:
    """Create a kafka-python client; translate a failure into a `NeikongError`.

    kafka-python 3.0.12 does not close what its constructor opened when it fails (no broker):
    the half-made client is collected here, quietly, once nothing refers to it any more,
    instead of warning later at an arbitrary point.
    """
    try:
        return factory()
    except Exception as exc:
        error = translate_kafka_error(exc, doing)
        _close_half_made_clients(exc)
    # the failed constructor's frames are unreachable now (the `except` block ended)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    raise error


def _close_half_made_clients(exc: BaseException) -> None:
    """Close the network client a failed kafka-python constructor left open (found in its
    frames: `client` in KafkaProducer.__init__, `self._client` in the consumer and admin
    client), so its sockets close now even if something (a captured log record) still
    refers to them."""
    tb = exc.__traceback__
    closed: set[int] = set()
    while tb is not None:
        local = tb.tb_frame.f_locals
        for candidate in (local.get("client"), getattr(local.get("self"), "_client", None)):
            close = getattr(candidate, "close", None)
            if (
                candidate is None
                or id(candidate) in closed
                or not callable(close)
                or not type(candidate).__module__.startswith("kafka.")
            ):
                continue
            closed.add(id(candidate))
            with contextlib.suppress(Exception):
                close()
        tb = tb.tb_next


def producer_settings(
    bootstrap: str,
    *,
    client_id: str | None = None,
    compression: str = COMPRESSION,
    linger_ms: int = 5,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The durable producer settings (see the module docstring)."""
    settings: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "max_in_flight_requests_per_connection": 5,
        "compression_type": compression,
        "linger_ms": linger_ms,
        "batch_size": 256 * 1024,
        "max_request_size": 1024 * 1024,
        "bootstrap_timeout_ms": 30_000,
    }
    if client_id:
        settings["client_id"] = client_id
    settings.update(extra or {})
    return settings


class KafkaTransport:
    """Publishes records to one topic; key = stream name (UTF-8)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        client_id: str | None = None,
        compression: str = COMPRESSION,
        linger_ms: int = 5,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self.bootstrap = bootstrap
        settings = producer_settings(
            bootstrap,
            client_id=client_id,
            compression=compression,
            linger_ms=linger_ms,
            extra=extra,
        )
        self._producer = kafka_client(
            lambda: KafkaProducer(**settings), f"connecting a producer to {bootstrap}"
        )
        self._lock = threading.Lock()
        self._error: NeikongError | None = None
        self._partitions: dict[bytes, tuple[int, int]] = {}

    # -- sending ---------------------------------------------------------------------------

    def publish(self, stream: str, record: bytes) -> None:
        """Queue one record; a delivery failure is raised by the next `flush`."""
        key = stream.encode("utf-8")
        self._send(key, record, None, self._remember_error, self._partition_of(key))

    def publish_acked(
        self, stream: str, record: bytes, on_delivery: Callable[[BaseException | None], None]
    ) -> None:
        """Queue one record; `on_delivery` is called from Kafka's I/O thread."""
        key = stream.encode("utf-8")
        self._send(key, record, None, on_delivery, self._partition_of(key))

    def send_raw(
        self,
        key: bytes | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
        on_delivery: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        """Queue any bytes with headers (the dead-letter topic uses this)."""
        self._send(key, value, list(headers) or None, on_delivery or self._remember_error, None)

    def _partition_of(self, key: bytes) -> int | None:
        """The partition kafka-python's default partitioner picks for `key` (murmur2 of the
        key over the sorted partitions), remembered per key and partition count: the pure
        Python hash is a third of the cost of a send. None (kafka-python decides) while the
        topic's partitions are unknown."""
        try:
            known = self._producer.partitions_for(self.topic)
        except Exception as exc:
            raise translate_kafka_error(exc, f"reading the partitions of {self.topic}") from exc
        if not known:
            return None
        count = len(known)
        cached = self._partitions.get(key)
        if cached is not None and cached[0] == count:
            return cached[1]
        partition: int = sorted(known)[(murmur2(key) & 0x7FFFFFFF) % count]
        if len(self._partitions) >= _PARTITION_CACHE:
            self._partitions.clear()
        self._partitions[key] = (count, partition)
        return partition

    def _send(
        self,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None,
        on_delivery: Callable[[BaseException | None], None],
        partition: int | None,
    ) -> None:
        try:
            future = self._producer.send(
                self.topic, value=value, key=key, headers=headers, partition=partition
            )
        except Exception as exc:
            raise translate_kafka_error(exc, f"publishing to {self.topic}") from exc

        def ok(_metadata: object) -> None:
            _safely(on_delivery, None)

        def failed(exc: BaseException) -> None:
            _safely(on_delivery, translate_kafka_error(exc, f"delivering to {self.topic}"))

        future.add_callback(ok)
        future.add_errback(failed)

    def _remember_error(self, error: BaseException | None) -> None:
        if error is not None:
            with self._lock:
                if self._error is None:
                    self._error = translate_kafka_error(error)

    def flush(self, timeout: float | None = None) -> None:
        """Wait for every queued record's acknowledgement; raise the first failure."""
        with kafka_errors_translated(f"flushing to {self.topic}"):
            self._producer.flush(timeout=timeout)
        with self._lock:
            error, self._error = self._error, None
        if error is not None:
            raise error

    def partitions(self) -> set[int]:
        with kafka_errors_translated(f"reading the partitions of {self.topic}"):
            found = self._producer.partitions_for(self.topic)
        return set(found or ())

    def close(self, timeout: float | None = 30.0) -> None:
        with kafka_errors_translated(f"closing the producer of {self.topic}"):
            self._producer.close(timeout=timeout)

    def __enter__(self) -> KafkaTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _safely(callback: Callable[[BaseException | None], None], error: BaseException | None) -> None:
    """Callbacks run on kafka-python's I/O thread: an exception there MUST NOT escape."""
    try:
        callback(error)
    except Exception:
        log.exception("delivery callback failed")


@dataclass(frozen=True)
class TopicSpec:
    """A topic as `neikong kafka init-topics` creates it."""

    name: str
    partitions: int = 6
    replication_factor: int = 1
    retention_ms: int = 7 * 24 * 3600 * 1000
    min_insync_replicas: int = 1
    max_message_bytes: int | None = None

    def configs(self) -> dict[str, str]:
        out = {
            "retention.ms": str(self.retention_ms),
            "min.insync.replicas": str(self.min_insync_replicas),
        }
        if self.max_message_bytes is not None:
            out["max.message.bytes"] = str(self.max_message_bytes)
        return out


def ensure_topics(bootstrap: str, specs: Sequence[TopicSpec]) -> dict[str, str]:
    """Create each topic unless it exists; return name -> "created" | "exists"."""
    result: dict[str, str] = {}
    admin = kafka_client(
        lambda: KafkaAdminClient(bootstrap_servers=bootstrap),
        f"connecting an admin client to {bootstrap}",
    )
    try:
        for spec in specs:
            request = {
                spec.name: {
                    "num_partitions": spec.partitions,
                    "replication_factor": spec.replication_factor,
                    "configs": spec.configs(),
                }
            }
            try:
                admin.create_topics(request, timeout_ms=30_000, wait_for_metadata=True)
                result[spec.name] = "created"
            except kafka_errors.TopicAlreadyExistsError:
                result[spec.name] = "exists"
            except Exception as exc:
                raise translate_kafka_error(exc, f"creating topic {spec.name}") from exc
    finally:
        with kafka_errors_translated("closing the admin client"):
            admin.close()
    return result


def delete_topics(bootstrap: str, names: Sequence[str]) -> None:
    """Delete topics (tests and benchmarks clean up after themselves)."""
    admin = kafka_client(
        lambda: KafkaAdminClient(bootstrap_servers=bootstrap),
        f"connecting an admin client to {bootstrap}",
    )
    with kafka_errors_translated(f"deleting topics {', '.join(names)}"):
        try:
            admin.delete_topics(list(names), timeout_ms=30_000)
        finally:
            admin.close()
