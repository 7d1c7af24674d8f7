"""The provisioned Grafana dashboard: data sources, PromQL targets that parse, required panels."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cde_otel.health._dashboard import (
    DASHBOARD_PATH,
    PANELS_EMPTY_WITHOUT_ALERTS,
    PANELS_EMPTY_WITHOUT_MCP,
    dashboard_queries,
    load_dashboard,
    prometheus_targets,
)

Promtool = Callable[..., subprocess.CompletedProcess[str]]
DATASOURCE_UIDS = {"prometheus": "prometheus", "jaeger": "jaeger"}  # provisioning/datasources/datasources.yml


def test_every_panel_has_a_provisioned_datasource_and_targets() -> None:
    dashboard = load_dashboard()

    assert dashboard["uid"] == "cde-otel"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        source = panel["datasource"]
        assert DATASOURCE_UIDS.get(source["type"]) == source["uid"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == source, panel["title"]
            if source["type"] == "prometheus":
                assert target["expr"].strip(), panel["title"]


def test_dashboard_covers_the_required_views() -> None:
    exprs = " ".join(expr for _, expr in prometheus_targets(load_dashboard()))
    types = {panel["datasource"]["type"] for panel in load_dashboard()["panels"]}

    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (cde_operation) (rate(cde_operation_duration_seconds[" in exprs
    assert "sum by (cde_error_code, error_type) (rate(cde_errors_total[" in exprs
    assert "mcp_server_operation_duration_seconds" in exprs and "mcp_server_session_duration_seconds" in exprs
    assert "histogram_count(rate(cde_operation_duration_seconds[" in exprs  # throughput
    assert "cde_features_active" in exprs
    assert 'ALERTS{alertstate="firing"}' in exprs
    assert "jaeger" in types


def test_dashboard_queries_are_runnable_promql(tmp_path: Path, promtool: Promtool) -> None:
    queries = dashboard_queries(DASHBOARD_PATH)
    assert len(queries) == len(prometheus_targets(load_dashboard()))
    assert not any("$" in q for q in queries)  # Grafana variables substituted
    # promtool parses each expression as a recording rule: a syntax error fails the check.
    rules = tmp_path / "dashboard-queries.yml"
    body = "".join(f"      - record: dashboard:query{i}\n        expr: '{q}'\n" for i, q in enumerate(queries))
    rules.write_text(f"groups:\n  - name: dashboard\n    rules:\n{body}", encoding="utf-8")

    result = promtool("check", "rules", str(rules))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_require_data_leaves_out_only_the_alert_panels_and_the_mcp_ones() -> None:
    titles = {title for title, _ in prometheus_targets(load_dashboard())}
    assert titles >= PANELS_EMPTY_WITHOUT_ALERTS | PANELS_EMPTY_WITHOUT_MCP
    every, needed = dashboard_queries(), dashboard_queries(require_data=True)

    assert set(needed) < set(every)
    assert not any(re.fullmatch(r'.*ALERTS\{alertstate="firing"\}\)?', q) for q in needed)
    assert not any("mcp_server_" in q for q in needed)
    mcp = dashboard_queries(require_data=True, mcp=True)
    assert mcp and all("mcp_server_" in q for q in mcp)  # the MCP end-to-end test runs these


@pytest.mark.parametrize("broken", ["sum(rate(cde_errors_total[5m])", "histogram_quantile(0.5 cde_x)"])
def test_the_promql_check_rejects_broken_expressions(tmp_path: Path, broken: str, promtool: Promtool) -> None:
    rules = tmp_path / "broken.yml"
    rules.write_text(f"groups:\n  - name: x\n    rules:\n      - record: x:y\n        expr: '{broken}'\n")

    assert promtool("check", "rules", str(rules)).returncode != 0
