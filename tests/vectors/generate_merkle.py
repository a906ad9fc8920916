r"""Generate neikong's own RFC 6962 Merkle proof vectors into tests/vectors/merkle/.

Run from the project root:  .venv/bin/python -m tests.vectors.generate_merkle

Deterministic (no randomness): the same code always writes byte-identical files, and
tests/vectors/test_generated_vectors.py fails if the committed files differ from a fresh run.
The JSON shape follows transparency-dev/merkle's testdata (see ../shared/vectors/merkle/):

- inclusion/<n>/*.json:       leafIdx, treeSize, root, leafHash, proof[], desc, wantErr
- consistency/<n>/*.json:     size1, size2, root1, root2, proof[], desc, wantErr
- multi-inclusion/<n>/*.json: leafIdx[], treeSize, root, leafHash[], proof[], desc, wantErr
  (leafHash[k] belongs to leafIdx[k]; proof in the format of ledger.merkle.multi_proof_nodes)

Hashes are standard base64. `happy-path.json` verifies; every other file in a numbered folder is
one systematic corruption of it (file names as upstream: `modified-proof[0]-bit-@3.json`,
`modified-proof@0-bit-@4.json`, `truncated-proof.json`, `trailing-garbage.json`,
`swapped-roots.json`, `leafIdx-plus-@1.json`, `treeSize-plus-@1.json`, ...) and MUST fail.
Unlike upstream, a corrupted *size* is paired with the genuine root of the corrupted size (an
RFC 9162 proof binds the size only through the root, so the old root could still match); the
`additional/` folders hold the edge cases (empty tree, equal sizes, no leaves).

The tree: leaf i is the record b"leaf-%d" % i, leaf hash SHA-256(0x00 ‖ record), 130 leaves.
Known answers, each reproducible with the standard library alone:

    leaf_hash(b"leaf-0") = 305df59f9590c3c9ac63d2b2743c388e3792449078cebf7fb3dbe6471643b2b7
        python3 -c "import hashlib; print(hashlib.sha256(b'\x00leaf-0').hexdigest())"

    root of the first N leaves (KNOWN_ROOTS below: N = 1, 2, 8, 65, 130), with N replaced:
        python3 -c "import hashlib as H;f=lambda s:s[0] if len(s)==1 else (lambda k:H.sha256(b'\1'+f(s[:k])+f(s[k:])).digest())(1<<(len(s)-1).bit_length()-1);print(f([H.sha256(b'\0leaf-%d'%i).digest() for i in range(N)]).hex())"
"""  # noqa: E501

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ledger.merkle import (
    EMPTY_ROOT,
    ProofError,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
    verify_multi_inclusion,
)
from ledger.merkle_proofs import (
    MemoryHashReader,
    consistency_proof,
    inclusion_proof,
    multi_inclusion_proof,
    tree_root,
)

OUT_DIR = Path(__file__).resolve().parent / "merkle"
TREE_SIZE = 130
LEAVES = [leaf_hash(b"leaf-%d" % i) for i in range(TREE_SIZE)]
READER = MemoryHashReader(LEAVES)
KNOWN_LEAF_0 = "305df59f9590c3c9ac63d2b2743c388e3792449078cebf7fb3dbe6471643b2b7"
KNOWN_ROOTS = {  # reproduce with the one-liner in the module docstring
    1: "305df59f9590c3c9ac63d2b2743c388e3792449078cebf7fb3dbe6471643b2b7",
    2: "60a53eed0de87a90c8e59427c59c46253c33a76a09502a51801300927b7e6bdc",
    8: "ca6b7b3e674ac86c1027b59c87c064fc3bc27b313294c75f83bd05fdd13f0dcf",
    65: "e39823f2fbb3eb791d9fd50db4de594a1fcb100af947afca6442414c95caf6b4",
    130: "4a4cab09825c23e05058bd1140155b9cb9d01580c4c52b74e3f3c8e75f804d82",
}
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
U64 = 2**64

# (leaf index, tree size), (old size, new size), (leaf indices, tree size): small trees, both
# sides of powers of two, first and last leaves.
INCLUSION_CASES = [(0, 1), (1, 2), (2, 3), (0, 5), (4, 5), (6, 7), (3, 8), (13, 21), (32, 33),
                   (64, 65)]  # fmt: skip
