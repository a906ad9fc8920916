"""Case evidence bundles (export) and replay of a case at a checkpoint.

`export_bundle` writes what `ledger.verify_bundle` checks (the format is documented there): the
case's signed records, ONE multi-leaf inclusion proof of all of them against a (cosigned)
checkpoint, that checkpoint note with its cosignatures, and the key-registry events the
signatures depend on, each with its own inclusion proof.

Guarantees:

- A bundle holds the case exactly as the log stood at the chosen checkpoint: the events at
  positions <= its size, nothing later.
- `export_bundle` MUST NOT return a bundle that fails `verify_bundle` (with the keys it
  embeds): it verifies its own output and raises `VerificationError` with the verdict if the
  ledger's records, tiles or checkpoints no longer agree. The one exception: a checkpoint
  named by size that no witness cosigned gives a bundle that fails only `cosignatures`.
- The registry events included are the genesis, the enrolment (or rotation) of every key that
  signed a case event, the checkpoint or an included registry event, the enrolment of the key a
  rotation replaced, and every rotation or revocation of those keys up to the checkpoint.
- Only signature lines the verifier can attribute are kept on the checkpoint note: the log's
  signature by its checkpoint key and cosignatures that verify under a configured witness key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.checkpoints import (
    TILES_DIR,
    key_valid_for_size,
    list_checkpoints,
    read_checkpoint,
    signing_keys,
)
from ledger.envelope import SignedRecord, b64
from ledger.errors import NeikongError, VerificationError
from ledger.ledger import Ledger
from ledger.merkle import ProofError, leaf_hash, verify_inclusion
from ledger.merkle_proofs import inclusion_proof, multi_inclusion_proof
from ledger.note import NoteSignature, SignedNote, note_key_hash
from ledger.registry import REGISTRY_STREAM
from ledger.tiles import TileError, TileHashReader, TileStore
from ledger.verify_bundle import FORMAT, TERMINAL_TYPES, encode_bundle, verify_bundle
from ledger.witness_config import ConfiguredWitness, load_witnesses
from ledger.witnessing import read_cosigned

__all__ = [
    "BundleExportError",
    "CaseReplay",
    "ReplayedEvent",
    "export_bundle",
    "replay_case",
    "trust_text",
    "write_bundle",
]


class BundleExportError(NeikongError, ValueError):
    """No bundle can be made: unknown case, no (cosigned) checkpoint covering it, bad size."""


def _body(record: bytes) -> dict[str, Any]:
    value = json.loads(SignedRecord.decode(record).body)
    if not isinstance(value, dict):
        raise VerificationError("a stored record's body is not a JSON object")
    return value


@dataclass(frozen=True)
class _Note:
    """A checkpoint note reduced to attributable signatures, and who signed it."""

    size: int
    note: SignedNote
    checkpoint_key_id: bytes
    witnesses: tuple[str, ...]  # vkeys of the cosignatures kept


def _attributable(ledger: Ledger, size: int, witnesses: list[ConfiguredWitness]) -> _Note:
    """The checkpoint of `size` (cosigned if stored so) with only verifiable signatures."""
    plain = read_checkpoint(ledger.directory, size)
    plain_note = SignedNote.parse(plain.note)
    origin = ledger.config.origin
    valid = [
        k for k in signing_keys(plain.note, origin, ledger.registry) if key_valid_for_size(k, size)
    ]
    if not valid:
        raise VerificationError(f"checkpoint {size} is not signed by a valid checkpoint key")
    key = valid[0]
    log_hash = note_key_hash(origin, key.public_raw)
    cosigned = read_cosigned(ledger.directory, size)
    if cosigned is None or cosigned.body != plain_note.body:  # `verify` reports the latter
        cosigned = plain_note
    kept: list[NoteSignature] = [
        s for s in plain_note.signatures if (s.name, s.key_hash) == (origin, log_hash)
    ][:1]
    vkeys = []
    for witness in witnesses:
        wkey = witness.key
        for sig in cosigned.signatures:
            if wkey.owns(sig) and wkey.verifies(cosigned.body, sig) and wkey.vkey not in vkeys:
                kept.append(sig)
                vkeys.append(wkey.vkey)
    return _Note(size, SignedNote(cosigned.body, tuple(kept)), key.key_id, tuple(sorted(vkeys)))


def _choose_checkpoint(ledger: Ledger, first_position: int, size: int | None = None) -> _Note:
    """The checkpoint a bundle is made against: `size` if given (it MUST be published), else
    the latest cosigned by every configured witness, else the latest cosigned by any."""
    sizes = list_checkpoints(ledger.directory)
    witnesses = load_witnesses(ledger.directory)
    if size is not None:
        if size not in sizes:
            shown = ", ".join(map(str, sizes[-5:])) or "none"
            raise BundleExportError(f"no checkpoint of size {size} (latest: {shown})")
        if size < first_position:
            raise BundleExportError(
                f"checkpoint {size} precedes the case (first at {first_position})"
            )
        return _attributable(ledger, size, witnesses)
    fallback = None
    for candidate in reversed(sizes):
        if candidate < first_position:
            break
        note = _attributable(ledger, candidate, witnesses)
        if witnesses and len(note.witnesses) == len(witnesses):
            return note
        fallback = fallback or (note if note.witnesses else None)
    if fallback is not None:
        return fallback
    raise BundleExportError(
        "no cosigned checkpoint covers the case; run `neikong seal` and `neikong cosign`, "
        "or name an uncosigned checkpoint with --checkpoint"
    )


def _registry_closure(
    rows: list[tuple[int, bytes]], needed: set[bytes], root_key_id: bytes
) -> list[tuple[int, bytes]]:
    """The registry events (position, record) the keys in `needed` depend on; see module doc."""
    events = [(p, r, _body(r)) for p, r in rows]
    chosen: dict[int, bytes] = {}
    todo, seen = set(needed) | {root_key_id}, set()
    while todo:
        key_id = todo.pop()
        seen.add(key_id)
        hex_id = key_id.hex()
        for position, record, value in events:
            data, kind = value.get("data", {}), value.get("type")
            introduces = (kind == "ledger.genesis" and data["root_key"]["key_id"] == hex_id) or (
                kind in ("key.enrolled", "key.rotated") and data["key"]["key_id"] == hex_id
            )
            ends = (kind == "key.rotated" and data["old_key_id"] == hex_id) or (
                kind == "key.revoked" and data["key_id"] == hex_id
            )
            if not (introduces or ends or position == 1):
                continue
            chosen[position] = record
            new = {SignedRecord.decode(record).key_id}
            if introduces and kind == "key.rotated":
                new.add(bytes.fromhex(data["old_key_id"]))
            todo |= new - seen
    return sorted(chosen.items())


def export_bundle(
    ledger: Ledger, stream: str, checkpoint_size: int | None = None
) -> dict[str, Any]:
    """Export the evidence bundle of case `stream` (see the module docstring and
    `ledger.verify_bundle` for the format). Raises `BundleExportError` or, if the ledger no
    longer agrees with its own checkpoints, `VerificationError`."""
    rows = ledger.store.stream_rows(stream)
    if not rows or stream == REGISTRY_STREAM:
        raise BundleExportError(f"no case stream {stream!r} in this ledger")
    chosen = _choose_checkpoint(ledger, rows[0][0], checkpoint_size)
    size = chosen.size
    events = [(p, r) for p, r in rows if p <= size]
    reader = TileHashReader(TileStore(ledger.directory / TILES_DIR), size)
    last = _body(events[-1][1])
    closure = None
    if last.get("type") in TERMINAL_TYPES:
        closure = {"final_seq": last["data"].get("final_seq"), "type": last["type"]}
    needed = {SignedRecord.decode(r).key_id for _, r in events} | {chosen.checkpoint_key_id}
    registry_rows = [(p, r) for p, r in ledger.store.stream_rows(REGISTRY_STREAM) if p <= size]
    registry = _registry_closure(registry_rows, needed, bytes.fromhex(ledger.config.root_key_id))
    bundle = {
        "format": FORMAT,
        "origin": ledger.config.origin,
        "stream": stream,
        "closure": closure,
        "events": [{"position": p, "record": b64(r)} for p, r in events],
        "inclusion": {
            "tree_size": size,
            "proof": [
                b64(h) for h in multi_inclusion_proof([p - 1 for p, _ in events], size, reader)
            ],
        },
        "checkpoint": chosen.note.encode().decode("utf-8"),
        "checkpoint_key_id": chosen.checkpoint_key_id.hex(),
        "registry": [
            {
                "position": p,
                "record": b64(r),
                "proof": [b64(h) for h in inclusion_proof(p - 1, size, reader)],
            }
            for p, r in registry
        ],
        "ledger_keys": {
            "root_key_id": ledger.config.root_key_id,
            "witnesses": list(chosen.witnesses),
        },
    }
    verdict = verify_bundle(encode_bundle(bundle))
    failed = set(verdict.failed) - (set() if chosen.witnesses else {"cosignatures"})
    if failed:  # an uncosigned checkpoint asked for by size fails only `cosignatures`
        raise VerificationError(
            f"the bundle of {stream} at checkpoint {size} does not verify; the ledger no longer "
            f"agrees with its checkpoints (run `neikong verify`):\n{verdict.render()}"
        )
    return bundle


def write_bundle(bundle: dict[str, Any], path: Path) -> int:
    """Write the canonical encoding of `bundle` to `path`; return its size in bytes."""
    data = encode_bundle(bundle)
    path.write_bytes(data)
    return len(data)


def trust_text(ledger: Ledger) -> str:
    """A trust file (see `ledger.verify_bundle`) for this ledger's root key and witnesses.

    Hand it over out of band: a verifier trusts the keys in it, not the bundle's claims.
    """
    lines = [
        f"# neikong trust file for {ledger.config.origin}",
        f"root {ledger.config.root_key_id}",
    ]
    for witness in load_witnesses(ledger.directory):
        lines += [f"# witness {witness.name} ({witness.url})", f"witness {witness.vkey}"]
    return "\n".join(lines) + "\n"


# --- replay -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayedEvent:
    """One event of a case as the log stood at a checkpoint, with its inclusion status."""

    position: int
    stream_seq: int
    type: str
    occurred_at: str
    official: str | None
    key_id: str
    included: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class CaseReplay:
    """A case at checkpoint `size`: its events then, the checkpoint's state, what is hidden."""

    stream: str
    size: int
    root: str
    checkpoint_signed: bool
    cosigned_by: tuple[str, ...]
    events: tuple[ReplayedEvent, ...]
    closure: dict[str, Any] | None
    later_events: int

    @property
    def all_included(self) -> bool:
        return self.checkpoint_signed and all(e.included for e in self.events)

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["cosigned_by"] = list(self.cosigned_by)
        out["events"] = [e.to_json() for e in self.events]
        out["all_included"] = self.all_included
        return out


