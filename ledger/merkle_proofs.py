"""RFC 6962 / RFC 9162 Merkle proof generation over an abstract source of subtree hashes.

Proofs are built from `HashReader.subtree_hash(start, end)`, which is only ever asked for
*perfect, aligned* subtrees: `end - start == 2**h` and `start % 2**h == 0`. Those are exactly
the nodes a C2SP tlog-tiles store keeps (level h, index start >> h), so a tile-backed reader
can serve them directly; the hashes of the ragged right edge of a tree are composed here.
`MemoryHashReader` is the in-memory implementation over a list of leaf hashes.

Guarantees: every proof returned here MUST verify with the matching `ledger.merkle.verify_*`
function against the root of the tree the reader holds, and MUST NOT depend on anything but
(index or indices, sizes, the reader's hashes). Invalid arguments raise `ValueError`; errors
raised by a reader propagate unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from ledger.merkle import (
    HASH_SIZE,
    MAX_TREE_SIZE,
    CompactRange,
    multi_proof_nodes,
    node_hash,
)

__all__ = [
    "HashReader",
    "MemoryHashReader",
    "compact_range_at",
    "consistency_proof",
    "inclusion_proof",
    "multi_inclusion_proof",
    "tree_hash",
    "tree_root",
]


class HashReader(Protocol):
    """A source of Merkle subtree hashes (a tile store, a database, a list in memory)."""

    def subtree_hash(self, start: int, end: int) -> bytes:
        """Return MTH(D[start:end]) for a perfect aligned subtree.

        Callers MUST only ask for `end - start == 2**h` (h >= 0) with `start % 2**h == 0`;
        h = 0 is a leaf hash. Implementations MUST raise (not guess) for a range they do not
        hold.
        """
        ...


class MemoryHashReader:
    """Every perfect subtree hash of a tree held in memory (O(n) hashes, built eagerly)."""

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes]) -> None:
        level = [bytes(h) for h in leaf_hashes]
        for i, h in enumerate(level):
            if len(h) != HASH_SIZE:
                raise ValueError(f"leaf hash {i} has {len(h)} bytes, want {HASH_SIZE}")
        self._levels = [level]
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self._levels.append(level)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0])

    def subtree_hash(self, start: int, end: int) -> bytes:
        """See `HashReader.subtree_hash`; raises `ValueError` for any other range."""
        width = end - start
        if start < 0 or width <= 0 or width & (width - 1) or start % width:
            raise ValueError(f"[{start}, {end}) is not a perfect aligned subtree")
        height = width.bit_length() - 1
        index = start >> height
        if end > self.size:
            raise ValueError(f"[{start}, {end}) lies beyond the tree of size {self.size}")
        return self._levels[height][index]


def _perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """Split [start, end) into maximal perfect aligned subtrees, left to right."""
    parts = []
    while start < end:
        width = start & -start if start else 1 << ((end - start).bit_length() - 1)
        while width > end - start:
            width >>= 1
        parts.append((start, start + width))
        start += width
    return parts


def tree_hash(start: int, end: int, reader: HashReader) -> bytes:
    """Return MTH(D[start:end]) for a node of an RFC 6962 tree, read through `reader`.

    The range MUST be non-empty and aligned: `start` a multiple of the smallest power of two
    >= `end - start` (every node of every tree, including the ragged right edge, is).
    """
    width = end - start
    if start < 0 or width <= 0 or start % (1 << (width - 1).bit_length()):
        raise ValueError(f"[{start}, {end}) is not a node of an RFC 6962 tree")
    parts = [reader.subtree_hash(lo, hi) for lo, hi in _perfect_subtrees(start, end)]
    acc = parts.pop()
    while parts:
        acc = node_hash(parts.pop(), acc)
    return acc


def tree_root(size: int, reader: HashReader) -> bytes:
    """Return the root of the first `size` leaves (size >= 1)."""
    if not 1 <= size <= MAX_TREE_SIZE:
        raise ValueError(f"tree size {size} out of range (use EMPTY_ROOT for size 0)")
    return tree_hash(0, size, reader)


def compact_range_at(size: int, reader: HashReader) -> CompactRange:
    """Return the frontier (`CompactRange`) of the first `size` leaves, e.g. to resume sealing."""
    if not 0 <= size <= MAX_TREE_SIZE:
        raise ValueError(f"tree size {size} out of range")
    hashes = [reader.subtree_hash(lo, hi) for lo, hi in _perfect_subtrees(0, size)]
    return CompactRange.from_hashes(size, hashes)


def _split(lo: int, hi: int) -> int:
    return lo + (1 << ((hi - lo - 1).bit_length() - 1))


def inclusion_proof(index: int, size: int, reader: HashReader) -> list[bytes]:
    """Return the RFC 9162 §2.1.3.1 audit path of leaf `index` in the tree of `size` leaves.

    Ordered from the leaf's sibling up to the child of the root. Requires 0 <= index < size.
    """
    if not 0 <= index < size <= MAX_TREE_SIZE:
        raise ValueError(f"no leaf {index} in a tree of size {size}")
    path = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = _split(lo, hi)
        if index < mid:
            path.append(tree_hash(mid, hi, reader))
            hi = mid
        else:
            path.append(tree_hash(lo, mid, reader))
            lo = mid
    path.reverse()
    return path


def consistency_proof(old_size: int, new_size: int, reader: HashReader) -> list[bytes]:
    """Return the RFC 9162 §2.1.4.1 consistency proof from `old_size` to `new_size`.

    Requires 0 < old_size <= new_size; equal sizes give the empty proof.
    """
    if not 0 < old_size <= new_size <= MAX_TREE_SIZE:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    proof = []
    lo, hi, m, complete = 0, new_size, old_size, True  # SUBPROOF(m, D[lo:hi], complete)
    while m != hi - lo:
        mid = _split(lo, hi)
        if m <= mid - lo:
            proof.append(tree_hash(mid, hi, reader))
            hi = mid
        else:
            proof.append(tree_hash(lo, mid, reader))
            m -= mid - lo
            lo, complete = mid, False
    if not complete:
        proof.append(tree_hash(lo, hi, reader))
    proof.reverse()
    return proof


def multi_inclusion_proof(indices: Iterable[int], size: int, reader: HashReader) -> list[bytes]:
    """Return one proof that all leaves at `indices` are in the tree of `size` leaves.

    Format (see `ledger.merkle.multi_proof_nodes`): hashes of the maximal subtrees holding none
    of the indices, left to right. Requires a non-empty set of indices, each in [0, size).
    """
    wanted: Sequence[int] = sorted(set(indices))
    if not wanted or not 0 <= wanted[0] <= wanted[-1] < size <= MAX_TREE_SIZE:
        raise ValueError(f"leaf indices {list(wanted)[:8]} are not in a tree of size {size}")
    return [tree_hash(lo, hi, reader) for lo, hi in multi_proof_nodes(wanted, size)]
