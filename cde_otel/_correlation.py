"""Correlation IDs: one id per top-level operation, carried in OpenTelemetry baggage.

    import cde_otel

    with cde_otel.correlation("request-42"):   # or correlation() for a fresh id
        cde_otel.current_correlation_id()      # "request-42"

Baggage lives in the OpenTelemetry context, so the id follows child spans,
asyncio tasks (contextvars), threads (with the threading instrumentation that
``configure()`` enables) and other processes (W3C ``baggage`` header or the
``BAGGAGE`` environment variable picked up at start-up).

A correlation id (and the trace context) may come from an untrusted client: every id is
cleaned (:func:`clean_correlation_id`: printable, no line breaks or escape sequences, at most
128 characters) and a client's carrier is bounded before any propagator parses it
(:func:`bounded_carrier`: ``baggage`` cut to the W3C limit of 8192 bytes at a list-member
boundary, ``tracestate`` to 512, ``traceparent`` to 256), counting what was dropped
(:func:`dropped_context`). :class:`CappedArguments` keeps OpenTelemetry's own propagation
warnings short when a framework parsed an oversized header before we could bound it.

Only the OpenTelemetry API is used, so logging and instrumentation read the id without
loading the SDK pipeline. Public names are re-exported by ``cde_otel`` and
``cde_otel.telemetry``; this module is private so that it never shadows the
``cde_otel.correlation`` function.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import baggage, context, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator

from cde_otel.semconv import CORRELATION_KEY

__all__ = [
    "CORRELATION_KEY",
    "CappedArguments",
    "bounded_carrier",
    "clean_correlation_id",
    "client_context",
    "client_correlation_id",
    "correlation",
    "current_correlation_id",
    "dropped_context",
    "new_correlation_id",
]

#: The longest correlation id kept (longer ones are cut).
MAX_CORRELATION_ID = 128
#: W3C limits: the whole ``baggage`` header, and ``tracestate``; a ``traceparent`` is 55 characters.
MAX_BAGGAGE_BYTES = 8192
MAX_TRACESTATE = 512
MAX_TRACEPARENT = 256
# ANSI/VT escape sequences (CSI, OSC, two-character ones): removed whole, not just their ESC.
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-_])")
_BAGGAGE = W3CBaggagePropagator()
_dropped_lock = threading.Lock()
_dropped = {"headers": 0, "bytes": 0}


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def clean_correlation_id(value: object) -> str | None:
    """``value`` as a safe correlation id: printable (no line breaks, no escape sequences), at most
    :data:`MAX_CORRELATION_ID` characters; None when nothing is left. Cheap for an id that is fine."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) <= MAX_CORRELATION_ID and value.isprintable():
        return value
    head = _ESCAPE.sub("", value[: MAX_CORRELATION_ID * 8])  # the work is bounded, whatever was sent
    cleaned = "".join(char for char in head if char.isprintable()).strip()[:MAX_CORRELATION_ID]
    return cleaned or None


def current_correlation_id() -> str | None:
    """The correlation id of the current context, if any (cleaned: it may come from a client's baggage)."""
    return clean_correlation_id(baggage.get_baggage(CORRELATION_KEY))


def bounded_carrier(carrier: Mapping[str, Any]) -> dict[str, str]:
    """The string entries of a client's carrier (``_meta``, headers), each trace-context header cut to
    its W3C limit before a propagator sees it: a propagator warns with the whole header it rejects."""
    bounded = {key: value for key, value in carrier.items() if isinstance(value, str)}
    for key, limit in (("baggage", MAX_BAGGAGE_BYTES), ("tracestate", MAX_TRACESTATE)):
        value = bounded.get(key)
        if value is not None and len(value) > limit // 4:  # only a long one can exceed `limit` bytes
            bounded[key] = bounded_list_header(value, limit)
    traceparent = bounded.get("traceparent")
    if traceparent is not None and len(traceparent) > MAX_TRACEPARENT:
        bounded["traceparent"] = _count_dropped(traceparent, traceparent[:MAX_TRACEPARENT])
    return bounded


