"""Spans queued slim and records encoded as they end: the same bytes on the wire, nothing of the
span kept in the queue, scrubbed before they are queued, and the stock path for what ours cannot encode."""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path
from typing import Any

import pytest
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as stock_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as stock_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from otlp_samples import (  # type: ignore[import-not-found]  # by file name, as pytest imports it
    ALL_TYPES,
    RESOURCE,
    record_sample_spans,
    spans_under_an_equal_resource,
)

from cde_otel._otel_compat import batch_emitter, queued_items
from cde_otel._swallowed import swallowed_counts
from cde_otel.settings import load_settings
from cde_otel.telemetry import _otlp_http, _otlp_json, _otlp_proto
from cde_otel.telemetry._encoded import (
    EncodedItem,
    EncodingBatchLogRecordProcessor,
    SlimBatchSpanProcessor,
    SlimSpan,
    slim_span,
)
from cde_otel.telemetry._export_status import ExportStatus, TrackedSpanExporter
from cde_otel.telemetry._pipeline import build_pipeline

SECRET = "password=hunter2 token sk-live-abcdefghijklmnop1234"


def _finished_spans(attributes: dict[str, Any]) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    record_sample_spans(provider, attributes)
    tracer = provider.get_tracer("scope.a", "1.2", schema_url="https://s", attributes={"scope.attr": "x"})
    for n in range(5):
        with tracer.start_as_current_span(f"op{n}", attributes={"n": n}):
            pass
    provider.shutdown()
    return [*exporter.get_finished_spans(), *spans_under_an_equal_resource()]


def _finished_records() -> list[Any]:
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    direct = provider.get_logger("direct", "2.0", schema_url="https://l")
    bodies: tuple[Any, ...] = ("text", 7, 2.5, {"k": [1, "a"]}, None)
    for body in bodies:
        direct.emit(LogRecord(body=body, severity_number=SeverityNumber.WARN, attributes={"x": "y"}))
    with TracerProvider().get_tracer("t").start_as_current_span("inside"):
        direct.emit(LogRecord(body="in a span", event_name="cde.event"))
    provider.shutdown()
    return list(exporter.get_finished_logs())


def test_protobuf_requests_of_slim_and_mixed_spans_and_encoded_records_are_the_stock_encoders_bytes() -> None:
    spans = _finished_spans({**ALL_TYPES, "bytes": b"\x00\xff", "long": "x" * 300})
    stock = bytes(stock_spans(spans).SerializePartialToString())
    slim = [slim_span(span) for span in spans]
    assert _otlp_proto.encode_spans(_otlp_proto.Envelope(), slim) == stock
    mixed = [item if n % 2 else spans[n] for n, item in enumerate(slim)]
    assert _otlp_proto.encode_spans(_otlp_proto.Envelope(), mixed) == stock
    read_as_spans: Any = slim  # the stock encoder reads them as it reads spans
    assert bytes(stock_spans(read_as_spans).SerializePartialToString()) == stock

    records = _finished_records()
    encoded_records = [_otlp_proto.encoded_log(record) for record in records]
    assert _otlp_proto.encode_logs(_otlp_proto.Envelope(), encoded_records) == bytes(
        stock_logs(records).SerializePartialToString()
    )


def test_json_lines_of_slim_and_mixed_spans_and_encoded_records_are_the_same_bytes() -> None:
    spans = _finished_spans(ALL_TYPES)
    line = _otlp_json.dumps_line(_otlp_json.encode_spans(_otlp_json.new_envelope(), spans))
    slim = [slim_span(span) for span in spans]
    mixed = [item if n % 2 else spans[n] for n, item in enumerate(slim)]
    for batch in (slim, mixed):
        assert _otlp_json.dumps_line(_otlp_json.encode_spans(_otlp_json.new_envelope(), batch)) == line
    assert len(json.loads(line)["resourceSpans"]) == 1  # an equal resource on another object: one group

    records = _finished_records()
    encoded_records = [_otlp_json.encoded_log(record) for record in records]
    assert _otlp_json.dumps_line(_otlp_json.encode_logs(_otlp_json.new_envelope(), encoded_records)) == (
        _otlp_json.dumps_line(_otlp_json.encode_logs(_otlp_json.new_envelope(), records))
    )


