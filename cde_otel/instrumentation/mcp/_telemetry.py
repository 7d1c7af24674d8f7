"""One MCP request as telemetry: its SERVER span, correlation id, outcome and duration record.

Framework hooks (:mod:`cde_otel.instrumentation.mcp._hooks` and the modules it names) call
:meth:`MCPTelemetry.begin` either to start our own span (servers that emit none: mcp 1.x,
standalone fastmcp 2.x) or to adopt the span the framework already opened (mcp 2.x, FastMCP 3+), then note what they see
(the response, an exception the framework turned into an ``isError`` result) and call
:meth:`MCPTelemetry.end`. Only the OpenTelemetry API is used. What a client sends is bounded
here (:mod:`._attributes`, :mod:`._request`); the outcome rules are in :mod:`._errors`, sessions in
:mod:`._session`, the request in flight (:class:`MCPCall`) in :mod:`._call`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.metrics import Counter, Histogram
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from cde_otel._correlation import client_correlation_id
from cde_otel.instrumentation.mcp._attributes import (
    OTHER,
    TOOL,
    BoundedValues,
    KnownNames,
    bounded_method,
    cap_attributes,
    capped,
    registered,
)
from cde_otel.instrumentation.mcp._call import MCPCall, current_call
from cde_otel.instrumentation.mcp._context import ContextChoice, choose
from cde_otel.instrumentation.mcp._errors import (
    Failure,
    cancelled,
    exception_attributes,
    failure_of,
    has_exception_event,
    scrubbed_prefix,
)
from cde_otel.instrumentation.mcp._request import TARGET_ATTRS, request_attrs, request_target, span_name
from cde_otel.instrumentation.mcp._results import first_text, result_ids
from cde_otel.instrumentation.mcp._session import CLIENT_INFO_META_KEY, METRIC_TRANSPORT_ATTRS, MCPSession, Sessions
from cde_otel.semconv import (
    ATTR_CORRELATION_ID,
    ATTR_ERROR_CODE,
    ATTR_ERROR_TYPE,
    ATTR_GEN_AI_OPERATION_NAME,
    ATTR_GEN_AI_TOOL_CALL_RESULT,
    ATTR_MCP_METHOD_NAME,
    ATTR_MCP_PROTOCOL_VERSION,
    ATTR_NETWORK_TRANSPORT,
    ATTR_OPERATION,
    ATTR_RPC_RESPONSE_STATUS_CODE,
    CORRELATION_KEY,
    EXECUTE_TOOL,
)

# A protocol version as the specification spells them (a date); anything else is _OTHER on metrics.
_PROTOCOL_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")
# Transport attribute sets kept for reuse (one per transport and protocol version a client sent).
_MAX_SHARED_TRANSPORTS = 64


class MCPTelemetry:
    """Shared instruments and policies of one :class:`MCPInstrumentor`."""

    def __init__(
        self,
        tracer: Tracer,
        duration: Histogram,
        errors: Counter,
        *,
        session_duration: Histogram | None = None,
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
        self.known = KnownNames()
        self.sessions = Sessions(session_duration)
        # Backstops for values the server (not the client) chooses, should one quote client input.
        self._error_types = BoundedValues(256)
        self._codes = BoundedValues(256)
        self._versions = BoundedValues(16)
        self._shared_transport_attrs: dict[tuple[str | None, str | None], Mapping[str, Any]] = {}
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
        session: Any = None,
        client_info: Any = None,
        peer: Mapping[str, Any] | None = None,
        session_opens: bool = True,
        server: Any = None,
        choice: ContextChoice | None = None,
    ) -> MCPCall:
        """Starts (or, with ``adopt``, enriches) the span of one request and makes it current.

        An owned span's parent and link are ``choice`` (default: the stdio rule for ``meta``, see
        :mod:`._context`); an adopted span got its parent when the framework started it. The call's
        correlation id is the client's (``_meta`` key or baggage ``cde.correlation_id``), else the span's trace id.
        ``session`` is the framework's per-connection object (the session's key), ``client_info``
        what ``initialize`` said (``clientInfo``), ``peer`` the transport's attributes
        (``network.protocol.*``, ``client.address``/``.port``), ``server`` the framework's server
        (its registry tells a registered tool from a name the client made up).
        """
        target = request_target(method, params)
        known = target is not None and self.note_registered(server, method, target)
        name = span_name(method, target if known else None)
        metric_attrs: dict[str, Any] = {ATTR_MCP_METHOD_NAME: bounded_method(method)}
        if method == TOOL:
            metric_attrs[ATTR_GEN_AI_OPERATION_NAME] = EXECUTE_TOOL
        transport_attrs = self._transport_attrs(transport, peer, protocol_version)
        for key in METRIC_TRANSPORT_ATTRS:
            if key in transport_attrs:
                metric_attrs[key] = transport_attrs[key]
        attrs = request_attrs(
            method,
            params,
            target,
            request_id,
            session_id,
            redact_keys=self.redact_keys,
            capture_content=self.capture_content,
            capture_max_length=self.capture_max_length,
        )
        attrs.update(transport_attrs)
        info = client_info if client_info is not None else meta.get(CLIENT_INFO_META_KEY) if meta else None
        mcp_session = self.sessions.get(session, opens=session_opens or method == "initialize")
        if mcp_session is not None:
            attrs.update(mcp_session.note(transport_attrs, info))
        elif info is not None:
            # No session we follow (stateless HTTP; the 2026 protocol names the client per request).
            attrs.update(MCPSession.of(info).span_attributes)

        if adopt is None:
            choice = choice or choose(meta)
            parent = choice.parent
            start_ns = time.time_ns()
            span = self.tracer.start_span(name, parent, SpanKind.SERVER, attrs, choice.links, start_time=start_ns)
        else:
            parent = context.get_current()
            span = adopt
            start_ns = 0
            span.update_name(name)  # the framework named it after the raw tool name
            span.set_attributes(attrs)
        parsed = adopt is None and choice is not None and choice.from_meta  # the client's baggage is in parent
        cid = client_correlation_id(meta, parent, parsed=parsed) or trace.format_trace_id(
            span.get_span_context().trace_id
        )
        span.set_attribute(ATTR_CORRELATION_ID, cid)
        ctx = baggage.set_baggage(CORRELATION_KEY, cid, trace.set_span_in_context(span, parent))
        call = MCPCall(span, name, attrs, metric_attrs)
        call.method = method
        call.target = target
        call.known = known
        call.owned = adopt is None
        call.start_ns = start_ns
        call.token = context.attach(ctx)
        call.var_token = current_call.set(call)
        call.start_perf = time.perf_counter()
        return call

    def note_registered(self, server: Any, method: str, name: str) -> bool:
        """Whether ``name`` is known now: learned already, or found in ``server``'s registry (then learned)."""
        if self.known.knows(method, name):
            return True
        if server is None or not registered(server, method, name):
            return False
        self.known.learn(method, (name,))
        return self.known.knows(method, name)

    def _transport_attrs(
        self, transport: str | None, peer: Mapping[str, Any] | None, protocol_version: Any
    ) -> Mapping[str, Any]:
        """The transport's span attributes (read-only: shared by the requests of one transport and
        version when there is no peer, e.g. every request of a stdio session)."""
        if peer is not None or not (
            protocol_version is None or (isinstance(protocol_version, str) and len(protocol_version) <= 32)
        ):
            return self._new_transport_attrs(transport, peer, protocol_version)
        key = (transport, protocol_version)
        attrs = self._shared_transport_attrs.get(key)
        if attrs is None:
            attrs = self._new_transport_attrs(transport, None, protocol_version)
            if len(self._shared_transport_attrs) < _MAX_SHARED_TRANSPORTS:  # versions are the client's to send
                self._shared_transport_attrs[key] = attrs
        return attrs

    def _new_transport_attrs(
        self, transport: str | None, peer: Mapping[str, Any] | None, protocol_version: Any
    ) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if transport:
            attrs[ATTR_NETWORK_TRANSPORT] = transport
        if peer:
            attrs.update((k, capped(v) if isinstance(v, str) else v) for k, v in peer.items())
        version = self._protocol_version(protocol_version)
        if version is not None:
            attrs[ATTR_MCP_PROTOCOL_VERSION] = version
        return attrs

    def _protocol_version(self, version: Any) -> str | None:
        if not isinstance(version, str) or not version:
            return None
        return self._versions(version) if _PROTOCOL_VERSION.fullmatch(version) else OTHER

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

        For an adopted span this runs after the framework set its own ``error.type``, so ours
        (the conventions' value, with the CDE code beside it) replaces it.
        """
        span = call.span
        method = call.method
        result = call.result
        is_tool_call = method == TOOL
        if result is not None:
            self.known.learn_listed(method, result)  # the server's own tools/list, prompts/list
        error = call.exception
        failure = None if cancelled(error) else failure_of(result, error, is_tool_call)
        if failure is None and call.target is not None and result is not None and not call.known:
            self.known.learn(method, (call.target,))  # only a registered tool or prompt answers
        self._bound_target(call)
        if failure is None:
            if is_tool_call and result is not None:
                result_ids(result, span, call.attrs)
            if self.capture_content and result is not None:
                text = first_text(result)
                if text is not None:
                    span.set_attribute(ATTR_GEN_AI_TOOL_CALL_RESULT, scrubbed_prefix(text, self.capture_max_length))
            return None
        return self._fail(call, failure)

    def _bound_target(self, call: MCPCall) -> None:
        """The tool or prompt name on metrics and in the span name: registered, else ``_OTHER``
        (and the bare method in the span name). An adopted span is renamed and capped again: the
        framework may have renamed it after the raw name since."""
        known = call.target is not None and (call.known or self.known.knows(call.method, call.target))
        if call.target is not None:
            call.metric_attrs[TARGET_ATTRS[call.method]] = call.target if known else OTHER
        if call.owned and known == call.known:
            return  # our span, named so when it began (a name once known stays known)
        name = span_name(call.method, call.target if known else None)
        if name != call.name or not call.owned:
            call.name = name
            call.span.update_name(name)
        if not call.owned:
            cap_attributes(call.span)

    def _fail(self, call: MCPCall, failure: Failure) -> str:
        span = call.span
        error_type = self._error_types(failure.error_type) or OTHER
        span.set_attribute(ATTR_ERROR_TYPE, capped(failure.error_type))
        call.metric_attrs[ATTR_ERROR_TYPE] = error_type
        if failure.status_code is not None:
            span.set_attribute(ATTR_RPC_RESPONSE_STATUS_CODE, failure.status_code)
            call.metric_attrs[ATTR_RPC_RESPONSE_STATUS_CODE] = error_type
        if failure.code is not None:
            span.set_attribute(ATTR_ERROR_CODE, failure.code)
            call.metric_attrs[ATTR_ERROR_CODE] = self._codes(failure.code) or OTHER
        error = call.exception
        if error is not None and not has_exception_event(span):
            span.record_exception(error, attributes=exception_attributes(error))
        span.set_status(Status(StatusCode.ERROR, failure.description))
        return error_type

    def record(self, call: MCPCall, duration: float) -> None:
        """The duration record and, for a failed request, one ``cde.errors`` (same error attributes)."""
        metric_attrs = call.metric_attrs
        self.duration.record(duration, metric_attrs)
        error_type = metric_attrs.get(ATTR_ERROR_TYPE)
        if error_type is not None:
            counted = {ATTR_ERROR_TYPE: error_type, ATTR_OPERATION: call.name}
            code = metric_attrs.get(ATTR_ERROR_CODE)
            if code is not None:
                counted[ATTR_ERROR_CODE] = code
            self.errors.add(1, counted)

    @staticmethod
    def release(call: MCPCall) -> None:
        if call.var_token is not None:
            current_call.reset(call.var_token)
            call.var_token = None
        if call.token is not None:
            context.detach(call.token)  # type: ignore[arg-type]
            call.token = None
