"""Ledger metrics of an append loop: what was appended, how long it took, what failed.

`record_batch` translates one durable batch's outcomes into the ledger families of
`ops.metrics.NeikongMetrics` (DOMAIN.md §5.2):

- `neikong_ledger_events_appended_total{event_type}`: each record appended in the batch (read
  from its canonical bytes; only appended records are parsed, and they passed every check);
- `neikong_ledger_append_duration_seconds`: the batch's submit-to-durable time;
- `neikong_ledger_commands_rejected_total{rule_id}`: appended `command.rejected` events (事中阻断);
- `neikong_ledger_integrity_check_failures_total`: records refused because they contradict the
  hash chain the ledger holds (`fork`, `chain_break`, `event_id_conflict`: same identity,
  other bytes).

A record parked for a gap counts as appended when its gap fills, not in the batch it arrived
in (`neikong_ingest_events_appended` counts ledger positions gained, parked ones included).
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.append_rules import Outcome
from ledger.reasons import ReasonCode
from ops.metrics import NeikongMetrics
from projections.base import decode_record, record_type

__all__ = ["INTEGRITY_REASONS", "record_batch"]

#: Rejections that mean the input contradicts the ledger's hash chains.
INTEGRITY_REASONS = frozenset(
    {ReasonCode.FORK, ReasonCode.CHAIN_BREAK, ReasonCode.EVENT_ID_CONFLICT}
)


def record_batch(
    metrics: NeikongMetrics,
    outcomes: Sequence[Outcome],
    records: Sequence[bytes],
    seconds: float,
) -> None:
    """Count one durable batch (`outcomes[i]` is the outcome of `records[i]`)."""
    metrics.ledger_append_duration.observe(seconds)
    for outcome, record in zip(outcomes, records, strict=False):
        if outcome.status == "appended":
            event_type = record_type(bytes(record))
            metrics.ledger_events_appended.labels(event_type=event_type).inc()
            if event_type == "command.rejected":
                rule_id = decode_record(0, bytes(record)).data.get("rule_id")
                metrics.ledger_commands_rejected.labels(rule_id=str(rule_id)).inc()
        elif outcome.status == "rejected" and outcome.reason in INTEGRITY_REASONS:
            metrics.ledger_integrity_check_failures.inc()
