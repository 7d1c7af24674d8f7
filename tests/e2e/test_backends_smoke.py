"""Smoke test of the real backend stack, using the OpenTelemetry Python SDK directly.

span    -> collector (OTLP gRPC) -> Jaeger            : found via /api/traces?service=...
metrics -> collector (OTLP gRPC) -> Prometheus (RW)   : exponential histogram arrives as a
                                                        native histogram; explicit-bucket
                                                        histogram as classic _bucket series
log     -> collector (OTLP HTTP) -> file exporter     : record carries the span's trace id
"""

from __future__ import annotations

import uuid
from typing import Any

from backends import Backends, poll_until
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import (
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

DEADLINE = 30.0  # seconds per backend to show the data

EXP_HIST = "cde.smoke.latency"  # unit s, exponential buckets
CLASSIC_HIST = "cde.smoke.classic_latency"  # unit s, explicit buckets
VALUES = [0.05, 0.1, 0.2, 0.4, 0.8]


def test_span_metric_and_log_reach_backends(backends: Backends) -> None:
    service = f"cde-otel-smoke-{uuid.uuid4().hex[:8]}"
    resource = Resource.create({"service.name": service, "service.instance.id": "smoke-1"})

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=backends.otlp_grpc_endpoint, insecure=True))
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=backends.otlp_grpc_endpoint, insecure=True),
        export_interval_millis=60_000,  # we flush explicitly
    )
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=[reader],
        views=[
            View(instrument_name=EXP_HIST, aggregation=ExponentialBucketHistogramAggregation()),
            View(
                instrument_name=CLASSIC_HIST,
                aggregation=ExplicitBucketHistogramAggregation(boundaries=[0.1, 0.5, 1.0]),
            ),
        ],
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{backends.otlp_http_endpoint}/v1/logs"))
    )

    try:
        tracer = tracer_provider.get_tracer("cde-otel.smoke")
        meter = meter_provider.get_meter("cde-otel.smoke")
        otel_logger = logger_provider.get_logger("cde-otel.smoke")

        exp_hist = meter.create_histogram(EXP_HIST, unit="s", description="smoke exponential histogram")
        classic_hist = meter.create_histogram(CLASSIC_HIST, unit="s", description="smoke classic histogram")

        with tracer.start_as_current_span("smoke-operation") as span:
            span.set_attribute("smoke.run", service)
            for v in VALUES:
                exp_hist.record(v, {"route": "/smoke"})
                classic_hist.record(v, {"route": "/smoke"})
            otel_logger.emit(
                body=f"smoke log record for {service}",
                severity_number=SeverityNumber.INFO,
                severity_text="INFO",
                attributes={"smoke.run": service},
            )
            trace_id = format(span.get_span_context().trace_id, "032x")
            span_id = format(span.get_span_context().span_id, "016x")

        assert tracer_provider.force_flush(10_000), "span export did not complete"
        assert meter_provider.force_flush(10_000), "metric export did not complete"
        assert logger_provider.force_flush(10_000), "log export did not complete"
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()
        logger_provider.shutdown()

    # ---- Jaeger -------------------------------------------------------------------------
    def jaeger_trace() -> Any:
        doc = backends.jaeger_get("/api/traces", service=service, limit=20)
        for trace in doc.get("data") or []:
            if int(trace["traceID"], 16) == int(trace_id, 16):
                return trace
        return None

    trace = poll_until(jaeger_trace, timeout=DEADLINE, what=f"trace {trace_id} in Jaeger")
    assert [s["operationName"] for s in trace["spans"]] == ["smoke-operation"]
    assert int(trace["spans"][0]["spanID"], 16) == int(span_id, 16)

    # ---- Prometheus: exponential histogram -> native histogram -----------------------------
    # OTel name cde.smoke.latency + unit s -> cde_smoke_latency_seconds, one native series
    # (no _bucket/_count/_sum series); service.name -> job, service.instance.id -> instance.
    sel = f'{{job="{service}"}}'
    exp_name = "cde_smoke_latency_seconds"

    def native_count() -> Any:
        res = backends.prom_query(f"histogram_count({exp_name}{sel})")
        return res and float(res[0]["value"][1]) == len(VALUES) and res

    res = poll_until(native_count, timeout=DEADLINE, what=f"native histogram {exp_name} in Prometheus")
    assert res[0]["metric"]["instance"] == "smoke-1"
    raw = backends.prom_query(f"{exp_name}{sel}")
    assert len(raw) == 1 and "histogram" in raw[0], f"expected a native histogram sample, got {raw}"
    assert raw[0]["metric"]["route"] == "/smoke"
    assert raw[0]["metric"]["service_name"] == service  # resource_to_telemetry_conversion
    hist_sum = float(backends.prom_query(f"histogram_sum({exp_name}{sel})")[0]["value"][1])
    assert abs(hist_sum - sum(VALUES)) < 1e-9
    median = float(backends.prom_query(f"histogram_quantile(0.5, {exp_name}{sel})")[0]["value"][1])
    assert 0.15 < median < 0.25, median  # true median 0.2, within exponential bucket error
    assert backends.prom_series(f"{exp_name}_bucket{sel}") == []

    # ---- Prometheus: explicit-bucket histogram -> classic series ---------------------------
    classic = "cde_smoke_classic_latency_seconds"
    buckets = poll_until(
        lambda: backends.prom_query(f"{classic}_bucket{sel}"),
        timeout=DEADLINE,
        what=f"classic histogram {classic}_bucket in Prometheus",
    )
    by_le = {b["metric"]["le"]: float(b["value"][1]) for b in buckets}
    assert by_le == {"0.1": 2.0, "0.5": 4.0, "1": 5.0, "+Inf": 5.0}
    assert float(backends.prom_query(f"{classic}_count{sel}")[0]["value"][1]) == len(VALUES)

    # ---- Collector file exporter: log record with the span's trace id ----------------------
    def log_record() -> dict[str, Any] | None:
        for rec in backends.collector_log_records():
            if rec.get("traceId") == trace_id:
                return rec
        return None

    rec = poll_until(log_record, timeout=DEADLINE, what=f"log record with trace id {trace_id}")
    assert rec["body"] == {"stringValue": f"smoke log record for {service}"}
    assert rec["spanId"] == span_id
    resource_attrs = {a["key"]: a["value"] for a in rec["_resource"].get("attributes", [])}
    assert resource_attrs["service.name"] == {"stringValue": service}
