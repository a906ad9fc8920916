"""Child process of `test_crash_safety`: appends one complete matter per batch until killed.

    python -m tests.ledger.crash_writer LEDGER_DIR BATCH_SIZE WORKERS

Batch i is the stream `matter/4403-fp/crash-{i:06d}` with events 1…K (accepted, steps,
concluded) and producer seqs i*K+1 … i*K+K. The records are a pure function of (key, i, K):
Ed25519 signatures are deterministic and event ids are derived from (i, j), so the parent can
rebuild exactly what the child sent, as a producer resending its outbox would.
Before each submit the child writes `sending i` to stdout and flushes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ledger.builder import build_body
from ledger.envelope import b64
from ledger.keys import Signer
from ledger.ledger import Ledger
from tests.ledger._support import ACTOR, FP_PREFIX, FP_SYSTEM, WHEN, deterministic_event_id

KEY_NAME = "crash"


def stream_name(index: int) -> str:
    return f"{FP_PREFIX}crash-{index:06d}"


def batch_records(signer: Signer, index: int, size: int) -> list[bytes]:
    records: list[bytes] = []
    prev: str | None = None
    for j in range(1, size + 1):
        if j == 1:
            type_, data = "matter.accepted", {"matter_type": "invoice_book", "channel": "online"}
        elif j == size:
            type_, data = "matter.concluded", {"outcome": "issued", "final_seq": size}
        else:
            type_, data = "matter.step_completed", {"step": "review", "outcome": "passed"}
        body = build_body(
            event_id=deterministic_event_id("crash", index, j),
            stream=stream_name(index),
            stream_seq=j,
            prev=prev,
            system=FP_SYSTEM,
            producer_seq=index * size + j,
            type=type_,
            occurred_at=WHEN,
            actor=ACTOR,
            data=data,
        )
        record = signer.sign(body)
        prev = b64(record.digest)
        records.append(record.encode())
    return records


def main(argv: list[str]) -> None:
    directory, size, workers = Path(argv[0]), int(argv[1]), int(argv[2])
    ledger = Ledger.open(directory)
    signer = Signer.from_file(ledger.key_path(KEY_NAME))
    appender = ledger.appender(workers=workers)
    index = 0
    while True:
        records = batch_records(signer, index, size)
        sys.stdout.write(f"sending {index}\n")
        sys.stdout.flush()
        outcomes = appender.submit(records)
        assert all(o.status == "appended" for o in outcomes), outcomes
        index += 1


if __name__ == "__main__":
    main(sys.argv[1:])
