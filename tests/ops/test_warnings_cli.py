"""`neikong warnings …` on a real ledger whose warnings the real detector raised: list filters,
show (with the graded control), the lifecycle in order, refused transitions, --json."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from alerts.detector import Detector
from alerts.rules import load_ruleset
from ledger.builder import build_body
from ledger.envelope import b64
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.registry import KeyScope
from ops.cli import main
from tests.alerts._support import at, make_ledger, ts
from tests.ledger._support import copy_ledger, deterministic_event_id, read_rows, verify_dir

A, B = "4403-00101", "4403-00201"  # A in unit 4403-01 handles M1; B in 4403-02 approves own M2
M1, M2 = "matter/4403-xk/2026-1", "matter/4403-xk/2026-2"
SYSTEMS = {"matter": "4403-xuke", "official": "4403-renshi"}


def _append(directory: Path, heads: dict, stream: str, type_: str, when: str, data: dict,
            actor: dict, subject: dict | None = None) -> None:  # fmt: skip
    system = SYSTEMS[stream.split("/", 1)[0]]
    seq, prev = heads.get(stream, (0, None))
    heads[system] = heads.get(system, 0) + 1
    body = build_body(
        event_id=deterministic_event_id(stream, seq + 1, type_),
        stream=stream,
        stream_seq=seq + 1,
        prev=prev,
        system=system,
        producer_seq=heads[system],
        type=type_,
        occurred_at=when,
        actor=actor,
        subject=subject,
        data=data,
    )
    heads[stream] = (seq + 1, b64(hashlib.sha256(body).digest()))
    with Ledger.open(directory) as ledger:
        signer = Signer.from_file(ledger.key_path(system))
        assert ledger.appender().submit([signer.sign(body).encode()])[0].status == "appended"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger with an R05 warning (A, late licence) and an R04 warning (B approves own)."""
    directory = make_ledger(tmp_path_factory.mktemp("warnings") / "ledger")
    with Ledger.open(directory) as ledger:
        ledger.enrol_key(
            "4403-renshi", "producer", KeyScope("4403-renshi", ("official/",), ("personnel.*",))
        )
    heads: dict[str, Any] = {}
    clerk = {"official": "4403-00041", "role": "personnel_officer", "unit": "4403-01"}
    for official, unit in ((A, "4403-01"), (B, "4403-02")):
        appointed = {
            "post": "科员",
            "unit": unit,
            "rank": "staff",
            "reportable": False,
            "recommended_by": "4403-00003",
            "examined_by": "4403-rs-exam",
            "inspected_by": "4403-00041",
            "decided_by": "4403-party-committee",
            "effective_on": "2025-12-01",
        }
        _append(directory, heads, f"official/{official}", "personnel.appointed", at(-30),
                appointed, clerk, {"official": official})  # fmt: skip
    _append(directory, heads, M1, "matter.accepted", at(0), {"matter_type": "licence"},
            {"official": A, "role": "handler", "unit": "4403-01"})  # fmt: skip
    b_actor = {"official": B, "role": "handler", "unit": "4403-02"}
    accepted = {"matter_type": "tax_assessment"}  # no R05 time limit: only R04 concerns M2
    _append(directory, heads, M2, "matter.accepted", at(0), accepted, b_actor)
    _append(directory, heads, M2, "matter.step_completed", at(1),
            {"step": "approve", "outcome": "approved", "level": 2},
            {**b_actor, "role": "approver"})  # fmt: skip
    full = load_ruleset()
    rules = full.only([r.id for r in full if r.id.split("-")[0] in ("R04", "R05")])
    with Ledger.open(directory) as ledger:
        detector = Detector(ledger, rules)
        try:
            detector.run_once(ts(60))
        finally:
            detector.close()
    return directory


@pytest.fixture
def ledger_dir(source: Path, tmp_path: Path) -> Path:
    """A private copy (lifecycle commands append)."""
    target = copy_ledger(source, tmp_path / "ledger")
    shutil.copytree(source / "keys", target / "keys")
    return target


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def listed(directory: Path, *args: str) -> list[dict[str, Any]]:
    code, out = run("warnings", "list", "--ledger", str(directory), "--json", *args)
    assert code == 0, out
    return json.loads(out)["warnings"]  # type: ignore[no-any-return]


def _ref(directory: Path, rule: str) -> str:
    (row,) = listed(directory, "--rule", rule)
    return str(row["id"])


