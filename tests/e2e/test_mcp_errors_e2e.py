"""Failed MCP calls through the real pipeline: stdio server → OTLP → Collector → Jaeger + Prometheus.

The orchestrator fixture on fastmcp 2.13.0 (upstream's pin) is driven by the official client with
the failures an operator meets: a coded error in upstream's envelope, the same envelope wrapped by
the framework's output validation, a tool that raises, a tool name and a method the server does
not know. Jaeger finds each failed call by ``cde.error.code``; Prometheus holds the same
``error.type`` and ``cde.error.code`` on the duration histogram and ``cde.errors``, a bounded
``_OTHER`` for what the client made up, and the session with the client's name; the dashboard's
MCP panels have data.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from backends import Backends, poll_until
from mcp import types
from mcp.client.session import DEFAULT_CLIENT_INFO
from mcp.shared.exceptions import MCPError

from cde_otel.health._dashboard import dashboard_queries
from cde_otel.semconv import (
    ATTR_ERROR_CODE,
    ATTR_ERROR_TYPE,
    ATTR_GEN_AI_TOOL_NAME,
    ATTR_MCP_CLIENT_NAME,
    ATTR_RPC_RESPONSE_STATUS_CODE,
    OTHER_VALUE,
    TOOL_ERROR,
)

DEADLINE_S = 90.0
ServerCommand = Callable[[str], tuple[str, list[str], dict[str, str]]]
RunSession = Callable[..., Any]


@pytest.fixture(scope="module")
def failed_run(
    backends: Backends,
    tmp_path_factory: pytest.TempPathFactory,
    orchestrator_server: ServerCommand,
    run_session: RunSession,
) -> str:
    work = tmp_path_factory.mktemp("mcp-errors")
    (work / "project").mkdir()
    path = str(work / "project")
    service = f"cde-mcp-errors-{uuid.uuid4().hex[:8]}"

    async def scenario(session: Any) -> None:
        await session.list_tools()
        unknown = {"feature_id": "no-such-feature", "project_path": path}
        enveloped = await session.call_tool("cde_submitWork", {**unknown, "phase_id": "define", "results": {}})
        assert "E104" in enveloped.content[0].text
        assert (await session.call_tool("cde_getFeatureSummary", unknown)).is_error  # output validation wraps it
        assert (await session.call_tool("cde_getFeatureStatus", unknown)).is_error  # raises
        assert (await session.call_tool("made-up-tool", {})).is_error
        with pytest.raises(MCPError):
            await session.send_request(types.Request(method="cde/noSuchMethod", params=None), types.EmptyResult)

    command, args, extra = orchestrator_server("fastmcp_2_13")
    env = {
        "CDE_OTEL_ENABLED": "true",
        "OTEL_SERVICE_NAME": service,
        "OTEL_EXPORTER_OTLP_ENDPOINT": backends.otlp_http_endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        **extra,
    }
    run_session(command, args, env, work, scenario)
    return service


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span.get("tags", [])}


def test_jaeger_finds_failed_calls_by_their_cde_error_code(backends: Backends, failed_run: str) -> None:
    def coded() -> list[dict[str, Any]] | None:
        found = backends.jaeger_get("/api/traces", service=failed_run, tags=json.dumps({ATTR_ERROR_CODE: "E104"}))
        roots = [s for t in found.get("data") or [] for s in t["spans"] if not s.get("references")]
        return roots if len(roots) == 2 else None

    roots = poll_until(coded, timeout=DEADLINE_S, what="the two E104 tool calls in Jaeger")
    by_tool = {_tags(s)[ATTR_GEN_AI_TOOL_NAME]: s for s in roots}
    assert set(by_tool) == {"cde_submitWork", "cde_getFeatureSummary"}  # the envelope, and the wrapped one
    for tool, span in by_tool.items():
        tags = _tags(span)
        assert span["operationName"] == f"tools/call {tool}"
        assert tags[ATTR_ERROR_TYPE] == TOOL_ERROR and tags["otel.status_code"] == "ERROR", tool
        assert tags[ATTR_MCP_CLIENT_NAME] == DEFAULT_CLIENT_INFO.name, tool


def test_prometheus_has_the_same_codes_and_only_bounded_names(backends: Backends, failed_run: str) -> None:
    service = f'service_name="{failed_run}"'

    def errors() -> list[dict[str, Any]] | None:
        found = backends.prom_query(
            f"sum by (cde_operation, error_type, cde_error_code) (cde_errors_total{{{service}}})"
        )
        return found if len(found) == 5 else None

    counted = {
        (r["metric"].get("cde_operation"), r["metric"].get("error_type"), r["metric"].get("cde_error_code"))
        for r in poll_until(errors, timeout=DEADLINE_S, what="five kinds of failure in cde_errors_total")
    }
    assert counted == {
        ("tools/call cde_submitWork", TOOL_ERROR, "E104"),
        ("tools/call cde_getFeatureSummary", TOOL_ERROR, "E104"),
        ("tools/call cde_getFeatureStatus", TOOL_ERROR, None),
        ("tools/call", TOOL_ERROR, None),  # made-up-tool: no name of its own
        (OTHER_VALUE, "-32602", None),  # mcp 1.x rejects an unknown method as invalid params
    }
    selector = f"mcp_server_operation_duration_seconds{{{service}}}"
    tools = backends.prom_query(f"sum by (gen_ai_tool_name, cde_error_code) (histogram_count({selector}))")
    assert (OTHER_VALUE, None) in {
        (r["metric"].get("gen_ai_tool_name"), r["metric"].get("cde_error_code")) for r in tools
    }
    assert ("cde_getFeatureSummary", "E104") in {
        (r["metric"].get("gen_ai_tool_name"), r["metric"].get("cde_error_code")) for r in tools
    }
    rpc = backends.prom_query(f"histogram_count(sum by (rpc_response_status_code) ({selector}))")
    assert {r["metric"].get(ATTR_RPC_RESPONSE_STATUS_CODE.replace(".", "_")) for r in rpc} >= {"-32602"}

    def session() -> list[dict[str, Any]] | None:
        found = backends.prom_query(
            f"histogram_count(sum by (cde_mcp_client_name) (mcp_server_session_duration_seconds{{{service}}}))"
        )
        return found or None

    [ended] = poll_until(session, timeout=DEADLINE_S, what="the session's duration in Prometheus")
    assert ended["metric"]["cde_mcp_client_name"] == DEFAULT_CLIENT_INFO.name and float(ended["value"][1]) == 1


def test_the_dashboards_mcp_panels_have_data(backends: Backends, failed_run: str) -> None:
    queries = dashboard_queries(require_data=True, mcp=True)
    assert len(queries) >= 4
    for expr in queries:
        assert poll_until(partial(backends.prom_query, expr), timeout=DEADLINE_S, what=f"data for {expr}"), expr
