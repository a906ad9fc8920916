"""The event catalogue (docs/event-catalogue.md) and its schemas (ledger/schemas/) agree.

- every type named in the catalogue's tables has a schema, and every schema is in the tables;
- one realistic example per type (tests/catalogue_examples.py) validates;
- malformed variants, generated from each schema (missing required fields, unknown fields,
  floats for money and ratios, values outside an enum, bad dates, timestamps, identifiers and
  types), are rejected with `schema_invalid`; the counts are asserted so the generator cannot
  silently cover nothing;
- the schemas follow the catalogue's conventions (closed objects, bounded arrays and strings);
- end to end: a signed malformed domain event goes to the dead letters with its exact bytes.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.canonical import canonical_bytes
from ledger.errors import MalformedInput
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.reasons import ReasonCode
from ledger.registry import KeyScope
from ledger.schema import SchemaCatalogue
from producers.simulator import simulate
from tests.catalogue_examples import EXAMPLES, envelope_for, producer_for, stream_for
from tests.ledger._support import Feed, default_data

REPO = Path(__file__).resolve().parents[2]
CATALOGUE_DOC = REPO / "docs" / "event-catalogue.md"
SCHEMA_DIR = REPO / "ledger" / "schemas"
LEDGER_INTERNAL = {"envelope", "ledger.genesis", "key.enrolled", "key.revoked", "key.rotated"}

MONEY = r"^-?(0|[1-9][0-9]{0,15})\.[0-9]{2}$"
MONEY_NONNEG = r"^(0|[1-9][0-9]{0,15})\.[0-9]{2}$"
RATIO = r"^(0|[1-9][0-9]{0,3})(\.[0-9]{1,6})?$"
DATE = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z$"
PATTERN_KIND = {MONEY: "money", MONEY_NONNEG: "money", RATIO: "ratio", DATE: "date"}
PATTERN_KIND[TIMESTAMP] = "timestamp"
BAD_DATES = ("2026-13-01", "2026-1-5", "20260105", "2026-01-05T00:00:00Z", "05/01/2026")


def catalogue_types(header_has: str = "data") -> list[str]:
    """Backticked type names in the first column of the doc's tables whose header has a
    column named `header_has` (the type tables have a `data` column)."""
    types: list[str] = []
    header: list[str] | None = None
    for line in CATALOGUE_DOC.read_text("utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif header_has in header and not set(line) <= set("|-: "):
            types += re.findall(r"`([a-z]+\.[a-z_]+)`", cells[0])
    return types


CATALOGUE = SchemaCatalogue()
TYPES = sorted(set(catalogue_types()))


def schema_of(event_type: str) -> dict[str, Any]:
    return CATALOGUE.type_schemas[event_type]


def assert_schema_invalid(envelope: dict[str, Any], label: str) -> None:
    with pytest.raises(MalformedInput) as caught:
        CATALOGUE.validate(envelope)
    assert caught.value.reason is ReasonCode.SCHEMA_INVALID, (label, caught.value)


# -- the catalogue doc and the schema directory -----------------------------------------------


def test_the_doc_names_every_type_once_and_the_parse_found_them() -> None:
    names = catalogue_types()
    assert len(names) == len(set(names)), Counter(names).most_common(3)
    assert len(names) >= 31
    families = {n.split(".")[0] for n in names}
    expected = {"matter", "taxpayer", "decision", "personnel", "declaration", "complaint"}
    assert families == expected | {"violation", "pii", "audit", "projection"} | {
        "warning",
        "card",
        "command",
    }


def optional_fields_table() -> dict[str, set[str]]:
    """type -> the optional top-level fields the doc's "optional fields" table lists."""
    rows: dict[str, set[str]] = {}
    in_table = False
    for line in CATALOGUE_DOC.read_text("utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| type | optional fields"):
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table and not set(line) <= set("|-: "):
            [event_type] = re.findall(r"`([a-z]+\.[a-z_]+)`", cells[0])
            rows[event_type] = set(re.findall(r"`([a-z_]+)`", cells[1]))
            assert rows[event_type] or cells[1] == "none", line
    return rows


def test_the_optional_fields_table_matches_the_schemas() -> None:
    table = optional_fields_table()
    assert len(table) >= 15
    assert set(table) <= set(TYPES)
    for event_type in TYPES:
        schema = schema_of(event_type)
        optional = set(schema["properties"]) - set(schema["required"])
        assert optional == table.get(event_type, set()), event_type


