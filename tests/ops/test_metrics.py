"""ops/metrics.py: the DOMAIN.md §5.2 families, exact names/types/labels, bounded labels only,
an injected registry, and the metrics endpoint."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from ledger.errors import NeikongError
from ops.metrics import (
    ALLOWED_LABELS,
    CARD_COLORS,
    DECLARATION_KINDS,
    GRADES,
    LEVELS,
    MetricsEndpointError,
    NeikongMetrics,
    serve_metrics,
)
from tests.ops._monitoring import require_tool, run

# DOMAIN.md §5.2, as exposed: name -> (type, labels). Counters gain `_total` on exposition.
TABLE = {
    "neikong_ledger_events_appended_total": ("counter", {"event_type"}),
    "neikong_ledger_append_duration_seconds": ("histogram", set()),
    "neikong_ledger_commands_rejected_total": ("counter", {"rule_id"}),
    "neikong_ledger_integrity_check_failures_total": ("counter", set()),
    "neikong_detector_events_processed_total": ("counter", {"event_type"}),
    "neikong_detector_lag_seconds": ("gauge", set()),
    "neikong_detector_event_to_warning_seconds": ("histogram", {"grade"}),
    "neikong_detector_warnings_raised_total": ("counter", {"rule_id", "level"}),
    "neikong_detector_warnings_suppressed_total": ("counter", {"rule_id"}),
    "neikong_detector_exceptions_applied_total": ("counter", {"rule_id"}),
    "neikong_detector_open_warnings": ("gauge", {"grade", "level"}),
    "neikong_detector_timers_pending": ("gauge", set()),
    "neikong_detector_timers_fired_late_total": ("counter", set()),
    "neikong_detector_snapshot_last_success_timestamp_seconds": ("gauge", set()),
    "neikong_detector_restore_duration_seconds": ("gauge", set()),
    "neikong_detector_ruleset_info": ("gauge", {"version", "hash"}),
    "neikong_rectifications_overdue": ("gauge", {"grade"}),
    "neikong_declarations_overdue": ("gauge", {"kind"}),
    "neikong_cards_issued_total": ("counter", {"color"}),
    # beyond the table: the rule -> grade join of the warning-storm alert
    "neikong_detector_rule_info": ("gauge", {"rule_id", "grade"}),
}
# identifiers and personal data that must never become a label (unbounded and confidential)
FORBIDDEN_LABELS = {
    "official",
    "official_id",
    "taxpayer",
    "taxpayer_id",
    "matter",
    "matter_id",
    "stream",
    "event_id",
    "name",
    "unit",
    "unit_id",
    "actor",
    "subject",
    "approver_id",
    "handler_id",
    "reviewer_id",
    "warning_id",
    "violation_id",
    "case_id",
}


def _families(registry: CollectorRegistry) -> dict[str, tuple[str, set[str]]]:
    """Exposed family name -> (type, label names), from the metric objects themselves."""
    out = {}
    for collector in list(registry._collector_to_names):  # every registered metric
        labels = set(getattr(collector, "_labelnames", ()))
        for family in collector.describe():
            name = f"{family.name}_total" if family.type == "counter" else family.name
            out[name] = (family.type, labels)
    return out


def test_the_families_are_exactly_the_domain_table() -> None:
    registry = CollectorRegistry()
    NeikongMetrics(registry)
    assert _families(registry) == TABLE


def test_labels_are_bounded_and_never_identify_people_or_matters() -> None:
    registry = CollectorRegistry()
    NeikongMetrics(registry)
    assert not (ALLOWED_LABELS & FORBIDDEN_LABELS)
    for name, (_, labels) in _families(registry).items():
        assert labels <= ALLOWED_LABELS, f"{name} has labels outside the allowed set"
        assert not (labels & FORBIDDEN_LABELS), name
        assert name.startswith("neikong_"), name


def test_names_use_base_units() -> None:
    for name in TABLE:
        for unit in ("_milliseconds", "_ms", "_minutes", "_hours", "_days", "_percent"):
            assert unit not in name, name


def test_families_live_in_the_injected_registry_only() -> None:
    before = {m.name for m in REGISTRY.collect()}
    registry = CollectorRegistry()
    NeikongMetrics(registry)
    assert {m.name for m in REGISTRY.collect()} == before
    assert not any(n.startswith("neikong_") for n in before)
    # one set of families per registry: a second on the same registry is refused
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        NeikongMetrics(registry)
    NeikongMetrics(CollectorRegistry())  # another registry is fine


def test_bounded_label_sets_start_at_zero() -> None:
    registry = CollectorRegistry()
    NeikongMetrics(registry)
    for grade in GRADES:
        assert registry.get_sample_value("neikong_rectifications_overdue", {"grade": grade}) == 0
        for level in LEVELS:
            value = registry.get_sample_value(
                "neikong_detector_open_warnings", {"grade": grade, "level": level}
            )
            assert value == 0
        count = registry.get_sample_value(
            "neikong_detector_event_to_warning_seconds_count", {"grade": grade}
        )
        assert count == 0
    for kind in DECLARATION_KINDS:
        assert registry.get_sample_value("neikong_declarations_overdue", {"kind": kind}) == 0
    for color in CARD_COLORS:
        assert registry.get_sample_value("neikong_cards_issued_total", {"color": color}) == 0


def test_set_ruleset_keeps_one_ruleset_series_and_initialises_each_rule() -> None:
    registry = CollectorRegistry()
    metrics = NeikongMetrics(registry)
    metrics.set_ruleset("2026.1", "aaaa", {"R05": "2", "R13": "3"})
    metrics.detector_warnings_raised.labels(rule_id="R05", level="yellow").inc(3)
    metrics.set_ruleset("2026.2", "bbbb", {"R05": "2", "R24": "cross"})

    info = [
        s
        for f in registry.collect()
        if f.name == "neikong_detector_ruleset_info"
        for s in f.samples
    ]
    assert [(s.labels, s.value) for s in info] == [({"version": "2026.2", "hash": "bbbb"}, 1.0)]
    rules = {
        (s.labels["rule_id"], s.labels["grade"])
        for f in registry.collect()
        if f.name == "neikong_detector_rule_info"
        for s in f.samples
    }
    assert rules == {("R05", "2"), ("R24", "cross")}
    # counters survive a rule-set change; a new rule starts at 0 for every level
    assert (
        registry.get_sample_value(
            "neikong_detector_warnings_raised_total", {"rule_id": "R05", "level": "yellow"}
        )
        == 3
    )
    for level in LEVELS:
        value = registry.get_sample_value(
            "neikong_detector_warnings_raised_total", {"rule_id": "R24", "level": level}
        )
        assert value == 0
    for name in (
        "neikong_ledger_commands_rejected_total",
        "neikong_detector_warnings_suppressed_total",
        "neikong_detector_exceptions_applied_total",
    ):
        assert registry.get_sample_value(name, {"rule_id": "R24"}) == 0


def test_exposition_passes_promtool_lint() -> None:
    promtool = require_tool("promtool")
    registry = CollectorRegistry()
    metrics = NeikongMetrics(registry)
    metrics.set_ruleset("2026.1", "aaaa", {"R05": "2"})
    metrics.ledger_events_appended.labels(event_type="matter.accepted").inc()
    metrics.ledger_append_duration.observe(0.004)
    metrics.detector_event_to_warning.labels(grade="2").observe(0.3)
    text = generate_latest(registry).decode()
    result = run([promtool, "check", "metrics"], stdin=text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).strip() == ""


def test_serve_metrics_serves_the_registry_and_shuts_down() -> None:
    registry = CollectorRegistry()
    metrics = NeikongMetrics(registry)
    metrics.detector_lag.set(12.5)
    server = serve_metrics(registry, "127.0.0.1", 0)
    try:
        assert server.host == "127.0.0.1"
        assert server.port > 0
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
        assert "neikong_detector_lag_seconds 12.5" in body
        assert 'neikong_detector_open_warnings{grade="1",level="red"} 0.0' in body
        # the port is taken while it serves
        with pytest.raises(MetricsEndpointError, match="cannot serve metrics") as info:
            serve_metrics(registry, "127.0.0.1", server.port)
        assert isinstance(info.value, NeikongError)
        assert isinstance(info.value, OSError)
    finally:
        server.close()
    server.close()  # idempotent
    assert not server.thread.is_alive()
    with socket.socket() as s:  # nothing listens on the port any more
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT, not a listener
        s.bind(("127.0.0.1", server.port))
        s.listen()
