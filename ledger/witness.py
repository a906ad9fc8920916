"""The witness: cosigns a log's checkpoints only if each extends the last one it cosigned.

Run by the inspectorate, not by the tax office, with its own key and its own state file. It
implements the add-checkpoint semantics of c2sp.org/tlog-witness and signs with timestamped
Ed25519 cosignatures (c2sp.org/tlog-cosignature, type 0x04). `ops.witness_server` serves it
over HTTP.

Guarantees of `Witness.add_checkpoint`:

- It MUST NOT return a cosignature unless the checkpoint is signed by the trusted key of its
  origin, `old_size` equals the size it last cosigned for that origin (0 if none), and either
  the sizes are equal with byte-equal roots, or the consistency proof from its last root to
  the new root verifies (RFC 9162), or it never cosigned that origin (then `old_size` is 0 and
  the proof MUST be empty).
- The new state is durable on disk (`ledger.witness_state.WitnessState.put`: a temporary file,
  fsync, rename, fsync of the directory) BEFORE the cosignature is returned; check and update
  happen under one lock, so concurrent submissions can never roll the recorded size back.
- A same-size checkpoint with another root, or one whose proof does not show it extends the
  last cosigned one, is refused, and BOTH signed notes (the one cosigned before and the one
  refused) are appended to the evidence file (`<state>.evidence.jsonl`, fsynced) before the
  error carrying them is raised.
- Only one `Witness` may use a state file at a time (an exclusive lock on `<state>.lock`).

Exceptions (each maps to the HTTP status tlog-witness prescribes, `http_status`):

    WitnessError (NeikongError, ValueError)   the submission is refused
    ├── WitnessMalformed                      400  bad request, old size above checkpoint size
    ├── WitnessBadSignature                   403  no valid signature by the trusted log key
    ├── WitnessUnknownLog                     404  origin not configured
    ├── WitnessConflict                       409  old size is not the last cosigned size
    │                                              (`current_size`), or same size other root
    │                                              (`evidence`)
    └── WitnessBadProof                       422  consistency proof does not verify (`evidence`)
    WitnessStateError (NeikongError, RuntimeError)   state file unreadable, corrupt or locked
                                                     (defined in `ledger.witness_state`)
    WitnessUnavailable (NeikongError, ConnectionError)   a client could not reach a witness
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.errors import NeikongError
from ledger.keys import raw_public_key
from ledger.merkle import EMPTY_ROOT, ProofError, verify_consistency
from ledger.note import (
    SIG_TYPE_COSIGNATURE,
    Checkpoint,
    NoteError,
    NoteSignature,
    SignedNote,
    cosign,
    verify_note,
    vkey,
)
from ledger.witness_state import (
    WitnessedCheckpoint,
    WitnessEvidence,
    WitnessState,
    WitnessStateError,
    append_evidence,
    read_evidence,
)

__all__ = [
    "MAX_PROOF_HASHES",
    "Witness",
    "WitnessBadProof",
    "WitnessBadSignature",
    "WitnessConflict",
    "WitnessError",
    "WitnessMalformed",
    "WitnessUnavailable",
    "WitnessUnknownLog",
]

MAX_PROOF_HASHES = 63
"""tlog-witness: a client MUST NOT send more than 63 consistency proof lines."""


class WitnessError(NeikongError, ValueError):
    """The witness refused a checkpoint. `http_status` is the tlog-witness response code."""

    http_status: ClassVar[int] = 400


class WitnessMalformed(WitnessError):
    """The request or checkpoint is malformed, or the old size exceeds the checkpoint size."""


class WitnessBadSignature(WitnessError):
    """The checkpoint carries no valid signature by the trusted key of its origin."""

    http_status = 403


class WitnessUnknownLog(WitnessError):
    """The checkpoint's origin is not a log this witness is configured for."""

    http_status = 404


class WitnessConflict(WitnessError):
    """`old_size` is not the size last cosigned (`current_size`), or the sizes are equal and
    the roots differ (then `evidence` holds both signed notes)."""

    http_status = 409

    def __init__(
        self, message: str, *, current_size: int, evidence: WitnessEvidence | None = None
    ) -> None:
        super().__init__(message)
        self.current_size = current_size
        self.evidence = evidence


class WitnessBadProof(WitnessError):
    """The consistency proof does not verify; `evidence` holds both signed notes if the witness
    had cosigned an earlier checkpoint of the log."""

    http_status = 422

    def __init__(self, message: str, *, evidence: WitnessEvidence | None = None) -> None:
        super().__init__(message)
        self.evidence = evidence


class WitnessUnavailable(NeikongError, ConnectionError):
    """A witness could not be reached or answered outside the protocol (retry later)."""


# --- the witness ------------------------------------------------------------------------------


