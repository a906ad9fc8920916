"""The checks `verify` runs on stored rows: each record alone, each stream, each producer.

Pure functions of the rows (and the key registry), shared by the process-pool passes of
`ledger.verify` and by `verify --stream`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

from ledger.canonical import parse_canonical, parse_strict
from ledger.envelope import (
    HEADER_LEN,
    KEY_ID_SLICE,
    RECORD_MAGIC,
    SIGNING_PREFIX,
    Envelope,
    SignedRecord,
    b64,
)
from ledger.errors import MalformedInput
from ledger.findings import Finding, FindingKind
from ledger.keys import verify_signature
from ledger.precheck import public_key
from ledger.reasons import ReasonCode
from ledger.registry import REGISTRY_STREAM, REGISTRY_TYPES, KeyRegistry
from ledger.registry_fold import check_genesis
from ledger.store import stream_id_hex

__all__ = [
    "ProducerSequences",
    "Run",
    "check_record",
    "check_stream_rows",
    "producer_of",
    "producer_runs",
]

SIGNATURE_SLICE = slice(KEY_ID_SLICE.stop, HEADER_LEN)

Row = tuple[int, str, int, bytes]  # position, stream id hex, version, record
# producer runs: (system, first_seq, last_seq, first_position, event_id and stream of first)
Run = tuple[str, int, int, int, str, str]


def check_record(row: Row, registry: KeyRegistry) -> tuple[list[Finding], Envelope | None]:
    """Every check of one stored record that needs no other record."""
    position, sid, version, record = row
    try:
        if len(record) <= HEADER_LEN or not record.startswith(RECORD_MAGIC):
            SignedRecord.decode(record)  # raises, naming the framing problem
        body = record[HEADER_LEN:]
        value = parse_canonical(body, check_values=False)
        canonical_problem = None
    except MalformedInput as exc:
        if exc.reason is not ReasonCode.NON_CANONICAL:
            return [Finding(FindingKind.CORRUPT_RECORD, position, None, None, exc.detail)], None
        value, canonical_problem = parse_strict(body), exc.detail
    try:
        # schema was enforced at append; the signature covers the bytes since then
        env = Envelope.from_json(value)
        if type(env.stream) is not str or type(env.event_id) is not str:
            raise TypeError("stream and event_id must be strings")
        if type(env.stream_seq) is not int:
            raise TypeError("stream_seq must be an integer")
    except (KeyError, TypeError, AttributeError) as exc:
        out = _found(canonical_problem, value, position)
        out.append(
            _finding(value, position, FindingKind.SCHEMA_INVALID, f"not an envelope: {exc!r}")
        )
        return out, None
    out = _found(canonical_problem, value, position)
    if stream_id_hex(env.stream) != sid or env.stream_seq != version:
        _add(
            out,
            env,
            position,
            FindingKind.MISFILED,
            f"stored as ({sid[:8]}…, {version}), body says ({env.stream}, {env.stream_seq})",
        )
    key_id = record[KEY_ID_SLICE]
    if env.type == "ledger.genesis":
        signed = SignedRecord.decode(record)
        out.extend(check_genesis(position, signed, env, registry.root_key_id))
        return out, env
    problem = registry.check(key_id, env, position)
    entry = registry.lookup(key_id)
    if problem is not None:
        kind = {
            ReasonCode.UNKNOWN_KEY: FindingKind.UNKNOWN_KEY,
            ReasonCode.REVOKED_KEY: FindingKind.REVOKED_KEY,
        }.get(problem[0], FindingKind.OUT_OF_SCOPE)
        _add(out, env, position, kind, problem[1])
    if entry is None:
        return out, env
    if not verify_signature(
        public_key(entry.key_id, entry.public_raw),
        record[SIGNATURE_SLICE],
        SIGNING_PREFIX + body,
    ):
        _add(out, env, position, FindingKind.BAD_SIGNATURE, "Ed25519 signature does not verify")
    if env.type in REGISTRY_TYPES and env.stream != REGISTRY_STREAM:
        _add(out, env, position, FindingKind.REGISTRY_INVALID, "registry event outside ledger/keys")
    return out, env


def _finding(value: object, position: int, kind: FindingKind, detail: str) -> Finding:
    """A finding naming the stream and event id the (possibly malformed) body claims."""
    stream = value.get("stream") if isinstance(value, dict) else None
    event_id = value.get("event_id") if isinstance(value, dict) else None
    return Finding(
        kind,
        position,
        stream if isinstance(stream, str) else None,
        event_id if isinstance(event_id, str) else None,
        detail,
    )


def _found(canonical_problem: str | None, value: object, position: int) -> list[Finding]:
    if canonical_problem is None:
        return []
    return [_finding(value, position, FindingKind.NON_CANONICAL, canonical_problem)]


def _add(
    findings: list[Finding], env: Envelope, position: int, kind: FindingKind, detail: str
) -> None:
    findings.append(Finding(kind, position, env.stream, env.event_id, detail))


def check_stream_rows(rows: Iterable[Row], registry: KeyRegistry) -> tuple[list[Finding], int, int]:
    """All per-record checks plus the chain checks, over rows sorted by (stream id, version).

    O(1) state; returns (findings, streams seen, rows read).
    """
    findings: list[Finding] = []
    streams = count = 0
    current: str | None = None
    last_seq = last_pos = 0
    last_digest = b""
    closed_at: int | None = None
    for row in rows:
        count += 1
        position, sid, _version, record = row
        if sid != current:
            current, last_seq, last_pos, last_digest, closed_at = sid, 0, 0, b"", None
            streams += 1
        row_findings, env = check_record(row, registry)
        findings.extend(row_findings)
        if env is None:
            continue
        seq = env.stream_seq
        if closed_at is not None:
            _add(
                findings,
                env,
                position,
                FindingKind.POST_CLOSURE_APPEND,
                f"stream was concluded at seq {closed_at}",
            )
        if seq == last_seq:
            _add(findings, env, position, FindingKind.FORK, f"a second event claims seq {seq}")
            continue
        if seq < last_seq:
            _add(
                findings,
                env,
                position,
                FindingKind.REORDER,
                f"seq {seq} stored after seq {last_seq}",
            )
            continue
        if seq > last_seq + 1:
            _add(
                findings,
                env,
                position,
                FindingKind.GAP,
                f"seqs {last_seq + 1}…{seq - 1} are missing",
            )
        elif env.prev != (b64(last_digest) if last_seq else None):
            _add(
                findings,
                env,
                position,
                FindingKind.CHAIN_BREAK,
                f"prev does not match the digest of seq {last_seq}",
            )
        if position < last_pos:
            _add(
                findings,
                env,
                position,
                FindingKind.REORDER,
                f"seq {seq} has a lower position than seq {last_seq}",
            )
        if env.is_terminal:
            if env.final_seq != seq:
                _add(findings, env, position, FindingKind.BAD_FINAL_SEQ, f"final_seq is not {seq}")
            closed_at = seq
        last_seq, last_pos = seq, position
        last_digest = hashlib.sha256(record[HEADER_LEN:]).digest()
    return findings, streams, count


_PRODUCER = b',"producer":{"seq":'
_SYSTEM = b',"system":"'


def _text_field(record: bytes, key: bytes) -> str | None:
    marker = b',"' + key + b'":"'
    i = record.rfind(marker)
    if i < 0:
        return None
    i += len(marker)
    j = record.find(b'"', i)
    return record[i:j].decode("utf-8", "replace") if j > i else None


def producer_of(record: bytes) -> tuple[str, int] | None:
    """(system, seq) read straight from the canonical bytes, without parsing the JSON.

    In the RFC 8785 form the top-level `producer` object is the last one with that key (keys
    are sorted; only strings follow it), laid out as {"seq":N,"system":"S"}. Records that are
    not canonical are reported by the record checks; here they just yield None.
    """
    i = record.rfind(_PRODUCER)
    if i < 0:
        return None
    i += len(_PRODUCER)
    j = record.find(_SYSTEM, i)
    k = record.find(b'"', j + len(_SYSTEM)) if j > 0 else -1
    if k < 0 or j - i > 16:
        return None
    try:
        seq = int(record[i:j])
    except ValueError:
        return None
    return record[j + len(_SYSTEM) : k].decode("utf-8", "replace"), seq


def producer_runs(rows: Iterable[Row], lo: int, hi: int) -> tuple[list[Finding], list[Run], int]:
    """Positions lo..hi-1 in order: holes in the positions, and each producer's seq runs."""
    findings: list[Finding] = []
    runs: list[Run] = []
    open_runs: dict[str, int] = {}  # system -> index in runs
    expected = lo
    count = 0
    for position, _sid, _version, record in rows:
        count += 1
        if position != expected:
            findings.append(
                Finding(
                    FindingKind.MISSING_POSITION,
                    expected,
                    None,
                    None,
                    f"positions {expected}…{position - 1} are missing",
                )
            )
        expected = position + 1
        producer = producer_of(record)
        if producer is None:
            continue
        system, seq = producer
        idx = open_runs.get(system)
        if idx is not None and runs[idx][2] + 1 == seq:
            run = runs[idx]
            runs[idx] = (run[0], run[1], seq, run[3], run[4], run[5])
        else:
            open_runs[system] = len(runs)
            runs.append(
                (
                    system,
                    seq,
                    seq,
                    position,
                    _text_field(record, b"event_id") or "",
                    _text_field(record, b"stream") or "",
                )
            )
    if expected < hi:  # rows missing at the end of the chunk
        findings.append(
            Finding(
                FindingKind.MISSING_POSITION,
                expected,
                None,
                None,
                f"positions {expected}…{hi - 1} are missing",
            )
        )
    return findings, runs, count


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
