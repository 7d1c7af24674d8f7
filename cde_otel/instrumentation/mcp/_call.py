"""One MCP request in flight: what its hooks have seen so far (:class:`MCPCall`), and which
request this context is serving (:data:`current_call`). Started and finished by
:class:`~cde_otel.instrumentation.mcp._telemetry.MCPTelemetry`."""

from __future__ import annotations

import contextvars
from typing import Any

from opentelemetry import trace


class MCPCall:
    """What one request has shown so far; finished by :meth:`MCPTelemetry.end`."""

    __slots__ = (
        "attrs",
        "exception",
        "known",
        "method",
        "metric_attrs",
        "name",
        "owned",
        "result",
        "span",
        "start_ns",
        "start_perf",
        "target",
        "token",
        "var_token",
    )

    def __init__(self, span: trace.Span, name: str, attrs: dict[str, Any], metric_attrs: dict[str, Any]) -> None:
        self.span = span
        self.name = name
        self.attrs = attrs
        self.metric_attrs = metric_attrs
        self.method = ""  # as the client sent it, capped
        self.target: str | None = None  # the tool or prompt name as sent, capped
        self.known = False  # the target was a registered name when the request began (names stay known)
        self.owned = False
        self.result: Any = None
        self.exception: BaseException | None = None
        self.start_ns = 0
        self.start_perf = 0.0
        self.token: object | None = None
        self.var_token: contextvars.Token[MCPCall | None] | None = None


#: The request being served in this context (hooks that only observe look it up here).
current_call: contextvars.ContextVar[MCPCall | None] = contextvars.ContextVar("cde_otel_mcp_call", default=None)
