"""ops/grafana: provisioning, dashboard JSON, and every PromQL expression (dashboards and alert
rules) parses with promtool and names only metrics that ops/metrics.py or ops/ingest.py define."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from ops.metrics import NeikongMetrics
from tests.ops._monitoring import (
    GRAFANA_DIR,
    alert_rules,
    dashboard_exprs,
    dashboards,
    exposed_names,
    for_promtool,
    known_metric_names,
    metric_names,
    panels,
    promtool_parse_errors,
)

DATASOURCE_UID = "neikong-prometheus"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# -------------------------------------------------------------------------- provisioning


def test_dashboard_provider_is_a_read_only_file_provider() -> None:
    files = sorted((GRAFANA_DIR / "provisioning" / "dashboards").glob("*.yml"))
    assert files
    for path in files:
        doc = _yaml(path)
        assert doc["apiVersion"] == 1
        for provider in doc["providers"]:
            assert provider["type"] == "file"
            assert provider["allowUiUpdates"] is False
            assert provider["disableDeletion"] is True
            assert provider["options"]["path"].startswith("/")


def test_datasource_is_the_local_prometheus_the_dashboards_use() -> None:
    [path] = sorted((GRAFANA_DIR / "provisioning" / "datasources").glob("*.yml"))
    doc = _yaml(path)
    assert doc["apiVersion"] == 1
    [source] = doc["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == DATASOURCE_UID
    assert source["url"] == "http://127.0.0.1:9090"
    assert source["editable"] is False


# ------------------------------------------------------------------------------ dashboards


def test_dashboards_are_valid_grafana_json() -> None:
    boards = dashboards()
    assert set(boards) == {
        "neikong-ledger.json",
        "neikong-ingest.json",
        "neikong-detector.json",
        "neikong-warnings.json",
    }
    uids = [b["uid"] for b in boards.values()]
    titles = [b["title"] for b in boards.values()]
    assert len(set(uids)) == len(uids)
    assert len(set(titles)) == len(titles)
    for name, board in boards.items():
        assert board["uid"] == name.removesuffix(".json")
        assert len(board["uid"]) <= 40
        assert re.fullmatch(r"[A-Za-z0-9_-]+", board["uid"])
        assert isinstance(board["schemaVersion"], int)
        assert board["schemaVersion"] >= 36
        assert board["editable"] is False  # provisioned read-only
        assert "neikong" in board["tags"]
        assert "id" not in board or board["id"] is None  # Grafana assigns it
        ids = [p["id"] for p in panels(board)]
        assert len(set(ids)) == len(ids), name
        for panel in panels(board):
            assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), (name, panel["title"])
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, (name, panel["title"])
            if panel["type"] == "row":
                continue
            assert panel["type"] in {"timeseries", "stat", "bargauge", "table", "gauge"}
            assert panel["title"].strip()
            assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}
            assert panel["targets"], (name, panel["title"])
            refs = [t["refId"] for t in panel["targets"]]
            assert len(set(refs)) == len(refs)
            for target in panel["targets"]:
                assert target["expr"].strip()
                assert target["datasource"]["uid"] == DATASOURCE_UID


def test_panels_the_domain_asks_for_exist() -> None:
    titles = {
        (name, p["title"])
        for name, board in dashboards().items()
        for p in panels(board)
        if p["type"] != "row"
    }

    def has(board: str, *words: str) -> bool:
        return any(b == board and all(w.lower() in t.lower() for w in words) for b, t in titles)

    assert has("neikong-warnings.json", "open warnings by grade and level")
    assert has("neikong-warnings.json", "open red warnings")
    assert has("neikong-warnings.json", "overdue rectifications")
    assert has("neikong-warnings.json", "overdue", "reports")
    assert has("neikong-detector.json", "lag")
    assert has("neikong-detector.json", "event -> warning latency", "p99")
    assert has("neikong-ledger.json", "rejected commands by rule")
    assert has("neikong-ingest.json", "dead letters by reason")


def test_every_metric_family_is_on_a_dashboard() -> None:
    registry = CollectorRegistry()
    NeikongMetrics(registry)
    used = set().union(*(metric_names(e) for _, _, e in dashboard_exprs()))
    for family in registry.collect():
        assert exposed_names([family]) & used, f"{family.name} is on no dashboard"


# ------------------------------------------------------------------- PromQL, everywhere


def _all_exprs() -> list[tuple[str, str]]:
    """(where, expr) for every dashboard target and every alert rule."""
    out = [(f"{d} / {t}", e) for d, t, e in dashboard_exprs()]
    out += [(f"rule {r['alert']}", r["expr"]) for r in alert_rules()]
    return out


def test_expressions_only_name_defined_metrics() -> None:
    known = known_metric_names()
    unknown = {
        where: sorted(metric_names(expr) - known)
        for where, expr in _all_exprs()
        if metric_names(expr) - known
    }
    assert unknown == {}
    for where, expr in _all_exprs():
        assert metric_names(expr), f"{where}: selects no metric"
        assert "__name__" not in expr, where


def test_every_expression_parses_with_promtool(tmp_path: Path) -> None:
    exprs = [for_promtool(e) for _, e in _all_exprs()]
    errors = promtool_parse_errors(exprs, tmp_path)
    assert errors is None, errors


# --------------------------------------------------- the checks themselves can fail


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        (
            'sum by (grade, le) (rate(neikong_x_bucket{level="red", a=~"b|c"}[$__rate_interval]))',
            {"neikong_x_bucket"},
        ),
        ("a * on (rule_id) group_left (grade) topk by (rule_id) (1, b)", {"a", "b"}),
        ("time() - c offset 5m > 3600 and on () (hour() >= 1)", {"c"}),
        ('(sum(rate(d[30m])) or vector(0)) == 1e3 unless e{x="sum(f)"}', {"d", "e"}),
    ],
)
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_an_undefined_metric_is_caught() -> None:
    assert metric_names("rate(neikong_detector_warnings_total[5m])") - known_metric_names() == {
        "neikong_detector_warnings_total"
    }


def test_promtool_rejects_a_broken_expression(tmp_path: Path) -> None:
    errors = promtool_parse_errors(["sum(rate(up[5m])", "up"], tmp_path)
    assert errors is not None
    assert '"neikong:parse_check:0": could not parse expression' in errors
    assert "neikong:parse_check:1" not in errors
