"""Power-operation flowcharts (权力运行图): one versioned flow definition per matter type.

Each flow is a YAML file `ledger/flows/<id>.v<version>.yaml`, validated against
`ledger/flows/flow.schema.json` and then checked for meaning (step names from the
`matter.step_completed` enum, `after` names steps of the same flow and has no cycle, the file
name matches `id` and `version`, `id` equals `matter_type`, which is a `matter.accepted` type).

Guarantees:

- A flow's `hash` MUST be the SHA-256 (hex) of the exact file bytes; any byte changed gives
  another hash, so a matter that pinned `{"id", "version", "hash"}` on acceptance names exactly
  one definition. A published flow file MUST NOT be edited in place: a change is a new file with
  a higher `version` (the old one stays, so old matters are still judged by their own flow).
- Loading MUST fail (`FlowDefinitionError`) on any invalid file; it never returns a partial set.

Step semantics (used by `projections.conformance`): acceptance (`matter.accepted`) is the
implicit first step and conclusion (`matter.concluded` / `matter.withdrawn`) the implicit last.
A step is a `matter.step_completed` event (by `data.step`) or one of the dedicated types
`matter.legal_review_completed` (`legal_review`), `matter.penalty_notice_served`
(`penalty_notice`) and `matter.penalty_decided` (`penalty_decided`). `after` lists steps that
MUST come earlier whenever they are mandatory or occur in the matter at all (so an optional
step such as a hearing is ordered when present and not required when absent).

Risk grades follow DOMAIN.md §0: 1 admin_decision/comprehensive, 2 tax_enforcement/procedure,
3 tax_penalty/standards, 4 routine/disclosure. Approval levels: 0 none, 1 section, 2 branch,
3 bureau head, 4 collective.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

from ledger.errors import NeikongError

__all__ = [
    "STEP_EVENT_TYPES",
    "FlowDefinitionError",
    "FlowStep",
    "PowerFlow",
    "TimeLimit",
    "flow_for",
    "load_flow_versions",
    "load_flows",
]

# Dedicated event types that are steps, and the step name each stands for.
STEP_EVENT_TYPES: dict[str, str] = {
    "matter.legal_review_completed": "legal_review",
    "matter.penalty_notice_served": "penalty_notice",
    "matter.penalty_decided": "penalty_decided",
}

_FILE_NAME = re.compile(r"^([a-z][a-z0-9_]{0,63})\.v([1-9][0-9]{0,3})\.yaml$")
_BOUNDARIES = ("accepted", "concluded")


class FlowDefinitionError(NeikongError, ValueError):
    """A flow file is invalid (schema, step names, ordering cycle, name/version mismatch)."""


@dataclass(frozen=True)
class TimeLimit:
    """办理时限: `days` in `calendar` (working | natural), plus at most `extension_days`.

    The limit runs from `start` to `until`: "accepted" / "concluded" (the implicit first and
    last steps) or a step name (a penalty's 90 days run from case filing to the decision).
    """

    days: int
    calendar: str
    extension_days: int
    start: str = "accepted"
    until: str = "concluded"


@dataclass(frozen=True)
class FlowStep:
    """One step (环节): `role` is the only role that may perform it."""

    name: str
    zh: str
    role: str
    mandatory: bool
    after: tuple[str, ...]


@dataclass(frozen=True)
class PowerFlow:
    """One version of a matter type's flowchart; `hash` = SHA-256 hex of the file bytes."""

    id: str
    version: int
    hash: str
    zh: str
    matter_type: str
    grade: int
    category: str
    control_focus: str
    approval_level: int
    time_limit: TimeLimit
    steps: tuple[FlowStep, ...]
    separation: tuple[tuple[str, str], ...]
    legal_basis: tuple[str, ...]

    def pin(self) -> dict[str, Any]:
        """The reference a `matter.accepted` event records in `data.flow`."""
        return {"id": self.id, "version": self.version, "hash": self.hash}

    def step(self, name: str) -> FlowStep | None:
        """The step called `name`, or None if this flow has no such step."""
        return self._steps_by_name.get(name)

    @cached_property
    def _steps_by_name(self) -> dict[str, FlowStep]:
        found: dict[str, FlowStep] = {}
        for s in self.steps:
            found.setdefault(s.name, s)  # the first of a name, as a scan would find
        return found

    @cached_property
    def separated(self) -> frozenset[frozenset[str]]:
        """The role pairs one official may not hold in one matter (`separation`, unordered)."""
        return frozenset(frozenset(pair) for pair in self.separation)

    @cached_property
    def mandatory_steps(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps if s.mandatory)


def _default_dir() -> Traversable:
    return resources.files("ledger") / "flows"


@cache
def _schema_validator() -> jsonschema_rs.Validator:
    text = (_default_dir() / "flow.schema.json").read_text("utf-8")
    return jsonschema_rs.validator_for(json.loads(text))


@cache
def _enum(schema_name: str, field: str) -> frozenset[str]:
    root = resources.files("ledger") / "schemas" / f"{schema_name}.json"
    schema = json.loads(root.read_text("utf-8"))
    return frozenset(schema["properties"][field]["enum"])


def _parse(name: str, raw: bytes) -> PowerFlow:
    match = _FILE_NAME.match(name)
    if match is None:
        raise FlowDefinitionError(f"{name}: file name must be <id>.v<version>.yaml")
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise FlowDefinitionError(f"{name}: not valid YAML: {exc}") from exc
    validator = _schema_validator()
    for error in validator.iter_errors(doc):
        path = "/".join(str(p) for p in error.instance_path) or "(root)"
        raise FlowDefinitionError(f"{name}: {path}: {error.message}"[:400])
    if (doc["id"], doc["version"]) != (match.group(1), int(match.group(2))):
        raise FlowDefinitionError(f"{name}: id/version inside differ from the file name")
    if doc["matter_type"] != doc["id"]:
        raise FlowDefinitionError(f"{name}: id must equal matter_type")
    if doc["matter_type"] not in _enum("matter.accepted", "matter_type"):
        raise FlowDefinitionError(f"{name}: unknown matter_type {doc['matter_type']!r}")
    steps = tuple(
        FlowStep(s["name"], s["zh"], s["role"], s["mandatory"], tuple(s["after"]))
        for s in doc["steps"]
    )
    _check_steps(name, steps)
    limit = TimeLimit(**doc["time_limit"])
    names = {s.name for s in steps}
    for boundary in (limit.start, limit.until):
        if boundary not in names and boundary not in _BOUNDARIES:
            raise FlowDefinitionError(f"{name}: time_limit names unknown step {boundary!r}")
    separation: list[tuple[str, str]] = []
    for a, b in doc["separation"]:
        if a == b:
            raise FlowDefinitionError(f"{name}: separation pair ({a}, {b}) names one role")
        separation.append((a, b))
    return PowerFlow(
        id=doc["id"],
        version=doc["version"],
        hash=hashlib.sha256(raw).hexdigest(),
        zh=doc["zh"],
        matter_type=doc["matter_type"],
        grade=doc["grade"],
        category=doc["category"],
        control_focus=doc["control_focus"],
        approval_level=doc["approval_level"],
        time_limit=limit,
        steps=steps,
        separation=tuple(separation),
        legal_basis=tuple(doc["legal_basis"]),
    )


def _check_steps(name: str, steps: tuple[FlowStep, ...]) -> None:
    known = _enum("matter.step_completed", "step")
    seen: set[str] = set()
    for s in steps:
        if s.name not in known:
            raise FlowDefinitionError(f"{name}: step {s.name!r} is not in the step enum")
        if s.name in seen:
            raise FlowDefinitionError(f"{name}: step {s.name!r} appears twice")
        seen.add(s.name)
    for s in steps:
        for before in s.after:
            if before not in seen or before == s.name:
                raise FlowDefinitionError(f"{name}: step {s.name!r} after unknown {before!r}")
    # No cycles: repeatedly remove steps whose predecessors are all removed.
    graph = {s.name: set(s.after) for s in steps}
    while graph:
        ready = [n for n, deps in graph.items() if not deps & graph.keys()]
        if not ready:
            raise FlowDefinitionError(f"{name}: 'after' forms a cycle among {sorted(graph)}")
        for n in ready:
            del graph[n]


def _entries(directory: Path | Traversable) -> list[tuple[str, bytes]]:
    return sorted(
        (entry.name, entry.read_bytes())
        for entry in directory.iterdir()
        if entry.name.endswith(".yaml")
    )


def load_flow_versions(directory: Path | None = None) -> dict[tuple[str, int], PowerFlow]:
    """Every flow version in `directory` (default: the packaged flows), by (id, version)."""
    flows: dict[tuple[str, int], PowerFlow] = {}
    for name, raw in _entries(directory if directory is not None else _default_dir()):
        flow = _parse(name, raw)
        flows[(flow.id, flow.version)] = flow
    return flows


def load_flows(directory: Path | None = None) -> dict[str, PowerFlow]:
    """The latest version of each flow in `directory` (default: packaged), by flow id."""
    latest: dict[str, PowerFlow] = {}
    for (flow_id, version), flow in sorted(load_flow_versions(directory).items()):
        if flow_id not in latest or latest[flow_id].version < version:
            latest[flow_id] = flow
    return latest


@cache
def _packaged() -> dict[str, PowerFlow]:
    return load_flows()


def flow_for(matter_type: str) -> PowerFlow:
    """The latest packaged flow for `matter_type`; `FlowDefinitionError` if there is none."""
    for flow in _packaged().values():
        if flow.matter_type == matter_type:
            return flow
    raise FlowDefinitionError(f"no flow for matter type {matter_type!r}")
