"""The metrics wiring on a real ledger: detector, ingest loop, business gauges, endpoints.

Counts are checked against the ledger itself (its events read back by position), never
against numbers written into the test.
"""

from __future__ import annotations

import functools
import os
import random
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from alerts.detector import Detector
from alerts.rules import RULES_DIR, RuleSet, load_ruleset
from ledger.builder import build_body
from ledger.keys import Signer
from ledger.ledger import Ledger
from ledger.log_reader import LogReader
from ledger.reasons import ReasonCode
from ops.detector_metrics import DetectorMetrics
from ops.metrics import ALLOWED_LABELS, NeikongMetrics, serve_metrics
from ops.service import Service, ServiceSettings, SimulationSettings
from producers.producer import Producer
from producers.simulator import SimAnomalies
from projections.base import LoggedEvent, decode_record

ROOT = Path(__file__).resolve().parents[2]
NEIKONG = [sys.executable, "-c", "from ops.cli import main; main()"]
PAST = datetime.now(UTC) - timedelta(days=60)  # deadlines already past the red level


def _events(ledger: Ledger, after: int = 0) -> list[LoggedEvent]:
    reader = LogReader(ledger.store.config)
    try:
        head = reader.max_position()
        return [decode_record(p, r) for p, _, _, r in reader.by_position(after + 1, head + 1)]
    finally:
        reader.close()


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == name
    }


@functools.cache
def _ruleset() -> RuleSet:
    return load_ruleset(RULES_DIR)


def _service(tmp_path: Path, registry: CollectorRegistry, rate: float = 800.0) -> Service:
    ledger = Ledger.init(tmp_path / "ledger")
    sim = SimulationSettings(rate=rate, anomalies=SimAnomalies(rate=0.05), seed=3, start=PAST)
    settings = ServiceSettings(interval_s=0.05, gauges_every_s=0.0, simulation=sim)
    return Service(ledger, _ruleset(), registry, settings)


@pytest.fixture
def served(tmp_path: Path) -> tuple[Service, CollectorRegistry, int]:
    """A service after a few simulated passes; (service, registry, position before them)."""
    registry = CollectorRegistry()
    service = _service(tmp_path, registry)
    enrolled = service.ledger.store.max_position()
    for _ in range(2):
        time.sleep(0.25)  # the feed publishes what its rate allows since the last pass
        service.run_pass()
    yield service, registry, enrolled
    service.close()
    service.ledger.close()


def test_detector_counters_match_the_ledger(served: tuple[Service, CollectorRegistry, int]) -> None:
    service, registry, enrolled = served
    events = _events(service.ledger)
    assert service.detector.position == events[-1].position
    by_type = Counter(e.type for e in events)
    assert _samples(registry, "neikong_detector_events_processed_total") == {
        (("event_type", t),): float(n) for t, n in by_type.items()
    }
    warnings = [e for e in events if e.type in ("warning.raised", "warning.escalated")]
    assert warnings, "the simulated run with past deadlines raised no warning"
    raised = Counter((e.data["rule_id"], e.data["level"]) for e in warnings)
    for (rule_id, level), n in raised.items():
        assert (
            _value(registry, "neikong_detector_warnings_raised_total", rule_id=rule_id, level=level)
            == n
        )
    total = sum(_samples(registry, "neikong_detector_warnings_raised_total").values())
    assert total == len(warnings)
    # latency: one observation per warning appended, by grade
    by_grade = Counter(str(e.data["grade"]) for e in warnings)
    for grade, n in by_grade.items():
        assert _value(registry, "neikong_detector_event_to_warning_seconds_count", grade=grade) == n
    cards = Counter(e.data["color"] for e in events if e.type == "card.issued")
    for color in ("yellow", "red"):
        assert _value(registry, "neikong_cards_issued_total", color=color) == cards[color]
    # open warnings by grade and level: the engine's open set, nothing closed in this run
    open_now = Counter(
        (str(service.detector.ruleset.get(k.split("\n")[0]).grade), v["level"])
        for k, v in service.detector.engine.open_warnings().items()
    )
    assert open_now[("2", "red")] > 0
    for (grade, level), n in open_now.items():
        assert _value(registry, "neikong_detector_open_warnings", grade=grade, level=level) == n
    late = sum(1 for e in warnings if e.data["late"])
    assert _value(registry, "neikong_detector_timers_fired_late_total") == late
    assert _value(registry, "neikong_detector_timers_pending") == len(
        service.detector.engine.timers
    )
    assert _value(registry, "neikong_detector_snapshot_last_success_timestamp_seconds") > 0
    assert _value(registry, "neikong_detector_restore_duration_seconds") > 0
    info = _samples(registry, "neikong_detector_ruleset_info")
    assert len(info) == 1
    assert dict(next(iter(info)))["hash"] == service.detector.ruleset.ruleset_hash
    # the ledger families: every event the ingest loop and the detector appended, by type
    # (key registry events are appended by the ledger's admin path: the detector's key is
    # enrolled on its first warning)
    appended = Counter(
        e.type for e in events if e.position > enrolled and not e.type.startswith("key.")
    )
    assert _samples(registry, "neikong_ledger_events_appended_total") == {
        (("event_type", t),): float(n) for t, n in appended.items()
    }
    assert _value(registry, "neikong_ledger_append_duration_seconds_count") > 0
    assert _value(registry, "neikong_ledger_position") == events[-1].position


