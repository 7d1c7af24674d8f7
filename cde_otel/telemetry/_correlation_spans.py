"""The correlation id on spans other instrumentations start (an HTTP server span, a client call).

cde-otel's own spans carry ``cde.correlation_id`` from their start; a span another instrumentation
starts inside a tool call or operation gets it here, from the baggage of its parent context. Unlike
contrib's ``BaggageSpanProcessor``, the value is cleaned first (baggage may be a client's: printable,
at most 128 characters) and a span that already carries the id is left alone, so cde-otel's own
spans pay one dictionary lookup.
"""

from __future__ import annotations

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, SpanProcessor

from cde_otel._correlation import clean_correlation_id
from cde_otel.semconv import ATTR_CORRELATION_ID, CORRELATION_KEY


class CorrelationIdSpanProcessor(SpanProcessor):
    """Copies the cleaned ``cde.correlation_id`` baggage entry onto every span that starts without it."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        attributes = span.attributes  # .get: a missing key would raise and catch KeyError in Mapping.__contains__
        if attributes is not None and attributes.get(ATTR_CORRELATION_ID) is not None:
            return  # cde-otel's own spans: checked first, it is the cheaper test
        value = baggage.get_baggage(CORRELATION_KEY, parent_context)
        if value is None:  # a root operation's span: nothing to copy
            return
        correlation_id = clean_correlation_id(value)
        if correlation_id is not None:
            span.set_attribute(ATTR_CORRELATION_ID, correlation_id)
