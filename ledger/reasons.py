"""Machine-readable reason codes for rejected input (dead-letter table / topic header).

The order of the append rules (DESIGN.md "Ledger append rules") decides which reason a
record gets when it breaks several rules: the first broken rule wins.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ReasonCode"]


class ReasonCode(StrEnum):
    """Why a record was not appended. Values are stable: tools and alerts match on them."""

    TOO_LARGE = "too_large"
    BAD_FRAMING = "bad_framing"  # not a neikong record (magic, lengths)
    MALFORMED_JSON = "malformed_json"  # not UTF-8 JSON, duplicate keys, floats, NaN, surrogates
    NON_CANONICAL = "non_canonical"  # valid JSON but not the RFC 8785 form, or text not NFC
    SCHEMA_INVALID = "schema_invalid"  # envelope or type-specific schema failed
    UNKNOWN_TYPE = "unknown_type"  # no schema for the event type
    UNKNOWN_KEY = "unknown_key"
    REVOKED_KEY = "revoked_key"  # revoked or rotated away before this position
    OUT_OF_SCOPE = "out_of_scope"  # key not allowed this producer system, stream or type
    BAD_SIGNATURE = "bad_signature"
    EVENT_ID_CONFLICT = "event_id_conflict"  # same event_id, other bytes
    FORK = "fork"  # same stream and seq, other bytes
    CHAIN_BREAK = "chain_break"  # prev does not match the stored predecessor
    POST_CLOSURE = "post_closure_append"  # stream already concluded
    BAD_FINAL_SEQ = "bad_final_seq"  # terminal event's final_seq is not its own seq
    PRODUCER_SEQ_REUSED = "producer_seq_reused"  # producer seq already used by another event
    REGISTRY_INVALID = "registry_invalid"  # key registry change that cannot apply
    PARK_LIMIT = "park_limit"  # too many out-of-order records waiting for a gap