def test_every_catalogue_type_has_a_schema_and_every_schema_is_catalogued() -> None:
    files = {p.stem for p in SCHEMA_DIR.glob("*.json")} - LEDGER_INTERNAL
    assert set(TYPES) == files
    assert set(TYPES) <= set(CATALOGUE.types)


def test_the_examples_cover_exactly_the_catalogue() -> None:
    assert sorted(EXAMPLES) == TYPES


@pytest.mark.parametrize("name", sorted(p.name for p in SCHEMA_DIR.glob("*.json")))
def test_schema_file_header(name: str) -> None:
    doc = json.loads((SCHEMA_DIR / name).read_text("utf-8"))
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == f"neikong:{name[: -len('.json')]}"
    assert doc["title"]


# -- conventions: closed objects, bounded arrays and strings ----------------------------------


def _nodes(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if "type" in node or "enum" in node or "properties" in node:
            yield path, node
        for key, value in node.items():
            if key in ("properties", "$defs"):
                for name, sub in value.items():
                    yield from _nodes(sub, f"{path}/{name}")
            elif key in ("items", "then", "else", "if"):
                yield from _nodes(value, f"{path}/{key}")


@pytest.mark.parametrize("event_type", TYPES)
def test_schema_follows_the_catalogue_conventions(event_type: str) -> None:
    checked = 0
    for path, node in _nodes(schema_of(event_type)):
        kinds = node.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if "properties" in node and path.rsplit("/", 1)[-1] not in ("if", "then", "else"):
            assert node.get("additionalProperties") is False, f"{event_type}{path} open object"
        if "array" in kinds:
            assert "maxItems" in node, f"{event_type}{path} unbounded array"
        if "string" in kinds and "pattern" not in node and "enum" not in node:
            assert "maxLength" in node, f"{event_type}{path} unbounded string"
        if "number" in kinds:
            pytest.fail(f"{event_type}{path}: numbers are never floats (use a decimal string)")
        checked += 1
    assert checked >= 2


# -- the examples --------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", TYPES)
def test_example_validates(event_type: str) -> None:
    envelope = envelope_for(event_type)
    CATALOGUE.validate(envelope)
    assert envelope["stream"].startswith(stream_for(event_type).split("/", 1)[0] + "/")
    assert envelope["producer"]["system"] == producer_for(event_type)
    canonical_bytes(envelope)  # no floats, nothing the canonical encoder refuses


# -- malformed variants, generated from each schema --------------------------------------------

Path_ = tuple[str | int, ...]


def _with(data: dict[str, Any], path: Path_, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node: Any = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


def _without(data: dict[str, Any], path: Path_) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node: Any = out
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    return out


def _leaf_values(node: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(category, bad value) pairs for one property schema."""
    kinds = node.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "enum" in node:
        yield "enum", "not_a_listed_value"
    pattern = node.get("pattern")
    kind = PATTERN_KIND.get(pattern) if pattern else None
    if kind in ("money", "ratio"):
        yield "float", 12.5
        yield "float", 12
        if kind == "money":
            yield "money_format", "12.5"
        else:
            yield "ratio_format", "0.5%"
    elif kind == "date":
        for bad in BAD_DATES:
            yield "date", bad
    elif kind == "timestamp":
        yield "timestamp", "2026-11-02 01:30:00"
    elif pattern:
        yield "pattern", "bad value!"
    if "integer" in kinds:
        yield "type", "12"
    if "boolean" in kinds:
        yield "type", "true"
    if "array" in kinds:
        yield "type", {"not": "an array"}


def malformed(
    schema: dict[str, Any], data: dict[str, Any], value: Any = None, path: Path_ = ()
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(category, where, bad data) for every constraint the schema states and `data` reaches."""
    node_value = data if not path else value
    if "properties" in schema and isinstance(node_value, dict):
        where = "/".join(map(str, path)) or "(data)"
        for name in schema.get("required", []):
            yield "missing", f"{where}/{name}", _without(data, (*path, name))
        yield "extra", where, _with(data, (*path, "unexpected_field"), "x")
        for name, sub in schema["properties"].items():
            child = (*path, name)
            for category, bad in _leaf_values(sub):
                yield category, "/".join(map(str, child)), _with(data, child, bad)
            if name in node_value:
                yield from malformed(sub, data, node_value[name], child)
    elif "items" in schema and isinstance(node_value, list) and node_value:
        item = (*path, 0)
        items = schema["items"]
        for category, bad in _leaf_values(items):
            yield category, "/".join(map(str, item)), _with(data, item, bad)
        yield from malformed(items, data, node_value[0], item)
        if "maxItems" in schema:
            too_many = [node_value[0]] * (schema["maxItems"] + 1)
            yield "max_items", "/".join(map(str, path)), _with(data, path, too_many)


VARIANTS = {t: list(malformed(schema_of(t), EXAMPLES[t])) for t in TYPES}


@pytest.mark.parametrize("event_type", TYPES)
def test_malformed_variants_are_rejected_as_schema_invalid(event_type: str) -> None:
    variants = VARIANTS[event_type]
    counts = Counter(category for category, _, _ in variants)
    assert counts["missing"] == _count_required(schema_of(event_type), EXAMPLES[event_type])
    assert counts["extra"] >= 1
    assert counts["enum"] + counts["pattern"] + counts["date"] + counts["float"] >= 1
    for category, where, data in variants:
        assert_schema_invalid(envelope_for(event_type, data), f"{category} {where}")


def _count_required(schema: dict[str, Any], value: Any) -> int:
    """Required names in every object of the example, counted independently of `malformed`."""
    total = 0
    if isinstance(value, dict) and "properties" in schema:
        total += len(schema.get("required", []))
        for name, sub in schema["properties"].items():
            if name in value:
                total += _count_required(sub, value[name])
    elif isinstance(value, list) and value and "items" in schema:
        total += _count_required(schema["items"], value[0])
    return total


def _types_with(category: str) -> set[str]:
    return {t for t, vs in VARIANTS.items() if any(c == category for c, _, _ in vs)}


def test_the_generator_reaches_every_kind_of_constraint() -> None:
    money_types = {
        "matter.accepted",
        "matter.step_completed",
        "matter.penalty_notice_served",
        "matter.penalty_decided",
        "matter.amended",
        "matter.concluded",
        "taxpayer.invoice_usage_reported",
        "taxpayer.tax_burden_computed",
    }
    assert _types_with("float") == money_types
    assert _types_with("money_format") == money_types
    assert _types_with("ratio_format") == {"matter.penalty_decided", "taxpayer.tax_burden_computed"}
    no_dates = {"matter.accepted", "matter.step_completed", "matter.extension_approved"}
    no_dates |= {"matter.legal_review_completed", "matter.penalty_decided", "matter.amended"}
    no_dates |= {"matter.withdrawn", "matter.concluded", "pii.erased", "audit.pii_read"}
    no_dates |= {"personnel.assessment_tallied", "projection.root_published"}
    no_dates |= {"declaration.verification_completed"}
    no_dates |= {"warning.raised", "warning.escalated", "warning.acknowledged", "warning.closed"}
    no_dates |= {"card.issued", "command.rejected"}
    no_dates |= {t for t in TYPES if t.startswith("taxpayer.")}
    assert _types_with("date") == set(TYPES) - no_dates
    no_enums = {"personnel.training_completed", "pii.erased", "audit.pii_read"}
    no_enums |= {"projection.root_published", "violation.rectification_ordered"}
    no_enums |= {"violation.rectification_completed", "matter.withdrawn"}
    no_enums |= {"taxpayer.invoice_usage_reported", "taxpayer.tax_burden_computed"}
    no_enums |= {"warning.acknowledged", "warning.rectification_ordered", "warning.rectified"}
    no_enums |= {"command.rejected"}
    assert _types_with("enum") == set(TYPES) - no_enums
    assert _types_with("missing") == set(TYPES)
    assert _types_with("extra") == set(TYPES)
    totals = Counter(c for vs in VARIANTS.values() for c, _, _ in vs)
    # 16 money and 3 ratio fields, each given as 12.5 and as 12
    assert (totals["money_format"], totals["ratio_format"], totals["float"]) == (16, 3, 2 * 19)
    assert totals["missing"] >= 90
    assert sum(totals.values()) >= 450, totals


# -- what must stay valid ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "patch"),
    [
        ("matter.penalty_decided", {"discretion_reason": ""}),  # R13 looks for it
        ("matter.penalty_decided", {"ratio": "5"}),
        ("matter.accepted", {"amount": "-12.50"}),
        ("matter.withdrawn", {"approved_by": None}),
        ("matter.amended", {"approved_by": None}),
        ("violation.recorded", {"matter": None, "warning_ref": None}),
        ("taxpayer.risk_response_recorded", {"period": "2026-Q4"}),
        ("decision.collective_recorded", {"matters": []}),
        ("declaration.personal_matters_reported", {"kind": "change", "event_on": "2026-01-02"}),
    ],
)
def test_edge_values_the_catalogue_allows(event_type: str, patch: dict[str, Any]) -> None:
    CATALOGUE.validate(envelope_for(event_type, {**EXAMPLES[event_type], **patch}))


def test_the_matter_data_the_existing_tests_send_stays_valid() -> None:
    for event_type in ("matter.accepted", "matter.step_completed", "matter.extension_approved"):
        CATALOGUE.validate(envelope_for(event_type, default_data(event_type, 1)))
    for event_type in ("matter.concluded", "matter.withdrawn"):
        CATALOGUE.validate(envelope_for(event_type, default_data(event_type, 3)))


def test_the_simulator_emits_only_schema_valid_events() -> None:
    seqs: Counter[str] = Counter()
    types: Counter[str] = Counter()
    for event in simulate(7, 3000):
        seqs[event.stream] += 1
        types[event.type] += 1
        envelope = envelope_for(
            event.type,
            event.data,
            stream=event.stream,
            stream_seq=seqs[event.stream],
            prev=None if seqs[event.stream] == 1 else "A" * 43 + "=",
            producer={"system": event.system, "seq": sum(seqs.values())},
            actor=event.actor,
            subject=event.subject,
            occurred_at=event.occurred_at,
        )
        envelope.pop("pii", None)
        CATALOGUE.validate(envelope)
    assert sum(types.values()) == 3000
    assert {"matter.accepted", "matter.step_completed", "matter.concluded"} <= set(types)


def test_a_change_report_needs_the_date_of_the_event() -> None:
    data = {**EXAMPLES["declaration.personal_matters_reported"], "kind": "change"}
    assert_schema_invalid(envelope_for("declaration.personal_matters_reported", data), "event_on")


def test_pii_names_may_contain_digits_but_not_capitals() -> None:
    event_type = "declaration.personal_matters_reported"
    CATALOGUE.validate(envelope_for(event_type))
    assert any(any(c.isdigit() for c in name) for name in envelope_for(event_type)["pii"])
    for bad in ("I4_3_area", "4_3_area", "i4-3-area"):
        envelope = envelope_for(event_type)
        envelope["pii"] = {bad: next(iter(envelope["pii"].values()))}
        assert_schema_invalid(envelope, bad)


# -- end to end through the real appender --------------------------------------------------

GANBU = KeyScope("4403-ganbu", ("declaration/",), ("declaration.*",))


def test_a_signed_malformed_declaration_goes_to_the_dead_letters(ledger: Ledger) -> None:
    ledger.enrol_key("ganbu", "producer", GANBU)
    feed = Feed("4403-ganbu", Signer.from_file(ledger.key_path("ganbu")), "declaration/")
    event_type = "declaration.personal_matters_reported"
    template = envelope_for(event_type)
    extra = {"subject": template["subject"], "pii": template["pii"]}

    good = feed.next("4403-00871", event_type, EXAMPLES[event_type], **extra)
    [outcome] = ledger.appender().submit([good])
    assert outcome.status == "appended", outcome

    bad_items = copy.deepcopy(EXAMPLES[event_type]["items"])
    bad_items[0]["item_code"] = "3.9"  # Article 3 has eight items
    record = feed.record(
        feed.body("4403-00871", event_type, {**EXAMPLES[event_type], "items": bad_items}, **extra)
    )
    before = ledger.store.max_position()
    [outcome] = ledger.appender().submit([record])
    assert (outcome.status, outcome.reason) == ("rejected", ReasonCode.SCHEMA_INVALID), outcome
    assert ledger.store.max_position() == before
    dead = [d for d in ledger.store.dead_letters(limit=1000) if d["record"] == record]
    assert [d["reason"] for d in dead] == [ReasonCode.SCHEMA_INVALID.value]
    assert "items/0/item_code" in dead[0]["detail"]
