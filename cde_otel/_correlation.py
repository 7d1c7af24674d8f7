"""Correlation IDs: one id per top-level operation, carried in OpenTelemetry baggage.

    import cde_otel

    with cde_otel.correlation("request-42"):   # or correlation() for a fresh id
        cde_otel.current_correlation_id()      # "request-42"

Baggage lives in the OpenTelemetry context, so the id follows child spans,
asyncio tasks (contextvars), threads (with the threading instrumentation that
``configure()`` enables) and other processes (W3C ``baggage`` header or the
``BAGGAGE`` environment variable picked up at start-up).

Only the OpenTelemetry API is used, so logging and instrumentation read the id without
loading the SDK pipeline. Public names are re-exported by ``cde_otel`` and
``cde_otel.telemetry``; this module is private so that it never shadows the
``cde_otel.correlation`` function.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import baggage, context

from cde_otel.semconv import CORRELATION_KEY

__all__ = ["CORRELATION_KEY", "correlation", "current_correlation_id", "new_correlation_id"]


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def current_correlation_id() -> str | None:
    """The correlation id of the current context, if any."""
    value = baggage.get_baggage(CORRELATION_KEY)
    return value if isinstance(value, str) else None


@contextmanager
def correlation(correlation_id: str | None = None) -> Iterator[str]:
    """Runs the block under ``correlation_id`` (a fresh one when omitted), e.g. an incoming request id."""
    cid = correlation_id or new_correlation_id()
    token = context.attach(baggage.set_baggage(CORRELATION_KEY, cid))
    try:
        yield cid
    finally:
        context.detach(token)
