#!/usr/bin/env python3
"""Standalone verifier of a neikong case evidence bundle (one file: stdlib + `cryptography`).

Copy this file alone to any machine with Python >= 3.11 and `cryptography`, then run::

    python3 verify_bundle.py BUNDLE.json [--trust KEYS] [--json]

It needs no database, no network and nothing else from neikong. `neikong verify-bundle` runs
this same code. Exit codes: 0 every check passed, 1 a check failed (or the bundle cannot be
read as a bundle), 2 usage error (bad arguments, unreadable file, malformed trust file).

The bundle (format `neikong-evidence-bundle/1`) is one JSON object, written in exactly one
byte form (`encode_bundle`: sorted keys, indent 1, UTF-8, final newline) so that no byte of it
is without meaning::

    format             "neikong-evidence-bundle/1"
    origin             the log's origin (first line of its checkpoints)
    stream             the case stream, e.g. "matter/4403-fp/2026-000001"
    closure            {"final_seq": n, "type": "matter.concluded"} or null (open at the checkpoint)
    events             [{"position": p, "record": base64}], the case's records in stream order
    inclusion          {"tree_size": n, "proof": [base64]}: ONE multi-leaf inclusion proof of all
                       events (leaf = position - 1) against the checkpoint's root
    checkpoint         the C2SP signed checkpoint note: the log's signature and the witnesses'
                       timestamped cosignatures
    checkpoint_key_id  hex key id of the checkpoint key (its enrolment is a registry event)
    registry           [{"position": p, "record": base64, "proof": [base64]}], ascending: the
                       `ledger/keys` events the signatures depend on (genesis, enrolments,
                       rotations, revocations), each with its own RFC 9162 inclusion proof
    ledger_keys        {"root_key_id": hex, "witnesses": [vkey]}: the keys the exporting ledger
                       CLAIMS; used only without --trust, and then the verdict says
                       "untrusted: keys from the bundle"

A record is b"NKE1" ‖ key id (32) ‖ Ed25519 signature (64) ‖ body (RFC 8785 JSON); the
signature covers b"neikong/event/v1\\n" ‖ body; key id = SHA-256(raw public key); the Merkle
leaf of a record is SHA-256(0x00 ‖ record) (RFC 6962).

Trust file (`--trust KEYS`), one entry per line; lines starting with `#` are comments::

    root <64 hex digits>     the ledger's root key id (required)
    witness <vkey>           a trusted witness cosignature key (type 0x04); repeatable
    checkpoint <vkey>        optional, repeatable: pin the log's checkpoint note key(s)
    quorum <n>               trusted witnesses that must have cosigned (default: all listed)

Checks (each printed with PASS or FAIL):

- format: the file is the canonical encoding of a well-formed bundle.
- root_key: the genesis event names the trusted root key and is signed by it.
- registry: every registry event is included in the checkpoint, signed by the root key or an
  admin key valid at its position, and is a legal change of the registry.
- checkpoint_signature: the checkpoint is signed (note key name = origin) by the checkpoint key
  of the registry, enrolled at or before its size and not ended at it.
- cosignatures: every cosignature verifies; every signature line on the note is attributable;
  enough trusted witnesses cosigned.
- inclusion: the one multi-leaf proof puts every event at its position under the signed root.
- signatures: every event is signed by the key its record names.
- key_validity: that key was enrolled before the event's position and not rotated or revoked
  before it, and its scope allows the event (system, stream prefix, type).
- chain: stream_seq runs 1..n without gaps, each `prev` is the SHA-256 of the previous body,
  positions follow stream order, and if a terminal event closes the case it is the last event
  and its `final_seq` equals its stream_seq (`closure` agrees).

Limits (stated, not hidden): key validity is judged from the registry events in the bundle. A
revocation that the exporting ledger left out of the bundle cannot be seen here; `neikong verify`
on the whole log, or a later bundle, shows it. An open case is complete only up to its last
event at the checkpoint.

The Merkle and signed-note functions below are verbatim copies of `ledger/merkle.py` and
`ledger/note.py` (a test keeps them identical), so this file needs nothing from neikong.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import fnmatch
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "CHECK_NAMES",
    "FORMAT",
    "BundleError",
    "Check",
    "Checkpoint",
    "NoteError",
    "NoteSignature",
    "ProofError",
    "SignedNote",
    "TrustKeys",
    "Verdict",
    "cosignature_message",
    "encode_bundle",
    "leaf_hash",
    "main",
    "multi_proof_nodes",
    "node_hash",
    "note_key_hash",
    "parse_signature_lines",
    "parse_trust",
    "parse_vkey",
    "verify_bundle",
    "verify_cosignature",
    "verify_inclusion",
    "verify_multi_inclusion",
    "verify_note",
    "verify_note_signature",
]

# --- Merkle verification (verbatim from ledger/merkle.py) ----------------------------------

HASH_SIZE = 32


MAX_TREE_SIZE = 2**64 - 1


class ProofError(ValueError):
    """A Merkle proof did not verify. Carries the evidence.

    `kind` is one of: `"bad_argument"` (index/size out of range, size going backwards),
    `"bad_hash"` (a hash that is not 32 bytes), `"bad_length"` (proof has the wrong number of
    hashes), `"root_mismatch"` (the recomputed root differs from the claimed one). `expected`
    and `computed` hold the claimed and recomputed values (bytes for hashes, int for lengths).
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        expected: bytes | int | None = None,
        computed: bytes | int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.expected = expected
        self.computed = computed


