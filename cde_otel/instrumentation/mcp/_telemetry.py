"""One MCP request as telemetry: its SERVER span, correlation id, outcome and duration record.

Framework hooks (:mod:`cde_otel.instrumentation.mcp._hooks`) call :meth:`MCPTelemetry.begin`
either to start our own span (servers that emit none: mcp 1.x, standalone fastmcp 2.x) or to
adopt the span the framework already opened (mcp 2.x, FastMCP 3+), then note what they see
(the response, an exception the framework turned into an ``isError`` result) and call
:meth:`MCPTelemetry.end`. Only the OpenTelemetry API is used.
"""

from __future__ import annotations

import contextvars
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.metrics import Counter, Histogram
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from cde_otel.instrumentation.mcp._context import ContextChoice, choose
from cde_otel.redaction import is_content_key, is_sensitive_key, redact_mapping, scrub_text
from cde_otel.semconv import (
    ATTR_CORRELATION_ID,
    ATTR_ERROR_TYPE,
    ATTR_FEATURE_ID,
    ATTR_GEN_AI_OPERATION_NAME,
    ATTR_GEN_AI_PROMPT_NAME,
    ATTR_GEN_AI_TOOL_CALL_ARGUMENTS,
    ATTR_GEN_AI_TOOL_CALL_RESULT,
    ATTR_GEN_AI_TOOL_NAME,
    ATTR_JSONRPC_REQUEST_ID,
    ATTR_MCP_METHOD_NAME,
    ATTR_MCP_PROTOCOL_VERSION,
    ATTR_MCP_RESOURCE_URI,
    ATTR_MCP_SESSION_ID,
    ATTR_NETWORK_TRANSPORT,
    ATTR_OPERATION,
    ATTR_PROJECT_ID,
    ATTR_PROMPT_LENGTH,
    ATTR_RPC_RESPONSE_STATUS_CODE,
    CORRELATION_KEY,
    EXECUTE_TOOL,
    TOOL_ERROR,
    WORK_ARGUMENTS,
)

_RESOURCE_METHODS = frozenset({"resources/read", "resources/subscribe", "resources/unsubscribe"})
_MAX_VALUE = 256
_MAX_PAYLOAD_SCAN = 65_536
# How far past a cut the scrubber looks, so that a secret straddling the cut is still recognised.
_SCRUB_WINDOW = 4096
# A CDE (or upstream orchestrator) error code: E104, E999...
_CODE = re.compile(r"[A-Z]{1,4}\d{2,4}")
# The JSON-RPC code of invalid params (what the SDKs answer for a pydantic ValidationError).
_INVALID_PARAMS = "-32602"
_BAGGAGE = W3CBaggagePropagator()


class MCPCall:
    """What one request has shown so far; finished by :meth:`MCPTelemetry.end`."""

    __slots__ = (
        "attrs",
        "exception",
        "metric_attrs",
        "name",
        "owned",
        "result",
        "span",
        "start_ns",
        "start_perf",
        "token",
        "var_token",
    )

    def __init__(self, span: trace.Span, name: str, attrs: dict[str, Any], metric_attrs: dict[str, Any]) -> None:
        self.span = span
        self.name = name
        self.attrs = attrs
        self.metric_attrs = metric_attrs
        self.owned = False
        self.result: Any = None
        self.exception: BaseException | None = None
        self.start_ns = 0
        self.start_perf = 0.0
        self.token: object | None = None
        self.var_token: contextvars.Token[MCPCall | None] | None = None


#: The request being served in this context (hooks that only observe look it up here).
current_call: contextvars.ContextVar[MCPCall | None] = contextvars.ContextVar("cde_otel_mcp_call", default=None)


