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
import re
import sys
import threading
import time
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
    MetricsData,
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
    quiet_export_logs,
)
from cde_otel.telemetry._histograms import duration_views
from cde_otel.telemetry._providers import AppProviders, remove_health_reader

DEFAULT_SERVICE_NAME = "cde-orchestrator"
APPLICATION_PROVIDER = "the application's provider"
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
    service_name: str = DEFAULT_SERVICE_NAME
    app_signals: frozenset[str] = frozenset()  # served by the application's providers: not ours to shut down
    export_status: ExportStatus | None = None
    # -- bounded shutdown (issue 14) --
    shutdown_timeout_s: float = 2.0
    destination: str = ""  # where telemetry goes, for the one "could not send" warning
    tracked_exporters: list[TrackedSpanExporter | TrackedLogExporter | TrackedMetricExporter] = field(
        default_factory=list
    )
    batch_processors: dict[str, Any] = field(default_factory=dict)  # signal -> Batch*Processor (queue left)
    otlp_endpoints: tuple[tuple[str, int], ...] = ()  # (host, port) of each OTLP endpoint in use


@dataclass(frozen=True)
class ShutdownReport:
    """What one bounded shutdown achieved."""

    seconds: float
    completed: bool  # every provider finished within the budget
    unsent: dict[str, int]  # per signal: items whose export failed, was cut short, or never started
    destination: str
    budget_s: float

    def warning(self) -> str | None:
        """One sentence for the host when something was not sent, else None."""
        names = {"traces": "spans", "logs": "log records", "metrics": "metric points"}
        parts = [f"{self.unsent[signal]:,} {name}" for signal, name in names.items() if self.unsent.get(signal)]
        if not parts:
            return None
        listed = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
        return (
            f"{listed} could not be sent to {self.destination or 'the exporters'} before exit "
            f"(collector unreachable or too slow; shutdown budget {self.budget_s:g} s, CDE_OTEL_SHUTDOWN_TIMEOUT_S)"
        )


class _FrozenResource(Resource):
    """The SDK's ``Resource`` hashes by ``json.dumps`` of all its attributes on every call, and the OTLP
    encoders hash it once per span and per log record. Ours never changes: hash it once."""

    _hash: int | None = None

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = super().__hash__()
        return self._hash


def build_resource(environ: Mapping[str, str]) -> Resource:
    """service.name (default cde-orchestrator), version, instance id, host, OS and process (hashed once)."""
    resource = _detected_resource(environ)
    return _FrozenResource(resource.attributes, resource.schema_url)


def _detected_resource(environ: Mapping[str, str]) -> Resource:
    detected = get_aggregated_resources(
        [ProcessResourceDetector(), OsResourceDetector(), _HostResourceDetector()],
        initial_resource=Resource.create({"service.version": __version__, "service.instance.id": str(uuid.uuid4())}),
    )
    # The OTEL_* variables (service name, resource attributes) win over what we detect.
    configured = OTELResourceDetector().detect()
    return detected.merge(configured).merge(Resource({"service.name": configured_service_name(environ, configured)}))


def configured_service_name(environ: Mapping[str, str], configured: Resource | None = None) -> str:
    """``OTEL_SERVICE_NAME``, else the ``service.name`` of ``OTEL_RESOURCE_ATTRIBUTES``, else cde-orchestrator."""
    named = environ.get("OTEL_SERVICE_NAME", "").strip()
    if named:
        return named
    found = str((configured or OTELResourceDetector().detect()).attributes.get("service.name", ""))
    return found if found and not found.startswith("unknown_service") else DEFAULT_SERVICE_NAME


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
        _require_grpc_extra()
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


def _require_grpc_extra() -> None:
    """The gRPC exporter is the ``cde-otel[grpc]`` extra: say so with E903 instead of a bare ImportError."""
    import importlib.util

    if importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is None:
        raise CDESystemError(
            "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the gRPC exporter: pip install 'cde-otel[grpc]'",
            "E903",
            {
                "setting": "OTEL_EXPORTER_OTLP_PROTOCOL",
                "value": "grpc",
                "expected": "protocol without the gRPC extra (pip install 'cde-otel[grpc]', or use http/protobuf)",
            },
        )


