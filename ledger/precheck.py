"""Stage one of the append rules: the checks that need no ledger state.

size → framing → strict parse → canonical form → schema → signature (when the key's public
bytes are known). Pure functions, so they run in worker processes in parallel with the
stateful stage two (key validity at position, idempotency, chains) and with storage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.canonical import parse_canonical
from ledger.envelope import KEY_ID_SLICE, Envelope, SignedRecord
from ledger.errors import MalformedInput
from ledger.keys import public_key_from_raw, verify_signature
from ledger.reasons import ReasonCode
from ledger.schema import SchemaCatalogue

__all__ = [
    "Checked",
    "Rejected",
    "catalogue",
    "from_wire",
    "precheck",
    "precheck_many",
    "precheck_wire",
    "public_key",
]


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


# Results cross the process boundary as plain tuples: pickling a named tuple or an enum runs
# Python code per object (`__reduce_ex__`), plain tuples and strings pickle at C speed. The
# record bytes stay with the caller, which sent them.
Wire = tuple[bytes, tuple[Any, ...], bool | None] | tuple[str, str]


def precheck_wire(
    records: Sequence[bytes], max_size: int, public: Mapping[bytes, bytes]
) -> list[Wire]:
    """`precheck_many` for a worker process: results as plain tuples (see `from_wire`)."""
    out: list[Wire] = []
    for record in records:
        item = precheck(record, max_size, public)
        if isinstance(item, Checked):
            out.append((item.digest, tuple(item.envelope), item.signature_ok))
        else:
            out.append((item.reason.value, item.detail))
    return out


def from_wire(records: Sequence[bytes], wire: Sequence[Wire]) -> list[Checked | Rejected]:
    """Rebuild `precheck_many`'s results from `precheck_wire`'s, given the same records."""
    out: list[Checked | Rejected] = []
    make_envelope = tuple.__new__
    for record, item in zip(records, wire, strict=True):
        if len(item) == 3:
            digest, fields, ok = item
            out.append(Checked(record, digest, make_envelope(Envelope, fields), ok))
        else:
            reason, detail = item
            out.append(Rejected(record, ReasonCode(reason), detail))
    return out
