"""The **adopt** family of MCP hooks (see :mod:`._hooks`): mcp 2.x's ``OpenTelemetryMiddleware``
and FastMCP 3+'s seam span.

The framework's middleware ``__call__`` names the request and observes what ``call_next`` returns
or raises; the framework's span context manager (``otel_span``/``seam_span``) is where we adopt its
span on entry and settle the outcome just before it ends - after the framework set its own
``error.type``, so the CDE code wins. No second span. Listed in :mod:`._targets`.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from opentelemetry import context

from cde_otel._swallowed import swallowed
from cde_otel.instrumentation.mcp._call import MCPCall, current_call
from cde_otel.instrumentation.mcp._context import ContextChoice, choose
from cde_otel.instrumentation.mcp._hooks import Wrapper, arg, note_exception, safe_begin
from cde_otel.instrumentation.mcp._lifecycle import http_peer, settled_span
from cde_otel.instrumentation.mcp._telemetry import MCPTelemetry
from cde_otel.semconv import NETWORK_TRANSPORT_PIPE, NETWORK_TRANSPORT_TCP

_log = logging.getLogger("cde_otel.instrumentation.mcp")

# The request a framework middleware is about to open its span for (adopt family).
_pending: contextvars.ContextVar[Any] = contextvars.ContextVar("cde_otel_mcp_pending", default=None)


def middleware_call(telemetry: MCPTelemetry) -> Wrapper:
    """A framework span middleware's ``__call__(ctx, call_next)``: names the request, watches call_next."""

    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        ctx = arg(args, kwargs, 0, "ctx")
        call_next = arg(args, kwargs, 1, "call_next")
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
            note_exception(exc)
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
        self._call = safe_begin(self._telemetry, self._begin, span)
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