class MCPTelemetry:
    """Shared instruments and policies of one :class:`MCPInstrumentor`."""

    def __init__(
        self,
        tracer: Tracer,
        duration: Histogram,
        errors: Counter,
        *,
        capture_content: bool = False,
        capture_max_length: int = 256,
        redact_keys: tuple[str, ...] = (),
    ) -> None:
        self.tracer = tracer
        self.duration = duration
        self.errors = errors
        self.capture_content = capture_content
        self.capture_max_length = capture_max_length
        self.redact_keys = redact_keys
        self.active = True

    # -- start --------------------------------------------------------------------
    def begin(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        *,
        request_id: Any = None,
        meta: Mapping[str, Any] | None = None,
        transport: str | None = None,
        protocol_version: str | None = None,
        session_id: str | None = None,
        adopt: trace.Span | None = None,
        choice: ContextChoice | None = None,
    ) -> MCPCall:
        """Starts (or, with ``adopt``, enriches) the span of one request and makes it current.

        An owned span's parent and link are ``choice`` (default: the stdio rule for ``meta``, see
        :mod:`._context`); an adopted span got its parent when the framework started it. The
        call's correlation id is the client's (``_meta`` key or baggage ``cde.correlation_id``),
        else the span's trace id.
        """
        target = _target(method, params)
        name = f"{method} {target}" if target else method
        metric_attrs: dict[str, Any] = {ATTR_MCP_METHOD_NAME: method}
        if target:
            if method == "tools/call":
                metric_attrs[ATTR_GEN_AI_OPERATION_NAME] = EXECUTE_TOOL
                metric_attrs[ATTR_GEN_AI_TOOL_NAME] = target
            elif method == "prompts/get":
                metric_attrs[ATTR_GEN_AI_PROMPT_NAME] = target
        if transport:
            metric_attrs[ATTR_NETWORK_TRANSPORT] = transport
        if protocol_version:
            metric_attrs[ATTR_MCP_PROTOCOL_VERSION] = protocol_version
        attrs = dict(metric_attrs)
        if request_id is not None:
            attrs[ATTR_JSONRPC_REQUEST_ID] = str(request_id)
        if session_id:
            attrs[ATTR_MCP_SESSION_ID] = session_id
        if params:
            if method in _RESOURCE_METHODS:
                uri = params.get("uri")
                if uri is not None:
                    attrs[ATTR_MCP_RESOURCE_URI] = scrub_text(str(uri))[:_MAX_VALUE]  # ?token=... never recorded
            arguments = params.get("arguments")
            if isinstance(arguments, Mapping) and arguments:
                self._argument_attrs(arguments, attrs)

        if adopt is None:
            choice = choice or choose(meta)
            parent = choice.parent
            start_ns = time.time_ns()
            span = self.tracer.start_span(name, parent, SpanKind.SERVER, attrs, choice.links, start_time=start_ns)
        else:
            parent = context.get_current()
            span = adopt
            start_ns = 0
            span.set_attributes(attrs)
        cid = _client_correlation_id(meta, parent) or trace.format_trace_id(span.get_span_context().trace_id)
        span.set_attribute(ATTR_CORRELATION_ID, cid)
        ctx = baggage.set_baggage(CORRELATION_KEY, cid, trace.set_span_in_context(span, parent))
        call = MCPCall(span, name, attrs, metric_attrs)
        call.owned = adopt is None
        call.start_ns = start_ns
        call.token = context.attach(ctx)
        call.var_token = current_call.set(call)
        call.start_perf = time.perf_counter()
        return call

    def _argument_attrs(self, arguments: Mapping[str, Any], attrs: dict[str, Any]) -> None:
        extra = self.redact_keys
        for key, value in arguments.items():
            attr = WORK_ARGUMENTS.get(key)
            if attr is not None:
                if isinstance(value, str | int) and not is_sensitive_key(key, extra):
                    attrs[attr] = scrub_text(str(value))[:_MAX_VALUE]
            elif isinstance(value, str) and is_content_key(key):
                attrs[ATTR_PROMPT_LENGTH] = len(value)
        if self.capture_content:
            redacted = redact_mapping(arguments, extra, content_max_length=self.capture_max_length)
            attrs[ATTR_GEN_AI_TOOL_CALL_ARGUMENTS] = json.dumps(redacted, default=str)[: self.capture_max_length * 8]

    # -- end ----------------------------------------------------------------------
    def end(self, call: MCPCall) -> None:
        """Finishes an owned span: outcome, duration record (exactly the span's), end, context restored."""
        end_ns = time.time_ns()
        try:
            self.settle(call)
            self.record(call, (end_ns - call.start_ns) / 1e9)
            call.span.end(end_time=end_ns)
        finally:
            self.release(call)

    def settle(self, call: MCPCall) -> str | None:
        """Sets the outcome on the (still open) span; returns the error type of a failed request.

        For an adopted span this runs after the framework set its own ``error.type``
        (``tool_error``, an exception class), so the CDE code replaces it.
        """
        span = call.span
        is_tool_call = call.metric_attrs[ATTR_MCP_METHOD_NAME] == "tools/call"
        failure = _failure(call.result, call.exception, is_tool_call)
        if failure is None:
            if is_tool_call and call.result is not None:
                _result_ids(call.result, span, call.attrs)
            if self.capture_content and call.result is not None:
                text = _first_text(call.result)
                if text is not None:
                    span.set_attribute(ATTR_GEN_AI_TOOL_CALL_RESULT, _scrubbed_prefix(text, self.capture_max_length))
            return None
        error_type, description, status_code = failure
        call.metric_attrs[ATTR_ERROR_TYPE] = error_type
        span.set_attribute(ATTR_ERROR_TYPE, error_type)
        if status_code is not None:
            call.metric_attrs[ATTR_RPC_RESPONSE_STATUS_CODE] = status_code
            span.set_attribute(ATTR_RPC_RESPONSE_STATUS_CODE, status_code)
        if call.owned and call.exception is not None:
            span.record_exception(call.exception)
        span.set_status(Status(StatusCode.ERROR, description))
        return error_type

    def record(self, call: MCPCall, duration: float) -> None:
        """The duration record and, for a failed request, one ``cde.errors``."""
        metric_attrs = call.metric_attrs
        self.duration.record(duration, metric_attrs)
        error_type = metric_attrs.get(ATTR_ERROR_TYPE)
        if error_type is not None:
            self.errors.add(1, {ATTR_ERROR_TYPE: error_type, ATTR_OPERATION: call.name})

    @staticmethod
    def release(call: MCPCall) -> None:
        if call.var_token is not None:
            current_call.reset(call.var_token)
            call.var_token = None
        if call.token is not None:
            context.detach(call.token)  # type: ignore[arg-type]
            call.token = None


