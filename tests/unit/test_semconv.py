"""The wire contract: every name cde-otel emits, pinned once, and the consumers that query them.

Code, tests and benchmarks import the names from :mod:`cde_otel.semconv`; this test is the
one place that spells them out, so renaming one is a deliberate, visible contract change
(dashboards, alert rules and users' queries depend on them).
"""

from __future__ import annotations

import re
from pathlib import Path

from opentelemetry.semconv._incubating.attributes import (
    gen_ai_attributes,
    jsonrpc_attributes,
    mcp_attributes,
    rpc_attributes,
)
from opentelemetry.semconv._incubating.metrics import mcp_metrics
from opentelemetry.semconv.attributes import client_attributes, code_attributes, error_attributes, network_attributes

from cde_otel import semconv

ROOT = Path(__file__).resolve().parents[2]
CONSUMERS = [
    ROOT / "collector-config" / "rules" / "cde-alerts.yml",
    ROOT / "collector-config" / "grafana" / "dashboards" / "cde-otel.json",
]

PINNED = {
    "METRIC_OPERATION_DURATION": "cde.operation.duration",
    "METRIC_ERRORS": "cde.errors",
    "METRIC_FEATURES_ACTIVE": "cde.features.active",
    "METRIC_RETRY_ATTEMPTS": "cde.retry.attempts",
    "METRIC_CIRCUIT_BREAKER_STATE": "cde.circuit_breaker.state",
    "METRIC_PROCESS_MEMORY_USAGE": "cde.process.memory.usage",
    "METRIC_SYSTEM_MEMORY_UTILIZATION": "cde.system.memory.utilization",
    "METRIC_DISK_FREE": "cde.disk.free",
    "ATTR_OPERATION": "cde.operation",
    "ATTR_OUTCOME": "cde.outcome",
    "ATTR_PROJECT_ID": "cde.project.id",
    "ATTR_FEATURE_ID": "cde.feature.id",
    "ATTR_FEATURE_PHASE": "cde.feature.phase",
    "ATTR_FEATURE_NEXT_PHASE": "cde.feature.next_phase",
    "ATTR_CORRELATION_ID": "cde.correlation_id",
    "CORRELATION_KEY": "cde.correlation_id",
    "ATTR_ERROR_TYPE": "error.type",
    "ATTR_CODE_FUNCTION_NAME": "code.function.name",
    "EVENT_RETRY": "cde.retry",
    "EVENT_BREAKER_STATE_CHANGE": "cde.circuit_breaker.state_change",
    "ATTR_PROJECT_PATH": "cde.project.path",
    "MCP_SCOPE_NAME": "cde_otel.mcp",
    # The MCP conventions' error.type of an isError tool result (a value in their text, no constant).
    "TOOL_ERROR": "tool_error",
    "ATTR_ERROR_CODE": "cde.error.code",
    "ATTR_MCP_CLIENT_NAME": "cde.mcp.client.name",
    "ATTR_MCP_CLIENT_VERSION": "cde.mcp.client.version",
}


def test_the_names_on_the_wire_are_pinned() -> None:
    assert {name: getattr(semconv, name) for name in PINNED} == PINNED


def test_standard_names_are_the_opentelemetry_semantic_conventions() -> None:
    assert semconv.ATTR_ERROR_TYPE == error_attributes.ERROR_TYPE
    assert semconv.ATTR_CODE_FUNCTION_NAME == code_attributes.CODE_FUNCTION_NAME


