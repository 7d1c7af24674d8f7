"""Every place the MCP instrumentation wraps, declared once.

A target is ``module:attribute`` (a method ``Class.method`` or a module function) and the hook
that wraps it. Targets of libraries that are not installed, or of versions that lack them, are
skipped: each family's set exists in exactly one major version (mcp 1.x, mcp 2.x, FastMCP 3+).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cde_otel.instrumentation.mcp import _hooks, _hooks_adopt, _hooks_own, _lifecycle
from cde_otel.instrumentation.mcp._telemetry import MCPTelemetry


@dataclass(frozen=True, slots=True)
class MCPTarget:
    module: str
    attribute: str  # "Class.method" or "function"
    hook: Callable[[MCPTelemetry], _hooks.Wrapper]

    @property
    def spec(self) -> str:
        return f"{self.module}:{self.attribute}"


MCP_TARGETS: tuple[MCPTarget, ...] = (
    # mcp 1.x (and everything built on it: its FastMCP, standalone fastmcp 2.x): our own span.
    MCPTarget("mcp.server.lowlevel.server", "Server._handle_request", _hooks_own.v1_handle_request),
    MCPTarget("mcp.server.lowlevel.server", "Server._make_error_result", _hooks_own.v1_make_error_result),
    MCPTarget("mcp.server.session", "ServerSession._received_request", _hooks_own.v1_received_request),
    MCPTarget("mcp.shared.session", "RequestResponder.respond", _hooks_own.v1_respond),
    MCPTarget("mcp.server.session", "ServerSession.__aexit__", _lifecycle.session_closed),
    MCPTarget("mcp.server.session", "ServerSession._receive_loop", _hooks_own.v1_receive_loop),
    MCPTarget("mcp.types", "ClientRequest.model_validate", _hooks_own.v1_validate_request),
    MCPTarget("mcp.server.streamable_http", "StreamableHTTPServerTransport.connect", _lifecycle.v1_http_connect),
    # The streamable HTTP transport (mcp 1.x and 2.x): each request's HTTP context, where it is received.
    MCPTarget(
        "mcp.server.streamable_http", "StreamableHTTPServerTransport._handle_post_request", _lifecycle.http_post_request
    ),
    # mcp 2.x: the SDK's OpenTelemetryMiddleware span, adopted.
    MCPTarget("mcp.server._otel", "OpenTelemetryMiddleware.__call__", _hooks_adopt.middleware_call),
    MCPTarget("mcp.server._otel", "otel_span", _hooks_adopt.adopt_span),
    MCPTarget("mcp.server.mcpserver.server", "MCPServer.call_tool", _hooks.capture_tool_error),
    MCPTarget("mcp.server.runner", "aclose_shielded", _lifecycle.connection_closed),
    # FastMCP 3+ (its own SERVER span at the middleware seam), adopted.
    MCPTarget("fastmcp.server.low_level", "FastMCPServerMiddleware.__call__", _hooks_adopt.middleware_call),
    MCPTarget("fastmcp.server.low_level", "seam_span", _hooks_adopt.adopt_span),
    MCPTarget("fastmcp.server.server", "FastMCP.call_tool", _hooks.capture_tool_error),
    MCPTarget("fastmcp.server.telemetry", "record_span_exception", _lifecycle.framework_exception),
)
