"""Rebuild several projections at once, one group per process, so a rebuild uses every core.

Projections are independent folds of the same log, each with its own tracking row, so groups of
them can be rebuilt by separate runners on one read model without coordination: each worker
process opens its own log reader and read-model connection and rebuilds only its group (the
tracking compare-and-set of `ReadModel.commit_batch` still guards every batch). The result is
the same as a serial rebuild, byte for byte (tests/projections/test_parallel.py).

The heaviest group is rebuilt by the calling process itself, the others by worker processes
forked from it (no interpreter to start, nothing to import again: ~1.4 s saved per worker; the
children never touch the parent's connections, they open their own; `spawn` where there is no
fork).
Groups are balanced by each projection's `cost` hint (default 1; the case history, which folds
most events, declares more). With `shard` (the default), a projection costing more than a fair share
of the workers is split into one shard per worker (`projections.shards`: disjoint keys, own
tables), merged into it in one transaction when every worker is done, then indexed. Progress
is read from the tracking rows while the workers run. An in-memory read model cannot be shared
between processes: it is rebuilt serially.
"""

from __future__ import annotations

import multiprocessing
import pickle
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

from ledger.errors import NeikongError
from ledger.log_reader import LogReader
from ledger.store import StoreConfig
from projections.base import Projection
from projections.read_model import ReadModel
from projections.registry import all_projections
from projections.runner import ProjectionRunner
from projections.shards import shard_heavy

__all__ = ["PARALLEL_MIN_EVENTS", "partition", "rebuild_parallel"]

# Below this log size one process is as fast (the second reads the whole log too, and the shards
# are merged at the end). Measured on a quiet 2-core machine, events/s, one process / two
# processes unsharded / two sharded: 50k events 24,930 / 23,723 / 26,029; 200k 20,843 / 21,324
# / 25,342; 300k 22,819 / - / 30,676; 1M 19,651 / 21,469 / 24,043.
PARALLEL_MIN_EVENTS = 50_000

_SHARD = re.compile(r"(?P<parent>[a-z][a-z0-9_]*)_s[0-9]+")


def _stray_shard(tracked: str, chosen: Sequence[Projection]) -> bool:
    """A tracking row left by a crashed sharded rebuild of one of `chosen`."""
    found = _SHARD.fullmatch(tracked)
    return found is not None and found["parent"] in {p.name for p in chosen}


def partition(projections: Sequence[Projection], workers: int) -> list[list[str]]:
    """Names in at most `workers` groups of roughly equal total `cost` (heaviest first)."""
    groups: list[tuple[int, list[str]]] = [(0, []) for _ in range(max(1, workers))]
    weighted = sorted(projections, key=lambda p: (-int(getattr(p, "cost", 1)), p.name))
    for p in weighted:
        load, names = min(groups, key=lambda g: g[0])
        groups.remove((load, names))
        groups.append((load + int(getattr(p, "cost", 1)), [*names, p.name]))
    return [sorted(names) for _, names in groups if names]


def _picklable(projections: Sequence[Projection]) -> bool:
    try:
        pickle.dumps(list(projections))
    except Exception:  # local classes, lambdas: not importable by a spawned process
        return False
    return True


def _rebuild_group(store_url: str, model_url: str, chosen: list[Projection], batch: int) -> int:
    log = LogReader(StoreConfig(store_url))
    model = ReadModel(model_url)
    try:
        return ProjectionRunner(log, model, chosen).rebuild(batch=batch)
    finally:
        model.close()
        log.close()


def rebuild_parallel(
    store: StoreConfig,
    model_url: str,
    names: Sequence[str],
    *,
    projections: Sequence[Projection] | None = None,
    workers: int = 2,
    batch: int = 20_000,
    progress: Callable[[int], None] | None = None,
    min_events: int = PARALLEL_MIN_EVENTS,
    shard: bool = True,
) -> int:
    """Rebuild the projections `names` (of `projections`, default: the registered ones) from
    position 0 with `workers` processes. Projections that cannot be sent to another process
    (not picklable, e.g. defined inside a function), and logs shorter than `min_events`, are
    rebuilt in this one.

    Returns the log size reached (every rebuilt projection is tracked at it). `progress` gets
    the number of positions the slowest group advanced since the last call.

    `shard` (default) splits a projection costing more than a fair share into one shard per
    worker: without it the case history, ~90% of the work, is one process's alone (figures at
    `PARALLEL_MIN_EVENTS`). Each worker reads and type-scans the whole log either way.
    """
    registered = {p.name: p for p in (all_projections() if projections is None else projections)}
    unknown = sorted(set(names) - set(registered))
    if unknown:
        raise NeikongError(f"no registered projection named {unknown}")
    chosen = [registered[n] for n in names]
    model = ReadModel(model_url)  # creates the tables once, before the workers race to
    log = LogReader(store)
    try:
        runner = ProjectionRunner(log, model, chosen)
        tracked = model.tracking()
        model.drop_shards([t for t in tracked if _stray_shard(t, chosen)])
        model.reset_all(chosen, indexes=False)
        if (
            workers <= 1
            or model_url.endswith(":memory:")
            or not _picklable(chosen)
            or log.max_position() < min_events
        ):
            runner.rebuild(batch=batch, progress=progress)
            return min(model.position(p.name) for p in chosen)
        planned, parts = shard_heavy(chosen, workers) if shard else (list(chosen), {})
        if len(planned) == 1:
            runner.rebuild(batch=batch, progress=progress)
            return min(model.position(p.name) for p in chosen)
        model.reset_all([p for p in planned if p.name not in registered], indexes=False)
        by_name = {p.name: p for p in planned}
        groups = [[by_name[n] for n in group] for group in partition(planned, workers)]
        groups.sort(key=lambda g: -sum(int(getattr(p, "cost", 1)) for p in g))  # heaviest first
        context = multiprocessing.get_context(
            "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        )
        shown = 0

        def report(_: int = 0) -> None:
            nonlocal shown
            if progress is None:
                return
            tracked = model.tracking()
            low = min(tracked.get(n, (0, 0))[1] for n in by_name)
            if low > shown:
                progress(low - shown)
                shown = low

        # The heaviest group runs here while the workers take the others.
        local, *others = groups
        with ProcessPoolExecutor(max(1, len(others)), mp_context=context) as pool:
            futures = [
                pool.submit(_rebuild_group, store.url, model_url, group, batch) for group in others
            ]
            try:
                ProjectionRunner(log, model, local).rebuild(batch=batch, progress=report)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
            while True:
                done, pending = wait(futures, timeout=0.5, return_when=FIRST_EXCEPTION)
                report()
                if not pending or any(f.exception() for f in done):
                    break
                time.sleep(0.05)
            for future in futures:
                future.result()  # re-raise a worker's error here
        for parent, shards in parts.items():
            model.merge_parts(registered[parent], shards)
            model.create_indexes(registered[parent])
        return min(model.position(p.name) for p in chosen)
    finally:
        model.close()
        log.close()
