"""The signed event envelope and the record that carries it.

A *record* is what travels (Kafka message value, in-process transport) and what the ledger
stores, byte for byte::

    record = b"NKE1" ‖ key_id (32 bytes, SHA-256 of the raw Ed25519 public key)
                     ‖ signature (64 bytes, Ed25519 over SIGNING_PREFIX ‖ body)
                     ‖ body (RFC 8785 canonical JSON of the envelope)

Guarantees:
- The ledger MUST store the record exactly as received and MUST NOT re-serialise the body to
  verify it: signatures and hashes are always over the stored bytes.
- `digest` (SHA-256 of the body) is what the next event of the stream names as `prev`
  (standard base64 with padding).
- The Merkle leaf of a record is SHA-256(0x00 ‖ record) (see `ledger.merkle`).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any, NamedTuple

from ledger.errors import MalformedInput
from ledger.reasons import ReasonCode

__all__ = [
    "KEY_ID_LEN",
    "KEY_ID_SLICE",
    "MAX_RECORD_BYTES",
    "RECORD_MAGIC",
    "SIGNATURE_LEN",
    "SIGNING_PREFIX",
    "Envelope",
    "SignedRecord",
    "b64",
    "prev_of",
]

RECORD_MAGIC = b"NKE1"
KEY_ID_LEN = 32
SIGNATURE_LEN = 64
HEADER_LEN = len(RECORD_MAGIC) + KEY_ID_LEN + SIGNATURE_LEN
SIGNING_PREFIX = b"neikong/event/v1\n"
# Default and ceiling of the record size: 64 KiB - 1, the most a C2SP tlog-tiles entry bundle
# can hold (uint16 length prefix).
MAX_RECORD_BYTES = 65535
KEY_ID_SLICE = slice(len(RECORD_MAGIC), len(RECORD_MAGIC) + KEY_ID_LEN)


def b64(data: bytes) -> str:
    """Standard base64 with padding, as used for hashes and commitments in envelopes."""
    return base64.b64encode(data).decode("ascii")


def prev_of(body: bytes) -> str:
    """The `prev` value that the next event of a stream carries after `body`."""
    return b64(hashlib.sha256(body).digest())


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """A signed body with its key id; `encode()` gives the record bytes."""

    key_id: bytes
    signature: bytes
    body: bytes

    def encode(self) -> bytes:
        return RECORD_MAGIC + self.key_id + self.signature + self.body

    @property
    def signing_message(self) -> bytes:
        return SIGNING_PREFIX + self.body

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.body).digest()

    @classmethod
    def decode(cls, record: bytes, *, max_size: int | None = None) -> SignedRecord:
        """Split record bytes; raise `MalformedInput` if the size or framing is wrong."""
        if max_size is not None and len(record) > max_size:
            raise MalformedInput(
                ReasonCode.TOO_LARGE, f"record is {len(record)} bytes, limit {max_size}"
            )
        if len(record) <= HEADER_LEN or not record.startswith(RECORD_MAGIC):
            raise MalformedInput(ReasonCode.BAD_FRAMING, "not a neikong record (NKE1 header)")
        key_end = len(RECORD_MAGIC) + KEY_ID_LEN
        return cls(
            key_id=bytes(record[len(RECORD_MAGIC) : key_end]),
            signature=bytes(record[key_end:HEADER_LEN]),
            body=bytes(record[HEADER_LEN:]),
        )


TERMINAL_TYPES = frozenset({"matter.concluded", "matter.withdrawn"})


class Envelope(NamedTuple):
    """The parsed view of a schema-valid body: what the append rules and `verify` need.

    `data` is kept only for key-registry events (small); other types carry just `final_seq`.
    A named tuple, so the thousands sent back from stage-one workers per second unpickle at
    C speed (a frozen dataclass costs ~50 µs each to unpickle).
    """

    event_id: str
    stream: str
    stream_seq: int
    prev: str | None
    producer_system: str
    producer_seq: int
    type: str
    final_seq: int | None
    data: dict[str, Any]

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Envelope:
        producer = value["producer"]
        event_type = value["type"]
        data = value["data"]
        final = data.get("final_seq") if event_type in TERMINAL_TYPES else None
        # tuple.__new__ with the fields in declaration order: the named tuple's own __new__
        # is a Python function (this runs for every record of ingest and verify)
        return tuple.__new__(
            cls,
            (
                value["event_id"],
                value["stream"],
                value["stream_seq"],
                value["prev"],
                producer["system"],
                producer["seq"],
                event_type,
                final if isinstance(final, int) else None,
                data if event_type.startswith(("key.", "ledger.")) else {},
            ),
        )

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_TYPES
