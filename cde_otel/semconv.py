"""Every name cde-otel puts on the wire: metrics, attributes, span events, the correlation key.

One definition each, imported by every layer (instrumentation, resilience, health, the
CLI, tests and benchmarks), so a dashboard query, an alert rule and the code that emits
the data can never drift apart::

    from cde_otel import semconv

    semconv.METRIC_OPERATION_DURATION   # "cde.operation.duration" (seconds)
    semconv.ATTR_OPERATION              # "cde.operation", e.g. "Project.start_feature"

Names follow the OpenTelemetry semantic conventions where one exists (``error.type``,
``code.function.name``); ``cde.*`` names are only for what is ours. In Prometheus the dots
become underscores and units become suffixes (``cde_operation_duration_seconds``).

The MCP section holds what the MCP server instrumentation (:mod:`cde_otel.instrumentation.mcp`)
emits: the conventions' ``mcp.*``, ``gen_ai.*``, ``jsonrpc.*``, ``rpc.*`` and ``network.*`` names
(spelled out here, checked against ``opentelemetry-semantic-conventions`` by the tests, so this
module needs nothing installed) and which tool arguments become ``cde.*`` attributes.

Also here: the classic histogram boundaries of the duration histograms, used as the
instruments' advisory boundaries and by ``CDE_OTEL_HISTOGRAM=classic``.

Pure standard library, imports nothing of ours: the lowest layer of the package.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

#: Instrumentation scope (tracer and meter name) of everything cde-otel records.
SCOPE_NAME = "cde_otel"
#: Scope of the process and host gauges.
SYSTEM_SCOPE_NAME = "cde_otel.system"
#: Scope of the MCP server instrumentation.
MCP_SCOPE_NAME = "cde_otel.mcp"
#: Semantic-conventions version the attribute names follow.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"

# -- metrics ------------------------------------------------------------------------------
#: Histogram (s) of every instrumented operation; attributes: operation, outcome, error.type, cde.error.code.
METRIC_OPERATION_DURATION = "cde.operation.duration"
#: Counter of failed operations; attributes: error.type (the conventions' value), cde.error.code, operation.
METRIC_ERRORS = "cde.errors"
#: Counter of failures cde-otel swallowed inside its own wrappers and hooks; attribute: the site.
METRIC_INSTRUMENTATION_FAILURES = "cde.instrumentation.failures"
#: Gauge of features started and neither completed nor failed.
METRIC_FEATURES_ACTIVE = "cde.features.active"
#: Counter of re-attempts of transiently failing operations; attributes: operation, error.type, cde.error.code.
METRIC_RETRY_ATTEMPTS = "cde.retry.attempts"
#: Gauge of every live circuit breaker (0 closed, 1 half_open, 2 open); attribute: breaker name.
METRIC_CIRCUIT_BREAKER_STATE = "cde.circuit_breaker.state"
#: Values of :data:`METRIC_CIRCUIT_BREAKER_STATE` per breaker state.
BREAKER_STATE_VALUES: Mapping[str, int] = MappingProxyType({"closed": 0, "half_open": 1, "open": 2})
#: Gauges the alert rules read.
METRIC_PROCESS_MEMORY_USAGE = "cde.process.memory.usage"
METRIC_SYSTEM_MEMORY_UTILIZATION = "cde.system.memory.utilization"
METRIC_DISK_FREE = "cde.disk.free"

# -- attributes ---------------------------------------------------------------------------
ATTR_OPERATION = "cde.operation"
ATTR_INSTRUMENTATION_SITE = "cde.instrumentation.site"
ATTR_OUTCOME = "cde.outcome"
ATTR_PROJECT_ID = "cde.project.id"
ATTR_FEATURE_ID = "cde.feature.id"
ATTR_FEATURE_PHASE = "cde.feature.phase"
ATTR_FEATURE_NEXT_PHASE = "cde.feature.next_phase"
ATTR_ERROR_RECOVERABLE = "cde.error.recoverable"
#: Recorded only with ``CDE_OTEL_CAPTURE_CONTENT=true``; the length always.
ATTR_PROMPT = "cde.prompt"
ATTR_PROMPT_LENGTH = "cde.prompt.length"
ATTR_BREAKER_NAME = "cde.breaker.name"
ATTR_BREAKER_STATE = "cde.breaker.state"
ATTR_BREAKER_PREVIOUS_STATE = "cde.breaker.previous_state"
ATTR_RETRY_ATTEMPT = "cde.retry.attempt"
ATTR_RETRY_ATTEMPTS = "cde.retry.attempts"
ATTR_RETRY_WAIT_S = "cde.retry.wait_s"
ATTR_RETRY_ERRNO = "cde.retry.errno"
#: OpenTelemetry semantic conventions (``error.type``, ``code.function.name``).
ATTR_ERROR_TYPE = "error.type"
ATTR_CODE_FUNCTION_NAME = "code.function.name"

#: Values of :data:`ATTR_OUTCOME`.
OUTCOME_OK = "ok"
OUTCOME_ERROR = "error"
#: Values of :data:`ATTR_FEATURE_PHASE` and :data:`ATTR_FEATURE_NEXT_PHASE` (the CDE workflow's phases);
#: a requested next phase that is none of them is recorded as :data:`INVALID_PHASE`, never as given.
FEATURE_PHASES: tuple[str, ...] = ("define", "decompose", "design", "implement", "test", "review")
INVALID_PHASE = "invalid"

# -- stdlib log records -------------------------------------------------------------------
#: Attributes stamped on every stdlib ``logging.LogRecord`` while telemetry is on, for the host's own
#: format strings (``%(otelTraceID)s``): the names ``opentelemetry-instrumentation-logging`` uses.
RECORD_TRACE_ID = "otelTraceID"
RECORD_SPAN_ID = "otelSpanID"
RECORD_TRACE_SAMPLED = "otelTraceSampled"
RECORD_SERVICE_NAME = "otelServiceName"
#: Ours: the correlation id of the current operation (empty outside one).
RECORD_CORRELATION_ID = "cde_correlation_id"
RECORD_STAMPS: tuple[str, ...] = (
    RECORD_TRACE_ID,
    RECORD_SPAN_ID,
    RECORD_TRACE_SAMPLED,
    RECORD_SERVICE_NAME,
    RECORD_CORRELATION_ID,
)

#: The OpenTelemetry signals, in the order they are named everywhere (settings, files, start-up line).
SIGNALS = ("traces", "metrics", "logs")

# -- correlation --------------------------------------------------------------------------
#: Baggage key of the correlation id; spans carry it under the same attribute key.
CORRELATION_KEY = "cde.correlation_id"
ATTR_CORRELATION_ID = CORRELATION_KEY

# -- span events --------------------------------------------------------------------------
EVENT_RETRY = "cde.retry"
EVENT_RETRY_EXHAUSTED = "cde.retry.exhausted"
EVENT_BREAKER_STATE_CHANGE = "cde.circuit_breaker.state_change"
EVENT_BREAKER_REJECTED = "cde.circuit_breaker.rejected"

# -- log fields ---------------------------------------------------------------------------
#: Span attribute -> the key the same id has in a log line.
LOG_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        ATTR_PROJECT_ID: "project_id",
        ATTR_FEATURE_ID: "feature_id",
        ATTR_FEATURE_PHASE: "phase",
        ATTR_CORRELATION_ID: "correlation_id",
    }
)


# -- MCP servers (OpenTelemetry semantic conventions for MCP and gen_ai) -----------------------
#: Histogram (s) of every MCP request, receipt to response; attributes: the ``ATTR_MCP_*``
#: method/transport/version, the tool or prompt name, error type - never ids.
METRIC_MCP_SERVER_OPERATION_DURATION = "mcp.server.operation.duration"
ATTR_MCP_METHOD_NAME = "mcp.method.name"
ATTR_MCP_PROTOCOL_VERSION = "mcp.protocol.version"
ATTR_MCP_RESOURCE_URI = "mcp.resource.uri"
ATTR_MCP_SESSION_ID = "mcp.session.id"
ATTR_GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
ATTR_GEN_AI_TOOL_NAME = "gen_ai.tool.name"
ATTR_GEN_AI_PROMPT_NAME = "gen_ai.prompt.name"
#: Recorded only with ``CDE_OTEL_CAPTURE_CONTENT=true`` (redacted, truncated).
ATTR_GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
ATTR_GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"
ATTR_JSONRPC_REQUEST_ID = "jsonrpc.request.id"
ATTR_RPC_RESPONSE_STATUS_CODE = "rpc.response.status_code"
ATTR_NETWORK_TRANSPORT = "network.transport"
ATTR_NETWORK_PROTOCOL_NAME = "network.protocol.name"
ATTR_NETWORK_PROTOCOL_VERSION = "network.protocol.version"
ATTR_CLIENT_ADDRESS = "client.address"
ATTR_CLIENT_PORT = "client.port"
#: Ours: the project directory a tool call names.
ATTR_PROJECT_PATH = "cde.project.path"
#: Ours: the CDE code of a failed request or operation (``E104``; also the upstream orchestrator's
#: ``error_code``), beside the conventions' ``error.type`` (``tool_error``, a JSON-RPC code, an exception class).
ATTR_ERROR_CODE = "cde.error.code"
#: Ours (the MCP conventions name none): the calling client's ``clientInfo`` name and version,
#: on every span of its session and (bounded) on the session metric.
ATTR_MCP_CLIENT_NAME = "cde.mcp.client.name"
ATTR_MCP_CLIENT_VERSION = "cde.mcp.client.version"
#: Histogram (s) of MCP sessions, first request to the connection's close; attributes: transport,
#: protocol, the client's name and version (bounded).
METRIC_MCP_SERVER_SESSION_DURATION = "mcp.server.session.duration"
#: The conventions' advisory boundaries (s) of :data:`METRIC_MCP_SERVER_SESSION_DURATION`.
MCP_SESSION_BOUNDARIES_S: tuple[float, ...] = (
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
#: The conventions' fallback for a value outside a bounded set (an unregistered tool, an unknown method).
OTHER_VALUE = "_OTHER"

#: ``gen_ai.operation.name`` of a ``tools/call`` span.
EXECUTE_TOOL = "execute_tool"
#: ``error.type`` the conventions give an ``isError`` tool result that carries no better code.
TOOL_ERROR = "tool_error"
#: Values of :data:`ATTR_NETWORK_TRANSPORT`: stdio, HTTP.
NETWORK_TRANSPORT_PIPE = "pipe"
NETWORK_TRANSPORT_TCP = "tcp"
#: :data:`ATTR_NETWORK_PROTOCOL_NAME` of MCP over streamable HTTP (stdio has no application protocol).
NETWORK_PROTOCOL_HTTP = "http"

#: Tool arguments that identify the work, and the span attribute each becomes: the snake_case
#: of our tools and of the upstream orchestrator, and the camelCase some agents send.
WORK_ARGUMENTS: Mapping[str, str] = MappingProxyType(
    {
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
)


# -- histogram boundaries -----------------------------------------------------------------
def _log_spaced(lowest: float, highest: float, count: int) -> tuple[float, ...]:
    step = math.log(highest / lowest) / (count - 1)
    # Four significant digits keep the boundaries readable in `le` labels.
    return tuple(float(f"{lowest * math.exp(i * step):.4g}") for i in range(count))


#: 110 log-spaced boundaries (s) from 10 µs to 60 s, for :data:`METRIC_OPERATION_DURATION` and
#: :data:`METRIC_MCP_SERVER_OPERATION_DURATION`: ratio ~1.154, about 7 % worst-case quantile error.
CLASSIC_BOUNDARIES_S: tuple[float, ...] = _log_spaced(1e-5, 60.0, 110)
