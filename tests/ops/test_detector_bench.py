"""The detector bench: matching warnings to labels, percentiles, and a small real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ops.detector_bench import quality_lines, run_detector_bench
from ops.detector_latency import percentile
from ops.detector_quality import rule_number, score


def _label(kind, rules, key, evidence=()):
    return {"kind": kind, "rules": list(rules), "key": key, "evidence": list(evidence)}


R05 = "R05-processing-deadline"
R06 = "R06-mandatory-step"
R07 = "R07-frequent-invoice-quota-increase"
R12B = "R12b-refund-fast-track"
R24 = "R24-card-escalation"

LABELS = [
    _label("processing_deadline", ["R05"], {"matter": "matter/fp/1"}),  # TP for R05
    _label("processing_deadline", ["R05"], {"matter": "matter/fp/2"}),  # FN for R05
    _label("frequent_quota_increase", ["R07"], {"taxpayer": "T1"}, ["taxpayer/T1/fapiao"]),
    _label("approval_skipped", ["R02", "R06"], {"matter": "matter/fp/3"}),  # R02 not loaded
    _label("refund_fast_track", ["R12", "R06"], {"matter": "matter/zg/4"}),
]
WARNINGS = [
    (R05, "matter/fp/1"),
    (R05, "matter/fp/1"),  # the same (rule, key) again: one warning (escalated in place)
    (R05, "matter/fp/9"),  # FP: no label names it
    (R07, "T1"),  # TP by the label's key
    (R07, "taxpayer/T1/fapiao"),  # TP by the label's evidence stream
    (R06, "matter/fp/3"),  # TP (second rule of approval_skipped)
    (R12B, "matter/zg/4|4403-00017"),  # TP: lettered part of R12, one part of a composite key
    (R24, "4403-00017"),  # no labels for R24: counted, never scored
    (R07, "matter/fp/1"),  # FP: a label names the key, but not for R07
]
LOADED = [R05, R06, R07, R12B, R24]


def test_rule_number():
    assert rule_number(R05) == "R05"
    assert rule_number(R12B) == "R12"


def test_matching_counts_tp_fp_fn_per_catalogue_number():
    q = score(WARNINGS, LABELS, LOADED)
    r05, r07, r06, r12, r24 = (q.rules[n] for n in ("R05", "R07", "R06", "R12", "R24"))
    assert (r05.warnings, r05.tp, r05.fp, r05.labels, r05.detected, r05.fn) == (2, 1, 1, 2, 1, 1)
    assert (r07.warnings, r07.tp, r07.fp, r07.labels, r07.detected, r07.fn) == (3, 2, 1, 1, 1, 0)
    assert (r06.tp, r06.fp, r06.labels, r06.detected, r06.fn) == (1, 0, 2, 1, 1)
    assert (r12.tp, r12.fp, r12.labels, r12.fn) == (1, 0, 1, 0)
    assert r12.files == {R12B: [1, 1]}
    assert (r24.warnings, r24.labels, r24.precision, r24.recall) == (1, 0, None, None)
    assert r05.precision == pytest.approx(0.5)
    assert r05.recall == pytest.approx(0.5)
    assert r07.precision == pytest.approx(2 / 3)
    assert q.precision_min == pytest.approx(0.5)
    assert q.recall_min == pytest.approx(0.5)
    assert q.unloaded == {"R02": 1}


def test_two_rule_files_of_one_number_share_its_labels():
    late, fast = "R12-refund-late", "R12-refund-fast-track"
    labels = [
        _label("refund_late", ["R12", "R05"], {"matter": "m1"}),
        _label("refund_fast_track", ["R12", "R06"], {"matter": "m2"}),
    ]
    q = score([(late, "m1"), (fast, "m2")], labels, [late, fast])
    r12 = q.rules["R12"]
    assert (r12.warnings, r12.tp, r12.labels, r12.detected) == (2, 2, 2, 2)
    assert r12.files == {late: [1, 1], fast: [1, 1]}
    assert q.unloaded == {"R05": 1, "R06": 1}


def test_false_positives_that_stayed_reminders():
    warnings = [(R05, "x", "yellow"), (R05, "x", "orange"), (R05, "y", "yellow"), (R05, "z", "red")]
    label = _label("processing_deadline", ["R05"], {"matter": "z"})
    r05 = score(warnings, [label], [R05]).rules["R05"]
    assert (r05.warnings, r05.tp, r05.fp, r05.fp_reminder) == (3, 1, 2, 1)


def test_per_kind_primary_and_any():
    kinds = score(WARNINGS, LABELS, LOADED).kinds
    deadline = kinds["processing_deadline"]
    assert (deadline.labels, deadline.detected_primary) == (2, 1)
    skipped = kinds["approval_skipped"]  # primary R02 is not loaded; R06 caught it
    assert (skipped.detected_primary, skipped.detected_any) == (0, 1)
    fast = kinds["refund_fast_track"]
    assert (fast.detected_primary, fast.detected_any) == (1, 1)


def test_no_warnings_means_no_precision_and_zero_recall():
    q = score([], LABELS[:1], [R05])
    assert q.rules["R05"].precision is None
    assert q.rules["R05"].recall == 0
    assert q.precision_min is None
    assert q.recall_min == 0


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 99) == 99.0
    assert percentile(values, 50) == 50.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 99) is None


def test_small_run_reports_every_key(tmp_path: Path):
    figures = run_detector_bench(
        tmp_path,
        events=4000,
        anomaly_rate=0.3,
        repeats=1,
        latency_events=1500,
        timers=20,
        tick_s=0.1,
        timer_lead_s=1,
        timer_spread_s=1,
        log=lambda _: None,
    )
    for key in (
        "detector_per_s",
        "raw_detector_read_per_s",
        "detector_precision_min",
        "detector_recall_min",
        "detector_p99_ms",
        "timer_p99_ms",
        "detector_quality",
    ):
        assert key in figures, key
    assert figures["detector_events"] > 4000  # the run plus key enrolments
    assert figures["detector_per_s"] > 0
    assert figures["raw_detector_read_per_s"] > 0
    assert 0 <= figures["detector_precision_min"] <= 1
    assert 0 <= figures["detector_recall_min"] <= 1
    assert figures["timer_samples"] == 20
    assert 0 <= figures["timer_p50_ms"] <= figures["timer_p99_ms"] < 10_000
    assert figures["detector_samples"] > 0
    assert 0 < figures["detector_p99_ms"] < 60_000
    table = figures["detector_quality"]["per_rule"]
    assert "R05" in table
    assert sum(r["labels"] for r in table.values()) > 0
    assert quality_lines(figures["detector_quality"])[0].startswith("rule")
    json.dumps(figures)  # one JSON object


def test_cli_only_detector_help():
    from ops.cli import main

    result = CliRunner().invoke(main, ["bench", "--help"])
    assert result.exit_code == 0
    assert "--only [detector]" in result.output