def test_a_pass_without_input_moves_no_counter(
    served: tuple[Service, CollectorRegistry, int],
) -> None:
    service, registry, _ = served
    service.feed = None  # stop feeding
    service.run_pass()
    names = (
        "neikong_detector_events_processed_total",
        "neikong_detector_warnings_raised_total",
        "neikong_ledger_events_appended_total",
        "neikong_cards_issued_total",
    )
    before = {n: _samples(registry, n) for n in names}
    service.run_pass()
    assert {n: _samples(registry, n) for n in names} == before


def test_engine_counters_are_translated_once_by_rule(tmp_path: Path) -> None:
    ledger = Ledger.init(tmp_path / "ledger")
    try:
        detector = Detector(ledger, _ruleset())
        registry = CollectorRegistry()
        metrics = DetectorMetrics(detector, NeikongMetrics(registry))
        stats = detector.engine.stats
        stats.suppressed_by_rule["R04-same-person-handles-and-approves"] = 2
        stats.exceptions_by_rule["R05-processing-deadline"] = 1
        metrics.after_pass()
        metrics.after_pass()  # nothing new: no second increment
        stats.suppressed_by_rule["R04-same-person-handles-and-approves"] = 5
        metrics.after_pass()
        assert (
            _value(
                registry,
                "neikong_detector_warnings_suppressed_total",
                rule_id="R04-same-person-handles-and-approves",
            )
            == 5
        )
        assert (
            _value(
                registry,
                "neikong_detector_exceptions_applied_total",
                rule_id="R05-processing-deadline",
            )
            == 1
        )
        detector.close()
    finally:
        ledger.close()


def test_a_restarted_detector_does_not_count_warnings_the_ledger_holds(
    served: tuple[Service, CollectorRegistry, int],
) -> None:
    """A detector that lost its snapshot replays the log; the warnings it emits are already in
    the ledger, so nothing is appended and nothing is counted.

    The engine's guarantee is replay with the same events and the same sequence of `now`
    (`alerts.engine`). The service's passes saw a back-dated feed arrive under a moving wall
    clock: timers that fell due more than `late_after_s` before a pass fire late, coalesced to
    the highest due level per pass, so a one-pass replay may split or merge those levels
    differently. The scene is therefore set by one replay at a fixed `now` first."""
    service, _, _ = served
    ledger = service.ledger
    ruleset = service.detector.ruleset
    now = int(time.time())
    service.detector.snapshots.reset()  # lost snapshot: a replay of everything at `now`
    first = Detector(ledger, ruleset)
    try:
        first.run_once(now)
    finally:
        first.close()
    first_run_head = ledger.store.max_position()
    service.detector.snapshots.reset()  # lost again: the same replay, the same `now`
    registry = CollectorRegistry()
    detector = Detector(ledger, ruleset)
    metrics = DetectorMetrics(detector, NeikongMetrics(registry))
    try:
        metrics.before_pass(now)
        run = detector.run_once(now)
        metrics.after_pass()
    finally:
        detector.close()
    assert run.emitted > 0
    assert run.appended == 0
    assert ledger.store.max_position() == first_run_head
    assert sum(_samples(registry, "neikong_ledger_events_appended_total").values()) == 0
    assert sum(_samples(registry, "neikong_cards_issued_total").values()) == 0
    assert sum(_samples(registry, "neikong_detector_warnings_raised_total").values()) == 0


