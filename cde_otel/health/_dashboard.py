"""Reads the provisioned Grafana dashboard so tests can check (and run) its PromQL.

    from cde_otel.health._dashboard import dashboard_queries

    for expr in dashboard_queries(DASHBOARD_PATH, require_data=True):
        ...  # run against Prometheus' /api/v1/query and expect a non-empty result

Grafana's interval variables are replaced by fixed durations so the expressions run
as-is against the Prometheus HTTP API.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DASHBOARD_PATH = Path(__file__).resolve().parents[2] / "collector-config" / "grafana" / "dashboards" / "cde-otel.json"

#: Grafana variables -> values usable in a plain Prometheus query.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}

#: Panels whose queries legitimately return nothing while no alert fires.
PANELS_EMPTY_WITHOUT_ALERTS = frozenset({"Firing alerts (history)", "Alerts firing now"})
#: Panels fed only by an instrumented MCP server (``mcp.server.*``): empty in a deployment without one.
PANELS_EMPTY_WITHOUT_MCP = frozenset(
    {
        "MCP requests by method, tool and outcome",
        "MCP tool call latency P95 by tool",
        "MCP sessions by client",
        "MCP session duration P50 / P95",
    }
)


def load_dashboard(path: str | os.PathLike[str] = DASHBOARD_PATH) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return dashboard


def prometheus_targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, raw expr) for every Prometheus target of every panel."""
    found: list[tuple[str, str]] = []
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            source = target.get("datasource") or panel.get("datasource") or {}
            if source.get("type") == "prometheus":
                found.append((panel["title"], target["expr"]))
    return found


def runnable(expr: str) -> str:
    """``expr`` with Grafana's interval variables replaced by fixed durations."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def dashboard_queries(
    path: str | os.PathLike[str] = DASHBOARD_PATH, *, require_data: bool = False, mcp: bool = False
) -> list[str]:
    """Every panel's PromQL, runnable against Prometheus.

    With ``require_data=True``, leaves out the alert panels that are empty while no
    alert fires (``PANELS_EMPTY_WITHOUT_ALERTS``) and, unless ``mcp``, the MCP panels
    (``PANELS_EMPTY_WITHOUT_MCP``); ``mcp=True`` alone: only the MCP panels.
    """
    empty = PANELS_EMPTY_WITHOUT_ALERTS | (frozenset() if mcp else PANELS_EMPTY_WITHOUT_MCP)
    return [
        runnable(expr)
        for title, expr in prometheus_targets(load_dashboard(path))
        if not (require_data and title in empty) and (not mcp or title in PANELS_EMPTY_WITHOUT_MCP)
    ]
