"""RFC 6962 / RFC 9162 Merkle tree hashing and proof verification (the verification kernel).

This module imports nothing but the standard library, so the standalone bundle verifier can run
it on a machine that never saw the ledger. Proof *generation* lives in `ledger.merkle_proofs`.

Hashing (RFC 9162 §2.1.1), SHA-256 throughout, every hash exactly 32 bytes:

    leaf_hash(record)  = SHA-256(0x00 ‖ record)
    node_hash(l, r)    = SHA-256(0x01 ‖ l ‖ r)
    MTH([])            = SHA-256("")                      (EMPTY_ROOT)
    MTH(D[n])          = node_hash(MTH(D[0:k]), MTH(D[k:n]))  k = largest power of two < n

Guarantees of the `verify_*` functions:

- They MUST return `None` only if the proof recomputes exactly the claimed root(s) from the
  claimed leaf hash(es), with a proof of exactly the length RFC 9162 prescribes for the claimed
  index/sizes. Anything else (wrong length, a hash that is not 32 bytes, an index outside the
  tree, a size that goes backwards, trailing or preceding garbage) raises `ProofError`.
- They MUST NOT raise anything but `ProofError` for bad proofs, and MUST NOT trust any input:
  sizes and indices are checked before a single hash is computed.
- A consistency proof from the empty tree (old size 0) is rejected: every tree extends the empty
  tree, so there is nothing to prove, and callers MUST handle the empty checkpoint themselves.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_TREE_SIZE",
    "CompactRange",
    "ProofError",
    "leaf_hash",
    "multi_proof_nodes",
    "node_hash",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
    "verify_multi_inclusion",
]

HASH_SIZE = 32
"""Length in bytes of every leaf, node and root hash (SHA-256)."""

MAX_TREE_SIZE = 2**64 - 1
"""Largest tree size accepted (sizes and indices are uint64 in RFC 9162 and C2SP tlog)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH of the empty tree: e3b0c442…b855 = SHA-256 of the empty string."""


class ProofError(ValueError):
    """A Merkle proof did not verify. Carries the evidence.

    `kind` is one of: `"bad_argument"` (index/size out of range, size going backwards),
    `"bad_hash"` (a hash that is not 32 bytes), `"bad_length"` (proof has the wrong number of
    hashes), `"root_mismatch"` (the recomputed root differs from the claimed one). `expected`
    and `computed` hold the claimed and recomputed values (bytes for hashes, int for lengths).
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        expected: bytes | int | None = None,
        computed: bytes | int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.expected = expected
        self.computed = computed