def test_integrity_failures_count_forks_from_the_ingest_loop(
    served: tuple[Service, CollectorRegistry, int],
) -> None:
    service, registry, _ = served
    ledger = service.ledger
    first = next(e for e in _events(ledger) if e.type == "matter.accepted")
    system = first.system
    # a correctly signed event on the same stream and seq, with other bytes: a fork
    body = build_body(
        event_id=str(uuid.uuid4()),
        stream=first.stream,
        stream_seq=1,
        prev=None,
        system=system,
        producer_seq=ledger.store.producer_heads()[system] + 1,
        type=first.type,
        occurred_at=first.occurred_at,
        actor=first.actor,
        subject=first.subject or None,
        data=first.data,
    )
    record = Signer.from_file(ledger.key_path(system)).sign(body).encode()
    assert _value(registry, "neikong_ledger_integrity_check_failures_total") == 0
    service.channel.publish(first.stream, record)
    service.ingester.run()
    assert service.ingester.stats.rejected == {ReasonCode.FORK.value: 1}
    assert _value(registry, "neikong_ledger_integrity_check_failures_total") == 1
    assert _value(registry, "neikong_ingest_records_rejected_total", reason="fork") == 1


def _violation(producer: Producer, serial: int, grade: int, rectify_by: str) -> None:
    stream = f"violation/2026-9{serial:05d}"
    actor = {"official": "4403-00999", "role": "auditor", "unit": "4403-09"}
    subject = {"official": f"4403-0{serial:04d}", "unit": "4403-01"}
    at = "2026-09-01T02:00:00Z"
    recorded = {"grade": grade, "error_code": "E1", "source": "audit", "found_on": "2026-09-01"}
    producer.emit(
        stream, "violation.recorded", actor=actor, data=recorded, occurred_at=at, subject=subject
    )
    ordered = {"rectify_by": rectify_by, "ordered_by": "4403-00999"}
    producer.emit(
        stream,
        "violation.rectification_ordered",
        actor=actor,
        data=ordered,
        occurred_at=at,
        subject=subject,
    )


def test_business_gauges_count_the_registers(
    served: tuple[Service, CollectorRegistry, int],
) -> None:
    service, registry, _ = served
    from ops.business_metrics import rectifications_overdue

    ledger = service.ledger
    signer = Signer.from_file(ledger.key_path("4403-ducha"))
    producer = Producer("4403-ducha", signer, service.channel, rng=random.Random(5))
    today = (datetime.now(UTC) + timedelta(hours=8)).date()
    before = {g: _value(registry, "neikong_rectifications_overdue", grade=g) for g in "1234"}
    _violation(producer, 1, 2, (today - timedelta(days=3)).isoformat())  # overdue
    _violation(producer, 2, 2, (today - timedelta(days=1)).isoformat())  # overdue
    _violation(producer, 3, 4, (today - timedelta(days=1)).isoformat())  # overdue
    _violation(producer, 4, 3, today.isoformat())  # due today: not overdue yet
    service.run_pass()
    added = {"1": 0, "2": 2, "3": 0, "4": 1}
    for grade, n in added.items():
        assert _value(registry, "neikong_rectifications_overdue", grade=grade) == before[grade] + n
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert rectifications_overdue(service.model, tomorrow)["3"] == 1
    for kind in ("annual", "change", "initial"):  # every kind is exported, 0 or more
        assert registry.get_sample_value("neikong_declarations_overdue", {"kind": kind}) is not None