def leaf_hash(record: bytes) -> bytes:
    """Return SHA-256(0x00 ‖ record), the RFC 6962 hash of one log entry."""
    return hashlib.sha256(b"\x00" + record).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return SHA-256(0x01 ‖ left ‖ right), the RFC 6962 hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """Largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_size(name: str, value: int, *, low: int = 0, high: int = MAX_TREE_SIZE) -> None:
    if not low <= value <= high:
        raise ProofError(f"{name} {value} is outside [{low}, {high}]", kind="bad_argument")


def _check_hashes(name: str, hashes: Sequence[bytes]) -> None:
    for i, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise ProofError(
                f"{name}[{i}] has {len(h)} bytes, want {HASH_SIZE}",
                kind="bad_hash",
                expected=HASH_SIZE,
                computed=len(h),
            )


def _check_length(what: str, proof: Sequence[bytes], want: int) -> None:
    if len(proof) != want:
        raise ProofError(
            f"{what} has {len(proof)} hashes, want {want}",
            kind="bad_length",
            expected=want,
            computed=len(proof),
        )


def _check_root(what: str, claimed: bytes, computed: bytes) -> None:
    if claimed != computed:
        raise ProofError(
            f"{what}: computed {computed.hex()}, claimed {claimed.hex()}",
            kind="root_mismatch",
            expected=claimed,
            computed=computed,
        )


def _inclusion_proof_length(index: int, size: int) -> int:
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify that `leaf_hash` is leaf `index` of the tree of `size` leaves with `root`.

    Implements RFC 9162 §2.1.3.2. Returns `None` on success; raises `ProofError` otherwise
    (`index >= size`, a proof of the wrong length, a hash that is not 32 bytes, a root mismatch).
    """
    _check_size("tree size", size, low=1)
    _check_size("leaf index", index, high=size - 1)
    _check_hashes("leaf hash", [leaf_hash])
    _check_hashes("proof", proof)
    _check_length("inclusion proof", proof, _inclusion_proof_length(index, size))
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:  # unreachable after the length check; kept as RFC 9162 step 4a
            raise ProofError("inclusion proof is too long", kind="bad_length")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:  # unreachable after the length check; kept as RFC 9162 step 5
        raise ProofError("inclusion proof is too short", kind="bad_length")
    _check_root(f"inclusion of leaf {index} in tree of size {size}", root, r)


def multi_proof_nodes(indices: Iterable[int], size: int) -> list[tuple[int, int]]:
    """The subtrees whose hashes form the multi-leaf inclusion proof, as [start, end) ranges.

    Format: the proof for a set S of leaf indices in a tree of `size` leaves is the list of
    hashes of the *maximal* RFC 6962 subtrees that contain no leaf of S, ordered by their first
    leaf (left to right). It is the smallest set of hashes from which the root follows, given the
    leaves of S; for one leaf it holds the RFC 9162 audit path, but ordered left to right
    instead of bottom up. Duplicate indices count once. Raises `ProofError` on an empty S or an
    index outside [0, size).
    """
    _check_size("tree size", size, low=1)
    wanted = sorted(set(indices))
    if not wanted:
        raise ProofError("multi-leaf proof needs at least one leaf", kind="bad_argument")
    _check_size("leaf index", wanted[0], high=size - 1)
    _check_size("leaf index", wanted[-1], high=size - 1)
    nodes: list[tuple[int, int]] = []
    stack = [(0, size, 0, len(wanted))]  # subtree [lo, hi) holding wanted[a:b]
    while stack:
        lo, hi, a, b = stack.pop()
        if a == b:
            nodes.append((lo, hi))
        elif hi - lo > 1:
            mid = lo + _largest_power_of_two_below(hi - lo)
            m = bisect.bisect_left(wanted, mid, a, b)
            stack.append((mid, hi, m, b))  # pushed first, so visited after the left half
            stack.append((lo, mid, a, m))
    return nodes


