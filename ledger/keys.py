"""Ed25519 keys: files, ids and signing.

- `key_id` is SHA-256 of the raw 32-byte public key (hex when shown).
- Private keys are PEM (PKCS#8) files created with mode 0600; `load_private_key` MUST refuse a
  file that group or others can read, so a key copied carelessly is not silently used.
- Private keys never enter the database or the logs.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.envelope import SIGNING_PREFIX, SignedRecord
from ledger.errors import KeyFileError

__all__ = [
    "Signer",
    "generate_private_key",
    "key_id_of",
    "load_private_key",
    "public_key_from_raw",
    "raw_public_key",
    "verify_signature",
    "write_private_key",
]


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(public_raw: bytes) -> bytes:
    """SHA-256 of the raw public key (32 bytes)."""
    return hashlib.sha256(public_raw).digest()


def public_key_from_raw(public_raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(public_raw)


def verify_signature(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write `key` as PEM to a new file with mode 0600; refuse to overwrite."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; refusing to overwrite a key") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"{path} is readable by group or others (mode {stat.S_IMODE(mode):o}); "
                f"run: chmod 600 {path}"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} not found") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 key")
    return key


@dataclass(frozen=True)
class Signer:
    """Signs canonical bodies with one key."""

    private_key: Ed25519PrivateKey

    @cached_property
    def public_raw(self) -> bytes:
        return raw_public_key(self.private_key.public_key())

    @cached_property
    def key_id(self) -> bytes:
        return key_id_of(self.public_raw)

    def sign(self, body: bytes) -> SignedRecord:
        signature = self.private_key.sign(SIGNING_PREFIX + body)
        return SignedRecord(key_id=self.key_id, signature=signature, body=body)

    @classmethod
    def from_file(cls, path: Path) -> Signer:
        return cls(load_private_key(path))
