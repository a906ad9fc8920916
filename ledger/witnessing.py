"""The ledger's side of witnessing: submitting checkpoints to its witnesses, keeping cosignatures.

Layout (inside the ledger directory)::

    DIR/witnesses.json               the witnesses this ledger uses (`ledger.witness_config`)
    DIR/checkpoints/<size>           the checkpoint as the sealer signed it (never written here)
    DIR/checkpoints/<size>.cosigned  the same note followed by the witnesses' cosignatures
    DIR/cosign.lock                  held (flock) while a `.cosigned` file is merged and replaced

Guarantees:

- A cosignature is stored only after `ledger.note.verify_cosignature` accepted it against the
  configured vkey of the witness that returned it; anything else a witness answers is dropped.
- `<size>.cosigned` holds the body and every signature line of `<size>` unchanged (the log's
  own signature is never lost), then at most one cosignature per witness key. It is replaced
  atomically (temporary file, fsync, rename, fsync of the directory) and only ever grows.
- A 409 from a witness (it last cosigned another size) is answered by resending from the
  witness's size with a new consistency proof; a witness that holds another root for the same
  size, or refuses the proof, is tamper evidence (`CosignFailure.tamper`).

`ledger/` must not import `ops/`: the HTTP client is passed in as `submit` (in production
`ops.witness_server.submit_checkpoint`; in tests an in-process `Witness`). Checking the stored
cosignatures afterwards is `ledger.cosign_verify`.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ledger.checkpoints import CHECKPOINTS_DIR, TILES_DIR, list_checkpoints
from ledger.errors import NeikongError
from ledger.files import replace_atomically
from ledger.merkle_proofs import consistency_proof
from ledger.note import Checkpoint, NoteError, NoteSignature, SignedNote
from ledger.tiles import TileHashReader, TileStore
from ledger.witness import WitnessBadProof, WitnessConflict, WitnessError, WitnessUnavailable
from ledger.witness_config import ConfiguredWitness, load_witnesses

__all__ = [
    "COSIGNED_SUFFIX",
    "CosignFailure",
    "CosignIncomplete",
    "ProofProvider",
    "Submitter",
    "cosign_checkpoint",
    "cosigned_path",
    "last_cosigned_size",
    "read_cosigned",
    "tile_proof_provider",
]

COSIGNED_SUFFIX = ".cosigned"
LOCK_FILE = "cosign.lock"
MAX_ATTEMPTS = 3

Submitter = Callable[[str, int, Sequence[bytes], bytes], list[NoteSignature]]
"""(witness URL, old size, consistency proof, signed checkpoint) -> cosignature lines."""

ProofProvider = Callable[[int, int], list[bytes]]
"""(old size, new size) -> RFC 9162 consistency proof, for 0 < old < new."""


@dataclass(frozen=True)
class CosignFailure:
    """Why one witness did not cosign. `tamper`: the witness saw a history we contradict."""

    witness: str
    kind: str  # unreachable | refused | ahead | conflict | bad_proof | bad_cosignature
    detail: str

    @property
    def tamper(self) -> bool:
        return self.kind in ("conflict", "bad_proof", "bad_cosignature")


class CosignIncomplete(NeikongError, RuntimeError):
    """Some witnesses did not cosign. `note` is what was stored (or None), `failures` why."""

    def __init__(self, note: SignedNote | None, failures: Sequence[CosignFailure]) -> None:
        super().__init__("; ".join(f"witness {f.witness}: {f.kind}: {f.detail}" for f in failures))
        self.note = note
        self.failures = list(failures)


# --- stored cosigned checkpoints --------------------------------------------------------------


def cosigned_path(ledger_dir: Path, size: int) -> Path:
    return ledger_dir / CHECKPOINTS_DIR / f"{size}{COSIGNED_SUFFIX}"


def read_cosigned(ledger_dir: Path, size: int) -> SignedNote | None:
    """The stored cosigned checkpoint of `size`, if any (unverified)."""
    try:
        return SignedNote.parse(cosigned_path(ledger_dir, size).read_bytes())
    except FileNotFoundError:
        return None


def last_cosigned_size(ledger_dir: Path, witness: ConfiguredWitness) -> int:
    """The largest checkpoint size carrying a valid cosignature by `witness` (0 if none)."""
    for size in reversed(list_checkpoints(ledger_dir)):
        try:
            note = read_cosigned(ledger_dir, size)
        except NoteError:
            continue
        key = witness.key
        if note and any(key.owns(s) and key.verifies(note.body, s) for s in note.signatures):
            return size
    return 0


def tile_proof_provider(ledger_dir: Path, new_size: int) -> ProofProvider:
    """Consistency proofs to `new_size` read from the ledger's tiles (O(log n) tile reads)."""
    reader = TileHashReader(TileStore(ledger_dir / TILES_DIR), new_size)

    def provide(old: int, new: int) -> list[bytes]:
        if new != new_size:
            raise ValueError(f"this provider proves consistency to size {new_size}, not {new}")
        return consistency_proof(old, new, reader)

    return provide


