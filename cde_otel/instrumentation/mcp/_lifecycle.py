"""Hooks at the edges of a request: the HTTP transport it came on (its peer, session id and
context, where the transport receives it), the session's end, and the framework's own error
bookkeeping on a span we adopted (used by :mod:`._hooks_own` and :mod:`._hooks_adopt`, listed in
:mod:`._targets`)."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Mapping
from typing import Any

from cde_otel._swallowed import swallowed
from cde_otel.instrumentation.mcp import _context
from cde_otel.instrumentation.mcp._call import current_call
from cde_otel.instrumentation.mcp._hooks import Wrapper, arg
from cde_otel.instrumentation.mcp._telemetry import MCPTelemetry
from cde_otel.semconv import (
    ATTR_CLIENT_ADDRESS,
    ATTR_CLIENT_PORT,
    ATTR_NETWORK_PROTOCOL_NAME,
    ATTR_NETWORK_PROTOCOL_VERSION,
    NETWORK_PROTOCOL_HTTP,
)

_log = logging.getLogger("cde_otel.instrumentation.mcp")


# -- the HTTP transport ----------------------------------------------------------------------
def http_peer(request: Any) -> dict[str, Any] | None:
    """``network.protocol.*`` and ``client.address``/``.port`` of an HTTP request (Starlette's, or
    anything with an ASGI ``scope``)."""
    scope = getattr(request, "scope", None)
    if not isinstance(scope, Mapping):
        return None
    peer: dict[str, Any] = {ATTR_NETWORK_PROTOCOL_NAME: NETWORK_PROTOCOL_HTTP}
    version = scope.get("http_version")
    if isinstance(version, str):
        peer[ATTR_NETWORK_PROTOCOL_VERSION] = version
    client = scope.get("client")
    if isinstance(client, list | tuple) and len(client) == 2:
        peer[ATTR_CLIENT_ADDRESS] = str(client[0])
        if isinstance(client[1], int):
            peer[ATTR_CLIENT_PORT] = client[1]
    return peer


# The mcp-session-id of the streamable HTTP transport serving this task (mcp 1.x): the server's
# tasks inherit it, so initialize - whose request carries no id yet - gets it too.
http_session_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("cde_otel_mcp_http_session", default=None)


def v1_http_connect(telemetry: MCPTelemetry) -> Wrapper:
    """``StreamableHTTPServerTransport.connect()``: called in the task that then runs the server."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        session_id = getattr(instance, "mcp_session_id", None)
        if isinstance(session_id, str) and telemetry.active:
            http_session_id.set(session_id)
        return wrapped(*args, **kwargs)

    return wrapper


def http_post_request(telemetry: MCPTelemetry) -> Wrapper:
    """``StreamableHTTPServerTransport._handle_post_request(scope, request, receive, send)``: runs in
    the HTTP request's own task (under its server span, if an HTTP instrumentation made one)."""

    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if telemetry.active:
            try:
                request = arg(args, kwargs, 1, "request")
                if request is not None:
                    _context.note_http_request(request)
            except Exception:
                swallowed("mcp.http_context", _log, "cde-otel: keeping an HTTP request's context failed")
        return await wrapped(*args, **kwargs)

    return wrapper


# -- the session's end ------------------------------------------------------------------
def session_closed(telemetry: MCPTelemetry) -> Wrapper:
    """mcp 1.x ``ServerSession.__aexit__``: the session is over (its duration is recorded)."""

    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            return await wrapped(*args, **kwargs)
        finally:
            _close_session(telemetry, instance)

    return wrapper


def connection_closed(telemetry: MCPTelemetry) -> Wrapper:
    """mcp 2.x ``aclose_shielded(connection)``: the connection (so its session, if any) is over."""

    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            return await wrapped(*args, **kwargs)
        finally:
            _close_session(telemetry, arg(args, kwargs, 0, "connection"))

    return wrapper


def _close_session(telemetry: MCPTelemetry, key: Any) -> None:
    try:
        telemetry.sessions.close(key)
    except Exception:
        swallowed("mcp.session", _log, "cde-otel: recording an MCP session failed")


# The adopted span whose outcome was just settled, while the framework's span context manager exits.
settled_span: contextvars.ContextVar[Any] = contextvars.ContextVar("cde_otel_mcp_settled", default=None)


def framework_exception(telemetry: MCPTelemetry) -> Wrapper:
    """FastMCP's ``record_span_exception(span, error)``: on a span we adopted, the outcome is ours -
    one exception event and the conventions' ``error.type`` (it would write ``MCPError`` over the
    JSON-RPC code, and record the exception a second time)."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        span = arg(args, kwargs, 0, "span")
        call = current_call.get()
        if telemetry.active and span is not None and (settled_span.get() is span or (call and call.span is span)):
            return None
        return wrapped(*args, **kwargs)

    return wrapper
