"""The ledger's side of witnessing: its witnesses, submitting checkpoints, keeping cosignatures.

Layout (inside the ledger directory)::

    DIR/witnesses.json               [{"name", "url", "vkey"}]: the witnesses this ledger uses
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
`ops.witness_server.submit_checkpoint`; in tests an in-process `Witness`).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ledger.checkpoints import CHECKPOINTS_DIR, TILES_DIR, list_checkpoints
from ledger.errors import NeikongError
from ledger.findings import Finding, FindingKind
from ledger.merkle_proofs import consistency_proof
from ledger.note import (
    SIG_TYPE_COSIGNATURE,
    Checkpoint,
    NoteError,
    NoteSignature,
    SignedNote,
    note_key_hash,
    parse_vkey,
    verify_cosignature,
)
from ledger.tiles import TileHashReader, TileStore
from ledger.witness import WitnessBadProof, WitnessConflict, WitnessError, WitnessUnavailable

__all__ = [
    "BAD_COSIGNATURE",
    "COSIGNED_SUFFIX",
    "MISSING_COSIGNATURE",
    "WITNESSES_FILE",
    "ConfiguredWitness",
    "CosignFailure",
    "CosignIncomplete",
    "ProofProvider",
    "Submitter",
    "WitnessKey",
    "add_witness",
    "cosign_checkpoint",
    "cosigned_path",
    "last_cosigned_size",
    "load_witnesses",
    "read_cosigned",
    "tile_proof_provider",
    "verify_cosignatures",
]

WITNESSES_FILE = "witnesses.json"
COSIGNED_SUFFIX = ".cosigned"
LOCK_FILE = "cosign.lock"
BAD_COSIGNATURE = FindingKind.BAD_COSIGNATURE
MISSING_COSIGNATURE = FindingKind.MISSING_COSIGNATURE
MAX_ATTEMPTS = 3

Submitter = Callable[[str, int, Sequence[bytes], bytes], list[NoteSignature]]
"""(witness URL, old size, consistency proof, signed checkpoint) -> cosignature lines."""

ProofProvider = Callable[[int, int], list[bytes]]
"""(old size, new size) -> RFC 9162 consistency proof, for 0 < old < new."""


@dataclass(frozen=True)
class WitnessKey:
    """A witness's cosignature key (type 0x04), parsed from its vkey."""

    vkey: str
    name: str
    public_raw: bytes
    key_hash: bytes

    @classmethod
    def parse(cls, vkey: str) -> WitnessKey:
        """Raises `NoteError` unless `vkey` is a valid cosignature (type 0x04) vkey."""
        name, public, sig_type = parse_vkey(vkey)
        if sig_type != SIG_TYPE_COSIGNATURE:
            raise NoteError(f"vkey of {name} is not a cosignature key (type 0x04)")
        return cls(vkey, name, public, note_key_hash(name, public, SIG_TYPE_COSIGNATURE))

    def owns(self, sig: NoteSignature) -> bool:
        """True if `sig` carries this key's name and key hash."""
        return (sig.name, sig.key_hash) == (self.name, self.key_hash)

    def verifies(self, body: bytes, sig: NoteSignature) -> bool:
        """True if `sig` is this key's valid cosignature of the checkpoint `body`."""
        try:
            verify_cosignature(body, sig, self.name, self.public_raw)
        except NoteError:
            return False
        return True


@dataclass(frozen=True)
class ConfiguredWitness:
    """One entry of witnesses.json: a label, the submission URL and the cosignature vkey."""

    name: str
    url: str
    vkey: str

    def __post_init__(self) -> None:
        if not self.name or not self.url.startswith(("http://", "https://")):
            raise ValueError(f"witness {self.name!r}: a name and an http(s) URL are required")
        WitnessKey.parse(self.vkey)

    @property
    def key(self) -> WitnessKey:
        return WitnessKey.parse(self.vkey)


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


# --- configuration ----------------------------------------------------------------------------


def load_witnesses(ledger_dir: Path) -> list[ConfiguredWitness]:
    """The witnesses of DIR/witnesses.json (none if the file does not exist).

    Raises `ValueError` if the file is not a list of {"name", "url", "vkey"} with valid vkeys.
    """
    path = ledger_dir / WITNESSES_FILE
    try:
        raw = json.loads(path.read_text("utf-8"))
        return [ConfiguredWitness(str(w["name"]), str(w["url"]), str(w["vkey"])) for w in raw]
    except FileNotFoundError:
        return []
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} is malformed: {exc}") from exc


