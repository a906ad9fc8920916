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
- Memory is bounded: documents changed since the last commit are written at the next commit;
  a commit happens every `flush_every` log positions (default: every read batch) and as soon
  as more than `max_dirty` documents wait to be written; the cache of documents kept between
  commits holds at most `cache_cap` entries. A rebuild from zero commits rarely (each document
  written about once, `REBUILD_FLUSH_EVERY` / `REBUILD_MAX_DIRTY`), so a crash in it loses at
  most the positions since its last commit, and a restart resumes from there.
- A rebuild creates its tables without their secondary indexes and builds them once at its
  end (`ReadModel.create_indexes`); a runner opened on a model whose rebuild crashed creates
  them again (`ReadModel.ensure`). Indexes change no stored byte, only query speed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, Protocol

import orjson

from ledger.errors import NeikongError
from ledger.gc_pause import gc_paused
from ledger.log_reader import LogReader
from projections.base import Doc, LoggedEvent, Projection, decode_record, encode_doc, record_type
from projections.read_model import BatchWrite, ReadModel, TrackingConflict, UnknownProjection

__all__ = [
    "REBUILD_FLUSH_EVERY",
    "REBUILD_MAX_DIRTY",
    "LogSource",
    "ProjectionBehind",
    "ProjectionRunner",
    "read_positions",
]

_MAX_CONFLICTS = 1000

# A rebuild commits every this many log positions, or when this many documents wait to be
# written (documents in memory; the cache of `cache_cap` documents is of the same order).
REBUILD_FLUSH_EVERY = 250_000
REBUILD_MAX_DIRTY = 50_000


