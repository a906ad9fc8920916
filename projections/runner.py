"""The projection runner: tracked catch-up, rebuild, reads, and documents at a past log size.

Guarantees:

- Exactly-once effect: each batch's documents, refs and tracking positions are committed in one
  transaction, guarded by compare-and-set on the tracking rows (`ReadModel.commit_batch`). A
  crash between batches loses nothing and a restart resumes right after the last committed
  position; a crash inside a batch commits nothing of it.
- Determinism: catching up in any batch split, with any number of restarts, MUST leave the same
  bytes as a rebuild from zero (each projection's fold is pure; see `projections.base`).
- Two runners on one model MUST NOT corrupt it: the one whose compare-and-set fails drops its
  cached documents, re-reads the tracking rows and carries on from there.
- `doc_at(name, key, size)` MUST equal the document a rebuild stopped at log size `size` holds
  for `key` (it folds only the events the refs name for that key, positions <= size).
- Memory is bounded: documents changed in a batch are written at its end; the cache of
  documents kept between batches holds at most `cache_cap` entries.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any, Protocol

import orjson

from ledger.errors import NeikongError
from ledger.log_reader import LogReader
from projections.base import Doc, LoggedEvent, Projection, decode_record, encode_doc, record_type
from projections.read_model import BatchWrite, ReadModel, TrackingConflict, UnknownProjection

__all__ = ["LogSource", "ProjectionBehind", "ProjectionRunner", "gc_paused", "read_positions"]

_MAX_CONFLICTS = 1000


class LogSource(Protocol):
    """What the runner reads: the events table by position (`ledger.log_reader.LogReader`)."""

    def by_position(self, lo: int, hi: int) -> Iterator[tuple[int, str, int, bytes]]: ...

    def max_position(self) -> int: ...


class ProjectionBehind(NeikongError, LookupError):
    """The read model has not caught up to the log size asked for."""


def read_positions(log: LogSource, positions: Sequence[int]) -> Iterator[tuple[int, bytes]]:
    """(position, record) of each position, ascending: one query per 500 positions."""
    ordered = sorted(set(positions))
    if isinstance(log, LogReader):
        for i in range(0, len(ordered), 500):
            chunk = ordered[i : i + 500]
            marks = ", ".join(("?" if log.sqlite else "%s") for _ in chunk)
            cursor = log.conn.cursor()
            cursor.execute(
                f"SELECT {log.pos}, state FROM {log.table}"  # noqa: S608 - constants
                f" WHERE {log.pos} IN ({marks}) ORDER BY {log.pos}",
                chunk,
            )
            for p, state in cursor.fetchall():
                yield int(p), bytes(state)
        return
    for p in ordered:  # any other LogSource: one range read per position
        for row in log.by_position(p, p + 1):
            yield row[0], row[3]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while folding.

    A catch-up allocates millions of small dicts and lists (decoded events, documents) and keeps
    up to `cache_cap` documents alive; the collector's generation scans over that heap took more
    than half of the case-history fold on a 1M-event log. Documents and events are trees (no
    reference cycles), so reference counting frees them; the collector resumes afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class ProjectionRunner:
    """Keeps a set of projections in a read model caught up with the log."""

    def __init__(
        self,
        log: LogSource,
        model: ReadModel,
        projections: Iterable[Projection],
        *,
        cache_cap: int = 100_000,
    ) -> None:
        self.log = log
        self.model = model
        self.projections: dict[str, Projection] = {}
        for p in projections:
            if p.name in self.projections:
                raise NeikongError(f"two projections are named {p.name!r}")
            self.projections[p.name] = p
        self.cache_cap = cache_cap
        self.reset_on_open = model.ensure(list(self.projections.values()))
        self._cache: dict[str, dict[str, Doc | None]] = {n: {} for n in self.projections}
        self.conflicts = 0

    # -- catching up -----------------------------------------------------------------------

    def catch_up(
        self,
        *,
        batch: int = 5000,
        stop_at: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Apply every event after the tracked positions, up to `stop_at` (default: the log's
        size when called). Returns the number of events read and applied."""
        if batch < 1:
            raise NeikongError("batch must be at least 1")
        applied = 0
        while True:
            try:
                with gc_paused():
                    return applied + self._catch_up(batch, stop_at, progress, applied)
            except TrackingConflict:
                self.conflicts += 1
                self._drop_cache()
                if self.conflicts > _MAX_CONFLICTS:
                    raise
            except BaseException:
                self._drop_cache()  # folds may have mutated cached documents
                raise

    def _tracked(self) -> dict[str, int]:
        tracking = self.model.tracking()
        found: dict[str, int] = {}
        for name, p in self.projections.items():
            version, position = tracking.get(name, (p.version, 0))
            if version != p.version:  # another runner with other code reset it
                raise NeikongError(
                    f"projection {name!r} is stored at version {version}, this code has "
                    f"{p.version}: run one version of neikong per read model"
                )
            found[name] = position
        return found

    def _catch_up(
        self,
        batch: int,
        stop_at: int | None,
        progress: Callable[[int], None] | None,
        done: int,
    ) -> int:
        target = self.log.max_position()
        if stop_at is not None:
            target = min(target, stop_at)
        tracked = self._tracked()
        if not tracked:
            return 0
        lo = min(tracked.values()) + 1
        applied = 0
        while lo <= target:
            hi = min(lo + batch, target + 1)
            wanted = self._wanted_types(tracked, hi - 1)
            if wanted is None:
                events = [decode_record(p, rec) for p, _, _, rec in self.log.by_position(lo, hi)]
            else:
                events = [
                    decode_record(p, rec)
                    for p, _, _, rec in self.log.by_position(lo, hi)
                    if record_type(rec).startswith(wanted)
                ]
            write = self._apply(events, tracked, hi - 1)
            self.model.commit_batch(write)
            for name, (_, new) in write.moves.items():
                tracked[name] = new
            self._trim_cache()
            applied += hi - lo
            if progress is not None:
                progress(hi - lo)
            lo = hi
        return applied

    def _wanted_types(self, tracked: dict[str, int], end: int) -> tuple[str, ...] | None:
        """Type names and `family.` prefixes the projections still behind `end` accept; None
        when one of them takes every type (declares no `types`)."""
        wanted: list[str] = []
        for name, proj in self.projections.items():
            if tracked[name] >= end:
                continue
            types: tuple[str, ...] | None = getattr(proj, "types", None)
            if types is None:
                return None
            wanted.extend(types)
        return tuple(sorted(set(wanted)))

    def _apply(self, events: list[LoggedEvent], tracked: dict[str, int], end: int) -> BatchWrite:
        # Pass 1: route every event, note the keys to load. Pass 2: load them in one query per
        # projection. Pass 3: fold in log order. (Hot loop: locals only, no per-event queries.)
        active = [n for n in self.projections if tracked[n] < end]
        plan: list[tuple[LoggedEvent, str, Callable[..., Doc], dict[str, Doc | None], Any]] = []
        missing: dict[str, set[str]] = {n: set() for n in active}
        changed: dict[str, dict[str, Doc]] = {n: {} for n in active}
        lanes = [
            (n, tracked[n], self.projections[n].route, self.projections[n].fold, self._cache[n])
            for n in active
        ]
        for event in events:
            position = event.position
            for name, since, route, fold, cache in lanes:
                if position <= since:
                    continue
                keys = route(event)
                if not keys:
                    continue
                if not isinstance(keys, tuple | list) or len(keys) > 1:
                    keys = list(dict.fromkeys(keys))
                plan.append((event, name, fold, cache, keys))
                for key in keys:
                    if key not in cache:
                        missing[name].add(key)
        for name, wanted in missing.items():
            if wanted:
                stored = self.model.load(name, sorted(wanted))
                cache = self._cache[name]
                for key in wanted:
                    raw = stored.get(key)
                    cache[key] = _loads(raw) if raw is not None else None
        write = BatchWrite()
        refs = write.refs
        for event, name, fold, cache, keys in plan:
            done = changed[name]
            for key in keys:
                doc = fold(cache[key], event, key)
                cache[key] = doc
                done[key] = doc
                refs.append((name, key, event.position))
        for name in active:
            proj = self.projections[name]
            rows = []
            for key, doc in changed[name].items():
                if "\x00" in key:
                    raise NeikongError(f"projection {name!r} routed a key with NUL: {key!r}")
                rows.append((key, encode_doc(doc), *_index_row(proj, key, doc)))
            write.rows[name] = rows
            write.moves[name] = (tracked[name], end)
        return write

    def _trim_cache(self) -> None:
        total = sum(len(c) for c in self._cache.values())
        if total <= self.cache_cap:
            return
        for cache in self._cache.values():  # drop the oldest entries first (insertion order)
            excess = len(cache) - self.cache_cap // (2 * len(self._cache))
            if excess > 0:
                for key in list(islice(cache, excess)):
                    del cache[key]

    def _drop_cache(self) -> None:
        for cache in self._cache.values():
            cache.clear()

    def rebuild(
        self,
        names: Sequence[str] | None = None,
        *,
        batch: int = 5000,
        stop_at: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Drop the named projections (default: all) and recompute them from position 0."""
        for name in names or list(self.projections):
            self.model.reset(self._projection(name))
            self._cache[name].clear()
        return self.catch_up(batch=batch, stop_at=stop_at, progress=progress)

    # -- reading ---------------------------------------------------------------------------

    def _projection(self, name: str) -> Projection:
        try:
            return self.projections[name]
        except KeyError:
            raise UnknownProjection(
                f"no projection {name!r} (known: {', '.join(sorted(self.projections))})"
            ) from None

    def doc(self, name: str, key: str) -> Doc | None:
        self._projection(name)
        raw = self.model.doc(name, key)
        return None if raw is None else _loads(raw)

    def query(
        self,
        name: str,
        where: dict[str, str | int | None] | None = None,
        order_by: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[tuple[str, Doc]]:
        """(key, document) pairs matching every `where` column = value, ordered, paged."""
        self._projection(name)
        rows = self.model.query(name, where, order_by, limit, offset)
        return [(key, _loads(raw)) for key, raw in rows]

    def count(self, name: str, where: dict[str, str | int | None] | None = None) -> int:
        self._projection(name)
        return self.model.count(name, where)

    def refs(self, name: str, key: str, upto: int | None = None) -> list[int]:
        """Positions of the events that changed `key`'s document (at most `upto`)."""
        self._projection(name)
        return self.model.refs(name, key, upto)

    def doc_at(self, name: str, key: str, size: int) -> Doc | None:
        """The document for `key` as it stood at log size `size` (None: did not exist yet).

        Raises `ProjectionBehind` if the model has not caught up to `size`.
        """
        proj = self._projection(name)
        tracked = self.model.position(name)
        if size > tracked:
            raise ProjectionBehind(
                f"projection {name!r} is caught up to {tracked}, not {size}: run catch-up first"
            )
        doc: Doc | None = None
        positions = self.model.refs(name, key, upto=size)
        for position, record in read_positions(self.log, positions):
            doc = proj.fold(doc, decode_record(position, record), key)
        return doc


def _index_row(proj: Projection, key: str, doc: Doc) -> list[Any]:
    values = proj.index(key, doc)
    return [values.get(column) for column, _ in proj.columns]


def _loads(raw: bytes) -> Doc:
    value = orjson.loads(raw)
    assert isinstance(value, dict)
    return value