def add_witness(ledger_dir: Path, name: str, url: str, vkey: str) -> ConfiguredWitness:
    """Add (or, for an existing name, replace) a witness in DIR/witnesses.json, atomically.

    Raises `ValueError` (`NoteError` for a bad vkey) and refuses a vkey another name uses.
    """
    new = ConfiguredWitness(name, url, vkey)
    witnesses = [w for w in load_witnesses(ledger_dir) if w.name != name]
    if any(w.vkey == vkey for w in witnesses):
        raise ValueError(f"another witness already uses the key {vkey.split('+')[0]}")
    witnesses.append(new)
    rows = [{"name": w.name, "url": w.url, "vkey": w.vkey} for w in witnesses]
    _replace(ledger_dir / WITNESSES_FILE, (json.dumps(rows, indent=2) + "\n").encode())
    return new


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
        _replace(cosigned_path(ledger_dir, size), note.encode())
        return note


@contextmanager
def _lock(ledger_dir: Path) -> Iterator[None]:
    fd = os.open(ledger_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _replace(path: Path, data: bytes) -> None:
    """Atomically replace `path`: temporary file, fsync, rename, fsync of the directory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


# --- verification -----------------------------------------------------------------------------


def _finding(kind: FindingKind, position: int | None, detail: str) -> Finding:
    return Finding(kind, position, None, None, detail)


def verify_cosignatures(
    ledger_dir: Path, witness_vkeys: Sequence[str] | None = None
) -> list[Finding]:
    """Check every `<size>.cosigned` file against its checkpoint and the witness keys.

    `witness_vkeys` defaults to the vkeys of DIR/witnesses.json. Findings:
    `bad_cosignature` (a cosigned note whose body or log signature differs from the published
    checkpoint, that has no published checkpoint, is malformed, or carries a cosignature by a
    configured witness key that does not verify) and `missing_cosignature` (one per configured
    witness that has not cosigned the latest checkpoint, with the last size it did cosign).
    Cosignatures by keys not configured are ignored.
    """
    if witness_vkeys is None:
        keys = [w.key for w in load_witnesses(ledger_dir)]
    else:
        keys = [WitnessKey.parse(v) for v in witness_vkeys]
    findings: list[Finding] = []
    sizes = list_checkpoints(ledger_dir)
    last: dict[str, int] = {}
    for size in _cosigned_sizes(ledger_dir, findings, set(sizes)):
        where = f"{CHECKPOINTS_DIR}/{size}{COSIGNED_SUFFIX}"
        try:
            note = read_cosigned(ledger_dir, size)
            plain = SignedNote.parse((ledger_dir / CHECKPOINTS_DIR / str(size)).read_bytes())
        except (NoteError, OSError) as exc:
            findings.append(_finding(BAD_COSIGNATURE, size, f"{where}: {exc}"))
            continue
        assert note is not None
        if note.body != plain.body or not set(plain.signatures) <= set(note.signatures):
            findings.append(
                _finding(BAD_COSIGNATURE, size, f"{where} is not the published checkpoint {size}")
            )
            continue
        for key in keys:
            for sig in note.signatures:
                if not key.owns(sig):
                    continue
                if key.verifies(note.body, sig):
                    last[key.vkey] = max(last.get(key.vkey, 0), size)
                else:
                    findings.append(
                        _finding(
                            BAD_COSIGNATURE,
                            size,
                            f"{where}: the cosignature by {key.name} does not verify",
                        )
                    )
    if sizes:
        latest = sizes[-1]
        for key in keys:
            done = last.get(key.vkey, 0)
            if done < latest:
                what = f"last cosigned checkpoint {done}" if done else "no checkpoint cosigned"
                findings.append(
                    _finding(
                        MISSING_COSIGNATURE,
                        latest,
                        f"witness {key.name} has not cosigned the latest checkpoint "
                        f"{latest} ({what}); run `neikong cosign`",
                    )
                )
    return findings


def _cosigned_sizes(ledger_dir: Path, findings: list[Finding], published: set[int]) -> list[int]:
    try:
        names = os.listdir(ledger_dir / CHECKPOINTS_DIR)
    except FileNotFoundError:
        return []
    sizes = []
    for name in names:
        stem = name.removesuffix(COSIGNED_SUFFIX)
        if stem == name or not stem.isdigit() or str(int(stem)) != stem:
            continue
        if int(stem) not in published:
            findings.append(
                _finding(BAD_COSIGNATURE, int(stem), f"{name} has no published checkpoint")
            )
        else:
            sizes.append(int(stem))
    return sorted(sizes)