# -- a real scrape ----------------------------------------------------------------------------

_ID_LIKE = re.compile(r"^\d{4}-\d+$|^9\d{4}[0-9A-Z]{10,}$|/")


def test_a_real_scrape_has_only_bounded_labels(
    served: tuple[Service, CollectorRegistry, int],
) -> None:
    service, registry, _ = served
    server = serve_metrics(registry, "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
            text = r.read().decode()
    finally:
        server.close()
    ids: set[str] = set()
    for e in _events(service.ledger):
        ids.add(e.stream)
        ids.update(v for v in (e.actor or {}).values() if isinstance(v, str))
        ids.update(v for v in (e.subject or {}).values() if isinstance(v, str))
        ids.update(str(v) for k, v in e.data.items() if k in ("matter", "official", "key"))
    ids -= {"approver", "handler", "reviewer", "detector", "official", "unit_head"}  # roles
    allowed = ALLOWED_LABELS | {"le", "reason"}  # histogram buckets; ingest reason codes
    families = list(text_string_to_metric_families(text))
    assert {f.name for f in families} >= {
        "neikong_detector_open_warnings",
        "neikong_ingest_records_consumed",
    }
    for family in families:
        for sample in family.samples:
            assert set(sample.labels) <= allowed, (sample.name, sample.labels)
            for name, value in sample.labels.items():
                assert value not in ids, (sample.name, name, value)
                if name in ("event_type", "rule_id", "grade", "level", "color", "kind"):
                    assert not _ID_LIKE.search(value), (sample.name, name, value)
            if "reason" in sample.labels:
                assert sample.labels["reason"] in {c.value for c in ReasonCode} | {"unknown"}


# -- the endpoint of a long-running command ----------------------------------------------------


def _listening_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A":  # LISTEN
                inodes.add(parts[9])
    return inodes


def _listens(pid: int) -> bool:
    listening = _listening_inodes()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in listening:
            return True
    return False


def _detect(ledger_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    Ledger.init(ledger_dir).close()
    args = ["detect", "--ledger", str(ledger_dir), "--interval", "0.2", "--metrics-port", str(port)]
    with log.open("wb") as handle:
        return subprocess.Popen(
            [*NEIKONG, *args],
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def _wait_for(log: Path, text: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while text not in log.read_text():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def _terminate(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.terminate()
    try:
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux /proc")
def test_metrics_port_0_serves_nothing_and_a_port_serves_detector_metrics(tmp_path: Path) -> None:
    off_log = tmp_path / "off.log"
    off = _detect(tmp_path / "off", 0, off_log)
    try:
        _wait_for(off_log, "position 1: 1 events", off)  # a pass ran: past any server start
        assert not _listens(off.pid)
        assert "metrics on" not in off_log.read_text()
    finally:
        _terminate(off, off_log)
    with socket_port() as port:
        pass
    on_log = tmp_path / "on.log"
    on = _detect(tmp_path / "on", port, on_log)
    try:
        _wait_for(on_log, "position 1: 1 events", on)
        assert _listens(on.pid)  # the positive control of the check above
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        assert 'neikong_detector_events_processed_total{event_type="ledger.genesis"} 1.0' in text
        assert "neikong_detector_ruleset_info{" in text
    finally:
        _terminate(on, on_log)


class socket_port:
    """A free loopback port (released on exit, then handed to the child)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_serve_help_documents_its_options_and_exit_codes() -> None:
    from click.testing import CliRunner

    from ops.cli import main

    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0, result.output
    for text in ("--simulate", "--metrics-port", "--sim-start", "9643", "Exit codes: 0"):
        assert text in result.output