def test_mcp_names_are_the_opentelemetry_semantic_conventions() -> None:
    # semconv.py spells them out (it imports nothing); the conventions package is the reference.
    ours_and_theirs = [
        (semconv.METRIC_MCP_SERVER_OPERATION_DURATION, mcp_metrics.MCP_SERVER_OPERATION_DURATION),
        (semconv.ATTR_MCP_METHOD_NAME, mcp_attributes.MCP_METHOD_NAME),
        (semconv.ATTR_MCP_PROTOCOL_VERSION, mcp_attributes.MCP_PROTOCOL_VERSION),
        (semconv.ATTR_MCP_RESOURCE_URI, mcp_attributes.MCP_RESOURCE_URI),
        (semconv.ATTR_MCP_SESSION_ID, mcp_attributes.MCP_SESSION_ID),
        (semconv.ATTR_GEN_AI_OPERATION_NAME, gen_ai_attributes.GEN_AI_OPERATION_NAME),
        (semconv.ATTR_GEN_AI_TOOL_NAME, gen_ai_attributes.GEN_AI_TOOL_NAME),
        (semconv.ATTR_GEN_AI_PROMPT_NAME, gen_ai_attributes.GEN_AI_PROMPT_NAME),
        (semconv.ATTR_GEN_AI_TOOL_CALL_ARGUMENTS, gen_ai_attributes.GEN_AI_TOOL_CALL_ARGUMENTS),
        (semconv.ATTR_GEN_AI_TOOL_CALL_RESULT, gen_ai_attributes.GEN_AI_TOOL_CALL_RESULT),
        (semconv.ATTR_JSONRPC_REQUEST_ID, jsonrpc_attributes.JSONRPC_REQUEST_ID),
        (semconv.ATTR_RPC_RESPONSE_STATUS_CODE, rpc_attributes.RPC_RESPONSE_STATUS_CODE),
        (semconv.ATTR_NETWORK_TRANSPORT, network_attributes.NETWORK_TRANSPORT),
        (semconv.EXECUTE_TOOL, gen_ai_attributes.GenAiOperationNameValues.EXECUTE_TOOL.value),
        (semconv.NETWORK_TRANSPORT_PIPE, network_attributes.NetworkTransportValues.PIPE.value),
        (semconv.NETWORK_TRANSPORT_TCP, network_attributes.NetworkTransportValues.TCP.value),
        (semconv.METRIC_MCP_SERVER_SESSION_DURATION, mcp_metrics.MCP_SERVER_SESSION_DURATION),
        (semconv.ATTR_NETWORK_PROTOCOL_NAME, network_attributes.NETWORK_PROTOCOL_NAME),
        (semconv.ATTR_NETWORK_PROTOCOL_VERSION, network_attributes.NETWORK_PROTOCOL_VERSION),
        (semconv.ATTR_CLIENT_ADDRESS, client_attributes.CLIENT_ADDRESS),
        (semconv.ATTR_CLIENT_PORT, client_attributes.CLIENT_PORT),
        (semconv.OTHER_VALUE, error_attributes.ErrorTypeValues.OTHER.value),
    ]
    assert [ours for ours, _ in ours_and_theirs] == [theirs for _, theirs in ours_and_theirs]


def test_work_arguments_become_our_domain_attributes() -> None:
    assert dict(semconv.WORK_ARGUMENTS) == {
        "feature_id": "cde.feature.id",
        "featureId": "cde.feature.id",
        "project_id": "cde.project.id",
        "projectId": "cde.project.id",
        "project_path": "cde.project.path",
        "projectPath": "cde.project.path",
        "phase": "cde.feature.phase",
        "phase_id": "cde.feature.phase",
        "phaseId": "cde.feature.phase",
    }


def test_every_metric_the_dashboard_and_alert_rules_query_is_one_we_emit() -> None:
    # Prometheus names: dots -> underscores, plus the unit suffix and the counter's _total.
    emitted = {
        semconv.METRIC_OPERATION_DURATION: "_seconds",
        semconv.METRIC_ERRORS: "_total",
        semconv.METRIC_FEATURES_ACTIVE: "",
        semconv.METRIC_DISK_FREE: "_bytes",
        semconv.METRIC_PROCESS_MEMORY_USAGE: "_bytes",
        semconv.METRIC_SYSTEM_MEMORY_UTILIZATION: "_ratio",
        semconv.METRIC_RETRY_ATTEMPTS: "_total",
        semconv.METRIC_CIRCUIT_BREAKER_STATE: "",
        semconv.METRIC_MCP_SERVER_OPERATION_DURATION: "_seconds",
        semconv.METRIC_MCP_SERVER_SESSION_DURATION: "_seconds",
    }
    prometheus = {name.replace(".", "_") + suffix for name, suffix in emitted.items()}
    labels = {
        name.replace(".", "_")
        for name in (
            semconv.ATTR_OPERATION,
            semconv.ATTR_OUTCOME,
            semconv.ATTR_ERROR_CODE,
            semconv.ATTR_MCP_CLIENT_NAME,
            semconv.ATTR_MCP_CLIENT_VERSION,
            semconv.ATTR_MCP_METHOD_NAME,
        )
    }
    recorded = ("cde_operation_error", "mcp_tool_call_error")  # the rules' own recorded series
    for consumer in CONSUMERS:
        text = consumer.read_text(encoding="utf-8")
        queried = {m for m in re.findall(r"\b(?:cde|mcp)_[a-z_]+", text) if not m.startswith(recorded)}
        series = {m.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum") for m in queried}
        assert series - labels <= prometheus, (consumer.name, sorted(series - labels - prometheus))
        assert "cde_operation_duration_seconds" in series


def test_classic_boundaries_cover_10_microseconds_to_a_minute() -> None:
    bounds = semconv.CLASSIC_BOUNDARIES_S
    assert len(bounds) == 110 and bounds == tuple(sorted(bounds))
    assert bounds[0] == 1e-5 and bounds[-1] == 60.0