# --- cosigning --------------------------------------------------------------------------------


def cosign_checkpoint(
    ledger_dir: Path,
    signed_checkpoint: bytes,
    previous_size: int | None,
    proof_provider: ProofProvider,
    *,
    submit: Submitter,
    witnesses: Sequence[ConfiguredWitness] | None = None,
) -> SignedNote:
    """Submit a published checkpoint to every witness; store and return the cosigned note.

    `signed_checkpoint` MUST have the body of DIR/checkpoints/<size>. `previous_size` is the
    size to submit as `old` (None: per witness, the last size it cosigned here, and a witness
    whose cosignature of this checkpoint is already stored is skipped); a 409 resends from the
    witness's size. Returns the stored note (all verified cosignatures so far); raises
    `CosignIncomplete` (after storing what was obtained) if any witness did not cosign.
    """
    plain = SignedNote.parse(signed_checkpoint)
    size = Checkpoint.parse_body(plain.body).size
    stored = SignedNote.parse((ledger_dir / CHECKPOINTS_DIR / str(size)).read_bytes())
    if stored.body != plain.body:
        raise ValueError(f"the note is not the published checkpoint {size} of this ledger")
    configured = load_witnesses(ledger_dir) if witnesses is None else list(witnesses)
    gathered: list[NoteSignature] = []
    failures: list[CosignFailure] = []
    for witness in configured:
        old = previous_size
        if old is None:
            old = last_cosigned_size(ledger_dir, witness)
            if old == size:  # its cosignature of this checkpoint is stored already
                continue
        try:
            gathered.append(
                _cosign_one(
                    witness, stored, size, old, proof_provider=proof_provider, submit=submit
                )
            )
        except _Failed as exc:
            failures.append(exc.failure)
    note = _merge(ledger_dir, size, stored, gathered)
    if failures:
        raise CosignIncomplete(note, failures)
    return note


class _Failed(Exception):
    def __init__(self, failure: CosignFailure) -> None:
        super().__init__(failure.detail)
        self.failure = failure


def _cosign_one(
    witness: ConfiguredWitness,
    note: SignedNote,
    size: int,
    old: int,
    *,
    proof_provider: ProofProvider,
    submit: Submitter,
) -> NoteSignature:
    def fail(kind: str, detail: str) -> _Failed:
        return _Failed(CosignFailure(witness.name, kind, detail))

    for _ in range(MAX_ATTEMPTS):
        if old > size:
            raise fail("ahead", f"the witness already cosigned size {old} > {size}")
        proof = proof_provider(old, size) if 0 < old < size else []
        try:
            lines = submit(witness.url, old, proof, note.encode())
        except WitnessConflict as exc:
            if exc.current_size == old:  # same size, another root: the witness saw a fork
                raise fail("conflict", f"size {old}: {exc}") from exc
            old = exc.current_size
            continue
        except WitnessBadProof as exc:
            raise fail("bad_proof", str(exc)) from exc
        except WitnessUnavailable as exc:
            raise fail("unreachable", str(exc)) from exc
        except WitnessError as exc:
            raise fail("refused", str(exc)) from exc
        key = witness.key
        for sig in lines:
            if key.owns(sig) and key.verifies(note.body, sig):
                return sig
        raise fail("bad_cosignature", f"no valid cosignature by {witness.vkey.split('+')[0]}")
    raise fail("refused", f"still conflicting after {MAX_ATTEMPTS} attempts")


def _merge(
    ledger_dir: Path, size: int, stored: SignedNote, gathered: Sequence[NoteSignature]
) -> SignedNote:
    """Add verified cosignatures to `<size>.cosigned` (one per key; existing ones stay).

    With nothing to add, the stored note is returned (the plain checkpoint if none)."""
    with _lock(ledger_dir):
        try:
            current = read_cosigned(ledger_dir, size)
        except NoteError:
            current = None
        if current is None or current.body != stored.body:
            current = stored
        if not gathered:
            return current
        keep = list(current.signatures)
        for sig in stored.signatures:  # the log's own signature(s), whatever was there
            if sig not in keep:
                keep.insert(0, sig)
        for sig in gathered:
            if all((s.name, s.key_hash) != (sig.name, sig.key_hash) for s in keep):
                keep.append(sig)
        note = SignedNote(stored.body, tuple(keep))
        replace_atomically(cosigned_path(ledger_dir, size), note.encode())
        return note


@contextmanager
def _lock(ledger_dir: Path) -> Iterator[None]:
    fd = os.open(ledger_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
