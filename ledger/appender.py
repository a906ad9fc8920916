"""The appender: applies the append rules in DESIGN.md order and appends atomically.

Rules, in order (the first broken rule names the reason):
size → framing → parse + canonical → schema → key known / not revoked / in scope at the
position → signature → idempotency (same event_id and bytes: no-op; other bytes: reject) →
stream chain (seq == head+1 and prev matches; higher seq parked until the gap fills; same seq
with other bytes is a fork) → per-producer sequence (dense; higher seq parked, reused rejected)
→ append.

Guarantees:
- `submit` MUST NOT raise because of input: every record gets an `Outcome`; rejected ones are
  written to the dead-letter table with their reason code and original bytes.
- A batch (its events, dead letters, parked records and heads) is durable as a whole or not at
  all; `submit` returns only after the commit, so a caller may acknowledge its source then.
- Resending anything already appended is a no-op (`duplicate`), so at-least-once delivery gives
  exactly-once effect.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.envelope import MAX_RECORD_BYTES, Envelope, SignedRecord, b64
from ledger.errors import ConflictError
from ledger.keys import public_key_from_raw, verify_signature
from ledger.precheck import Checked, Rejected, precheck, precheck_many
from ledger.reasons import ReasonCode
from ledger.registry import REGISTRY_STREAM, REGISTRY_TYPES, KeyRegistry
from ledger.registry_fold import load_registry
from ledger.side_tables import ParkedRow, SideWrites
from ledger.store import LedgerStore, StreamInfo

__all__ = ["AppendConfig", "Appender", "Outcome"]

log = logging.getLogger("neikong.appender")

Status = Literal["appended", "duplicate", "parked", "rejected"]


@dataclass(frozen=True)
class AppendConfig:
    max_record_bytes: int = MAX_RECORD_BYTES
    park_limit: int = 100_000
    gap_timeout_s: float = 300.0
    workers: int = 0  # processes for stage one; 0 = in this process
    source: str = "in-process"
    max_conflict_retries: int = 5


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    position: int | None = None
    reason: ReasonCode | None = None
    detail: str = ""
    event_id: str | None = None
    stream: str | None = None


@dataclass
class _Head:
    length: int
    digest: bytes
    closed: bool


@dataclass
class _Batch:
    """Tentative state of one batch, discarded if the commit fails."""

    base: int
    side: SideWrites
    events: list[tuple[str, int, bytes]] = field(default_factory=list)
    heads: dict[str, _Head] = field(default_factory=dict)
    producers: dict[str, int] = field(default_factory=dict)
    ids: dict[str, bytes] = field(default_factory=dict)  # event_id -> digest, this batch
    digests: dict[tuple[str, int], bytes] = field(default_factory=dict)  # appended this batch
    stored_ids: dict[str, tuple[int, bytes]] = field(default_factory=dict)

    @property
    def next_position(self) -> int:
        return self.base + len(self.events) + 1


class _Skipped(Exception):
    """A batch after a failed one; it was not written."""


@dataclass
class _Pending:
    checked: list[Checked | Rejected]
    batch: _Batch
    outcomes: list[Outcome]
    future: Future[list[int]]
    snapshot: tuple[tuple[dict[bytes, Any], int, bytes | None], dict[bytes, ParkedRow]]


class _Writer:
    """One thread that commits decided batches in order; after a failure it writes nothing
    until `reset`, so no later batch can commit on top of a missing one."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="neikong-writer")
        self._failed = False

    def submit(self, batch: _Batch) -> Future[list[int]]:
        return self._executor.submit(self._write, batch)

    def _write(self, batch: _Batch) -> list[int]:
        if self._failed:
            raise _Skipped("an earlier batch failed")
        try:
            return self.store.append(batch.events, batch.side)
        except BaseException:
            self._failed = True
            raise

    def reset(self) -> None:
        self._failed = False

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class Appender:
    """Single logical writer of a ledger (concurrent writers are detected and retried)."""

    def __init__(
        self, store: LedgerStore, registry: KeyRegistry, config: AppendConfig | None = None
    ) -> None:
        self.store = store
        self.registry = registry
        self.config = config or AppendConfig()
        self._pool: ProcessPoolExecutor | None = None
        self.counts: dict[str, int] = {}
        self._writer = _Writer(store)
        self._pending: deque[_Pending] = deque()
        self._recent_ids: dict[str, bytes] = {}  # decided, not yet known to be committed
        self._recent_digests: dict[tuple[str, int], bytes] = {}
        self._reload()

    # -- lifecycle -------------------------------------------------------------------------

    def _reload(self) -> None:
        self._base = self.store.max_position()
        self._heads: dict[str, _Head] = {}
        self._producers = self.store.producer_heads()
        self._parked: dict[bytes, ParkedRow] = {p.digest: p for p in self.store.parked()}
        self._reindex_parked()
        if self.registry.last_position < self._base:
            load_registry(self.store, self.registry)  # changes appended by another writer

    def _reindex_parked(self) -> None:
        self._parked_by_stream = {(p.stream, p.stream_seq): d for d, p in self._parked.items()}
        self._parked_by_producer = {(p.system, p.producer_seq): d for d, p in self._parked.items()}
        self._parked_ids = {p.event_id: d for d, p in self._parked.items()}

    def close(self) -> None:
        self._writer.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Appender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pool(self) -> ProcessPoolExecutor | None:
        if self.config.workers > 0 and self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.config.workers, mp_context=multiprocessing.get_context("forkserver")
            )
        return self._pool

    # -- public API ------------------------------------------------------------------------

    def submit(self, records: Sequence[bytes]) -> list[Outcome]:
        """Check and append one batch; durable when this returns."""
        return next(self.submit_many([records]))

    def submit_many(self, batches: Iterable[Sequence[bytes]]) -> Iterator[list[Outcome]]:
        """Pipelined append of many batches; yields each batch's outcomes once it is durable.

        Three stages overlap: stage one of later batches runs in worker processes, stage two of
        batch N+1 runs here while a writer thread commits batch N (SQLite and psycopg release
        the GIL while they write and fsync). Batch N+1 is decided on the tentative state left
        by batch N; if N's commit fails, everything after it is discarded and decided again.
        """
        prechecks: deque[list[Future[list[Checked | Rejected]]] | list[Checked | Rejected]] = (
            deque()
        )
        iterator = iter(batches)
        exhausted = False
        try:
            while True:
                while not exhausted and len(prechecks) < 3:
                    records = next(iterator, None)
                    if records is None:
                        exhausted = True
                        break
                    prechecks.append(self._start_precheck(records))
                if not prechecks and not self._pending:
                    return
                if prechecks and len(self._pending) < 2:
                    self._decide_and_write(self._collect(prechecks.popleft()))
                    continue
                yield self._finish_oldest()
        finally:
            # The caller stopped early (or failed): settle what is in flight. Committed
            # batches stay committed; their outcomes are simply not reported, and a resend
            # of those records is a no-op.
            while self._pending:
                try:
                    self._finish_oldest()
                except BaseException:
                    break

    def _collect(
        self, started: list[Future[list[Checked | Rejected]]] | list[Checked | Rejected]
    ) -> list[Checked | Rejected]:
        checked: list[Checked | Rejected] = []
        for item in started:
            if isinstance(item, Future):
                checked.extend(item.result())
            else:
                checked.append(item)
        return checked

    def _decide_and_write(self, checked: list[Checked | Rejected]) -> None:
        snapshot = (self.registry.snapshot(), dict(self._parked))
        batch = _Batch(base=self._base, side=SideWrites(expected_max_position=self._base))
        self._prefetch(checked, batch)
        outcomes = [self._decide(item, batch) for item in checked]
        # tentative state: the next batch is decided as if this one had committed
        self._base += len(batch.events)
        self._heads.update(batch.heads)
        self._producers.update(batch.producers)
        self._recent_ids.update(batch.ids)
        self._recent_digests.update(batch.digests)
        self._reindex_parked()
        self._pending.append(
            _Pending(checked, batch, outcomes, self._writer.submit(batch), snapshot)
        )

    def _finish_oldest(self) -> list[Outcome]:
        """Wait for the oldest pending commit; on a conflict, re-decide everything pending."""
        for attempt in range(self.config.max_conflict_retries + 1):
            oldest = self._pending[0]
            try:
                oldest.future.result()
            except (ConflictError, _Skipped) as exc:
                log.warning("conflict on append (attempt %d): %s; reloading", attempt + 1, exc)
                redo = self._rollback()
                for checked in redo:
                    self._decide_and_write(checked)
                continue
            except BaseException:
                self._rollback()
                raise
            self._pending.popleft()
            for key in oldest.batch.ids:
                self._recent_ids.pop(key, None)
            for pair in oldest.batch.digests:
                self._recent_digests.pop(pair, None)
            for o in oldest.outcomes:
                self.counts[o.status] = self.counts.get(o.status, 0) + 1
                if o.reason is not None:
                    key = f"rejected:{o.reason.value}"
                    self.counts[key] = self.counts.get(key, 0) + 1
            return oldest.outcomes
        raise ConflictError("too many concurrent-writer conflicts; is another ingest running?")

    def _rollback(self) -> list[list[Checked | Rejected]]:
        """Drop every pending batch (waiting for the writer), restore the state before them."""
        for pending in self._pending:
            with contextlib.suppress(BaseException):
                pending.future.result()
        registry_snapshot, parked = self._pending[0].snapshot
        redo = [p.checked for p in self._pending]
        self._pending.clear()
        self._recent_ids.clear()
        self._recent_digests.clear()
        self.registry.restore(registry_snapshot)
        self._parked = parked
        self._writer.reset()
        self._reload()
        return redo

    # -- stage one -------------------------------------------------------------------------

    def _start_precheck(
        self, batch: Sequence[bytes]
    ) -> list[Future[list[Checked | Rejected]]] | list[Checked | Rejected]:
        pool = self.pool
        public = self.registry.public_keys()
        if pool is None or len(batch) < 64:
            return precheck_many(batch, self.config.max_record_bytes, public)
        parts = max(1, self.config.workers * 2)
        size = -(-len(batch) // parts)
        return [
            pool.submit(
                precheck_many, list(batch[i : i + size]), self.config.max_record_bytes, public
            )
            for i in range(0, len(batch), size)
        ]

    # -- stage two -------------------------------------------------------------------------

    def _prefetch(self, checked: Sequence[Checked | Rejected], batch: _Batch) -> None:
        """One query each for the batch's event ids and unknown stream heads."""
        envs = [c.envelope for c in checked if isinstance(c, Checked)]
        batch.stored_ids = self.store.event_ids([e.event_id for e in envs])
        missing = sorted({e.stream for e in envs if e.stream not in self._heads})
        if missing:
            if len(self._heads) + len(missing) > 200_000:
                self._trim_heads()
            infos = self.store.stream_infos(missing)
            for name in missing:
                info = infos.get(name)
                self._heads[name] = (
                    _Head(0, b"", False)
                    if info is None
                    else _Head(info.length, info.head_digest, info.closed)
                )

    def _trim_heads(self) -> None:
        """Bound the head cache; heads of uncommitted batches must stay (the store lags)."""
        keep = {name: head for p in self._pending for name, head in p.batch.heads.items()}
        self._heads.clear()
        self._heads.update(keep)

    def _head(self, stream: str, batch: _Batch) -> _Head:
        head = batch.heads.get(stream) or self._heads.get(stream)
        if head is None:
            info: StreamInfo | None = self.store.stream_info(stream)
            head = (
                _Head(0, b"", False)
                if info is None
                else _Head(info.length, info.head_digest, info.closed)
            )
            if len(self._heads) > 200_000:
                self._trim_heads()
            self._heads[stream] = head
        return head

    def _reject(
        self,
        batch: _Batch,
        record: bytes,
        reason: ReasonCode,
        detail: str,
        envelope: Envelope | None = None,
    ) -> Outcome:
        digest = hashlib.sha256(record).digest()
        batch.side.dead_letters.append(
            (time.time(), reason.value, detail[:500], digest, record, self.config.source)
        )
        if reason is ReasonCode.FORK:
            log.error(
                "RED integrity warning: fork in stream %s: %s",
                envelope.stream if envelope else "?",
                detail,
            )
        return Outcome(
            "rejected",
            reason=reason,
            detail=detail,
            event_id=envelope.event_id if envelope else None,
            stream=envelope.stream if envelope else None,
        )

    def _decide(self, item: Checked | Rejected, batch: _Batch) -> Outcome:
        if isinstance(item, Rejected):
            return self._reject(batch, item.record, item.reason, item.detail)
        outcome = self._rules(item, batch)
        if outcome.status == "appended":
            self._unpark_followers(item.envelope, batch)
        return outcome

    def _rules(self, item: Checked, batch: _Batch, *, from_park: bool = False) -> Outcome:
        env, key_id = item.envelope, item.key_id
        position = batch.next_position
        problem = self.registry.check(key_id, env, position)
        if problem is not None:
            return self._reject(batch, item.record, problem[0], problem[1], env)
        ok = item.signature_ok
        if ok is None or from_park:
            signed = item.signed
            entry = self.registry.lookup(key_id)
            public = entry.public_key if entry is not None else _genesis_public(self.registry, env)
            ok = verify_signature(public, signed.signature, signed.signing_message)
        if not ok:
            return self._reject(
                batch,
                item.record,
                ReasonCode.BAD_SIGNATURE,
                "Ed25519 signature does not verify",
                env,
            )
        digest = item.digest
        # idempotency
        known = batch.ids.get(env.event_id) or self._recent_ids.get(env.event_id)
        if known is None:
            stored = batch.stored_ids.get(env.event_id)
            if stored is None and from_park:
                stored = self.store.event_ids([env.event_id]).get(env.event_id)
            known = stored[1] if stored else None
        if known is not None:
            if known == digest:
                return Outcome("duplicate", event_id=env.event_id, stream=env.stream)
            return self._reject(
                batch,
                item.record,
                ReasonCode.EVENT_ID_CONFLICT,
                "event_id already used with other bytes",
                env,
            )
        parked = self._parked_ids.get(env.event_id)
        if parked is not None and not from_park:
            if parked == hashlib.sha256(item.record).digest():
                return Outcome(
                    "parked", event_id=env.event_id, stream=env.stream, detail="already parked"
                )
            return self._reject(
                batch,
                item.record,
                ReasonCode.EVENT_ID_CONFLICT,
                "event_id already parked with other bytes",
                env,
            )
        # stream chain
        head = self._head(env.stream, batch)
        if env.stream_seq <= head.length:
            other = batch.digests.get((env.stream, env.stream_seq)) or self._recent_digests.get(
                (env.stream, env.stream_seq)
            )
            if other is None:
                other_record = self.store.stream_record(env.stream, env.stream_seq)
                other = SignedRecord.decode(other_record).digest if other_record else None
            if other == digest:
                return Outcome("duplicate", event_id=env.event_id, stream=env.stream)
            return self._reject(
                batch,
                item.record,
                ReasonCode.FORK,
                f"seq {env.stream_seq} of {env.stream} already holds other bytes",
                env,
            )
        if head.closed:
            return self._reject(
                batch,
                item.record,
                ReasonCode.POST_CLOSURE,
                f"{env.stream} was concluded at seq {head.length}",
                env,
            )
        if env.stream_seq > head.length + 1:
            return self._park(item, batch, f"stream gap after seq {head.length}")
        expected_prev = b64(head.digest) if head.length else None
        if env.prev != expected_prev:
            return self._reject(
                batch,
                item.record,
                ReasonCode.CHAIN_BREAK,
                f"prev does not match seq {head.length} of {env.stream}",
                env,
            )
        if env.is_terminal and env.final_seq != env.stream_seq:
            return self._reject(
                batch,
                item.record,
                ReasonCode.BAD_FINAL_SEQ,
                f"final_seq {env.final_seq} is not the event's seq {env.stream_seq}",
                env,
            )
        # producer sequence
        last = batch.producers.get(env.producer_system, self._producers.get(env.producer_system, 0))
        if env.producer_seq <= last:
            return self._reject(
                batch,
                item.record,
                ReasonCode.PRODUCER_SEQ_REUSED,
                f"producer {env.producer_system} seq {env.producer_seq} already used (last {last})",
                env,
            )
        if env.producer_seq > last + 1:
            return self._park(item, batch, f"producer gap after seq {last}")
        # registry events change who may sign what from the next position on
        if env.type in REGISTRY_TYPES:
            if env.stream != REGISTRY_STREAM:
                return self._reject(
                    batch,
                    item.record,
                    ReasonCode.OUT_OF_SCOPE,
                    f"registry events belong in {REGISTRY_STREAM}",
                    env,
                )
            problem_text = self.registry.validate_change(env, position)
            if problem_text is not None:
                return self._reject(
                    batch, item.record, ReasonCode.REGISTRY_INVALID, problem_text, env
                )
            self.registry.apply(env, position)
        # accept
        batch.events.append((env.stream, env.stream_seq, item.record))
        batch.ids[env.event_id] = digest
        batch.side.event_ids.append((env.event_id, digest))
        batch.digests[(env.stream, env.stream_seq)] = digest
        new_head = _Head(env.stream_seq, digest, env.is_terminal)
        batch.heads[env.stream] = new_head
        batch.producers[env.producer_system] = env.producer_seq
        batch.side.producers[env.producer_system] = env.producer_seq
        return Outcome("appended", position=position, event_id=env.event_id, stream=env.stream)

    def _park(self, item: Checked, batch: _Batch, why: str) -> Outcome:
        env = item.envelope
        digest = hashlib.sha256(item.record).digest()
        if digest in self._parked:
            return Outcome("parked", event_id=env.event_id, stream=env.stream, detail=why)
        if len(self._parked) >= self.config.park_limit:
            return self._reject(
                batch,
                item.record,
                ReasonCode.PARK_LIMIT,
                f"{len(self._parked)} records already wait for gaps",
                env,
            )
        row = ParkedRow(
            digest,
            env.stream,
            env.stream_seq,
            env.producer_system,
            env.producer_seq,
            env.event_id,
            item.record,
            time.time(),
        )
        self._parked[digest] = row
        self._parked_by_stream[(row.stream, row.stream_seq)] = digest
        self._parked_by_producer[(row.system, row.producer_seq)] = digest
        self._parked_ids[row.event_id] = digest
        batch.side.parked.append(row)
        return Outcome("parked", event_id=env.event_id, stream=env.stream, detail=why)

    def _unpark_followers(self, appended: Envelope, batch: _Batch) -> None:
        """After an append, retry parked records that were waiting for it."""
        if not self._parked:
            return
        queue = [appended]
        while queue:
            env = queue.pop()
            for key_map, key in (
                (self._parked_by_stream, (env.stream, env.stream_seq + 1)),
                (self._parked_by_producer, (env.producer_system, env.producer_seq + 1)),
            ):
                digest = key_map.get(key)
                row = self._parked.get(digest) if digest else None
                if row is None:
                    continue
                item = precheck(row.record, self.config.max_record_bytes, {})
                if not isinstance(item, Checked):
                    continue
                outcome = self._rules(item, batch, from_park=True)
                if outcome.status == "parked":
                    continue
                self._drop_parked(row, batch)
                if outcome.status == "appended":
                    queue.append(item.envelope)

    def _drop_parked(self, row: ParkedRow, batch: _Batch) -> None:
        self._parked.pop(row.digest, None)
        self._parked_by_stream.pop((row.stream, row.stream_seq), None)
        self._parked_by_producer.pop((row.system, row.producer_seq), None)
        self._parked_ids.pop(row.event_id, None)
        if row in batch.side.parked:
            batch.side.parked.remove(row)
        else:
            batch.side.unparked.append(row.digest)

    # -- gaps ------------------------------------------------------------------------------

    def overdue_gaps(self, now: float | None = None) -> list[dict[str, object]]:
        """Parked records older than the gap timeout: what is missing, and since when."""
        now = time.time() if now is None else now
        out: list[dict[str, object]] = []
        for row in sorted(self._parked.values(), key=lambda r: r.parked_at):
            if now - row.parked_at < self.config.gap_timeout_s:
                continue
            head = self._head(row.stream, _Batch(self._base, SideWrites()))
            waiting_stream = row.stream_seq > head.length + 1
            out.append(
                {
                    "stream": row.stream,
                    "missing_stream_seqs": [head.length + 1, row.stream_seq - 1]
                    if waiting_stream
                    else None,
                    "producer": row.system,
                    "missing_producer_seqs": [
                        self._producers.get(row.system, 0) + 1,
                        row.producer_seq - 1,
                    ]
                    if row.producer_seq > self._producers.get(row.system, 0) + 1
                    else None,
                    "parked_for_s": round(now - row.parked_at, 1),
                    "event_id": row.event_id,
                }
            )
        return out


def _genesis_public(registry: KeyRegistry, env: Envelope) -> Ed25519PublicKey:
    return public_key_from_raw(registry.genesis_public(env))