def verify_multi_inclusion(
    leaves: Mapping[int, bytes], size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify that every `leaves[i]` (a leaf hash) is leaf i of the tree (`size`, `root`).

    `proof` MUST be in the format of `multi_proof_nodes` (as made by
    `ledger.merkle_proofs.multi_inclusion_proof`). Returns `None` only if the root recomputed
    from all given leaves and exactly `len(multi_proof_nodes(leaves, size))` proof hashes
    equals `root`; raises `ProofError` otherwise. One bad leaf fails the whole proof.
    """
    nodes = multi_proof_nodes(leaves.keys(), size)
    _check_hashes("leaf hash", list(leaves.values()))
    _check_hashes("proof", proof)
    _check_length(f"multi-leaf proof for {len(leaves)} leaves", proof, len(nodes))
    known = dict(zip(nodes, proof, strict=True))
    known.update(((i, i + 1), h) for i, h in leaves.items())

    def subtree(lo: int, hi: int) -> bytes:
        h = known.get((lo, hi))
        if h is not None:
            return h
        mid = lo + _largest_power_of_two_below(hi - lo)
        return node_hash(subtree(lo, mid), subtree(mid, hi))

    _check_root(f"multi-leaf inclusion in tree of size {size}", root, subtree(0, size))


# --- signed notes, checkpoints, cosignatures (verbatim from ledger/note.py) ---------------

SIG_TYPE_ED25519 = 0x01


SIG_TYPE_COSIGNATURE = 0x04


COSIGNATURE_HEADER = b"cosignature/v1\n"


MAX_SIGNATURES = 100


MAX_TIMESTAMP = 2**63 - 1


_MAX_SIZE = 2**64 - 1


_KEY_HASH_SIZE = 4


_ED25519_PUBLIC_SIZE = 32


_ED25519_SIGNATURE_SIZE = 64


_ROOT_SIZE = 32


_DASH = "\u2014 "  # em dash, space: the start of every signature line


_SIZE_RE = re.compile(r"0|[1-9][0-9]*", re.ASCII)


_HEX8_RE = re.compile(r"[0-9a-fA-F]{8}", re.ASCII)


class NoteError(ValueError):
    """A signed note, checkpoint, vkey or signature is malformed or does not verify."""


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64 (RFC 4648 §4): alphabet, padding and canonical trailing bits."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise NoteError(f"{what} is not valid base64") from exc
    if _b64encode(raw) != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def _check_text(data: bytes, what: str) -> str:
    """Decode UTF-8 and refuse control characters other than newline."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError(f"{what} is not valid UTF-8") from exc
    for i, ch in enumerate(text):
        if ch < " " and ch != "\n":
            raise NoteError(f"{what} has control character {ord(ch):#04x} at character {i}")
    return text


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError(f"{what} is not encodable as UTF-8") from exc


def _check_name(name: str) -> None:
    if not name:
        raise NoteError("key name is empty")
    _utf8(name, "key name")
    for ch in name:
        if ch.isspace() or ch == "+" or ch < " ":
            raise NoteError(f"key name {name!r} contains {ch!r} (spaces and '+' are forbidden)")


def _check_public(public_raw: bytes) -> None:
    if len(public_raw) != _ED25519_PUBLIC_SIZE:
        raise NoteError(
            f"Ed25519 public key has {len(public_raw)} bytes, want {_ED25519_PUBLIC_SIZE}"
        )


def _ed25519_ok(public_raw: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Checkpoint:
    """The body of a C2SP tlog-checkpoint: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise NoteError("checkpoint origin must be one non-empty line")
        _check_text(_utf8(self.origin, "checkpoint origin"), "checkpoint origin")
        if not 0 <= self.size <= _MAX_SIZE:
            raise NoteError(f"checkpoint size {self.size} is outside [0, 2^64-1]")
        if len(self.root) != _ROOT_SIZE:
            raise NoteError(f"checkpoint root has {len(self.root)} bytes, want {_ROOT_SIZE}")
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise NoteError("checkpoint extension lines must be non-empty single lines")
            _check_text(_utf8(ext, "extension line"), "checkpoint extension line")

    def body(self) -> bytes:
        """The note text: `origin\\nsize\\nbase64(root)\\n` followed by the extension lines."""
        lines = [self.origin, str(self.size), _b64encode(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines).encode("utf-8")

    @classmethod
    def parse_body(cls, body: bytes) -> Checkpoint:
        """Parse a checkpoint note text. Raises `NoteError` unless it is exactly canonical."""
        text = _check_text(body, "checkpoint")
        if not text.endswith("\n"):
            raise NoteError("checkpoint does not end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError(f"checkpoint has {len(lines)} lines, want at least 3")
        if any(not line for line in lines):
            raise NoteError("checkpoint has an empty line")
        origin, size_text, root_text, *extensions = lines
        if not _SIZE_RE.fullmatch(size_text):
            raise NoteError(f"checkpoint size {size_text!r} is not a canonical decimal")
        return cls(
            origin, int(size_text), _b64decode(root_text, "checkpoint root"), tuple(extensions)
        )


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key hash, signature bytes (after the key hash)."""

    name: str
    key_hash: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.key_hash) != _KEY_HASH_SIZE:
            raise NoteError(f"key hash has {len(self.key_hash)} bytes, want {_KEY_HASH_SIZE}")
        if not self.signature:
            raise NoteError("signature is empty")

    def line(self) -> bytes:
        """`— <name> base64(key hash ‖ signature)\\n` (UTF-8)."""
        return f"{_DASH}{self.name} {_b64encode(self.key_hash + self.signature)}\n".encode()

    @classmethod
    def parse_line(cls, line: str) -> NoteSignature:
        """Parse one signature line (without its newline)."""
        if not line.startswith(_DASH):
            raise NoteError("signature line does not start with an em dash and a space")
        name, sep, encoded = line[len(_DASH) :].partition(" ")
        if not sep:
            raise NoteError("signature line has no space between name and signature")
        _check_name(name)
        raw = _b64decode(encoded, "signature")
        if len(raw) <= _KEY_HASH_SIZE:
            raise NoteError(f"signature has {len(raw)} bytes, want more than {_KEY_HASH_SIZE}")
        return cls(name, raw[:_KEY_HASH_SIZE], raw[_KEY_HASH_SIZE:])


def parse_signature_lines(data: bytes) -> tuple[NoteSignature, ...]:
    """Parse a block of one or more signature lines, each ending in a newline.

    This is also the body of a tlog-witness add-checkpoint response.
    """
    text = _check_text(data, "signature block")
    if not text or not text.endswith("\n"):
        raise NoteError("signature block is empty or does not end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"{len(lines)} signatures exceed the limit of {MAX_SIGNATURES}")
    return tuple(NoteSignature.parse_line(line) for line in lines)


@dataclass(frozen=True)
class SignedNote:
    """A C2SP signed note: the note text (ending in a newline) and its signatures."""

    body: bytes
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        text = _check_text(self.body, "note text")
        if not text.endswith("\n"):
            raise NoteError("note text does not end in a newline")
        if not self.signatures:
            raise NoteError("a signed note needs at least one signature")
        if len(self.signatures) > MAX_SIGNATURES:
            raise NoteError(f"{len(self.signatures)} signatures exceed {MAX_SIGNATURES}")

    def encode(self) -> bytes:
        """The note text, a blank line, then one line per signature."""
        return self.body + b"\n" + b"".join(sig.line() for sig in self.signatures)

    def with_signatures(self, *extra: NoteSignature) -> SignedNote:
        """A copy with `extra` appended (e.g. cosignatures collected from witnesses)."""
        return SignedNote(self.body, self.signatures + tuple(extra))

    @classmethod
    def parse(cls, data: bytes) -> SignedNote:
        """Parse a signed note. The text ends at the last blank line. Raises `NoteError`."""
        _check_text(data, "signed note")
        split = data.rfind(b"\n\n")
        if split < 0:
            raise NoteError("signed note has no blank line before its signatures")
        return cls(data[: split + 1], parse_signature_lines(data[split + 2 :]))


def note_key_hash(name: str, public_raw: bytes, sig_type: int = SIG_TYPE_ED25519) -> bytes:
    """SHA-256(name ‖ 0x0A ‖ sig_type ‖ public key)[:4] (signed-note key ID)."""
    _check_name(name)
    if not 0 <= sig_type <= 0xFF:
        raise NoteError(f"signature type {sig_type} is not a byte")
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_raw).digest()[:4]


def parse_vkey(text: str) -> tuple[str, bytes, int]:
    """Parse a vkey into (name, raw public key, signature type), checking its key hash.

    Only Ed25519 types 0x01 (note signatures) and 0x04 (cosignatures) are accepted.
    """
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise NoteError("vkey is not <name>+<key hash>+<key>")
    name, hash_hex, encoded = parts
    _check_name(name)
    if not _HEX8_RE.fullmatch(hash_hex):
        raise NoteError(f"vkey key hash {hash_hex!r} is not 8 hex digits")
    raw = _b64decode(encoded, "vkey key")
    if not raw or raw[0] not in (SIG_TYPE_ED25519, SIG_TYPE_COSIGNATURE):
        raise NoteError("vkey is not an Ed25519 note (0x01) or cosignature (0x04) key")
    sig_type, public_raw = raw[0], raw[1:]
    _check_public(public_raw)
    if note_key_hash(name, public_raw, sig_type) != bytes.fromhex(hash_hex):
        raise NoteError(f"vkey key hash {hash_hex} does not match its name and key")
    return name, public_raw, sig_type


def verify_note_signature(body: bytes, sig: NoteSignature, name: str, public_raw: bytes) -> bool:
    """True iff `sig` is a valid type-0x01 signature of `body` by the key (`name`, `public_raw`).

    A signature under another name or key hash is not this key's: False.
    """
    _check_public(public_raw)
    if sig.name != name or sig.key_hash != note_key_hash(name, public_raw, SIG_TYPE_ED25519):
        return False
    if len(sig.signature) != _ED25519_SIGNATURE_SIZE:
        return False
    return _ed25519_ok(public_raw, sig.signature, body)


def verify_note(note: SignedNote, name: str, public_raw: bytes) -> NoteSignature:
    """Return the signature of the trusted key (`name`, `public_raw`) on `note`.

    Signatures of other keys are ignored. Raises `NoteError` if the trusted key did not sign
    or if any signature carrying its name and key hash fails to verify (signed-note: such a
    note SHOULD be rejected as a whole).
    """
    key_hash = note_key_hash(name, public_raw, SIG_TYPE_ED25519)
    found: NoteSignature | None = None
    for sig in note.signatures:
        if sig.name != name or sig.key_hash != key_hash:
            continue
        if not verify_note_signature(note.body, sig, name, public_raw):
            raise NoteError(f"signature by {name} ({key_hash.hex()}) does not verify")
        found = found or sig
    if found is None:
        raise NoteError(f"note is not signed by {name} ({key_hash.hex()})")
    return found


def cosignature_message(checkpoint_body: bytes, timestamp: int) -> bytes:
    """`cosignature/v1\\ntime <timestamp>\\n` followed by the checkpoint body."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError(f"cosignature timestamp {timestamp} is outside [0, 2^63-1]")
    return COSIGNATURE_HEADER + b"time %d\n" % timestamp + checkpoint_body


def verify_cosignature(
    checkpoint_body: bytes, sig: NoteSignature, name: str, public_raw: bytes
) -> int:
    """Verify a cosignature by witness (`name`, `public_raw`); return its timestamp.

    Raises `NoteError` for another name or key hash, a wrong length, a timestamp above
    2^63 - 1, or a signature that does not verify.
    """
    _check_public(public_raw)
    key_hash = note_key_hash(name, public_raw, SIG_TYPE_COSIGNATURE)
    if sig.name != name or sig.key_hash != key_hash:
        raise NoteError(f"signature is not by cosigner {name} ({key_hash.hex()})")
    if len(sig.signature) != 8 + _ED25519_SIGNATURE_SIZE:
        raise NoteError(f"cosignature has {len(sig.signature)} bytes, want 72")
    timestamp = int.from_bytes(sig.signature[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        raise NoteError(f"cosignature timestamp {timestamp} exceeds 2^63-1")
    message = cosignature_message(checkpoint_body, timestamp)
    if not _ed25519_ok(public_raw, sig.signature[8:], message):
        raise NoteError(f"cosignature by {name} ({key_hash.hex()}) does not verify")
    return timestamp


# --- the bundle ----------------------------------------------------------------------------

FORMAT = "neikong-evidence-bundle/1"
CHECK_NAMES = (
    "format",
    "root_key",
    "registry",
    "checkpoint_signature",
    "cosignatures",
    "inclusion",
    "signatures",
    "key_validity",
    "chain",
)
RECORD_MAGIC = b"NKE1"
SIGNING_PREFIX = b"neikong/event/v1\n"
_HEADER_LEN = 4 + 32 + 64
REGISTRY_STREAM = "ledger/keys"
REGISTRY_TYPES = frozenset({"ledger.genesis", "key.enrolled", "key.rotated", "key.revoked"})
TERMINAL_TYPES = frozenset({"matter.concluded", "matter.withdrawn"})
ADMIN_PURPOSE = "admin"
CHECKPOINT_PURPOSE = "checkpoint"
_KEY_ID_RE = re.compile(r"[0-9a-f]{64}", re.ASCII)
_MAX_SHOWN = 5  # problems listed per check


class BundleError(ValueError):
    """The file is not a well-formed bundle, or the trust file is malformed."""


def encode_bundle(bundle: Mapping[str, Any]) -> bytes:
    """The one byte form of a bundle: sorted keys, indent 1, UTF-8, final newline."""
    text = json.dumps(bundle, ensure_ascii=False, indent=1, sort_keys=True, allow_nan=False)
    return text.encode("utf-8") + b"\n"


@dataclass(frozen=True)
class _Entry:
    """A record of the bundle at a log position (a case event or a registry event)."""

    position: int
    record: bytes
    proof: tuple[bytes, ...] = ()

    @property
    def framed(self) -> bool:
        return len(self.record) > _HEADER_LEN and self.record.startswith(RECORD_MAGIC)

    @property
    def key_id(self) -> bytes:
        return self.record[4:36]

    @property
    def signature(self) -> bytes:
        return self.record[36:_HEADER_LEN]

    @property
    def body(self) -> bytes:
        return self.record[_HEADER_LEN:]

    def value(self) -> dict[str, Any]:
        """The parsed body; raises `BundleError` if it is not a JSON object."""
        if not self.framed:
            raise BundleError("not a neikong record (NKE1 header)")
        try:
            value = json.loads(self.body.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, ValueError) as exc:
            raise BundleError(f"body is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise BundleError("body is not a JSON object")
        return value


@dataclass(frozen=True)
class _Bundle:
    origin: str
    stream: str
    closure: tuple[int, str] | None
    events: tuple[_Entry, ...]
    tree_size: int
    proof: tuple[bytes, ...]
    checkpoint: str
    checkpoint_key_id: bytes
    registry: tuple[_Entry, ...]
    root_key_id: bytes
    witnesses: tuple[str, ...]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _fields(obj: Any, where: str, keys: Iterable[str]) -> dict[str, Any]:
    want = set(keys)
    if not isinstance(obj, dict):
        raise BundleError(f"{where} is not an object")
    if set(obj) != want:
        extra, missing = sorted(set(obj) - want), sorted(want - set(obj))
        raise BundleError(f"{where}: unexpected fields {extra}, missing fields {missing}")
    return obj


def _int(value: Any, where: str, low: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= MAX_TREE_SIZE:
        raise BundleError(f"{where} is not an integer in [{low}, 2^64-1]")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BundleError(f"{where} is not a non-empty string")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise BundleError(f"{where} is not a list")
    return value


def _b64(value: Any, where: str) -> bytes:
    try:
        return _b64decode(_str(value, where), where)
    except NoteError as exc:
        raise BundleError(str(exc)) from None


def _key_id(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or not _KEY_ID_RE.fullmatch(value):
        raise BundleError(f"{where} is not 64 lowercase hex digits")
    return bytes.fromhex(value)


def _canonical_vkey(text: str) -> str:
    """`text` with its key hash in lowercase hex (the one spelling `encode_bundle` allows)."""
    name, public, sig_type = parse_vkey(text)
    key_hash = note_key_hash(name, public, sig_type)
    return f"{name}+{key_hash.hex()}+{_b64encode(bytes([sig_type]) + public)}"


def _vkey_key(text: str) -> tuple[str, bytes] | None:
    """(name, public key) of a vkey, None if it does not parse."""
    try:
        return parse_vkey(text)[:2]
    except NoteError:
        return None


def _witness_vkey(value: Any, where: str) -> str:
    text = _str(value, where)
    try:
        canonical = _canonical_vkey(text)
    except NoteError as exc:
        raise BundleError(f"{where}: {exc}") from None
    if canonical != text or parse_vkey(text)[2] != SIG_TYPE_COSIGNATURE:
        raise BundleError(f"{where} is not a canonical cosignature (type 0x04) vkey")
    return text


def _hashes(value: Any, where: str) -> tuple[bytes, ...]:
    return tuple(_b64(h, f"{where}[{i}]") for i, h in enumerate(_list(value, where)))


def _entry(value: Any, where: str, *, proof: bool) -> _Entry:
    keys = ("position", "record", "proof") if proof else ("position", "record")
    obj = _fields(value, where, keys)
    return _Entry(
        _int(obj["position"], f"{where}.position"),
        _b64(obj["record"], f"{where}.record"),
        _hashes(obj["proof"], f"{where}.proof") if proof else (),
    )


def _parse_bundle(data: bytes) -> _Bundle:
    """Parse the canonical bundle encoding; raises `BundleError` naming the first problem."""
    try:
        text = data.decode("utf-8")
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise BundleError(f"not UTF-8 at byte {exc.start}") from None
    except ValueError as exc:
        raise BundleError(f"not JSON: {exc}") from None
    top = _fields(
        obj,
        "bundle",
        (
            "format",
            "origin",
            "stream",
            "closure",
            "events",
            "inclusion",
            "checkpoint",
            "checkpoint_key_id",
            "registry",
            "ledger_keys",
        ),
    )
    if top["format"] != FORMAT:
        raise BundleError(f"format is {top['format']!r}, want {FORMAT!r}")
    if encode_bundle(top) != data:
        raise BundleError("the file is not in the canonical bundle encoding (bytes changed)")
    closure = top["closure"]
    if closure is not None:
        fields = _fields(closure, "closure", ("final_seq", "type"))
        closure = (_int(fields["final_seq"], "closure.final_seq"), _str(fields["type"], "type"))
    inclusion = _fields(top["inclusion"], "inclusion", ("tree_size", "proof"))
    keys = _fields(top["ledger_keys"], "ledger_keys", ("root_key_id", "witnesses"))
    witnesses = tuple(
        _witness_vkey(w, f"ledger_keys.witnesses[{i}]")
        for i, w in enumerate(_list(keys["witnesses"], "ledger_keys.witnesses"))
    )
    if list(witnesses) != sorted(set(witnesses)):
        raise BundleError("ledger_keys.witnesses is not a sorted list of distinct vkeys")
    events = tuple(_entry(e, f"events[{i}]", proof=False) for i, e in enumerate(top["events"]))
    if not events:
        raise BundleError("events is empty")
    registry = tuple(
        _entry(e, f"registry[{i}]", proof=True)
        for i, e in enumerate(_list(top["registry"], "registry"))
    )
    return _Bundle(
        origin=_str(top["origin"], "origin"),
        stream=_str(top["stream"], "stream"),
        closure=closure,
        events=events,
        tree_size=_int(inclusion["tree_size"], "inclusion.tree_size"),
        proof=_hashes(inclusion["proof"], "inclusion.proof"),
        checkpoint=_str(top["checkpoint"], "checkpoint"),
        checkpoint_key_id=_key_id(top["checkpoint_key_id"], "checkpoint_key_id"),
        registry=registry,
        root_key_id=_key_id(keys["root_key_id"], "ledger_keys.root_key_id"),
        witnesses=witnesses,
    )


# --- trust ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustKeys:
    """Keys the verifier trusts: root key id, witness vkeys, optional pinned checkpoint vkeys.

    `quorum` is how many of `witnesses` must have cosigned (None: all of them).
    """

    root_key_id: bytes
    witnesses: tuple[str, ...] = ()
    checkpoint_keys: tuple[str, ...] = ()
    quorum: int | None = None
    source: str = "--trust"


def parse_trust(text: str, source: str = "--trust") -> TrustKeys:
    """Parse a trust file (see the module docstring). Raises `BundleError`."""
    root: bytes | None = None
    witnesses: list[str] = []
    pinned: list[str] = []
    quorum: int | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, value = line.partition(" ")
        value = value.strip()
        where = f"{source}:{number}"
        try:
            if word == "root" and root is None:
                root = _key_id(value, f"{where}: root key id")
            elif word in ("witness", "checkpoint"):
                want = SIG_TYPE_COSIGNATURE if word == "witness" else SIG_TYPE_ED25519
                if parse_vkey(value)[2] != want:
                    raise BundleError(f"{where}: {word} key must be of type {want:#04x}")
                (witnesses if word == "witness" else pinned).append(_canonical_vkey(value))
            elif word == "quorum" and quorum is None and value.isdigit():
                quorum = int(value)
            else:
                raise BundleError(f"{where}: unexpected line {line!r}")
        except NoteError as exc:
            raise BundleError(f"{where}: {exc}") from None
    if root is None:
        raise BundleError(f"{source}: no 'root <key id>' line")
    if quorum is not None and quorum > len(set(witnesses)):
        raise BundleError(f"{source}: quorum {quorum} exceeds the {len(witnesses)} witnesses")
    return TrustKeys(root, tuple(witnesses), tuple(pinned), quorum, source)


# --- verdict -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One verdict line: `ok` is False when the check failed or could not run."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    """Every check's result; `ok` only if all passed. `trusted`: keys came from --trust."""

    checks: tuple[Check, ...]
    trusted: bool
    summary: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]

    def render(self) -> str:
        lines = [self.summary] if self.summary else []
        lines += [f"{'PASS' if c.ok else 'FAIL'}  {c.name:<21} {c.detail}" for c in self.checks]
        if self.ok:
            verdict = f"VERDICT: PASS - all {len(self.checks)} checks passed"
            if not self.trusted:
                verdict += " (untrusted: keys from the bundle; pass --trust KEYS to use yours)"
        else:
            verdict = "VERDICT: FAIL - failed: " + ", ".join(self.failed)
        return "\n".join([*lines, verdict]) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "trusted": self.trusted,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
        }


