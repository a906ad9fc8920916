"""Unit and property tests of the RFC 6962 / RFC 9162 Merkle kernel (ledger.merkle*)."""

from __future__ import annotations

import functools
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle, merkle_proofs
from ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    leaf_hash,
    multi_proof_nodes,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
    verify_multi_inclusion,
)
from ledger.merkle_proofs import (
    MemoryHashReader,
    compact_range_at,
    consistency_proof,
    inclusion_proof,
    multi_inclusion_proof,
    tree_hash,
    tree_root,
)

# The RFC 6962 reference tree used by transparency-dev/merkle (testonly/constants.go).
REF_INPUTS = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
REF_ROOTS = [EMPTY_ROOT.hex(), *(
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]  # fmt: skip
REF_LEAVES = [leaf_hash(x) for x in REF_INPUTS]
MAX_SIZE = 300
PROPS = settings(max_examples=150, deadline=None)


def mth(hashes: list[bytes]) -> bytes:
    """Brute-force RFC 6962 MTH, written independently of the code under test."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(hashes[:k]) + mth(hashes[k:])).digest()


@functools.cache
def tree(size: int) -> tuple[list[bytes], MemoryHashReader]:
    leaves = [leaf_hash(b"leaf-%d" % i) for i in range(size)]
    return leaves, MemoryHashReader(leaves)


@functools.cache
def root(size: int) -> bytes:
    return mth(tree(size)[0])


def flip(h: bytes, bit: int) -> bytes:
    return h[: bit // 8] + bytes([h[bit // 8] ^ (1 << (bit % 8))]) + h[bit // 8 + 1 :]


some_hash = st.binary(min_size=32, max_size=32)


def tampered(proof: list[bytes], data: st.DataObject) -> list[list[bytes]]:
    """One bit flipped in one hash, one hash dropped, one random hash inserted."""
    at = data.draw(st.integers(0, len(proof)))
    out = [[*proof[:at], data.draw(some_hash), *proof[at:]]]
    if proof:
        at, bit = data.draw(st.integers(0, len(proof) - 1)), data.draw(st.integers(0, 255))
        out += [[*proof[:at], flip(proof[at], bit), *proof[at + 1 :]], proof[:at] + proof[at + 1 :]]
    return out


sizes = st.integers(1, MAX_SIZE)


def test_public_api_is_complete() -> None:
    for module in (merkle, merkle_proofs):
        assert all(hasattr(module, name) for name in module.__all__)


def test_hash_known_answers() -> None:
    # python -c "import hashlib; print(hashlib.sha256(b'\x00').hexdigest())"
    assert leaf_hash(b"").hex() == REF_ROOTS[1]
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert node_hash(REF_LEAVES[0], REF_LEAVES[1]).hex() == REF_ROOTS[2]


@pytest.mark.parametrize("size", range(9))
def test_reference_roots(size: int) -> None:
    frontier = CompactRange()
    frontier.extend(REF_LEAVES[:size])
    assert root_from_leaf_hashes(REF_LEAVES[:size]).hex() == REF_ROOTS[size]
    assert frontier.root().hex() == REF_ROOTS[size]
    if size:
        assert tree_root(size, MemoryHashReader(REF_LEAVES)).hex() == REF_ROOTS[size]


@pytest.mark.parametrize(
    ("index", "size", "proof"),
    [
        (0, 1, []),
        (0, 8, ["96a296d2", "5f083f0a", "6b47aaf2"]),
        (5, 8, ["bc1a0643", "ca854ea1", "d37ee418"]),
        (2, 3, ["fac54203"]),
        (1, 5, ["6e340b9c", "5f083f0a", "bc1a0643"]),
    ],
)
def test_reference_inclusion_proofs(index: int, size: int, proof: list[str]) -> None:
    got = inclusion_proof(index, size, MemoryHashReader(REF_LEAVES))
    assert [h.hex()[:8] for h in got] == proof
    verify_inclusion(index, size, REF_LEAVES[index], got, bytes.fromhex(REF_ROOTS[size]))


@pytest.mark.parametrize(
    ("old", "new", "proof"),
    [
        (1, 1, []),
        (1, 8, ["96a296d2", "5f083f0a", "6b47aaf2"]),
        (6, 8, ["0ebc5d34", "ca854ea1", "d37ee418"]),
        (2, 5, ["5f083f0a", "bc1a0643"]),
        (6, 7, ["0ebc5d34", "b08693ec", "d37ee418"]),
    ],
)
def test_reference_consistency_proofs(old: int, new: int, proof: list[str]) -> None:
    got = consistency_proof(old, new, MemoryHashReader(REF_LEAVES))
    assert [h.hex()[:8] for h in got] == proof
    verify_consistency(old, new, bytes.fromhex(REF_ROOTS[old]), bytes.fromhex(REF_ROOTS[new]), got)


@given(st.lists(some_hash, max_size=70))
def test_root_equals_brute_force_mth(hashes: list[bytes]) -> None:
    assert root_from_leaf_hashes(hashes) == mth(hashes)


def test_frontier_root_at_every_size() -> None:
    leaves, reader = tree(MAX_SIZE)
    frontier = CompactRange()
    for size in range(MAX_SIZE + 1):
        assert frontier.root() == mth(leaves[:size])
        assert len(frontier.hashes) == size.bit_count()
        assert compact_range_at(size, reader) == frontier
        if size < MAX_SIZE:
            frontier.append(leaves[size])


@PROPS
@given(sizes, st.data())
def test_frontier_resumes_from_its_serialised_state(size: int, data: st.DataObject) -> None:
    leaves, _ = tree(size)
    cut = data.draw(st.integers(0, size))
    before = CompactRange()
    before.extend(leaves[:cut])
    resumed = CompactRange.from_bytes(before.to_bytes())
    assert resumed == before
    assert CompactRange.from_hashes(cut, resumed.hashes) == before
    resumed.extend(leaves[cut:])
    assert resumed.root() == root(size)
    assert resumed.size == size


@pytest.mark.parametrize(
    "state",
    [b"", b"\x00" * 7, (1).to_bytes(8, "big"), (2).to_bytes(8, "big") + b"\x00" * 64,
     (3).to_bytes(8, "big") + b"\x00" * 33],
)  # fmt: skip
def test_frontier_rejects_malformed_state(state: bytes) -> None:
    with pytest.raises(ValueError, match="frontier"):
        CompactRange.from_bytes(state)


def test_frontier_rejects_bad_leaf_hash() -> None:
    with pytest.raises(ValueError, match="32"):
        CompactRange().append(b"short")


@pytest.mark.parametrize(("start", "end"), [(0, 3), (1, 3), (2, 6), (4, 12), (-1, 0), (0, 0)])
def test_reader_serves_only_perfect_aligned_subtrees(start: int, end: int) -> None:
    with pytest.raises(ValueError, match="perfect aligned"):
        tree(16)[1].subtree_hash(start, end)


def test_reader_and_tree_hash_refuse_what_they_do_not_hold() -> None:
    with pytest.raises(ValueError, match="beyond"):
        tree(5)[1].subtree_hash(4, 8)
    with pytest.raises(ValueError, match="not a node"):
        tree_hash(2, 6, tree(8)[1])
    assert tree_hash(4, 7, tree(8)[1]) == mth(tree(8)[0][4:7])


# --- inclusion ------------------------------------------------------------------------------


@PROPS
@given(sizes, st.data())
def test_inclusion_proofs_verify_and_resist_tampering(size: int, data: st.DataObject) -> None:
    leaves, reader = tree(size)
    index = data.draw(st.integers(0, size - 1))
    leaf, proof = leaves[index], inclusion_proof(index, size, reader)
    verify_inclusion(index, size, leaf, proof, root(size))
    bit = data.draw(st.integers(0, 255))
    other = data.draw(st.integers(0, MAX_SIZE).filter(lambda i: i != index))
    new_size = data.draw(st.integers(1, MAX_SIZE).filter(lambda s: s != size))
    bad = [(index, size, leaf, p, root(size)) for p in tampered(proof, data)] + [
        (index, size, flip(leaf, bit), proof, root(size)),
        (index, size, leaf, proof, flip(root(size), bit)),
        (other, size, leaf, proof, root(size)),
        (index, new_size, leaf, proof, root(new_size)),
    ]
    for args in bad:
        with pytest.raises(ProofError):
            verify_inclusion(*args)


def test_every_single_bit_flip_of_every_inclusion_proof_fails() -> None:
    leaves, reader = tree(13)
    for index in range(13):
        proof = inclusion_proof(index, 13, reader)
        for at, bit in ((a, b) for a in range(len(proof)) for b in range(256)):
            tampered = [*proof[:at], flip(proof[at], bit), *proof[at + 1 :]]
            with pytest.raises(ProofError, match="computed") as caught:
                verify_inclusion(index, 13, leaves[index], tampered, root(13))
            assert caught.value.kind == "root_mismatch"
            assert caught.value.expected == root(13)


def test_inclusion_size_is_bound_only_through_the_root() -> None:
    # RFC 9162 verification binds the tree size only via the proof's shape: leaf 0's path in
    # a tree of 3 has the same shape as in a tree of 4. A checkpoint signs (size, root) together,
    # so a proof MUST be checked against the root signed for the claimed size.
    leaves, reader = tree(4)
    proof = inclusion_proof(0, 3, reader)
    verify_inclusion(0, 4, leaves[0], proof, root(3))
    with pytest.raises(ProofError):
        verify_inclusion(0, 4, leaves[0], proof, root(4))


@pytest.mark.parametrize(
    ("index", "size", "leaf", "proof", "kind"),
    [
        (0, 0, b"\x00" * 32, [], "bad_argument"),
        (3, 3, b"\x00" * 32, [], "bad_argument"),
        (-1, 3, b"\x00" * 32, [], "bad_argument"),
        (0, 2**64, b"\x00" * 32, [], "bad_argument"),
        (0, 1, b"\x00" * 31, [], "bad_hash"),
        (0, 2, b"\x00" * 32, [b"\x00" * 33], "bad_hash"),
        (0, 2, b"\x00" * 32, [], "bad_length"),
        (0, 1, b"\x00" * 32, [b"\x00" * 32], "bad_length"),
    ],
)
def test_inclusion_edge_cases(index, size, leaf, proof, kind) -> None:
    with pytest.raises(ProofError) as caught:
        verify_inclusion(index, size, leaf, proof, b"\x00" * 32)
    assert caught.value.kind == kind
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(("index", "size"), [(0, 0), (5, 5), (-1, 4)])
def test_inclusion_proof_rejects_bad_arguments(index: int, size: int) -> None:
    with pytest.raises(ValueError, match="no leaf"):
        inclusion_proof(index, size, tree(8)[1])


# --- consistency ----------------------------------------------------------------------------


@PROPS
@given(sizes, st.data())
def test_consistency_proofs_verify_and_resist_tampering(size: int, data: st.DataObject) -> None:
    old = data.draw(st.integers(1, size))
    proof = consistency_proof(old, size, tree(size)[1])
    verify_consistency(old, size, root(old), root(size), proof)
    bit = data.draw(st.integers(0, 255))
    o2 = data.draw(st.integers(1, MAX_SIZE).filter(lambda s: s != old))
    n2 = data.draw(st.integers(1, MAX_SIZE).filter(lambda s: s != size))
    bad = [(old, size, root(old), root(size), p) for p in tampered(proof, data)] + [
        (old, size, flip(root(old), bit), root(size), proof),
        (old, size, root(old), flip(root(size), bit), proof),
        (o2, size, root(o2), root(size), proof),
        (old, n2, root(old), root(n2), proof),
    ]
    if old != size:
        bad.append((old, size, root(size), root(old), proof))
    for args in bad:
        with pytest.raises(ProofError):
            verify_consistency(*args)


E, X = EMPTY_ROOT, b"\x01" * 32


@pytest.mark.parametrize(
    ("old", "new", "old_root", "new_root", "proof", "kind"),
    [
        (0, 0, E, E, [], "bad_argument"),  # the empty tree: nothing to prove
        (0, 5, E, X, [], "bad_argument"),
        (0, 5, E, X, [X], "bad_argument"),
        (2, 1, X, X, [], "bad_argument"),
        (-1, 1, X, X, [], "bad_argument"),
        (1, 2**64, X, X, [X], "bad_argument"),
        (3, 3, X, X, [X], "bad_length"),  # equal sizes: the proof MUST be empty
        (3, 3, X, E, [], "root_mismatch"),  # ... and the roots equal
        (1, 2, X, X, [], "bad_length"),
        (3, 4, X, X, [X, X, b"\x01" * 31], "bad_hash"),
    ],
)
def test_consistency_edge_cases(old, new, old_root, new_root, proof, kind) -> None:
    with pytest.raises(ProofError) as caught:
        verify_consistency(old, new, old_root, new_root, proof)
    assert caught.value.kind == kind


def test_consistency_between_equal_sizes_needs_no_proof() -> None:
    verify_consistency(7, 7, root(7), root(7), [])
    assert consistency_proof(7, 7, tree(7)[1]) == []


@pytest.mark.parametrize(("old", "new"), [(0, 3), (4, 3), (-1, 2)])
def test_consistency_proof_rejects_bad_arguments(old: int, new: int) -> None:
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(old, new, tree(8)[1])


# --- multi-leaf inclusion -------------------------------------------------------------------


@PROPS
@given(sizes, st.data())
def test_multi_proofs_verify_and_resist_tampering(size: int, data: st.DataObject) -> None:
    leaves, reader = tree(size)
    wanted = data.draw(st.sets(st.integers(0, size - 1), min_size=1, max_size=24))
    chosen = {i: leaves[i] for i in wanted}
    proof = multi_inclusion_proof(wanted, size, reader)
    assert len(proof) == len(multi_proof_nodes(wanted, size))
    verify_multi_inclusion(chosen, size, proof, root(size))
    victim, bit = data.draw(st.sampled_from(sorted(wanted))), data.draw(st.integers(0, 255))
    rest = {i: h for i, h in chosen.items() if i != victim}
    n2 = data.draw(st.integers(max(wanted) + 1, MAX_SIZE).filter(lambda s: s != size))
    bad = [(chosen, size, p, root(size)) for p in tampered(proof, data)] + [
        ({**chosen, victim: flip(leaves[victim], bit)}, size, proof, root(size)),
        (chosen, size, proof, flip(root(size), bit)),
        (chosen, n2, proof, root(n2)),
        ({}, size, proof, root(size)),
    ]
    if rest:
        bad.append((rest, size, proof, root(size)))
    if len(chosen) < size:
        extra = data.draw(st.integers(0, size - 1).filter(lambda i: i not in wanted))
        bad.append(({**chosen, extra: leaves[extra]}, size, proof, root(size)))
        bad.append(({**rest, extra: leaves[victim]}, size, proof, root(size)))
    for args in bad:
        with pytest.raises(ProofError):
            verify_multi_inclusion(*args)


@PROPS
@given(sizes, st.data())
def test_single_leaf_multi_proof_holds_the_audit_path(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    reader = tree(size)[1]
    multi = multi_inclusion_proof([index], size, reader)
    assert sorted(multi) == sorted(inclusion_proof(index, size, reader))
    starts = [start for start, _ in multi_proof_nodes([index], size)]
    assert starts == sorted(starts)


def test_multi_proof_of_every_leaf_is_empty() -> None:
    leaves, reader = tree(11)
    assert multi_inclusion_proof(range(11), 11, reader) == []
    verify_multi_inclusion(dict(enumerate(leaves)), 11, [], root(11))


def test_multi_proof_format_is_the_maximal_uncovered_subtrees_left_to_right() -> None:
    assert multi_proof_nodes([2, 9], 11) == [(0, 2), (3, 4), (4, 8), (8, 9), (10, 11)]
    assert multi_proof_nodes([9, 2, 2], 11) == multi_proof_nodes([2, 9], 11)


@pytest.mark.parametrize(("indices", "size"), [([], 5), ([5], 5), ([-1], 5), ([0], 0)])
def test_multi_proof_rejects_bad_arguments(indices: list[int], size: int) -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        multi_inclusion_proof(indices, size, tree(8)[1])
    with pytest.raises(ProofError):
        verify_multi_inclusion(dict.fromkeys(indices, b"\x00" * 32), size, [], X)
