"""The append rules: what each checked record becomes (appended, duplicate, parked, rejected).

Rules, in order (the first broken rule names the reason):
size → framing → parse + canonical → schema (stage one, `ledger.precheck`) → key known / not
revoked / in scope at the position → signature → idempotency (same event_id and bytes: no-op;
other bytes: reject) → stream chain (seq == head+1 and prev matches; a higher seq is parked until
the gap fills; same seq with other bytes is a fork) → per-producer sequence (dense; a higher seq
is parked, a reused one rejected) → append.

`AppendRules` holds the state the rules need (stream heads, producer heads, parked records, the
key registry) and decides whole batches. It never writes: `ledger.appender` commits the batch
and tells it what became durable. Decisions of a later batch may rest on an earlier batch that
is still being written (`apply_tentative`); `snapshot`/`restore` undo them if that write fails.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.envelope import Envelope, SignedRecord, b64
from ledger.keys import public_key_from_raw, verify_signature
from ledger.precheck import Checked, Rejected, precheck
from ledger.reasons import ReasonCode
from ledger.registry import REGISTRY_STREAM, REGISTRY_TYPES, KeyRegistry
from ledger.registry_fold import load_registry
from ledger.side_tables import ParkedRow, SideWrites
from ledger.store import LedgerStore, StreamInfo

__all__ = ["AppendRules", "Batch", "Outcome", "RulesSnapshot", "StreamHead"]

log = logging.getLogger("neikong.appender")

Status = Literal["appended", "duplicate", "parked", "rejected"]


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    position: int | None = None
    reason: ReasonCode | None = None
    detail: str = ""
    event_id: str | None = None
    stream: str | None = None


@dataclass
class StreamHead:
    length: int
    digest: bytes
    closed: bool


@dataclass
class Batch:
    """Tentative state of one batch, discarded if the commit fails."""

    base: int
    side: SideWrites
    events: list[tuple[str, int, bytes]] = field(default_factory=list)
    heads: dict[str, StreamHead] = field(default_factory=dict)
    producers: dict[str, int] = field(default_factory=dict)
    ids: dict[str, bytes] = field(default_factory=dict)  # event_id -> digest, this batch
    digests: dict[tuple[str, int], bytes] = field(default_factory=dict)  # appended this batch
    stored_ids: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    released: int = 0  # parked records appended by this batch after a recheck

    @property
    def next_position(self) -> int:
        return self.base + len(self.events) + 1


RulesSnapshot = tuple[tuple[dict[bytes, Any], int, bytes | None], dict[bytes, ParkedRow]]


class AppendRules:
    """Decides batches against the ledger's state; see the module docstring."""

    def __init__(
        self,
        store: LedgerStore,
        registry: KeyRegistry,
        *,
        max_record_bytes: int,
        park_limit: int,
        gap_timeout_s: float,
        source: str,
        pinned_heads: Callable[[], dict[str, StreamHead]] = dict,
    ) -> None:
        self.store = store
        self.registry = registry
        self.max_record_bytes = max_record_bytes
        self.park_limit = park_limit
        self.gap_timeout_s = gap_timeout_s
        self.source = source
        self._pinned_heads = pinned_heads  # heads of batches not yet known to be committed
        self._recent_ids: dict[str, bytes] = {}  # decided, not yet known to be committed
        self._recent_digests: dict[tuple[str, int], bytes] = {}
        self.reload()

    # -- state -----------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read everything from the store (nothing may be pending)."""
        self._base = self.store.max_position()
        self._heads: dict[str, StreamHead] = {}
        self._producers = self.store.producer_heads()
        self._parked: dict[bytes, ParkedRow] = {p.digest: p for p in self.store.parked()}
        self._reindex_parked()
        # Another writer (or this one before a restart) may have appended what a parked record
        # waits for; the next batch looks at the parked records again.
        self._recheck_parked = bool(self._parked)
        if self.registry.last_position < self._base:
            load_registry(self.store, self.registry)  # changes appended by another writer

    def _reindex_parked(self) -> None:
        self._parked_by_stream = {(p.stream, p.stream_seq): d for d, p in self._parked.items()}
        self._parked_by_producer = {(p.system, p.producer_seq): d for d, p in self._parked.items()}
        self._parked_ids = {p.event_id: d for d, p in self._parked.items()}

    @property
    def base(self) -> int:
        """The position of the last event decided (tentatively) so far."""
        return self._base

    def decide_batch(self, checked: Sequence[Checked | Rejected]) -> tuple[Batch, list[Outcome]]:
        """Decide every record of a batch, in order, on the current (tentative) state.

        After a reload, parked records whose wait is over are decided first (they are not in
        the outcomes: they were reported as parked when they arrived).
        """
        batch = Batch(base=self._base, side=SideWrites(expected_max_position=self._base))
        if self._recheck_parked:
            self._recheck_parked = False
            batch.released = self._release_ready(batch)
        self._prefetch(checked, batch)
        return batch, [self._decide(item, batch) for item in checked]

    def recheck_parked(self) -> None:
        """Re-read the store and look at every parked record again in the next batch."""
        self.reload()
        self._recheck_parked = bool(self._parked)

    def _release_ready(self, batch: Batch) -> int:
        """Decide parked records whose stream and producer predecessors are in the ledger."""
        released = 0
        progress = True
        while progress:
            progress = False
            for row in sorted(self._parked.values(), key=lambda r: (r.system, r.producer_seq)):
                head = self._head(row.stream, batch)
                last = batch.producers.get(row.system, self._producers.get(row.system, 0))
                if row.stream_seq > head.length + 1 or row.producer_seq > last + 1:
                    continue
                status, envelope = self._decide_parked(row, batch)
                progress = progress or status != "parked"
                if envelope is not None:
                    released += 1
                    self._unpark_followers(envelope, batch)
        return released

    def _decide_parked(self, row: ParkedRow, batch: Batch) -> tuple[Status, Envelope | None]:
        """Run the rules again on a parked record (its key is judged at the new position);
        unless it stays parked it leaves the park. Returns its status, and its envelope if it
        was appended."""
        item = precheck(row.record, self.max_record_bytes, {})
        if not isinstance(item, Checked):
            return "parked", None
        outcome = self._rules(item, batch, from_park=True)
        if outcome.status == "parked":
            return "parked", None
        self._drop_parked(row, batch)
        return outcome.status, item.envelope if outcome.status == "appended" else None

    def apply_tentative(self, batch: Batch) -> None:
        """Let the next batch be decided as if `batch` had committed."""
        self._base += len(batch.events)
        self._heads.update(batch.heads)
        self._producers.update(batch.producers)
        self._recent_ids.update(batch.ids)
        self._recent_digests.update(batch.digests)
        self._reindex_parked()

    def committed(self, batch: Batch) -> None:
        """`batch` is durable: the store now answers for it."""
        for key in batch.ids:
            self._recent_ids.pop(key, None)
        for pair in batch.digests:
            self._recent_digests.pop(pair, None)

    def snapshot(self) -> RulesSnapshot:
        return self.registry.snapshot(), dict(self._parked)

    def restore(self, snapshot: RulesSnapshot) -> None:
        """Undo every tentative decision since `snapshot` and re-read the store."""
        registry_snapshot, parked = snapshot
        self._recent_ids.clear()
        self._recent_digests.clear()
        self.registry.restore(registry_snapshot)
        self._parked = parked
        self.reload()

    # -- deciding ----------------------------------------------------------------------------

    def _prefetch(self, checked: Sequence[Checked | Rejected], batch: Batch) -> None:
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
                    StreamHead(0, b"", False)
                    if info is None
                    else StreamHead(info.length, info.head_digest, info.closed)
                )

    def _trim_heads(self) -> None:
        """Bound the head cache; heads of uncommitted batches must stay (the store lags)."""
        keep = self._pinned_heads()
        self._heads.clear()
        self._heads.update(keep)

    def _head(self, stream: str, batch: Batch) -> StreamHead:
        head = batch.heads.get(stream) or self._heads.get(stream)
        if head is None:
            info: StreamInfo | None = self.store.stream_info(stream)
            head = (
                StreamHead(0, b"", False)
                if info is None
                else StreamHead(info.length, info.head_digest, info.closed)
            )
            if len(self._heads) > 200_000:
                self._trim_heads()
            self._heads[stream] = head
        return head

    def _reject(
        self,
        batch: Batch,
        record: bytes,
        reason: ReasonCode,
        detail: str,
        envelope: Envelope | None = None,
    ) -> Outcome:
        digest = hashlib.sha256(record).digest()
        batch.side.dead_letters.append(
            (time.time(), reason.value, detail[:500], digest, record, self.source)
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

    def _decide(self, item: Checked | Rejected, batch: Batch) -> Outcome:
        if isinstance(item, Rejected):
            return self._reject(batch, item.record, item.reason, item.detail)
        outcome = self._rules(item, batch)
        if outcome.status == "appended":
            self._unpark_followers(item.envelope, batch)
        return outcome

    def _rules(self, item: Checked, batch: Batch, *, from_park: bool = False) -> Outcome:
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
        new_head = StreamHead(env.stream_seq, digest, env.is_terminal)
        batch.heads[env.stream] = new_head
        batch.producers[env.producer_system] = env.producer_seq
        batch.side.producers[env.producer_system] = env.producer_seq
        return Outcome("appended", position=position, event_id=env.event_id, stream=env.stream)

    def _park(self, item: Checked, batch: Batch, why: str) -> Outcome:
        env = item.envelope
        digest = hashlib.sha256(item.record).digest()
        if digest in self._parked:
            return Outcome("parked", event_id=env.event_id, stream=env.stream, detail=why)
        if len(self._parked) >= self.park_limit:
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

    def _unpark_followers(self, appended: Envelope, batch: Batch) -> None:
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
                _, envelope = self._decide_parked(row, batch)
                if envelope is not None:
                    queue.append(envelope)

    def _drop_parked(self, row: ParkedRow, batch: Batch) -> None:
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
            if now - row.parked_at < self.gap_timeout_s:
                continue
            head = self._head(row.stream, Batch(self._base, SideWrites()))
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