CONSISTENCY_CASES = [(1, 1), (1, 2), (1, 8), (2, 5), (3, 7), (4, 8), (6, 7), (13, 21), (16, 33),
                     (63, 65)]  # fmt: skip
MULTI_CASES = [([0], 1), ([1], 2), ([0, 4], 5), ([1, 2, 6], 7), ([0, 7], 8), ([3, 9, 10, 20], 21),
               ([5, 31, 32], 33), ([0, 1, 2, 40, 63, 64], 65)]  # fmt: skip

Probe = dict[str, Any]


def root_at(size: int) -> bytes:
    """Genuine root of the first `size` leaves (EMPTY_ROOT for 0; nonsense beyond the tree)."""
    if size == 0:
        return EMPTY_ROOT
    return tree_root(size, READER) if size <= TREE_SIZE else SOME_HASH


def probe(
    desc: str, want_err: bool, **fields: int | bytes | Sequence[int] | Sequence[bytes]
) -> Probe:
    """A vector: `fields` in the given order (bytes as base64), then desc and wantErr."""

    def encode(value: Any) -> Any:
        if isinstance(value, bytes):
            return base64.b64encode(value).decode("ascii")
        return [encode(v) for v in value] if isinstance(value, Sequence) else value

    return {**{k: encode(v) for k, v in fields.items()}, "desc": desc, "wantErr": want_err}


def flip(hashes: Sequence[bytes], i: int, mask: int) -> list[bytes]:
    return [*hashes[:i], bytes([hashes[i][0] ^ mask]) + hashes[i][1:], *hashes[i + 1 :]]


def file_name(desc: str) -> str:
    return desc.replace(" - ", "-").replace("(", "").replace(")", "").replace(" ", "-") + ".json"


