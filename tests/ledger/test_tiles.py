"""C2SP tlog-tiles on disk: path encoding, layout, immutability, resume, proofs from tiles."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle_proofs as mp
from ledger.merkle import (
    EMPTY_ROOT,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
    verify_multi_inclusion,
)
from ledger.tile_builder import TileBuilder
from ledger.tiles import (
    MAX_ENTRY_SIZE,
    TileConflict,
    TileError,
    TileHashReader,
    TileStore,
    decode_bundle,
    encode_bundle,
    entries_path,
    index_path,
    partial_tiles,
    tile_path,
)


def _records(n: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randrange(0, 90)) + i.to_bytes(4, "big") for i in range(n)]


def _seal(
    store: TileStore,
    records: list[bytes],
    builder: TileBuilder | None = None,
    publish_every: int | None = None,
) -> TileBuilder:
    builder = builder or TileBuilder()
    for record in records:
        builder.append(record)
        for tile in builder.take_full():
            store.write(tile.path, tile.data)
        if publish_every and builder.size % publish_every == 0:
            for tile in builder.partial():
                store.write(tile.path, tile.data)
    for tile in builder.partial():
        store.write(tile.path, tile.data)
    store.sync()
    return builder


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


# --- paths and encodings --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "path"),
    [
        (0, "000"),
        (7, "007"),
        (999, "999"),
        (1000, "x001/000"),
        (1234067, "x001/x234/067"),
        (10**9, "x001/x000/x000/000"),
    ],
)
def test_index_path_uses_x_prefixed_three_digit_elements(index: int, path: str) -> None:
    assert index_path(index) == path


def test_tile_and_entry_paths() -> None:
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(2, 3, 17) == "tile/2/003.p/17"
    assert entries_path(1000) == "tile/entries/x001/000"
    assert entries_path(0, 255) == "tile/entries/000.p/255"
    with pytest.raises(ValueError, match="width"):
        tile_path(0, 0, 0)
    with pytest.raises(ValueError, match="width"):
        tile_path(0, 0, 257)
    with pytest.raises(ValueError, match="level"):
        tile_path(64, 0)
    with pytest.raises(ValueError, match="negative"):
        index_path(-1)


def test_partial_tiles_match_the_c2sp_examples() -> None:
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level
    # 0 tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and one
    # partial level 2 tile of width 1" and "a tree of size 256 … a partial level 1 tile of
    # width 1".
    assert partial_tiles(70_000) == [(0, 273, 112), (1, 1, 17), (2, 0, 1)]
    assert partial_tiles(256) == [(1, 0, 1)]
    assert partial_tiles(0) == []
    assert partial_tiles(65_536) == [(2, 0, 1)]


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_bundle_round_trips(records: list[bytes]) -> None:
    assert decode_bundle(encode_bundle(records)) == records


def test_bundle_holds_records_up_to_65535_bytes() -> None:
    big = b"\xab" * MAX_ENTRY_SIZE
    data = encode_bundle([big, b""])
    assert data[:2] == b"\xff\xff"
    assert decode_bundle(data) == [big, b""]
    with pytest.raises(TileError, match="65535"):
        encode_bundle([big + b"!"])
    with pytest.raises(TileError, match="65535"):
        TileBuilder().append(big + b"!")


@pytest.mark.parametrize("cut", [1, 3, 5])
def test_truncated_bundle_is_rejected(cut: int) -> None:
    with pytest.raises(TileError, match="truncated"):
        decode_bundle(encode_bundle([b"abcd", b"ef"])[:-cut])


# --- layout on disk -------------------------------------------------------------------------


def test_layout_of_a_70000_entry_log(tmp_path: Path) -> None:
    store = TileStore(tmp_path, durable=False)
    builder = _seal(store, [i.to_bytes(3, "big") for i in range(70_000)])
    files = _files(tmp_path)
    level0 = {f for f in files if f.startswith("tile/0/") and ".p/" not in f}
    assert len(level0) == 273
    assert "tile/0/272" in files
    assert "tile/0/273.p/112" in files
    assert {f for f in files if f.startswith("tile/1/")} == {"tile/1/000", "tile/1/001.p/17"}
    assert {f for f in files if f.startswith("tile/2/")} == {"tile/2/000.p/1"}
    assert len([f for f in files if f.startswith("tile/entries/")]) == 274
    assert os.path.getsize(tmp_path / "tile/0/000") == 8192
    assert os.path.getsize(tmp_path / "tile/0/273.p/112") == 112 * 32
    assert not [f for f in files if ".tmp-" in f]
    # level-1 hash i is the MTH of level-0 tile i; level-0 tile holds the leaf hashes
    tile0 = (tmp_path / "tile/0/005").read_bytes()
    assert tile0[:32] == leaf_hash((5 * 256).to_bytes(3, "big"))
    hashes = [tile0[i : i + 32] for i in range(0, 8192, 32)]
    assert (tmp_path / "tile/1/000").read_bytes()[5 * 32 : 6 * 32] == root_from_leaf_hashes(hashes)
    bundle = decode_bundle((tmp_path / "tile/entries/005").read_bytes())
    assert [leaf_hash(r) for r in bundle] == hashes
    assert builder.root() == root_from_leaf_hashes(
        [leaf_hash(i.to_bytes(3, "big")) for i in range(70_000)]
    )


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 1100))
def test_builder_root_equals_rfc6962_root(n: int) -> None:
    records = _records(n)
    builder = TileBuilder()
    for r in records:
        builder.append(r)
    assert builder.root() == root_from_leaf_hashes([leaf_hash(r) for r in records])
    assert builder.frontier().root() == builder.root()
    if n == 0:
        assert builder.root() == EMPTY_ROOT


def test_leaf_hash_only_builder_writes_no_bundles(tmp_path: Path) -> None:
    builder = TileBuilder(entries=False)
    for i in range(600):
        builder.append_leaf_hash(hashlib.sha256(i.to_bytes(4, "big")).digest())
    written = [t.path for t in builder.take_full() + builder.partial()]
    assert written == ["tile/0/000", "tile/0/001", "tile/0/002.p/88", "tile/1/000.p/2"]


# --- immutability and atomic writes ---------------------------------------------------------


def test_a_written_tile_is_never_rewritten(tmp_path: Path) -> None:
    store = TileStore(tmp_path)
    _seal(store, _records(300))
    target = tmp_path / "tile/0/000"
    before = target.stat()
    original = target.read_bytes()
    assert store.write("tile/0/000", original) is False  # same bytes: no write at all
    assert target.stat().st_ino == before.st_ino
    assert target.stat().st_mtime_ns == before.st_mtime_ns
    changed = bytes([original[0] ^ 1]) + original[1:]
    with pytest.raises(TileConflict, match="never rewritten") as info:
        store.write("tile/0/000", changed)
    assert info.value.existing == hashlib.sha256(original).digest()
    assert info.value.new == hashlib.sha256(changed).digest()
    assert target.read_bytes() == original
    with pytest.raises(TileConflict):
        store.write("tile/entries/001.p/44", b"\x00\x01x")
    assert not list(tmp_path.rglob(".tmp-*"))


def test_resealing_the_same_log_writes_nothing(tmp_path: Path) -> None:
    store = TileStore(tmp_path)
    records = _records(1000)
    _seal(store, records)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    _seal(store, records)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == stamps


def test_resealing_a_changed_log_is_refused(tmp_path: Path) -> None:
    store = TileStore(tmp_path)
    records = _records(600)
    _seal(store, records)
    records[10] = b"forged"
    with pytest.raises(TileConflict, match=r"tile/(entries|0)/000"):
        _seal(TileStore(tmp_path), records)


def test_checkpoint_file_is_replaced_atomically(tmp_path: Path) -> None:
    store = TileStore(tmp_path)
    assert store.read_checkpoint() is None
    store.write_checkpoint(b"one\n")
    store.write_checkpoint(b"two\n")
    assert store.read_checkpoint() == b"two\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


# --- resume ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 255, 256, 257, 700, 65_535, 65_536, 65_537])
def test_resume_from_tiles_equals_an_uninterrupted_run(tmp_path: Path, cut: int) -> None:
    records = [i.to_bytes(4, "big") for i in range(cut + 300)]
    first = TileStore(tmp_path / "a", durable=False)
    _seal(first, records[:cut])
    resumed = TileBuilder.resume(first, cut)
    assert resumed.size == cut
    assert resumed.root() == root_from_leaf_hashes([leaf_hash(r) for r in records[:cut]])
    _seal(first, records[cut:], resumed)
    straight = TileStore(tmp_path / "b", durable=False)
    _seal(straight, records)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    full = {f for f in b if ".p/" not in f}
    assert full <= a
    for f in full:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_resume_detects_an_edited_partial_bundle(tmp_path: Path) -> None:
    store = TileStore(tmp_path)
    _seal(store, _records(300))
    (tmp_path / "tile/entries/001.p/44").write_bytes(encode_bundle([b"x"] * 44))
    with pytest.raises(TileError, match="does not hash to its leaf"):
        TileBuilder.resume(store, 300)


def test_builder_rejects_an_edge_that_does_not_fit_the_size() -> None:
    with pytest.raises(ValueError, match="edge level 0"):
        TileBuilder(3, [[b"\x00" * 32]], [b"a", b"b", b"c"])
    with pytest.raises(ValueError, match="bundle"):
        TileBuilder(1, [[b"\x00" * 32]], [])


# --- proofs from tiles ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> tuple[TileStore, list[bytes], list[int]]:
    """A 70,000-leaf tiled log with partial tiles kept at every 5,000th size (and size 1)."""
    root = tmp_path_factory.mktemp("tiles")
    store = TileStore(root, durable=False)
    records = _records(70_000, seed=3)
    _seal(store, records[:1])
    _seal(store, records[1:], TileBuilder.resume(store, 1), publish_every=5_000)
    leaves = [leaf_hash(r) for r in records]
    return store, leaves, [1, 5_000, 65_000, 70_000]


def test_tile_proofs_equal_in_memory_proofs_and_verify(
    sealed: tuple[TileStore, list[bytes], list[int]],
) -> None:
    store, leaves, sizes = sealed
    rng = random.Random(1)
    for size in sizes:
        reader = TileHashReader(store, size)
        memory = mp.MemoryHashReader(leaves[:size])
        root = root_from_leaf_hashes(leaves[:size])
        assert mp.tree_root(size, reader) == root
        for index in {0, size - 1, *rng.choices(range(size), k=5)}:
            proof = mp.inclusion_proof(index, size, reader)
            assert proof == mp.inclusion_proof(index, size, memory)
            verify_inclusion(index, size, leaves[index], proof, root)
        for old in [1, 255, 256, 257, *rng.choices(range(1, size + 1), k=4)]:
            old = min(old, size)
            proof = mp.consistency_proof(old, size, reader)
            assert proof == mp.consistency_proof(old, size, memory)
            verify_consistency(old, size, root_from_leaf_hashes(leaves[:old]), root, proof)
        picks = rng.choices(range(size), k=9)
        proof = mp.multi_inclusion_proof(picks, size, reader)
        assert proof == mp.multi_inclusion_proof(picks, size, memory)
        verify_multi_inclusion({i: leaves[i] for i in picks}, size, proof, root)
        assert mp.compact_range_at(size, reader).root() == root


def test_a_proof_costs_a_logarithmic_number_of_tile_reads(
    sealed: tuple[TileStore, list[bytes], list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _leaves, _ = sealed
    reads: list[tuple[int, int, int]] = []
    original = TileStore.read_tile

    def counting(self: TileStore, level: int, index: int, width: int = 256) -> bytes:
        reads.append((level, index, width))
        return original(self, level, index, width)

    monkeypatch.setattr(TileStore, "read_tile", counting)
    for index in (0, 12_345, 69_999):
        reads.clear()
        mp.inclusion_proof(index, 70_000, TileHashReader(store, 70_000))
        assert len(reads) <= 2 * 3  # at most the leaf's tile and the right edge, per level
        assert len(reads) == len(set(reads))


def test_entries_read_back_and_are_checked(
    sealed: tuple[TileStore, list[bytes], list[int]],
) -> None:
    store, leaves, _ = sealed
    reader = TileHashReader(store, 70_000)
    for index in (0, 255, 256, 69_999):
        assert leaf_hash(reader.entry(index)) == leaves[index]
    old = TileHashReader(store, 5_000)  # an old size still reads its partial tiles
    assert leaf_hash(old.entry(4_999)) == leaves[4_999]
    with pytest.raises(ValueError, match="no entry"):
        old.entry(5_000)


def test_reader_refuses_what_it_does_not_hold(tmp_path: Path) -> None:
    store = TileStore(tmp_path)
    _seal(store, _records(600))
    reader = TileHashReader(store, 600)
    with pytest.raises(ValueError, match="beyond"):
        reader.subtree_hash(512, 1024)
    with pytest.raises(ValueError, match="perfect aligned"):
        reader.subtree_hash(1, 3)
    with pytest.raises(TileError, match="missing"):
        TileHashReader(store, 700).subtree_hash(600, 601)
    (tmp_path / "tile/0/001").write_bytes(b"\x00" * 100)
    with pytest.raises(TileError, match="100 bytes"):
        TileHashReader(store, 600).subtree_hash(256, 257)
    bundle = tmp_path / "tile/entries/000"
    records = decode_bundle(bundle.read_bytes())
    records[3] = b"edited"
    bundle.write_bytes(encode_bundle(records))
    with pytest.raises(TileError, match="does not hash"):
        reader.entry(3)


def test_background_writes_surface_conflicts_at_wait(tmp_path: Path) -> None:
    store = TileStore(tmp_path, durable=False)
    store.write("tile/0/000", b"\x00" * 8192)
    store.write_async("tile/0/001", b"\x01" * 8192)
    store.write_async("tile/0/000", b"\x02" * 8192)
    with pytest.raises(TileConflict, match="tile/0/000"):
        store.sync()
    store.close()
    assert (tmp_path / "tile/0/001").read_bytes() == b"\x01" * 8192
    assert (tmp_path / "tile/0/000").read_bytes() == b"\x00" * 8192


def test_log_bench_reports_the_figures_neikong_bench_needs(tmp_path: Path) -> None:
    from ledger.log_bench import run_log_bench

    figures = run_log_bench(record_count=3000, leaves=5000, samples=5, runs=1, work_dir=tmp_path)
    for key in ("seal_vs_raw_sha256", "inclusion_build_ms", "inclusion_verify_ms"):
        assert figures[key] > 0
    assert list(tmp_path.iterdir()) == []  # the scratch directory is removed
