"""ops/alertmanager: config checked with amtool, routing asserted with `amtool config routes
test`, and the grade inhibition exercised on a real Alertmanager (loopback, throw-away)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops._monitoring import ALERTMANAGER_DIR, alert_rules, require_tool, run

CONFIG = ALERTMANAGER_DIR / "alertmanager.yml"


def _config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def _route(labels: dict[str, str]) -> str:
    amtool = require_tool("amtool")
    args = [f"{k}={v}" for k, v in labels.items()]
    result = run([amtool, "config", "routes", "test", f"--config.file={CONFIG}", *args])
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def test_config_passes_amtool_check() -> None:
    amtool = require_tool("amtool")
    result = run([amtool, "check-config", str(CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "1 inhibit rules" in result.stdout
    assert f"{len(_config()['receivers'])} receivers" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            {"alertname": "NeikongRedWarningOpen", "severity": "page", "grade": "1"},
            "ducha-on-duty-grade-1",
        ),
        (
            {"alertname": "NeikongRedWarningOpen", "severity": "page", "grade": "2"},
            "ducha-on-duty-grade-2",
        ),
        (
            {"alertname": "NeikongRedWarningOpen", "severity": "page", "grade": "3"},
            "ducha-on-duty-grade-3",
        ),
        (
            {"alertname": "NeikongRedWarningOpen", "severity": "page", "grade": "4"},
            "ducha-on-duty-grade-4",
        ),
        (
            {"alertname": "NeikongRedWarningOpen", "severity": "page", "grade": "cross"},
            "ducha-on-duty",
        ),
        ({"alertname": "NeikongDetectorDown", "severity": "page"}, "ducha-on-duty"),
        ({"alertname": "NeikongLedgerIntegrityFailure", "severity": "page"}, "ducha-on-duty"),
        (
            {"alertname": "NeikongRectificationOverdue", "severity": "ticket", "grade": "1"},
            "neikong-queue-grade-1",
        ),
        (
            {"alertname": "NeikongWarningStorm", "severity": "ticket", "grade": "3"},
            "neikong-queue-grade-3",
        ),
        (
            {"alertname": "NeikongDeclarationsOverdue", "severity": "ticket", "grade": "4"},
            "neikong-queue-grade-4",
        ),
        ({"alertname": "NeikongWarningStorm", "severity": "ticket"}, "neikong-queue"),
        ({"alertname": "NeikongDetectorLagHigh", "severity": "ticket"}, "neikong-queue"),
        # nothing is dropped: unknown or missing severity goes to the queue
        ({"alertname": "Whatever", "severity": "info", "grade": "1"}, "neikong-queue"),
        ({"alertname": "Whatever"}, "neikong-queue"),
    ],
)
def test_routing(labels: dict[str, str], receiver: str) -> None:
    assert _route(labels) == receiver


def test_every_alert_rule_reaches_a_receiver_of_its_severity() -> None:
    for rule in alert_rules():
        severity = rule["labels"]["severity"]
        grades = [rule["labels"]["grade"]] if "grade" in rule["labels"] else [None]
        if re.search(r"by \(grade\)|group_left \(grade\)", re.sub(r"\s+", " ", rule["expr"])):
            grades = ["1", "2", "3", "4"]
        for grade in grades:
            labels = {"alertname": rule["alert"], "severity": severity}
            if grade is not None:
                labels["grade"] = grade
            receiver = _route(labels)
            prefix = "ducha-on-duty" if severity == "page" else "neikong-queue"
            expected = prefix if grade is None else f"{prefix}-grade-{grade}"
            assert receiver == expected, (labels, receiver)


def test_grouping_timing_and_inhibition_are_the_documented_ones() -> None:
    config = _config()
    route = config["route"]
    assert route["group_by"] == ["alertname", "grade"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "30s",
        "5m",
        "4h",
    )
    [rule] = config["inhibit_rules"]
    assert rule["equal"] == ["grade"]
    # a missing label counts as equal: both sides must require a grade
    assert any(m.startswith('severity="page"') for m in rule["source_matchers"])
    assert any(m.startswith('severity="ticket"') for m in rule["target_matchers"])
    assert any(m.startswith("grade=~") for m in rule["source_matchers"])
    assert any(m.startswith("grade=~") for m in rule["target_matchers"])


def test_receivers_are_loopback_webhooks_without_secrets() -> None:
    config = _config()
    text = CONFIG.read_text(encoding="utf-8").lower()
    for word in ("password", "token", "api_key", "secret", "authorization", "bearer"):
        assert word not in re.sub(r"#.*", "", text), word
    routed = set()

    def walk(route: dict[str, Any]) -> None:
        routed.add(route["receiver"])
        for child in route.get("routes", []):
            walk(child)

    walk(config["route"])
    names = {r["name"] for r in config["receivers"]}
    assert routed == names  # no dead receiver, no missing one
    for receiver in config["receivers"]:
        assert set(receiver) == {"name", "webhook_configs"}, receiver["name"]
        for hook in receiver["webhook_configs"]:
            assert hook["url"].startswith("http://127.0.0.1:"), hook["url"]
            assert hook["send_resolved"] is True


# ------------------------------------------------------- inhibition on a real Alertmanager

NAIVE_INHIBIT = {  # DOMAIN.md §5.2's rule without the grade matchers
    "source_matchers": ['severity="page"'],
    "target_matchers": ['severity="ticket"'],
    "equal": ["grade"],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read() or b"null")


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Any]:
    """Start a throw-away Alertmanager with a given config; yields start(config) -> base URL."""
    binary = require_tool("prometheus-alertmanager")
    procs: list[subprocess.Popen[bytes]] = []

    def start(config: dict[str, Any]) -> str:
        n = len(procs)
        config_file = tmp_path / f"am-{n}.yml"
        config_file.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        port = _free_port()
        with (tmp_path / f"am-{n}.log").open("wb") as log:
            proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_file}",
                    f"--storage.path={tmp_path / f'data-{n}'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / f"am-{n}.log").read_text()
            try:
                urllib.request.urlopen(f"{base}/-/ready", timeout=1).close()
                return base
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


ALERTS = [
    {"alertname": "NeikongRedWarningOpen", "severity": "page", "grade": "2"},
    {"alertname": "NeikongRectificationOverdue", "severity": "ticket", "grade": "2"},
    {"alertname": "NeikongRectificationOverdue", "severity": "ticket", "grade": "3"},
    {"alertname": "NeikongDetectorDown", "severity": "page", "job": "neikong-detector"},
    {"alertname": "NeikongIngestConsumerLagHigh", "severity": "ticket", "job": "neikong-ingest"},
]


def _states(base: str) -> dict[tuple[str, str], str]:
    request = urllib.request.Request(
        f"{base}/api/v2/alerts",
        data=json.dumps([{"labels": a, "annotations": {}} for a in ALERTS]).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=5).close()
    deadline = time.monotonic() + 15
    while True:
        alerts = _get(f"{base}/api/v2/alerts")
        states = {
            (a["labels"]["alertname"], a["labels"].get("grade", "-")): a["status"]["state"]
            for a in alerts
        }
        # the inhibitor learns the source alerts asynchronously: wait until it settled
        if len(states) == len(ALERTS) and "suppressed" in states.values():
            time.sleep(0.5)
            alerts = _get(f"{base}/api/v2/alerts")
            return {
                (a["labels"]["alertname"], a["labels"].get("grade", "-")): a["status"]["state"]
                for a in alerts
            }
        if time.monotonic() > deadline:
            return states
        time.sleep(0.2)


def test_a_page_inhibits_tickets_of_its_own_grade_only(alertmanager: Any) -> None:
    states = _states(alertmanager(_config()))
    assert states == {
        ("NeikongRedWarningOpen", "2"): "active",
        ("NeikongRectificationOverdue", "2"): "suppressed",  # same grade: inhibited
        ("NeikongRectificationOverdue", "3"): "active",  # other grade
        ("NeikongDetectorDown", "-"): "active",
        ("NeikongIngestConsumerLagHigh", "-"): "active",  # no grade on either side
    }


def test_without_the_grade_matchers_a_health_page_would_mute_health_tickets(
    alertmanager: Any,
) -> None:
    """The pitfall DOMAIN.md warns about, shown on the real Alertmanager: `equal: [grade]`
    alone treats two alerts without a grade as equal."""
    config = _config()
    config["inhibit_rules"] = [NAIVE_INHIBIT]
    states = _states(alertmanager(config))
    assert states[("NeikongIngestConsumerLagHigh", "-")] == "suppressed"
    assert states[("NeikongRectificationOverdue", "3")] == "active"
