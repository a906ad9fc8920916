"""The producer SDK: one call per step of a matter, signed at the source.

`Producer.emit` stamps `event_id`, `stream_seq`, `prev` and the producer sequence, signs the
canonical body with the system's key and hands the record on. The chain state (per-stream seq
and digest, producer seq) makes drops and reorders provable: the ledger refuses gaps, forks and
reused sequence numbers.

Two modes:

- With an `outbox` (what a tax system embeds): `emit` MUST NOT return before the signed record,
  its stream's chain state and the producer sequence are committed (fsynced) to the outbox.
  Delivery to the transport happens in a background thread (default) or on `flush()`; a row is
  marked delivered only once the transport acknowledged it, and after a crash every row not
  marked is sent again. When `limit` records wait undelivered, `emit` raises `Backpressure`
  (retry later) and stamps nothing.
  Inside `with producer.batch():` (bulk imports) `emit` returns once the event is queued, and
  the block MUST NOT exit before every event emitted in it is committed: one fsync then covers
  many events. If a commit fails, the block raises `StoreError`; the events it lists as
  emitted before the failure are durable, later ones never existed.
- Without an outbox (the embedded in-process default, where the ledger appends in the same
  process): the chain state lives in memory and `emit` publishes synchronously.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from ledger.builder import new_event_id
from ledger.errors import Backpressure, NeikongError
from ledger.guard import ALLOW, CommandGuard, GuardDecision
from ledger.keys import Signer
from ledger.transport import Transport
from producers.outbox import Outbox, OutboxRow, Ticket
from producers.stamping import BodyTemplate

__all__ = ["AcknowledgingTransport", "EmittedEvent", "Producer"]

log = logging.getLogger("neikong.producer")

DeliveryCallback = Callable[[BaseException | None], None]


@runtime_checkable
class AcknowledgingTransport(Transport, Protocol):
    """A transport that reports each record's fate (the Kafka transport does)."""

    def publish_acked(self, stream: str, record: bytes, on_delivery: DeliveryCallback) -> None:
        """Send one record; call `on_delivery(None)` once it is durable, or with the error."""
        ...


@dataclass(frozen=True)
class EmittedEvent:
    event_id: str
    stream: str
    stream_seq: int
    producer_seq: int
    record: bytes


