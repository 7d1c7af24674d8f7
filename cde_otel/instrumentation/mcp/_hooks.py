"""The wrappers put around the MCP server libraries (which one goes where: ``_targets``).

Three families, three ways to get one SERVER span per request:

* **own** (mcp 1.x low-level server, so also its FastMCP and standalone fastmcp 2.x, which emit
  no spans): ``Server._handle_request`` (and ``ServerSession._received_request`` for
  ``initialize``) start our span; ``RequestResponder.respond`` shows the response;
  ``Server._make_error_result`` shows the exception a tool raised before it became ``isError``.
* **adopt** (mcp 2.x's ``OpenTelemetryMiddleware``, FastMCP 3+'s seam span): the framework's
  middleware ``__call__`` names the request and observes what ``call_next`` returns or raises;
  the framework's span context manager (``otel_span``/``seam_span``) is where we adopt its span
  on entry and settle the outcome just before it ends - after the framework set its own
  ``error.type``, so ours (and ``cde.error.code``) win. No second span.
* **capture**: the high-level ``call_tool`` of MCPServer/FastMCP, where a tool's exception is
  still visible before the framework turns it into an ``isError`` result.

Every wrapper is guarded: a telemetry failure is logged at debug level and the server's own
call goes on untouched - same arguments, same result, same exception.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from opentelemetry import context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from cde_otel._swallowed import swallowed
from cde_otel.instrumentation.mcp import _context
from cde_otel.instrumentation.mcp._context import ContextChoice, choose
from cde_otel.instrumentation.mcp._lifecycle import http_peer, http_session_id, settled_span
from cde_otel.instrumentation.mcp._telemetry import MCPCall, MCPTelemetry, current_call
from cde_otel.semconv import (
    ATTR_MCP_PROTOCOL_VERSION,
    NETWORK_TRANSPORT_PIPE,
    NETWORK_TRANSPORT_TCP,
)

_log = logging.getLogger("cde_otel.instrumentation.mcp")

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]

# The request a framework middleware is about to open its span for (adopt family).
_pending: contextvars.ContextVar[Any] = contextvars.ContextVar("cde_otel_mcp_pending", default=None)


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _safe_begin(telemetry: MCPTelemetry, begin: Callable[[], MCPCall | None]) -> MCPCall | None:
    if not telemetry.active or not is_instrumentation_enabled():
        return None
    try:
        return begin()
    except Exception:
        swallowed("mcp.begin", _log, "cde-otel: starting MCP telemetry failed")
        return None


def _safe_end(telemetry: MCPTelemetry, call: MCPCall) -> None:
    try:
        telemetry.end(call)
    except Exception:
        swallowed("mcp.end", _log, "cde-otel: ending MCP telemetry failed")
        MCPTelemetry.release(call)


def _note_exception(error: BaseException) -> None:
    call = current_call.get()
    if call is not None and call.exception is None:
        call.exception = error


# -- own: mcp 1.x ---------------------------------------------------------------------
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


def _v1_transport(message_metadata: Any) -> tuple[str, str | None, dict[str, Any] | None]:
    request = _v1_request(message_metadata)
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


def v1_handle_request(telemetry: MCPTelemetry) -> Wrapper:
    """``Server._handle_request(message, req, session, lifespan_context, raise_exceptions)``."""

    def begin(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> MCPCall:
        message = _arg(args, kwargs, 0, "message")
        req = _arg(args, kwargs, 1, "req")
        session = _arg(args, kwargs, 2, "session")
        metadata = getattr(message, "message_metadata", None)
        transport, session_id, peer = _v1_transport(metadata)
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
            server=instance,
            session_opens=False,  # initialize opens it: a stateless HTTP session serves one request
            choice=choose(meta, _v1_request(metadata)),
        )

    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = _safe_begin(telemetry, lambda: begin(instance, args, kwargs))
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            return await wrapped(*args, **kwargs)
        except BaseException as exc:
            if call.result is None:
                call.exception = exc
            raise
        finally:
            _safe_end(telemetry, call)

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
        metadata = getattr(responder, "message_metadata", None)
        transport, session_id, peer = _v1_transport(metadata)
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
            choice=choose(meta, _v1_request(metadata)),
        )

    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        responder = _arg(args, kwargs, 0, "responder")
        root = getattr(getattr(responder, "request", None), "root", None)
        if type(root).__name__ != "InitializeRequest" or current_call.get() is not None:
            return await wrapped(*args, **kwargs)
        call = _safe_begin(telemetry, lambda: begin(instance, responder, root))
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            return await wrapped(*args, **kwargs)
        except BaseException as exc:
            call.exception = exc
            raise
        finally:
            _note_negotiated(instance, call)
            _safe_end(telemetry, call)

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
            call.result = _arg(args, kwargs, 0, "response")
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
    call = _safe_begin(
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
        _safe_end(telemetry, call)


def v1_make_error_result(telemetry: MCPTelemetry) -> Wrapper:
    """``Server._make_error_result(message)``: called in the ``except`` that swallowed the tool's error."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        error = sys.exc_info()[1]
        if error is not None:
            _note_exception(error)
        return wrapped(*args, **kwargs)

    return wrapper


