"""The checks `verify` runs on stored rows: each record alone, each stream, each producer.

Pure functions of the rows (and the key registry), shared by the process-pool passes of
`ledger.verify` and by `verify --stream`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

import orjson

from ledger.canonical import parse_canonical, parse_strict
from ledger.envelope import Envelope, SignedRecord, b64
from ledger.errors import MalformedInput
from ledger.findings import Finding, FindingKind
from ledger.keys import verify_signature
from ledger.precheck import public_key
from ledger.reasons import ReasonCode
from ledger.registry import REGISTRY_STREAM, REGISTRY_TYPES, KeyRegistry
from ledger.registry_fold import check_genesis
from ledger.store import stream_id_hex

__all__ = ["ProducerSequences", "Row", "Run", "check_record", "check_streams"]

Row = tuple[int, str, int, bytes]  # position, stream id hex, version, record
# producer runs: (system, first_seq, last_seq, first_position, event_id and stream of first)
Run = tuple[str, int, int, int, str, str]


def check_record(row: Row, registry: KeyRegistry) -> tuple[list[Finding], Envelope | None]:
    """Every check of one stored record that needs no other record."""
    position, sid, version, record = row
    out: list[Finding] = []
    try:
        signed = SignedRecord.decode(record)
        value = parse_canonical(signed.body, check_values=False)
        canonical_problem = None
    except MalformedInput as exc:
        if exc.reason is not ReasonCode.NON_CANONICAL:
            out.append(Finding(FindingKind.CORRUPT_RECORD, position, None, None, exc.detail))
            return out, None
        value, canonical_problem = parse_strict(signed.body), exc.detail
    stream = value.get("stream") if isinstance(value, dict) else None
    event_id = value.get("event_id") if isinstance(value, dict) else None
    stream = stream if isinstance(stream, str) else None
    event_id = event_id if isinstance(event_id, str) else None

    def found(kind: FindingKind, detail: str) -> None:
        out.append(Finding(kind, position, stream, event_id, detail))

    if canonical_problem is not None:
        found(FindingKind.NON_CANONICAL, canonical_problem)
    try:
        env = Envelope.from_json(value)  # schema was enforced at append; the signature
    except (KeyError, TypeError, AttributeError) as exc:  # covers the bytes since then
        found(FindingKind.SCHEMA_INVALID, f"not an envelope: {exc!r}")
        return out, None
    if stream_id_hex(env.stream) != sid or env.stream_seq != version:
        found(
            FindingKind.MISFILED,
            f"stored as ({sid[:8]}…, {version}), body says ({env.stream}, {env.stream_seq})",
        )
    problem = registry.check(signed.key_id, env, position)
    entry = registry.lookup(signed.key_id)
    if env.type == "ledger.genesis":
        out.extend(check_genesis(position, signed, env, registry.root_key_id))
        return out, env
    if problem is not None:
        kind = {
            ReasonCode.UNKNOWN_KEY: FindingKind.UNKNOWN_KEY,
            ReasonCode.REVOKED_KEY: FindingKind.REVOKED_KEY,
        }.get(problem[0], FindingKind.OUT_OF_SCOPE)
        found(kind, problem[1])
    if entry is None:
        return out, env
    if not verify_signature(
        public_key(entry.key_id, entry.public_raw), signed.signature, signed.signing_message
    ):
        found(FindingKind.BAD_SIGNATURE, "Ed25519 signature does not verify")
    if env.type in REGISTRY_TYPES and env.stream != REGISTRY_STREAM:
        found(FindingKind.REGISTRY_INVALID, "registry event outside ledger/keys")
    return out, env


def _finder(
    findings: list[Finding], position: int, stream: str, event_id: str
) -> Callable[[FindingKind, str], None]:
    def found(kind: FindingKind, detail: str) -> None:
        findings.append(Finding(kind, position, stream, event_id, detail))

    return found


def check_streams(rows: Iterable[Row]) -> tuple[list[Finding], int]:
    """Chain checks over rows sorted by (stream id, version); O(1) state."""
    findings: list[Finding] = []
    streams = 0
    current: str | None = None
    last_seq = last_pos = 0
    last_digest = b""
    closed_at: int | None = None
    for position, sid, _version, record in rows:
        if sid != current:
            current, last_seq, last_pos, last_digest, closed_at = sid, 0, 0, b"", None
            streams += 1
        try:
            signed = SignedRecord.decode(record)
            body = orjson.loads(signed.body)
            seq, prev = int(body["stream_seq"]), body["prev"]
            stream, event_id = str(body["stream"]), str(body["event_id"])
            event_type, data = str(body["type"]), body["data"]
        except (MalformedInput, ValueError, KeyError, TypeError):
            continue  # pass A reports the corrupt record itself
        digest = hashlib.sha256(signed.body).digest()
        found = _finder(findings, position, stream, event_id)

        if closed_at is not None:
            found(FindingKind.POST_CLOSURE_APPEND, f"stream was concluded at seq {closed_at}")
        if seq == last_seq:
            found(FindingKind.FORK, f"a second event claims seq {seq}")
            continue
        if seq < last_seq:
            found(FindingKind.REORDER, f"seq {seq} stored after seq {last_seq}")
            continue
        if seq > last_seq + 1:
            found(FindingKind.GAP, f"seqs {last_seq + 1}…{seq - 1} are missing")
        elif (prev if last_seq else None) != (b64(last_digest) if last_seq else None) or (
            last_seq == 0 and prev is not None
        ):
            found(FindingKind.CHAIN_BREAK, f"prev does not match the digest of seq {last_seq}")
        if position < last_pos:
            found(FindingKind.REORDER, f"seq {seq} has a lower position than seq {last_seq}")
        if event_type in ("matter.concluded", "matter.withdrawn"):
            if not isinstance(data, dict) or data.get("final_seq") != seq:
                found(FindingKind.BAD_FINAL_SEQ, f"final_seq is not {seq}")
            closed_at = seq
        last_seq, last_pos, last_digest = seq, position, digest
    return findings, streams


class ProducerSequences:
    """Per producer system: the next expected seq and the (bounded) list of reported holes.

    Memory is O(producer systems + holes reported), never O(events).
    """

    MAX_HOLES = 10_000

    def __init__(self, add: Callable[[Finding], None]) -> None:
        self.add = add
        self.expected: dict[str, int] = {}
        self.holes: dict[str, list[tuple[int, int]]] = {}

    def feed(self, runs: list[Run]) -> None:
        for system, first, last, position, event_id, stream in runs:
            want = self.expected.get(system, 1)
            if first > want:
                self.add(
                    Finding(
                        FindingKind.PRODUCER_GAP,
                        position,
                        stream,
                        event_id,
                        f"producer {system}: seqs {want}…{first - 1} missing before this position",
                    )
                )
                holes = self.holes.setdefault(system, [])
                if len(holes) < self.MAX_HOLES:
                    holes.append((want, first - 1))
            elif first < want:
                late = any(a <= first <= b for a, b in self.holes.get(system, ()))
                self.add(
                    Finding(
                        FindingKind.REORDER if late else FindingKind.PRODUCER_SEQ_DUPLICATE,
                        position,
                        stream,
                        event_id,
                        f"producer {system}: seq {first} stored after seq {want - 1}"
                        if late
                        else f"producer {system}: seq {first} appears twice",
                    )
                )
            self.expected[system] = max(want, last + 1)

    def last_seqs(self) -> dict[str, int]:
        """The highest contiguous seq seen per producer system."""
        return {s: n - 1 for s, n in sorted(self.expected.items())}
