"""Our OTLP/JSON encoding equals protobuf's JSON mapping of the SDK's own OTLP encoders.

The reference is ``MessageToDict`` of the SDK's ``encode_spans``/``encode_metrics``/``encode_logs``
(the messages the OTLP exporters send), with enums as numbers and the trace/span ids in hex, as the
OTLP JSON mapping (and the Collector's ``otlpjsonfile`` receiver) wants them.
"""

from __future__ import annotations

import base64
import gc
import math
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as proto_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics as proto_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as proto_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    set_span_in_context,
)
from otlp_samples import (  # type: ignore[import-not-found]  # by file name, as pytest imports it
    ALL_TYPES,
    RESOURCE,
    record_sample_spans,
    spans_under_an_equal_resource,
)

from cde_otel.telemetry import _otlp_json as otlp_json
from cde_otel.telemetry._encoded import slim_span
from cde_otel.telemetry._otlp_json_metrics import encode_metrics


def _hex_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: base64.b64decode(item).hex() if key in ("traceId", "spanId", "parentSpanId") else _hex_ids(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_hex_ids(item) for item in value]
    return value


def _reference(message: Any) -> Any:
    return _hex_ids(MessageToDict(message, use_integers_for_enums=True))


def _ours(request: dict[str, Any]) -> Any:
    return orjson.loads(otlp_json.dumps_line(request))  # through the serialiser, as written to the file


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    record_sample_spans(provider)
    yield exporter
    provider.shutdown()


def test_spans_equal_the_protobuf_json_mapping(spans: InMemorySpanExporter) -> None:
    finished = spans.get_finished_spans()
    reference = _reference(proto_spans(finished))
    ours = _ours(otlp_json.encode_spans(otlp_json.new_envelope(), finished))
    assert ours == reference
    first = ours["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert first["startTimeUnixNano"].isdigit()  # 64-bit integers as strings
    assert len(first["traceId"]) == 32 and int(first["traceId"], 16)  # hex, not base64


def test_an_envelope_reused_across_batches_encodes_each_batch_alike(spans: InMemorySpanExporter) -> None:
    finished = spans.get_finished_spans()
    envelope = otlp_json.new_envelope()
    assert _ours(otlp_json.encode_spans(envelope, finished[:2])) == _reference(proto_spans(finished[:2]))
    assert _ours(otlp_json.encode_spans(envelope, finished[2:])) == _reference(proto_spans(finished[2:]))
    # Another provider with an equal resource (a new object): grouped with the first, as the stock encoder does.
    mixed = [*finished[:2], *spans_under_an_equal_resource(), *finished[2:4]]
    encoded = _ours(otlp_json.encode_spans(envelope, mixed))
    assert encoded == _reference(proto_spans(mixed))
    assert len(encoded["resourceSpans"]) == 1


@pytest.mark.parametrize("temporality", [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA])
def test_every_metric_point_kind_equals_the_protobuf_json_mapping(temporality: AggregationTemporality) -> None:
    from opentelemetry.sdk.metrics import Counter, Histogram, UpDownCounter

    reader = InMemoryMetricReader(preferred_temporality=dict.fromkeys((Counter, UpDownCounter, Histogram), temporality))
    provider = MeterProvider(
        resource=RESOURCE,
        metric_readers=[reader],
        views=[
            View(instrument_name="exp.*", aggregation=ExponentialBucketHistogramAggregation(max_size=20)),
            View(instrument_name="*"),
        ],
    )
    meter = provider.get_meter("meter", "0.1")
    meter.create_counter("int.sum", unit="1", description="counts").add(3, {"a": "b"})
    meter.create_counter("float.sum").add(2.5)
    updown = meter.create_up_down_counter("updown")
    updown.add(-4, {"k": 1})
    updown.add(1, {"k": 2})
    meter.create_gauge("int.gauge").set(7)
    meter.create_observable_gauge("float.gauge", [lambda _options: []])
    meter.create_gauge("float.gauge2").set(-0.5, ALL_TYPES)
    classic = meter.create_histogram("classic", unit="s")
    exponential = meter.create_histogram("exp.histogram", unit="s")
    for value in (0.0, 0.001, 0.5, 3.0, 1e6):
        classic.record(value, {"route": "x"})
        exponential.record(value)
    exponential_negative = meter.create_histogram("exp.signed")
    for value in (-2.0, -0.25, 4.0):
        exponential_negative.record(value)
    data = reader.get_metrics_data()
    assert data is not None
    kinds = {type(m.data).__name__ for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert kinds == {"Sum", "Gauge", "Histogram", "ExponentialHistogram"}
    assert _ours(encode_metrics(otlp_json.new_envelope(), data)) == _reference(proto_metrics(data))
    provider.shutdown()


@pytest.mark.parametrize(
    "body",
    [
        "text",
        "",
        42,
        -1.5,
        True,
        b"\x00\xffbytes",
        ["a", 1, 2.5, False, None, ["nested"]],
        {"key": "value", "n": {"deeper": [1, {"x": b"y"}]}, "empty": {}, "none": None},
        [],
        None,
    ],
)
def test_log_records_with_every_body_type_equal_the_protobuf_json_mapping(body: Any) -> None:
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider(resource=RESOURCE)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("app.logger", "3", schema_url="https://l")
    parent = NonRecordingSpan(SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(1)))
    logger.emit(
        body=body,
        severity_number=SeverityNumber.WARN,
        severity_text="WARNING",
        attributes=ALL_TYPES,
        context=set_span_in_context(parent),
        timestamp=1_700_000_000_123_456_789,
        event_name="app.event",
    )
    logger.emit(body="without context", observed_timestamp=5)
    records = exporter.get_finished_logs()
    assert len(records) == 2
    assert _ours(otlp_json.encode_logs(otlp_json.new_envelope(), records)) == _reference(proto_logs(records))
    provider.shutdown()


def test_non_finite_doubles_are_the_mapping_strings_not_invalid_json() -> None:
    assert otlp_json._double(math.nan) == "NaN"
    assert otlp_json._double(math.inf) == "Infinity"
    assert otlp_json._double(-math.inf) == "-Infinity"
    assert otlp_json._double(0.25) == 0.25
    line = otlp_json.dumps_line({"v": otlp_json._any_value(math.nan)})
    assert line == b'{"v":{"doubleValue":"NaN"}}\n'


def test_a_full_batch_of_spans_never_lives_as_dicts_all_at_once() -> None:
    """Each span is serialised as it is encoded, so the garbage collector is not set off by the
    batch: held as one tree of dicts, 512 spans of ten attributes started sixteen young collections,
    each of which promotes whatever the host has alive at that moment."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("batch")
    attributes = {f"cde.attribute.{i}": f"value {i}" for i in range(10)}
    for _ in range(512):
        with tracer.start_as_current_span("operation", attributes=attributes):
            pass
    batch = [slim_span(span) for span in exporter.get_finished_spans()]
    envelope = otlp_json.new_envelope()
    otlp_json.encode_spans(envelope, batch[:1])  # the resource's and scope's encodings, kept from now on
    started: list[int] = []

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(info["generation"])

    assert gc.isenabled()
    gc.collect()
    gc.callbacks.append(note)
    try:
        line = otlp_json.dumps_line(otlp_json.encode_spans(envelope, batch))
    finally:
        gc.callbacks.remove(note)
    provider.shutdown()
    # Another thread of the test process may allocate meanwhile and set one off; the batch did it 16 times.
    assert len(started) <= 1, started
    assert len(orjson.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"]) == 512
