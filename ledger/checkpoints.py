"""Published checkpoints on disk, and which checkpoint keys may have signed them.

On-disk layout (inside the ledger directory)::

    DIR/tiles/                   the static tlog-tiles tree (see `ledger.tiles`)
    DIR/tiles/checkpoint         the latest checkpoint (signed note), replaced atomically
    DIR/checkpoints/<size>       every checkpoint ever published, one immutable file per size

A checkpoint is a C2SP tlog-checkpoint (origin = the ledger's origin, tree size, base64 root)
signed as a C2SP signed note by the ledger's checkpoint key under the key name = origin. The
sealer (`ledger.sealer`) writes these files; everything here only reads them.

Guarantees:

- `list_checkpoints` lists only names that are canonical decimal sizes (no sign, no leading
  zeros); anything else in ``checkpoints/`` is ignored, never parsed.
- `read_checkpoint` MUST raise `NoteError` (never return) for a file that is not a signed note
  of a checkpoint of exactly the size in its name.
- `signing_keys` returns only registry keys of purpose `checkpoint` whose signature on the note
  verifies under the key name `origin`; it does not judge the size. Whether such a key was
  allowed to sign that size is `key_valid_for_size` (its enrolment included, its end not).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ledger.note import Checkpoint, NoteError, SignedNote, verify_note_signature
from ledger.registry import KeyEntry, KeyRegistry

__all__ = [
    "CHECKPOINTS_DIR",
    "CHECKPOINT_PURPOSE",
    "TILES_DIR",
    "PublishedCheckpoint",
    "checkpoint_keys",
    "key_valid_for_size",
    "list_checkpoints",
    "read_checkpoint",
    "signing_keys",
]

TILES_DIR = "tiles"
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_PURPOSE = "checkpoint"


@dataclass(frozen=True)
class PublishedCheckpoint:
    """A checkpoint file: the signed note bytes and its parsed body."""

    note: bytes
    checkpoint: Checkpoint

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root


def list_checkpoints(directory: Path) -> list[int]:
    """Sizes of the checkpoints stored under ``directory/checkpoints``, ascending."""
    try:
        names = os.listdir(directory / CHECKPOINTS_DIR)
    except FileNotFoundError:
        return []
    return sorted(int(n) for n in names if n.isdigit() and str(int(n)) == n)


def read_checkpoint(directory: Path, size: int) -> PublishedCheckpoint:
    """Read and parse ``checkpoints/<size>``; raises `NoteError` if it is not a checkpoint."""
    note = (directory / CHECKPOINTS_DIR / str(size)).read_bytes()
    checkpoint = Checkpoint.parse_body(SignedNote.parse(note).body)
    if checkpoint.size != size:
        raise NoteError(f"checkpoints/{size} holds a checkpoint of size {checkpoint.size}")
    return PublishedCheckpoint(note, checkpoint)


def checkpoint_keys(registry: KeyRegistry) -> list[KeyEntry]:
    """Every key of purpose `checkpoint` the registry ever enrolled (active or not)."""
    return [e for e in registry.keys.values() if e.purpose == CHECKPOINT_PURPOSE]


def key_valid_for_size(entry: KeyEntry, size: int) -> bool:
    """A checkpoint key may sign sizes that include its enrolment and not its end."""
    return entry.enrolled_at <= size and (entry.ended_at is None or size < entry.ended_at)


def signing_keys(note: bytes, origin: str, registry: KeyRegistry) -> list[KeyEntry]:
    """The checkpoint keys whose valid note signature (key name = origin) `note` carries."""
    parsed = SignedNote.parse(note)
    return [
        entry
        for entry in checkpoint_keys(registry)
        if any(
            verify_note_signature(parsed.body, sig, origin, entry.public_raw)
            for sig in parsed.signatures
        )
    ]
