"""Business aggregates from the projections: overdue rectifications and declarations.

`BusinessGauges.update(as_of)` reads the violation register and the declaration register from
the read model and sets `neikong_rectifications_overdue{grade}` and
`neikong_declarations_overdue{kind}` (DOMAIN.md §5.2).

Guarantees:

- The judgement is the registers' own, against an explicit `as_of` date (CST): a rectification
  is overdue from the day after its `rectify_by` (`projections.violations.violation_status`);
  a report is overdue when its register line is `missing`
  (`projections.declarations.register_rows`), i.e. unfiled after its due date.
- Only counts leave: labels are the risk grade and the report kind, never an official id.
- Every label of the bounded sets is set on each update (0 when none), so a resolved backlog
  shows as 0, not as a stale value.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import orjson

from ops.metrics import DECLARATION_KINDS, GRADES, NeikongMetrics
from projections.declarations import register_rows
from projections.read_model import ReadModel
from projections.violations import violation_status

__all__ = ["BusinessGauges", "declarations_overdue", "rectifications_overdue"]


def rectifications_overdue(model: ReadModel, as_of: str) -> dict[str, int]:
    """Ordered rectifications past their `rectify_by` at `as_of`, by risk grade."""
    counts = dict.fromkeys(GRADES, 0)
    for _, raw in model.query("violations", {"state": "ordered"}):
        doc = orjson.loads(raw)
        if violation_status(doc, as_of) == "overdue":
            grade = str(doc["grade"]) if doc["grade"] is not None else "unknown"
            counts[grade] = counts.get(grade, 0) + 1
    return counts


def declarations_overdue(model: ReadModel, as_of: str) -> dict[str, int]:
    """Personal-matters reports unfiled after their due date at `as_of`, by kind."""
    by_official: dict[str, list[dict[str, object]]] = defaultdict(list)
    for _, raw in model.iter_docs("declarations"):
        doc = orjson.loads(raw)
        by_official[str(doc["official"])].append(doc)
    counts = dict.fromkeys(DECLARATION_KINDS, 0)
    last_year = date.fromisoformat(as_of).year
    for official, docs in by_official.items():
        first_year = min(int(str(d["year"])) for d in docs)
        for year in range(first_year, last_year + 1):
            for row in register_rows(docs, official, year, as_of):
                if row["status"] == "missing" and row["kind"] in counts:
                    counts[row["kind"]] += 1
    return counts


class BusinessGauges:
    """Sets the business gauges of `metrics` from the read model `model`."""

    def __init__(self, model: ReadModel, metrics: NeikongMetrics) -> None:
        self.model = model
        self.metrics = metrics

    def update(self, as_of: str) -> None:
        """Recount at `as_of` (YYYY-MM-DD, the CST date) and set the gauges."""
        for grade, count in rectifications_overdue(self.model, as_of).items():
            self.metrics.rectifications_overdue.labels(grade=grade).set(count)
        for kind, count in declarations_overdue(self.model, as_of).items():
            self.metrics.declarations_overdue.labels(kind=kind).set(count)