def _scrubbed_prefix(text: str, length: int) -> str:
    """The first ``length`` characters of ``text``, scrubbed *before* the cut: cutting first could
    leave half a secret (``Bearer abc``) that no longer looks like one. Only a window past the cut
    is scrubbed, so a huge result costs no more than a small one."""
    return scrub_text(text[: length + _SCRUB_WINDOW])[:length]


# -- request inspection -------------------------------------------------------------
def _target(method: str, params: Mapping[str, Any] | None) -> str | None:
    if params and method in ("tools/call", "prompts/get"):
        name = params.get("name")
        if isinstance(name, str) and name:
            return name
    return None


def _client_correlation_id(meta: Mapping[str, Any] | None, ctx: context.Context) -> str | None:
    if meta:
        direct = meta.get(CORRELATION_KEY)
        if isinstance(direct, str) and direct:
            return direct[:_MAX_VALUE]
    value = baggage.get_baggage(CORRELATION_KEY, ctx)
    if value is None and meta and isinstance(meta.get("baggage"), str):
        # A framework that extracted only the trace context from _meta (FastMCP) left the baggage.
        value = baggage.get_baggage(CORRELATION_KEY, _BAGGAGE.extract({"baggage": meta["baggage"]}))
    return value[:_MAX_VALUE] if isinstance(value, str) and value else None


# -- outcome ------------------------------------------------------------------------
def error_type_of(error: BaseException) -> str:
    """The CDE code anywhere in the cause chain (tool errors wrap the original), else its root class."""
    seen: set[int] = set()
    current: BaseException | None = error
    root = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "code", None)
        if isinstance(code, str) and _CODE.fullmatch(code):
            return code
        rpc = _jsonrpc_code(current)
        if rpc is not None:
            return rpc
        root = current
        current = current.__cause__
    return type(root).__name__


