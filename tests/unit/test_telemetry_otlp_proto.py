"""Our OTLP protobuf encoding is the SDK's own, byte for byte, and the OTLP/HTTP exporters use it.

The reference is ``encode_spans(...).SerializePartialToString()`` / ``encode_logs(...)`` of
``opentelemetry-exporter-otlp-proto-common``: what the stock OTLP/HTTP exporters send.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as stock_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as stock_spans
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as StockLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as StockSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otlp_samples import (  # type: ignore[import-not-found]  # by file name, as pytest imports it
    ALL_TYPES,
    RESOURCE,
    record_sample_spans,
    spans_under_an_equal_resource,
)

from cde_otel._swallowed import swallowed_counts
from cde_otel.telemetry import _otlp_http, _otlp_proto

# What the JSON mapping cannot carry as such, and a length that takes two varint bytes.
PROTO_TYPES: dict[str, Any] = {**ALL_TYPES, "bytes": b"\x00\xff", "long": "x" * 300, "check": "✓"}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    record_sample_spans(provider, PROTO_TYPES)
    tracer = provider.get_tracer("scope.a", "1.2", schema_url="https://s", attributes={"scope.attr": "x"})
    with tracer.start_as_current_span("") as unnamed:  # defaults left out: no name, no event name
        unnamed.add_event("")
    for n in range(40):  # many spans of one scope, as a batch holds them
        with tracer.start_as_current_span(f"op{n}", attributes={"n": n, "cde.operation": "op"}):
            pass
    yield exporter
    provider.shutdown()


def _stock_span_bytes(batch: Any) -> bytes:
    return bytes(stock_spans(batch).SerializePartialToString())


def test_spans_are_the_stock_encoders_bytes(spans: InMemorySpanExporter) -> None:
    finished = spans.get_finished_spans()
    assert _otlp_proto.encode_spans(_otlp_proto.Envelope(), finished) == _stock_span_bytes(finished)


def test_an_envelope_reused_across_batches_and_resources_encodes_each_batch_alike(
    spans: InMemorySpanExporter,
) -> None:
    finished = spans.get_finished_spans()
    envelope = _otlp_proto.Envelope()
    assert _otlp_proto.encode_spans(envelope, finished[:3]) == _stock_span_bytes(finished[:3])
    assert _otlp_proto.encode_spans(envelope, finished[3:]) == _stock_span_bytes(finished[3:])
    # Another provider with an equal resource (a new object): grouped with the first, as the stock encoder does.
    mixed = [*finished[:2], *spans_under_an_equal_resource(), *finished[2:4]]
    assert _otlp_proto.encode_spans(envelope, mixed) == _stock_span_bytes(mixed)


def _records(bodies: tuple[Any, ...]) -> list[Any]:
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(logger_provider=provider)
    host = logging.getLogger("cde_otel_test.otlp_proto")
    host.addHandler(handler)
    host.propagate = False
    try:
        host.warning("hello %s", "world", extra={"k": 1, "seq": ["a"]})
        with TracerProvider().get_tracer("t").start_as_current_span("inside"):
            try:
                raise ZeroDivisionError("boom")
            except ZeroDivisionError:
                host.exception("failed")
    finally:
        host.removeHandler(handler)
    direct = provider.get_logger("direct", "2.0", schema_url="https://l")
    for body in bodies:
        direct.emit(LogRecord(body=body, severity_number=SeverityNumber.INFO, attributes={"x": "y"}))
    direct.emit(LogRecord(body="event", event_name="cde.event", severity_text="NOTICE"))
    records = exporter.get_finished_logs()
    provider.shutdown()
    return list(records)


def test_log_records_with_every_body_type_are_the_stock_encoders_bytes() -> None:
    records = _records((None, "", "text", 0, -7, 2.5, True, False, b"raw", ["a", 1], {"k": {"nested": [1.5]}}))
    assert _otlp_proto.encode_logs(_otlp_proto.Envelope(), records) == bytes(stock_logs(records).SerializeToString())


def test_what_we_cannot_encode_exactly_is_left_to_the_stock_encoder(spans: InMemorySpanExporter) -> None:
    """An int beyond int64: the stock encoder skips that attribute (and logs it); the batch is its bytes."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("big int", attributes={"ok": 1, "huge": 2**70}):
        pass
    batch = exporter.get_finished_spans()
    with pytest.raises(_otlp_proto.Unencodable):
        _otlp_proto.encode_spans(_otlp_proto.Envelope(), batch)
    before = swallowed_counts().get("export.encode", 0)
    encoded = _otlp_http._encode_spans(batch).SerializePartialToString()
    assert encoded == _stock_span_bytes(batch)
    assert swallowed_counts().get("export.encode", 0) == before + 1  # not hidden: counted
    assert b"huge" not in encoded and b"ok" in encoded


def test_the_exporters_run_the_stock_export_with_our_encoder() -> None:
    """Endpoint, headers, retries and limits stay the installed exporter's: only the encoder is ours."""
    for ours, stock, name, encoder in (
        (_otlp_http.OTLPSpanExporter, StockSpanExporter, "encode_spans", _otlp_http._encode_spans),
        (_otlp_http.OTLPLogExporter, StockLogExporter, "encode_logs", _otlp_http._encode_logs),
    ):
        assert issubclass(ours, stock)
        assert ours.export.__code__ is stock.export.__code__
        assert ours.export.__globals__[name] is encoder
        assert stock.export.__globals__[name] is not encoder  # the installed module is untouched


def test_an_export_that_encodes_otherwise_is_kept_as_it_is() -> None:
    def export(self: Any, batch: Any) -> Any:
        return self.serialize(batch)  # encodes some other way: no global encode_spans

    assert _otlp_http.with_encoder(export, "encode_spans", _otlp_http._encode_spans) is export