class Witness:
    """A tlog-witness for the logs in `trusted_logs` (origin -> (log key name, raw public key)).

    Use as a context manager or call `close()`: the witness holds the lock on its state.
    """

    def __init__(
        self,
        name: str,
        private_key: Ed25519PrivateKey,
        state_path: Path,
        trusted_logs: Mapping[str, tuple[str, bytes]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.public_raw = raw_public_key(private_key.public_key())
        self.vkey = vkey(name, self.public_raw, SIG_TYPE_COSIGNATURE)  # also checks the name
        self._private_key = private_key
        self._trusted = dict(trusted_logs)
        for origin, (_key_name, public) in self._trusted.items():
            if len(public) != 32:
                raise ValueError(f"log key of {origin!r} is not a 32-byte Ed25519 key")
        self._clock = clock
        self._lock = threading.Lock()
        self.state_path = Path(state_path)
        self.evidence_path = self.state_path.with_suffix(".evidence.jsonl")
        self._lock_fd = self._acquire_file_lock(self.state_path.with_suffix(".lock"))
        try:
            self._state = WitnessState(self.state_path)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _acquire_file_lock(path: Path) -> int:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise WitnessStateError(f"cannot open lock file {path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise WitnessStateError(
                f"{path} is locked: another witness process uses this state"
            ) from None
        return fd

    def close(self) -> None:
        """Release the state lock. The witness MUST NOT be used afterwards."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Witness:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def latest(self, origin: str) -> WitnessedCheckpoint | None:
        """The last checkpoint cosigned for `origin`, if any."""
        with self._lock:
            return self._state.get(origin)

    def evidence(self) -> list[WitnessEvidence]:
        """Every refusal recorded with evidence, oldest first."""
        return read_evidence(self.evidence_path)

    def add_checkpoint(
        self, old_size: int, consistency_proof: Sequence[bytes], signed_checkpoint: bytes
    ) -> NoteSignature:
        """tlog-witness add-checkpoint: check, record durably, then return the cosignature."""
        try:
            note = SignedNote.parse(signed_checkpoint)
            checkpoint = Checkpoint.parse_body(note.body)
        except NoteError as exc:
            raise WitnessMalformed(f"not a signed checkpoint: {exc}") from exc
        if checkpoint.origin not in self._trusted:
            raise WitnessUnknownLog(f"unknown log origin {checkpoint.origin!r}")
        key_name, key_public = self._trusted[checkpoint.origin]
        try:
            verify_note(note, key_name, key_public)
        except NoteError as exc:
            raise WitnessBadSignature(f"{checkpoint.origin}: {exc}") from exc
        if old_size < 0 or old_size > checkpoint.size:
            raise WitnessMalformed(f"old size {old_size} exceeds checkpoint size {checkpoint.size}")
        if len(consistency_proof) > MAX_PROOF_HASHES:
            raise WitnessMalformed(f"{len(consistency_proof)} proof hashes exceed 63")
        with self._lock:
            if self._lock_fd < 0:
                raise WitnessStateError("witness is closed")
            self._check(old_size, consistency_proof, checkpoint, signed_checkpoint)
            timestamp = int(self._clock())
            self._state.put(
                WitnessedCheckpoint(
                    checkpoint.origin,
                    checkpoint.size,
                    checkpoint.root,
                    signed_checkpoint,
                    timestamp,
                )
            )
            return cosign(note.body, self.name, self._private_key, timestamp)

    def _check(
        self, old_size: int, proof: Sequence[bytes], checkpoint: Checkpoint, submitted: bytes
    ) -> None:
        last = self._state.get(checkpoint.origin)
        current = last.size if last else 0
        if old_size != current:
            raise WitnessConflict(
                f"{checkpoint.origin}: old size {old_size}, but the last cosigned size is "
                f"{current}",
                current_size=current,
            )
        if old_size == 0:
            if proof:
                raise WitnessMalformed("the consistency proof from size 0 MUST be empty")
            if checkpoint.size == 0 and checkpoint.root != EMPTY_ROOT:
                raise WitnessBadProof(f"{checkpoint.origin}: size 0 with a non-empty root")
            return
        assert last is not None  # current == old_size > 0
        if checkpoint.size == last.size:
            if checkpoint.root != last.root:
                detail = (
                    f"size {last.size}: cosigned root {last.root.hex()}, "
                    f"submitted root {checkpoint.root.hex()}"
                )
                evidence = self._record(
                    "same_size_different_root",
                    last,
                    submitted=submitted,
                    proof=proof,
                    detail=detail,
                )
                raise WitnessConflict(
                    f"{checkpoint.origin}: another root for size {last.size}; evidence recorded",
                    current_size=current,
                    evidence=evidence,
                )
            if proof:
                raise WitnessBadProof("the consistency proof between equal sizes MUST be empty")
            return
        try:
            verify_consistency(last.size, checkpoint.size, last.root, checkpoint.root, proof)
        except ProofError as exc:
            evidence = self._record(
                "not_an_extension", last, submitted=submitted, proof=proof, detail=str(exc)
            )
            raise WitnessBadProof(
                f"{checkpoint.origin}: no valid consistency proof {last.size} -> "
                f"{checkpoint.size} ({exc}); evidence recorded",
                evidence=evidence,
            ) from exc

    def _record(
        self,
        kind: str,
        last: WitnessedCheckpoint,
        *,
        submitted: bytes,
        proof: Sequence[bytes],
        detail: str,
    ) -> WitnessEvidence:
        """Append the evidence to the evidence file (fsynced) and return it."""
        evidence = WitnessEvidence(
            kind=kind,
            origin=last.origin,
            cosigned=last.signed_checkpoint,
            submitted=submitted,
            old_size=last.size,
            proof=tuple(proof),
            detected_at=int(self._clock()),
            detail=detail,
        )
        append_evidence(self.evidence_path, evidence)
        return evidence
