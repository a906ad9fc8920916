"""What the simulator yields: events to sign and emit, and ground-truth labels.

A `SimEvent` is everything a producer system needs to emit one event, plus what the emitter
must resolve first:

- `pii`: personal values in clear (`{"i3_1_spouse_name": "…"}`); they MUST NOT be put in
  `data`. The emitter stores each value in the PII store and signs only its salted commitment
  (envelope `pii` map); declaration items name these keys in their `pii_fields`.
- `ref_key` / `refs`: events refer to each other by event id (a `decide` step to the
  collective decision it executes, a verification to the report it checks), but the producer
  assigns event ids at emission. The referenced event carries a placeholder UUID in
  `ref_key`; a referring event holds that same placeholder in `data[name]` for each name in
  `refs`. An emitter that resolves references replaces the placeholder with the real id; one
  that does not still emits schema-valid events.

A `Label` is the simulator's ground truth about one injected anomaly: which kind, which rules
of the catalogue (DOMAIN.md §3) it should trigger, whom or what it concerns, who is to blame,
when it became a fact, and the streams that hold the evidence.

Amounts in `data` (and in `pii`) are decimal strings of yuan with two places: `money(fen)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["Label", "SimEvent", "money"]


class SimEvent(NamedTuple):
    """One event to emit (a tuple: cheap to make by the million)."""

    system: str
    stream: str
    type: str
    actor: dict[str, str]
    subject: dict[str, str]
    data: dict[str, Any]
    occurred_at: str
    pii: dict[str, Any] = {}  # noqa: RUF012 - never mutated; a shared empty default
    ref_key: str | None = None
    refs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Label:
    """Ground truth: an anomaly of `kind`, expected to trigger `rules` (first = primary)."""

    kind: str
    rules: tuple[str, ...]
    key: dict[str, str]  # exactly one of {"matter"|"official"|"taxpayer": id}
    official: str | None  # the official the anomaly is attributed to
    at: str  # UTC timestamp when it became a fact
    evidence: tuple[str, ...]  # stream names

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rules": list(self.rules),
            "key": dict(self.key),
            "official": self.official,
            "at": self.at,
            "evidence": list(self.evidence),
        }


def money(fen: int) -> str:
    """An amount in fen as events carry it: yuan with exactly two decimals (`12345` ->
    `"123.45"`); `fen` MUST NOT be negative."""
    return f"{fen // 100}.{fen % 100:02d}"
