"""Benchmark of evidence bundles: size and verify time of a bundle for a 20-event case.

`bundle_bench(work_dir)` builds a scratch ledger (a 20-event concluded case among other
traffic), seals it, has an in-process witness cosign the checkpoint, exports the bundle and
times `ledger.verify_bundle.verify_bundle` on it (the standalone verifier's code, with a trust
set as an inspector would use it). Keys of the result: `bundle_events`, `bundle_bytes`,
`bundle_verify_ms` (median).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from ledger.builder import build_body, new_event_id
from ledger.bundle import export_bundle
from ledger.envelope import prev_of
from ledger.keys import Signer, generate_private_key
from ledger.ledger import Ledger
from ledger.registry import KeyScope
from ledger.sealer import Sealer, ensure_checkpoint_key
from ledger.verify_bundle import TrustKeys, encode_bundle, verify_bundle
from ledger.witness import Witness
from ledger.witness_config import add_witness
from ledger.witnessing import cosign_checkpoint, tile_proof_provider

__all__ = ["bundle_bench"]

SYSTEM = "4403-bench"
SCOPE = KeyScope(SYSTEM, ("matter/4403-bench/",), ("matter.*",))
ACTOR = {"official": "4403-00001", "role": "handler", "unit": "4403-01"}


def _cases(signer: Signer, streams: list[str], events: int) -> list[bytes]:
    """Signed records of cases that overlap in time (round robin), each of `events` events:
    accepted, review steps, concluded (final_seq = events)."""
    records: list[bytes] = []
    prev: dict[str, str | None] = dict.fromkeys(streams)
    for seq in range(1, events + 1):
        for stream in streams:
            data: dict[str, Any]
            if seq == 1:
                kind, data = "matter.accepted", {"matter_type": "licence", "channel": "hall"}
            elif seq == events:
                kind, data = "matter.concluded", {"outcome": "granted", "final_seq": seq}
            else:
                kind, data = "matter.step_completed", {"step": "review", "outcome": "passed"}
            body = build_body(
                event_id=new_event_id(),
                stream=stream,
                stream_seq=seq,
                prev=prev[stream],
                system=SYSTEM,
                producer_seq=len(records) + 1,
                type=kind,
                occurred_at="2026-11-02T01:30:00Z",
                actor=ACTOR,
                data=data,
            )
            records.append(signer.sign(body).encode())
            prev[stream] = prev_of(body)
    return records


def bundle_bench(work_dir: Path, *, events: int = 20, repeat: int = 30) -> dict[str, Any]:
    """Build, cosign, export and verify a bundle of an `events`-event case; see module doc."""
    directory = work_dir / "bundle-bench"
    with Ledger.init(directory) as ledger:
        checkpoint_signer = ensure_checkpoint_key(ledger)
        ledger.enrol_key("bench", "producer", SCOPE)
        signer = Signer.from_file(ledger.key_path("bench"))
        streams = [f"matter/4403-bench/{i:04d}" for i in range(8)]
        records = _cases(signer, streams, events)
        for outcome in ledger.appender().submit(records):
            if outcome.status != "appended":
                raise RuntimeError(f"bench event not appended: {outcome.reason} {outcome.detail}")
        with Sealer(ledger, checkpoint_signer, durable=False) as sealer:
            published = sealer.seal_once()
        assert published is not None
        origin = ledger.config.origin
        trusted_log = {origin: (origin, checkpoint_signer.public_raw)}
        with Witness(
            "bench.example/w1", generate_private_key(), work_dir / "w.json", trusted_log
        ) as w:
            add_witness(directory, "w1", "http://127.0.0.1:9", w.vkey)
            cosign_checkpoint(
                directory,
                published.note,
                None,
                tile_proof_provider(directory, published.size),
                submit=lambda _url, old, proof, note: [w.add_checkpoint(old, proof, note)],
            )
            trust = TrustKeys(bytes.fromhex(ledger.config.root_key_id), (w.vkey,))
        data = encode_bundle(export_bundle(ledger, streams[3]))
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        verdict = verify_bundle(data, trust)
        timings.append((time.perf_counter() - started) * 1000)
        if not verdict.ok:
            raise RuntimeError(verdict.render())
    return {
        "bundle_events": events,
        "bundle_bytes": len(data),
        "bundle_verify_ms": round(statistics.median(timings), 3),
    }