def replay_case(ledger: Ledger, stream: str, at: int) -> CaseReplay:
    """The case `stream` exactly as the log stood at the published checkpoint of size `at`.

    Events at positions > `at` are invisible (only counted). Each visible event's stored record
    is checked for inclusion under the checkpoint's root (RFC 9162 proof from the tiles).
    """
    if at not in list_checkpoints(ledger.directory):
        raise BundleExportError(f"no published checkpoint of size {at}; see `neikong checkpoints`")
    rows = ledger.store.stream_rows(stream)
    if not rows:
        raise BundleExportError(f"no case stream {stream!r} in this ledger")
    published = read_checkpoint(ledger.directory, at)
    keys = signing_keys(published.note, ledger.config.origin, ledger.registry)
    signed = any(key_valid_for_size(k, at) for k in keys)
    cosigned = _attributable(ledger, at, load_witnesses(ledger.directory)) if signed else None
    reader = TileHashReader(TileStore(ledger.directory / TILES_DIR), at)
    events = []
    for position, record in (row for row in rows if row[0] <= at):
        value = _body(record)
        try:
            proof = inclusion_proof(position - 1, at, reader)
            verify_inclusion(position - 1, at, leaf_hash(record), proof, published.root)
            included, detail = True, f"included in checkpoint {at}"
        except (ProofError, TileError) as exc:
            included, detail = False, f"NOT included in checkpoint {at}: {exc}"
        events.append(
            ReplayedEvent(
                position=position,
                stream_seq=int(value["stream_seq"]),
                type=str(value["type"]),
                occurred_at=str(value["occurred_at"]),
                official=value.get("actor", {}).get("official"),
                key_id=SignedRecord.decode(record).key_id.hex(),
                included=included,
                detail=detail,
            )
        )
    closure = None
    if events and events[-1].type in TERMINAL_TYPES:
        last = _body(next(r for p, r in rows if p == events[-1].position))
        closure = {"final_seq": last["data"].get("final_seq"), "type": last["type"]}
    return CaseReplay(
        stream=stream,
        size=at,
        root=b64(published.root),
        checkpoint_signed=signed,
        cosigned_by=tuple(v.split("+")[0] for v in cosigned.witnesses) if cosigned else (),
        events=tuple(events),
        closure=closure,
        later_events=sum(1 for p, _ in rows if p > at),
    )
