"""The **own** family of MCP hooks (see :mod:`._hooks`): the mcp 1.x low-level server, so also
its FastMCP and standalone fastmcp 2.x, which emit no spans of their own.

``Server._handle_request`` (and ``ServerSession._received_request`` for ``initialize``) start our
span; ``RequestResponder.respond`` shows the response; ``Server._make_error_result`` shows the
exception a tool raised before it became ``isError``; a request the session cannot validate gets
its span where ``ClientRequest.model_validate`` fails in the receive loop. Listed in :mod:`._targets`.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import weakref
from collections.abc import Mapping
from typing import Any

from cde_otel._swallowed import swallowed
from cde_otel.instrumentation.mcp._call import MCPCall, current_call
from cde_otel.instrumentation.mcp._context import choose
from cde_otel.instrumentation.mcp._hooks import Wrapper, arg, note_exception, safe_begin, safe_end
from cde_otel.instrumentation.mcp._lifecycle import http_peer, http_session_id
from cde_otel.instrumentation.mcp._telemetry import MCPTelemetry
from cde_otel.semconv import (
    ATTR_MCP_PROTOCOL_VERSION,
    NETWORK_TRANSPORT_PIPE,
    NETWORK_TRANSPORT_TCP,
)

_log = logging.getLogger("cde_otel.instrumentation.mcp")


def _v1_params(params: Any) -> dict[str, Any] | None:
    if params is None:
        return None
    # Only what the span needs: a model_dump of every request would cost more than the span.
    return {
        "name": getattr(params, "name", None),
        "arguments": getattr(params, "arguments", None),
        "uri": getattr(params, "uri", None),
    }


def _v1_meta(request_meta: Any) -> Mapping[str, Any] | None:
    extra = getattr(request_meta, "model_extra", None)  # traceparent & co. are extra fields of Meta
    return extra if extra else None


def _v1_transport(request: Any) -> tuple[str, str | None, dict[str, Any] | None]:
    """(transport, session id, peer) of a request the transport handed on as ``request`` (its HTTP
    request, a Starlette ``Request``; None on stdio)."""
    if request is None:
        return NETWORK_TRANSPORT_PIPE, None, None
    headers = getattr(request, "headers", None)
    session_id = headers.get("mcp-session-id") if headers is not None else None
    return NETWORK_TRANSPORT_TCP, session_id or http_session_id.get(), http_peer(request)


def _v1_client_info(session: Any) -> Any:
    return getattr(getattr(session, "client_params", None), "clientInfo", None)


def _v1_request(message_metadata: Any) -> Any:
    """The HTTP request (a Starlette ``Request``) the transport handed on with the message; None on stdio."""
    return getattr(message_metadata, "request_context", None)


def _begin_handled_request(
    telemetry: MCPTelemetry, server: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> MCPCall:
    """The span of ``Server._handle_request(message, req, session, ...)``: each part of the request read once."""
    if len(args) >= 3:  # how the SDK calls it
        message, req, session = args[0], args[1], args[2]
    else:
        message, req, session = (arg(args, kwargs, i, name) for i, name in enumerate(("message", "req", "session")))
    request = _v1_request(getattr(message, "message_metadata", None))
    transport, session_id, peer = _v1_transport(request)
    meta = _v1_meta(getattr(message, "request_meta", None))
    return telemetry.begin(
        str(getattr(req, "method", "")),
        _v1_params(getattr(req, "params", None)),
        request_id=getattr(message, "request_id", None),
        meta=meta,
        transport=transport,
        protocol_version=_v1_protocol_version(session),
        session_id=session_id,
        session=session,
        client_info=_v1_client_info(session),
        peer=peer,
        server=server,
        session_opens=False,  # initialize opens it: a stateless HTTP session serves one request
        choice=choose(meta, request),
    )


def v1_handle_request(telemetry: MCPTelemetry) -> Wrapper:
    """``Server._handle_request(message, req, session, lifespan_context, raise_exceptions)``."""

    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = safe_begin(telemetry, _begin_handled_request, telemetry, instance, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            return await wrapped(*args, **kwargs)
        except BaseException as exc:
            if call.result is None:
                call.exception = exc
            raise
        finally:
            safe_end(telemetry, call)

    return wrapper


# Negotiated protocol version per mcp 1.x session (what the initialize response said).
_negotiated: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _v1_protocol_version(session: Any) -> str | None:
    try:
        version = _negotiated.get(session)
    except TypeError:  # not weak-referenceable
        version = None
    if version is not None:
        return version
    client_params = getattr(session, "client_params", None)
    requested = getattr(client_params, "protocolVersion", None)
    return requested if isinstance(requested, str) else None


def v1_received_request(telemetry: MCPTelemetry) -> Wrapper:
    """``ServerSession._received_request(responder)``: the session answers ``initialize`` itself."""

    def begin(session: Any, responder: Any, root: Any) -> MCPCall:
        request = _v1_request(getattr(responder, "message_metadata", None))
        transport, session_id, peer = _v1_transport(request)
        meta = _v1_meta(getattr(responder, "request_meta", None))
        return telemetry.begin(
            "initialize",
            None,
            request_id=getattr(responder, "request_id", None),
            meta=meta,
            transport=transport,
            session_id=session_id,
            session=session,
            client_info=getattr(getattr(root, "params", None), "clientInfo", None),
            peer=peer,
            choice=choose(meta, request),
        )

    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        responder = arg(args, kwargs, 0, "responder")
        root = getattr(getattr(responder, "request", None), "root", None)
        if type(root).__name__ != "InitializeRequest" or current_call.get() is not None:
            return await wrapped(*args, **kwargs)
        call = safe_begin(telemetry, begin, instance, responder, root)
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            return await wrapped(*args, **kwargs)
        except BaseException as exc:
            call.exception = exc
            raise
        finally:
            _note_negotiated(instance, call)
            safe_end(telemetry, call)

    return wrapper


def _note_negotiated(session: Any, call: MCPCall) -> None:
    try:
        version = getattr(getattr(call.result, "root", None), "protocolVersion", None)
        if isinstance(version, str):
            _negotiated[session] = version
            call.metric_attrs[ATTR_MCP_PROTOCOL_VERSION] = version
            call.span.set_attribute(ATTR_MCP_PROTOCOL_VERSION, version)
    except Exception:
        swallowed("mcp.protocol_version", _log, "cde-otel: reading the negotiated MCP version failed")


def v1_respond(telemetry: MCPTelemetry) -> Wrapper:
    """``RequestResponder.respond(response)``: the result or JSON-RPC error of the current request."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = current_call.get()
        if call is not None and call.result is None:
            call.result = arg(args, kwargs, 0, "response")
        return wrapped(*args, **kwargs)

    return wrapper


