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

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from typing import Any

from ledger.findings import Finding, FindingKind
from ledger.log_reader import LogReader
from ledger.registry import REGISTRY_STREAM, KeyRegistry
from ledger.registry_fold import fold_registry_rows
from ledger.store import StoreConfig
from ledger.verify_checks import ProducerSequences, Run, check_stream_rows, producer_runs

__all__ = ["VerifyReport", "fold_registry_checked", "verify_ledger"]

CHUNK = 4000
# A witness that has not cosigned the latest checkpoint yet (offline, slow) is worth saying,
# but is not evidence that the log was tampered with.
WARNING_KINDS = frozenset({FindingKind.MISSING_COSIGNATURE})
MAX_FINDINGS = 1000


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


# -- pass A: each record on its own, in position order ----------------------------------------

_W: dict[str, Any] = {}


def _init_worker(config: StoreConfig, registry: KeyRegistry) -> None:
    _W["reader"] = LogReader(config)
    _W["registry"] = registry


def _pass_a(lo: int, hi: int) -> tuple[int, list[Finding], list[Run], int]:
    """Positions lo..hi-1: holes and producer sequences (no signatures: pass B has them)."""
    findings, runs, count = producer_runs(_W["reader"].by_position(lo, hi), lo, hi)
    return lo, findings, runs, count


# -- pass B: streams in primary-key order -------------------------------------------------------


def _pass_b(lo: str, hi: str | None) -> tuple[list[Finding], int, int]:
    """Stream ids in [lo, hi): every record check and every chain check."""
    return check_stream_rows(_W["reader"].by_stream_range(lo, hi), _W["registry"])


# -- orchestration ---------------------------------------------------------------------------


def _stream_ranges(parts: int) -> list[tuple[str, str | None]]:
    step = 0x10000 // parts
    bounds = [f"{i * step:04x}" + "0" * 28 for i in range(parts)]
    return [(bounds[i], bounds[i + 1] if i + 1 < parts else None) for i in range(parts)]


def fold_registry_checked(
    reader: LogReader, root_key_id: bytes, report: VerifyReport
) -> KeyRegistry:
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
    reader = LogReader(config)
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
        reader = LogReader(config)
        try:
            findings, report.streams, report.events = check_stream_rows(
                reader.stream(stream), registry
            )
            for f in findings:
                report.add(f)
            if progress:
                progress(report.events)
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
    merger = ProducerSequences(report.add)
    pending_a: dict[int, tuple[list[Finding], list[Run], int]] = {}
    next_a = 1
    window = workers * 3
    with ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_init_worker,
        initargs=(config, registry),
    ) as pool:
        # Results are taken as they complete (not in submission order), so a long task never
        # leaves a worker idle behind it; pass A's chunks are merged in position order.
        in_flight: dict[Future[Any], str] = {}
        queue = iter(tasks)
        while True:
            # pass A's chunks wait in `pending_a` until the earlier ones arrive: bounded too
            while len(in_flight) < window and len(pending_a) < 4 * window:
                task = next(queue, None)
                if task is None:
                    break
                kind, args = task
                in_flight[pool.submit(_pass_a if kind == "a" else _pass_b, *args)] = kind
            if not in_flight:
                break
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for fut in done:
                kind = in_flight.pop(fut)
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
    report.producers = merger.last_seqs()
