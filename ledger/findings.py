"""What `verify` reports: one `Finding` per piece of tamper evidence."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Finding", "FindingKind"]


class FindingKind(StrEnum):
    BAD_SIGNATURE = "bad_signature"
    NON_CANONICAL = "non_canonical"  # signed bytes not in RFC 8785 form
    CORRUPT_RECORD = "corrupt_record"  # stored bytes are not a record / not JSON
    SCHEMA_INVALID = "schema_invalid"
    UNKNOWN_KEY = "unknown_key"
    REVOKED_KEY = "revoked_key"
    OUT_OF_SCOPE = "out_of_scope"
    BAD_GENESIS = "bad_genesis"  # position 1 is not the genesis by the trusted root key
    REGISTRY_INVALID = "registry_invalid"
    MISFILED = "misfiled"  # stored stream id / version disagree with the signed body
    MISSING_POSITION = "missing_position"  # a hole in the global positions (deleted row)
    CHAIN_BREAK = "chain_break"  # prev does not match the previous event's digest
    GAP = "gap"  # stream_seq jumps (an event of the stream is missing)
    FORK = "fork"  # two events claim the same stream and seq
    REORDER = "reorder"  # positions do not follow stream or producer order
    POST_CLOSURE_APPEND = "post_closure_append"
    BAD_FINAL_SEQ = "bad_final_seq"
    PRODUCER_GAP = "producer_gap"
    PRODUCER_SEQ_DUPLICATE = "producer_seq_duplicate"
    # the Merkle log (ledger.log_verify) and its witnesses
    ROOT_MISMATCH = "root_mismatch"  # recomputed root differs from a signed checkpoint
    TRUNCATED = "truncated"  # fewer entries than a signed checkpoint (truncation, rollback)
    INCONSISTENT_CHECKPOINTS = "inconsistent_checkpoints"  # signed fork or rewritten history
    BAD_CHECKPOINT_SIGNATURE = "bad_checkpoint_signature"
    TILE_MISMATCH = "tile_mismatch"  # a tile or entry bundle differs from the records
    BAD_COSIGNATURE = "bad_cosignature"
    MISSING_COSIGNATURE = "missing_cosignature"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    position: int | None
    stream: str | None
    event_id: str | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["kind"] = self.kind.value
        return out