def _local_exporter(signal: str, directory: Path, max_mb: float) -> Any:
    from cde_otel.telemetry._local_files import local_exporter

    return local_exporter(signal, directory, max_mb)


def _console_exporter(signal: str) -> Any:
    # Console output goes to stderr so it never mixes with an application's own stdout.
    if signal == "traces":
        return ConsoleSpanExporter(out=sys.stderr)
    if signal == "metrics":
        return ConsoleMetricExporter(out=sys.stderr)
    return ConsoleLogExporter(out=sys.stderr)


def default_local_dir(service_name: str = DEFAULT_SERVICE_NAME) -> Path:
    """Where the embedded default keeps its files: ``cde-otel/<service.name>`` in the user's state
    directory (``$XDG_STATE_HOME``, else ``~/.local/state``, on Linux)."""
    from platformdirs import user_state_path

    return user_state_path("cde-otel", appauthor=False) / _directory_name(service_name)


def _directory_name(service_name: str) -> str:
    """A service name as one safe path component (no separators, no leading dots)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", service_name).lstrip(".") or DEFAULT_SERVICE_NAME


def local_telemetry_dir(settings: Settings, service: str | None = None) -> Path:
    """``CDE_OTEL_LOCAL_DIR`` when set (``~`` expanded, relative to the working directory), else the
    default for ``service`` (None: the service name the ``OTEL_*`` variables give)."""
    if settings.local_dir:
        return Path(settings.local_dir).expanduser().resolve()
    return default_local_dir(service if service is not None else configured_service_name(os.environ))


def select_exporters(
    settings: Settings,
    environ: Mapping[str, str],
    service: str = DEFAULT_SERVICE_NAME,
    app_signals: frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], dict[str, str], Path | None]:
    """The exporter per signal (None for ``none``, and for the signals in ``app_signals``: the
    application's providers export those), a description of each, and the local dir if used."""
    exporters: dict[str, Any] = {}
    described: dict[str, str] = {}
    kept_in: Path | None = None
    for signal in _SIGNALS:
        if signal in app_signals:  # its OTEL_<SIGNAL>_EXPORTER is the application's business
            exporters[signal], described[signal] = None, APPLICATION_PROVIDER
            continue
        choice = _exporter_choice(signal, environ)
        if choice == "none":
            exporters[signal], described[signal] = None, "none"
        elif choice == "console":
            exporters[signal], described[signal] = _console_exporter(signal), "console"
        elif _otlp_endpoint_configured(signal, environ):
            exporters[signal] = _otlp_exporter(signal, environ)
            described[signal] = f"otlp ({_protocol(signal, environ)})"
        else:
            directory = local_telemetry_dir(settings, service)
            exporters[signal] = _local_exporter(signal, directory, settings.local_max_mb)
            described[signal] = f"local OTLP-JSON file {directory / (signal + '.jsonl')}"
            kept_in = directory
    return exporters, described, kept_in


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
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)  # sampler: OTEL_TRACES_SAMPLER
    from opentelemetry.processor.baggage import BaggageSpanProcessor

    # Copies the correlation id onto spans other instrumentations start, too.
    tracer_provider.add_span_processor(BaggageSpanProcessor(lambda key: key == CORRELATION_KEY))
    span_exporter: SpanExporter | None = exporters["traces"]
    if span_exporter is not None:
        tracked.append(TrackedSpanExporter(span_exporter, status))
        processors["traces"] = BatchSpanProcessor(tracked[-1])
        tracer_provider.add_span_processor(processors["traces"])

    readers: list[MetricReader] = []
    health_reader: MetricReader | None = None
    metric_exporter: MetricExporter | None = exporters["metrics"]
    if metric_exporter is not None:
        tracked.append(TrackedMetricExporter(metric_exporter, status))
        exporting = PeriodicExportingMetricReader(tracked[-1], export_interval_millis=export_interval_ms)
        readers.append(exporting)
        if _cumulative(exporting):
            health_reader = ExportingReaderView(exporting)
    if health_reader is None:  # nothing exported, or delta temporality: health needs a reader of its own
        health_reader = InMemoryMetricReader()
        readers.append(health_reader)
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=readers,
        views=duration_views(settings.histogram, settings.histogram_max_size),
        shutdown_on_exit=False,
    )

    logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    log_exporter: LogRecordExporter | None = exporters["logs"]
    queue_size, batch_size = _log_batch_sizes(env)
    if log_exporter is not None:
        tracked.append(TrackedLogExporter(log_exporter, status))
        processors["logs"] = BatchLogRecordProcessor(
            tracked[-1], max_queue_size=queue_size, max_export_batch_size=batch_size
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
    )


