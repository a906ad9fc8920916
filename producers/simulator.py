"""A realistic synthetic tax office, for the demo, the benchmarks and the detector's tests.

The stable facade over `producers.sim`: bureaus with leadership teams and units, officials
with roles and ranks, taxpayers by industry with their own invoice and tax-burden baselines;
power matters that follow their flow definitions (`ledger.flows`) on the holiday calendar in
office hours (CST); taxpayers' monthly figures; personnel, declarations (with family members'
values kept out of `data`), complaints and violations; and anomalies injected at configured
rates, each with a ground-truth `Label`.

Guarantees:
- Deterministic: the same `seed`, `events`, `start` and anomaly configuration yield the same
  events in the same order, and the same labels (event ids too, when emitted through
  producers seeded from the run, as `ops.pipeline` does).
- Every event is in its producer system's key scope (`producer_scope`) and valid against the
  ledger's schema for its type.
- Memory is bounded by the running episodes (open matters, pending reports), not by `events`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from ledger.registry import KeyScope
from producers.sim.anomalies import KINDS, AnomalyKind, SimAnomalies, SimConfigError
from producers.sim.engine import Engine
from producers.sim.events import Label, SimEvent
from producers.sim.office import open_office

__all__ = [
    "DEFAULT_START",
    "KINDS",
    "SYSTEMS",
    "AnomalyKind",
    "Label",
    "SimAnomalies",
    "SimConfigError",
    "SimEvent",
    "office_size",
    "producer_scope",
    "simulate",
]

# producer system -> (stream prefixes, event types) it may sign: its key scope
SYSTEMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "4403-ctais": (
        ("matter/4403-zg/", "taxpayer/"),
        ("matter.*", "taxpayer.tax_burden_computed", "taxpayer.risk_response_recorded"),
    ),
    "4403-fapiao": (
        ("matter/4403-fp/", "taxpayer/"),
        ("matter.*", "taxpayer.invoice_usage_reported"),
    ),
    "4403-xuke": (("matter/4403-xk/",), ("matter.*",)),
    "4403-jicha": (("matter/4403-jc/",), ("matter.*",)),
    "4403-bangong": (("decision/",), ("decision.*",)),
    "4403-renshi": (("official/",), ("personnel.*",)),
    "4403-ganbu": (("declaration/",), ("declaration.*",)),
    "4403-jijian": (("complaint/",), ("complaint.*",)),
    "4403-ducha": (("violation/",), ("violation.*",)),
}

# Monday 1 December 2025, 09:00 CST: a fixed date (runs are reproducible) early enough that a
# 1,000,000-event run (~9 simulated months) lies wholly in the past, so deadlines it sets have
# come due by the wall clock and the detector's timers judge them, as they would when an
# inspector replays a year of history; and late enough that annual reports (due 31 January)
# fall inside the packaged holiday calendar (2025-2027).
DEFAULT_START = datetime(2025, 12, 1, 1, 0, tzinfo=UTC)


def producer_scope(system: str) -> KeyScope:
    """The key scope of one simulated producer system (stream prefixes + type globs)."""
    prefixes, types = SYSTEMS[system]
    return KeyScope(system, prefixes, types)


def office_size(events: int) -> int:
    """Taxpayers in the simulated office for a run of `events` events."""
    return max(300, events // 40)


def simulate(
    seed: int,
    events: int,
    start: datetime | None = None,
    *,
    anomalies: SimAnomalies | None = None,
    labels: Callable[[Label], None] | None = None,
) -> Iterator[SimEvent]:
    """Yield `events` events of the simulated office in time order, from `start` (default
    `DEFAULT_START`). Injects `anomalies` (default: `SimAnomalies()`, ~2 %) and passes each
    label to `labels` once the run reaches its time."""
    moment = (start or DEFAULT_START).astimezone(UTC)
    engine = Engine(
        seed,
        int(moment.timestamp()),
        office_size(events),
        anomalies if anomalies is not None else SimAnomalies(),
        labels,
    )
    open_office(engine)
    return engine.run(events)
