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
  ERROR with ``error.type`` = the CDE code (from the exception chain, from an
  ``ErrorFormatter.to_json`` payload, or from the upstream orchestrator's
  ``{"status": "error", "error_code": ...}`` envelope), else the JSON-RPC code, else the
  exception class, else ``tool_error``; counted in ``cde.errors``;
* a record in the ``mcp.server.operation.duration`` histogram (seconds; for spans we create,
  exactly the span's duration) by method, tool or prompt, transport and error type.

A failure inside the instrumentation is swallowed, logged at debug level and counted
(``cde.instrumentation.failures``); the server's
requests and responses are never changed.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Collection
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

from cde_otel._swallowed import swallowed
from cde_otel.instrumentation._instruments import duration_histogram, errors_counter, scope_instruments
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

_log = logging.getLogger("cde_otel.instrumentation.mcp")
_hooked_modules: set[str] = set()


class MCPInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Spans, the duration histogram and error counts for MCP server requests (see the module docs)."""

    _telemetry: MCPTelemetry | None = None
    _patched: list[MCPTarget]

    def instrumentation_dependencies(self) -> Collection[str]:
        # Nothing required: each family is patched if and when its library is imported.
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        settings: Settings = kwargs.get("settings") or load_settings()
        tracer, meter = scope_instruments(MCP_SCOPE_NAME, kwargs)
        self._telemetry = MCPTelemetry(
            tracer,
            duration_histogram(
                meter,
                METRIC_MCP_SERVER_OPERATION_DURATION,
                "MCP request duration as observed on the server, from receipt to response.",
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
        self._patched = []
        for target in MCP_TARGETS:
            if target.module in sys.modules:
                self._patch(target)
            elif target.module not in _hooked_modules:
                _hooked_modules.add(target.module)
                wrapt.register_post_import_hook(_on_import, target.module)

    def _uninstrument(self, **kwargs: Any) -> None:
        telemetry = self._telemetry
        if telemetry is not None:
            telemetry.active = False  # disarms wrappers a post-import hook installs later, too
        for target in self._patched:
            owner, name = _owner(target)
            if owner is not None:
                unwrap(owner, name)
        self._patched = []
        self._telemetry = None

    def _patch(self, target: MCPTarget) -> None:
        telemetry = self._telemetry
        if telemetry is None or target in self._patched:
            return
        try:
            owner, name = _owner(target)
            current = getattr(owner, name, None) if owner is not None else None
            if current is None or isinstance(current, wrapt.ObjectProxy):
                return  # not in this version of the library, or already wrapped
            wrapt.wrap_function_wrapper(target.module, target.attribute, target.hook(telemetry))
            self._patched.append(target)
        except Exception:
            swallowed("mcp.patch", _log, "cde-otel: instrumenting %s failed; skipped", target.spec)

    def _on_module_imported(self, name: str) -> None:
        if self._telemetry is None:
            return
        for target in MCP_TARGETS:
            if target.module == name:
                self._patch(target)

    @property
    def patched_targets(self) -> list[MCPTarget]:
        return list(getattr(self, "_patched", []))

    @property
    def is_active(self) -> bool:
        """Instrumented, or being instrumented right now (``instrument()`` is running)."""
        return self._telemetry is not None

    @property
    def mcp_telemetry(self) -> MCPTelemetry | None:
        return self._telemetry


def _owner(target: MCPTarget) -> tuple[Any, str]:
    """(the class or module holding the attribute, its name); (None, name) when absent."""
    module = sys.modules.get(target.module)
    *path, name = target.attribute.split(".")
    owner: Any = module
    for part in path:
        owner = getattr(owner, part, None) if owner is not None else None
    return owner, name


def _on_import(module: Any) -> None:
    _hooked_modules.discard(module.__name__)  # wrapt forgets a hook once it fired: so do we
    try:
        MCPInstrumentor()._on_module_imported(module.__name__)
    except Exception:
        swallowed("mcp.post_import", _log, "cde-otel: post-import MCP instrumentation of %s failed", module.__name__)
