"""Verify the Merkle log of a ledger: stored records against tiles and signed checkpoints.

What `verify_log` proves (each failure is one `Finding`, kinds below):

- `bad_checkpoint_signature`: a stored checkpoint is malformed, names another origin, or
  carries no valid note signature (key name = origin) by a checkpoint key of the registry that
  was valid at its size (enrolled at a position <= size, not ended at or before it).
- `truncated`: the log holds fewer entries than the largest checkpoint (truncation, rollback).
- `root_mismatch`: the RFC 6962 root recomputed from the stored records at a checkpoint's size
  differs from the signed root (a record was edited, replaced, inserted or removed).
- `inconsistent_checkpoints`: two checkpoints of one size with different roots, or two
  consecutive checkpoints that the stored log does not join and no consistency proof from the
  tiles joins either (the log signed a fork, or history was rewritten and re-signed).
- `tile_mismatch`: a tile or entry bundle on disk differs from the one recomputed from the
  stored records, or one that a checkpoint needs is missing.

The records are streamed in position order through a `TileBuilder` (the right edge of the
tree, O(256 · log n) memory), so memory stays bounded whatever the size of the log.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

from ledger.checkpoints import (
    CHECKPOINTS_DIR,
    TILES_DIR,
    PublishedCheckpoint,
    key_valid_for_size,
    list_checkpoints,
    read_checkpoint,
    signing_keys,
)
from ledger.findings import Finding, FindingKind
from ledger.ledger import Ledger
from ledger.merkle import ProofError, verify_consistency
from ledger.merkle_proofs import consistency_proof
from ledger.note import Checkpoint, NoteError, SignedNote
from ledger.registry import KeyRegistry
from ledger.store import LedgerStore
from ledger.tile_builder import TileBuilder, TileData
from ledger.tiles import (
    TILE_HEIGHT,
    TileError,
    TileHashReader,
    TileStore,
    decode_bundle,
)

__all__ = [
    "BAD_CHECKPOINT_SIGNATURE",
    "INCONSISTENT_CHECKPOINTS",
    "ROOT_MISMATCH",
    "TILE_MISMATCH",
    "TRUNCATED",
    "verify_ledger_log",
    "verify_log",
]

ROOT_MISMATCH = FindingKind.ROOT_MISMATCH.value
TRUNCATED = FindingKind.TRUNCATED.value
INCONSISTENT_CHECKPOINTS = FindingKind.INCONSISTENT_CHECKPOINTS.value
BAD_CHECKPOINT_SIGNATURE = FindingKind.BAD_CHECKPOINT_SIGNATURE.value
TILE_MISMATCH = FindingKind.TILE_MISMATCH.value


def _finding(kind: str, position: int | None, detail: str) -> Finding:
    return Finding(FindingKind(kind), position, None, None, detail)


def _quote(note: bytes) -> str:
    return note.decode("utf-8", "replace").strip().replace("\n", " | ")


def verify_ledger_log(
    ledger: Ledger, *, progress: Callable[[int], None] | None = None
) -> list[Finding]:
    """`verify_log` for an open ledger (its store, registry, origin and directory)."""
    return verify_log(
        ledger.store, ledger.registry, ledger.config.origin, ledger.directory, progress=progress
    )


def verify_log(
    store: LedgerStore,
    registry: KeyRegistry,
    origin: str,
    directory: Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> list[Finding]:
    """Check the stored log against ``directory/tiles`` and ``directory/checkpoints``.

    `registry` MUST be the key registry folded from the same log (as `Ledger` does).
    Returns the findings, empty if the log, its tiles and its checkpoints agree.
    """
    findings: list[Finding] = []
    checkpoints = _load_checkpoints(directory, origin, registry, findings)
    by_size: dict[int, list[PublishedCheckpoint]] = {}
    for cp in checkpoints:
        by_size.setdefault(cp.size, []).append(cp)
    for size, group in sorted(by_size.items()):
        if len({cp.root for cp in group}) > 1:
            findings.append(
                _finding(
                    INCONSISTENT_CHECKPOINTS,
                    size,
                    f"two checkpoints of size {size} with different roots: "
                    + " vs ".join(_quote(cp.note) for cp in group),
                )
            )
    largest = max(by_size, default=0)
    tiles = TileStore(directory / TILES_DIR)
    matches, hole, count = _replay(
        store, tiles, by_size=by_size, largest=largest, findings=findings, progress=progress
    )
    if count < largest:
        findings.append(
            _finding(
                TRUNCATED,
                count + 1,
                f"the log holds {count} entries but checkpoint {largest} was signed "
                f"({_quote(by_size[largest][0].note)}): entries {count + 1}..{largest} were "
                "removed (truncation or rollback)",
            )
        )
    _check_consecutive(tiles, by_size, {} if hole else matches, findings)
    return findings


def _load_checkpoints(
    directory: Path, origin: str, registry: KeyRegistry, findings: list[Finding]
) -> list[PublishedCheckpoint]:
    loaded = []
    for size in list_checkpoints(directory):
        try:
            loaded.append(read_checkpoint(directory, size))
        except (NoteError, OSError) as exc:
            findings.append(
                _finding(BAD_CHECKPOINT_SIGNATURE, size, f"{CHECKPOINTS_DIR}/{size}: {exc}")
            )
    latest = TileStore(directory / TILES_DIR).read_checkpoint()
    if latest is not None and all(cp.note != latest for cp in loaded):
        try:
            note = SignedNote.parse(latest)
            loaded.append(PublishedCheckpoint(latest, Checkpoint.parse_body(note.body)))
        except NoteError as exc:
            findings.append(_finding(BAD_CHECKPOINT_SIGNATURE, None, f"tiles/checkpoint: {exc}"))
    good = []
    for cp in loaded:
        where = f"checkpoint {cp.size} ({_quote(cp.note)})"
        if cp.checkpoint.origin != origin:
            findings.append(
                _finding(BAD_CHECKPOINT_SIGNATURE, cp.size, f"{where} names another log")
            )
            continue
        keys = signing_keys(cp.note, origin, registry)
        if not any(key_valid_for_size(k, cp.size) for k in keys):
            why = "by a key not valid at that size" if keys else "by no checkpoint key"
            findings.append(_finding(BAD_CHECKPOINT_SIGNATURE, cp.size, f"{where} is signed {why}"))
        good.append(cp)  # still compared: a forged checkpoint's root is evidence too
    return good


def _replay(
    store: LedgerStore,
    tiles: TileStore,
    *,
    by_size: dict[int, list[PublishedCheckpoint]],
    largest: int,
    findings: list[Finding],
    progress: Callable[[int], None] | None,
) -> tuple[dict[int, bool], bool, int]:
    """Stream the log; compare roots at checkpoint sizes and full tiles with the disk.

    Returns whether each checkpoint size's root matched, whether positions had a hole (then
    leaf indices and positions no longer agree, and no match proves consistency), and the
    number of entries.
    """
    builder = TileBuilder()
    matches: dict[int, bool] = {}
    hole = False
    for row in store.iter_log(1):
        hole = hole or row.position != builder.size + 1
        builder.append(row.record)
        for tile in builder.take_full():
            _compare(tiles, tile, full=True, needed=largest, findings=findings)
        size = builder.size
        if size in by_size:
            root = builder.root()
            matches[size] = True
            for cp in by_size[size]:
                if cp.root != root:
                    matches[size] = False
                    findings.append(
                        _finding(
                            ROOT_MISMATCH,
                            size,
                            f"the stored log at size {size} hashes to {root.hex()}, the signed "
                            f"checkpoint says {cp.root.hex()} ({_quote(cp.note)})",
                        )
                    )
        if progress is not None and size % 1000 == 0:
            progress(1000)
    if progress is not None and builder.size % 1000:
        progress(builder.size % 1000)
    for tile in builder.partial():
        _compare(tiles, tile, full=False, needed=largest, findings=findings)
    return matches, hole, builder.size


def _first_position(tile: TileData) -> int:
    level = 0 if tile.level is None else tile.level
    return (tile.index << (TILE_HEIGHT * (level + 1))) + 1


def _compare(
    tiles: TileStore, tile: TileData, *, full: bool, needed: int, findings: list[Finding]
) -> None:
    """Compare a recomputed tile (and the partial files beside it) with the disk."""
    first = _first_position(tile)
    full_rel = tile.path.split(".p/")[0]
    if full:
        path = tiles.path(tile.path)
        if not path.exists():
            level = 0 if tile.level is None else tile.level
            end = (tile.index + 1) << (TILE_HEIGHT * (level + 1))
            if end <= needed:  # a checkpoint covers it: it must have been published
                findings.append(_finding(TILE_MISMATCH, first, f"{tile.path} is missing"))
        elif path.read_bytes() != tile.data:
            findings.append(
                _finding(TILE_MISMATCH, first, f"{tile.path} differs from the stored log")
            )
    for width in tiles.partial_widths(full_rel):
        if width > tile.width:
            continue  # beyond the stored log: reported as truncation, if checkpointed
        rel = f"{full_rel}.p/{width}"
        try:
            on_disk = tiles.read(rel)
            if tile.level is None:
                same = decode_bundle(on_disk) == decode_bundle(tile.data)[:width]
            else:
                same = on_disk == tile.data[: width * 32]
        except TileError:
            same = False
        if not same:
            findings.append(_finding(TILE_MISMATCH, first, f"{rel} differs from the stored log"))


def _check_consecutive(
    tiles: TileStore,
    by_size: dict[int, list[PublishedCheckpoint]],
    matches: dict[int, bool],
    findings: list[Finding],
) -> None:
    """Each checkpoint MUST extend the previous one (stored log, else a proof from tiles)."""
    sizes = sorted(s for s in by_size if s > 0)
    for old_size, new_size in itertools.pairwise(sizes):
        if matches.get(old_size) and matches.get(new_size):
            continue  # both are prefixes of the stored log, hence of each other
        old, new = by_size[old_size][0], by_size[new_size][0]
        try:
            proof = consistency_proof(old_size, new_size, TileHashReader(tiles, new_size))
            verify_consistency(old_size, new_size, old.root, new.root, proof)
        except (ProofError, TileError) as exc:
            findings.append(
                _finding(
                    INCONSISTENT_CHECKPOINTS,
                    new_size,
                    f"checkpoint {new_size} is not shown to extend checkpoint {old_size} "
                    f"({exc}): {_quote(old.note)} vs {_quote(new.note)}",
                )
            )