class Producer:
    """Signs and publishes events for one producer system (one key)."""

    def __init__(
        self,
        system: str,
        signer: Signer,
        transport: Transport,
        *,
        rng: random.Random | None = None,
        producer_seq: int = 0,
        outbox: Outbox | str | os.PathLike[str] | None = None,
        outbox_limit: int = 100_000,
        background: bool = True,
        commit_timeout_s: float | None = None,
        guard: CommandGuard | None = None,
    ) -> None:
        self.system = system
        self.guard = guard
        self.signer = signer
        self.transport = transport
        self._rng = rng
        self._commit_timeout_s = commit_timeout_s
        self._owns_outbox = outbox is not None and not isinstance(outbox, Outbox)
        if outbox is None or isinstance(outbox, Outbox):
            self.outbox = outbox
        else:
            self.outbox = Outbox(outbox, system, limit=outbox_limit)
        if self.outbox is not None and self.outbox.system not in (None, system):
            raise NeikongError(f"outbox of {self.outbox.system!r} given to producer {system!r}")
        self._producer_seq = producer_seq
        self._streams: dict[str, tuple[int, bytes]] = {}
        self._delivery: _Delivery | None = None
        self._batch = threading.local()
        self._memory_lock = threading.Lock()
        if self.outbox is not None:
            self._delivery = _Delivery.attach(self.outbox, transport, background=background)

    def _event_id(self, occurred_at: str) -> str:
        if self._rng is None:
            return new_event_id()
        # Reproducible runs: time from the event, random bits from the seeded generator.
        moment = datetime.fromisoformat(occurred_at)
        return new_event_id(int(moment.timestamp() * 1000), self._rng.getrandbits(74))

    def check(
        self,
        stream: str,
        type: str,
        *,
        actor: Mapping[str, str],
        data: Mapping[str, Any],
        subject: Mapping[str, str] | None = None,
    ) -> GuardDecision:
        """May this step be taken now? Ask before `emit` (事中阻断).

        Asks the `guard` given to the constructor (e.g. `alerts.guards.BlockingGuard`, which
        records a denial in the ledger as `command.rejected`); without one every step is
        allowed. `check` MUST NOT emit, sign or stamp anything itself, and `emit` does not
        consult the guard: refusing a denied step is the calling system's decision.
        """
        if self.guard is None:
            return ALLOW
        return self.guard.check(stream, type, actor=actor, data=data, subject=subject)

    def emit(
        self,
        stream: str,
        type: str,
        *,
        actor: Mapping[str, str],
        data: Mapping[str, Any],
        occurred_at: str,
        subject: Mapping[str, str] | None = None,
        pii: Mapping[str, str] | None = None,
    ) -> EmittedEvent:
        """Stamp, sign and hand over one event; see the module docstring for durability.

        Every check that can refuse the event (canonical JSON, the event id) runs before any
        sequence number is taken: a refused event MUST NOT leave a gap or a fork."""
        template = BodyTemplate.of(
            event_id=self._event_id(occurred_at),
            stream=stream,
            system=self.system,
            type=type,
            occurred_at=occurred_at,
            actor=actor,
            data=data,
            subject=subject,
            pii=pii,
        )
        if self.outbox is not None:
            return self._emit_durable(stream, template)
        with self._memory_lock:
            seq, digest = self._streams.get(stream, (0, b""))
            self._producer_seq += 1
            body = template.stamp(seq + 1, digest, self._producer_seq)
            signed = self.signer.sign(body)
            record = signed.encode()
            self._streams[stream] = (seq + 1, signed.digest)
            self.transport.publish(stream, record)
            return EmittedEvent(template.event_id, stream, seq + 1, self._producer_seq, record)

    def _emit_durable(self, stream: str, template: BodyTemplate) -> EmittedEvent:
        """Reserve (outbox lock), sign (no lock: threads sign in parallel), fill, wait."""
        outbox = self.outbox
        assert outbox is not None
        slot = outbox.reserve(stream, self.system)
        try:
            body = template.stamp(slot.stream_seq, slot.prev, slot.producer_seq)
            signed = self.signer.sign(body)  # Ed25519 releases the GIL: threads sign together
            record = signed.encode()
        except BaseException as exc:
            outbox.abandon(slot, exc)
            raise
        outbox.fill(slot, record, signed.digest)
        emitted = EmittedEvent(
            template.event_id, stream, slot.stream_seq, slot.producer_seq, record
        )
        pending: list[tuple[Ticket, EmittedEvent]] | None = getattr(self._batch, "pending", None)
        if pending is not None:
            pending.append((slot.ticket, emitted))
        else:
            slot.ticket.wait(self._commit_timeout_s)
        return emitted

    @contextlib.contextmanager
    def batch(self) -> Iterator[list[EmittedEvent]]:
        """Emit many events with one wait: durable when the block exits (outbox mode).

        Yields the list of events committed so far, filled when the block exits.
        """
        if self.outbox is None or getattr(self._batch, "pending", None) is not None:
            yield []
            return
        pending: list[tuple[Ticket, EmittedEvent]] = []
        done: list[EmittedEvent] = []
        self._batch.pending = pending
        self.outbox.hold()  # the rows of the block gather into few commits
        try:
            yield done
        finally:
            self._batch.pending = None
            self.outbox.release()
            waited: set[int] = set()
            for ticket, emitted in pending:
                if id(ticket) not in waited:
                    ticket.wait(self._commit_timeout_s)  # raises if this commit failed
                    waited.add(id(ticket))
                done.append(emitted)

    def forget(self, stream: str) -> None:
        """Drop the cached chain state of a concluded stream (bounded memory)."""
        self._streams.pop(stream, None)
        if self.outbox is not None:
            self.outbox.forget(stream)

    @property
    def undelivered(self) -> int:
        """Events in the outbox (of every system sharing it) not acknowledged yet."""
        return 0 if self.outbox is None else self.outbox.undelivered

    def flush(self, timeout: float | None = None) -> None:
        """Return once every event emitted before this call is acknowledged by the transport.

        Raises `Backpressure` (retry later) if that does not happen within `timeout` seconds.
        """
        if self._delivery is None:
            self.transport.flush(timeout)
            return
        self._delivery.flush(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Try to deliver what is pending (up to `timeout`), then stop. Undelivered rows stay
        in the outbox and are sent by the next `Producer` on the same file."""
        if self._delivery is not None:
            try:
                self._delivery.flush(timeout)
            except Backpressure as exc:
                log.warning("closing with undelivered events (sent on restart): %s", exc)
            self._delivery.detach()
            self._delivery = None
        if self._owns_outbox and self.outbox is not None:
            self.outbox.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Delivery:
    """Moves committed outbox rows to the transport and records their acknowledgements.

    One per outbox: the producers sharing an outbox share its delivery (and MUST share its
    transport); it stops when the last of them detaches.
    """

    CHUNK = 2000
    _by_outbox: ClassVar[dict[int, _Delivery]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, outbox: Outbox, transport: Transport) -> None:
        self.outbox = outbox
        self.transport = transport
        self._acking = isinstance(transport, AcknowledgingTransport)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._users = 0

    @classmethod
    def attach(cls, outbox: Outbox, transport: Transport, *, background: bool) -> _Delivery:
        with cls._registry_lock:
            delivery = cls._by_outbox.get(id(outbox))
            if delivery is None:
                delivery = cls._by_outbox[id(outbox)] = cls(outbox, transport)
                if background:
                    delivery.start()
            elif delivery.transport is not transport:
                raise NeikongError(
                    f"the outbox {outbox.path} is delivered through another transport; "
                    "producers sharing an outbox share its transport"
                )
            delivery._users += 1
            return delivery

    def detach(self) -> None:
        with self._registry_lock:
            self._users -= 1
            if self._users > 0:
                return
            self._by_outbox.pop(id(self.outbox), None)
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"neikong-delivery-{self.outbox.system}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rows = self.outbox.take(self.CHUNK, timeout=0.2)
                if rows:
                    self._send(rows)
            except Exception as exc:  # the thread MUST outlive any failure: rows stay durable
                log.exception("delivery loop failed; retrying")
                self._backoff(exc)

    def _send(self, rows: list[OutboxRow]) -> None:
        try:
            if self._acking:
                assert isinstance(self.transport, AcknowledgingTransport)
                for i, row in enumerate(rows):
                    try:
                        self.transport.publish_acked(row.stream, row.record, self._callback(row))
                    except BaseException:
                        self.outbox.requeue(rows[i:])
                        raise
            else:
                for row in rows:
                    self.transport.publish(row.stream, row.record)
                self.transport.flush(None)
                self.outbox.mark_delivered(r.id for r in rows)
        except NeikongError as exc:
            if not self._acking:
                self.outbox.requeue(rows)
            self._backoff(exc)
        else:
            self._failures = 0

    def _callback(self, row: OutboxRow) -> DeliveryCallback:
        outbox = self.outbox

        def on_delivery(error: BaseException | None) -> None:
            if error is None:
                outbox.acknowledge(row.id)
            else:
                log.warning("delivery of outbox row %d failed, will resend: %s", row.id, error)
                outbox.requeue((row,))

        return on_delivery

    def _backoff(self, exc: BaseException) -> None:
        self._failures += 1
        delay = min(5.0, 0.1 * 2 ** min(self._failures, 6))
        log.warning("transport unavailable (%s); retrying in %.1f s", exc, delay)
        self._stop.wait(delay)

    def flush(self, timeout: float | None) -> None:
        up_to = self.outbox.last_id
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._thread is None:  # delivery on flush: send here
            while True:
                rows = self.outbox.take(self.CHUNK)
                if rows:
                    self._send(rows)
                elif self.outbox.wait_delivered(up_to, 0.05):
                    break
                if deadline is not None and time.monotonic() > deadline:
                    break
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not self.outbox.wait_delivered(up_to, left):
            raise Backpressure(
                f"{self.outbox.undelivered} events not yet acknowledged by the transport "
                f"after {timeout} s; they stay in the outbox and are resent, retry later"
            )
