"""The appender: checks records in parallel and appends them atomically, batch by batch.

What each record becomes is decided by `ledger.append_rules` (the rules in DESIGN.md order);
this module runs the pipeline around it: stage one in worker processes, decisions here, commits
in a writer thread.

Guarantees:
- `submit` MUST NOT raise because of input: every record gets an `Outcome`; rejected ones are
  written to the dead-letter table with their reason code and original bytes.
- A batch (its events, dead letters, parked records and heads) is durable as a whole or not at
  all; `submit` and `submit_many` report a batch only after its commit, so a caller may
  acknowledge its source then.
- Resending anything already appended is a no-op (`duplicate`), so at-least-once delivery gives
  exactly-once effect.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

from ledger.append_rules import AppendRules, Batch, Outcome, RulesSnapshot, StreamHead
from ledger.envelope import MAX_RECORD_BYTES
from ledger.errors import ConflictError
from ledger.gc_pause import gc_paused
from ledger.precheck import Checked, Rejected, Wire, from_wire, precheck_many, precheck_wire
from ledger.registry import KeyRegistry
from ledger.store import LedgerStore

__all__ = ["AppendConfig", "Appender", "Outcome"]

log = logging.getLogger("neikong.appender")


@dataclass(frozen=True)
class AppendConfig:
    max_record_bytes: int = MAX_RECORD_BYTES
    park_limit: int = 100_000
    gap_timeout_s: float = 300.0
    workers: int = 0  # processes for stage one; 0 = in this process
    source: str = "in-process"
    max_conflict_retries: int = 5


@dataclass(frozen=True)
class _Part:
    """Records being checked in a worker process, and the future of their results."""

    records: list[bytes]
    future: Future[list[Wire]]


class _Skipped(Exception):
    """A batch after a failed one; it was not written."""


@dataclass
class _Pending:
    checked: list[Checked | Rejected]
    batch: Batch
    outcomes: list[Outcome]
    future: Future[list[int]]
    snapshot: RulesSnapshot


class _Writer:
    """One thread that commits decided batches in order; after a failure it writes nothing
    until `reset`, so no later batch can commit on top of a missing one."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="neikong-writer")
        self._failed = False

    def submit(self, batch: Batch) -> Future[list[int]]:
        return self._executor.submit(self._write, batch)

    def _write(self, batch: Batch) -> list[int]:
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
        self.rules = AppendRules(
            store,
            registry,
            max_record_bytes=self.config.max_record_bytes,
            park_limit=self.config.park_limit,
            gap_timeout_s=self.config.gap_timeout_s,
            source=self.config.source,
            pinned_heads=self._pinned_heads,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def _pinned_heads(self) -> dict[str, StreamHead]:
        return {name: head for p in self._pending for name, head in p.batch.heads.items()}

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
        prechecks: deque[list[_Part] | list[Checked | Rejected]] = deque()
        iterator = iter(batches)
        exhausted = False
        try:
            while True:
                # the collector is paused one round at a time (reading the next batches from the
                # source included), never across the yield
                with gc_paused():
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
                    outcomes = self._finish_oldest()
                yield outcomes
        finally:
            # The caller stopped early (or failed): settle what is in flight. Committed
            # batches stay committed; their outcomes are simply not reported, and a resend
            # of those records is a no-op.
            while self._pending:
                try:
                    self._finish_oldest()
                except BaseException:
                    break

    def _collect(self, started: list[_Part] | list[Checked | Rejected]) -> list[Checked | Rejected]:
        checked: list[Checked | Rejected] = []
        for item in started:
            if isinstance(item, _Part):
                checked.extend(from_wire(item.records, item.future.result()))
            else:
                checked.append(item)
        return checked

    def _decide_and_write(self, checked: list[Checked | Rejected]) -> None:
        snapshot = self.rules.snapshot()
        batch, outcomes = self.rules.decide_batch(checked)
        self.rules.apply_tentative(batch)
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
            self.rules.committed(oldest.batch)
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
        snapshot = self._pending[0].snapshot
        redo = [p.checked for p in self._pending]
        self._pending.clear()
        self._writer.reset()
        self.rules.restore(snapshot)
        return redo

    # -- stage one -------------------------------------------------------------------------

    def _start_precheck(self, batch: Sequence[bytes]) -> list[_Part] | list[Checked | Rejected]:
        pool = self.pool
        public = self.registry.public_keys()
        if pool is None or len(batch) < 64:
            return precheck_many(batch, self.config.max_record_bytes, public)
        parts = max(1, self.config.workers * 2)
        size = -(-len(batch) // parts)
        return [
            _Part(
                part,
                pool.submit(precheck_wire, part, self.config.max_record_bytes, public),
            )
            for part in (list(batch[i : i + size]) for i in range(0, len(batch), size))
        ]

    # -- stage two -------------------------------------------------------------------------

    def retry_parked(self) -> int:
        """Append parked records whose gap another writer filled; return how many.

        With several ingest processes on one ledger, the record a parked one waits for may be
        appended by another process; an idle ingester calls this so nothing stays parked.
        """
        while self._pending:
            self._finish_oldest()
        self.rules.recheck_parked()
        self._decide_and_write([])
        batch = self._pending[-1].batch
        self._finish_oldest()
        return batch.released

    # -- gaps ------------------------------------------------------------------------------

    def overdue_gaps(self, now: float | None = None) -> list[dict[str, object]]:
        """Parked records older than the gap timeout: what is missing, and since when."""
        return self.rules.overdue_gaps(now)
