"""Flow definitions (权力运行图): every file validates, hashes pin exact bytes, bad files fail."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import jsonschema_rs
import pytest
import yaml

import ledger
from ledger.errors import NeikongError
from ledger.flows import (
    FlowDefinitionError,
    PowerFlow,
    flow_for,
    load_flow_versions,
    load_flows,
)

FLOWS_DIR = Path(ledger.__file__).parent / "flows"
SCHEMAS = Path(ledger.__file__).parent / "schemas"
GRADES = {
    1: ("admin_decision", "comprehensive"),
    2: ("tax_enforcement", "procedure"),
    3: ("tax_penalty", "standards"),
    4: ("routine", "disclosure"),
}


def _enum(schema: str, field: str) -> list[str]:
    return json.loads((SCHEMAS / f"{schema}.json").read_text("utf-8"))["properties"][field]["enum"]


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "flows"
    shutil.copytree(FLOWS_DIR, target)
    return target


def test_every_matter_type_has_exactly_one_flow() -> None:
    flows = load_flows()
    assert sorted(flows) == sorted(_enum("matter.accepted", "matter_type"))
    for flow_id, flow in flows.items():
        assert flow.id == flow_id == flow.matter_type
        assert flow_for(flow.matter_type) == flow


@pytest.mark.parametrize("path", sorted(FLOWS_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_every_yaml_validates_against_the_schema(path: Path) -> None:
    schema = json.loads((FLOWS_DIR / "flow.schema.json").read_text("utf-8"))
    validator = jsonschema_rs.validator_for(schema)
    doc = yaml.safe_load(path.read_bytes())
    assert validator.is_valid(doc), [e.message for e in validator.iter_errors(doc)]
    assert path.name == f"{doc['id']}.v{doc['version']}.yaml"


def test_hash_is_sha256_of_the_exact_file_bytes() -> None:
    for (flow_id, version), flow in load_flow_versions().items():
        raw = (FLOWS_DIR / f"{flow_id}.v{version}.yaml").read_bytes()
        assert flow.hash == hashlib.sha256(raw).hexdigest()
        assert flow.pin() == {"id": flow_id, "version": version, "hash": flow.hash}


def test_pin_is_valid_matter_accepted_data() -> None:
    schema = json.loads((SCHEMAS / "matter.accepted.json").read_text("utf-8"))
    validator = jsonschema_rs.validator_for(schema)
    for flow in load_flows().values():
        assert validator.is_valid({"matter_type": flow.matter_type, "flow": flow.pin()})


def test_editing_one_byte_changes_the_hash(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    path = directory / "invoice_book.v1.yaml"
    before = load_flows(directory)["invoice_book"]
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b"zh: \xe5", b"zh:  \xe5", 1))  # one extra space, same meaning
    after = load_flows(directory)["invoice_book"]
    assert after.hash != before.hash
    assert after.steps == before.steps
    assert after.time_limit == before.time_limit


def test_grades_map_to_category_and_control_focus() -> None:
    for flow in load_flows().values():
        assert (flow.category, flow.control_focus) == GRADES[flow.grade]
        assert 0 <= flow.approval_level <= 4
        assert flow.legal_basis


def test_steps_come_from_the_step_enum_and_are_ordered_consistently() -> None:
    known = set(_enum("matter.step_completed", "step"))
    for flow in load_flows().values():
        names = [s.name for s in flow.steps]
        assert len(names) == len(set(names))
        assert set(names) <= known
        for index, step in enumerate(flow.steps):
            # The file lists steps in an order that respects `after` (a topological order).
            assert set(step.after) <= set(names[:index]), (flow.id, step.name)
        assert flow.mandatory_steps
        for boundary in (flow.time_limit.start, flow.time_limit.until):
            assert boundary in {"accepted", "concluded"} or flow.step(boundary) is not None


def test_separated_roles_are_roles_of_the_flow() -> None:
    for flow in load_flows().values():
        roles = {s.role for s in flow.steps} | {"handler"}  # handler accepts and concludes
        for a, b in flow.separation:
            assert a != b
            assert {a, b} <= roles, (flow.id, a, b)


def test_flows_carry_the_statutory_limits() -> None:
    flows = load_flows()
    limits = {k: (f.time_limit.days, f.time_limit.calendar) for k, f in flows.items()}
    assert limits["registration"] == (0, "working")
    assert limits["invoice_book"] == (5, "working")
    assert limits["licence"] == (20, "working")
    assert flows["licence"].time_limit.extension_days == 10
    assert limits["refund_applied"] == (30, "natural")
    assert limits["refund_discovered"] == (10, "natural")
    penalty = flows["penalty"]
    assert limits["penalty"] == (90, "natural")
    assert (penalty.time_limit.start, penalty.time_limit.until) == ("case_filed", "penalty_decided")


def test_penalty_flow_splits_selection_investigation_review_and_execution() -> None:
    penalty = flow_for("penalty")
    order = [s.name for s in penalty.steps]
    for earlier, later in [
        ("case_filed", "investigation"),
        ("investigation", "case_review"),
        ("case_review", "penalty_notice"),
        ("penalty_notice", "penalty_decided"),
        ("penalty_decided", "decision_served"),
        ("decision_served", "penalty_executed"),
    ]:
        assert order.index(earlier) < order.index(later)
    hearing = [s for s in penalty.steps if s.name.startswith("hearing")]
    assert hearing
    assert not any(s.mandatory for s in hearing)
    pairs = {frozenset(p) for p in penalty.separation}
    for pair in [("investigator", "case_reviewer"), ("investigator", "handler")]:
        assert frozenset(pair) in pairs
    assert frozenset(("case_reviewer", "handler")) in pairs


def test_the_latest_version_wins_and_older_versions_stay_loadable(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    text = (directory / "invoice_book.v1.yaml").read_text("utf-8")
    (directory / "invoice_book.v2.yaml").write_text(
        text.replace("version: 1", "version: 2").replace("days: 5,", "days: 4,"), "utf-8"
    )
    latest = load_flows(directory)["invoice_book"]
    assert (latest.version, latest.time_limit.days) == (2, 4)
    versions = load_flow_versions(directory)
    assert versions[("invoice_book", 1)].time_limit.days == 5
    assert versions[("invoice_book", 1)].hash != latest.hash


def _broken(tmp_path: Path, old: str, new: str, name: str = "invoice_book.v1.yaml") -> Path:
    directory = _copy(tmp_path)
    path = directory / "invoice_book.v1.yaml"
    text = path.read_text("utf-8")
    assert old in text
    path.unlink()
    (directory / name).write_text(text.replace(old, new), "utf-8")
    return directory


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ("grade: 2", "grade: 3", "category"),  # grade 3 must be tax_penalty/standards
        ("name: review,", "name: rubber_stamp,", "step enum"),
        ("after: [review]}", "after: [approve]}", "after unknown|cycle"),
        ("after: [approve]}", "after: [site_check]}", "after unknown"),
        ("approval_level: 1", "approval_level: 7", "approval_level"),
        ("calendar: working", "calendar: lunar", "calendar"),
        ("  - [handler, reviewer]", "  - [handler, handler]", "one role"),
        ("matter_type: invoice_book", "matter_type: invoice_purchase", "matter_type"),
        ("days: 5, calendar: working,", "days: 5, calendar: working, until: nowhere,", "unknown"),
        ("legal_basis:\n", "legal_basis: []\nx:\n", "legal_basis|additional"),
    ],
)
def test_invalid_definitions_are_rejected(tmp_path: Path, old: str, new: str, match: str) -> None:
    with pytest.raises(FlowDefinitionError, match=match):
        load_flows(_broken(tmp_path, old, new))


def test_a_cycle_is_rejected(tmp_path: Path) -> None:
    directory = _broken(tmp_path, "after: []}", "after: [issue]}")
    with pytest.raises(FlowDefinitionError, match="cycle"):
        load_flows(directory)


def test_file_name_must_match_id_and_version(tmp_path: Path) -> None:
    with pytest.raises(FlowDefinitionError, match="file name"):
        load_flows(_broken(tmp_path / "a", "version: 1", "version: 2"))
    with pytest.raises(FlowDefinitionError, match=r"<id>\.v<version>"):
        load_flows(_broken(tmp_path / "b", "id:", "id:", name="invoice-book.yaml"))


def test_not_yaml_is_a_definition_error(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    (directory / "invoice_book.v1.yaml").write_text("id: [unclosed\n", "utf-8")
    with pytest.raises(FlowDefinitionError, match="YAML"):
        load_flows(directory)


def test_unknown_matter_type_has_no_flow() -> None:
    with pytest.raises(FlowDefinitionError, match="no flow"):
        flow_for("astrology")
    assert issubclass(FlowDefinitionError, NeikongError)
    assert isinstance(flow_for("licence"), PowerFlow)
