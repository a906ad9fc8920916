"""Loading detection rules: YAML files validated by `rule.schema.json` into an immutable `RuleSet`.

Layout (DOMAIN.md §5.1)::

    alerts/rules/<grade>/<id>.yaml        one rule per file (grade 1..4 or `cross`)
    alerts/rules/overrides/<region>.yaml  per-region parameter overrides (optionally per version)
    alerts/rules/tests/<id>/*.yaml        fixtures (`neikong rules test`)
    alerts/rules/lock.json                id -> version, semantics hash (`neikong rules lint`)

Guarantees:

- Loading MUST fail (`RuleError`) on any invalid file; it never returns a partial set.
- `ruleset_hash` is the SHA-256 over, for each rule file sorted by relative path, the path and
  the SHA-256 of the file's canonical bytes (RFC 8785 of the parsed document), plus the override
  file in use; editing whitespace or comments does not change it, any value change does.
- `semantics_hash` of a rule covers everything that decides what it matches and raises; it
  leaves out the prose (`title`, `description`, `legal_basis`, parameter `doc`), the lifecycle
  (`status`, `related`, `tests`), `uuid` and `version` itself.
- Overrides MUST name declared parameters and keep their type; a wrong one is a `RuleError`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

from alerts.errors import RuleError
from ledger.canonical import canonical_bytes

__all__ = [
    "RULES_DIR",
    "Rule",
    "RuleSet",
    "load_rule_file",
    "load_ruleset",
    "parse_ratio",
    "read_yaml",
    "rule_files",
    "semantics_hash",
]

RULES_DIR = Path(__file__).resolve().parent / "rules"
SCHEMA_PATH = Path(__file__).resolve().parent / "rule.schema.json"
PROSE_KEYS = frozenset({"title", "description", "legal_basis", "status", "related", "tests"})
IDENTITY_KEYS = frozenset({"uuid", "version"})
LEVEL_ORDER = ("blue", "yellow", "orange", "red")


@cache
def _schema() -> Any:
    return jsonschema_rs.validator_for(json.loads(SCHEMA_PATH.read_text("utf-8")))


def _plain(value: Any) -> Any:
    """YAML values as JSON values: dates become ISO strings; floats are refused."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        raise RuleError(f"float {value!r}: write ratios as quoted decimal strings")
    return value


