"""The key registry: which key may sign what, judged at a log position.

The registry is a fold over the admin-signed registry events of the log (`ledger.genesis`,
`key.enrolled`, `key.rotated`, `key.revoked`, all in the stream `ledger/keys`).

Guarantees:
- Validity MUST be judged at the log position where an event entered, never by wall clock:
  a key enrolled at position e signs validly for positions p > e, until the position r of its
  revocation or rotation (valid for e < p < r).
- Only the root key named by the ledger's configuration, or an enrolled `admin` key valid at
  the position, may sign registry events; the genesis event MUST be signed by the root key and
  name it.
"""

from __future__ import annotations

import base64
import dataclasses
import fnmatch
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.envelope import Envelope
from ledger.keys import key_id_of, public_key_from_raw
from ledger.reasons import ReasonCode

__all__ = [
    "ADMIN_SYSTEM",
    "REGISTRY_STREAM",
    "REGISTRY_TYPES",
    "KeyEntry",
    "KeyRegistry",
    "KeyScope",
    "RegistryError",
]

REGISTRY_STREAM = "ledger/keys"
ADMIN_SYSTEM = "neikong-admin"
REGISTRY_TYPES = frozenset({"ledger.genesis", "key.enrolled", "key.rotated", "key.revoked"})


class RegistryError(ValueError):
    """A registry event that is well-formed but not allowed (wrong signer, unknown key…)."""


@dataclass(frozen=True)
class KeyScope:
    system: str
    stream_prefixes: tuple[str, ...]
    event_types: tuple[str, ...]

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> KeyScope:
        return cls(
            system=value["system"],
            stream_prefixes=tuple(value["stream_prefixes"]),
            event_types=tuple(value["event_types"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "stream_prefixes": list(self.stream_prefixes),
            "event_types": list(self.event_types),
        }

    def allows(self, envelope: Envelope) -> str | None:
        """None if allowed, else what is out of scope."""
        if envelope.producer_system != self.system:
            return f"producer system {envelope.producer_system!r} is not {self.system!r}"
        if not envelope.stream.startswith(self.stream_prefixes):
            return f"stream {envelope.stream!r} is outside {list(self.stream_prefixes)}"
        exact, prefixes, pattern = _type_matcher(self.event_types)
        event_type = envelope.type
        if not (
            event_type in exact
            or event_type.startswith(prefixes)
            or (pattern is not None and pattern.match(event_type))
        ):
            return f"type {envelope.type!r} is not in {list(self.event_types)}"
        return None


@lru_cache(maxsize=1024)
def _type_matcher(
    patterns: tuple[str, ...],
) -> tuple[frozenset[str], tuple[str, ...], re.Pattern[str] | None]:
    """Exact types, `prefix.*` globs as plain prefixes, and a regex only for other globs."""
    exact = frozenset(p for p in patterns if not any(c in p for c in "*?["))
    prefixes = tuple(
        p[:-1] for p in patterns if p.endswith(".*") and not any(c in p[:-2] for c in "*?[")
    )
    if "*" in patterns:
        prefixes += ("",)
    rest = [p for p in patterns if p not in exact and p[:-1] not in prefixes and p != "*"]
    pattern = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in rest)) if rest else None
    return exact, prefixes, pattern


ADMIN_SCOPE = KeyScope(ADMIN_SYSTEM, (REGISTRY_STREAM,), tuple(sorted(REGISTRY_TYPES)))


@dataclass
class KeyEntry:
    key_id: bytes
    public_raw: bytes
    purpose: str
    scope: KeyScope
    enrolled_at: int
    ended_at: int | None = None
    end_reason: str | None = None
    _public: Ed25519PublicKey | None = field(default=None, repr=False, compare=False)

    @property
    def public_key(self) -> Ed25519PublicKey:
        if self._public is None:
            self._public = public_key_from_raw(self.public_raw)
        return self._public

    def __getstate__(self) -> dict[str, Any]:  # the OpenSSL key object does not pickle
        state = dict(self.__dict__)
        state["_public"] = None
        return state

    def valid_at(self, position: int) -> bool:
        return self.enrolled_at < position and (self.ended_at is None or position < self.ended_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id.hex(),
            "purpose": self.purpose,
            "scope": self.scope.to_json(),
            "enrolled_at": self.enrolled_at,
            "ended_at": self.ended_at,
            "end_reason": self.end_reason,
            "state": "active" if self.ended_at is None else self.end_reason or "ended",
        }


def _decode_public(value: dict[str, Any]) -> tuple[bytes, bytes]:
    raw = base64.b64decode(value["public_key"], validate=True)
    claimed = bytes.fromhex(value["key_id"])
    if len(raw) != 32 or key_id_of(raw) != claimed:
        raise RegistryError(f"key_id {value['key_id']} is not SHA-256 of the public key")
    return claimed, raw


