"""Attribute and metric names of the MCP instrumentation, in one place.

The MCP, gen_ai, JSON-RPC, RPC, network and error names come from the OpenTelemetry semantic
conventions package; ``cde.*`` names are ours (the domain ones are shared with the operation
wrapper).
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROMPT_NAME,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_NAME,
)
from opentelemetry.semconv._incubating.attributes.jsonrpc_attributes import JSONRPC_REQUEST_ID
from opentelemetry.semconv._incubating.attributes.mcp_attributes import (
    MCP_METHOD_NAME,
    MCP_PROTOCOL_VERSION,
    MCP_RESOURCE_URI,
    MCP_SESSION_ID,
)
from opentelemetry.semconv._incubating.attributes.rpc_attributes import RPC_RESPONSE_STATUS_CODE
from opentelemetry.semconv._incubating.metrics.mcp_metrics import MCP_SERVER_OPERATION_DURATION
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.network_attributes import NETWORK_TRANSPORT

from cde_otel.instrumentation._wrapper import (
    ATTR_CORRELATION_ID,
    ATTR_FEATURE_ID,
    ATTR_FEATURE_PHASE,
    ATTR_OPERATION,
    ATTR_PROJECT_ID,
    ATTR_PROMPT_LENGTH,
)

__all__ = [
    "ATTR_CORRELATION_ID",
    "ATTR_FEATURE_ID",
    "ATTR_FEATURE_PHASE",
    "ATTR_OPERATION",
    "ATTR_PROJECT_ID",
    "ATTR_PROJECT_PATH",
    "ATTR_PROMPT_LENGTH",
    "ERROR_TYPE",
    "EXECUTE_TOOL",
    "GEN_AI_OPERATION_NAME",
    "GEN_AI_PROMPT_NAME",
    "GEN_AI_TOOL_CALL_ARGUMENTS",
    "GEN_AI_TOOL_CALL_RESULT",
    "GEN_AI_TOOL_NAME",
    "JSONRPC_REQUEST_ID",
    "MCP_METHOD_NAME",
    "MCP_PROTOCOL_VERSION",
    "MCP_RESOURCE_URI",
    "MCP_SERVER_OPERATION_DURATION",
    "MCP_SESSION_ID",
    "NETWORK_TRANSPORT",
    "RPC_RESPONSE_STATUS_CODE",
    "TOOL_ERROR",
    "WORK_ARGUMENTS",
]

ATTR_PROJECT_PATH: Final = "cde.project.path"

#: gen_ai.operation.name of a tools/call span.
EXECUTE_TOOL: Final = "execute_tool"
#: error.type the conventions give an ``isError`` tool result that carries no better code.
TOOL_ERROR: Final = "tool_error"

#: Tool arguments that identify the work, and the span attribute each becomes. Both the
#: snake_case of our tools and the upstream orchestrator and the camelCase some agents send.
WORK_ARGUMENTS: Final[dict[str, str]] = {
    "feature_id": ATTR_FEATURE_ID,
    "featureId": ATTR_FEATURE_ID,
    "project_id": ATTR_PROJECT_ID,
    "projectId": ATTR_PROJECT_ID,
    "project_path": ATTR_PROJECT_PATH,
    "projectPath": ATTR_PROJECT_PATH,
    "phase": ATTR_FEATURE_PHASE,
    "phase_id": ATTR_FEATURE_PHASE,
    "phaseId": ATTR_FEATURE_PHASE,
}