def bounded_list_header(value: str, limit: int = MAX_BAGGAGE_BYTES) -> str:
    """A comma-separated header (``baggage``, ``tracestate``) cut to at most ``limit`` UTF-8 bytes,
    at the last member boundary within it (a cut member would be a corrupt one)."""
    if len(value) <= limit and len(value.encode("utf-8", "surrogatepass")) <= limit:
        return value
    # Never more than limit + 1 characters encoded, whatever the size of the header.
    head = value[: limit + 1].encode("utf-8", "surrogatepass")[: limit + 1].decode("utf-8", "ignore")
    comma = head.rfind(",")
    return _count_dropped(value, head[:comma] if comma > 0 else "")


def _count_dropped(value: str, kept: str) -> str:
    with _dropped_lock:
        _dropped["headers"] += 1
        _dropped["bytes"] += len(value) - len(kept)
    return kept


def dropped_context() -> dict[str, int]:
    """Client trace-context headers cut so far in this process, and the characters dropped."""
    with _dropped_lock:
        return dict(_dropped)


def client_context(carrier: Mapping[str, Any] | None) -> context.Context:
    """The context a client sent (W3C ``traceparent``/``tracestate``/``baggage`` in an MCP ``_meta``,
    bounded first), else the current one when it sent no valid trace context."""
    if not carrier or "traceparent" not in carrier:
        return context.get_current()
    extracted = propagate.extract(bounded_carrier(carrier))
    if not trace.get_current_span(extracted).get_span_context().is_valid:
        return context.get_current()
    return extracted


def client_correlation_id(carrier: Mapping[str, Any] | None, ctx: context.Context, *, parsed: bool) -> str | None:
    """The client's correlation id (its ``cde.correlation_id`` key, else its baggage's), cleaned.

    ``parsed``: the carrier's baggage is already in ``ctx`` (:func:`client_context` extracted it), so it
    is not parsed a second time; else (a framework extracted only the trace context) it is, bounded.
    """
    if carrier:
        direct = clean_correlation_id(carrier.get(CORRELATION_KEY))
        if direct:
            return direct
    value = baggage.get_baggage(CORRELATION_KEY, ctx)
    if value is None and not parsed and carrier and isinstance(carrier.get("baggage"), str):
        header = bounded_list_header(carrier["baggage"])
        value = baggage.get_baggage(CORRELATION_KEY, _BAGGAGE.extract({"baggage": header}))
    return clean_correlation_id(value)


class CappedArguments(logging.Filter):
    """A filter for OpenTelemetry's propagation loggers: long arguments (a rejected 10 MB header)
    are cut to ``limit`` characters, so a warning never carries a whole header."""

    def __init__(self, limit: int = 256) -> None:
        super().__init__()
        self.limit = limit

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(arg, str) and len(arg) > self.limit for arg in args):
            record.args = tuple(self._cut(arg) if isinstance(arg, str) else arg for arg in args)
        return True

    def _cut(self, text: str) -> str:
        return text if len(text) <= self.limit else f"{text[: self.limit]}...[{len(text) - self.limit} chars cut]"


#: OpenTelemetry's loggers that quote a header (or a part of it) they reject.
PROPAGATION_LOGGERS = ("opentelemetry.baggage.propagation", "opentelemetry.trace.span")


@contextmanager
def correlation(correlation_id: str | None = None) -> Iterator[str]:
    """Runs the block under ``correlation_id`` (a fresh one when omitted), e.g. an incoming request id;
    an id with line breaks or escapes, or longer than 128 characters, is cleaned first."""
    cid = clean_correlation_id(correlation_id) or new_correlation_id()
    token = context.attach(baggage.set_baggage(CORRELATION_KEY, cid))
    try:
        yield cid
    finally:
        context.detach(token)