class LogSource(Protocol):
    """What the runner reads: the events table by position (`ledger.log_reader.LogReader`)."""

    def by_position(self, lo: int, hi: int) -> Iterator[tuple[int, str, int, bytes]]: ...

    def stream(self, stream: str) -> Iterator[tuple[int, str, int, bytes]]: ...

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
        # during a rebuild: projections whose tables this runner emptied -> the keys it has
        # committed since (any other key is known to be absent: no query to load it)
        self._fresh: dict[str, set[str]] = {}
        self.conflicts = 0

    # -- catching up -----------------------------------------------------------------------

    def catch_up(
        self,
        *,
        batch: int = 5000,
        stop_at: int | None = None,
        progress: Callable[[int], None] | None = None,
        flush_every: int | None = None,
        max_dirty: int | None = None,
    ) -> int:
        """Apply every event after the tracked positions, up to `stop_at` (default: the log's
        size when called). Returns the number of events read and applied.

        Events are read `batch` positions at a time; changes are committed every
        `flush_every` positions (default: `batch`), when more than `max_dirty` documents
        (default: `cache_cap`) wait to be written, and at the end."""
        if batch < 1:
            raise NeikongError("batch must be at least 1")
        flush = batch if flush_every is None else max(1, flush_every)
        dirty_cap = self.cache_cap if max_dirty is None else max(1, max_dirty)
        applied = 0
        while True:
            try:
                with gc_paused():
                    return applied + self._catch_up(batch, stop_at, progress, flush, dirty_cap)
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
        flush: int,
        dirty_cap: int,
    ) -> int:
        target = self.log.max_position()
        if stop_at is not None:
            target = min(target, stop_at)
        tracked = self._tracked()  # as committed
        if not tracked:
            return 0
        folded = dict(tracked)  # as folded in memory (ahead of `tracked` until a commit)
        dirty: dict[str, dict[str, Doc]] = {n: {} for n in self.projections}
        refs: list[tuple[str, str, int]] = []
        lo = min(tracked.values()) + 1
        since = lo  # the first position not committed yet
        applied = 0
        while lo <= target:
            hi = min(lo + batch, target + 1)
            wanted = self._wanted_types(folded, hi - 1)
            if wanted is None:
                events = [decode_record(p, rec) for p, _, rec in self._records(lo, hi)]
            else:
                events = self._decode_wanted(lo, hi, wanted, folded)
            self._apply(events, folded, hi - 1, dirty, refs)
            waiting = sum(len(d) for d in dirty.values())
            if hi > target or hi - since >= flush or waiting >= dirty_cap:
                self._commit(tracked, folded, dirty, refs)
                since = hi
            applied += hi - lo
            if progress is not None:
                progress(hi - lo)
            lo = hi
        return applied

    def _decode_wanted(
        self, lo: int, hi: int, wanted: tuple[str, ...], folded: dict[str, int]
    ) -> list[LoggedEvent]:
        """The events of positions lo <= p < hi that some projection still behind may route:
        a record is parsed only if its type is `wanted` and a projection admitting the type
        does not decline it by `skips_record(type, stream id)` (a shard, for one)."""
        end = hi - 1
        active = [p for n, p in self.projections.items() if folded[n] < end]
        rules: dict[str, list[Any] | None] = {}  # type -> skip tests (None: always parse)
        events = []
        for p, sid, rec in self._records(lo, hi):
            kind = record_type(rec)
            if not kind.startswith(wanted):
                continue
            if kind not in rules:
                found = [getattr(q, "skips_record", None) for q in active if _admits(q, kind)]
                rules[kind] = None if not found or None in found else found
            tests = rules[kind]
            if tests is not None and all(skips(kind, sid) for skips in tests):
                continue
            events.append(decode_record(p, rec))
        return events

    def _records(self, lo: int, hi: int) -> Iterator[tuple[int, str, bytes]]:
        """(position, stream id hex, record) of positions lo <= p < hi, ascending (one query,
        fewer conversions when the log is a `LogReader`)."""
        log = self.log
        if not isinstance(log, LogReader):
            for p, sid, _, record in log.by_position(lo, hi):
                yield p, sid, record
            return
        mark = "?" if log.sqlite else "%s"
        cursor = log.conn.cursor()
        cursor.execute(
            f"SELECT {log.pos}, originator_id, state FROM {log.table}"  # noqa: S608 - constants
            f" WHERE {log.pos} >= {mark} AND {log.pos} < {mark} ORDER BY {log.pos}",
            (lo, hi),
        )
        while rows := cursor.fetchmany(5000):
            for p, oid, state in rows:
                yield (
                    p,
                    oid if type(oid) is str else oid.hex,
                    state if type(state) is bytes else bytes(state),
                )

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

    def _apply(
        self,
        events: list[LoggedEvent],
        folded: dict[str, int],
        end: int,
        dirty: dict[str, dict[str, Doc]],
        refs: list[tuple[str, str, int]],
    ) -> None:
        """Fold `events` (positions up to `end`) into the cached documents; note each changed
        document in `dirty` and each (projection, key, position) in `refs`."""
        # Pass 1: route every event, note the keys to load. Pass 2: load them in one query per
        # projection. Pass 3: fold in log order. (Hot loop: locals only, no per-event queries.)
        active = [n for n in self.projections if folded[n] < end]
        plan: list[tuple[LoggedEvent, str, Callable[..., Doc], dict[str, Doc | None], Any]] = []
        missing: dict[str, set[str]] = {n: set() for n in active}
        lanes = [
            (n, folded[n], self.projections[n].route, self.projections[n].fold, self._cache[n])
            for n in active
        ]
        own_stream = {n for n in active if _stream_keyed(self.projections[n])}
        by_type: dict[str, list[Any]] = {}  # the lanes whose `types` admit an event type
        for event in events:
            position = event.position
            chosen = by_type.get(event.type)
            if chosen is None:
                chosen = by_type[event.type] = [
                    lane for lane in lanes if _admits(self.projections[lane[0]], event.type)
                ]
            for name, since, route, fold, cache in chosen:
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
        for name, absent in missing.items():
            fresh = self._fresh.get(name)
            cache = self._cache[name]
            wanted = absent
            if fresh is not None:
                for key in absent - fresh:
                    cache[key] = None
                wanted = absent & fresh
            if wanted:
                stored = self.model.load(name, sorted(wanted))
                for key in wanted:
                    raw = stored.get(key)
                    cache[key] = _loads(raw) if raw is not None else None
        for event, name, fold, cache, keys in plan:
            done = dirty[name]
            skip = event.stream if name in own_stream else None
            for key in keys:
                doc = fold(cache[key], event, key)
                cache[key] = doc
                done[key] = doc
                if key != skip:  # a stream-keyed projection finds these in the stream itself
                    refs.append((name, key, event.position))
        for name in active:
            folded[name] = end

    def _commit(
        self,
        tracked: dict[str, int],
        folded: dict[str, int],
        dirty: dict[str, dict[str, Doc]],
        refs: list[tuple[str, str, int]],
    ) -> None:
        """Write the dirty documents, the refs and the tracking moves in one transaction."""
        write = BatchWrite(refs=refs)
        for name, proj in self.projections.items():
            if folded[name] == tracked[name]:
                continue
            rows = []
            for key, doc in dirty[name].items():
                if "\x00" in key:
                    raise NeikongError(f"projection {name!r} routed a key with NUL: {key!r}")
                rows.append((key, encode_doc(doc), *_index_row(proj, key, doc)))
            write.rows[name] = rows
            write.moves[name] = (tracked[name], folded[name])
        self.model.commit_batch(write)
        tracked.update(folded)
        for name, fresh in self._fresh.items():
            fresh.update(dirty[name])
        for changed in dirty.values():
            changed.clear()
        refs.clear()
        self._trim_cache()

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
        self._fresh.clear()  # another runner may have written: load every key again

    def rebuild(
        self,
        names: Sequence[str] | None = None,
        *,
        batch: int = 5000,
        stop_at: int | None = None,
        progress: Callable[[int], None] | None = None,
        flush_every: int = REBUILD_FLUSH_EVERY,
        max_dirty: int = REBUILD_MAX_DIRTY,
    ) -> int:
        """Drop the named projections (default: all) and recompute them from position 0:
        tables without secondary indexes, a commit every `flush_every` positions or
        `max_dirty` documents, indexes built at the end."""
        chosen = [self._projection(name) for name in names or list(self.projections)]
        self.model.reset_all(chosen, indexes=False)
        for proj in chosen:
            self._cache[proj.name].clear()
            self._fresh[proj.name] = set()
        try:
            applied = self.catch_up(
                batch=batch,
                stop_at=stop_at,
                progress=progress,
                flush_every=flush_every,
                max_dirty=max_dirty,
            )
        finally:
            self._fresh.clear()
        for proj in chosen:
            self.model.create_indexes(proj)
        return applied

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
        """Positions of the events that changed `key`'s document (at most `upto`): the stored
        refs, and for a stream-keyed projection the events of stream `key` routed to `key`."""
        proj = self._projection(name)
        positions = set(self.model.refs(name, key, upto))
        if _stream_keyed(proj):
            positions.update(p for p, _ in self._own_stream(proj, key, upto))
        return sorted(positions)

    def _own_stream(
        self, proj: Projection, key: str, upto: int | None
    ) -> Iterator[tuple[int, LoggedEvent]]:
        """(position, event) of the events of stream `key` (at most `upto`) routed to `key`."""
        for position, _, _, record in self.log.stream(key):
            if upto is not None and position > upto:
                continue
            if not _admits(proj, record_type(record)):
                continue
            event = decode_record(position, record)
            if key in proj.route(event):
                yield position, event

    def keys_touched_after(self, name: str, position: int) -> set[str]:
        """Keys whose documents an event after `position` (up to the tracked position) changed."""
        proj = self._projection(name)
        touched = self.model.keys_touched_after(name, position)
        if not _stream_keyed(proj):
            return touched
        tracked = self.model.position(name)
        lo = position + 1
        while lo <= tracked:
            hi = min(lo + 20_000, tracked + 1)
            for p, _, _, record in self.log.by_position(lo, hi):
                if _admits(proj, record_type(record)):
                    event = decode_record(p, record)
                    if event.stream in proj.route(event):
                        touched.add(event.stream)
            lo = hi
        return touched

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
        events: dict[int, LoggedEvent] = {}
        if _stream_keyed(proj):
            events.update(self._own_stream(proj, key, size))
        stored = [p for p in self.model.refs(name, key, upto=size) if p not in events]
        for position, record in read_positions(self.log, stored):
            events[position] = decode_record(position, record)
        doc: Doc | None = None
        for position in sorted(events):
            doc = proj.fold(doc, events[position], key)
        return doc


def _stream_keyed(proj: Projection) -> bool:
    """Whether the projection keeps no refs for events it routes to their own stream."""
    return bool(getattr(proj, "stream_keyed", False))


def _admits(proj: Projection, event_type: str) -> bool:
    """Whether the projection's `types` hint lets it route `event_type` (no hint: any)."""
    types: tuple[str, ...] | None = getattr(proj, "types", None)
    return types is None or event_type.startswith(types)


def _index_row(proj: Projection, key: str, doc: Doc) -> list[Any]:
    values = proj.index(key, doc)
    return [values.get(column) for column, _ in proj.columns]


def _loads(raw: bytes) -> Doc:
    value = orjson.loads(raw)
    assert isinstance(value, dict)
    return value
