"""Which context is an MCP request's parent, and which one is only linked.

The MCP semantic conventions: the trace context the client sent in ``params._meta``
(``traceparent``, ``tracestate``, ``baggage``) is the parent when present; else, on HTTP, the
HTTP request's context - the HTTP server span when an HTTP instrumentation made one, else the
request's own ``traceparent`` header. When both exist and differ, ``_meta`` is the parent and the
HTTP context a span link.

The HTTP request's context is taken where the request is received: the streamable HTTP
transport's POST handler runs in the request's own task, under the HTTP server span an
instrumentation such as Starlette/ASGI opened. The MCP request itself is served elsewhere: mcp
1.x serves a whole session in one task that keeps the context of the request that *created* the
session (``initialize``), so the ambient context there is the wrong one and never used on HTTP.
:func:`note_http_request` keeps the request's context beside the request object the transport
hands on (as message metadata) until the request object is gone.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanContext

from cde_otel._correlation import bounded_carrier

_TRACE_KEYS = ("traceparent", "tracestate", "baggage")
_MAX_HEADER = 512  # a W3C traceparent is 55 characters; anything much longer is not one
# id(request) -> (request's weak reference, its context). A Starlette Request is a Mapping, so
# unhashable: no WeakKeyDictionary; each entry goes when its request is collected.
_received: dict[int, tuple[weakref.ref[Any], Context]] = {}


@dataclass(frozen=True, slots=True)
class ContextChoice:
    """The parent context of a request's SERVER span, and the span context to link (if any)."""

    parent: Context
    link: SpanContext | None = None
    from_meta: bool = False  # the parent is the client's ``_meta`` context (its baggage is parsed)

    @property
    def links(self) -> list[trace.Link] | None:
        return [trace.Link(self.link)] if self.link is not None else None


def note_http_request(request: Any) -> None:
    """Keeps the current context (the HTTP request's: its server span, or none) for ``request``."""
    key = id(request)

    def forget(_ref: weakref.ref[Any]) -> None:
        _received.pop(key, None)

    try:
        ref = weakref.ref(request, forget)
    except TypeError:  # not weak-referenceable: the headers alone will do
        return
    _received[key] = (ref, context.get_current())


def http_context(request: Any) -> Context | None:
    """The HTTP request's trace context: its server span's, else its ``traceparent`` header's."""
    entry = _received.get(id(request))
    if entry is not None and entry[0]() is request and _valid(entry[1]):
        return entry[1]
    headers = getattr(request, "headers", None)
    if headers is None:
        return None
    carrier = {}
    for key in _TRACE_KEYS:
        value = headers.get(key)
        if isinstance(value, str) and value and len(value) <= _MAX_HEADER * (8 if key == "baggage" else 1):
            carrier[key] = value
    return _extracted(carrier)


def meta_context(meta: Mapping[str, Any] | None) -> Context | None:
    """The context the client sent in ``_meta``, if it holds a valid ``traceparent``."""
    if not meta or "traceparent" not in meta:
        return None
    # Bounded before any propagator parses it: a client may send a 10 MB baggage.
    return _extracted(bounded_carrier({k: v for k, v in meta.items() if k in _TRACE_KEYS and isinstance(v, str)}))


def choose(meta: Mapping[str, Any] | None, request: Any = None) -> ContextChoice:
    """The parent and link of one request (see the module docs).

    ``request`` is the transport's request object (HTTP), or None (stdio). On stdio the ambient
    context is the process's (e.g. a ``TRACEPARENT`` the parent process handed down): the parent
    when ``_meta`` has none, else linked. On HTTP it is never used; with neither ``_meta`` nor an
    HTTP context the request starts a new trace.
    """
    from_meta = meta_context(meta)
    if request is None:
        ambient = trace.get_current_span().get_span_context()
        if from_meta is None:
            return ContextChoice(context.get_current())
        return ContextChoice(from_meta, _differing(ambient, from_meta), from_meta=True)
    from_http = http_context(request)
    if from_meta is not None:
        linked = trace.get_current_span(from_http).get_span_context() if from_http is not None else None
        return ContextChoice(from_meta, _differing(linked, from_meta), from_meta=True)
    return ContextChoice(from_http if from_http is not None else Context())


def _differing(candidate: SpanContext | None, parent: Context) -> SpanContext | None:
    if candidate is None or not candidate.is_valid:
        return None
    chosen = trace.get_current_span(parent).get_span_context()
    same = candidate.trace_id == chosen.trace_id and candidate.span_id == chosen.span_id
    return None if same else candidate


def _extracted(carrier: Mapping[str, str]) -> Context | None:
    if "traceparent" not in carrier:
        return None
    try:
        extracted = propagate.extract(carrier, context=Context())
    except Exception:  # a malformed header from an untrusted client: as if absent
        return None
    return extracted if _valid(extracted) else None


def _valid(ctx: Context) -> bool:
    return trace.get_current_span(ctx).get_span_context().is_valid
