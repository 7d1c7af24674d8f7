"""Providers, exporters and readers: what ``configure()`` builds and ``shutdown()`` flushes.

Exporter selection follows the standard variables: ``OTEL_{TRACES,METRICS,LOGS}_EXPORTER``
(``otlp`` default, ``console``, ``none``), ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf``
default, or ``grpc``), and the OTLP endpoint/headers/timeout/compression variables, which the
exporters read themselves. With ``otlp`` selected but no OTLP endpoint configured, telemetry
is kept locally as OTLP-JSON lines under ``CDE_OTEL_LOCAL_DIR`` (the embedded default), which
a collector's ``otlpjsonfile`` receiver can read back.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, ConsoleLogExporter, LogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    InMemoryMetricReader,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import (
    OsResourceDetector,
    OTELResourceDetector,
    ProcessResourceDetector,
    Resource,
    _HostResourceDetector,
    get_aggregated_resources,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from cde_otel._exceptions import CDESystemError
from cde_otel._version import __version__
from cde_otel.semconv import CORRELATION_KEY
from cde_otel.settings import Settings
from cde_otel.telemetry._export_status import (
    ExportStatus,
    TrackedLogExporter,
    TrackedMetricExporter,
    TrackedSpanExporter,
)
from cde_otel.telemetry._histograms import duration_views

DEFAULT_SERVICE_NAME = "cde-orchestrator"
DEFAULT_LOCAL_DIR = ".cde-otel-telemetry"
_SIGNALS = ("traces", "metrics", "logs")


@dataclass
class Pipeline:
    """Everything one ``configure()`` call created, so ``shutdown()`` can flush exactly that."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider
    health_reader: MetricReader | None
    exporters: dict[str, str] = field(default_factory=dict)
    local_dir: Path | None = None
    owned: bool = True
    export_status: ExportStatus | None = None


def build_resource(environ: Mapping[str, str]) -> Resource:
    """service.name (default cde-orchestrator), version, instance id, host, OS and process."""
    detected = get_aggregated_resources(
        [ProcessResourceDetector(), OsResourceDetector(), _HostResourceDetector()],
        initial_resource=Resource.create({"service.version": __version__, "service.instance.id": str(uuid.uuid4())}),
    )
    # The OTEL_* variables (service name, resource attributes) win over what we detect.
    resource = detected.merge(OTELResourceDetector().detect())
    service_name = environ.get("OTEL_SERVICE_NAME", "").strip()
    if service_name:
        resource = resource.merge(Resource({"service.name": service_name}))
    elif str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    return resource


def _exporter_choice(signal: str, environ: Mapping[str, str]) -> str:
    raw = environ.get(f"OTEL_{signal.upper()}_EXPORTER", "otlp").strip().lower() or "otlp"
    choice = raw.split(",")[0].strip()
    if choice not in ("otlp", "console", "none"):
        raise CDESystemError(
            f"OTEL_{signal.upper()}_EXPORTER={raw!r} is not supported by cde-otel",
            "E903",
            {"setting": f"OTEL_{signal.upper()}_EXPORTER", "value": raw, "expected": "otlp|console|none"},
        )
    return choice


def _otlp_endpoint_configured(signal: str, environ: Mapping[str, str]) -> bool:
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    )


