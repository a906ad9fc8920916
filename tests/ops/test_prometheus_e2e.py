"""End to end with a real Prometheus: `neikong serve --simulate` scraped every second.

A fresh ledger is fed by the simulated office with simulated time starting 60 days ago, so the
detector (fired by the wall clock) finds processing deadlines already past their red level
(R05, grade 2) within its first passes. Prometheus (Debian's 2.42 here) loads
ops/prometheus/neikong.rules.yml and scrapes the service under each job name of
ops/prometheus/prometheus.yml (the embedded service plays the detector, ingest and serve
roles). The test asserts through Prometheus's HTTP API that `NeikongRedWarningOpen` fires, that
every rule evaluates without error, and that every PromQL expression of every Grafana
dashboard returns data.

Skips locally without `prometheus`; fails under CI=1 (see tests/ops/_monitoring.py).
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops._monitoring import PROMETHEUS_DIR, ROOT, RULES_FILE, dashboard_exprs, require_tool

NEIKONG = [sys.executable, "-c", "from ops.cli import main; main()"]
DEADLINE_S = 50.0
# Grafana variables, as a 1 s scrape makes sense of them
GRAFANA_VARS = {"$__rate_interval": "15s", "$__interval": "5s", "$__range": "5m"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10)


def _job_names() -> list[str]:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    return [job["job_name"] for job in config["scrape_configs"]]


def _substitute(expr: str) -> str:
    for name, value in GRAFANA_VARS.items():
        expr = expr.replace(name, value)
    assert not re.search(r"\$\w", expr), f"unsubstituted dashboard variable in {expr}"
    return expr


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`neikong serve --simulate` and a Prometheus scraping it; yields (API base URL, serve
    log). Both processes are stopped at the end, also on failure."""
    prometheus = require_tool("prometheus")
    serve_port, prom_port = _free_port(), _free_port()
    start = (datetime.now(UTC) - timedelta(days=60)).strftime("%Y-%m-%d")
    serve_log = tmp_path / "serve.log"
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES_FILE)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{serve_port}"]}]}
            for job in _job_names()
        ],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    procs: list[subprocess.Popen[bytes]] = []
    with serve_log.open("wb") as log, (tmp_path / "prometheus.log").open("wb") as prom_log:
        try:
            procs.append(
                subprocess.Popen(
                    [
                        *NEIKONG,
                        "serve",
                        "--ledger",
                        str(tmp_path / "ledger"),
                        "--simulate",
                        "300",
                        "--anomaly-rate",
                        "0.05",
                        "--sim-start",
                        start,
                        "--interval",
                        "0.5",
                        "--metrics-port",
                        str(serve_port),
                    ],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
            procs.append(
                subprocess.Popen(
                    [
                        prometheus,
                        f"--config.file={config_path}",
                        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}",
                        "--log.level=warn",
                    ],
                    cwd=tmp_path,
                    stdout=prom_log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
            yield f"http://127.0.0.1:{prom_port}/api/v1", serve_log
            assert _stop(procs[0]) == 0, serve_log.read_text()
            assert "final snapshot at position" in serve_log.read_text()
        finally:
            for proc in reversed(procs):
                _stop(proc)


def _wait(what: str, check: Any, deadline: float, logs: Path) -> Any:
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:  # Prometheus not listening yet
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    pytest.fail(f"{what} not seen in time (last: {last!r}); serve log:\n{logs.read_text()[-3000:]}")


def test_red_warning_fires_and_every_dashboard_expression_returns_data(
    stack: tuple[str, Path],
) -> None:
    api, serve_log = stack
    deadline = time.monotonic() + DEADLINE_S

    def red_firing() -> list[dict[str, Any]]:
        alerts = _get(f"{api}/alerts")["data"]["alerts"]
        return [
            a
            for a in alerts
            if a["labels"]["alertname"] == "NeikongRedWarningOpen" and a["state"] == "firing"
        ]

    firing = _wait("NeikongRedWarningOpen firing", red_firing, deadline, serve_log)
    assert {a["labels"]["severity"] for a in firing} == {"page"}
    assert all(a["labels"]["grade"] in {"1", "2", "3", "4", "cross"} for a in firing)

    def rules_healthy() -> bool:
        groups = _get(f"{api}/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] == "err"]
        assert not bad, bad
        return bool(rules) and all(r["health"] == "ok" for r in rules)

    _wait("every rule evaluated", rules_healthy, deadline, serve_log)

    exprs = dashboard_exprs()
    assert exprs
    empty: dict[str, Any] = {}
    for name, title, expr in exprs:
        query = _substitute(expr)

        def has_data(query: str = query) -> bool:
            answer = _get(f"{api}/query?" + urllib.parse.urlencode({"query": query}))
            assert answer["status"] == "success", answer
            return bool(answer["data"]["result"])

        try:
            _wait(f"{name} / {title}", has_data, deadline, serve_log)
        except pytest.fail.Exception:
            empty[f"{name} / {title}"] = query
    assert not empty, f"dashboard expressions without data: {json.dumps(empty, indent=1)}"