def test_list_and_its_filters(source: Path) -> None:
    rows = listed(source)
    assert sorted(r["rule_id"][:3] for r in rows) == ["R04", "R05"]
    assert all(r["status"] == "open" for r in rows)
    (r04,) = listed(source, "--rule", "R04")
    assert (r04["official"], r04["unit"], r04["level"], r04["grade"]) == (B, "4403-02", "orange", 1)
    (r05,) = listed(source, "--official", A)
    assert r05["rule_id"] == "R05-processing-deadline"
    assert r05["unit"] == "4403-01"  # from A's integrity file
    assert r05["late"] is True  # the detector ran long after the timers fell due
    assert [r["id"] for r in listed(source, "--unit", "4403-02")] == [r04["id"]]
    assert [r["id"] for r in listed(source, "--grade", "1")] == [r04["id"]]
    assert [r["id"] for r in listed(source, "--level", "orange", "--rule", "R04")] == [r04["id"]]
    assert listed(source, "--state", "closed") == []
    code, out = run("warnings", "list", "--ledger", str(source))
    assert code == 0
    assert "2 warnings" in out
    assert "rule 规则" in out


def test_show_with_the_graded_control(source: Path) -> None:
    ref = _ref(source, "R04")
    code, out = run("warnings", "show", ref[:8], "--ledger", str(source), "--json")
    assert code == 0, out
    shown = json.loads(out)
    assert shown["warning_ref"] == ref
    assert shown["control"]["focus"] == "comprehensive"
    assert shown["control_action"]["action"] == "block"
    assert shown["status"] == "open"
    code, text = run("warnings", "show", shown["warning"], "--ledger", str(source))
    assert code == 0
    assert "抓全面" in text
    code, out = run("warnings", "show", "ffffffff", "--ledger", str(source))
    assert code == 2
    assert "no warning" in out


def test_the_lifecycle_in_order_with_signed_events(ledger_dir: Path) -> None:
    ref = _ref(ledger_dir, "R04")
    d = ["--ledger", str(ledger_dir), "--json"]
    code, out = run("warnings", "ack", ref, "--by", "4403-00900", "--note", "seen_by_head", *d)
    assert code == 0, out
    assert json.loads(out)["state"] == "acknowledged"
    code, out = run("warnings", "order-rectification", ref, "--deadline", "2026-03-01",
                    "--by", "4403-00900", *d)  # fmt: skip
    assert code == 0, out
    (row,) = listed(ledger_dir, "--state", "overdue", "--as-of", "2026-03-02")
    assert row["id"] == ref
    assert listed(ledger_dir, "--state", "overdue", "--as-of", "2026-03-01") == []
    code, out = run("warnings", "rectify", ref, "--by", B, "--evidence", "EV-2026-7",
                    "--on", "2026-02-27", *d)  # fmt: skip
    assert code == 0, out
    code, out = run("warnings", "close", ref, "--by", "4403-00900", "--reason", "rectified", *d)
    assert code == 0, out
    assert json.loads(out)["from_state"] == "rectified"
    code, out = run("warnings", "show", ref, *d)
    shown = json.loads(out)
    assert shown["state"] == "closed"
    assert shown["rectified_late"] is False
    assert [e["type"] for e in shown["events"]][-4:] == [
        "warning.acknowledged",
        "warning.rectification_ordered",
        "warning.rectified",
        "warning.closed",
    ]
    steps = [r for r in read_rows(ledger_dir / "ledger.db") if r.stream == shown["warning"]]
    assert {r.system for r in steps} == {"neikong-detector"}
    assert verify_dir(ledger_dir).intact
    # the official's integrity file follows the warning to its closure
    code, out = run("official", "show", B, *d)
    assert code == 0, out
    (entry,) = json.loads(out)["warnings"]
    assert entry["state"] == "closed"


def test_illegal_transitions_are_refused_with_exit_2(ledger_dir: Path) -> None:
    ref = _ref(ledger_dir, "R05")
    d = ["--ledger", str(ledger_dir)]
    code, out = run("warnings", "rectify", ref, "--by", A, "--evidence", "EV-1", *d)
    assert code == 2
    assert "cannot be rectified" in out
    code, out = run("warnings", "close", ref, "--by", "4403-00900", "--reason", "rectified", *d)
    assert code == 2
    assert "cannot be closed as rectified" in out
    assert run("warnings", "ack", ref, "--by", "4403-00900", *d)[0] == 0
    code, out = run("warnings", "ack", ref, "--by", "4403-00900", *d)
    assert code == 2
    assert "allowed next" in out
    code, out = run("warnings", "close", ref, "--by", "4403-00900", "--reason",
                    "false_positive", *d)  # fmt: skip
    assert code == 0, out
    code, out = run("warnings", "rectify", ref, "--by", A, "--evidence", "EV-1", *d)
    assert code == 2
    assert "closed" in out
    assert "final" in out
    code, out = run("warnings", "ack", ref, "--by", "4403-00900", "--note", "Bad Note", *d)
    assert code == 2
    before = len(read_rows(ledger_dir / "ledger.db"))
    code, _ = run("warnings", "ack", "zzzzzzzz", "--by", "4403-00900", *d)
    assert code == 2
    assert len(read_rows(ledger_dir / "ledger.db")) == before  # a refusal appends nothing
