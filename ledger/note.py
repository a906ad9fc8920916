"""C2SP signed notes, checkpoints and Ed25519 cosignatures (part of the verification kernel).

This module imports nothing but the standard library and `cryptography`, so the standalone
bundle verifier can embed it. It implements, exactly and strictly:

- c2sp.org/signed-note: a note is a UTF-8 text ending in a newline, a blank line, then one or
  more signature lines `— <key name> base64(key hash ‖ signature)`. The key hash is
  SHA-256(name ‖ 0x0A ‖ signature type ‖ public key)[:4]; Ed25519 note signatures are type
  0x01 and sign the note text. Verifier keys (vkeys) are `<name>+<hex key hash>+base64(type ‖
  public key)`.
- c2sp.org/tlog-checkpoint: the note text is `origin\\nsize\\nbase64(root)\\n` plus optional
  non-empty extension lines.
- c2sp.org/tlog-cosignature (Ed25519, type 0x04): the witness signs
  `cosignature/v1\\ntime <seconds>\\n` followed by the checkpoint body; on the wire the
  signature is the 8-byte big-endian timestamp followed by the 64-byte Ed25519 signature.

Guarantees:

- Parsers MUST reject anything that is not in the exact form above (invalid UTF-8, control
  characters other than newline, a missing blank line, an empty signature block, a name with a
  space or `+`, non-canonical base64, a size with a leading zero or sign, a root that is not
  32 bytes, an empty extension line). Every such rejection raises `NoteError` and nothing else.
- `encode()`/`body()` followed by `parse()`/`parse_body()` is the identity, and the parsers
  accept only what the encoders produce, so a note has exactly one byte representation and any
  changed byte either fails parsing or changes what a signature covers.
- `verify_*` MUST NOT accept a signature whose name or key hash differs from the trusted key's,
  and never raise `cryptography` exceptions.

`NoteError` subclasses `ValueError` only (this module cannot import `ledger.errors`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "COSIGNATURE_HEADER",
    "MAX_SIGNATURES",
    "SIG_TYPE_COSIGNATURE",
    "SIG_TYPE_ED25519",
    "Checkpoint",
    "NoteError",
    "NoteSignature",
    "SignedNote",
    "cosign",
    "cosignature_message",
    "note_key_hash",
    "parse_signature_lines",
    "parse_vkey",
    "sign_note",
    "verify_cosignature",
    "verify_note",
    "verify_note_signature",
    "vkey",
]

SIG_TYPE_ED25519 = 0x01
"""signed-note signature type of Ed25519 note signatures (over the note text)."""

SIG_TYPE_COSIGNATURE = 0x04
"""signed-note signature type of timestamped Ed25519 cosignatures (tlog-cosignature v1)."""

COSIGNATURE_HEADER = b"cosignature/v1\n"
"""Domain-separation header line of the Ed25519 cosignature message."""

MAX_SIGNATURES = 100
"""Most signature lines a parsed note may carry (signed-note requires accepting at least 16)."""

MAX_TIMESTAMP = 2**63 - 1
"""Largest cosignature timestamp (tlog-cosignature: MUST NOT exceed 2^63 - 1)."""

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


# --- helpers ----------------------------------------------------------------------------------


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


def _raw_public(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def _ed25519_ok(public_raw: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# --- checkpoints ------------------------------------------------------------------------------


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


# --- signatures and notes ---------------------------------------------------------------------


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


# --- keys -------------------------------------------------------------------------------------


def note_key_hash(name: str, public_raw: bytes, sig_type: int = SIG_TYPE_ED25519) -> bytes:
    """SHA-256(name ‖ 0x0A ‖ sig_type ‖ public key)[:4] (signed-note key ID)."""
    _check_name(name)
    if not 0 <= sig_type <= 0xFF:
        raise NoteError(f"signature type {sig_type} is not a byte")
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_raw).digest()[:4]


def vkey(name: str, public_raw: bytes, sig_type: int = SIG_TYPE_ED25519) -> str:
    """The verifier key text `<name>+<hex key hash>+<base64(type ‖ public key)>`."""
    key_hash = note_key_hash(name, public_raw, sig_type)
    return f"{name}+{key_hash.hex()}+{_b64encode(bytes([sig_type]) + public_raw)}"


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


# --- Ed25519 note signatures (type 0x01) ------------------------------------------------------


def sign_note(body: bytes, name: str, private_key: Ed25519PrivateKey) -> NoteSignature:
    """Sign a note text with an Ed25519 key under `name` (type 0x01)."""
    text = _check_text(body, "note text")
    if not text.endswith("\n"):
        raise NoteError("note text does not end in a newline")
    key_hash = note_key_hash(name, _raw_public(private_key), SIG_TYPE_ED25519)
    return NoteSignature(name, key_hash, private_key.sign(body))


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


# --- timestamped Ed25519 cosignatures (type 0x04) ---------------------------------------------


def cosignature_message(checkpoint_body: bytes, timestamp: int) -> bytes:
    """`cosignature/v1\\ntime <timestamp>\\n` followed by the checkpoint body."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError(f"cosignature timestamp {timestamp} is outside [0, 2^63-1]")
    return COSIGNATURE_HEADER + b"time %d\n" % timestamp + checkpoint_body


def cosign(
    checkpoint_body: bytes, name: str, private_key: Ed25519PrivateKey, timestamp: int
) -> NoteSignature:
    """Cosign a checkpoint at `timestamp` (POSIX seconds) as witness `name` (type 0x04).

    The body MUST be a well-formed checkpoint; the signature bytes are the 8-byte big-endian
    timestamp followed by the 64-byte Ed25519 signature.
    """
    Checkpoint.parse_body(checkpoint_body)
    message = cosignature_message(checkpoint_body, timestamp)
    key_hash = note_key_hash(name, _raw_public(private_key), SIG_TYPE_COSIGNATURE)
    return NoteSignature(name, key_hash, timestamp.to_bytes(8, "big") + private_key.sign(message))


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
