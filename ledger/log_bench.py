"""Benchmarks of the Merkle log, for `neikong bench` (figures, not assertions).

- `seal_vs_raw_sha256`: sealing rate (leaves/s: leaf hash, tile hashing, durable writes of full
  tiles and entry bundles, each fsynced, by 4 writer threads; partial tiles and a signed
  checkpoint at the end) divided by the rate of plain `hashlib.sha256(record).digest()` over
  the very same records, in the same run (medians of `runs` interleaved runs). Target: >= 0.1
  (the tree is never the bottleneck of ingest). `seal_in_memory_vs_raw_sha256` is the same
  without the files: the cost of the tree itself, apart from the disk.
- `inclusion_build_ms` / `inclusion_verify_ms`: median time to build an inclusion proof from
  the tiles on disk (a fresh `TileHashReader` each time: no warm tile cache) and to verify it,
  for random leaves of a 1,000,000-leaf tree built from synthetic leaf hashes.
  Targets: build < 2 ms, verify < 0.2 ms.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.merkle import verify_inclusion
from ledger.merkle_proofs import inclusion_proof
from ledger.note import Checkpoint, SignedNote, sign_note
from ledger.tile_builder import TileBuilder
from ledger.tiles import TileHashReader, TileStore

__all__ = ["run_log_bench", "synthetic_records"]

RECORD_BYTES = 540
"""Average size of a demo record (envelope + signature), used for synthetic records."""


def synthetic_records(count: int, *, size: int = RECORD_BYTES, seed: int = 7) -> list[bytes]:
    """`count` distinct pseudo-random records of `size` bytes."""
    rng = random.Random(seed)  # noqa: S311 - benchmark data, not secrets
    pad = rng.randbytes(size)
    return [i.to_bytes(8, "big") + pad[8:] for i in range(count)]


def _raw_sha256_rate(records: Sequence[bytes]) -> float:
    sha256 = hashlib.sha256
    started = time.perf_counter()
    for record in records:
        sha256(record).digest()
    return len(records) / (time.perf_counter() - started)


def _seal_rate(records: Sequence[bytes], directory: Path | None) -> float:
    """Leaves/s of sealing `records`: into durable tiles under `directory`, or (None) in memory."""
    store = TileStore(directory, durable=True) if directory is not None else None
    key = Ed25519PrivateKey.generate()
    started = time.perf_counter()
    builder = TileBuilder()
    for record in records:
        builder.append(record)
        if builder.size % 256 == 0:
            full = builder.take_full()
            if store is not None:
                for tile in full:
                    store.write_async(tile.path, tile.data)
    tiles = builder.take_full() + builder.partial()
    body = Checkpoint("bench/log", builder.size, builder.root()).body()
    note = SignedNote(body, (sign_note(body, "bench/log", key),)).encode()
    if store is not None:
        for tile in tiles:
            store.write_async(tile.path, tile.data)
        store.sync()
        store.write_checkpoint(note)
        store.close()
    return len(records) / (time.perf_counter() - started)


def _leaf(i: int) -> bytes:
    return hashlib.sha256(b"bench-leaf-%d" % i).digest()


def _build_tree(directory: Path, leaves: int) -> tuple[TileStore, bytes]:
    store = TileStore(directory, durable=False)
    builder = TileBuilder(entries=False)
    for i in range(leaves):
        builder.append_leaf_hash(_leaf(i))
        if builder.size % 256 == 0:
            for tile in builder.take_full():
                store.write(tile.path, tile.data)
    for tile in builder.take_full() + builder.partial():
        store.write(tile.path, tile.data)
    return store, builder.root()


def _inclusion_times(
    store: TileStore, root: bytes, leaves: int, samples: int, seed: int
) -> tuple[float, float]:
    rng = random.Random(seed)  # noqa: S311 - benchmark sampling
    build, check = [], []
    for index in (rng.randrange(leaves) for _ in range(samples)):
        leaf = _leaf(index)
        started = time.perf_counter()
        proof = inclusion_proof(index, leaves, TileHashReader(store, leaves))
        built = time.perf_counter()
        verify_inclusion(index, leaves, leaf, proof, root)
        done = time.perf_counter()
        build.append(built - started)
        check.append(done - built)
    return statistics.median(build) * 1e3, statistics.median(check) * 1e3


def run_log_bench(
    *,
    records: Sequence[bytes] | None = None,
    record_count: int = 100_000,
    leaves: int = 1_000_000,
    samples: int = 200,
    runs: int = 3,
    work_dir: Path | None = None,
    seed: int = 7,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run the log benchmarks in a scratch directory (removed afterwards); return the figures.

    `records` are the records to seal (e.g. the ones the ingest benchmark signed); by default
    `record_count` synthetic records of the demo's average size.
    """
    data = list(records) if records is not None else synthetic_records(record_count, seed=seed)
    scratch = Path(tempfile.mkdtemp(prefix="neikong-log-bench-", dir=work_dir))
    try:
        log(f"log bench: raw SHA-256 and sealing of {len(data)} records (median of {runs})…")
        raw, sealed, in_memory = [], [], []
        for run in range(runs):
            raw.append(_raw_sha256_rate(data))
            sealed.append(_seal_rate(data, scratch / f"sealed-{run}"))
            in_memory.append(_seal_rate(data, None))
        log(f"log bench: building a {leaves}-leaf tree of tiles (not timed)…")
        started = time.perf_counter()
        store, root = _build_tree(scratch / "tree", leaves)
        tree_seconds = time.perf_counter() - started
        log(f"log bench: {samples} inclusion proofs from tiles…")
        build_ms, verify_ms = _inclusion_times(store, root, leaves, samples, seed)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    raw_rate, seal_rate, memory_rate = (statistics.median(x) for x in (raw, sealed, in_memory))
    return {
        "seal_records": len(data),
        "raw_sha256_per_s": round(raw_rate),
        "seal_leaves_per_s": round(seal_rate),
        "seal_vs_raw_sha256": round(seal_rate / raw_rate, 3),
        "seal_in_memory_leaves_per_s": round(memory_rate),
        "seal_in_memory_vs_raw_sha256": round(memory_rate / raw_rate, 3),
        "inclusion_tree_leaves": leaves,
        "inclusion_tree_build_s": round(tree_seconds, 2),
        "inclusion_build_ms": round(build_ms, 4),
        "inclusion_verify_ms": round(verify_ms, 4),
    }
