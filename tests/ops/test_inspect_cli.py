"""The inspector CLI against a real ledger: signed events, a signed checkpoint, a PII store.

Covers every command (text and --json), --as-of boundaries, --at a checkpoint and its refusal
at any other size, personal values refused without the role, resolved and checked with it (and
the read appended as audit.pii_read), a tampered value shown as tampered (exit 1), and erasure
(values gone, projection shows erased, pii.erased signed, `neikong verify` exit 0).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.registry import KeyScope
from ledger.sealer import Sealer, ensure_checkpoint_key
from ops.cli import main
from tests.catalogue_examples import EXAMPLES
from tests.ledger._support import Feed, body_of

O1, O2, READER = "4403-00871", "4403-00872", "4403-00041"
MATTER = "matter/4403-fp/2026-000123"
V1, V2 = "violation/2026-0001", "violation/2026-0002"
SPOUSE = "王某某"
ADDRESS = "深圳市福田区某路1号"

SYSTEMS = {
    "4403-renshi": ("official/", "personnel.*"),
    "4403-ganbu": ("declaration/", "declaration.*"),
    "4403-ducha": ("violation/", "violation.*"),
    "4403-fapiao": ("matter/4403-fp/", "matter.*"),
}


def _appointed(unit: str, reportable: bool, on: str) -> dict[str, Any]:
    return {
        **EXAMPLES["personnel.appointed"],
        "unit": unit,
        "reportable": reportable,
        "rank": "county_deputy" if reportable else "staff",
        "effective_on": on,
    }


class World:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ledger = Ledger.init(directory)
        self.feeds: dict[str, Feed] = {}
        for system, (prefix, types) in SYSTEMS.items():
            self.ledger.enrol_key(system, "producer", KeyScope(system, (prefix,), (types,)))
            signer = Signer.from_file(self.ledger.key_path(system))
            self.feeds[system] = Feed(system, signer, prefix)

    def add(self, system: str, stream: str, type_: str, data: dict[str, Any], **kw: Any) -> str:
        feed = self.feeds[system]
        body = feed.body(stream, type_, data, **kw)
        outcome = self.ledger.appender().submit([feed.record(body)])[0]
        assert outcome.status == "appended", outcome
        feed.commit(body)
        return str(json.loads(body)["event_id"])


def _unit_actor(official: str, role: str, unit: str = "4403-01") -> dict[str, str]:
    return {"official": official, "role": role, "unit": unit}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    w = World(tmp_path_factory.mktemp("inspect") / "ledger")
    hr = _unit_actor("4403-00500", "personnel_officer")
    w.add(
        "4403-renshi",
        f"official/{O1}",
        "personnel.appointed",
        _appointed("4403-01", True, "2025-06-01"),
        subject={"official": O1},
        actor=hr,
    )
    w.add(
        "4403-renshi",
        f"official/{O2}",
        "personnel.appointed",
        _appointed("4403-02", False, "2025-03-01"),
        subject={"official": O2},
        actor=hr,
    )
    with w.ledger.pii_store() as store:
        pii = {
            "spouse_name": store.commit(O1, "spouse_name", SPOUSE),
            "home_address": store.commit(O1, "home_address", ADDRESS),
        }
    w.report = w.add(
        "4403-ganbu",
        f"declaration/{O1}",
        "declaration.personal_matters_reported",
        {
            "year": 2025,
            "kind": "annual",
            "filed_on": "2026-01-20",
            "items": [
                {
                    "item_code": "3.1",
                    "subject_role": "self",
                    "no_change": False,
                    "count": 1,
                    "pii_fields": ["spouse_name"],
                },
                {
                    "item_code": "4.3",
                    "subject_role": "self",
                    "no_change": False,
                    "count": 1,
                    "pii_fields": ["home_address"],
                },
            ],
        },
        subject={"official": O1},
        actor=hr,
        pii=pii,
    )
    handler = _unit_actor("4403-00112", "handler")
    w.add(
        "4403-fapiao",
        MATTER,
        "matter.accepted",
        {"matter_type": "licence", "time_limit": {"days": 20, "calendar": "working"}},
        actor=handler,
        occurred_at="2026-03-02T02:00:00Z",
    )
    w.add(
        "4403-fapiao",
        MATTER,
        "matter.step_completed",
        {"step": "review", "outcome": "passed"},
        actor=_unit_actor("4403-00214", "reviewer"),
        occurred_at="2026-03-04T02:00:00Z",
    )
    w.add(
        "4403-fapiao",
        MATTER,
        "matter.concluded",
        {"outcome": "granted", "final_seq": 3},
        actor=handler,
        occurred_at="2026-03-20T02:00:00Z",
    )
    inspector = _unit_actor("4403-00041", "inspector")
    w.add(
        "4403-ducha",
        V1,
        "violation.recorded",
        {"grade": 2, "error_code": "E2-05", "source": "inspection", "found_on": "2026-03-25"},
        subject={"official": O1, "unit": "4403-01"},
        actor=inspector,
    )
    w.add(
        "4403-ducha",
        V1,
        "violation.rectification_ordered",
        {"rectify_by": "2026-04-30", "ordered_by": "4403-00001"},
        subject={"official": O1, "unit": "4403-01"},
        actor=inspector,
    )
    w.add(
        "4403-ducha",
        V2,
        "violation.recorded",
        {"grade": 3, "error_code": "E3-13", "source": "audit", "found_on": "2026-03-26"},
        subject={"official": O2, "unit": "4403-02"},
        actor=inspector,
    )
    with Sealer(w.ledger, ensure_checkpoint_key(w.ledger)) as sealer:
        checkpoint = sealer.seal_once()
    assert checkpoint is not None
    w.checkpoint = checkpoint.size
    w.add(
        "4403-ducha",
        V1,
        "violation.rectification_completed",
        {"completed_on": "2026-04-28", "evidence_ref": "DOC-1"},
        subject={"official": O1, "unit": "4403-01"},
        actor=inspector,
    )
    w.add(
        "4403-ganbu",
        f"declaration/{O1}",
        "declaration.matter_observed",
        {"item_code": "3.6", "observed_on": "2026-06-01", "source": "exit_entry"},
        subject={"official": O1},
        actor=hr,
    )
    w.ledger.close()
    return w


def cli(world: World, *args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(main, [*args, "--ledger", str(world.dir)])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def cli_json(world: World, *args: str) -> Any:
    return json.loads(cli(world, *args, "--json").stdout)


def test_case_list_and_show(world: World) -> None:
    cases = cli_json(world, "case", "list")["cases"]
    assert [(c["matter"], c["state"], c["handler"]) for c in cases] == [
        (MATTER, "concluded", "4403-00112")
    ]
    assert cli_json(world, "case", "list", "--unit", "4403-02")["cases"] == []
    assert cli_json(world, "case", "list", "--state", "open")["cases"] == []
    text = cli(world, "case", "list").stdout
    assert "matter 事项" in text
    assert MATTER in text
    shown = cli_json(world, "case", "show", MATTER)
    assert [t["type"] for t in shown["timeline"]] == [
        "matter.accepted",
        "matter.step_completed",
        "matter.concluded",
    ]
    assert shown["total"]["within_limit"] is True
    missing = sorted(f["step"] for f in shown["conformance_as_of"] if f["kind"] == "missing_step")
    assert missing == ["approve", "decide", "license_document"]
    assert cases[0]["findings"] == len(shown["conformance_as_of"])
    text = cli(world, "case", "show", MATTER).stdout
    assert "timeline 时间线" in text
    assert "reviewer" in text
    assert "missing_step" in text
    missing = cli(world, "case", "show", "matter/4403-fp/2026-999999", code=2)
    assert "no matter" in missing.output


def test_official_list_and_show_without_values(world: World) -> None:
    officials = cli_json(world, "official", "list")["officials"]
    assert [(o["official"], o["unit"]) for o in officials] == [(O1, "4403-01"), (O2, "4403-02")]
    only = cli_json(world, "official", "list", "--unit", "4403-02")["officials"]
    assert [o["official"] for o in only] == [O2]
    shown = cli_json(world, "official", "show", O1)
    assert {(p["field"], p["state"]) for p in shown["pii"]} == {
        ("spouse_name", "committed"),
        ("home_address", "committed"),
    }
    assert shown["appointments"][0]["decided_by"] == "4403-party-committee"
    text = cli(world, "official", "show", O1).stdout
    assert "integrity file 廉政档案" in text
    assert SPOUSE not in text
    assert ADDRESS not in text
    cli(world, "official", "show", "4403-99999", code=2)


def test_personal_values_are_refused_without_the_role(world: World) -> None:
    refused = cli(world, "official", "show", O1, "--reader", READER, "--purpose", "x", code=2)
    assert "--role pii-reader" in refused.output
    assert SPOUSE not in refused.output
    cli(world, "official", "show", O1, "--role", "pii-reader", "--reader", READER, code=2)


def test_declarations_status(world: World) -> None:
    rows = cli_json(world, "declarations", "status", "--year", "2025", "--as-of", "2026-02-01")[
        "rows"
    ]
    assert [(r["official"], r["kind"], r["status"]) for r in rows] == [
        (O1, "annual", "filed"),
        (O1, "initial", "missing"),  # appointed 2025-06-01, no initial report by 07-01
    ]
    assert rows[0]["unit"] == "4403-01"
    rows = cli_json(world, "declarations", "status", "--year", "2026", "--as-of", "2026-07-01")[
        "rows"
    ]
    assert [(r["kind"], r["due_on"], r["status"]) for r in rows] == [
        ("annual", "2027-01-31", "due"),
        ("change", "2026-07-01", "due"),
    ]
    rows = cli_json(
        world,
        "declarations",
        "status",
        "--year",
        "2026",
        "--as-of",
        "2026-07-02",
        "--status",
        "missing",
    )["rows"]
    assert [(r["kind"], r["item_code"]) for r in rows] == [("change", "3.6")]
    assert (
        cli_json(world, "declarations", "status", "--year", "2026", "--unit", "4403-02")["rows"]
        == []
    )
    assert "status 状态" in cli(world, "declarations", "status", "--year", "2026").stdout


def test_violations_list_now_and_at_the_checkpoint(world: World) -> None:
    now = cli_json(world, "violations", "list", "--as-of", "2026-05-01")["violations"]
    assert [(v["violation"], v["status"]) for v in now] == [(V1, "rectified"), (V2, "recorded")]
    at = str(world.checkpoint)
    then = cli_json(world, "violations", "list", "--as-of", "2026-05-01", "--at", at)
    assert [(v["violation"], v["status"]) for v in then["violations"]] == [
        (V1, "overdue"),
        (V2, "recorded"),
    ]
    on_day = cli_json(
        world, "violations", "list", "--as-of", "2026-04-30", "--at", at, "--status", "ordered"
    )
    assert [v["violation"] for v in on_day["violations"]] == [V1]
    graded = cli_json(world, "violations", "list", "--grade", "3", "--official", O2)
    assert [v["violation"] for v in graded["violations"]] == [V2]
    assert "rectify by 整改期限" in cli(world, "violations", "list").stdout


def test_at_is_refused_unless_a_checkpoint_of_that_size_exists(world: World) -> None:
    for size in (world.checkpoint - 1, world.checkpoint + 1):
        refused = cli(world, "case", "list", "--at", str(size), code=2)
        assert f"no signed checkpoint of log size {size}" in refused.output
    # the past state is the state at that size: the observed change did not exist yet
    rows = cli_json(
        world,
        "declarations",
        "status",
        "--year",
        "2026",
        "--at",
        str(world.checkpoint),
        "--as-of",
        "2026-07-02",
    )["rows"]
    assert [r["kind"] for r in rows] == ["annual"]
    shown = cli_json(world, "official", "show", O1, "--at", str(world.checkpoint))
    assert shown["violations"][0]["completed_on"] is None
    assert cli_json(world, "case", "show", MATTER, "--at", str(world.checkpoint))["state"] == (
        "concluded"
    )


def test_pii_read_verifies_values_and_is_logged(world: World, tmp_path: Path) -> None:
    shown = cli_json(
        world,
        "official",
        "show",
        O1,
        "--role",
        "pii-reader",
        "--reader",
        READER,
        "--purpose",
        "promotion review",
    )
    values = {p["field"]: (p["state"], p.get("value")) for p in shown["pii"]}
    assert values == {"spouse_name": ("verified", SPOUSE), "home_address": ("verified", ADDRESS)}
    after = cli_json(world, "official", "show", O1)
    reads = [r for r in after["pii_reads"] if r["reader"] == READER]
    assert reads
    assert reads[-1]["fields"] == 2
    assert "promotion review" in reads[-1]["command"]
    with Ledger.open(world.dir) as ledger:
        assert ledger.store.stream_info(f"audit/{READER}") is not None


def test_tampered_value_is_shown_as_tampered(world: World, tmp_path: Path) -> None:
    db = world.dir / "pii.db"
    backup = db.read_bytes()
    try:
        conn = sqlite3.connect(db)
        conn.execute(
            "UPDATE nk_pii SET value = ? WHERE field = 'spouse_name'",
            (json.dumps("李某某", ensure_ascii=False),),
        )
        conn.commit()
        conn.close()
        result = cli(
            world,
            "official",
            "show",
            O1,
            "--role",
            "pii-reader",
            "--reader",
            READER,
            "--purpose",
            "check",
            code=1,
        )
        assert "李某某" not in result.output
        assert "tampered" in result.output
        assert "TAMPER EVIDENCE" in result.output
    finally:
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        db.write_bytes(backup)


def test_erasure(world: World, tmp_path: Path) -> None:
    # on a copy, so the other tests keep their values
    import shutil

    copy = tmp_path / "ledger"
    shutil.copytree(world.dir, copy)
    config = json.loads((copy / "ledger.json").read_text())
    config["store_url"] = f"sqlite:///{copy / 'ledger.db'}"
    (copy / "ledger.json").write_text(json.dumps(config))
    erased = World.__new__(World)
    erased.dir = copy
    result = cli_json(
        erased,
        "pii",
        "erase",
        "--official",
        O1,
        "--reason",
        "left the service",
        "--approved-by",
        "4403-00001",
    )
    assert result["values_deleted"] == 2
    assert result["fields_recorded"] == 2
    with Ledger.open(copy) as ledger, ledger.pii_store() as store:
        assert store.fields_of(O1) == []
        (position,) = result["events"]
        (record,) = ledger.store.stream_records(f"pii/{O1}")
        body = body_of(record)
        assert body["type"] == "pii.erased"
        assert body["producer"]["system"] == "neikong-console"
        assert position == ledger.store.max_position()
    shown = cli_json(erased, "official", "show", O1)
    assert {p["state"] for p in shown["pii"]} == {"erased"}
    assert shown["erasures"][0]["approved_by"] == "4403-00001"
    assert shown["erasures"][0]["fields"] == 2
    read = cli_json(
        erased,
        "official",
        "show",
        O1,
        "--role",
        "pii-reader",
        "--reader",
        READER,
        "--purpose",
        "audit",
    )
    assert {p["state"] for p in read["pii"]} == {"erased"}
    assert all("value" not in p for p in read["pii"])
    cli(
        erased,
        "pii",
        "erase",
        "--official",
        O1,
        "--reason",
        "again",
        "--approved-by",
        "4403-00001",
        code=2,
    )
    verify = cli(erased, "verify", "--workers", "1")
    assert "INTACT" in verify.stdout