def inclusion_probes(index: int, size: int) -> Iterator[Probe]:
    leaf, root, proof = LEAVES[index], root_at(size), inclusion_proof(index, size, READER)

    def make(desc: str, i: int = index, n: int = size, r: bytes = root, lh: bytes = leaf,
             p: Sequence[bytes] = proof, err: bool = True) -> Probe:  # fmt: skip
        return probe(desc, err, leafIdx=i, treeSize=n, root=r, leafHash=lh, proof=p)

    yield make("happy path", err=False)
    yield make("leafIdx sub @1", i=(index - 1) % U64)
    yield make("leafIdx plus @1", i=index + 1)
    yield make("leafIdx XOR @2", i=index ^ 2)
    for n, desc in [(size * 2, "treeSize mul @2"), (size // 2, "treeSize div @2"),
                    (size + 1, "treeSize plus @1"), (size - 1, "treeSize sub @1")]:  # fmt: skip
        yield make(desc, n=n, r=root_at(n))
    yield make("wrong leaf", lh=b"WrongLeaf")
    yield make("modified leafHash bit @3", lh=flip([leaf], 0, 8)[0])
    yield make("empty root", r=EMPTY_ROOT)
    yield make("random root", r=SOME_HASH)
    yield make("trailing garbage", p=[*proof, b""])
    yield make("trailing root", p=[*proof, root])
    yield make("preceding garbage", p=[b"", *proof])
    yield make("preceding root", p=[root, *proof])
    for i in range(len(proof)):
        yield make(f"modified proof[{i}] bit @3", p=flip(proof, i, 8))
    if proof:
        yield make("removed component", p=proof[:-1])
    if len(proof) > 1:
        yield make("inserted component", p=[proof[0], SOME_HASH, *proof[1:]])


def inclusion_additional() -> Iterator[Probe]:
    def make(desc: str, i: int, n: int, r: bytes, lh: bytes, err: bool = True) -> Probe:
        return probe(desc, err, leafIdx=i, treeSize=n, root=r, leafHash=lh, proof=[])

    for i, n in [(0, 0), (1, 0), (1, 1), (8, 8)]:
        yield make(f"index {i} size {n}", i, n, EMPTY_ROOT, SOME_HASH)
    yield make("single leaf is its own root", 0, 1, LEAVES[0], LEAVES[0], err=False)
    yield make("short leaf hash", 0, 1, LEAVES[0], LEAVES[0][:31])


def consistency_probes(size1: int, size2: int) -> Iterator[Probe]:
    r1, r2, proof = root_at(size1), root_at(size2), consistency_proof(size1, size2, READER)

    def make(desc: str, n1: int = size1, n2: int = size2, a: bytes = r1, b: bytes = r2,
             p: Sequence[bytes] = proof, err: bool = True) -> Probe:  # fmt: skip
        return probe(desc, err, size1=n1, size2=n2, root1=a, root2=b, proof=p)

    yield make("happy path", err=False)
    for n1, desc in [((size1 - 1) % U64, "size1 sub @1"), (size1 + 1, "size1 plus @1"),
                     (size1 ^ 2, "size1 XOR @2")]:  # fmt: skip
        yield make(desc, n1=n1, a=root_at(n1))
    for n2, desc in [(size2 * 2, "size2 mul @2"), (size2 // 2, "size2 div @2"),
                     (size2 + 1, "size2 plus @1"), (size2 - 1, "size2 sub @1")]:  # fmt: skip
        yield make(desc, n2=n2, b=root_at(n2))
    yield make("wrong root1", a=b"WrongRoot")
    yield make("wrong root2", b=b"WrongRoot")
    if r1 != r2:
        yield make("swapped roots", a=r2, b=r1)
    yield make("trailing garbage", p=[*proof, b""])
    yield make("trailing root1", p=[*proof, r1])
    yield make("trailing root2", p=[*proof, r2])
    yield make("preceding garbage", p=[b"", *proof])
    yield make("preceding root1", p=[r1, *proof])
    yield make("preceding root2", p=[r2, *proof])
    if proof:
        yield make("empty proof", p=[])
        yield make("truncated proof", p=proof[:-1])
        yield make("preceding proof @0", p=[proof[0], *proof])
    for i in range(len(proof)):
        yield make(f"modified proof@{i} bit @4", p=flip(proof, i, 16))


def consistency_additional() -> Iterator[Probe]:
    def make(desc: str, n1: int, n2: int, a: bytes, b: bytes, p: Sequence[bytes] = (),
             err: bool = True) -> Probe:  # fmt: skip
        return probe(desc, err, size1=n1, size2=n2, root1=a, root2=b, proof=p)

    r4, r5 = root_at(4), root_at(5)
    yield make("empty trees prove nothing", 0, 0, EMPTY_ROOT, EMPTY_ROOT)
    yield make("size1 is zero", 0, 5, EMPTY_ROOT, r5)
    yield make("sizes are equal and proof is empty", 5, 5, r5, r5, err=False)
    yield make("sizes are equal but roots are not", 5, 5, r5, r4)
    yield make("sizes are equal but proof is not empty", 5, 5, r5, r5, [r5])
    yield make("size1 is greater than size2", 5, 4, r5, r4)


def multi_probes(indices: list[int], size: int) -> Iterator[Probe]:
    leaves, root = [LEAVES[i] for i in indices], root_at(size)
    proof = multi_inclusion_proof(indices, size, READER)

    def make(desc: str, idx: Sequence[int] = indices, n: int = size, r: bytes = root,
             lhs: Sequence[bytes] = leaves, p: Sequence[bytes] = proof, err: bool = True,
             ) -> Probe:  # fmt: skip
        return probe(desc, err, leafIdx=idx, treeSize=n, root=r, leafHash=lhs, proof=p)

    yield make("happy path", err=False)
    for n, desc in [(size * 2, "treeSize mul @2"), (size // 2, "treeSize div @2"),
                    (size + 1, "treeSize plus @1"), (size - 1, "treeSize sub @1")]:  # fmt: skip
        yield make(desc, n=n, r=root_at(n))
    for k in sorted({0, len(indices) - 1}):
        for moved, how in [(indices[k] + 1, "plus"), ((indices[k] - 1) % U64, "sub")]:
            if moved not in indices:
                idx = [*indices[:k], moved, *indices[k + 1 :]]
                yield make(f"leafIdx[{k}] {how} @1", idx=idx)
        yield make(f"modified leafHash[{k}] bit @3", lhs=flip(leaves, k, 8))
    extra = next(i for i in range(size + 1) if i not in indices)
    yield make("wrong leaf", lhs=[b"WrongLeaf", *leaves[1:]])
    yield make("empty root", r=EMPTY_ROOT)
    yield make("random root", r=SOME_HASH)
    yield make("no leaves", idx=[], lhs=[])
    yield make("extra leaf", idx=[*indices, extra], lhs=[*leaves, LEAVES[extra]])
    if len(indices) > 1:
        yield make("dropped leaf", idx=indices[:-1], lhs=leaves[:-1])
        yield make("swapped leaves", lhs=[leaves[1], leaves[0], *leaves[2:]])
    yield make("trailing garbage", p=[*proof, b""])
    yield make("trailing root", p=[*proof, root])
    yield make("preceding garbage", p=[b"", *proof])
    yield make("preceding root", p=[root, *proof])
    for i in range(len(proof)):
        yield make(f"modified proof[{i}] bit @3", p=flip(proof, i, 8))
    if proof:
        yield make("removed component", p=proof[:-1])
        yield make("inserted component", p=[proof[0], SOME_HASH, *proof[1:]])


def multi_additional() -> Iterator[Probe]:
    def make(desc: str, idx: Sequence[int], n: int, r: bytes, lhs: Sequence[bytes],
             err: bool = True) -> Probe:  # fmt: skip
        return probe(desc, err, leafIdx=idx, treeSize=n, root=r, leafHash=lhs, proof=[])

    yield make("every leaf needs no proof", range(8), 8, root_at(8), LEAVES[:8], err=False)
    yield make("index equals size", [8], 8, root_at(8), [SOME_HASH])
    yield make("empty tree", [0], 0, EMPTY_ROOT, [SOME_HASH])


def check(family: str, vector: Probe) -> None:
    """Run a vector through the verifier: returns iff it verifies, else raises ProofError."""

    def h(value: str) -> bytes:
        return base64.b64decode(value, validate=True)

    proof = [h(p) for p in vector["proof"] or []]
    if family == "inclusion":
        verify_inclusion(
            vector["leafIdx"], vector["treeSize"], h(vector["leafHash"]), proof, h(vector["root"])
        )
    elif family == "consistency":
        verify_consistency(
            vector["size1"], vector["size2"], h(vector["root1"]), h(vector["root2"]), proof
        )
    else:
        if len(set(vector["leafIdx"])) != len(vector["leafIdx"]):
            raise ValueError(f"duplicate leaf index in {vector['desc']!r}")
        leaves = dict(zip(vector["leafIdx"], map(h, vector["leafHash"]), strict=True))
        verify_multi_inclusion(leaves, vector["treeSize"], proof, h(vector["root"]))


def families() -> dict[str, list[tuple[str, Iterator[Probe]]]]:
    """Folder name -> [(sub-folder, probes)], in a fixed order."""
    return {
        "inclusion": [(str(n), inclusion_probes(*c)) for n, c in enumerate(INCLUSION_CASES)]
        + [("additional", inclusion_additional())],
        "consistency": [(str(n), consistency_probes(*c)) for n, c in enumerate(CONSISTENCY_CASES)]
        + [("additional", consistency_additional())],
        "multi-inclusion": [(str(n), multi_probes(*c)) for n, c in enumerate(MULTI_CASES)]
        + [("additional", multi_additional())],
    }


def generate(out_dir: Path) -> list[Path]:
    """Write every vector under `out_dir`; return the files written, sorted.

    Every vector is checked before it is written: a happy path MUST verify and a corruption MUST
    raise ProofError; if the verifier disagrees with the intended wantErr, this raises.
    """
    if LEAVES[0].hex() != KNOWN_LEAF_0 or any(
        root_at(n).hex() != want for n, want in KNOWN_ROOTS.items()
    ):
        raise RuntimeError("a known answer changed: the tree or the hashing is not what it was")
    written: list[Path] = []
    for family, groups in families().items():
        for group, vectors in groups:
            folder = out_dir / family / group
            folder.mkdir(parents=True, exist_ok=True)
            for vector in vectors:
                path = folder / file_name(vector["desc"])
                try:
                    check(family, vector)
                    rejected = False
                except ProofError:
                    rejected = True
                if path in written or rejected != vector["wantErr"]:
                    raise RuntimeError(f"{path}: duplicate, or the verifier disagrees with wantErr")
                path.write_text(json.dumps(vector, indent=2) + "\n", encoding="utf-8")
                written.append(path)
    return sorted(written)


def main(argv: Sequence[str]) -> int:
    out_dir = Path(argv[0]) if argv else OUT_DIR
    for stale in out_dir.rglob("*.json") if out_dir.is_dir() else []:
        stale.unlink()
    print(f"wrote {len(generate(out_dir))} vectors under {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
