"""Providers, exporters and readers: what ``configure()`` builds and ``shutdown()`` flushes.

Exporter selection follows the standard variables: ``OTEL_{TRACES,METRICS,LOGS}_EXPORTER``
(``otlp`` default, ``console``, ``none``), ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf``
default, or ``grpc``), and the OTLP endpoint/headers/timeout/compression variables, which the
exporters read themselves. With ``otlp`` selected but no OTLP endpoint configured, telemetry
is kept locally as OTLP-JSON lines (the embedded default), which a collector's ``otlpjsonfile``
receiver can read back: in the user's state directory, ``$XDG_STATE_HOME/cde-otel/<service.name>/``
(``~/.local/state/...``; the platform's equivalent elsewhere), or ``CDE_OTEL_LOCAL_DIR``. Never in
the working directory: that is the user's project.

Shutdown is bounded (``CDE_OTEL_SHUTDOWN_TIMEOUT_S``, default 2 s): the providers are built
without the SDK's own ``atexit`` hooks (``shutdown_on_exit=False``), and
:func:`shutdown_pipeline` shuts the three down in parallel, aborts the exporters (which ends
their retry back-off) when the budget is nearly spent, and returns by the deadline whatever
the collector does, with a count of what could not be sent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from cde_otel._measurements import DeferredMeasurements, defer_measurements
from cde_otel._otel_compat import cardinality_limit_kwargs
from cde_otel.semconv import SIGNALS as _SIGNALS
from cde_otel.settings import Settings
from cde_otel.telemetry._correlation_spans import CorrelationIdSpanProcessor
from cde_otel.telemetry._encoded import EncodingBatchLogRecordProcessor, SlimBatchSpanProcessor
from cde_otel.telemetry._environment import (
    destination as _destination,
)
from cde_otel.telemetry._environment import (
    log_batch_sizes as _log_batch_sizes,
)
from cde_otel.telemetry._environment import (
    metric_export_interval_ms as _metric_export_interval_ms,
)
from cde_otel.telemetry._environment import (
    otlp_endpoints as _otlp_endpoints,
)
from cde_otel.telemetry._environment import span_limits
from cde_otel.telemetry._export_status import (
    ExportStatus,
    TrackedLogExporter,
    TrackedMetricExporter,
    TrackedSpanExporter,
)
from cde_otel.telemetry._exporters import (
    APPLICATION_PROVIDER,
    default_local_dir,
    local_telemetry_dir,
    select_exporters,
)
from cde_otel.telemetry._health_view import ExportingReaderView, cumulative
from cde_otel.telemetry._histograms import METRIC_CARDINALITY_LIMIT, duration_views
from cde_otel.telemetry._providers import AppProviders
from cde_otel.telemetry._resource import DEFAULT_SERVICE_NAME, build_resource, configured_service_name
from cde_otel.telemetry._shutdown import ShutdownReport, flush, shutdown_pipeline

__all__ = [
    "APPLICATION_PROVIDER",
    "DEFAULT_SERVICE_NAME",
    "ExportingReaderView",
    "Pipeline",
    "ShutdownReport",
    "build_pipeline",
    "build_resource",
    "configured_service_name",
    "default_local_dir",
    "flush",
    "local_telemetry_dir",
    "select_exporters",
    "shutdown_pipeline",
]


@dataclass
class Pipeline:
    """Everything one ``configure()`` call created, so ``shutdown()`` can flush exactly that."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider
    health_reader: MetricReader | None
    exporters: dict[str, str] = field(default_factory=dict)
    local_dir: Path | None = None
    service_name: str = DEFAULT_SERVICE_NAME
    app_signals: frozenset[str] = frozenset()  # served by the application's providers: not ours to shut down
    export_status: ExportStatus | None = None
    # -- bounded shutdown --
    shutdown_timeout_s: float = 2.0
    destination: str = ""  # where telemetry goes, for the one "could not send" warning
    tracked_exporters: list[TrackedSpanExporter | TrackedLogExporter | TrackedMetricExporter] = field(
        default_factory=list
    )
    batch_processors: dict[str, Any] = field(default_factory=dict)  # signal -> Batch*Processor (queue left)
    otlp_endpoints: tuple[tuple[str, int], ...] = ()  # (host, port) of each OTLP endpoint in use
    deferred_measurements: DeferredMeasurements | None = None  # our MeterProvider's, closed at shutdown


