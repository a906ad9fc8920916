"""The witness's durable files: its state (last cosigned checkpoint per log) and its evidence.

Files, beside each other, named after the state path a `ledger.witness.Witness` is given
(``state.json`` here; the others replace its suffix)::

    state.json               JSON: per origin, the last cosigned checkpoint as received
    state.evidence.jsonl     one JSON line per refusal with evidence, appended, never rewritten
    state.lock               held (flock) by the one `Witness` using this state

Guarantees:

- `WitnessState.put` MUST NOT return before the new state is durable: the file is replaced
  atomically (a temporary file with mode 0600, fsync, rename over the old one, fsync of the
  directory), so a crash leaves either the old or the new state, never a mix. The state in
  memory changes only after the file did.
- A state file is loaded only if it has the expected format and every entry's signed note
  parses and states the origin, size and root recorded with it; anything else raises
  `WitnessStateError` (never a partial state). A missing file is the empty state.
- `append_evidence` MUST NOT return before the line is fsynced (file mode 0600); the evidence
  file is only ever appended to.
- A state file that cannot be read, written or locked (the lock is taken by `Witness`), or
  evidence that cannot be appended, raises `WitnessStateError`: operational, not a refusal of
  the submission. `read_evidence` is for inspection: a missing file is no evidence, and other
  read or parse errors propagate unchanged.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.errors import NeikongError
from ledger.note import Checkpoint, SignedNote

__all__ = [
    "WitnessEvidence",
    "WitnessState",
    "WitnessStateError",
    "WitnessedCheckpoint",
    "append_evidence",
    "read_evidence",
]

_STATE_FORMAT = "neikong-witness-state/1"


class WitnessStateError(NeikongError, RuntimeError):
    """The state or evidence file cannot be read, written or locked (operational)."""


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


def append_evidence(path: Path, evidence: WitnessEvidence) -> None:
    """Append `evidence` as one JSON line to the evidence file at `path`, fsynced."""
    line = json.dumps(evidence.to_json(), sort_keys=True, ensure_ascii=False) + "\n"
    try:
        _write_synced(path, line.encode(), os.O_APPEND)
    except OSError as exc:
        raise WitnessStateError(f"cannot record evidence: {exc}") from exc


def read_evidence(path: Path) -> list[WitnessEvidence]:
    """Every evidence line of the file at `path`, oldest first (none if it does not exist)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [WitnessEvidence.from_json(json.loads(line)) for line in lines if line]