def _protocol(signal: str, environ: Mapping[str, str]) -> str:
    return (
        environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()


def _otlp_exporter(signal: str, environ: Mapping[str, str]) -> Any:
    protocol = _protocol(signal, environ)
    if protocol == "grpc":
        if signal == "traces":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            return OTLPSpanExporter()
        if signal == "metrics":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            return OTLPMetricExporter()
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        return OTLPLogExporter()
    if protocol != "http/protobuf":
        raise CDESystemError(
            f"OTLP protocol {protocol!r} is not supported",
            "E903",
            {"setting": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": protocol, "expected": "grpc|http/protobuf"},
        )
    if signal == "traces":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

        return HttpSpanExporter()
    if signal == "metrics":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter

        return HttpMetricExporter()
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter

    return HttpLogExporter()


def _local_exporter(signal: str, directory: Path) -> Any:
    from opentelemetry.exporter.otlp.json.file import FileMetricExporter, FileSpanExporter
    from opentelemetry.exporter.otlp.json.file._log_exporter import FileLogExporter

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{signal}.jsonl"
    if signal == "traces":
        return FileSpanExporter(path)
    if signal == "metrics":
        return FileMetricExporter(path)
    return FileLogExporter(path)


def _console_exporter(signal: str) -> Any:
    # Console output goes to stderr so it never mixes with an application's own stdout.
    if signal == "traces":
        return ConsoleSpanExporter(out=sys.stderr)
    if signal == "metrics":
        return ConsoleMetricExporter(out=sys.stderr)
    return ConsoleLogExporter(out=sys.stderr)


def select_exporters(
    settings: Settings, environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str], Path | None]:
    """The exporter per signal (None for ``none``), a description of each, and the local dir if used."""
    exporters: dict[str, Any] = {}
    described: dict[str, str] = {}
    local_dir: Path | None = None
    for signal in _SIGNALS:
        choice = _exporter_choice(signal, environ)
        if choice == "none":
            exporters[signal], described[signal] = None, "none"
        elif choice == "console":
            exporters[signal], described[signal] = _console_exporter(signal), "console"
        elif _otlp_endpoint_configured(signal, environ):
            exporters[signal] = _otlp_exporter(signal, environ)
            described[signal] = f"otlp ({_protocol(signal, environ)})"
        else:
            local_dir = Path(settings.local_dir or DEFAULT_LOCAL_DIR).resolve()
            exporters[signal] = _local_exporter(signal, local_dir)
            described[signal] = f"local OTLP-JSON file {local_dir / (signal + '.jsonl')}"
    return exporters, described, local_dir


def build_pipeline(settings: Settings, environ: Mapping[str, str] | None = None) -> Pipeline:
    env = os.environ if environ is None else environ
    resource = build_resource(env)
    exporters, described, local_dir = select_exporters(settings, env)
    status = ExportStatus()

    tracer_provider = TracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER(_ARG)
    from opentelemetry.processor.baggage import BaggageSpanProcessor

    # Copies the correlation id onto spans other instrumentations start, too.
    tracer_provider.add_span_processor(BaggageSpanProcessor(lambda key: key == CORRELATION_KEY))
    span_exporter: SpanExporter | None = exporters["traces"]
    if span_exporter is not None:
        tracer_provider.add_span_processor(BatchSpanProcessor(TrackedSpanExporter(span_exporter, status)))

    readers: list[MetricReader] = []
    metric_exporter: MetricExporter | None = exporters["metrics"]
    if metric_exporter is not None:
        interval = env.get("OTEL_METRIC_EXPORT_INTERVAL")
        readers.append(
            PeriodicExportingMetricReader(
                TrackedMetricExporter(metric_exporter, status),
                export_interval_millis=float(interval) if interval else settings.metric_export_interval_ms,
            )
        )
    health_reader = InMemoryMetricReader()
    readers.append(health_reader)
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=readers,
        views=duration_views(settings.histogram, settings.histogram_max_size),
    )

    logger_provider = LoggerProvider(resource=resource)
    log_exporter: LogRecordExporter | None = exporters["logs"]
    queue_size, batch_size = _log_batch_sizes(env)
    if log_exporter is not None:
        logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(
                TrackedLogExporter(log_exporter, status),
                max_queue_size=queue_size,
                max_export_batch_size=batch_size,
            )
        )

    any_exporter = any(e is not None for e in exporters.values())
    return Pipeline(
        tracer_provider,
        meter_provider,
        logger_provider,
        health_reader,
        described,
        local_dir,
        export_status=status if any_exporter else None,
    )


def _log_batch_sizes(environ: Mapping[str, str]) -> tuple[int | None, int | None]:
    """(max_queue_size, max_export_batch_size) for logs: room for two records per span.

    Every operation logs a start and an end record, so the SDK's defaults (2048/512, the
    same as for spans) would drop logs first under load. The OTEL_BLRP_* variables win.
    """
    queue = None if environ.get("OTEL_BLRP_MAX_QUEUE_SIZE") else 8192
    batch = None if environ.get("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE") else 1024
    return queue, batch


def flush(pipeline: Pipeline, timeout_millis: int = 10_000) -> None:
    pipeline.tracer_provider.force_flush(timeout_millis)
    pipeline.meter_provider.force_flush(timeout_millis)
    pipeline.logger_provider.force_flush(timeout_millis)


def shutdown_pipeline(pipeline: Pipeline) -> None:
    if not pipeline.owned:
        return
    for provider in (pipeline.tracer_provider, pipeline.meter_provider, pipeline.logger_provider):
        try:
            provider.shutdown()
        except Exception:  # noqa: S112 - a failing exporter must not stop the others flushing
            continue
