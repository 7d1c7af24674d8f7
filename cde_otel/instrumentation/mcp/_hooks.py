"""The wrappers put around the MCP server libraries: what they share, and the capture family.

Three families, three ways to get one SERVER span per request (which wrapper goes where: ``_targets``):

* **own** (:mod:`._hooks_own`; mcp 1.x low-level server, so also its FastMCP and standalone
  fastmcp 2.x, which emit no spans): ``Server._handle_request`` (and
  ``ServerSession._received_request`` for ``initialize``) start our span;
  ``RequestResponder.respond`` shows the response; ``Server._make_error_result`` shows the
  exception a tool raised before it became ``isError``.
* **adopt** (:mod:`._hooks_adopt`; mcp 2.x's ``OpenTelemetryMiddleware``, FastMCP 3+'s seam
  span): the framework's middleware ``__call__`` names the request and observes what
  ``call_next`` returns or raises; the framework's span context manager (``otel_span``/``seam_span``)
  is where we adopt its span on entry and settle the outcome just before it ends - after the
  framework set its own ``error.type``, so ours (and ``cde.error.code``) win. No second span.
* **capture** (here): the high-level ``call_tool`` of MCPServer/FastMCP, where a tool's exception is
  still visible before the framework turns it into an ``isError`` result.

The HTTP transport's hooks (each request's HTTP context, the session id) are in :mod:`._lifecycle`.

Every wrapper is guarded: a telemetry failure is logged at debug level and the server's own
call goes on untouched - same arguments, same result, same exception.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from cde_otel._swallowed import swallowed
from cde_otel.instrumentation.mcp._call import MCPCall, current_call
from cde_otel.instrumentation.mcp._telemetry import MCPTelemetry

_log = logging.getLogger("cde_otel.instrumentation.mcp")

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]


def arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def safe_begin(telemetry: MCPTelemetry, begin: Callable[..., MCPCall | None], *args: Any) -> MCPCall | None:
    """``begin(*args)`` when telemetry is on; None when it is off or failed (the failure swallowed)."""
    if not telemetry.active or not is_instrumentation_enabled():
        return None
    try:
        return begin(*args)
    except Exception:
        swallowed("mcp.begin", _log, "cde-otel: starting MCP telemetry failed")
        return None


def safe_end(telemetry: MCPTelemetry, call: MCPCall) -> None:
    try:
        telemetry.end(call)
    except Exception:
        swallowed("mcp.end", _log, "cde-otel: ending MCP telemetry failed")
        MCPTelemetry.release(call)


def note_exception(error: BaseException) -> None:
    call = current_call.get()
    if call is not None and call.exception is None:
        call.exception = error


# -- capture: the high-level call_tool ----------------------------------------------------
def capture_tool_error(telemetry: MCPTelemetry) -> Wrapper:
    """``MCPServer.call_tool`` / ``FastMCP.call_tool``: whether the server registered the tool, and
    the tool's exception before it becomes ``isError``."""

    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = current_call.get()
        name = arg(args, kwargs, 0, "name")
        if call is not None and isinstance(name, str):
            try:
                telemetry.note_registered(instance, "tools/call", name)
            except Exception:
                swallowed("mcp.registry", _log, "cde-otel: reading the server's tool registry failed")
        try:
            return await wrapped(*args, **kwargs)
        except Exception as exc:
            note_exception(exc)
            raise

    return wrapper
