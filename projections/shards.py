"""Shards of one projection: the same fold over a disjoint part of its keys, for a parallel
rebuild whose heaviest projection would otherwise leave a core idle.

`Shard(proj, i, n)` is an ordinary projection named `<name>_s<i>` (its own table, tracking row
and refs) that routes an event to the keys of `proj.route(event)` whose stable hash (CRC-32 of
the hex id of the stream named like the key, `ledger.store.stream_id_hex`) modulo `n` is `i`.
Hashing the stream id lets a shard decline, unparsed, a record of one of the parent's
`own_stream_types` (routed to its own stream only) whose stream belongs to another shard.

A document depends only on the events routed to its key, so each shard's documents are byte
for byte the projection's documents of those keys; `ReadModel.merge_parts` then moves the
shards' rows and refs into the projection in one transaction. Until that commit the
projection itself stays empty at position 0, so a crash leaves a correct (empty) model and at
worst stray shard tables, dropped by the next `drop_shards`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any, cast

from ledger.store import stream_id_hex
from projections.base import Doc, LoggedEvent, Projection

__all__ = ["Shard", "shard_heavy", "shard_names"]


def shard_names(name: str, count: int) -> list[str]:
    return [f"{name}_s{i}" for i in range(count)]


class Shard:
    """Keys `k` of `proj` with crc32(k) % count == index."""

    def __init__(self, proj: Projection, index: int, count: int) -> None:
        self.proj = proj
        self.index_of = index
        self.count = count
        self.name = f"{proj.name}_s{index}"
        self.parent = proj.name
        self.version = proj.version
        self.columns = tuple(proj.columns)
        self.cost = max(1, int(getattr(proj, "cost", 1)) // count)
        self.stream_keyed = bool(getattr(proj, "stream_keyed", False))
        self.own_stream_types: tuple[str, ...] = tuple(getattr(proj, "own_stream_types", ()))
        types = getattr(proj, "types", None)
        if types is not None:
            self.types = tuple(types)

    def mine(self, key: str) -> bool:
        # the stream id is cached (bounded) in ledger.store: keys recur, ~5 events per matter
        return zlib.crc32(stream_id_hex(key).encode()) % self.count == self.index_of

    def skips_record(self, event_type: str, stream_id: str) -> bool:
        """An event of one of the parent's `own_stream_types` is routed to its own stream
        only: of another shard when that stream's id hashes elsewhere (no need to parse)."""
        return (
            event_type.startswith(self.own_stream_types)
            and zlib.crc32(stream_id.encode()) % self.count != self.index_of
        )

    def route(self, event: LoggedEvent) -> Iterable[str]:
        return [k for k in self.proj.route(event) if self.mine(k)]

    def fold(self, doc: Doc | None, event: LoggedEvent, key: str) -> Doc:
        return self.proj.fold(doc, event, key)

    def index(self, key: str, doc: Doc) -> dict[str, str | int | None]:
        return self.proj.index(key, doc)


def shard_heavy(
    projections: Sequence[Projection], workers: int
) -> tuple[list[Projection], dict[str, list[str]]]:
    """Replace each projection whose `cost` exceeds a fair share (total cost / `workers`) by
    `workers` shards. Returns the projections to rebuild and parent name -> shard names."""
    total = sum(int(getattr(p, "cost", 1)) for p in projections)
    out: list[Projection] = []
    parts: dict[str, list[str]] = {}
    for p in projections:
        if workers > 1 and int(getattr(p, "cost", 1)) * workers > total:
            shards = [Shard(p, i, workers) for i in range(workers)]
            out.extend(cast(Any, s) for s in shards)
            parts[p.name] = [s.name for s in shards]
        else:
            out.append(p)
    return out, parts
