"""The correlation id reaches spans other instrumentations start, cleaned; spans that carry one keep it."""

from __future__ import annotations

from opentelemetry import baggage, context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cde_otel.semconv import ATTR_CORRELATION_ID, CORRELATION_KEY
from cde_otel.telemetry._correlation_spans import CorrelationIdSpanProcessor


def _tracer() -> tuple[InMemorySpanExporter, TracerProvider]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(CorrelationIdSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, provider


def _within_baggage(value: str, provider: TracerProvider, **start: object) -> None:
    token = context.attach(baggage.set_baggage(CORRELATION_KEY, value))
    try:
        provider.get_tracer("another.instrumentation").start_span("GET /mcp", **start).end()  # type: ignore[arg-type]
    finally:
        context.detach(token)


def test_a_span_another_instrumentation_starts_gets_the_correlation_id() -> None:
    exporter, provider = _tracer()
    _within_baggage("run-42", provider)
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None and span.attributes[ATTR_CORRELATION_ID] == "run-42"


def test_a_clients_dirty_correlation_id_is_cleaned_before_it_reaches_a_span() -> None:
    exporter, provider = _tracer()
    _within_baggage("run-1\n\x1b[31mred\x1b[0m" + "x" * 500, provider)
    [span] = exporter.get_finished_spans()
    value = span.attributes[ATTR_CORRELATION_ID] if span.attributes else None
    assert isinstance(value, str) and value.isprintable() and "\x1b" not in value
    assert value.startswith("run-1") and len(value) <= 128


def test_a_span_that_starts_with_a_correlation_id_keeps_its_own() -> None:
    exporter, provider = _tracer()
    _within_baggage("from-baggage", provider, attributes={ATTR_CORRELATION_ID: "own"})
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None and span.attributes[ATTR_CORRELATION_ID] == "own"


def test_no_baggage_no_attribute() -> None:
    exporter, provider = _tracer()
    provider.get_tracer("another.instrumentation").start_span("GET /mcp").end()
    [span] = exporter.get_finished_spans()
    assert ATTR_CORRELATION_ID not in (span.attributes or {})