def leaf_hash(record: bytes) -> bytes:
    """Return SHA-256(0x00 ‖ record), the RFC 6962 hash of one log entry."""
    return hashlib.sha256(b"\x00" + record).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return SHA-256(0x01 ‖ left ‖ right), the RFC 6962 hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """Largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Return MTH of the given leaf hashes (RFC 6962 §2.1), `EMPTY_ROOT` for none.

    Raises `ValueError` if a hash is not 32 bytes. O(n) hashing, O(log n) recursion depth.
    """
    for i, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise ValueError(f"leaf hash {i} has {len(h)} bytes, want {HASH_SIZE}")

    def mth(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return hashes[lo]
        mid = lo + _largest_power_of_two_below(hi - lo)
        return node_hash(mth(lo, mid), mth(mid, hi))

    return mth(0, len(hashes)) if hashes else EMPTY_ROOT


class CompactRange:
    """The frontier of a growing log: roots of the perfect subtrees that tile [0, size).

    Holds one hash per set bit of `size` (largest, leftmost subtree first), so memory is
    O(log size). `append` MUST be called with leaf hashes in log order; `root()` then equals
    `root_from_leaf_hashes` of all hashes appended so far. The state round-trips through
    `to_bytes`/`from_bytes` (8-byte big-endian size ‖ the hashes) so a sealer can resume after
    a crash; `from_bytes` MUST reject state whose hash count does not match the size.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_hashes(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Rebuild a frontier of `size` leaves from its subtree roots (as in `hashes`)."""
        if not 0 <= size <= MAX_TREE_SIZE:
            raise ValueError(f"size {size} out of range")
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a frontier of size {size} has {size.bit_count()} hashes, got {len(hashes)}"
            )
        for i, h in enumerate(hashes):
            if len(h) != HASH_SIZE:
                raise ValueError(f"frontier hash {i} has {len(h)} bytes, want {HASH_SIZE}")
        rng = cls()
        rng._size = size
        rng._hashes = [bytes(h) for h in hashes]
        return rng

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactRange:
        """Inverse of `to_bytes`. Raises `ValueError` on truncated or extended state."""
        if len(data) < 8 or (len(data) - 8) % HASH_SIZE:
            raise ValueError(f"frontier state of {len(data)} bytes is malformed")
        size = int.from_bytes(data[:8], "big")
        hashes = [data[i : i + HASH_SIZE] for i in range(8, len(data), HASH_SIZE)]
        return cls.from_hashes(size, hashes)

    def to_bytes(self) -> bytes:
        """Serialise as 8-byte big-endian size followed by the frontier hashes."""
        return self._size.to_bytes(8, "big") + b"".join(self._hashes)

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The frontier: roots of the perfect subtrees of [0, size), left to right."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> None:
        """Append the next leaf hash (32 bytes), merging completed subtrees."""
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"leaf hash has {len(leaf)} bytes, want {HASH_SIZE}")
        if self._size >= MAX_TREE_SIZE:
            raise ValueError("tree is full")
        self._hashes.append(bytes(leaf))
        carry = self._size
        while carry & 1:
            right = self._hashes.pop()
            self._hashes[-1] = node_hash(self._hashes[-1], right)
            carry >>= 1
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append several leaf hashes in order."""
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """MTH of the leaves appended so far (`EMPTY_ROOT` when none)."""
        if not self._hashes:
            return EMPTY_ROOT
        acc = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            acc = node_hash(h, acc)
        return acc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable, so unhashable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"


# --- verification ---------------------------------------------------------------------------


def _check_size(name: str, value: int, *, low: int = 0, high: int = MAX_TREE_SIZE) -> None:
    if not low <= value <= high:
        raise ProofError(f"{name} {value} is outside [{low}, {high}]", kind="bad_argument")


def _check_hashes(name: str, hashes: Sequence[bytes]) -> None:
    for i, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise ProofError(
                f"{name}[{i}] has {len(h)} bytes, want {HASH_SIZE}",
                kind="bad_hash",
                expected=HASH_SIZE,
                computed=len(h),
            )


def _check_length(what: str, proof: Sequence[bytes], want: int) -> None:
    if len(proof) != want:
        raise ProofError(
            f"{what} has {len(proof)} hashes, want {want}",
            kind="bad_length",
            expected=want,
            computed=len(proof),
        )


def _check_root(what: str, claimed: bytes, computed: bytes) -> None:
    if claimed != computed:
        raise ProofError(
            f"{what}: computed {computed.hex()}, claimed {claimed.hex()}",
            kind="root_mismatch",
            expected=claimed,
            computed=computed,
        )


def _inclusion_proof_length(index: int, size: int) -> int:
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify that `leaf_hash` is leaf `index` of the tree of `size` leaves with `root`.

    Implements RFC 9162 §2.1.3.2. Returns `None` on success; raises `ProofError` otherwise
    (`index >= size`, a proof of the wrong length, a hash that is not 32 bytes, a root mismatch).
    """
    _check_size("tree size", size, low=1)
    _check_size("leaf index", index, high=size - 1)
    _check_hashes("leaf hash", [leaf_hash])
    _check_hashes("proof", proof)
    _check_length("inclusion proof", proof, _inclusion_proof_length(index, size))
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:  # unreachable after the length check; kept as RFC 9162 step 4a
            raise ProofError("inclusion proof is too long", kind="bad_length")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:  # unreachable after the length check; kept as RFC 9162 step 5
        raise ProofError("inclusion proof is too short", kind="bad_length")
    _check_root(f"inclusion of leaf {index} in tree of size {size}", root, r)