class ExportingReaderView(MetricReader):
    """What health reads while metrics are exported: the exporting reader's own cumulative state,
    collected on demand and never exported from here.

    One reader instead of two: the SDK aggregates every histogram record once per reader, so a
    second (in-memory) reader for health made each operation's record cost ~1.6 times as much.
    Used only with cumulative temporality (the default): collecting delta state would take it
    from the exporter. Never registered with a MeterProvider itself.
    """

    def __init__(self, reader: MetricReader) -> None:
        super().__init__()
        self._reader = reader

    def get_metrics_data(self) -> MetricsData | None:
        collect: Any = self._reader._collect  # set when the reader is registered with the MeterProvider
        return collect(self._reader, timeout_millis=10_000) if collect is not None else None

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        return None

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def _cumulative(reader: MetricReader) -> bool:
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    temporalities = getattr(reader, "_instrument_class_temporality", {})
    return bool(temporalities) and all(t is AggregationTemporality.CUMULATIVE for t in temporalities.values())


def _metric_export_interval_ms(settings: Settings, environ: Mapping[str, str]) -> float:
    raw = environ.get("OTEL_METRIC_EXPORT_INTERVAL", "").strip()
    if not raw:
        return float(settings.metric_export_interval_ms)
    try:
        interval = float(raw)
    except ValueError:
        interval = 0.0
    if interval <= 0:
        raise CDESystemError(
            f"OTEL_METRIC_EXPORT_INTERVAL={raw!r} is not a positive number of milliseconds",
            "E903",
            {"setting": "OTEL_METRIC_EXPORT_INTERVAL", "value": raw, "expected": "milliseconds > 0"},
        )
    return interval


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