# -- adopt: mcp 2.x and FastMCP 3+ -------------------------------------------------------
def middleware_call(telemetry: MCPTelemetry) -> Wrapper:
    """A framework span middleware's ``__call__(ctx, call_next)``: names the request, watches call_next."""

    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        ctx = _arg(args, kwargs, 0, "ctx")
        call_next = _arg(args, kwargs, 1, "call_next")
        if not telemetry.active or ctx is None or call_next is None or current_call.get() is not None:
            return await wrapped(*args, **kwargs)
        token = _pending.set(ctx)
        try:
            return await wrapped(ctx, _observed(call_next))
        finally:
            _pending.reset(token)

    return wrapper


def _observed(call_next: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
    async def observed(ctx: Any) -> Any:
        try:
            result = await call_next(ctx)
        except BaseException as exc:
            _note_exception(exc)
            raise
        call = current_call.get()
        if call is not None and call.result is None:
            call.result = result
        return result

    return observed


def adopt_span(telemetry: MCPTelemetry) -> Wrapper:
    """The framework's span context manager (``otel_span``/``seam_span``): adopt its span."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        ctx = _pending.get()
        if ctx is None:
            return wrapped(*args, **kwargs)
        _pending.set(None)  # one adoption per request
        choice = _adopted_choice(ctx)
        if choice is not None and "context" in kwargs:  # mcp 2.x's otel_span takes the parent (from _meta only)
            kwargs = {**kwargs, "context": choice.parent}
        return _AdoptedSpan(telemetry, wrapped(*args, **kwargs), ctx, choice)

    return wrapper


def _adopted_choice(ctx: Any) -> ContextChoice | None:
    """The parent the framework's span must get, and the link it must carry (see ``_context``)."""
    try:
        params = ctx.params if isinstance(ctx.params, Mapping) else None
        meta = params.get("_meta") if params else None
        return choose(meta if isinstance(meta, Mapping) else None, ctx.request)
    except Exception:
        swallowed("mcp.context", _log, "cde-otel: choosing an MCP request's parent context failed")
        return None


class _AdoptedSpan:
    """Wraps the framework's span context manager; its duration brackets the framework's span."""

    __slots__ = ("_call", "_choice", "_cm", "_ctx", "_parent_token", "_start", "_telemetry")

    def __init__(self, telemetry: MCPTelemetry, cm: Any, ctx: Any, choice: ContextChoice | None) -> None:
        self._telemetry = telemetry
        self._cm = cm
        self._ctx = ctx
        self._choice = choice
        self._parent_token: object | None = None
        self._call: MCPCall | None = None
        self._start = 0.0

    def __enter__(self) -> Any:
        self._start = time.perf_counter()
        if self._choice is not None:
            # The framework parents its span on the current context (FastMCP prefers an ambient
            # span over _meta): make the chosen parent current while it starts the span.
            self._parent_token = context.attach(self._choice.parent)
        try:
            span = self._cm.__enter__()
        except BaseException:
            self._detach_parent()
            raise
        self._call = _safe_begin(self._telemetry, lambda: self._begin(span))
        return span

    def _detach_parent(self) -> None:
        token, self._parent_token = self._parent_token, None
        if token is not None:
            context.detach(token)  # type: ignore[arg-type]

    def _begin(self, span: Any) -> MCPCall | None:
        if not span.is_recording():
            return None
        link = self._choice.link if self._choice is not None else None
        if link is not None:
            span.add_link(link)  # made by the framework: the HTTP context is linked after the start
        ctx = self._ctx
        params = ctx.params if isinstance(ctx.params, Mapping) else None
        request = ctx.request
        headers = getattr(request, "headers", None)
        method = str(ctx.method)
        server_session = getattr(ctx, "session", None)
        connection = getattr(server_session, "_connection", None)  # per connection (mcp 2.x)
        session_id = getattr(connection, "session_id", None)
        if session_id is None and headers is not None:
            session_id = headers.get("mcp-session-id")
        client = getattr(getattr(server_session, "client_params", None), "client_info", None)
        if method == "initialize" and params is not None:
            client = params.get("clientInfo", client)
        return self._telemetry.begin(
            method,
            params,
            request_id=ctx.request_id,
            meta=params.get("_meta") if params else None,
            transport=NETWORK_TRANSPORT_PIPE if request is None else NETWORK_TRANSPORT_TCP,
            protocol_version=getattr(ctx, "protocol_version", None),
            session_id=session_id if isinstance(session_id, str) else None,
            adopt=span,
            session=connection,
            client_info=client,
            peer=http_peer(request) if request is not None else None,
            session_opens=False,  # outside a handshake a connection serves one request
        )

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self._settle_and_exit(exc_type, exc, tb)
        finally:
            self._detach_parent()

    def _settle_and_exit(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        call = self._call
        if call is None:
            return self._cm.__exit__(exc_type, exc, tb)
        telemetry = self._telemetry
        settled = False
        try:
            if exc is not None and call.result is None and call.exception is None:
                call.exception = exc
            telemetry.settle(call)
            settled = True
        except Exception:
            swallowed("mcp.settle", _log, "cde-otel: settling an MCP span failed")
        finally:
            MCPTelemetry.release(call)
        token = settled_span.set(call.span)  # the framework's own error bookkeeping stands aside
        try:
            if settled and exc is not None:
                # The outcome is on the span already: the framework's manager closes it as on a
                # normal exit (no second exception event, no status over ours); returning None,
                # this manager lets the exception go on, unchanged.
                self._cm.__exit__(None, None, None)
                return None
            return self._cm.__exit__(exc_type, exc, tb)
        finally:
            settled_span.reset(token)
            try:
                telemetry.record(call, time.perf_counter() - self._start)
            except Exception:
                swallowed("mcp.record", _log, "cde-otel: recording an MCP duration failed")


# -- capture: the high-level call_tool ----------------------------------------------------
def capture_tool_error(telemetry: MCPTelemetry) -> Wrapper:
    """``MCPServer.call_tool`` / ``FastMCP.call_tool``: whether the server registered the tool, and
    the tool's exception before it becomes ``isError``."""

    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = current_call.get()
        name = _arg(args, kwargs, 0, "name")
        if call is not None and isinstance(name, str):
            try:
                telemetry.note_registered(instance, "tools/call", name)
            except Exception:
                swallowed("mcp.registry", _log, "cde-otel: reading the server's tool registry failed")
        try:
            return await wrapped(*args, **kwargs)
        except Exception as exc:
            _note_exception(exc)
            raise

    return wrapper


# -- the HTTP request's context, where the transport receives it ----------------------------
def http_post_request(telemetry: MCPTelemetry) -> Wrapper:
    """``StreamableHTTPServerTransport._handle_post_request(scope, request, receive, send)``: runs in
    the HTTP request's own task (under its server span, if an HTTP instrumentation made one)."""

    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if telemetry.active:
            try:
                request = _arg(args, kwargs, 1, "request")
                if request is not None:
                    _context.note_http_request(request)
            except Exception:
                swallowed("mcp.http_context", _log, "cde-otel: keeping an HTTP request's context failed")
        return await wrapped(*args, **kwargs)

    return wrapper