def _consistency_proof_length(old_size: int, new_size: int) -> int:
    fork = ((old_size - 1) ^ (new_size - 1)).bit_length()
    border = ((old_size - 1) >> fork).bit_count()
    shift = (old_size & -old_size).bit_length() - 1  # trailing zeros of old_size
    seed = 0 if old_size == 1 << shift else 1  # a power-of-two old tree is its own seed
    return seed + (fork - shift) + border


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Verify that the tree (`new_size`, `new_root`) extends the tree (`old_size`, `old_root`).

    Implements RFC 9162 §2.1.4.2 for 0 < old_size < new_size. Equal sizes MUST come with an
    empty proof and byte-equal roots (compared as given, nothing is hashed). `old_size == 0`
    and `old_size > new_size` are rejected. Returns `None` on success; raises `ProofError`.
    """
    _check_size("new size", new_size)
    _check_size("old size", old_size)
    if old_size > new_size:
        raise ProofError(
            f"old size {old_size} exceeds new size {new_size}: a log MUST NOT shrink",
            kind="bad_argument",
            expected=new_size,
            computed=old_size,
        )
    if old_size == 0:
        raise ProofError(
            "consistency with the empty tree proves nothing; handle size 0 explicitly",
            kind="bad_argument",
        )
    if old_size == new_size:
        _check_length("consistency proof between equal sizes", proof, 0)
        _check_root(f"trees of equal size {old_size}", old_root, new_root)
        return
    _check_hashes("proof", proof)
    _check_length(
        f"consistency proof {old_size} -> {new_size}",
        proof,
        _consistency_proof_length(old_size, new_size),
    )
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # RFC 9162 step 2
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:  # unreachable after the length check; kept as RFC 9162 step 6
            raise ProofError("consistency proof is too long", kind="bad_length")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:  # unreachable after the length check; kept as RFC 9162 step 7
        raise ProofError("consistency proof is too short", kind="bad_length")
    _check_root(f"old root at size {old_size}", old_root, fr)
    _check_root(f"new root at size {new_size}", new_root, sr)


# --- multi-leaf inclusion -------------------------------------------------------------------


def multi_proof_nodes(indices: Iterable[int], size: int) -> list[tuple[int, int]]:
    """The subtrees whose hashes form the multi-leaf inclusion proof, as [start, end) ranges.

    Format: the proof for a set S of leaf indices in a tree of `size` leaves is the list of
    hashes of the *maximal* RFC 6962 subtrees that contain no leaf of S, ordered by their first
    leaf (left to right). It is the smallest set of hashes from which the root follows, given the
    leaves of S; for one leaf it holds the RFC 9162 audit path, but ordered left to right
    instead of bottom up. Duplicate indices count once. Raises `ProofError` on an empty S or an
    index outside [0, size).
    """
    _check_size("tree size", size, low=1)
    wanted = sorted(set(indices))
    if not wanted:
        raise ProofError("multi-leaf proof needs at least one leaf", kind="bad_argument")
    _check_size("leaf index", wanted[0], high=size - 1)
    _check_size("leaf index", wanted[-1], high=size - 1)
    nodes: list[tuple[int, int]] = []
    stack = [(0, size, 0, len(wanted))]  # subtree [lo, hi) holding wanted[a:b]
    while stack:
        lo, hi, a, b = stack.pop()
        if a == b:
            nodes.append((lo, hi))
        elif hi - lo > 1:
            mid = lo + _largest_power_of_two_below(hi - lo)
            m = bisect.bisect_left(wanted, mid, a, b)
            stack.append((mid, hi, m, b))  # pushed first, so visited after the left half
            stack.append((lo, mid, a, m))
    return nodes


def verify_multi_inclusion(
    leaves: Mapping[int, bytes], size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify that every `leaves[i]` (a leaf hash) is leaf i of the tree (`size`, `root`).

    `proof` MUST be in the format of `multi_proof_nodes` (as made by
    `ledger.merkle_proofs.multi_inclusion_proof`). Returns `None` only if the root recomputed
    from all given leaves and exactly `len(multi_proof_nodes(leaves, size))` proof hashes
    equals `root`; raises `ProofError` otherwise. One bad leaf fails the whole proof.
    """
    nodes = multi_proof_nodes(leaves.keys(), size)
    _check_hashes("leaf hash", list(leaves.values()))
    _check_hashes("proof", proof)
    _check_length(f"multi-leaf proof for {len(leaves)} leaves", proof, len(nodes))
    known = dict(zip(nodes, proof, strict=True))
    known.update(((i, i + 1), h) for i, h in leaves.items())

    def subtree(lo: int, hi: int) -> bytes:
        h = known.get((lo, hi))
        if h is not None:
            return h
        mid = lo + _largest_power_of_two_below(hi - lo)
        return node_hash(subtree(lo, mid), subtree(mid, hi))

    _check_root(f"multi-leaf inclusion in tree of size {size}", root, subtree(0, size))
