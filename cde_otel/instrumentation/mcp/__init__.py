"""OpenTelemetry instrumentation of MCP servers: one SERVER span per request, one trace per tool call.

Usage
-----

Nothing to change in the server: ``CDE_OTEL_ENABLED=true`` (or ``cde_otel.configure()``) turns
it on with the rest of cde-otel, and ``opentelemetry-instrument`` picks it up through the
``opentelemetry_instrumentor`` entry point named ``cde_mcp``. The server library may be
imported before or after: modules imported later are patched on import. Programmatically::

    from cde_otel.instrumentation.mcp import MCPInstrumentor

    MCPInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    ...
    MCPInstrumentor().uninstrument()

    # your own attributes, contrib style (see MCPInstrumentor):
    MCPInstrumentor().instrument(request_hook=lambda span, method, params: ..., response_hook=None)

Covered: the official ``mcp`` SDK 1.x low-level server (so its FastMCP and standalone
``fastmcp`` 2.x, e.g. the CDE orchestrator's ``fastmcp==2.13.0``), which emit no spans: the
instrumentation creates them; the ``mcp`` SDK 2.x (low-level ``Server`` and ``MCPServer``) and
FastMCP 3+, which emit MCP spans themselves: there it adds no second span but enriches
theirs. The places wrapped are listed in :mod:`cde_otel.instrumentation.mcp._targets`.

What a request gets, following the OpenTelemetry semantic conventions for MCP:

* a SERVER span ``{mcp.method.name} {target}`` (``tools/call cde_submitWork``, ``tools/list``,
  ``initialize``, ``resources/read``, ``prompts/get review``...) with ``mcp.method.name``,
  ``jsonrpc.request.id``, ``network.transport`` (``pipe`` for stdio, ``tcp`` for HTTP),
  ``mcp.protocol.version``, ``mcp.session.id`` (HTTP), ``mcp.resource.uri``, and for a tool call
  ``gen_ai.tool.name`` and ``gen_ai.operation.name=execute_tool``;
* the client's trace context from ``params._meta`` (``traceparent``, ``tracestate``,
  ``baggage``) as parent, so the span joins the agent's trace;
* one correlation id for the whole call, put in the context (baggage ``cde.correlation_id``)
  so every span and log line inside carries it: the client's (``_meta`` key or baggage
  ``cde.correlation_id``), else the span's trace id;
* the arguments that identify the work as attributes - ``feature_id``, ``project_id``,
  ``project_path``, ``phase``/``phase_id`` become ``cde.feature.id``, ``cde.project.id``,
  ``cde.project.path``, ``cde.feature.phase`` - so ``cde.feature.id=<id>`` finds every tool
  call of a feature. Free text never: a prompt's length only (``cde.prompt.length``); the
  redacted arguments and the result (``gen_ai.tool.call.arguments``/``.result``) only with
  ``CDE_OTEL_CAPTURE_CONTENT=true``;
* a failed call - an exception, a JSON-RPC error, or a tool result with ``isError`` - is status
  ERROR with the conventions' ``error.type`` (the JSON-RPC code, ``tool_error`` for an ``isError``
  result, or the exception class) and ``cde.error.code`` = the CDE code when there is one (from the exception
  chain, from an ``ErrorFormatter.to_json`` payload, or from the upstream orchestrator's
  ``{"status": "error", "error_code": ...}`` envelope); counted in ``cde.errors``;
* a record in the ``mcp.server.operation.duration`` histogram (seconds; for spans we create,
  exactly the span's duration) by method, tool or prompt, transport and error type.

A failure inside the instrumentation is swallowed, logged at debug level and counted
(``cde.instrumentation.failures``); the server's
requests and responses are never changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cde_otel.instrumentation._base import HookedInstrumentor, UserHooks, Wrapper
from cde_otel.instrumentation._instruments import duration_histogram, errors_counter, scope_instruments
from cde_otel.instrumentation.mcp._call import MCPCall
from cde_otel.instrumentation.mcp._targets import MCP_TARGETS, MCPTarget
from cde_otel.instrumentation.mcp._telemetry import MCPTelemetry
from cde_otel.semconv import (
    MCP_SCOPE_NAME,
    MCP_SESSION_BOUNDARIES_S,
    METRIC_MCP_SERVER_OPERATION_DURATION,
    METRIC_MCP_SERVER_SESSION_DURATION,
)
from cde_otel.settings import Settings, load_settings

__all__ = ["MCP_TARGETS", "MCPInstrumentor", "MCPTarget"]


class MCPInstrumentor(HookedInstrumentor):
    """Spans, the duration histogram and error counts for MCP server requests (see the module docs).

    ``instrument()`` takes, besides the contrib ones (``tracer_provider``, ``meter_provider``):
    ``settings``, and two hooks, contrib style:

    * ``request_hook(span, method, params)``: called when a request's span has started (or a
      framework's span was adopted), with the JSON-RPC method and what the span was made from:
      ``name``, ``arguments``, ``uri`` of the request's params (or None);
    * ``response_hook(span, result)``: called with the request's result (None when it raised)
      once the outcome is on the span, before it ends.

    A hook that raises is swallowed, logged at debug level and counted in
    ``cde.instrumentation.failures`` (sites ``hook.request``/``hook.response``); the request and
    its response are never affected.
    """

    _patch_site = "mcp.patch"
    _post_import_site = "mcp.post_import"

    def _setup(self, kwargs: dict[str, Any]) -> MCPTelemetry:
        settings: Settings = kwargs.get("settings") or load_settings()
        tracer, meter = scope_instruments(MCP_SCOPE_NAME, kwargs)
        hooks = UserHooks.from_kwargs(kwargs)
        telemetry_class = MCPTelemetry if hooks is None else _HookedMCPTelemetry
        telemetry = telemetry_class(
            tracer,
            duration_histogram(
                meter,
                METRIC_MCP_SERVER_OPERATION_DURATION,
                "MCP request duration as observed on the server, from receipt to response.",
                meter_provider=kwargs.get("meter_provider"),
            ),
            errors_counter(kwargs.get("meter_provider")),  # the cde_otel scope's, shared with CDEInstrumentor
            session_duration=meter.create_histogram(
                METRIC_MCP_SERVER_SESSION_DURATION,
                unit="s",
                description="The duration of the MCP session as observed on the MCP server.",
                explicit_bucket_boundaries_advisory=MCP_SESSION_BOUNDARIES_S,
            ),
            capture_content=settings.capture_content,
            capture_max_length=settings.capture_max_length,
            redact_keys=tuple(settings.redact_keys),
        )
        if isinstance(telemetry, _HookedMCPTelemetry) and hooks is not None:
            telemetry.hooks = hooks
        return telemetry

    def _targets(self, kwargs: dict[str, Any]) -> tuple[MCPTarget, ...]:
        return MCP_TARGETS

    def _hook(self, target: MCPTarget, current: Any) -> Wrapper | None:
        return None if current is None else target.hook(self._state)

    @property
    def patched_targets(self) -> list[MCPTarget]:
        return list(getattr(self, "_patched", []))

    @property
    def mcp_telemetry(self) -> MCPTelemetry | None:
        telemetry: MCPTelemetry | None = self._state
        return telemetry


class _HookedMCPTelemetry(MCPTelemetry):
    """MCPTelemetry that also calls the user's hooks (only made when the user gave some)."""

    hooks: UserHooks = UserHooks()

    def begin(self, method: str, params: Mapping[str, Any] | None, **kwargs: Any) -> MCPCall:
        call = super().begin(method, params, **kwargs)
        self.hooks.on_request(call.span, method, params)
        return call

    def settle(self, call: MCPCall) -> str | None:
        error_type = super().settle(call)
        self.hooks.on_response(call.span, call.result)
        return error_type
