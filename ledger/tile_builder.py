"""The right edge of a tiled tree, held in memory: what a sealer (or a verifier) appends to.

`TileBuilder` turns a stream of records (or leaf hashes) into the C2SP tlog-tiles that
`ledger.tiles` lays out and `TileStore` writes; it does no I/O itself except `TileBuilder.resume`,
which reads the partial tiles of the size it resumes at.

Guarantees:

- Memory is O(256 · log₂₅₆ n): per level, the hashes of the tile being filled (< 256), plus the
  records of the entry bundle being filled.
- Every full tile and full bundle is handed out by `take_full` exactly once, in the order it
  filled; `partial` describes exactly the current size. Their bytes are what `ledger.tiles`
  defines for that tile or bundle at that path.
- `resume` rebuilds the edge from O(log n) tile reads and MUST raise `TileError` (never guess)
  if a record of the partial bundle does not hash to its level-0 leaf.
- A builder that writes entry bundles refuses a record longer than
  `ledger.tiles.MAX_ENTRY_SIZE` with `TileError` before the record changes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.merkle import HASH_SIZE, CompactRange, leaf_hash
from ledger.tiles import (
    MAX_ENTRY_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileError,
    TileStore,
    encode_bundle,
    entries_path,
    partial_tiles,
    perfect_root,
    split_hashes,
    tile_path,
)

__all__ = ["TileBuilder", "TileData"]

_sha256 = hashlib.sha256


@dataclass(frozen=True, slots=True)
class TileData:
    """One tile or bundle to write: `level` is None for an entry bundle."""

    path: str
    level: int | None
    index: int
    width: int
    data: bytes


class TileBuilder:
    """The right edge of a tiled tree: what a sealer (or a verifier) holds in memory.

    Per level, the hashes of the tile being filled (< 256), and the records of the entry
    bundle being filled: O(256 · log₂₅₆ n) memory. `append` adds a record; every tile or bundle
    that becomes full is queued and handed out (once) by `take_full`. `partial` gives the
    partial tiles and bundle of the current size, and `frontier` the `CompactRange`, so the
    root of the current size never needs a read.
    """

    def __init__(
        self,
        size: int = 0,
        edge: Sequence[Sequence[bytes]] = (),
        bundle: Sequence[bytes] = (),
        *,
        entries: bool = True,
    ) -> None:
        self._edge = [list(level) for level in edge]
        self._bundle = list(bundle)
        self._entries = entries
        self._size = size
        self._full: list[TileData] = []
        widths = {level: width for level, _, width in partial_tiles(size)}
        levels = max(len(self._edge), max(widths, default=-1) + 1)
        for level in range(levels):
            if len(self._level(level)) != widths.get(level, 0):
                raise ValueError(f"edge level {level} does not match the tree size {size}")
        if entries and len(self._bundle) != size % TILE_WIDTH:
            raise ValueError("partial bundle does not match the tree size")

    @classmethod
    def resume(cls, store: TileStore, size: int, *, entries: bool = True) -> TileBuilder:
        """Rebuild the edge at `size` from its partial tiles (O(log n) reads, no rehashing).

        Each record of the partial bundle MUST hash to its level-0 hash (else `TileError`).
        """
        edge: list[list[bytes]] = []
        for level, index, width in partial_tiles(size):
            while len(edge) < level:
                edge.append([])
            edge.append(split_hashes(store.read_tile(level, index, width)))
        bundle: list[bytes] = []
        if entries and size % TILE_WIDTH:
            bundle = store.read_entries(size >> TILE_HEIGHT, size % TILE_WIDTH)
            for i, record in enumerate(bundle):
                if leaf_hash(record) != edge[0][i]:
                    raise TileError(
                        f"entry {(size >> TILE_HEIGHT) * TILE_WIDTH + i} does not hash to "
                        "its leaf in the partial level-0 tile"
                    )
        return cls(size, edge, bundle, entries=entries)

    @property
    def size(self) -> int:
        return self._size

    def _level(self, level: int) -> list[bytes]:
        while len(self._edge) <= level:
            self._edge.append([])
        return self._edge[level]

    def append(self, record: bytes) -> bytes:
        """Add the next record; return its leaf hash."""
        if self._entries:
            if len(record) > MAX_ENTRY_SIZE:
                encode_bundle([record])  # raises the explanatory TileError
            self._bundle.append(record)
        leaf = _sha256(b"\x00" + record).digest()  # merkle.leaf_hash, inlined: the hot path
        edge0 = self._edge[0] if self._edge else self._level(0)
        edge0.append(leaf)
        self._size += 1
        if len(edge0) == TILE_WIDTH:
            self._complete()
        return leaf

    def append_leaf_hash(self, leaf: bytes) -> None:
        """Add the next leaf hash (for a builder made with `entries=False`)."""
        if self._entries:
            raise ValueError("this builder writes entry bundles: append records instead")
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"leaf hash has {len(leaf)} bytes, want {HASH_SIZE}")
        edge0 = self._edge[0] if self._edge else self._level(0)
        edge0.append(leaf)
        self._size += 1
        if len(edge0) == TILE_WIDTH:
            self._complete()

    def _complete(self) -> None:
        """Level-0 tile just filled: queue it (and its bundle), carry hashes upwards."""
        tile = (self._size - 1) >> TILE_HEIGHT
        if self._entries:
            data = encode_bundle(self._bundle)
            self._full.append(TileData(entries_path(tile), None, tile, TILE_WIDTH, data))
            self._bundle = []
        level = 0
        while True:
            hashes = self._edge[level]
            data = b"".join(hashes)
            self._full.append(TileData(tile_path(level, tile), level, tile, TILE_WIDTH, data))
            self._edge[level] = []
            upper = self._level(level + 1)
            upper.append(perfect_root(hashes))
            if len(upper) < TILE_WIDTH:
                return
            level += 1
            tile >>= TILE_HEIGHT

    def take_full(self) -> list[TileData]:
        """Full tiles and bundles completed since the last call, in the order they filled."""
        out, self._full = self._full, []
        return out

    def partial(self) -> list[TileData]:
        """The partial tiles (and partial bundle) that describe the current size."""
        out = []
        for level, index, width in partial_tiles(self._size):
            data = b"".join(self._edge[level])
            out.append(TileData(tile_path(level, index, width), level, index, width, data))
            if level == 0 and self._entries:
                out.append(
                    TileData(
                        entries_path(index, width),
                        None,
                        index,
                        width,
                        encode_bundle(self._bundle),
                    )
                )
        return out

    def frontier(self) -> CompactRange:
        """The `CompactRange` of the current size, from the edge (≤ 255 hashes per level)."""
        hashes = []
        for level in range(len(self._edge) - 1, -1, -1):
            row = self._edge[level]
            at = 0
            for bit in range(TILE_HEIGHT - 1, -1, -1):
                if len(row) & (1 << bit):
                    hashes.append(perfect_root(row[at : at + (1 << bit)]))
                    at += 1 << bit
        return CompactRange.from_hashes(self._size, hashes)

    def root(self) -> bytes:
        return self.frontier().root()