class KeyRegistry:
    """Fold of registry events; answers 'may key K sign envelope E at position P?'."""

    def __init__(self, root_key_id: bytes | None) -> None:
        self.root_key_id = root_key_id
        self.keys: dict[bytes, KeyEntry] = {}
        self.last_position = 0

    def snapshot(self) -> tuple[dict[bytes, KeyEntry], int, bytes | None]:
        return (
            {k: dataclasses.replace(e) for k, e in self.keys.items()},
            self.last_position,
            self.root_key_id,
        )

    def restore(self, snap: tuple[dict[bytes, KeyEntry], int, bytes | None]) -> None:
        self.keys, self.last_position, self.root_key_id = snap

    def lookup(self, key_id: bytes) -> KeyEntry | None:
        return self.keys.get(key_id)

    def public_keys(self) -> dict[bytes, bytes]:
        """Every key ever enrolled (raw public bytes), for signature checks in workers."""
        return {k: e.public_raw for k, e in self.keys.items()}

    def check(
        self, key_id: bytes, envelope: Envelope, position: int
    ) -> tuple[ReasonCode, str] | None:
        """None if `key_id` may sign `envelope` at `position`, else (reason, detail)."""
        entry = self.keys.get(key_id)
        if entry is None:
            if envelope.type == "ledger.genesis" and not self.keys:
                return self._check_genesis_signer(key_id, envelope)
            return ReasonCode.UNKNOWN_KEY, f"key {key_id.hex()[:16]}… is not enrolled"
        if entry.enrolled_at >= position:
            return (
                ReasonCode.UNKNOWN_KEY,
                f"key enrolled at {entry.enrolled_at}, used at {position}",
            )
        if entry.ended_at is not None and position > entry.ended_at:
            return ReasonCode.REVOKED_KEY, (
                f"key {entry.end_reason} at position {entry.ended_at}, used at {position}"
            )
        problem = entry.scope.allows(envelope)
        if problem is not None:
            return ReasonCode.OUT_OF_SCOPE, problem
        if envelope.type in REGISTRY_TYPES and entry.purpose != "admin":
            return ReasonCode.OUT_OF_SCOPE, f"a {entry.purpose} key may not sign registry events"
        return None

    def _check_genesis_signer(
        self, key_id: bytes, envelope: Envelope
    ) -> tuple[ReasonCode, str] | None:
        try:
            claimed, _ = _decode_public(envelope.data["root_key"])
        except (RegistryError, ValueError, KeyError, TypeError) as exc:
            return ReasonCode.SCHEMA_INVALID, f"genesis root key unreadable: {exc!r}"
        if claimed != key_id:
            return ReasonCode.UNKNOWN_KEY, "genesis is not signed by the key it names"
        if self.root_key_id is not None and key_id != self.root_key_id:
            return ReasonCode.UNKNOWN_KEY, "genesis names a root key other than the trusted one"
        return None

    def genesis_public(self, envelope: Envelope) -> bytes:
        return _decode_public(envelope.data["root_key"])[1]

    def apply(self, envelope: Envelope, position: int) -> None:
        """Fold one accepted registry event at `position` (caller checked key and signature)."""
        data = envelope.data
        if envelope.type == "ledger.genesis":
            key_id, raw = _decode_public(data["root_key"])
            self.keys[key_id] = KeyEntry(key_id, raw, "admin", KeyScope.from_json(data["scope"]), 0)
            if self.root_key_id is None:
                self.root_key_id = key_id
        elif envelope.type == "key.enrolled":
            key_id, raw = _decode_public(data["key"])
            if key_id in self.keys:
                raise RegistryError(f"key {key_id.hex()[:16]}… is already enrolled")
            self.keys[key_id] = KeyEntry(
                key_id, raw, data["purpose"], KeyScope.from_json(data["scope"]), position
            )
        elif envelope.type == "key.rotated":
            old = self._active(bytes.fromhex(data["old_key_id"]), position)
            key_id, raw = _decode_public(data["key"])
            if key_id in self.keys:
                raise RegistryError(f"key {key_id.hex()[:16]}… is already enrolled")
            old.ended_at, old.end_reason = position, "rotated"
            self.keys[key_id] = KeyEntry(key_id, raw, old.purpose, old.scope, position)
        elif envelope.type == "key.revoked":
            entry = self._active(bytes.fromhex(data["key_id"]), position)
            entry.ended_at, entry.end_reason = position, "revoked"
        self.last_position = max(self.last_position, position)

    def validate_change(self, envelope: Envelope, position: int) -> str | None:
        """What would make `apply` fail, without changing state (None if it would succeed)."""
        data = envelope.data
        try:
            if envelope.type == "key.enrolled":
                key_id, _ = _decode_public(data["key"])
                if key_id in self.keys:
                    return "key is already enrolled"
            elif envelope.type == "key.rotated":
                self._active(bytes.fromhex(data["old_key_id"]), position)
                key_id, _ = _decode_public(data["key"])
                if key_id in self.keys:
                    return "new key is already enrolled"
            elif envelope.type == "key.revoked":
                self._active(bytes.fromhex(data["key_id"]), position)
            elif envelope.type == "ledger.genesis" and self.keys:
                return "the ledger already has a genesis"
        except (RegistryError, ValueError) as exc:
            return str(exc)
        return None

    def _active(self, key_id: bytes, position: int) -> KeyEntry:
        entry = self.keys.get(key_id)
        if entry is None or not entry.valid_at(position):
            raise RegistryError(f"key {key_id.hex()[:16]}… is not active at {position}")
        if key_id == self.root_key_id:
            raise RegistryError("the root key cannot be rotated or revoked by a registry event")
        return entry
