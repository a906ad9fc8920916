"""One contract for every event store: SQLite (embedded default) and PostgreSQL.

The same appender, rules and verifier run on both; only the store URL differs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.builder import build_body
from ledger.errors import ConflictError
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.reasons import ReasonCode
from ledger.registry import KeyScope
from ledger.side_tables import SideWrites
from ledger.store import LedgerStore, StoreConfig
from ledger.verify import verify_ledger
from ops.pipeline import enrol_demo_producers, run_simulation

SCOPE = KeyScope("4403-test", ("matter/4403-t/",), ("matter.*",))


def _ledger(tmp_path: Path, store_url: str) -> Ledger:
    return Ledger.init(tmp_path / "ledger", store_url=store_url)


def _body(
    seq: int,
    prev: str | None,
    pseq: int,
    *,
    stream: str = "matter/4403-t/2026-000001",
    event_id: str | None = None,
    type_: str = "matter.step_completed",
    data: dict | None = None,
) -> bytes:
    return build_body(
        event_id=event_id or f"00000000-0000-4000-8000-{pseq:012d}",
        stream=stream,
        stream_seq=seq,
        prev=prev,
        system="4403-test",
        producer_seq=pseq,
        type=type_,
        occurred_at="2026-11-02T01:00:00Z",
        actor={"official": "4403-00001", "role": "handler", "unit": "4403-01"},
        data=data if data is not None else {"step": "review", "outcome": "passed"},
    )


def test_simulated_run_appends_and_verifies_intact(tmp_path: Path, store_url: str) -> None:
    with _ledger(tmp_path, store_url) as ledger:
        signers = enrol_demo_producers(ledger)
        stats = run_simulation(ledger, signers, events=600, seed=3, workers=0)
        assert stats.outcomes == {"appended": 600}
        assert ledger.store.max_position() == 600 + 1 + len(signers)  # genesis + enrolments
        report = verify_ledger(
            ledger.store.config, bytes.fromhex(ledger.config.root_key_id), workers=2
        )
        assert report.intact, report.finding_counts
        assert report.events == 600 + 1 + len(signers)
        streams = [s for s in ledger.store.streams("") if not s.name.startswith("ledger/")]
        assert sum(s.length for s in streams) == 600
        assert any(s.closed for s in streams if s.name.startswith("matter/"))


def test_positions_are_dense_and_in_append_order(tmp_path: Path, store_url: str) -> None:
    with _ledger(tmp_path, store_url) as ledger:
        ledger.enrol_key("t", "producer", SCOPE)
        signer = Signer.from_file(ledger.key_path("t"))
        first = signer.sign(_body(1, None, 1))
        second = signer.sign(_body(2, first_prev(first.digest), 2))
        outcomes = ledger.appender().submit([first.encode(), second.encode()])
        assert [o.status for o in outcomes] == ["appended", "appended"]
        rows = ledger.store.read(1, 100)
        assert [r.position for r in rows] == list(range(1, len(rows) + 1))
        assert rows[-1].record == second.encode()  # stored verbatim
        assert [o.position for o in outcomes] == [rows[-2].position, rows[-1].position]


def first_prev(digest: bytes) -> str:
    import base64

    return base64.b64encode(digest).decode()


def test_fork_duplicate_and_dead_letters(tmp_path: Path, store_url: str) -> None:
    with _ledger(tmp_path, store_url) as ledger:
        ledger.enrol_key("t", "producer", SCOPE)
        signer = Signer.from_file(ledger.key_path("t"))
        one = signer.sign(_body(1, None, 1)).encode()
        fork = signer.sign(
            _body(
                1,
                None,
                2,
                event_id="00000000-0000-4000-8000-000000000999",
                data={"step": "approve"},
            )
        ).encode()
        appender = ledger.appender()
        assert appender.submit([one])[0].status == "appended"
        assert appender.submit([one])[0].status == "duplicate"
        out = appender.submit([fork, b"garbage"])
        assert [o.reason for o in out] == [ReasonCode.FORK, ReasonCode.BAD_FRAMING]
        letters = ledger.store.dead_letters()
        assert {(d["reason"], d["record"]) for d in letters} == {
            ("fork", fork),
            ("bad_framing", b"garbage"),
        }
        assert ledger.store.max_position() == 3  # genesis, enrolment, one event


def test_concurrent_writer_is_detected(tmp_path: Path, store_url: str) -> None:
    with _ledger(tmp_path, store_url) as ledger:
        other = LedgerStore(StoreConfig(store_url))
        try:
            base = other.max_position()
            other.append([("x/y", 1, b"NKE1-a")], SideWrites(expected_max_position=base))
            with pytest.raises(ConflictError):
                other.append([("x/y", 2, b"NKE1-b")], SideWrites(expected_max_position=base))
            with pytest.raises(ConflictError):  # unique (stream, seq) also holds
                other.append([("x/y", 1, b"NKE1-c")], SideWrites(expected_max_position=base + 1))
            assert other.max_position() == base + 1
        finally:
            other.close()
        assert ledger.store.max_position() == base + 1