def test_a_slim_span_keeps_what_the_span_had_in_few_objects_the_collector_walks() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("parent"), tracer.start_as_current_span("child", attributes={"a": "b"}) as child:
        child.add_event("seen", {"n": 1})
        child.set_status(Status(StatusCode.ERROR, "failed"))
    with tracer.start_as_current_span("plain", attributes={"a": "b", "n": 2}):
        pass
    provider.shutdown()
    fields = ("name", "context", "parent", "kind", "start_time", "end_time", "resource", "instrumentation_scope")
    counts = ("dropped_attributes", "dropped_events", "dropped_links")
    for span in exporter.get_finished_spans():
        slim = slim_span(span)
        assert all(getattr(slim, field) == getattr(span, field) for field in (*fields, *counts))
        assert slim.get_span_context() == span.get_span_context()
        assert dict(slim.attributes) == dict(span.attributes or {})
        assert (slim.events, slim.links) == (span.events, span.links)
        assert (slim.status.status_code, slim.status.description) == (span.status.status_code, span.status.description)
    by_name = {span.name: span for span in exporter.get_finished_spans()}
    plain = slim_span(by_name["plain"])
    # The attributes are the SDK's own dict of strings and numbers, which the collector does not walk;
    # a status without a message is one shared object, the ids are integers: the slim span is the
    # only object of its own the collector tracks.
    assert type(plain.attributes) is dict and not gc.is_tracked(plain.attributes)
    assert plain.status is slim_span(by_name["parent"]).status
    shared = (SlimSpan, plain.resource, plain.instrumentation_scope, plain.kind, plain.status)
    assert all(any(o is s for s in shared) for o in gc.get_referents(plain) if gc.is_tracked(o))