def _utc(timestamp: int) -> str:
    """A cosignature timestamp as UTC time (the raw number if it is beyond the calendar)."""
    try:
        return f"{datetime.fromtimestamp(timestamp, UTC):%Y-%m-%dT%H:%M:%SZ}"
    except (OverflowError, OSError, ValueError):
        return f"{timestamp} s"


def _result(name: str, problems: Sequence[str], success: str) -> Check:
    if not problems:
        return Check(name, True, success)
    shown = "; ".join(problems[:_MAX_SHOWN])
    more = f" (+{len(problems) - _MAX_SHOWN} more)" if len(problems) > _MAX_SHOWN else ""
    return Check(name, False, shown + more)


# --- the key registry, folded from the bundle's registry events -----------------------------


@dataclass
class _Key:
    key_id: bytes
    public_raw: bytes
    purpose: str
    scope: tuple[str, tuple[str, ...], tuple[str, ...]]  # system, stream prefixes, types
    enrolled_at: int
    ended_at: int | None = None
    end_reason: str | None = None

    def valid_at(self, position: int) -> bool:
        return self.enrolled_at < position and (self.ended_at is None or position < self.ended_at)

    def scope_problem(self, value: Mapping[str, Any]) -> str | None:
        system, prefixes, types = self.scope
        producer = value.get("producer")
        stream, event_type = value.get("stream"), value.get("type")
        if not isinstance(producer, dict) or producer.get("system") != system:
            return f"producer system is not {system!r}"
        if not isinstance(stream, str) or not stream.startswith(prefixes):
            return f"stream is outside {list(prefixes)}"
        if not isinstance(event_type, str) or not any(
            fnmatch.fnmatchcase(event_type, p) for p in types
        ):
            return f"type {event_type!r} is not in {list(types)}"
        return None


