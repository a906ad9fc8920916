"""Regression: key enrolments (stamped by the wall clock) before a replayed, older history moved
the detector's event time to "now", so every absence timer fired at once, red and late, even for
matters concluded well within their limit (R05 on 535 of 2,167 matters in a 20k demo run)."""

from __future__ import annotations

from pathlib import Path

from alerts.detector import Detector
from alerts.rules import load_ruleset
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.transport import InProcessChannel
from producers.producer import Producer
from producers.simulator import producer_scope
from projections.base import decode_record

MATTER = "matter/4403-xk/2025-000002"
ACTOR = {"official": "4403-00019", "role": "handler", "unit": "4403-0101"}


def test_enrolments_after_the_history_do_not_fire_its_timers(tmp_path: Path) -> None:
    with Ledger.init(tmp_path / "l") as ledger:  # genesis + enrolment: today's wall clock
        ledger.enrol_key("4403-xuke", "producer", producer_scope("4403-xuke"))
        channel = InProcessChannel()
        producer = Producer("4403-xuke", Signer.from_file(ledger.key_path("4403-xuke")), channel)
        steps = [
            ("matter.accepted", {"matter_type": "licence"}, "2025-12-02T04:51:30Z"),
            ("matter.concluded", {"outcome": "granted", "final_seq": 2}, "2025-12-09T07:16:20Z"),
        ]
        for type_, data, at in steps:
            producer.emit(MATTER, type_, actor=ACTOR, data=data, occurred_at=at)
        outcomes = ledger.appender().submit(channel.poll(10))
        assert [o.status for o in outcomes] == ["appended", "appended"]
        detector = Detector(ledger, load_ruleset())
        try:
            run = detector.run_once(now=1_800_000_000)  # 2027: long after every deadline
        finally:
            detector.close()
        raised = [
            decode_record(p, r)
            for p, _, _, r in _rows(ledger, run.position)
            if decode_record(p, r).type.startswith("warning.")
        ]
    assert [w.data["rule_id"] for w in raised if "R05" in w.data["rule_id"]] == []


def _rows(ledger: Ledger, upto: int) -> list[tuple[int, str, int, bytes]]:
    from ledger.log_reader import LogReader

    reader = LogReader(ledger.store.config)
    try:
        return list(reader.by_position(1, ledger.store.max_position() + 1))
    finally:
        reader.close()