def _otlp_endpoints(described: Mapping[str, str], environ: Mapping[str, str]) -> tuple[tuple[str, int], ...]:
    """(host, port) of the OTLP endpoints the exporters send to, for the shutdown's reachability check."""
    from urllib.parse import urlsplit

    found: set[tuple[str, int]] = set()
    for signal in _SIGNALS:
        if not described.get(signal, "").startswith("otlp"):
            continue
        specific = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
        raw = (specific or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")).strip()
        parts = urlsplit(raw if "://" in raw else f"http://{raw}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            continue
        if parts.hostname:
            found.add((parts.hostname, port))
    return tuple(sorted(found))


def _destination(described: Mapping[str, str], environ: Mapping[str, str], local_dir: Path | None) -> str:
    endpoint = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if endpoint:
        return endpoint
    if local_dir is not None:
        return str(local_dir)
    return ", ".join(sorted({where for where in described.values() if where != "none"}))


def _log_batch_sizes(environ: Mapping[str, str]) -> tuple[int | None, int | None]:
    """(max_queue_size, max_export_batch_size) for logs: room for bursts of the host's own records.

    The host's stdlib and structlog records all become log records, often several per operation,
    so the SDK's defaults (2048/512, the same as for spans) would drop logs first under load.
    The OTEL_BLRP_* variables win.
    """
    queue = None if environ.get("OTEL_BLRP_MAX_QUEUE_SIZE") else 8192
    batch = None if environ.get("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE") else 1024
    return queue, batch


def flush(pipeline: Pipeline, timeout_millis: int = 10_000) -> None:
    pipeline.tracer_provider.force_flush(timeout_millis)
    pipeline.meter_provider.force_flush(timeout_millis)
    pipeline.logger_provider.force_flush(timeout_millis)


def shutdown_pipeline(pipeline: Pipeline, timeout_s: float | None = None) -> ShutdownReport:
    """Flushes and shuts the three providers down in parallel, within ``timeout_s`` (default: the setting).

    Only cde-otel's own: a provider of the application (``pipeline.app_signals``) is its to shut down.

    Never raises. The budget is for the whole exit: this returns by ``budget - reserve`` (a
    quarter of it, at most 0.5 s, left for the interpreter's own teardown, which takes 0.1-0.2 s
    with the SDK and its exporters imported, more on a loaded machine). The exporters are
    aborted, which ends their retry back-off, when the budget is nearly spent — or at once when
    the collector is known to be down (every signal's last export failed, or its port refuses
    connections). Whatever still runs at the deadline is left behind (daemon threads) and
    counted as unsent. The exporters' per-retry warnings are counted, not printed, meanwhile.
    """
    budget = pipeline.shutdown_timeout_s if timeout_s is None else timeout_s
    started = time.monotonic()
    if "metrics" in pipeline.app_signals and pipeline.health_reader is not None:
        _detach_health_reader(pipeline)
    owned = [
        (signal, provider)
        for signal, provider in (
            ("traces", pipeline.tracer_provider),
            ("logs", pipeline.logger_provider),
            ("metrics", pipeline.meter_provider),
        )
        if signal not in pipeline.app_signals
    ]
    if not owned:
        return ShutdownReport(0.0, True, {}, pipeline.destination, budget)
    deadline = started + budget - min(0.5, budget / 4)  # the rest is for the interpreter's teardown
    margin = min(0.25, budget / 8)
    status = pipeline.export_status or ExportStatus()
    with quiet_export_logs(status):
        workers = [_start_shutdown(name, provider) for name, provider in owned]
        if status.all_failing() or _refused(pipeline.otlp_endpoints, min(0.2, margin)):
            _abort(pipeline)  # retrying a collector that is down only holds the host's exit
        # The abort needs a moment to take effect (a back-off wait returns at once, a request in
        # flight ends with its socket).
        _join(workers, deadline - margin)
        if any(worker.is_alive() for worker in workers):
            _abort(pipeline)
        _join(workers, deadline)
        completed = not any(worker.is_alive() for worker in workers)
        unsent = status.unsent()
        for signal, processor in pipeline.batch_processors.items():
            unsent[signal] = unsent.get(signal, 0) + _queued(processor)
    unsent = {signal: n for signal, n in unsent.items() if n}
    return ShutdownReport(round(time.monotonic() - started, 3), completed, unsent, pipeline.destination, budget)


def _detach_health_reader(pipeline: Pipeline) -> None:
    """Takes health's reader off the application's MeterProvider (configure() put it there)."""
    reader, pipeline.health_reader = pipeline.health_reader, None
    try:
        if reader is not None:
            remove_health_reader(pipeline.meter_provider, reader)
    except Exception:  # never raises: the host's exit must not fail because of telemetry
        import logging

        logging.getLogger("cde_otel.telemetry").debug("cde-otel: removing the health reader failed", exc_info=True)


def _abort(pipeline: Pipeline) -> None:
    for exporter in pipeline.tracked_exporters:
        exporter.abort()


def _refused(endpoints: tuple[tuple[str, int], ...], timeout_s: float) -> bool:
    """True when every OTLP endpoint refuses connections (nothing listens): no point in retrying.

    Only the endpoints the exporters were configured with are contacted; the check is bounded by
    ``timeout_s`` including name resolution (it runs in a daemon thread).
    """
    if not endpoints:
        return False
    refused: list[bool] = []

    def probe() -> None:
        import socket

        for host, port in endpoints:
            try:
                socket.create_connection((host, port), timeout=timeout_s).close()
            except ConnectionRefusedError:
                refused.append(True)
                continue
            except OSError:
                pass
            refused.append(False)

    checker = threading.Thread(target=probe, name="cde-otel-shutdown-probe", daemon=True)
    checker.start()
    checker.join(timeout_s)
    return len(refused) == len(endpoints) and all(refused)


def _start_shutdown(name: str, provider: Any) -> threading.Thread:
    def run() -> None:
        try:
            provider.shutdown()
        except Exception:  # a failing exporter must not stop the others, nor reach the host
            import logging

            logging.getLogger("cde_otel.telemetry").debug("cde-otel: %s shutdown failed", name, exc_info=True)

    worker = threading.Thread(target=run, name=f"cde-otel-shutdown-{name}", daemon=True)
    worker.start()
    return worker


def _join(workers: list[threading.Thread], deadline: float) -> None:
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))


def _queued(processor: Any) -> int:
    """Items still waiting in a batch processor's queue (the SDK's private queue; 0 if it moved)."""
    try:
        return len(processor._batch_processor._queue)
    except Exception:
        return 0
