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
- The new state is durable on disk (written to a temporary file, fsync, rename, fsync of the
  directory) BEFORE the cosignature is returned; check and update happen under one lock, so
  concurrent submissions can never roll the recorded size back.
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
    WitnessUnavailable (NeikongError, ConnectionError)   a client could not reach a witness
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

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

__all__ = [
    "MAX_PROOF_HASHES",
    "Witness",
    "WitnessBadProof",
    "WitnessBadSignature",
    "WitnessConflict",
    "WitnessError",
    "WitnessEvidence",
    "WitnessMalformed",
    "WitnessState",
    "WitnessStateError",
    "WitnessUnavailable",
    "WitnessUnknownLog",
    "WitnessedCheckpoint",
]

MAX_PROOF_HASHES = 63
"""tlog-witness: a client MUST NOT send more than 63 consistency proof lines."""

_STATE_FORMAT = "neikong-witness-state/1"


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


@dataclass(frozen=True)
class WitnessEvidence:
    """Two checkpoints, both signed by the log, that cannot both be honest views.

    `kind` is `same_size_different_root` or `not_an_extension` (the proof given from the
    cosigned checkpoint to the submitted one did not verify). `cosigned` and `submitted` are
    the complete signed notes as received.
    """

    kind: str
    origin: str
    cosigned: bytes
    submitted: bytes
    old_size: int
    proof: tuple[bytes, ...]
    detected_at: int
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "origin": self.origin,
            "cosigned": self.cosigned.decode(),
            "submitted": self.submitted.decode(),
            "old_size": self.old_size,
            "proof": [base64.b64encode(h).decode() for h in self.proof],
            "detected_at": self.detected_at,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> WitnessEvidence:
        return cls(
            kind=str(obj["kind"]),
            origin=str(obj["origin"]),
            cosigned=str(obj["cosigned"]).encode(),
            submitted=str(obj["submitted"]).encode(),
            old_size=int(obj["old_size"]),
            proof=tuple(base64.b64decode(h, validate=True) for h in obj["proof"]),
            detected_at=int(obj["detected_at"]),
            detail=str(obj["detail"]),
        )


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


class WitnessStateError(NeikongError, RuntimeError):
    """The state or evidence file cannot be read, written or locked (operational)."""


class WitnessUnavailable(NeikongError, ConnectionError):
    """A witness could not be reached or answered outside the protocol (retry later)."""


# --- durable state ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WitnessedCheckpoint:
    """The last checkpoint cosigned for one origin, with the signed note as received."""

    origin: str
    size: int
    root: bytes
    signed_checkpoint: bytes
    cosigned_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "root": base64.b64encode(self.root).decode(),
            "checkpoint": self.signed_checkpoint.decode(),
            "cosigned_at": self.cosigned_at,
        }

    @classmethod
    def from_json(cls, origin: str, obj: Mapping[str, Any]) -> WitnessedCheckpoint:
        signed = str(obj["checkpoint"]).encode()
        checkpoint = Checkpoint.parse_body(SignedNote.parse(signed).body)
        root = base64.b64decode(str(obj["root"]), validate=True)
        if (checkpoint.origin, checkpoint.size, checkpoint.root) != (origin, obj["size"], root):
            raise ValueError(f"stored checkpoint of {origin!r} does not match its size and root")
        return cls(origin, checkpoint.size, root, signed, int(obj["cosigned_at"]))


def _write_synced(path: Path, data: bytes, flags: int) -> None:
    """Write `data` to `path` (created with mode 0600) and fsync it before returning."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o600), "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class WitnessState:
    """The JSON state file: per origin, the last cosigned checkpoint. Not thread-safe alone.

    `put` MUST NOT return before the new state is durable: the file is replaced atomically
    (write a temporary file with mode 0600, fsync, rename over the old one, fsync the
    directory), so a crash leaves either the old or the new state, never a mix.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._logs: dict[str, WitnessedCheckpoint] = {}
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise WitnessStateError(f"cannot read witness state {path}: {exc}") from exc
        try:
            obj = json.loads(raw)
            if obj.get("format") != _STATE_FORMAT:
                raise ValueError(f"format is {obj.get('format')!r}, want {_STATE_FORMAT!r}")
            for origin, entry in obj["logs"].items():
                self._logs[origin] = WitnessedCheckpoint.from_json(origin, entry)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise WitnessStateError(f"witness state {path} is corrupt: {exc}") from exc

    def get(self, origin: str) -> WitnessedCheckpoint | None:
        return self._logs.get(origin)

    def put(self, entry: WitnessedCheckpoint) -> None:
        logs = {**self._logs, entry.origin: entry}
        obj = {"format": _STATE_FORMAT, "logs": {o: e.to_json() for o, e in sorted(logs.items())}}
        data = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            _write_synced(tmp, data, os.O_TRUNC)
            os.replace(tmp, self.path)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            raise WitnessStateError(f"cannot write witness state {self.path}: {exc}") from exc
        self._logs = logs


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
        try:
            lines = self.evidence_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [WitnessEvidence.from_json(json.loads(line)) for line in lines if line]

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
        line = json.dumps(evidence.to_json(), sort_keys=True, ensure_ascii=False) + "\n"
        try:
            _write_synced(self.evidence_path, line.encode(), os.O_APPEND)
        except OSError as exc:
            raise WitnessStateError(f"cannot record evidence: {exc}") from exc
        return evidence