def _jsonrpc_code(error: BaseException) -> str | None:
    data = getattr(error, "error", None)  # McpError/MCPError carry an ErrorData
    code = getattr(data, "code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        return str(code)
    if type(error).__name__ == "ValidationError" and type(error).__module__.startswith("pydantic"):
        return _INVALID_PARAMS
    return None


def _failure(result: Any, error: BaseException | None, is_tool_call: bool) -> tuple[str, str, str | None] | None:
    """(error.type, status description, rpc.response.status_code) of a failed request, else None."""
    if result is None and error is not None:
        error_type = error_type_of(error)
        status_code = error_type if error_type.lstrip("-").isdigit() else None
        return error_type, scrub_text(f"{error_type}: {error}")[:_MAX_VALUE], status_code
    if result is None:
        return None
    root = getattr(result, "root", result)  # mcp 1.x wraps results in a ServerResult
    code = getattr(root, "code", None)
    message = getattr(root, "message", None)
    if isinstance(code, int) and isinstance(message, str):  # a JSON-RPC ErrorData
        return str(code), scrub_text(message)[:_MAX_VALUE], str(code)
    if not is_tool_call:
        return None
    is_error, content, structured = _tool_result_parts(root)
    payload = _error_payload(structured, content)
    if not is_error and payload is None:
        return None
    if payload is not None:
        error_type, title = payload
    elif error is not None:
        error_type, title = error_type_of(error), str(error)
    else:
        error_type, title = TOOL_ERROR, ""
    description = f"{error_type}: {title}" if title else error_type
    return error_type, scrub_text(description)[:_MAX_VALUE], None


def _tool_result_parts(root: Any) -> tuple[bool, Any, Any]:
    if isinstance(root, Mapping):
        return root.get("isError") is True, root.get("content"), root.get("structuredContent")
    is_error = getattr(root, "isError", None)
    if is_error is None:
        is_error = getattr(root, "is_error", None)
    structured = getattr(root, "structuredContent", None)
    if structured is None:
        structured = getattr(root, "structured_content", None)
    return is_error is True, getattr(root, "content", None), structured


def _first_text(result: Any) -> str | None:
    root = getattr(result, "root", result)
    _, content, _ = _tool_result_parts(root)
    if not isinstance(content, list | tuple) or not content:
        return None
    item = content[0]
    text = item.get("text") if isinstance(item, Mapping) else getattr(item, "text", None)
    return text if isinstance(text, str) else None


def _result_ids(result: Any, span: trace.Span, known: Mapping[str, Any]) -> None:
    """Ids in a tool's result (a created feature's, the project's): on the span too, so one tag
    finds the whole workflow. Structured results are read always; a text result is parsed only
    when the call named no feature (so, in practice, once per workflow: its start)."""
    root = getattr(result, "root", result)
    is_error, content, structured = _tool_result_parts(root)
    if is_error:
        return
    if isinstance(structured, Mapping) and _set_ids(structured, span, known):
        return
    if ATTR_FEATURE_ID in known:
        return
    text = _first_text({"content": content}) if content else None
    if text is None or len(text) > _MAX_PAYLOAD_SCAN or not text.startswith("{") or '"feature_id"' not in text:
        return
    try:
        parsed = json.loads(text)
    except ValueError:
        return
    if isinstance(parsed, Mapping):
        _set_ids(parsed, span, known)


def _set_ids(found: Mapping[str, Any], span: trace.Span, known: Mapping[str, Any]) -> bool:
    seen = False
    for key, attr in (("feature_id", ATTR_FEATURE_ID), ("project_id", ATTR_PROJECT_ID)):
        value = found.get(key)
        if isinstance(value, str) and value:
            seen = True
            if attr not in known:
                span.set_attribute(attr, value[:_MAX_VALUE])
    return seen


def _error_payload(structured: Any, content: Any) -> tuple[str, str] | None:
    """(code, title) of a coded error payload: ``ErrorFormatter.to_json`` (with isError) or the
    upstream orchestrator's ``{"status": "error", "error_code": ...}`` envelope (returned as a
    normal result)."""
    found = _coded(structured) if isinstance(structured, Mapping) else None
    if found is not None:
        return found
    text = _first_text({"content": content}) if content else None
    if text is None or len(text) > _MAX_PAYLOAD_SCAN or not text.startswith("{"):
        return None
    if '"code"' not in text and '"error_code"' not in text:
        return None  # cheap test first: most results are not errors
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return _coded(parsed) if isinstance(parsed, Mapping) else None


def _coded(payload: Mapping[str, Any]) -> tuple[str, str] | None:
    code = payload.get("code")
    if isinstance(code, str) and _CODE.fullmatch(code) and "recoverable" in payload:
        return code, str(payload.get("title") or payload.get("name") or "")
    if payload.get("status") == "error":
        upstream = payload.get("error_code")
        if isinstance(upstream, str) and upstream:
            return upstream[:32], str(payload.get("error_type") or "")
    return None
