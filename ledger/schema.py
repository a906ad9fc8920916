"""JSON Schema validation of envelopes, one schema per event type.

Schemas live in `ledger/schemas/`: `envelope.json` for the fields every event has, and
`<type>.json` for the `data` of each type. A type without a schema is rejected
(`unknown_type`): the catalogue is closed, new types arrive with their schema.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema_rs

from ledger.errors import MalformedInput
from ledger.reasons import ReasonCode

__all__ = ["SchemaCatalogue"]


class SchemaCatalogue:
    """Compiled validators for every event type. Safe to share between threads."""

    def __init__(self, extra_dirs: tuple[Path, ...] = ()) -> None:
        root = resources.files("ledger") / "schemas"
        texts: dict[str, str] = {}
        for entry in root.iterdir():
            if entry.name.endswith(".json"):
                texts[entry.name[: -len(".json")]] = entry.read_text("utf-8")
        for directory in extra_dirs:
            for path in sorted(directory.glob("*.json")):
                texts[path.stem] = path.read_text("utf-8")
        self._envelope: dict[str, Any] = json.loads(texts.pop("envelope"))
        self._validators: dict[str, jsonschema_rs.Validator] = {}
        self.type_schemas: dict[str, dict[str, Any]] = {}
        for event_type, text in sorted(texts.items()):
            data_schema = json.loads(text)
            self.type_schemas[event_type] = data_schema
            combined = copy.deepcopy(self._envelope)
            inner = {k: v for k, v in data_schema.items() if not k.startswith("$")}
            combined["properties"]["data"] = inner
            combined["properties"]["type"] = {"const": event_type}
            self._validators[event_type] = jsonschema_rs.validator_for(combined)
        self._envelope_validator = jsonschema_rs.validator_for(self._envelope)

    @property
    def types(self) -> list[str]:
        return sorted(self._validators)

    def validate(self, value: Any) -> None:
        """Raise `MalformedInput` (schema_invalid / unknown_type) unless `value` is valid."""
        if not isinstance(value, dict):
            raise MalformedInput(ReasonCode.SCHEMA_INVALID, "envelope is not a JSON object")
        event_type = value.get("type")
        validator = self._validators.get(event_type) if isinstance(event_type, str) else None
        if validator is None:
            self._raise_first(self._envelope_validator, value)
            raise MalformedInput(ReasonCode.UNKNOWN_TYPE, f"no schema for type {event_type!r}")
        if not validator.is_valid(value):
            self._raise_first(validator, value)

    @staticmethod
    def _raise_first(validator: jsonschema_rs.Validator, value: Any) -> None:
        for error in validator.iter_errors(value):
            path = "/".join(str(p) for p in error.instance_path) or "(root)"
            raise MalformedInput(ReasonCode.SCHEMA_INVALID, f"{path}: {error.message}"[:300])