# The mcp 1.x ServerSession whose receive loop runs in this task (its request validation follows).
_receiving: contextvars.ContextVar[Any] = contextvars.ContextVar("cde_otel_mcp_receiving", default=None)


def v1_receive_loop(telemetry: MCPTelemetry) -> Wrapper:
    """``ServerSession._receive_loop()``: marks the task that validates the session's requests."""

    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        token = _receiving.set(instance)
        try:
            return await wrapped(*args, **kwargs)
        finally:
            _receiving.reset(token)

    return wrapper


class _InvalidParams:
    """The reply mcp 1.x sends for a request it cannot validate (an unknown method included)."""

    code = -32602
    message = "Invalid request parameters"


def v1_validate_request(telemetry: MCPTelemetry) -> Wrapper:
    """``ClientRequest.model_validate(raw)`` in a server's receive loop: a request that fails it (an
    unknown method, missing params) is answered by the session itself, before any handler - it
    gets its span and metric point here."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            return wrapped(*args, **kwargs)
        except Exception:
            session = _receiving.get()
            raw = args[0] if args else None
            if session is not None and isinstance(raw, Mapping):
                _invalid_request(telemetry, session, raw)
            raise

    return wrapper


def _invalid_request(telemetry: MCPTelemetry, session: Any, raw: Mapping[str, Any]) -> None:
    params = raw.get("params")
    params = params if isinstance(params, Mapping) else None
    meta = params.get("_meta") if params else None
    call = safe_begin(
        telemetry,
        lambda: telemetry.begin(
            str(raw.get("method", "")),
            params,
            request_id=raw.get("id"),
            meta=meta if isinstance(meta, Mapping) else None,
            transport=NETWORK_TRANSPORT_PIPE if http_session_id.get() is None else NETWORK_TRANSPORT_TCP,
            protocol_version=_v1_protocol_version(session),
            session_id=http_session_id.get(),
            session=session,
            client_info=_v1_client_info(session),
            session_opens=False,
        ),
    )
    if call is not None:
        call.result = _InvalidParams()
        safe_end(telemetry, call)


def v1_make_error_result(telemetry: MCPTelemetry) -> Wrapper:
    """``Server._make_error_result(message)``: called in the ``except`` that swallowed the tool's error."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        error = sys.exc_info()[1]
        if error is not None:
            note_exception(error)
        return wrapped(*args, **kwargs)

    return wrapper
