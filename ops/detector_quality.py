"""Detection quality: the detector's warnings scored against the simulator's ground-truth labels.

Matching (what `neikong bench` reports as `detector_precision_min` / `detector_recall_min`):

- A warning is one distinct (rule id, key) among the emitted `warning.raised` /
  `warning.escalated` events: one open warning per (rule, key), escalations in place count once.
- A rule id's catalogue number is its prefix before the first `-` (`R05-processing-deadline` →
  `R05`); a label rule `Rnn` covers that number and its lettered parts (`R12` covers `R12b`).
- A label *names* a key when the key, or one `|`-separated part of a composite key, equals a
  value of the label's `key` (a matter stream, an official id or a taxpayer id) or one of its
  `evidence` stream names.
- A warning is a TRUE POSITIVE when some label listing its rule names its key, else a FALSE
  POSITIVE. A label listing rule R is DETECTED (for R) when some warning of R has a key it
  names, else it is a FALSE NEGATIVE of R.
- Per rule: precision = TP / warnings; recall = detected labels / labels listing the rule.
  `precision_min` and `recall_min` are taken over the loaded rules that have labels in the
  run (precision only where the rule warned at all); rules without labels (R24 cards, kinds
  not injected in a small run) show their warning count with precision None, and labels of
  rules that are not loaded are listed apart (`unloaded`): neither enters the minima.
- Per anomaly kind: how many labels of the kind were detected by their primary rule (the
  first listed) and by any listed rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KindRow", "Quality", "RuleRow", "label_names", "rule_number", "score"]


def rule_number(rule_id: str) -> str:
    """`R05-processing-deadline` → `R05`."""
    return rule_id.split("-", 1)[0]


def _covers(label_rule: str, number: str) -> bool:
    return number == label_rule or (
        number.startswith(label_rule) and number[len(label_rule) :].isalpha()
    )


def label_names(label: Mapping[str, Any]) -> frozenset[str]:
    """The keys a label names: its key values and its evidence streams."""
    return frozenset([*label["key"].values(), *label.get("evidence", ())])


def _named(key: str, names: frozenset[str]) -> bool:
    return key in names or any(part in names for part in key.split("|"))


@dataclass
class RuleRow:
    rule: str
    warnings: int = 0
    tp: int = 0
    fp: int = 0
    labels: int = 0
    detected: int = 0
    fn: int = 0

    @property
    def precision(self) -> float | None:
        return self.tp / self.warnings if self.warnings and self.labels else None

    @property
    def recall(self) -> float | None:
        return self.detected / self.labels if self.labels else None

    def as_json(self) -> dict[str, Any]:
        return {
            "warnings": self.warnings,
            "tp": self.tp,
            "fp": self.fp,
            "labels": self.labels,
            "detected": self.detected,
            "fn": self.fn,
            "precision": _round(self.precision),
            "recall": _round(self.recall),
        }


@dataclass
class KindRow:
    kind: str
    primary: str
    labels: int = 0
    detected_primary: int = 0
    detected_any: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "labels": self.labels,
            "detected_primary": self.detected_primary,
            "detected_any": self.detected_any,
            "recall_primary": _round(self.detected_primary / self.labels if self.labels else None),
        }


@dataclass
class Quality:
    rules: dict[str, RuleRow]
    kinds: dict[str, KindRow]
    unloaded: dict[str, int] = field(default_factory=dict)  # label rule -> labels

    @property
    def precision_min(self) -> float | None:
        values = [r.precision for r in self.rules.values() if r.precision is not None]
        return min(values) if values else None

    @property
    def recall_min(self) -> float | None:
        values = [r.recall for r in self.rules.values() if r.recall is not None]
        return min(values) if values else None

    def as_json(self) -> dict[str, Any]:
        return {
            "per_rule": {k: v.as_json() for k, v in sorted(self.rules.items())},
            "per_kind": {k: v.as_json() for k, v in sorted(self.kinds.items())},
            "unloaded_rules_labels": dict(sorted(self.unloaded.items())),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def score(
    warnings: Iterable[tuple[str, str]],
    labels: Iterable[Mapping[str, Any]],
    rule_ids: Iterable[str],
) -> Quality:
    """Score distinct (rule id, key) warnings against labels, for the loaded `rule_ids`."""
    rows = {rid: RuleRow(rid) for rid in rule_ids}
    numbers = {rid: rule_number(rid) for rid in rows}
    distinct = sorted(set(warnings))
    labels = list(labels)
    names = [label_names(label) for label in labels]

    def covering(label: Mapping[str, Any]) -> dict[str, list[str]]:
        return {lr: [rid for rid, n in numbers.items() if _covers(lr, n)] for lr in label["rules"]}

    by_label = [covering(label) for label in labels]
    found: set[tuple[int, str]] = set()  # (label index, rule id) pairs with a matching warning
    for rule_id, key in distinct:
        row = rows.setdefault(rule_id, RuleRow(rule_id))
        numbers.setdefault(rule_id, rule_number(rule_id))
        row.warnings += 1
        hit = False
        for i, cover in enumerate(by_label):
            if any(rule_id in ids for ids in cover.values()) and _named(key, names[i]):
                found.add((i, rule_id))
                hit = True
        row.tp += hit
        row.fp += not hit
    unloaded: dict[str, int] = {}
    kinds: dict[str, KindRow] = {}
    for i, label in enumerate(labels):
        cover = by_label[i]
        detected_by = {lr for lr, ids in cover.items() if any((i, rid) in found for rid in ids)}
        for lr, ids in cover.items():
            if not ids:
                unloaded[lr] = unloaded.get(lr, 0) + 1
            for rid in ids:
                rows[rid].labels += 1
                hit = (i, rid) in found
                rows[rid].detected += hit
                rows[rid].fn += not hit
        kind = kinds.setdefault(label["kind"], KindRow(label["kind"], label["rules"][0]))
        kind.labels += 1
        kind.detected_primary += label["rules"][0] in detected_by
        kind.detected_any += bool(detected_by)
    return Quality(rows, kinds, unloaded)