def build_pipeline(
    settings: Settings, environ: Mapping[str, str] | None = None, app: AppProviders | None = None
) -> Pipeline:
    """Providers and exporters per the settings and ``OTEL_*`` variables; ``app``'s providers serve
    their signals instead (a provider built here for such a signal has no exporter and is dropped)."""
    env = os.environ if environ is None else environ
    app = app or AppProviders()
    # One identity: next to the application's providers, ours describe the same resource.
    resource = app.resource if app.resource is not None else build_resource(env)
    service_name = str(resource.attributes.get("service.name") or DEFAULT_SERVICE_NAME)
    if app.signals == frozenset(_SIGNALS):
        return _application_pipeline(app, service_name, settings)
    # Everything that can be refused is checked before the first provider (and its threads) exists.
    exporters, described, local_dir = select_exporters(settings, env, service_name, app.signals)
    # The application's MeterProvider keeps its own interval: its OTEL_METRIC_EXPORT_INTERVAL is not ours to refuse.
    export_interval_ms = 0.0 if app.meter is not None else _metric_export_interval_ms(settings, env)
    status = ExportStatus()

    tracked: list[Any] = []
    processors: dict[str, Any] = {}
    # shutdown_on_exit=False: the SDK's own atexit hooks are unbounded (retries up to the OTLP timeout
    # per batch) and raise from atexit; configure() registers one bounded shutdown instead.
    tracer_provider = TracerProvider(  # sampler: OTEL_TRACES_SAMPLER
        resource=resource, shutdown_on_exit=False, span_limits=span_limits(env)
    )
    tracer_provider.add_span_processor(CorrelationIdSpanProcessor())  # onto spans others start, too
    span_exporter: SpanExporter | None = exporters["traces"]
    if span_exporter is not None:
        tracked_spans = TrackedSpanExporter(span_exporter, status)
        tracked.append(tracked_spans)
        span_form = tracked_spans.queue_form()
        processors["traces"] = (
            BatchSpanProcessor(tracked_spans) if span_form is None else SlimBatchSpanProcessor(tracked_spans, span_form)
        )
        tracer_provider.add_span_processor(processors["traces"])

    readers: list[MetricReader] = []
    health_reader: MetricReader | None = None
    metric_exporter: MetricExporter | None = exporters["metrics"]
    if metric_exporter is not None:
        tracked.append(TrackedMetricExporter(metric_exporter, status))
        exporting = PeriodicExportingMetricReader(
            tracked[-1],
            export_interval_millis=export_interval_ms,
            **cardinality_limit_kwargs(PeriodicExportingMetricReader, METRIC_CARDINALITY_LIMIT),
        )
        readers.append(exporting)
        if cumulative(exporting):
            health_reader = ExportingReaderView(exporting)
    if health_reader is None:  # nothing exported, or delta temporality: health needs a reader of its own
        health_reader = InMemoryMetricReader(**cardinality_limit_kwargs(InMemoryMetricReader, METRIC_CARDINALITY_LIMIT))
        readers.append(health_reader)
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=readers,
        views=duration_views(settings.histogram, settings.histogram_max_size),
        shutdown_on_exit=False,
    )
    # Only our readers read it, one of them every export interval: the duration records can wait
    # for them (cde_otel._measurements). Not when nothing collects but health, now and then.
    measurements = defer_measurements(meter_provider) if app.meter is None and metric_exporter is not None else None

    logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    log_exporter: LogRecordExporter | None = exporters["logs"]
    queue_size, batch_size = _log_batch_sizes(env)
    if log_exporter is not None:
        tracked_logs = TrackedLogExporter(log_exporter, status)
        tracked.append(tracked_logs)
        log_form = tracked_logs.queue_form()
        processors["logs"] = (
            BatchLogRecordProcessor(tracked_logs, max_queue_size=queue_size, max_export_batch_size=batch_size)
            if log_form is None
            else EncodingBatchLogRecordProcessor(
                tracked_logs, log_form, max_queue_size=queue_size, max_export_batch_size=batch_size
            )
        )
        logger_provider.add_log_record_processor(processors["logs"])

    any_exporter = any(e is not None for e in exporters.values())
    return Pipeline(
        tracer_provider if app.tracer is None else app.tracer,
        meter_provider if app.meter is None else app.meter,
        logger_provider if app.logger is None else app.logger,
        health_reader if app.meter is None else None,  # configure() gives the application's MeterProvider one
        described,
        local_dir,
        service_name,
        app_signals=app.signals,
        export_status=status if any_exporter else None,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        destination=_destination(described, env, local_dir),
        tracked_exporters=tracked,
        batch_processors=processors,
        otlp_endpoints=_otlp_endpoints(described, env),
        deferred_measurements=measurements,
    )


def _application_pipeline(app: AppProviders, service_name: str, settings: Settings) -> Pipeline:
    """Every signal through the application's providers: nothing of ours to build, export or shut down."""
    return Pipeline(
        app.tracer,
        app.meter,
        app.logger,
        None,
        dict.fromkeys(_SIGNALS, APPLICATION_PROVIDER),
        service_name=service_name,
        app_signals=app.signals,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        destination="the application's providers",
    )
