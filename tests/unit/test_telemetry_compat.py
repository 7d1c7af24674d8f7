"""The private SDK/contrib surfaces: found on the installed releases, and a safe fallback when moved.

The first test fails when an SDK release moves one of them (then ``_otel_compat`` needs updating);
the second shows what cde-otel does meanwhile.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry._logs import NoOpLoggerProvider, get_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ConsoleMetricExporter,
    InMemoryMetricReader,
    MetricsData,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cde_otel import _otel_compat as compat
from cde_otel.telemetry._local_files import metric_preferences


def test_every_private_surface_is_found_on_the_installed_releases() -> None:
    host = compat.host_resource_detector()
    assert host is not None and "host.name" in host.detect().attributes

    reader = InMemoryMetricReader()
    assert compat.reader_collect(reader) is None  # not registered yet
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("m").create_counter("c").add(1)
    collect = compat.reader_collect(reader)
    assert collect is not None
    assert isinstance(collect(reader, timeout_millis=1_000), MetricsData)
    temporalities = compat.reader_temporalities(reader)
    assert any(issubclass(kind, Counter) for kind in temporalities)
    assert set(temporalities.values()) == {AggregationTemporality.CUMULATIVE}
    provider.shutdown()

    temporality, aggregation = metric_preferences({"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta"})
    exporter = ConsoleMetricExporter(preferred_temporality=temporality, preferred_aggregation=aggregation)
    found_temporality, found_aggregation = compat.exporter_preferences(exporter)
    assert found_temporality is not None and found_temporality[Histogram] is AggregationTemporality.DELTA
    assert found_aggregation is not None and Histogram in found_aggregation

    tracer_provider = TracerProvider()
    processor = BatchSpanProcessor(InMemorySpanExporter(), schedule_delay_millis=60_000)
    tracer_provider.add_span_processor(processor)
    for _ in range(3):
        tracer_provider.get_tracer("t").start_span("s").end()
    assert compat.queued_items(processor) == 3
    tracer_provider.shutdown()

    finished = InMemorySpanExporter()
    spans_provider = TracerProvider()
    spans_provider.add_span_processor(SimpleSpanProcessor(finished))
    spans_provider.get_tracer("t").start_span("s", attributes={"a": "b"}).end()
    (span,) = finished.get_finished_spans()
    fields = compat.readable_span_fields(span)
    assert fields is not None
    public = (
        span.context, span.parent, span.name, span.kind, span.start_time, span.end_time, dict(span.attributes or {}),
        span.dropped_attributes, span.events, span.dropped_events, span.links, span.dropped_links, span.status,
        span.resource, span.instrumentation_scope,
    )  # fmt: skip
    assert fields == public
    assert fields[6] is span._attributes._dict  # the SDK's own dict, no copy

    assert compat.is_proxy_logger_provider(get_logger_provider()) or isinstance(
        get_logger_provider(), LoggerProvider | NoOpLoggerProvider
    )
    assert not compat.is_proxy_logger_provider(LoggerProvider())
    assert compat.logging_handler_has_attribute_hook()
    assert all(logging.getLogger(name) for name in compat.EXPORT_LOGGERS)


class _Moved:
    """An object of a release where the private attribute is gone."""


def test_a_moved_surface_degrades_to_its_documented_fallback() -> None:
    moved: Any = _Moved()
    assert compat.reader_collect(moved) is None
    assert compat.reader_temporalities(moved) == {}
    assert compat.exporter_preferences(moved) == (None, None)
    assert compat.queued_items(moved) == 0
    assert compat.readable_span_fields(moved) is None  # not the SDK's class: the caller reads its properties
    assert not compat.is_proxy_logger_provider(moved)


def test_a_logging_handler_without_the_attribute_hook_bridges_nothing_rather_than_unredacted(
    monkeypatch: Any,
) -> None:
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    from cde_otel._swallowed import swallowed_counts
    from cde_otel.logging._bridge import ForeignRecordBridge

    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    record = logging.LogRecord("app", logging.WARNING, __file__, 1, "password=%s", ("hunter2",), None)

    supported = ForeignRecordBridge(provider)
    supported.handle(record)
    (exported,) = exporter.get_finished_logs()
    assert "hunter2" not in str(exported.log_record.body)  # the hook redacts

    exporter.clear()
    before = swallowed_counts().get("logging.bridge_unsupported", 0)
    monkeypatch.delattr(LoggingHandler, "_get_attributes")  # a release where the hook moved
    assert not compat.logging_handler_has_attribute_hook()
    moved = ForeignRecordBridge(provider)
    moved.handle(record)
    assert exporter.get_finished_logs() == ()  # not bridged at all, never unredacted
    assert swallowed_counts()["logging.bridge_unsupported"] == before + 1


def _public_fields(span: Any) -> tuple[Any, ...]:
    return (
        span.context, span.parent, span.name, span.kind, span.start_time, span.end_time, dict(span.attributes or {}),
        span.dropped_attributes, tuple(span.events), span.dropped_events, tuple(span.links), span.dropped_links,
        span.status, span.resource, span.instrumentation_scope,
    )  # fmt: skip


def test_a_finished_span_read_at_once_is_what_its_properties_read() -> None:
    from opentelemetry.sdk.trace import ReadableSpan, SpanLimits
    from opentelemetry.trace import Link, Status, StatusCode

    finished = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_attributes=2, max_events=1, max_links=1))
    provider.add_span_processor(SimpleSpanProcessor(finished))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("parent") as parent:
        linked = parent.get_span_context()
        span = tracer.start_span("child", attributes={"a": 1, "b": 2, "c": 3}, links=[Link(linked), Link(linked)])
        span.add_event("one")
        span.add_event("two")
        span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end()
    child = next(s for s in finished.get_finished_spans() if s.name == "child")
    fields = compat.readable_span_fields(child)
    assert fields == _public_fields(child)
    assert (fields[7], fields[9], fields[11]) == (1, 1, 1)  # what the limits dropped, counted as the SDK counts
    assert fields[1] is not None and fields[12].description == "boom"

    bare = ReadableSpan(name="bare")  # built by hand: no attributes, the default empty events and links
    assert compat.readable_span_fields(bare) == _public_fields(bare)

    moved = ReadableSpan(name="moved")
    del moved.__dict__["_events"]  # a release that keeps its events elsewhere
    assert compat.readable_span_fields(moved) is None


def test_a_span_class_of_someone_else_is_read_through_its_properties() -> None:
    from opentelemetry.sdk.trace import ReadableSpan

    class Renamed(ReadableSpan):  # a subclass may override what a property returns
        @property
        def name(self) -> str:
            return "renamed"

    assert compat.readable_span_fields(Renamed(name="n")) is None