def read_yaml(path: Path) -> Any:
    try:
        return _plain(yaml.safe_load(path.read_text("utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise RuleError(f"{path}: cannot read YAML: {exc}") from exc


_fraction_of_text = lru_cache(maxsize=10_000)(Fraction)  # Fraction is immutable


def parse_ratio(value: Any) -> Fraction:
    """A ratio parameter (`"0.8"`, `"1/2"`, `1`) as an exact Fraction (cached)."""
    return _fraction_of_text(str(value))


def semantics_hash(doc: Mapping[str, Any]) -> str:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "doc"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    kept = {k: strip(v) for k, v in doc.items() if k not in PROSE_KEYS | IDENTITY_KEYS}
    return hashlib.sha256(canonical_bytes(kept)).hexdigest()


@dataclass(frozen=True)
class Rule:
    """One loaded rule; `params` are the effective (possibly overridden) parameter values."""

    id: str
    version: int
    grade: int | str
    category: str
    blocking: bool
    doc: Mapping[str, Any]
    params: Mapping[str, Any]
    path: str  # relative to the rules directory
    semantics_hash: str

    @cached_property
    def match(self) -> Mapping[str, Any]:
        return self.doc["match"]  # type: ignore[no-any-return]

    @cached_property
    def kind(self) -> str:
        return str(self.match["kind"])

    @cached_property
    def levels(self) -> list[dict[str, Any]]:
        return list(self.doc["levels"])

    @cached_property
    def attribution(self) -> Mapping[str, Any]:
        return self.doc["attribution"]  # type: ignore[no-any-return]

    @cached_property
    def exceptions(self) -> list[dict[str, Any]]:
        return list(self.doc.get("exceptions", []))

    @cached_property
    def suppress_mode(self) -> str:
        return str(self.doc["suppress"]["mode"])

    def value(self, ref: Any) -> Any:
        """A literal, or the value of `{param: NAME}`."""
        if ref.__class__ is dict:  # the common case, without the ABC check
            return self.params[ref["param"]] if len(ref) == 1 and "param" in ref else ref
        if isinstance(ref, Mapping) and set(ref) == {"param"}:
            return self.params[ref["param"]]
        return ref


@dataclass(frozen=True)
class RuleSet:
    """The immutable set of active rules, and the hash recorded in every warning."""

    rules: tuple[Rule, ...]
    ruleset_hash: str
    region: str | None = None

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def get(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise RuleError(f"no rule {rule_id!r} in the rule set")

    def only(self, ids: list[str]) -> RuleSet:
        return RuleSet(tuple(self.get(i) for i in ids), self.ruleset_hash, self.region)


_PARAM_CHECKS: dict[str, Any] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "ratio": lambda v: isinstance(v, str) and _is_ratio(v),
    "duration": lambda v: isinstance(v, dict) and _is_duration(v),
    "limits": lambda v: isinstance(v, dict) and all(_is_duration(e, True) for e in v.values()),
    "text": lambda v: isinstance(v, str),
    "list": lambda v: isinstance(v, list),
}


def _is_ratio(v: str) -> bool:
    try:
        return Fraction(v) >= 0
    except ValueError:
        return False


def _is_duration(v: Any, limits: bool = False) -> bool:
    allowed = {"days", "calendar", "extension"} if limits else {"days", "calendar"}
    return (
        isinstance(v, dict)
        and set(v) <= allowed
        and isinstance(v.get("days"), int)
        and v.get("calendar") in ("working", "natural")
        and isinstance(v.get("extension", 0), int)
    )


def _check_param(where: str, name: str, kind: str, value: Any) -> None:
    if not _PARAM_CHECKS[kind](value):
        raise RuleError(f"{where}: parameter {name!r} must be a {kind}, got {value!r}")


def load_rule_file(path: Path, base: Path) -> tuple[dict[str, Any], str]:
    """Parse and schema-check one rule file: (document, SHA-256 of its canonical bytes)."""
    doc = read_yaml(path)
    rel = path.relative_to(base).as_posix()
    errors = [
        f"{'/'.join(map(str, e.instance_path)) or '(root)'}: {e.message}"
        for e in _schema().iter_errors(doc)
    ]
    if errors:
        raise RuleError(f"{rel}: schema: " + "; ".join(errors[:5]))
    grade_dir = path.parent.name
    if str(doc["grade"]) != grade_dir:
        raise RuleError(f"{rel}: grade {doc['grade']} but the file is under {grade_dir}/")
    if path.stem != doc["id"]:
        raise RuleError(f"{rel}: file name must be the rule id {doc['id']!r}")
    for name, spec in doc["params"].items():
        _check_param(rel, name, spec["type"], spec["value"])
    _check_param_refs(rel, doc)
    return doc, hashlib.sha256(canonical_bytes(doc)).hexdigest()


def _check_param_refs(rel: str, doc: Mapping[str, Any]) -> None:
    declared = set(doc["params"])

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k in ("param", "param_keys") and isinstance(v, str) and v not in declared:
                    raise RuleError(f"{rel}: refers to undeclared parameter {v!r}")
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk({k: doc[k] for k in ("match", "levels", "exceptions") if k in doc})


def rule_files(base: Path) -> list[Path]:
    return sorted(p for p in base.glob("*/*.yaml") if p.parent.name not in ("overrides", "tests"))


def load_ruleset(base: Path = RULES_DIR, region: str | None = None) -> RuleSet:
    """All rules under `base` (deprecated ones excluded), with `region`'s overrides applied."""
    digest = hashlib.sha256()
    docs: list[tuple[str, dict[str, Any]]] = []
    for path in rule_files(base):
        doc, file_hash = load_rule_file(path, base)
        rel = path.relative_to(base).as_posix()
        digest.update(f"{rel}\n{file_hash}\n".encode())
        docs.append((rel, doc))
    ids = [d["id"] for _, d in docs]
    if len(set(ids)) != len(ids):
        raise RuleError(f"duplicate rule ids in {base}")
    overrides: dict[str, Any] = {}
    if region is not None:
        path = base / "overrides" / f"{region}.yaml"
        if not path.exists():
            raise RuleError(f"no override file for region {region!r} ({path})")
        loaded = read_yaml(path)
        if not isinstance(loaded, dict) or loaded.get("region") != region:
            raise RuleError(f"{path}: must be a mapping with region: {region!r}")
        overrides = loaded.get("rules") or {}
        digest.update(f"overrides/{region}.yaml\n".encode())
        digest.update(hashlib.sha256(canonical_bytes(loaded)).digest())
    rules = []
    for rel, doc in docs:
        if doc["status"] == "deprecated":
            continue
        params = {name: spec["value"] for name, spec in doc["params"].items()}
        override = overrides.get(doc["id"])
        if override and doc["version"] in override.get("versions", [doc["version"]]):
            for name, value in (override.get("params") or {}).items():
                if name not in doc["params"]:
                    raise RuleError(f"override {region}: {doc['id']} has no parameter {name!r}")
                _check_param(f"override {region}", name, doc["params"][name]["type"], value)
                params[name] = value
        rules.append(
            Rule(
                doc["id"],
                doc["version"],
                doc["grade"],
                doc["category"],
                doc["blocking"],
                doc,
                params,
                rel,
                semantics_hash(doc),
            )
        )
    unknown = set(overrides) - set(ids)
    if unknown:
        raise RuleError(f"override {region}: unknown rules {sorted(unknown)}")
    return RuleSet(tuple(rules), digest.hexdigest(), region)
