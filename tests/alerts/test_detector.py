"""The detector over a real ledger: signed warnings, replay determinism, restart, idempotency."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from alerts.calendar import default_calendar
from alerts.detector import Detector
from alerts.engine import Engine
from alerts.rules import RuleSet, load_ruleset
from ledger.envelope import HEADER_LEN
from ledger.ledger import Ledger
from ledger.log_reader import LogReader
from projections.base import decode_record
from tests.alerts._support import (
    HANDLER,
    Script,
    at,
    detector_bodies,
    detector_rows,
    make_ledger,
    store_config,
    ts,
)
from tests.ledger._support import verify_dir

M1, M2, M3 = "matter/4403-xk/2026-1", "matter/4403-xk/2026-2", "matter/4403-xk/2026-3"
SELF = {"official": "4403-00101", "role": "approver", "unit": "4403-01"}


def _inputs(directory: Path) -> Script:
    """M1, M2: licences (20 WD); M3: accepted and approved by the same official (R04)."""
    script = Script()
    for stream in (M1, M2, M3):
        script.append(directory, stream, "matter.accepted", at(0), {"matter_type": "licence"})
    script.append(
        directory,
        M3,
        "matter.step_completed",
        at(1),
        {"step": "approve", "outcome": "approved"},
        actor=SELF,
    )
    return script


def _core_rules() -> RuleSet:
    """The rules these tests are about (R04, R05, R24): other rules would add warnings."""
    full = load_ruleset()
    return full.only([r.id for r in full if r.id.split("-")[0] in ("R04", "R05", "R24")])


def _bodies(directory: Path) -> list[dict]:
    return [orjson.loads(b) for b in detector_bodies(directory)]


def test_warnings_are_ledger_events_signed_by_the_detector(tmp_path: Path) -> None:
    directory = make_ledger(tmp_path / "l")
    _inputs(directory)
    with Ledger.open(directory) as ledger:
        det = Detector(ledger, _core_rules())
        run = det.run_once(ts(2))
        det.close()
    assert run.appended == 1
    (body,) = _bodies(directory)
    assert body["type"] == "warning.raised"
    assert body["stream"].startswith("warning/R04-same-person-handles-and-approves/")
    assert body["producer"]["system"] == "neikong-detector"
    data = body["data"]
    assert data["rule_id"] == "R04-same-person-handles-and-approves"
    assert data["rule_version"] == 2
    assert data["ruleset_hash"] == load_ruleset().ruleset_hash
    assert (data["level"], data["grade"], data["key"]) == ("orange", 1, M3)
    assert data["attributed"] == {"official": "4403-00101", "role": "approver"}
    assert len(data["triggers"]) == 2
    assert data["late"] is False
    assert body["occurred_at"] == at(1)  # the triggering event's time, not the wall clock
    report = verify_dir(directory)
    assert not report.finding_counts, report.finding_counts


def test_replaying_the_same_log_gives_byte_identical_warnings(tmp_path: Path) -> None:
    dirs = [make_ledger(tmp_path / name) for name in ("a", "b")]
    for directory in dirs:
        script = _inputs(directory)
        with Ledger.open(directory) as ledger:
            det = Detector(ledger, _core_rules())
            det.run_once(ts(2))
            script.append(
                directory, M2, "matter.concluded", at(10), {"outcome": "granted", "final_seq": 2}
            )
            det.run_once(ts(60))
            det.close()
    first, second = (detector_bodies(d) for d in dirs)
    kinds = [(b["type"], b["data"].get("level") or b["data"]["color"]) for b in _bodies(dirs[0])]
    # R04 orange; R05: M1 and M3 late red (M2 concluded in time); R24: a yellow card per red
    # warning, then two yellow cards make a red one
    assert sorted(kinds) == sorted(
        [
            ("warning.raised", "orange"),
            ("warning.raised", "red"),
            ("warning.raised", "red"),
            ("card.issued", "yellow"),
            ("card.issued", "yellow"),
            ("card.issued", "red"),
        ]
    )
    assert first == second
    # a fresh engine over the same ledger emits exactly the events already in it
    with Ledger.open(dirs[0]) as ledger:
        reader = LogReader(ledger.store.config)
        replays = []
        for _ in range(2):
            engine = Engine(_core_rules(), default_calendar())
            out = []
            for position, _, _, record in reader.by_position(1, reader.max_position() + 1):
                event = decode_record(position, record)
                if event.system != "neikong-detector":
                    out += engine.process(event, ts(2) if event.occurred_at < at(5) else ts(60))
            out += engine.advance(ts(60))
            replays.append([json.dumps(e.as_json(), sort_keys=True) for e in out])
        reader.close()
    assert replays[0]
    assert replays[0] == replays[1]


def test_restart_fires_timers_due_during_downtime_once_and_late(tmp_path: Path) -> None:
    directory = make_ledger(tmp_path / "l")
    script = Script()
    script.append(directory, M1, "matter.accepted", at(0), {"matter_type": "licence"})
    script.append(directory, M2, "matter.accepted", at(0), {"matter_type": "licence"})
    with Ledger.open(directory) as ledger:
        det = Detector(ledger, _core_rules())
        assert det.run_once(ts(1)).appended == 0
        assert det.engine.next_due() is not None  # pending timers, snapshotted
        position = det.position
        det.close()
    # down from day 1 to day 45; M2 concludes on day 25 (after its yellow, before orange)
    script.append(directory, M2, "matter.concluded", at(25), {"outcome": "granted", "final_seq": 2})
    with Ledger.open(directory) as ledger:
        det = Detector(ledger, _core_rules())
        assert det.position == position > 0  # resumed from the snapshot, not from zero
        run = det.run_once(ts(45))
        det.close()
    assert run.appended == 3  # two warnings, and R24's yellow card for the red one
    got = {
        (b["data"]["key"], b["data"]["level"], b["data"]["late"])
        for b in _bodies(directory)
        if b["type"].startswith("warning.")
    }
    assert got == {(M1, "red", True), (M2, "yellow", True)}
    red = next(b for b in _bodies(directory) if b["data"]["key"] == M1)
    assert red["occurred_at"] == red["data"]["due_at"] == "2026-02-14T16:00:00Z"


def test_timers_fire_on_time_while_running(tmp_path: Path) -> None:
    directory = make_ledger(tmp_path / "l")
    Script().append(directory, M1, "matter.accepted", at(0), {"matter_type": "licence"})
    yellow_due = ts(22, 15)  # 24:00 CST of 2026-01-27 (16th working day)
    with Ledger.open(directory) as ledger:
        det = Detector(ledger, _core_rules())
        assert det.run_once(yellow_due - 1).appended == 0
        assert det.run_once(yellow_due + 5).appended == 1
        assert det.run_once(yellow_due + 10).appended == 0
        det.close()
    (body,) = _bodies(directory)
    assert (body["data"]["level"], body["data"]["late"]) == ("yellow", False)


def test_lost_snapshot_replays_without_duplicating_warnings(tmp_path: Path) -> None:
    directory = make_ledger(tmp_path / "l")
    _inputs(directory)
    with Ledger.open(directory) as ledger:
        det = Detector(ledger, _core_rules())
        det.run_once(ts(60))
        det.close()
    before = detector_bodies(directory)
    assert len(before) == 8  # R04 orange, three late R05 reds, and R24's four cards
    (directory / "detector.db").unlink()  # as if it crashed after appending, before the snapshot
    with Ledger.open(directory) as ledger:
        det = Detector(ledger, _core_rules())
        assert det.position == 0
        run = det.run_once(ts(60))
        det.close()
    assert run.emitted == len(before)
    assert run.appended == 0
    assert detector_bodies(directory) == before


def test_a_closed_warning_lets_a_new_trigger_open_a_new_one(tmp_path: Path) -> None:
    directory = make_ledger(tmp_path / "l")
    script = _inputs(directory)
    with Ledger.open(directory) as ledger:
        det = Detector(ledger, _core_rules())
        det.run_once(ts(2))
        (raised,) = detector_rows(directory)
        ledger.append_as(
            "detector",
            raised.stream,
            "warning.closed",
            actor={"official": "4403-00900", "role": "supervisor", "unit": "4403-01"},
            data={
                "warning_ref": _bodies(directory)[0]["event_id"],
                "reason": "false_positive",
                "closed_by": "4403-00900",
            },
            occurred_at=at(2),
        )
        script.append(
            directory,
            M3,
            "matter.step_completed",
            at(3),
            {"step": "review", "outcome": "passed"},
            actor=dict(HANDLER, role="reviewer"),
        )
        script.append(
            directory,
            M3,
            "matter.step_completed",
            at(3, 1),
            {"step": "approve", "outcome": "approved"},
            actor=SELF,
        )
        det.run_once(ts(4))
        det.close()
    types = [(r.type, r.stream == raised.stream) for r in detector_rows(directory)]
    assert types == [("warning.raised", True), ("warning.closed", True), ("warning.raised", True)]


def test_cli_detect_once(tmp_path: Path) -> None:
    from ops.cli import main

    directory = make_ledger(tmp_path / "l")
    _inputs(directory)
    result = CliRunner().invoke(main, ["detect", "--once", "--ledger", str(directory)])
    assert result.exit_code == 0, result.output
    assert "appended" in result.output
    assert " 0 appended" not in result.output
    again = CliRunner().invoke(main, ["detect", "--once", "--ledger", str(directory)])
    assert again.exit_code == 0
    assert "0 appended" in again.output
    reader = LogReader(store_config(directory))
    assert reader.max_position() > 9
    reader.close()


def test_snapshot_and_resume_on_every_backend(tmp_path: Path, store_url: str) -> None:
    """SQLite: DIR/detector.db; PostgreSQL: the nk_detector_snapshot table."""
    directory = make_ledger(tmp_path / "l", store_url)
    script = Script()
    script.append(directory, M1, "matter.accepted", at(0), {"matter_type": "licence"})
    with Ledger.open(directory) as ledger:
        det = Detector(ledger, _core_rules())
        assert det.run_once(ts(1)).appended == 0
        position = det.position
        det.close()
    assert (directory / "detector.db").exists() == store_url.startswith("sqlite")
    with Ledger.open(directory) as ledger:
        det = Detector(ledger, _core_rules())
        assert det.position == position
        run = det.run_once(ts(23, 1))  # 10 h after yellow fell due, with nobody running: late
        det.close()
        reader = LogReader(ledger.store.config)
        bodies = [
            orjson.loads(r[HEADER_LEN:])
            for _, _, _, r in reader.by_position(position + 1, reader.max_position() + 1)
        ]
        reader.close()
    assert run.appended == 1
    warnings = [b for b in bodies if b["type"] == "warning.raised"]
    assert [(w["data"]["level"], w["data"]["late"]) for w in warnings] == [("yellow", True)]


def test_the_warning_lifecycle_is_schema_checked_ledger_events(tmp_path: Path) -> None:
    from alerts.lifecycle import append_lifecycle
    from ledger.errors import NeikongError

    directory = make_ledger(tmp_path / "l")
    _inputs(directory)
    supervisor = {"official": "4403-00900", "role": "supervisor", "unit": "4403-01"}
    with Ledger.open(directory) as ledger:
        det = Detector(ledger, _core_rules())
        det.run_once(ts(2))
        (raised,) = _bodies(directory)
        ref, stream = raised["event_id"], raised["stream"]
        steps = [
            ("acknowledged", {"warning_ref": ref, "acknowledged_by": "4403-00900"}),
            (
                "rectification_ordered",
                {"warning_ref": ref, "rectify_by": "2026-02-06", "ordered_by": "4403-00900"},
            ),
            (
                "rectified",
                {"warning_ref": ref, "rectified_on": "2026-02-03", "evidence_ref": "EV-17"},
            ),
            ("closed", {"warning_ref": ref, "reason": "rectified", "closed_by": "4403-00900"}),
        ]
        for step, data in steps:
            append_lifecycle(ledger, stream, step, actor=supervisor, data=data)
        with pytest.raises(NeikongError, match="schema_invalid"):
            append_lifecycle(
                ledger,
                stream,
                "rectified",
                actor=supervisor,
                data={"warning_ref": ref, "rectified_on": "soon"},
            )
        det.run_once(ts(3))
        assert det.engine.open_warnings() == {}
        det.close()
    assert [r.type for r in detector_rows(directory)] == [
        "warning.raised",
        "warning.acknowledged",
        "warning.rectification_ordered",
        "warning.rectified",
        "warning.closed",
    ]
