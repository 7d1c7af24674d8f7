"""Exporter selection and resource building, from environment mappings (no globals touched)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.metrics.export import HistogramDataPoint
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from cde_otel.errors import CDESystemError
from cde_otel.semconv import (
    ATTR_OPERATION,
    METRIC_DISK_FREE,
    METRIC_OPERATION_DURATION,
    METRIC_PROCESS_MEMORY_USAGE,
    METRIC_SYSTEM_MEMORY_UTILIZATION,
)
from cde_otel.settings import load_settings
from cde_otel.telemetry._local_files import LocalSpanExporter
from cde_otel.telemetry._pipeline import (
    build_pipeline,
    build_resource,
    default_local_dir,
    select_exporters,
)
from cde_otel.testing import metric_points

DOCUMENTED_SERVICE_NAME = "cde-orchestrator"  # docs/configuration.md: the default of OTEL_SERVICE_NAME


def test_no_endpoint_means_local_otlp_json_files(tmp_path: Path) -> None:
    settings = load_settings({"CDE_OTEL_LOCAL_DIR": str(tmp_path)})
    exporters, described, local_dir = select_exporters(settings, {})
    assert isinstance(exporters["traces"], LocalSpanExporter)
    assert local_dir == tmp_path.resolve()
    assert described["metrics"].endswith("metrics.jsonl")


def test_the_default_local_dir_is_the_users_state_directory_per_service(
    state_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    _, described, local_dir = select_exporters(load_settings({}), {}, "cde-mcp")
    assert local_dir == state_home / "cde-otel" / "cde-mcp"
    assert described["traces"] == f"local OTLP-JSON file {state_home / 'cde-otel' / 'cde-mcp' / 'traces.jsonl'}"
    assert list(tmp_path.iterdir()) == []  # nothing in the working directory
    assert default_local_dir() == state_home / "cde-otel" / DOCUMENTED_SERVICE_NAME
    # A service name is one directory, whatever it contains.
    assert default_local_dir("../../etc/x y").parent == state_home / "cde-otel"
    assert default_local_dir("...").name == DOCUMENTED_SERVICE_NAME


def test_the_local_dir_setting_wins_and_expands_the_home_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    _, _, local_dir = select_exporters(load_settings({"CDE_OTEL_LOCAL_DIR": "~/telemetry"}), {})
    assert local_dir == tmp_path / "telemetry"


def test_endpoint_selects_otlp_http_by_default_and_grpc_by_protocol() -> None:
    settings = load_settings({})
    http, described, local = select_exporters(settings, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert isinstance(http["traces"], HttpSpanExporter) and local is None
    assert described["traces"] == "otlp (http/protobuf)"
    grpc, _, _ = select_exporters(
        settings, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    )
    assert isinstance(grpc["traces"], GrpcSpanExporter)


def test_console_and_none_exporters() -> None:
    exporters, described, _ = select_exporters(
        load_settings({}),
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"},
    )
    assert isinstance(exporters["traces"], ConsoleSpanExporter)
    assert exporters["metrics"] is None and described["logs"] == "none"


def test_the_console_log_exporter_is_built_without_a_deprecation_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exporters, described, _ = select_exporters(load_settings({}), {"OTEL_LOGS_EXPORTER": "console"})
    assert described["logs"] == "console" and type(exporters["logs"]).__name__.startswith("ConsoleLog")


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"},
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
    ],
)
def test_unsupported_choices_are_coded_configuration_errors(env: dict[str, str], setting: str) -> None:
    with pytest.raises(CDESystemError) as raised:
        select_exporters(load_settings({}), env)
    assert raised.value.code == "E903" and raised.value.context["setting"] == setting


def test_resource_defaults_and_overrides() -> None:
    default = build_resource({})
    assert default.attributes["service.name"] == DOCUMENTED_SERVICE_NAME
    for key in ("service.version", "service.instance.id", "host.name", "process.pid", "os.type"):
        assert key in default.attributes, key
    assert build_resource({"OTEL_SERVICE_NAME": "other"}).attributes["service.name"] == "other"


def test_classic_histogram_setting_switches_the_view(tmp_path: Path) -> None:
    settings = load_settings({"CDE_OTEL_HISTOGRAM": "classic", "CDE_OTEL_LOCAL_DIR": str(tmp_path)})
    pipeline = build_pipeline(
        settings, {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none"}
    )
    try:
        histogram = pipeline.meter_provider.get_meter("t").create_histogram(METRIC_OPERATION_DURATION, unit="s")
        histogram.record(0.5, {ATTR_OPERATION: "X"})
        assert pipeline.health_reader is not None
        [point] = metric_points(pipeline.health_reader, METRIC_OPERATION_DURATION)
        assert isinstance(point, HistogramDataPoint) and len(point.explicit_bounds) == 110
    finally:
        pipeline.tracer_provider.shutdown()
        pipeline.meter_provider.shutdown()
        pipeline.logger_provider.shutdown()


def test_log_queue_has_room_for_two_records_per_span_unless_configured() -> None:
    from cde_otel.telemetry._environment import log_batch_sizes as _log_batch_sizes

    queue, batch = _log_batch_sizes({})
    assert queue is not None and batch is not None and queue >= 2 * 2048 and batch >= 2 * 512
    assert _log_batch_sizes({"OTEL_BLRP_MAX_QUEUE_SIZE": "100", "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "10"}) == (
        None,
        None,
    )


def test_system_gauges_register_once_per_provider_and_again_for_a_new_one() -> None:
    import gc

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from cde_otel.telemetry._system_metrics import register_system_metrics

    wanted = {METRIC_DISK_FREE, METRIC_PROCESS_MEMORY_USAGE, METRIC_SYSTEM_MEMORY_UTILIZATION}
    for _ in range(3):  # freed providers' ids get reused; each new provider must still get its gauges
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader])
        register_system_metrics(provider)
        register_system_metrics(provider)  # idempotent for the same provider
        assert {name for name in wanted if metric_points(reader, name)} == wanted
        data = reader.get_metrics_data()
        assert data is not None
        assert sum(len(sm.metrics) for rm in data.resource_metrics for sm in rm.scope_metrics) == len(wanted)
        provider.shutdown()
        del provider, reader
        gc.collect()


def test_the_exporters_scrub_what_other_instrumentations_record() -> None:
    import logging

    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    from cde_otel.telemetry._export_status import ExportStatus, TrackedLogExporter, TrackedSpanExporter

    secret = "password=hunter2 token sk-live-abcdefghijklmnop1234"
    spans, records = InMemorySpanExporter(), InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(TrackedSpanExporter(spans, ExportStatus())))
    logger_provider = LoggerProvider(shutdown_on_exit=False)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(TrackedLogExporter(records, ExportStatus())))
    tracer = tracer_provider.get_tracer("another.instrumentation")
    with tracer.start_as_current_span("clean"):
        pass
    with tracer.start_as_current_span("failed") as span:
        span.record_exception(RuntimeError(f"login failed: {secret}"))
        span.set_status(Status(StatusCode.ERROR, f"login failed: {secret}"))
    foreign = logging.getLogger("host.with.its.own.otel.handler")
    foreign.propagate = False
    foreign.addHandler(LoggingHandler(logger_provider=logger_provider))  # not ours: no scrubbing of its own
    try:
        raise RuntimeError(f"login failed: {secret}")
    except RuntimeError:
        foreign.exception(f"caught: {secret}")

    clean, failed = spans.get_finished_spans()
    assert not clean.events and clean.status.description is None
    assert failed.status.description == "login failed: password=[REDACTED] token [REDACTED]"
    event = dict(failed.events[0].attributes or {})
    assert event["exception.message"] == "login failed: password=[REDACTED] token [REDACTED]"
    (record,) = [r.log_record for r in records.get_finished_logs()]
    attributes = dict(record.attributes or {})
    assert record.body == "caught: password=[REDACTED] token [REDACTED]"
    assert attributes["exception.message"] == "login failed: password=[REDACTED] token [REDACTED]"
    for text in (str(event), str(attributes)):
        assert "hunter2" not in text and "sk-live" not in text


def test_the_resource_is_hashed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The OTLP encoders hash the resource for every span and log record they group.
    from opentelemetry.sdk.resources import Resource

    calls: list[int] = []
    real_hash = Resource.__hash__

    def counting_hash(self: Resource) -> int:
        calls.append(1)
        return real_hash(self)

    monkeypatch.setattr(Resource, "__hash__", counting_hash)
    resource = build_resource({})
    assert {hash(resource) for _ in range(5)} == {hash(resource)}
    assert len(calls) == 1


def test_health_reads_the_exporting_reader_so_each_record_is_aggregated_once(tmp_path: Path) -> None:
    from cde_otel.telemetry._pipeline import ExportingReaderView, shutdown_pipeline

    pipeline = build_pipeline(load_settings({"CDE_OTEL_LOCAL_DIR": str(tmp_path)}), {})
    try:
        assert isinstance(pipeline.health_reader, ExportingReaderView)
        assert len(pipeline.meter_provider._measurement_consumer._reader_storages) == 1  # one aggregation per record
        histogram = pipeline.meter_provider.get_meter("t").create_histogram(METRIC_OPERATION_DURATION, unit="s")
        for expected in (3, 6):
            for _ in range(3):
                histogram.record(0.25, {ATTR_OPERATION: "X"})
            [point] = metric_points(pipeline.health_reader, METRIC_OPERATION_DURATION)
            assert point.count == expected  # fresh, cumulative: the read takes nothing from the exporter
        assert METRIC_OPERATION_DURATION not in (tmp_path / "metrics.jsonl").read_text()  # and exports nothing
    finally:
        shutdown_pipeline(pipeline)
    assert METRIC_OPERATION_DURATION in (tmp_path / "metrics.jsonl").read_text()


def test_health_gets_its_own_reader_when_nothing_is_exported_or_temporality_is_delta(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from cde_otel.telemetry._pipeline import shutdown_pipeline

    settings = load_settings({"CDE_OTEL_LOCAL_DIR": str(tmp_path)})
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")  # read by the exporter
    for env in ({"OTEL_METRICS_EXPORTER": "none"}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}):
        pipeline = build_pipeline(settings, env)
        try:
            assert isinstance(pipeline.health_reader, InMemoryMetricReader), env
        finally:
            shutdown_pipeline(pipeline, 0.5)


def test_span_attribute_values_are_bounded_by_default_and_the_standard_variables_win(tmp_path: Path) -> None:
    from cde_otel.telemetry._environment import EVENT_ATTRIBUTE_LENGTH, SPAN_ATTRIBUTE_LENGTH
    from cde_otel.telemetry._pipeline import shutdown_pipeline

    settings = load_settings({"CDE_OTEL_LOCAL_DIR": str(tmp_path)})
    pipeline = build_pipeline(settings, {})
    try:
        span = pipeline.tracer_provider.get_tracer("t").start_span("s", attributes={"big": "x" * 1_000_000})
        span.add_event("e", {"exception.stacktrace": "y" * 1_000_000})
        span.end()
        assert len(span.attributes["big"]) == SPAN_ATTRIBUTE_LENGTH  # type: ignore[attr-defined]
        assert len(span.events[0].attributes["exception.stacktrace"]) == EVENT_ATTRIBUTE_LENGTH  # type: ignore[attr-defined]
    finally:
        shutdown_pipeline(pipeline)
    limits = build_pipeline(settings, {"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "10"}).tracer_provider._span_limits
    assert limits.max_span_attribute_length is None or limits.max_span_attribute_length != SPAN_ATTRIBUTE_LENGTH


def test_a_metric_stream_keeps_at_most_the_cardinality_limit_where_the_sdk_supports_one(tmp_path: Path) -> None:
    import inspect

    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    from cde_otel.telemetry._histograms import METRIC_CARDINALITY_LIMIT
    from cde_otel.telemetry._pipeline import shutdown_pipeline

    pipeline = build_pipeline(load_settings({"CDE_OTEL_LOCAL_DIR": str(tmp_path)}), {})
    try:
        counter = pipeline.meter_provider.get_meter("t").create_counter("cde.test.names")
        for n in range(METRIC_CARDINALITY_LIMIT + 500):
            counter.add(1, {"name": f"n{n}"})
        points = [p for p in metric_points(pipeline.health_reader, "cde.test.names")]
    finally:
        shutdown_pipeline(pipeline)
    if "cardinality_limits" in inspect.signature(PeriodicExportingMetricReader).parameters:  # SDK >= 1.45.2
        assert len(points) <= METRIC_CARDINALITY_LIMIT + 1
        assert len([p for p in points if p.attributes.get("otel.metric.overflow")]) == 1
        assert sum(getattr(p, "value", 0) for p in points) == METRIC_CARDINALITY_LIMIT + 500  # merged, not lost
    else:  # older SDKs have no limit to set: every attribute set is kept (the bounded attributes are the guard)
        assert len(points) == METRIC_CARDINALITY_LIMIT + 500