def _public(value: Any) -> tuple[bytes, bytes]:
    """(key id, raw public key) of a {"key_id", "public_key"} object; checks the id."""
    if not isinstance(value, dict):
        raise BundleError("key is not an object")
    raw = _b64(value.get("public_key"), "public_key")
    key_id = _key_id(value.get("key_id"), "key_id")
    if len(raw) != 32 or hashlib.sha256(raw).digest() != key_id:
        raise BundleError(f"key_id {key_id.hex()[:16]}... is not SHA-256 of the public key")
    return key_id, raw


def _scope(value: Any) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    obj = _fields(value, "scope", ("system", "stream_prefixes", "event_types"))
    prefixes = tuple(_str(p, "stream prefix") for p in _list(obj["stream_prefixes"], "prefixes"))
    types = tuple(_str(t, "event type") for t in _list(obj["event_types"], "event_types"))
    return _str(obj["system"], "scope.system"), prefixes, types


def _ed25519_valid(public_raw: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass
class _Registry:
    keys: dict[bytes, _Key] = field(default_factory=dict)
    root: bytes | None = None  # the key the genesis names
    problems: list[str] = field(default_factory=list)

    def fold(self, entry: _Entry, value: dict[str, Any]) -> None:
        """Check one registry event (signer, signature, change) and apply it."""
        where = f"registry event at {entry.position}"
        data, event_type = value.get("data"), value.get("type")
        if value.get("stream") != REGISTRY_STREAM or event_type not in REGISTRY_TYPES:
            raise BundleError(f"{where} is not a {REGISTRY_STREAM} event")
        if not isinstance(data, dict):
            raise BundleError(f"{where} has no data object")
        if event_type == "ledger.genesis":
            if self.keys or entry.position != 1:
                raise BundleError(f"{where}: a genesis event must be the first entry of the log")
            key_id, raw = _public(data.get("root_key"))
            if entry.key_id != key_id:
                raise BundleError(f"{where}: the genesis is not signed by the key it names")
            signer = _Key(key_id, raw, ADMIN_PURPOSE, _scope(data.get("scope")), 0)
        else:
            found = self.keys.get(entry.key_id)
            if found is None or found.purpose != ADMIN_PURPOSE:
                raise BundleError(f"{where} is not signed by an admin key of the bundle")
            if not found.valid_at(entry.position):
                raise BundleError(f"{where} is signed by an admin key not valid there")
            signer = found
        if not _ed25519_valid(signer.public_raw, entry.signature, SIGNING_PREFIX + entry.body):
            raise BundleError(f"{where}: the signature does not verify")
        problem = signer.scope_problem(value)
        if problem is not None:
            raise BundleError(f"{where}: out of the admin key's scope ({problem})")
        self._apply(entry.position, event_type, data, signer)

    def _apply(self, position: int, event_type: str, data: dict[str, Any], signer: _Key) -> None:
        if event_type == "ledger.genesis":
            self.keys[signer.key_id] = signer
            self.root = signer.key_id
        elif event_type in ("key.enrolled", "key.rotated"):
            key_id, raw = _public(data.get("key"))
            if key_id in self.keys:
                raise BundleError(f"key {key_id.hex()[:16]}... is enrolled twice")
            if event_type == "key.enrolled":
                purpose, scope = _str(data.get("purpose"), "purpose"), _scope(data.get("scope"))
            else:
                old = self._active(data.get("old_key_id"), position)
                old.ended_at, old.end_reason = position, "rotated"
                purpose, scope = old.purpose, old.scope
            self.keys[key_id] = _Key(key_id, raw, purpose, scope, position)
        else:  # key.revoked
            entry = self._active(data.get("key_id"), position)
            entry.ended_at, entry.end_reason = position, "revoked"

    def _active(self, hex_id: Any, position: int) -> _Key:
        key_id = _key_id(hex_id, "key id")
        found = self.keys.get(key_id)
        if found is None or not found.valid_at(position):
            raise BundleError(f"key {key_id.hex()[:16]}... is not active at {position}")
        if key_id == self.root:
            raise BundleError("the root key cannot be rotated or revoked")
        return found


# --- the checks ----------------------------------------------------------------------------


class _Verifier:
    def __init__(self, bundle: _Bundle, trust: TrustKeys | None) -> None:
        self.b = bundle
        self.trust = trust
        self.note: SignedNote | None = None
        self.checkpoint: Checkpoint | None = None
        self.note_problem = ""
        try:
            self.note = SignedNote.parse(bundle.checkpoint.encode("utf-8"))
            self.checkpoint = Checkpoint.parse_body(self.note.body)
        except (NoteError, UnicodeEncodeError) as exc:
            self.note_problem = f"the checkpoint note is malformed: {exc}"
        self.registry = _Registry()
        self.registry_inclusion: list[str] = []
        self.values: dict[int, dict[str, Any]] = {}
        self.value_problems: dict[int, str] = {}
        for event in bundle.events:
            try:
                self.values[event.position] = event.value()
            except BundleError as exc:
                self.value_problems[event.position] = str(exc)
        self._fold_registry()

    @property
    def root_expected(self) -> bytes:
        return self.trust.root_key_id if self.trust else self.b.root_key_id

    def _fold_registry(self) -> None:
        last = 0
        for entry in self.b.registry:
            where = f"registry event at {entry.position}"
            if entry.position <= last:
                self.registry.problems.append(f"{where} is out of position order")
            last = max(last, entry.position)
            if self.checkpoint is not None:
                try:
                    verify_inclusion(
                        entry.position - 1,
                        self.checkpoint.size,
                        leaf_hash(entry.record),
                        entry.proof,
                        self.checkpoint.root,
                    )
                except ProofError as exc:
                    self.registry_inclusion.append(f"{where} is not included: {exc}")
            try:
                value = entry.value()
            except BundleError as exc:
                self.registry.problems.append(f"{where}: {exc}")
                continue
            try:
                self.registry.fold(entry, value)
            except BundleError as exc:
                self.registry.problems.append(str(exc))

    def run(self) -> list[Check]:
        return [
            self.check_root_key(),
            self.check_registry(),
            self.check_checkpoint_signature(),
            self.check_cosignatures(),
            self.check_inclusion(),
            self.check_signatures(),
            self.check_key_validity(),
            self.check_chain(),
        ]

    def check_root_key(self) -> Check:
        root = self.registry.root
        problems = []
        if root is None:
            problems.append("the bundle holds no valid genesis event (position 1)")
        else:
            if root != self.b.root_key_id:
                problems.append(
                    f"the genesis names root key {root.hex()}, the bundle claims "
                    f"{self.b.root_key_id.hex()}"
                )
            if self.trust and root != self.trust.root_key_id:
                problems.append(
                    f"the genesis names root key {root.hex()}, but {self.trust.source} trusts "
                    f"{self.trust.root_key_id.hex()}"
                )
        source = (
            f"trusted ({self.trust.source})" if self.trust else "untrusted: keys from the bundle"
        )
        ok = f"root key {self.root_expected.hex()} signs the genesis; {source}"
        return _result("root_key", problems, ok)

    def check_registry(self) -> Check:
        problems = self.registry.problems + self.registry_inclusion
        if self.checkpoint is None:
            problems = [*problems, f"inclusion not checked: {self.note_problem}"]
        keys = len(self.registry.keys)
        ok = f"{len(self.b.registry)} registry events included, admin-signed, legal ({keys} keys)"
        return _result("registry", problems, ok)

    def _checkpoint_key(self) -> tuple[_Key | None, str]:
        key = self.registry.keys.get(self.b.checkpoint_key_id)
        if key is None:
            return None, "the checkpoint key's enrolment is not among the registry events"
        if key.purpose != CHECKPOINT_PURPOSE:
            return None, f"key {key.key_id.hex()[:16]}... is a {key.purpose!r} key"
        return key, ""

    def check_checkpoint_signature(self) -> Check:
        if self.note is None or self.checkpoint is None:
            return Check("checkpoint_signature", False, self.note_problem)
        cp, problems = self.checkpoint, []
        if cp.origin != self.b.origin:
            problems.append(f"checkpoint origin {cp.origin!r} is not {self.b.origin!r}")
        key, why = self._checkpoint_key()
        if key is None:
            problems.append(why)
        else:
            if not (
                key.enrolled_at <= cp.size and (key.ended_at is None or cp.size < key.ended_at)
            ):
                state = f"{key.end_reason} at {key.ended_at}" if key.ended_at else "active"
                problems.append(
                    f"the checkpoint key (enrolled at {key.enrolled_at}, {state}) may not sign "
                    f"size {cp.size}"
                )
            try:
                verify_note(self.note, cp.origin, key.public_raw)
            except NoteError as exc:
                problems.append(str(exc))
            if self.trust and self.trust.checkpoint_keys:
                pinned = {_vkey_key(v) for v in self.trust.checkpoint_keys}
                if (cp.origin, key.public_raw) not in pinned:
                    problems.append(f"the checkpoint key is not pinned by {self.trust.source}")
        signer = key.key_id.hex()[:16] if key else "?"
        ok = f"checkpoint {cp.size} of {cp.origin} signed by checkpoint key {signer}"
        return _result("checkpoint_signature", problems, ok)

    def check_cosignatures(self) -> Check:
        if self.note is None or self.checkpoint is None:
            return Check("cosignatures", False, self.note_problem)
        problems: list[str] = []
        known: dict[tuple[str, bytes], tuple[str, bytes]] = {}  # (name, key hash) -> vkey, key
        trusted = set(self.trust.witnesses) if self.trust else set(self.b.witnesses)
        for text in sorted(set(self.b.witnesses) | trusted):
            try:
                name, public, sig_type = parse_vkey(text)
            except NoteError as exc:
                problems.append(f"witness key {text[:40]!r}: {exc}")
                continue
            if sig_type != SIG_TYPE_COSIGNATURE:
                problems.append(f"witness key {name} is not a cosignature key (type 0x04)")
                continue
            known[(name, note_key_hash(name, public, SIG_TYPE_COSIGNATURE))] = (text, public)
        log_key, _ = self._checkpoint_key()
        log_hash = note_key_hash(self.checkpoint.origin, log_key.public_raw) if log_key else None
        signed: dict[str, int] = {}
        for sig in self.note.signatures:
            if sig.name == self.checkpoint.origin and log_hash in (None, sig.key_hash):
                continue  # the log's own signature: checkpoint_signature
            match = known.get((sig.name, sig.key_hash))
            if match is None:
                problems.append(
                    f"signature line by {sig.name} ({sig.key_hash.hex()}) is by no known key"
                )
                continue
            try:
                signed[match[0]] = verify_cosignature(self.note.body, sig, sig.name, match[1])
            except NoteError as exc:
                problems.append(str(exc))
        for text in self.b.witnesses:
            if text not in signed:
                problems.append(
                    f"the bundle lists witness {text.split('+')[0]} but it did not cosign"
                )
        good = [t for t in trusted if t in signed]
        if self.trust:
            need = len(trusted) if self.trust.quorum is None else self.trust.quorum
            if not trusted and self.trust.quorum is None:
                problems.append(f"{self.trust.source} names no witness (add 'quorum 0' to accept)")
            elif len(good) < need:
                problems.append(f"{len(good)} of the trusted witnesses cosigned, {need} required")
        elif not good:
            problems.append("the checkpoint carries no witness cosignature")
        times = ", ".join(f"{t.split('+')[0]} at {_utc(signed[t])}" for t in sorted(good))
        source = "trusted" if self.trust else "untrusted: keys from the bundle"
        return _result("cosignatures", problems, f"cosigned by {times or 'nobody'} ({source})")

    def check_inclusion(self) -> Check:
        if self.checkpoint is None:
            return Check("inclusion", False, self.note_problem)
        size, problems = self.checkpoint.size, []
        if self.b.tree_size != size:
            problems.append(f"proof tree size {self.b.tree_size} is not checkpoint size {size}")
        positions = [e.position for e in self.b.events]
        if len(set(positions)) != len(positions):
            problems.append("two events claim the same position")
        if not problems:
            leaves = {e.position - 1: leaf_hash(e.record) for e in self.b.events}
            try:
                verify_multi_inclusion(leaves, size, self.b.proof, self.checkpoint.root)
            except ProofError as exc:
                problems.append(str(exc))
        ok = f"all {len(positions)} events are leaves of checkpoint {size} (one multi-leaf proof)"
        return _result("inclusion", problems, ok)

    def check_signatures(self) -> Check:
        problems = []
        for event in self.b.events:
            where = f"event at {event.position}"
            key = self.registry.keys.get(event.key_id)
            if not event.framed:
                problems.append(f"{where} is not a neikong record")
            elif key is None:
                problems.append(f"{where}: key {event.key_id.hex()[:16]}... is not in the registry")
            elif not _ed25519_valid(key.public_raw, event.signature, SIGNING_PREFIX + event.body):
                problems.append(f"{where}: the signature does not verify")
        return _result("signatures", problems, f"all {len(self.b.events)} event signatures verify")

    def check_key_validity(self) -> Check:
        problems = []
        for event in self.b.events:
            where = f"event at {event.position}"
            key, value = self.registry.keys.get(event.key_id), self.values.get(event.position)
            if key is None or value is None:
                problems.append(f"{where}: key or body unknown")
                continue
            if not key.valid_at(event.position):
                problems.append(
                    f"{where}: key {key.key_id.hex()[:16]}... enrolled at {key.enrolled_at}, "
                    f"{key.end_reason or 'active'} at {key.ended_at}: not valid there"
                )
            problem = key.scope_problem(value)
            if problem is not None:
                problems.append(f"{where}: outside the key's scope ({problem})")
            if value.get("type") in REGISTRY_TYPES and key.purpose != ADMIN_PURPOSE:
                problems.append(f"{where}: a {key.purpose} key signed a registry event")
        ok = f"every signing key was valid at its event's position ({len(self.registry.keys)} keys)"
        return _result("key_validity", problems, ok)

    def check_chain(self) -> Check:
        problems, closure = [], None
        previous: _Entry | None = None
        for seq, event in enumerate(self.b.events, 1):
            where = f"event at {event.position}"
            value = self.values.get(event.position)
            if value is None:
                problems.append(f"{where}: {self.value_problems.get(event.position)}")
                previous = event
                continue
            want_prev = _b64encode(hashlib.sha256(previous.body).digest()) if previous else None
            if value.get("stream") != self.b.stream:
                problems.append(f"{where} belongs to stream {value.get('stream')!r}")
            if value.get("stream_seq") != seq:
                problems.append(f"{where} has stream_seq {value.get('stream_seq')!r}, want {seq}")
            if value.get("prev") != want_prev:
                problems.append(f"{where}: prev does not name the previous event (chain break)")
            if previous is not None and event.position <= previous.position:
                problems.append(f"{where} comes before the previous event in the log (reorder)")
            if closure is not None:
                problems.append(f"{where} follows the terminal event (post-closure append)")
            if value.get("type") in TERMINAL_TYPES:
                data = value.get("data")
                final = data.get("final_seq") if isinstance(data, dict) else None
                if final != seq or isinstance(final, bool):
                    problems.append(f"{where}: final_seq {final!r} is not its stream_seq {seq}")
                closure = (seq, str(value.get("type")))
            previous = event
        if self.b.closure != closure:
            problems.append(f"the bundle's closure {self.b.closure} disagrees with the events")
        n = len(self.b.events)
        state = (
            f"closed by {closure[1]} (final_seq {closure[0]})"
            if closure
            else f"OPEN at the checkpoint: events after seq {n} may exist"
        )
        return _result("chain", problems, f"stream_seq 1..{n} complete, prev hashes chain; {state}")


def verify_bundle(data: bytes, trust: TrustKeys | None = None) -> Verdict:
    """Verify a bundle file's bytes; never raises for any content (a failed check instead)."""
    try:
        bundle = _parse_bundle(data)
    except BundleError as exc:
        return Verdict(
            (Check("format", False, f"not a readable bundle: {exc}"),), trust is not None
        )
    checks = [Check("format", True, f"canonical {FORMAT}"), *_Verifier(bundle, trust).run()]
    size = bundle.tree_size
    summary = (
        f"case {bundle.stream}: {len(bundle.events)} events, checkpoint {size} of {bundle.origin}"
    )
    return Verdict(tuple(checks), trust is not None, summary)


# --- command line --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """`verify_bundle.py FILE [--trust KEYS] [--json]`; returns the exit code (0, 1 or 2)."""
    parser = argparse.ArgumentParser(
        prog="verify_bundle.py",
        description="Verify a neikong case evidence bundle offline. Exit 0 pass, 1 fail, 2 usage.",
    )
    parser.add_argument("file", type=Path, help="the bundle (JSON) to verify")
    parser.add_argument("--trust", type=Path, help="trust file: root key id, witness vkeys")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        data = args.file.read_bytes()
        trust = None
        if args.trust is not None:
            trust = parse_trust(args.trust.read_text(encoding="utf-8"), str(args.trust))
    except (OSError, UnicodeDecodeError, BundleError) as exc:
        print(f"verify_bundle: error: {exc}", file=sys.stderr)
        return 2
    verdict = verify_bundle(data, trust)
    if args.json:
        print(json.dumps(verdict.to_json(), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(f"bundle {args.file}\n" + verdict.render())
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
