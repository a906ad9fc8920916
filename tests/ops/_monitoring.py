"""Shared helpers of the monitoring-config tests: the real promtool/amtool, PromQL metric names.

The tools come from Debian's `prometheus` and `prometheus-alertmanager` packages (.ci/run
installs them). Missing locally: the test skips; missing under CI=1: the test fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "ops" / "prometheus"
ALERTMANAGER_DIR = ROOT / "ops" / "alertmanager"
GRAFANA_DIR = ROOT / "ops" / "grafana"
RULES_FILE = PROMETHEUS_DIR / "neikong.rules.yml"
RUNBOOKS_DIR = ROOT / "docs" / "runbooks"


def require_tool(name: str) -> str:
    """Path of a command-line tool; skip without it locally, fail without it in CI."""
    path = shutil.which(name)
    if path is None:
        package = "prometheus-alertmanager" if name in {"amtool", "alertmanager"} else "prometheus"
        message = f"{name} not found (Debian: apt-get install -y --no-install-recommends {package})"
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide {name}: {message}; see .ci/run")
        pytest.skip(message)
    return path


def run(
    cmd: list[str], cwd: Path | None = None, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )


# ------------------------------------------------------------------------- metric names


def exposed_names(families: Iterable[Metric]) -> set[str]:
    """Every series name the families expose (with or without children yet)."""
    names: set[str] = set()
    for family in families:
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "sum", "count", "created")}
        elif family.type == "summary":
            names |= {family.name, f"{family.name}_sum", f"{family.name}_count"}
        else:
            names.add(family.name)
    return names


def known_metric_names() -> set[str]:
    """Names an expression may use: ops/metrics.py, the ingest metrics of ops/ingest.py, `up`."""
    from ops.ingest import IngestMetrics
    from ops.metrics import NeikongMetrics

    neikong, ingest = CollectorRegistry(), CollectorRegistry()
    NeikongMetrics(neikong)
    IngestMetrics(ingest)
    return exposed_names(neikong.collect()) | exposed_names(ingest.collect()) | {"up"}


_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "atan2",
    "inf",
    "nan",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_TOKEN = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, keywords or labels)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, subqueries
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    names = set()
    for m in _TOKEN.finditer(text):
        token = m.group(0)
        if token[0].isdigit() or token.lower() in _KEYWORDS:
            continue
        if re.match(r"\s*\(", text[m.end() :]):
            continue  # a function or an aggregation
        names.add(token)
    return names


def for_promtool(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced, so promtool can parse it."""
    expr = re.sub(r"\$__(?:rate_interval|interval|range)\b", "5m", expr)
    return re.sub(r"\$\{?\w+\}?", "x", expr)


def promtool_parse_errors(exprs: list[str], tmp_path: Path) -> str | None:
    """Parse every expression with `promtool check rules` (one recording rule each); the
    output when any fails, else None."""
    promtool = require_tool("promtool")
    rules = [{"record": f"neikong:parse_check:{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "parse-check.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "parse-check", "rules": rules}]}))
    result = run([promtool, "check", "rules", str(path)])
    if result.returncode == 0:
        return None
    return result.stdout + result.stderr


# ------------------------------------------------------------------- rules and dashboards


def load_rules() -> dict[str, Any]:
    return yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in load_rules()["groups"] for r in g["rules"] if "alert" in r]


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        p.name: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
    }


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) of every PromQL target."""
    out = []
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                out.append((name, panel.get("title", ""), target["expr"]))
    return out
