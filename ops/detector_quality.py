"""Detection quality: the detector's warnings scored against the simulator's ground-truth labels.

Matching (what `neikong bench` reports as `detector_precision_min` / `detector_recall_min`):

- A warning is one distinct (rule id, key) among the emitted `warning.raised` /
  `warning.escalated` events: one open warning per (rule, key), escalations in place count once
  (at the highest level reached).
- Labels name catalogue numbers (`R05`); rules are scored per catalogue number: a rule id's
  number is its prefix before the first `-` without a lettered part (`R05-processing-deadline`
  → `R05`, `R12b-…` → `R12`), and every rule file of one number (R12 refund-late and
  refund-fast-track) forms that number's row, with a per-file breakdown.
- A label *names* a key when the key, or one `|`-separated part of a composite key, equals a
  value of the label's `key` (a matter stream, an official id or a taxpayer id) or one of its
  `evidence` stream names.
- A warning of number R is a TRUE POSITIVE when some label listing R names its key, else a
  FALSE POSITIVE (`fp_reminder` counts the FPs that never rose above yellow). A label listing R
  is DETECTED for R when some warning of R has a key it names, else a FALSE NEGATIVE of R.
- Per number: precision = TP / warnings; recall = detected labels / labels listing it.
  `precision_min` and `recall_min` are taken over the loaded numbers that have labels in the
  run (precision only where the number warned at all); numbers without labels (R24 cards,
  kinds not injected in a small run) show their warning count with precision None, and labels
  of numbers no loaded rule has are listed apart (`unloaded`): neither enters the minima.
- Per anomaly kind: how many labels of the kind were detected by their primary rule (the
  first listed) and by any listed rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from alerts.warnings import LEVELS

__all__ = ["KindRow", "Quality", "RuleRow", "label_names", "rule_number", "score"]


def rule_number(rule_id: str) -> str:
    """`R05-processing-deadline` → `R05`; `R12b-refund-fast-track` → `R12`."""
    return rule_id.split("-", 1)[0].rstrip("abcdefghijklmnopqrstuvwxyz")


def label_names(label: Mapping[str, Any]) -> frozenset[str]:
    """The keys a label names: its key values and its evidence streams."""
    return frozenset([*label["key"].values(), *label.get("evidence", ())])


def _named(key: str, names: frozenset[str]) -> bool:
    return key in names or any(part in names for part in key.split("|"))


@dataclass
class RuleRow:
    """One catalogue number: its rule files' warnings against the labels that list it."""

    rule: str
    files: dict[str, list[int]] = field(default_factory=dict)  # rule id -> [warnings, tp]
    warnings: int = 0
    tp: int = 0
    fp: int = 0
    fp_reminder: int = 0
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
            "rules": {
                rid: {"warnings": w, "tp": tp} for rid, (w, tp) in sorted(self.files.items())
            },
            "warnings": self.warnings,
            "tp": self.tp,
            "fp": self.fp,
            "fp_reminder": self.fp_reminder,
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
    warnings: Iterable[tuple[str, str] | tuple[str, str, str]],
    labels: Iterable[Mapping[str, Any]],
    rule_ids: Iterable[str],
) -> Quality:
    """Score (rule id, key[, level]) warnings against labels, for the loaded `rule_ids`."""
    rows: dict[str, RuleRow] = {}
    for rid in rule_ids:
        rows.setdefault(rule_number(rid), RuleRow(rule_number(rid))).files[rid] = [0, 0]
    highest: dict[tuple[str, str], int] = {}
    for warning in warnings:
        level = LEVELS.index(warning[2]) if len(warning) > 2 else 0
        rk = (warning[0], warning[1])
        highest[rk] = max(highest.get(rk, 0), level)
    labels = list(labels)
    names = [label_names(label) for label in labels]
    listing: dict[str, list[int]] = {}  # number -> indexes of the labels listing it
    for i, label in enumerate(labels):
        for number in dict.fromkeys(rule_number(r) for r in label["rules"]):
            listing.setdefault(number, []).append(i)
    found: set[tuple[int, str]] = set()  # (label index, number) with a matching warning
    for (rule_id, key), level in sorted(highest.items()):
        number = rule_number(rule_id)
        row = rows.setdefault(number, RuleRow(number))
        counts = row.files.setdefault(rule_id, [0, 0])
        hits = [i for i in listing.get(number, []) if _named(key, names[i])]
        found.update((i, number) for i in hits)
        row.warnings += 1
        counts[0] += 1
        if hits:
            row.tp += 1
            counts[1] += 1
        else:
            row.fp += 1
            row.fp_reminder += level <= LEVELS.index("yellow")
    unloaded: dict[str, int] = {}
    for number, indexes in listing.items():
        if number not in rows:
            unloaded[number] = len(indexes)
            continue
        row = rows[number]
        row.labels = len(indexes)
        row.detected = sum((i, number) in found for i in indexes)
        row.fn = row.labels - row.detected
    kinds: dict[str, KindRow] = {}
    for i, label in enumerate(labels):
        detected = {rule_number(r) for r in label["rules"]} & {n for j, n in found if j == i}
        primary = rule_number(label["rules"][0])
        kind = kinds.setdefault(label["kind"], KindRow(label["kind"], primary))
        kind.labels += 1
        kind.detected_primary += primary in detected
        kind.detected_any += bool(detected)
    return Quality(rows, kinds, unloaded)
