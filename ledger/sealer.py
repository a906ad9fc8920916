"""The sealer: follows the log, writes C2SP tiles and publishes signed checkpoints.

On-disk layout (inside the ledger directory)::

    DIR/tiles/                   the static tlog-tiles tree (see `ledger.tiles`)
    DIR/tiles/checkpoint         the latest checkpoint (signed note), replaced atomically
    DIR/checkpoints/<size>       every checkpoint ever published, one immutable file per size
    DIR/sealer.lock              held (flock) by the one running sealer
    DIR/keys/checkpoint.key      the checkpoint key (`ensure_checkpoint_key`)

A checkpoint is a C2SP tlog-checkpoint (origin = the ledger's origin, tree size, base64 root)
signed as a C2SP signed note by the ledger's checkpoint key under the key name = origin. Reading
published checkpoints and checking who signed them is `ledger.checkpoints`; this module writes.

Guarantees:

- The Merkle leaf of position p is leaf p-1, the RFC 6962 leaf hash of the exact stored record.
- Before a checkpoint is signed, its tiles and bundles are durable (fsynced files and
  directories) and the root read back from the tiles equals the root computed in memory.
- The sealer MUST NOT sign two inconsistent checkpoints: before signing size n it verifies an
  RFC 9162 consistency proof, built from its own tiles, from the last published checkpoint to
  n, and raises `InconsistentCheckpoint` (signing nothing) if it fails. A log that became
  shorter than the last checkpoint, or that has a hole in its positions, stops the sealer.
- Crash and restart: the sealer resumes at the last published checkpoint from the partial tiles
  of that size (O(log n) reads, no rehashing of the tree), checks the rebuilt root against the
  signed one, and re-derives anything written after it; full tiles that already exist are
  compared, never rewritten. If those partial tiles are gone it rebuilds from position 1,
  refusing on the first tile whose bytes would change.
- A checkpoint is only signed by an active key of purpose `checkpoint`, and only at sizes that
  include the key's enrolment.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ledger.checkpoints import (
    CHECKPOINT_PURPOSE,
    CHECKPOINTS_DIR,
    TILES_DIR,
    PublishedCheckpoint,
    list_checkpoints,
    read_checkpoint,
    signing_keys,
)
from ledger.errors import NeikongError, VerificationError
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.merkle import ProofError, verify_consistency
from ledger.merkle_proofs import consistency_proof, tree_root
from ledger.note import Checkpoint, NoteError, SignedNote, sign_note
from ledger.registry import KeyScope
from ledger.registry_fold import load_registry
from ledger.tile_builder import TileBuilder
from ledger.tiles import TileError, TileHashReader, TileStore

__all__ = [
    "CHECKPOINT_KEY_NAME",
    "CHECKPOINT_SCOPE",
    "InconsistentCheckpoint",
    "SealRefused",
    "Sealer",
    "SealerError",
    "ensure_checkpoint_key",
]

log = logging.getLogger(__name__)

LOCK_FILE = "sealer.lock"
CHECKPOINT_KEY_NAME = "checkpoint"
CHECKPOINT_SCOPE = KeyScope("neikong-ledger", ("ledger/",), ("ledger.checkpoint",))


class SealerError(NeikongError, RuntimeError):
    """The sealer cannot run (another sealer holds the lock, the key is not usable)."""


class SealRefused(VerificationError):
    """Tamper evidence stops the sealer: the log shrank or has a hole, or the tiles on disk
    no longer hash to what was signed. Nothing is signed; run `neikong verify`."""


class InconsistentCheckpoint(VerificationError):
    """The next checkpoint would not extend the last published one; nothing was signed.

    `published` is the last signed note, `candidate` the unsigned body that was refused.
    """

    def __init__(self, message: str, published: bytes, candidate: bytes) -> None:
        super().__init__(message)
        self.published = published
        self.candidate = candidate


# --- the checkpoint key ---------------------------------------------------------------


def ensure_checkpoint_key(ledger: Ledger) -> Signer:
    """Load ``keys/checkpoint.key``, creating and enrolling it on first use.

    Raises `SealerError` if the key exists but was rotated or revoked.
    """
    path = ledger.key_path(CHECKPOINT_KEY_NAME)
    if not path.exists():
        ledger.enrol_key(
            CHECKPOINT_KEY_NAME,
            CHECKPOINT_PURPOSE,
            CHECKPOINT_SCOPE,
            note="the ledger's checkpoint key (signs tlog checkpoints)",
        )
    signer = Signer.from_file(path)
    entry = ledger.registry.lookup(signer.key_id)
    if entry is None:
        ledger.enrol_key(
            CHECKPOINT_KEY_NAME, CHECKPOINT_PURPOSE, CHECKPOINT_SCOPE, public_raw=signer.public_raw
        )
    elif entry.purpose != CHECKPOINT_PURPOSE or entry.ended_at is not None:
        raise SealerError(
            f"{path} is enrolled as a {entry.purpose!r} key that is {entry.end_reason or 'active'}"
            "; move it away and run `neikong seal` again to enrol a new checkpoint key"
        )
    return signer


# --- the sealer -----------------------------------------------------------------------------


class Sealer:
    """Follows one ledger's log into tiles and checkpoints (one sealer per ledger at a time).

    `every_entries` and `every_seconds` set when a checkpoint is published: as soon as that
    many new entries are sealed, or when that much time has passed with new entries.
    """

    def __init__(
        self,
        ledger: Ledger,
        checkpoint_signer: Signer,
        *,
        every_entries: int = 1000,
        every_seconds: float = 10.0,
        durable: bool = True,
        on_publish: Callable[[PublishedCheckpoint], None] | None = None,
    ) -> None:
        if every_entries < 1 or every_seconds <= 0:
            raise ValueError("every_entries must be >= 1 and every_seconds > 0")
        self.ledger = ledger
        self.signer = checkpoint_signer
        self.origin = ledger.config.origin
        self.every_entries = every_entries
        self.every_seconds = every_seconds
        self.on_publish = on_publish
        self.tiles = TileStore(ledger.directory / TILES_DIR, durable=durable)
        self.checkpoints = TileStore(ledger.directory / CHECKPOINTS_DIR, durable=durable)
        self._lock_fd = _acquire_lock(ledger.directory / LOCK_FILE)
        try:
            self.latest = self._load_latest()
            self._builder = self._resume()
        except BaseException:
            self.close()
            raise
        self._last_publish = time.monotonic()

    def close(self) -> None:
        try:
            self.tiles.close()
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Sealer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        try:
            self.tiles.close()
        except Exception:
            if exc_type is None:
                raise  # a failed tile write; with another error in flight, that one wins
        finally:
            self._release()

    @property
    def size(self) -> int:
        """Leaves sealed into tiles so far (may run ahead of the latest checkpoint)."""
        return self._builder.size

    # -- start-up -------------------------------------------------------------------------

    def _load_latest(self) -> PublishedCheckpoint | None:
        """The last published checkpoint: the largest of checkpoints/ and tiles/checkpoint."""
        found = []
        sizes = list_checkpoints(self.ledger.directory)
        try:
            if sizes:
                found.append(read_checkpoint(self.ledger.directory, sizes[-1]))
            served = self.tiles.read_checkpoint()
            if served is not None:
                body = SignedNote.parse(served).body
                found.append(PublishedCheckpoint(served, Checkpoint.parse_body(body)))
        except NoteError as exc:
            raise SealRefused(
                f"a stored checkpoint is malformed ({exc}); run `neikong verify`"
            ) from exc
        if not found:
            return None
        latest = max(found, key=lambda cp: cp.size)
        if any(cp.size == latest.size and cp.note != latest.note for cp in found):
            raise SealRefused(
                f"checkpoints/{latest.size} and tiles/checkpoint differ; run `neikong verify`"
            )
        self._refresh_registry()
        if latest.checkpoint.origin != self.origin or not signing_keys(
            latest.note, self.origin, self.ledger.registry
        ):
            raise SealRefused(
                f"checkpoint {latest.size} is not a checkpoint of {self.origin!r} signed by a "
                "checkpoint key; run `neikong verify` before sealing again"
            )
        self.checkpoints.write(str(latest.size), latest.note)  # if only tiles/ kept it
        if self.tiles.read_checkpoint() != latest.note:  # a crash between the two writes
            self.tiles.write_checkpoint(latest.note)
        return latest

    def _resume(self) -> TileBuilder:
        stored = self.ledger.store.max_position()
        if self.latest is None:
            return TileBuilder()
        if stored < self.latest.size:
            raise SealRefused(
                f"the log holds {stored} entries but checkpoint {self.latest.size} was signed: "
                "the log was truncated or rolled back; run `neikong verify`"
            )
        try:
            builder = TileBuilder.resume(self.tiles, self.latest.size)
        except TileError as exc:
            log.warning("cannot resume from tiles (%s); rebuilding from position 1", exc)
            return TileBuilder()
        if builder.root() != self.latest.root:
            raise SealRefused(
                f"the tiles at size {self.latest.size} do not hash to the signed root; the tiles "
                "were altered: run `neikong verify` and restore DIR/tiles from an export"
            )
        return builder

    # -- following the log ----------------------------------------------------------------

    def seal_once(self) -> PublishedCheckpoint | None:
        """Seal every stored entry, publishing every `every_entries` and at the end.

        Returns the latest published checkpoint (None if none could be signed yet).
        """
        self._follow(None)
        self.publish()
        return self.latest

    def run(self, stop: threading.Event, *, poll_seconds: float = 0.5) -> None:
        """Follow the log until `stop` is set; publish on the entry count or the interval."""
        while not stop.is_set():
            self._follow(stop)
            if time.monotonic() - self._last_publish >= self.every_seconds:
                self.publish()
            stop.wait(min(poll_seconds, self.every_seconds))
        self.publish()

    def _follow(self, stop: threading.Event | None) -> None:
        store = self.ledger.store
        if store.max_position() < self.size:
            raise SealRefused(
                f"the log holds {store.max_position()} entries but {self.size} are sealed: "
                "the log was truncated or rolled back; run `neikong verify`"
            )
        builder = self._builder
        for row in store.iter_log(builder.size + 1):
            if row.position != builder.size + 1:
                raise SealRefused(
                    f"position {builder.size + 1} is missing from the log (next is "
                    f"{row.position}); run `neikong verify`"
                )
            builder.append(row.record)
            for tile in builder.take_full():
                self.tiles.write_async(tile.path, tile.data)
                if stop is not None and stop.is_set():
                    return
            if self.latest is not None and builder.size == self.latest.size:
                self._check_rebuilt()
            published = self.latest.size if self.latest else 0
            if builder.size - published >= self.every_entries:
                self.publish()

    def _check_rebuilt(self) -> None:
        assert self.latest is not None
        self.tiles.wait()  # a tile that would change names the first rewritten entry
        if self._builder.root() != self.latest.root:
            raise InconsistentCheckpoint(
                f"the stored log at size {self.latest.size} does not hash to the signed "
                "checkpoint: it was rewritten; run `neikong verify`",
                self.latest.note,
                Checkpoint(self.origin, self.latest.size, self._builder.root()).body(),
            )

    # -- publishing ----------------------------------------------------------------------

    def publish(self) -> PublishedCheckpoint | None:
        """Sign and store a checkpoint of everything sealed, if it grew and the key may sign."""
        size = self._builder.size
        published = self.latest.size if self.latest else 0
        if size <= published or not self._may_sign(size):
            return None
        for tile in self._builder.partial():
            self.tiles.write_async(tile.path, tile.data)
        self.tiles.sync()  # waits for every tile write: errors surface before signing
        root = self._builder.root()
        reader = TileHashReader(self.tiles, size)
        if tree_root(size, reader) != root:
            raise SealRefused(
                f"the tiles read back at size {size} do not hash to the computed root; the "
                "tile directory is being altered: stop and run `neikong verify`"
            )
        body = Checkpoint(self.origin, size, root).body()
        if self.latest is not None:
            self._check_consistent(body, reader)
        signature = sign_note(body, self.origin, self.signer.private_key)
        note = SignedNote(body, (signature,)).encode()
        self.checkpoints.write(str(size), note)
        self.checkpoints.sync()
        self.tiles.write_checkpoint(note)
        self.latest = PublishedCheckpoint(note, Checkpoint.parse_body(body))
        self._last_publish = time.monotonic()
        log.info("published checkpoint %d %s", size, root.hex())
        if self.on_publish is not None:
            self.on_publish(self.latest)
        return self.latest

    def _check_consistent(self, body: bytes, reader: TileHashReader) -> None:
        assert self.latest is not None
        old, new = self.latest.checkpoint, Checkpoint.parse_body(body)
        try:
            proof = consistency_proof(old.size, new.size, reader)
            verify_consistency(old.size, new.size, old.root, new.root, proof)
        except (ProofError, TileError) as exc:
            raise InconsistentCheckpoint(
                f"refusing to sign size {new.size}: it does not extend checkpoint {old.size} "
                f"({exc}); run `neikong verify`",
                self.latest.note,
                body,
            ) from exc

    def _may_sign(self, size: int) -> bool:
        entry = self.ledger.registry.lookup(self.signer.key_id)
        if entry is None:  # enrolled by another process since the registry was folded
            self._refresh_registry()
            entry = self.ledger.registry.lookup(self.signer.key_id)
        if entry is None:
            raise SealerError(
                "the checkpoint key is not enrolled in this ledger; run `neikong seal` to enrol it"
            )
        if entry.purpose != CHECKPOINT_PURPOSE or entry.ended_at is not None:
            raise SealerError(
                f"the checkpoint key is a {entry.purpose!r} key ({entry.end_reason or 'active'}); "
                "it may not sign checkpoints"
            )
        return entry.enrolled_at <= size

    def _refresh_registry(self) -> None:
        load_registry(self.ledger.store, self.ledger.registry)


def _acquire_lock(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SealerError(
            f"another sealer holds {path}; stop it first (one sealer per ledger)"
        ) from None
    return fd
