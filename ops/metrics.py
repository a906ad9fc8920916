"""The Prometheus metric families of neikong (DOMAIN.md §5.2) and the exposition helper.

Prometheus gets operational health and business *aggregates* only; the per-official detections
stay in the ledger. Guarantees:

- Every family MUST be created on the `CollectorRegistry` given to `NeikongMetrics` (never the
  global registry), so tests and several services in one process never collide.
- Names carry the `neikong_` prefix and base units (seconds); counters end in `_total` when
  exposed. The names, types and labels are the ones of DOMAIN.md §5.2: the alert rules
  (`ops/prometheus/neikong.rules.yml`) and the dashboards (`ops/grafana/dashboards/`) query
  exactly these names, and a test checks that they reference nothing else.
- Labels MUST come from `ALLOWED_LABELS` (bounded sets: ≤ 25 rule ids, 4 grades, 4 levels, …).
  An official, taxpayer or matter id, or a name, MUST NOT become a label value: such sets are
  unbounded and the data is confidential (personal-matters reports are 保密).
- The bounded label sets (grades, levels, card colours, declaration kinds) are pre-initialised
  to 0, so alert expressions see a series before the first event and resolve to 0 after it.

`serve_metrics` starts prometheus_client's HTTP server for long-running commands; only `ops/`
starts servers (STYLE.md).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from ledger.errors import NeikongError

__all__ = [
    "ALLOWED_LABELS",
    "CARD_COLORS",
    "DECLARATION_KINDS",
    "DEFAULT_METRICS_PORTS",
    "GRADES",
    "LEVELS",
    "MetricsEndpointError",
    "MetricsServer",
    "NeikongMetrics",
    "serve_metrics",
]

#: The only label names a neikong metric may carry (DOMAIN.md §5.2, plus the bounded
#: `kind`, `color`, `version` and `hash` of the table).
ALLOWED_LABELS = frozenset(
    {
        "rule_id",
        "grade",
        "level",
        "event_type",
        "matter_type",
        "result",
        "kind",
        "color",
        "version",
        "hash",
    }
)
#: Risk grades 1–4 (分级防控). Cross-grade rules (R24, R25) use the value "cross".
GRADES = ("1", "2", "3", "4")
#: Warning levels, lowest first (预警等级).
LEVELS = ("blue", "yellow", "orange", "red")
#: Card colours (红黄牌).
CARD_COLORS = ("yellow", "red")
#: Personal-matters report kinds that can be overdue (个人有关事项报告).
DECLARATION_KINDS = ("annual", "change", "initial")
#: Loopback ports the long-running services expose metrics on; `ops/prometheus/prometheus.yml`
#: scrapes exactly these (job name → port).
DEFAULT_METRICS_PORTS: Mapping[str, int] = {
    "neikong-detector": 9641,
    "neikong-ingest": 9642,
    "neikong-serve": 9643,
}

_APPEND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# event→warning target: p99 < 5 s (DOMAIN.md §5.3); absence timers within 60 s of due_at
_DETECTION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class NeikongMetrics:
    """The metric families of DOMAIN.md §5.2, one attribute each, in the registry given.

    `neikong_detector_rule_info{rule_id, grade}` (=1 per rule) is the one family beyond the
    table: alert rules join on it to give rule-level alerts (warning storms) their `grade`, so
    Alertmanager can route and inhibit them per grade.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        # ---- ledger
        self.ledger_events_appended = Counter(
            "neikong_ledger_events_appended_total",
            "Events appended to the ledger, by event type.",
            ["event_type"],
            registry=r,
        )
        self.ledger_append_duration = Histogram(
            "neikong_ledger_append_duration_seconds",
            "Latency of one durable append (batch commit) to the ledger.",
            buckets=_APPEND_BUCKETS,
            registry=r,
        )
        self.ledger_commands_rejected = Counter(
            "neikong_ledger_commands_rejected_total",
            "Commands rejected by a blocking rule (事中阻断), by rule id.",
            ["rule_id"],
            registry=r,
        )
        self.ledger_integrity_check_failures = Counter(
            "neikong_ledger_integrity_check_failures_total",
            "Hash-chain, signature or Merkle verification failures found by verify.",
            registry=r,
        )
        # ---- detector
        self.detector_events_processed = Counter(
            "neikong_detector_events_processed_total",
            "Ledger events consumed by the detector, by event type.",
            ["event_type"],
            registry=r,
        )
        self.detector_lag = Gauge(
            "neikong_detector_lag_seconds",
            "Ledger head time minus the time of the last event the detector processed.",
            registry=r,
        )
        self.detector_event_to_warning = Histogram(
            "neikong_detector_event_to_warning_seconds",
            "From the event that completes a match to the warning appended, by risk grade.",
            ["grade"],
            buckets=_DETECTION_BUCKETS,
            registry=r,
        )
        self.detector_warnings_raised = Counter(
            "neikong_detector_warnings_raised_total",
            "New warnings and escalations (预警), by rule id and level.",
            ["rule_id", "level"],
            registry=r,
        )
        self.detector_warnings_suppressed = Counter(
            "neikong_detector_warnings_suppressed_total",
            "Triggers deduplicated into an open warning, by rule id.",
            ["rule_id"],
            registry=r,
        )
        self.detector_exceptions_applied = Counter(
            "neikong_detector_exceptions_applied_total",
            "Matches cancelled by a rule exception, by rule id.",
            ["rule_id"],
            registry=r,
        )
        self.detector_open_warnings = Gauge(
            "neikong_detector_open_warnings",
            "Warnings currently open, by risk grade and level.",
            ["grade", "level"],
            registry=r,
        )
        self.detector_timers_pending = Gauge(
            "neikong_detector_timers_pending",
            "Durable absence timers waiting to fire.",
            registry=r,
        )
        self.detector_timers_fired_late = Counter(
            "neikong_detector_timers_fired_late_total",
            "Absence timers that fired after their due time (detector was down or behind).",
            registry=r,
        )
        self.detector_snapshot_last_success = Gauge(
            "neikong_detector_snapshot_last_success_timestamp_seconds",
            "Unix time of the last successful detector state snapshot (0: none yet).",
            registry=r,
        )
        self.detector_restore_duration = Gauge(
            "neikong_detector_restore_duration_seconds",
            "Duration of the last restore from snapshot plus replay.",
            registry=r,
        )
        self.detector_ruleset_info = Gauge(
            "neikong_detector_ruleset_info",
            "The active rule set (always 1; one series).",
            ["version", "hash"],
            registry=r,
        )
        self.detector_rule_info = Gauge(
            "neikong_detector_rule_info",
            "The risk grade of each active rule (always 1; one series per rule).",
            ["rule_id", "grade"],
            registry=r,
        )
        # ---- business aggregates
        self.rectifications_overdue = Gauge(
            "neikong_rectifications_overdue",
            "Supervised rectifications (督促整改) past their rectify_by date, by risk grade.",
            ["grade"],
            registry=r,
        )
        self.declarations_overdue = Gauge(
            "neikong_declarations_overdue",
            "Personal-matters reports overdue, by report kind (annual, change, initial).",
            ["kind"],
            registry=r,
        )
        self.cards_issued = Counter(
            "neikong_cards_issued_total",
            "Yellow and red cards issued (红黄牌), by colour.",
            ["color"],
            registry=r,
        )
        for grade in GRADES:
            self.detector_event_to_warning.labels(grade=grade)
            self.rectifications_overdue.labels(grade=grade)
            for level in LEVELS:
                self.detector_open_warnings.labels(grade=grade, level=level)
        for kind in DECLARATION_KINDS:
            self.declarations_overdue.labels(kind=kind)
        for color in CARD_COLORS:
            self.cards_issued.labels(color=color)

    def set_ruleset(self, version: str, ruleset_hash: str, rules: Mapping[str, str]) -> None:
        """Publish the active rule set: `rules` maps each rule id to its grade.

        Afterwards `neikong_detector_ruleset_info` MUST hold exactly one series (this version
        and hash) and `neikong_detector_rule_info` one series per rule; the per-rule counters
        are initialised to 0 for every rule (and level), so `increase()` sees the first warning.
        """
        self.detector_ruleset_info.clear()
        self.detector_ruleset_info.labels(version=version, hash=ruleset_hash).set(1)
        self.detector_rule_info.clear()
        for rule_id, grade in sorted(rules.items()):
            self.detector_rule_info.labels(rule_id=rule_id, grade=grade).set(1)
            self.ledger_commands_rejected.labels(rule_id=rule_id)
            self.detector_warnings_suppressed.labels(rule_id=rule_id)
            self.detector_exceptions_applied.labels(rule_id=rule_id)
            for level in LEVELS:
                self.detector_warnings_raised.labels(rule_id=rule_id, level=level)


class MetricsEndpointError(NeikongError, OSError):
    """The metrics endpoint cannot listen (port taken, address not local, no permission)."""


@dataclass
class MetricsServer:
    """A running metrics endpoint (`GET /metrics`); `close()` stops it and frees the port."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def host(self) -> str:
        return str(self.server.server_address[0])

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        return int(self.server.server_address[1])

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop serving, close the socket and wait for the serving thread. Idempotent."""
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout_s)


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """Serve `registry` at http://host:port/metrics from a daemon thread (port 0: any free one).

    Bind to loopback (`127.0.0.1`) unless a scraper elsewhere needs it; the metrics carry no
    personal data, but they are not meant for the public. Raises `MetricsEndpointError` when it
    cannot listen (e.g. the port is taken).
    """
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise MetricsEndpointError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; "
            "choose another port (--metrics-port) or stop the process using it"
        ) from exc
    return MetricsServer(server=server, thread=thread)
