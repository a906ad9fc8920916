"""`verify`: re-check the whole ledger from the stored records alone.

What it proves, when it reports no finding:
- every stored record is a canonical, schema-valid envelope whose Ed25519 signature verifies
  under a key that the admin-signed registry made valid, and in scope, at the record's position;
- the positions are dense (no deleted row), and each row is filed under the stream and seq its
  signed body names;
- every stream is a complete hash chain 1…n (`prev` of each event is the digest of the one
  before), in increasing positions, with nothing after a terminal event, whose `final_seq` is
  its own seq;
- every producer system's sequence is dense and in position order (nothing a producer sent
  was dropped, duplicated or reordered).

Schema validity and the I-JSON value rules (no floats, integer range) are enforced at append;
`verify` relies on the signature for them afterwards and re-checks the canonical form, NFC and
surrogates (any non-ASCII or escaped body gets the full value walk).

It reads only the events (never the side tables) and MUST NOT re-serialise a body. Memory is
bounded: pass A walks positions in chunks, pass B walks streams in primary-key order with O(1)
state per worker; neither keeps per-stream or per-event state in the parent process. Both
passes run in a process pool (default: one worker per core).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from ledger.canonical import parse_canonical, parse_strict
from ledger.envelope import Envelope, SignedRecord, b64
from ledger.errors import MalformedInput
from ledger.findings import Finding, FindingKind
from ledger.keys import verify_signature
from ledger.precheck import public_key
from ledger.reasons import ReasonCode
from ledger.registry import REGISTRY_STREAM, REGISTRY_TYPES, KeyRegistry
from ledger.registry_fold import check_genesis, fold_registry_rows
from ledger.store import StoreConfig, stream_id_hex, stream_uuid

__all__ = [
    "VerifyReport",
    "check_record",
    "check_streams",
    "fold_registry_checked",
    "verify_ledger",
]

CHUNK = 4000
# A witness that has not cosigned the latest checkpoint yet (offline, slow) is worth saying,
# but is not evidence that the log was tampered with.
WARNING_KINDS = frozenset({FindingKind.MISSING_COSIGNATURE})
MAX_FINDINGS = 1000

Row = tuple[int, str, int, bytes]  # position, stream id hex, version, record


@dataclass
class VerifyReport:
    events: int = 0
    streams: int = 0
    producers: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    finding_counts: dict[str, int] = field(default_factory=dict)
    warnings: list[Finding] = field(default_factory=list)  # not tamper evidence
    max_position: int = 0

    @property
    def intact(self) -> bool:
        return not self.finding_counts

    def add(self, finding: Finding) -> None:
        if finding.kind in WARNING_KINDS:
            if len(self.warnings) < MAX_FINDINGS:
                self.warnings.append(finding)
            return
        self.finding_counts[finding.kind.value] = self.finding_counts.get(finding.kind.value, 0) + 1
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(finding)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": "intact" if self.intact else "tamper_evidence",
            "events": self.events,
            "streams": self.streams,
            "max_position": self.max_position,
            "producers": self.producers,
            "finding_counts": self.finding_counts,
            "findings": [f.to_json() for f in self.findings],
            "warnings": [w.to_json() for w in self.warnings],
            "findings_truncated": sum(self.finding_counts.values()) > len(self.findings),
        }


# -- reading (each worker opens its own read-only connection) ---------------------------------


class _Reader:
    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.sqlite = config.dialect == "sqlite"
        if self.sqlite:
            self.conn: Any = sqlite3.connect(f"file:{config.sqlite_path}?mode=ro", uri=True)
        else:
            import psycopg

            self.conn = psycopg.connect(config.url, autocommit=True)
        self.table = config.events_table
        self.pos = "rowid" if self.sqlite else "notification_id"

    def _rows(self, sql: str, params: tuple[Any, ...]) -> Iterator[Row]:
        if not self.sqlite:
            sql = sql.replace("?", "%s")
        cursor = self.conn.cursor()
        cursor.execute(sql, params)
        while True:
            batch = cursor.fetchmany(2000)
            if not batch:
                return
            for p, oid, ver, state in batch:
                yield int(p), oid if isinstance(oid, str) else oid.hex, int(ver), bytes(state)

    def by_position(self, lo: int, hi: int) -> Iterator[Row]:
        return self._rows(
            f"SELECT {self.pos}, originator_id, originator_version, state FROM {self.table}"
            f" WHERE {self.pos} >= ? AND {self.pos} < ? ORDER BY {self.pos}",
            (lo, hi),
        )

    def by_stream_range(self, lo: str, hi: str | None) -> Iterator[Row]:
        low: Any = lo if self.sqlite else uuid.UUID(lo)
        params: tuple[Any, ...]
        if hi is None:
            where, params = "originator_id >= ?", (low,)
        else:
            high: Any = hi if self.sqlite else uuid.UUID(hi)
            where, params = "originator_id >= ? AND originator_id < ?", (low, high)
        return self._rows(
            f"SELECT {self.pos}, originator_id, originator_version, state FROM {self.table}"
            f" WHERE {where} ORDER BY originator_id, originator_version",
            params,
        )

    def stream(self, stream: str) -> Iterator[Row]:
        sid = stream_uuid(stream)
        return self._rows(
            f"SELECT {self.pos}, originator_id, originator_version, state FROM {self.table}"
            " WHERE originator_id = ? ORDER BY originator_version",
            (sid.hex if self.sqlite else sid,),
        )

    def max_position(self) -> int:
        cursor = self.conn.cursor()
        cursor.execute(f"SELECT MAX({self.pos}) FROM {self.table}")
        row = cursor.fetchone()
        return int(row[0] or 0)

    def close(self) -> None:
        self.conn.close()


# -- pass A: each record on its own, in position order ----------------------------------------

# producer runs: (system, first_seq, last_seq, first_position, event_id and stream of first)
Run = tuple[str, int, int, int, str, str]

_W: dict[str, Any] = {}


def _init_worker(config: StoreConfig, registry: KeyRegistry) -> None:
    _W["reader"] = _Reader(config)
    _W["registry"] = registry


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


def _pass_a(lo: int, hi: int) -> tuple[int, list[Finding], list[Run], int]:
    registry: KeyRegistry = _W["registry"]
    findings: list[Finding] = []
    runs: list[Run] = []
    open_runs: dict[str, int] = {}  # system -> index in runs
    expected = lo
    count = 0
    for row in _W["reader"].by_position(lo, hi):
        count += 1
        if row[0] != expected:
            findings.append(
                Finding(
                    FindingKind.MISSING_POSITION,
                    expected,
                    None,
                    None,
                    f"positions {expected}…{row[0] - 1} are missing",
                )
            )
        expected = row[0] + 1
        row_findings, env = check_record(row, registry)
        findings.extend(row_findings)
        if env is None:
            continue
        idx = open_runs.get(env.producer_system)
        if idx is not None and runs[idx][2] + 1 == env.producer_seq:
            system, first, _, pos, eid, stream = runs[idx]
            runs[idx] = (system, first, env.producer_seq, pos, eid, stream)
        else:
            open_runs[env.producer_system] = len(runs)
            runs.append(
                (
                    env.producer_system,
                    env.producer_seq,
                    env.producer_seq,
                    row[0],
                    env.event_id,
                    env.stream,
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
    return lo, findings, runs, count


# -- pass B: streams in primary-key order -------------------------------------------------------


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


def _pass_b(lo: str, hi: str | None) -> tuple[list[Finding], int, int]:
    count = 0

    def counted() -> Iterator[Row]:
        nonlocal count
        for row in _W["reader"].by_stream_range(lo, hi):
            count += 1
            yield row

    findings, streams = check_streams(counted())
    return findings, streams, count


# -- orchestration ---------------------------------------------------------------------------


def _stream_ranges(parts: int) -> list[tuple[str, str | None]]:
    step = 0x10000 // parts
    bounds = [f"{i * step:04x}" + "0" * 28 for i in range(parts)]
    return [(bounds[i], bounds[i + 1] if i + 1 < parts else None) for i in range(parts)]


def fold_registry_checked(reader: _Reader, root_key_id: bytes, report: VerifyReport) -> KeyRegistry:
    """Build the registry from `ledger/keys`, checking each change at its position."""
    registry = KeyRegistry(root_key_id)
    rows = ((position, record) for position, _, _, record in reader.stream(REGISTRY_STREAM))
    for finding in fold_registry_rows(registry, rows):
        report.add(finding)
    return registry


def verify_ledger(
    config: StoreConfig,
    root_key_id: bytes,
    *,
    workers: int | None = None,
    stream: str | None = None,
    progress: Callable[[int], None] | None = None,
    extra_checks: Sequence[Callable[[KeyRegistry], list[Finding]]] = (),
) -> VerifyReport:
    """Verify the ledger.

    `extra_checks` (e.g. the Merkle log) get the registry as checked here and run in a thread
    while the event passes run in the process pool.
    """
    report = VerifyReport()
    reader = _Reader(config)
    try:
        registry = fold_registry_checked(reader, root_key_id, report)
        report.max_position = reader.max_position()
    finally:
        reader.close()
    with ThreadPoolExecutor(1, thread_name_prefix="neikong-verify-extra") as extra:
        running = [extra.submit(check, registry) for check in extra_checks]
        _verify_events(config, registry, report, workers=workers, stream=stream, progress=progress)
        for fut in running:
            for finding in fut.result():
                report.add(finding)
    return report


def _verify_events(
    config: StoreConfig,
    registry: KeyRegistry,
    report: VerifyReport,
    *,
    workers: int | None,
    stream: str | None,
    progress: Callable[[int], None] | None,
) -> None:
    if stream is not None:
        reader = _Reader(config)
        try:
            rows = list(reader.stream(stream))
            for row in rows:
                findings, _ = check_record(row, registry)
                for f in findings:
                    report.add(f)
            findings, report.streams = check_streams(rows)
            for f in findings:
                report.add(f)
            report.events = len(rows)
            if progress:
                progress(len(rows) * 2)
            return
        finally:
            reader.close()
    workers = workers if workers is not None else (os.cpu_count() or 1)
    _run_parallel(config, registry, report, max(1, workers), progress)


def _run_parallel(
    config: StoreConfig,
    registry: KeyRegistry,
    report: VerifyReport,
    workers: int,
    progress: Callable[[int], None] | None,
) -> None:
    top = report.max_position
    a_tasks = [(lo, min(lo + CHUNK, top + 1)) for lo in range(1, top + 1, CHUNK)]
    b_tasks = _stream_ranges(max(16, min(4096, top // CHUNK + 1)))
    tasks: list[tuple[str, Any]] = []
    for i in range(max(len(a_tasks), len(b_tasks))):
        if i < len(a_tasks):
            tasks.append(("a", a_tasks[i]))
        if i < len(b_tasks):
            tasks.append(("b", b_tasks[i]))
    merger = _ProducerMerger(report)
    pending_a: dict[int, tuple[list[Finding], list[Run], int]] = {}
    next_a = 1
    window = workers * 3
    with ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_init_worker,
        initargs=(config, registry),
    ) as pool:
        in_flight: list[tuple[str, Future[Any]]] = []
        queue = iter(tasks)
        while True:
            while len(in_flight) < window:
                task = next(queue, None)
                if task is None:
                    break
                kind, args = task
                in_flight.append((kind, pool.submit(_pass_a if kind == "a" else _pass_b, *args)))
            if not in_flight:
                break
            kind, fut = in_flight.pop(0)
            if kind == "a":
                lo, findings, runs, count = fut.result()
                pending_a[lo] = (findings, runs, count)
                while next_a in pending_a:
                    findings, runs, count = pending_a.pop(next_a)
                    for f in findings:
                        report.add(f)
                    merger.feed(runs)
                    report.events += count
                    next_a += CHUNK
            else:
                findings, streams, count = fut.result()
                for f in findings:
                    report.add(f)
                report.streams += streams
            if progress:
                progress(count)
    merger.finish()


class _ProducerMerger:
    """Per producer system: the next expected seq and the (bounded) list of reported holes.

    Memory is O(producer systems + holes reported), never O(events).
    """

    MAX_HOLES = 10_000

    def __init__(self, report: VerifyReport) -> None:
        self.report = report
        self.expected: dict[str, int] = {}
        self.holes: dict[str, list[tuple[int, int]]] = {}

    def feed(self, runs: list[Run]) -> None:
        for system, first, last, position, event_id, stream in runs:
            want = self.expected.get(system, 1)
            if first > want:
                self.report.add(
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
                self.report.add(
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

    def finish(self) -> None:
        self.report.producers = {s: n - 1 for s, n in sorted(self.expected.items())}
