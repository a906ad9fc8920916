"""Stage one of the append rules: the checks that need no ledger state.

size → framing → strict parse → canonical form → schema → signature (when the key's public
bytes are known). Pure functions, so they run in worker processes in parallel with the
stateful stage two (key validity at position, idempotency, chains) and with storage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.canonical import parse_canonical
from ledger.envelope import KEY_ID_SLICE, Envelope, SignedRecord
from ledger.errors import MalformedInput
from ledger.keys import public_key_from_raw, verify_signature
from ledger.reasons import ReasonCode
from ledger.schema import SchemaCatalogue

__all__ = ["Checked", "Rejected", "catalogue", "precheck", "precheck_many", "public_key"]


class Checked(NamedTuple):
    """A record that passed stage one. `signature_ok` is None when the key was not known.

    `digest` is SHA-256 of the body (what the next event of the stream names as `prev`).
    """

    record: bytes
    digest: bytes
    envelope: Envelope
    signature_ok: bool | None

    @property
    def signed(self) -> SignedRecord:
        return SignedRecord.decode(self.record)

    @property
    def key_id(self) -> bytes:
        return self.record[KEY_ID_SLICE]


class Rejected(NamedTuple):
    record: bytes
    reason: ReasonCode
    detail: str


_CATALOGUE: SchemaCatalogue | None = None
_PUBLIC: dict[bytes, Ed25519PublicKey] = {}


def catalogue() -> SchemaCatalogue:
    global _CATALOGUE  # noqa: PLW0603 - one compiled catalogue per process
    if _CATALOGUE is None:
        _CATALOGUE = SchemaCatalogue()
    return _CATALOGUE


def public_key(key_id: bytes, raw: bytes) -> Ed25519PublicKey:
    key = _PUBLIC.get(key_id)
    if key is None:
        key = _PUBLIC[key_id] = public_key_from_raw(raw)
    return key


def precheck(record: bytes, max_size: int, public: Mapping[bytes, bytes]) -> Checked | Rejected:
    try:
        signed = SignedRecord.decode(record, max_size=max_size)
        value = parse_canonical(signed.body)
        catalogue().validate(value)
        envelope = Envelope.from_json(value)
    except MalformedInput as exc:
        return Rejected(record, exc.reason, exc.detail)
    raw = public.get(signed.key_id)
    ok = (
        None
        if raw is None
        else verify_signature(
            public_key(signed.key_id, raw), signed.signature, signed.signing_message
        )
    )
    return Checked(record, signed.digest, envelope, ok)


def precheck_many(
    records: Sequence[bytes], max_size: int, public: Mapping[bytes, bytes]
) -> list[Checked | Rejected]:
    return [precheck(r, max_size, public) for r in records]