def test_the_queue_keeps_a_slim_span_and_not_the_span(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # the span stays queued until the flush below
    pipeline = build_pipeline(load_settings({"CDE_OTEL_LOCAL_DIR": str(tmp_path)}), {"OTEL_METRICS_EXPORTER": "none"})
    try:
        processor = pipeline.batch_processors["traces"]
        assert isinstance(processor, SlimBatchSpanProcessor)
        assert isinstance(pipeline.batch_processors["logs"], EncodingBatchLogRecordProcessor)
        tracer = pipeline.tracer_provider.get_tracer("host.instrumentation")
        with tracer.start_as_current_span("failed", attributes={"cde.feature.id": "f-1"}) as span:
            span.record_exception(RuntimeError(f"login failed: {SECRET}"))  # another instrumentation's call
            span.set_status(Status(StatusCode.ERROR, f"login failed: {SECRET}"))
            ended = weakref.ref(span)
        del span
        assert queued_items(processor) == 1
        assert ended() is None  # freed as it ended: the queue holds its fields, not its objects
        pipeline.logger_provider.get_logger("host").emit(
            LogRecord(body=f"caught: {SECRET}", severity_number=SeverityNumber.ERROR)
        )
        assert pipeline.tracer_provider.force_flush() and pipeline.logger_provider.force_flush()
    finally:
        pipeline.tracer_provider.shutdown()
        pipeline.logger_provider.shutdown()
        pipeline.meter_provider.shutdown()

    (request,) = [json.loads(line) for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    (written,) = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert written["name"] == "failed" and written["status"] == {
        "code": 2,
        "message": "login failed: password=[REDACTED] token [REDACTED]",  # scrubbed before it was queued
    }
    assert {"key": "cde.feature.id", "value": {"stringValue": "f-1"}} in written["attributes"]
    (event,) = written["events"]
    event_text = json.dumps(event)
    assert "hunter2" not in event_text and "sk-live" not in event_text
    assert "login failed: password=[REDACTED]" in event_text
    (logs,) = [json.loads(line) for line in (tmp_path / "logs.jsonl").read_text().splitlines()]
    (record,) = logs["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
    assert record["body"] == {"stringValue": "caught: password=[REDACTED] token [REDACTED]"}


class _Kept(SpanExporter):
    """What reaches the OTLP/HTTP exporter's export(), kept."""

    queue_form = staticmethod(slim_span)

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    def export(self, spans: Any) -> SpanExportResult:
        self.batches.append(list(spans))
        return SpanExportResult.SUCCESS


def _queued_through(exporter: _Kept, form: Any) -> TracerProvider:
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SlimBatchSpanProcessor(TrackedSpanExporter(exporter, ExportStatus()), form))
    return provider


def test_a_batch_ours_cannot_encode_goes_to_the_stock_encoder_slim_spans_included() -> None:
    """An int beyond int64: the stock encoder skips that attribute and sends the rest."""
    kept = _Kept()
    form = TrackedSpanExporter(kept, ExportStatus()).queue_form()
    assert form is not None
    provider = _queued_through(kept, form)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("fine", attributes={"ok": 1}):
        pass
    with tracer.start_as_current_span("big int", attributes={"ok": 1, "huge": 2**70}):
        pass
    assert provider.force_flush()
    provider.shutdown()

    (batch,) = kept.batches
    assert [type(item) for item in batch] == [SlimSpan, SlimSpan]
    before = swallowed_counts().get("export.encode", 0)
    request = ExportTraceServiceRequest.FromString(_otlp_http._encode_spans(batch).SerializePartialToString())
    assert swallowed_counts().get("export.encode", 0) == before + 1  # counted, not raised
    names = [span.name for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
    assert sorted(names) == ["big int", "fine"]
    keys = {kv.key for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans for kv in s.attributes}
    assert keys == {"ok"}


def test_a_span_that_cannot_be_queued_slim_is_queued_as_it_is() -> None:
    def failing(span: Any) -> Any:
        raise ValueError("no slim form")

    kept = _Kept()
    provider = _queued_through(kept, failing)
    before = swallowed_counts().get("export.queue_form", 0)
    with provider.get_tracer("t").start_as_current_span("kept whole"):
        pass
    assert swallowed_counts().get("export.queue_form", 0) == before + 1  # counted, not raised
    assert provider.force_flush()
    provider.shutdown()
    (batch,) = kept.batches
    assert [(type(item), item.name) for item in batch] == [(ReadableSpan, "kept whole")]


def test_exporters_without_a_queue_form_keep_the_stock_processors(tmp_path: Path) -> None:
    pipeline = build_pipeline(
        load_settings({}),
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_LOGS_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none"},
    )
    try:
        assert type(pipeline.batch_processors["traces"]) is BatchSpanProcessor
        assert not isinstance(pipeline.batch_processors["logs"], EncodingBatchLogRecordProcessor)
    finally:
        pipeline.tracer_provider.shutdown()
        pipeline.logger_provider.shutdown()
        pipeline.meter_provider.shutdown()


def test_a_span_processor_whose_queue_moved_takes_the_stock_path() -> None:
    kept = _Kept()
    processor = SlimBatchSpanProcessor(kept, slim_span)
    processor._emit = None  # what batch_emitter gives for an SDK whose processor queues elsewhere
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("kept"):
        pass
    assert provider.force_flush()
    provider.shutdown()
    (batch,) = kept.batches
    assert [(type(item), item.name) for item in batch] == [(ReadableSpan, "kept")]


def test_a_log_processor_whose_queue_moved_takes_the_stock_path() -> None:
    assert batch_emitter(object()) is None
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    processor = EncodingBatchLogRecordProcessor(exporter, _otlp_json.encoded_log)
    processor._emit = None  # what batch_emitter gives for an SDK whose processor queues elsewhere
    provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    provider.get_logger("host").emit(LogRecord(body="kept"))
    assert provider.force_flush()
    (record,) = exporter.get_finished_logs()
    assert record.log_record.body == "kept" and not isinstance(record, EncodedItem)
    provider.shutdown()
