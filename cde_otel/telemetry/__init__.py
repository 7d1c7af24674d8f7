"""Turning telemetry on: providers, exporters, instrumentation and logging in one call.

The composition root of the package: it builds the SDK pipeline and wires the layers below
it together -- instruments with :class:`~cde_otel.instrumentation.CDEInstrumentor`, attaches
:mod:`cde_otel.logging` next to the host's own logging (:func:`~cde_otel.logging.attach_logging`:
adds, never replaces), and registers its metric reader and export status with
:mod:`cde_otel.health.sources`. Nothing below imports this package.

It is all or nothing: the global providers are set last, and when a step fails everything
built so far is undone (providers and their exporter threads shut down, instrumentation and
logging hooks removed) before the error is raised. A bad ``CDE_OTEL_TARGETS`` entry is not such
a failure: it is reported once and skipped.

    import cde_otel

    cde_otel.configure()   # what CDE_OTEL_ENABLED=true does at start-up
    ...
    cde_otel.shutdown()    # flushes traces, metrics and logs, within CDE_OTEL_SHUTDOWN_TIMEOUT_S

``configure()`` honours the standard ``OTEL_*`` variables (service name, resource attributes,
exporters, OTLP endpoint/protocol/headers/timeout, sampler) and every ``CDE_OTEL_*`` setting
(:mod:`cde_otel.settings`). ``OTEL_SDK_DISABLED=true`` turns it into a no-op.

**The application's providers first.** A provider passed in, or installed as the global one
before ``configure()`` runs (by the application, or by ``opentelemetry-instrument`` and its
distro), serves its signal: cde-otel adds its instrumentation to it and builds nothing for that
signal (:mod:`cde_otel.telemetry._providers` says what a foreign MeterProvider cannot take).
Under ``opentelemetry-instrument`` the launcher instruments every entry point itself (``cde``,
``cde_mcp``, ``threading``...), so ``configure()`` instruments none of them again; nor one an
earlier ``instrument()`` call took care of. It never replaces a global provider.

**One start-up line** says what is on and where telemetry goes (:mod:`cde_otel.telemetry._startup`):
at INFO on the ``cde_otel.telemetry`` logger when the host's logging would show it, else as one
line on stderr, never on stdout; ``CDE_OTEL_STARTUP_LINE=false`` turns it off.

``shutdown()`` — also run at exit — is bounded: it returns within ``CDE_OTEL_SHUTDOWN_TIMEOUT_S``
(default 2 s) whatever the collector does, never raises, and reports what could not be sent once,
as a warning on the ``cde_otel.telemetry`` logger when the host configured logging, else as one
line on stderr.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import context, propagate
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import TracerProvider

from cde_otel._correlation import CORRELATION_KEY, correlation, current_correlation_id, new_correlation_id
from cde_otel.semconv import SIGNALS
from cde_otel.settings import Settings, load_settings, sdk_disabled
from cde_otel.telemetry._exit_hooks import register_finalizers_exit_hook
from cde_otel.telemetry._pipeline import (
    Pipeline,
    ShutdownReport,
    build_pipeline,
    flush,
    local_telemetry_dir,
    shutdown_pipeline,
)
from cde_otel.telemetry._providers import (
    APPLICATION_EXPORT,
    add_health_reader,
    app_providers,
    disabled_instrumentations,
    is_active,
    is_set,
    launcher_instruments,
)
from cde_otel.telemetry._runtime import STATE, Runtime
from cde_otel.telemetry._startup import startup_line

__all__ = [
    "CORRELATION_KEY",
    "Pipeline",
    "Runtime",
    "ShutdownReport",
    "configure",
    "correlation",
    "current_correlation_id",
    "current_runtime",
    "export_status",
    "force_flush",
    "health_metric_reader",
    "is_configured",
    "local_telemetry_dir",
    "new_correlation_id",
    "propagation_env",
    "shutdown",
]

_log = logging.getLogger("cde_otel.telemetry")


def configure(
    settings: Settings | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    logger_provider: LoggerProvider | None = None,
    set_global: bool = True,
    logging_setup: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Runtime | None:
    """Sets up telemetry once; later calls return the same runtime. None when the SDK is disabled.

    The :class:`Runtime` holds everything it made (providers, processors, exporters, the hooks it
    installed); :func:`shutdown` tears exactly that down.

    Providers passed in -- or the global ones the application set before -- serve their signals
    (nothing is built, exported or shut down by cde-otel for those); the others are built from
    the settings. A call made while ``configure()`` is already running on this thread (from an
    import hook) returns None and changes nothing.
    """
    env = os.environ if environ is None else environ
    if sdk_disabled(env):
        return None
    with STATE.lock:
        if STATE.current is not None or STATE.configuring:
            return STATE.current
        from cde_otel.logging import has_handler, tell_host

        settings = settings or load_settings(env)
        host_listens = has_handler(_log, logging.INFO)  # the host's own logging, before ours is attached
        STATE.configuring = True
        try:
            runtime = _configure(settings, env, tracer_provider, meter_provider,
                                 logger_provider, set_global=set_global, logging_setup=logging_setup)  # fmt: skip
        finally:
            STATE.configuring = False
        STATE.current = runtime
        if not STATE.exit_hook_registered:
            register_finalizers_exit_hook()  # runs after shutdown: see its docs
            atexit.register(shutdown)
            STATE.exit_hook_registered = True
        if settings.startup_line:
            tell_host(_log, startup_line(runtime, env), logging.INFO, host_listens=host_listens)
        return runtime


def _configure(
    settings: Settings,
    env: Mapping[str, str],
    tracer_provider: TracerProvider | None,
    meter_provider: MeterProvider | None,
    logger_provider: LoggerProvider | None,
    *,
    set_global: bool,
    logging_setup: bool,
) -> Runtime:
    """Builds a pipeline around the application's providers, instruments, then sets the globals; all or nothing."""
    app = app_providers(tracer_provider, meter_provider, logger_provider, ours=STATE.built)
    runtime = Runtime.around(build_pipeline(settings, env, app))
    providers = (runtime.tracer_provider, runtime.meter_provider, runtime.logger_provider)
    STATE.built.update(
        provider for signal, provider in zip(SIGNALS, providers, strict=True) if signal not in app.signals
    )
    try:
        if app.meter is not None:
            runtime.health_reader = add_health_reader(app.meter, settings)
        _instrument(runtime, settings, logging_setup, env)
    except BaseException:
        _undo(runtime)
        raise
    if set_global:
        _set_globals(runtime)
    runtime.context_token = _attach_context_from_environment(env)
    from cde_otel.health.sources import register_telemetry

    status = runtime.export_status
    probe = status.status if status else (_application_export if runtime.app_signals else None)
    runtime.health_source = register_telemetry(metric_reader=runtime.health_reader, export_status=probe)
    return runtime


def _application_export() -> str:
    return APPLICATION_EXPORT


def _set_globals(pipeline: Pipeline) -> None:
    """Installs each provider as the global one where none is yet (a global provider is never replaced)."""
    from opentelemetry import _logs, metrics, trace

    if not is_set(trace.get_tracer_provider()):
        trace.set_tracer_provider(pipeline.tracer_provider)
    if not is_set(metrics.get_meter_provider()):
        metrics.set_meter_provider(pipeline.meter_provider)
    if not is_set(_logs.get_logger_provider()):
        _logs.set_logger_provider(pipeline.logger_provider)


def _instrument(runtime: Runtime, settings: Settings, logging_setup: bool, env: Mapping[str, str]) -> None:
    from cde_otel.instrumentation import CDEInstrumentor
    from cde_otel.logging import OperationEvents, attach_logging
    from cde_otel.telemetry._system_metrics import register_system_metrics
    from cde_otel.telemetry._thread_context import ThreadContextInstrumentor

    _instrument_once(runtime, "threading", ThreadContextInstrumentor(), env)  # the context into threads
    if logging_setup:
        # Our provider batches the records anyway: they are bridged off the host's thread.
        ours = "logs" not in runtime.app_signals
        runtime.attached = attach_logging(runtime.logger_provider, settings, defer_records=ours)
    _instrument_once(
        runtime,
        "cde",
        CDEInstrumentor(),
        env,
        tracer_provider=runtime.tracer_provider,
        meter_provider=runtime.meter_provider,
        settings=settings,
        operation_events=(
            runtime.attached.events
            if runtime.attached is not None
            else OperationEvents.from_settings(settings, logger_provider=runtime.logger_provider)
        ),
    )
    from cde_otel.instrumentation.mcp import MCPInstrumentor  # MCP server requests as SERVER spans

    _instrument_once(
        runtime, "cde_mcp", MCPInstrumentor(), env, tracer_provider=runtime.tracer_provider,
        meter_provider=runtime.meter_provider, settings=settings,
    )  # fmt: skip
    register_system_metrics(runtime.meter_provider)


def _instrument_once(
    runtime: Runtime, name: str, instrumentor: BaseInstrumentor, env: Mapping[str, str], **kwargs: Any
) -> None:
    """Instruments unless it is not ours to do: the standard opt-out names its entry point
    (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``), ``opentelemetry-instrument`` instruments every
    entry point itself, or it is instrumented already -- or being instrumented: an ``instrument()``
    that imports the core fires the start-up hook, which runs this ``configure()``."""
    if name in disabled_instrumentations(env) or launcher_instruments(name) or is_active(instrumentor):
        return
    instrumentor.instrument(**kwargs)
    runtime.instrumented.append(instrumentor)


def _undo(runtime: Runtime) -> None:
    """A configure() that failed half-way leaves nothing behind: hooks removed, exporter threads stopped."""
    _uninstrument(runtime)
    shutdown_pipeline(runtime, min(runtime.shutdown_timeout_s, 1.0))


def _attach_context_from_environment(environ: Mapping[str, str]) -> object | None:
    """Continues the trace and correlation id of a parent process (TRACEPARENT/BAGGAGE variables),
    once per process: the context stays attached on this thread (detaching it from the exit hook's
    thread is not possible), and a later runtime finds it there."""
    carrier = {k.lower(): environ[k] for k in ("TRACEPARENT", "TRACESTATE", "BAGGAGE") if environ.get(k)}
    if not carrier or STATE.context_attached:
        return None
    STATE.context_attached = True
    return context.attach(propagate.extract(carrier))


def propagation_env() -> dict[str, str]:
    """Environment variables that hand the current trace and correlation id to a child process."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {k.upper(): v for k, v in carrier.items()}


def is_configured() -> bool:
    return STATE.current is not None


def current_runtime() -> Runtime | None:
    """What the last ``configure()`` made, until ``shutdown()``."""
    return STATE.current


def health_metric_reader() -> MetricReader | None:
    """The pull reader on the configured MeterProvider (for health percentiles), if any."""
    runtime = STATE.current
    return runtime.health_reader if runtime is not None else None


def export_status() -> str:
    """ "ok", "failing" (the last export of some signal failed), "disabled" (nothing is exported) or
    "application" (the application's providers export, which cde-otel cannot see)."""
    pipeline = STATE.current
    if pipeline is None:
        return "disabled"
    if pipeline.export_status is None:
        return APPLICATION_EXPORT if pipeline.app_signals else "disabled"
    return pipeline.export_status.status()


def force_flush(timeout_millis: int = 10_000) -> None:
    runtime = STATE.current
    if runtime is not None:
        if runtime.attached is not None:
            runtime.attached.drain(timeout_millis / 1000)  # the host's records, before the providers flush
        flush(runtime, timeout_millis)


def shutdown(timeout_s: float | None = None) -> ShutdownReport | None:
    """Uninstruments, flushes every signal and shuts the providers down. Safe to call twice; never raises.

    Returns within ``timeout_s`` (default ``CDE_OTEL_SHUTDOWN_TIMEOUT_S``) plus a few milliseconds.
    What could not be sent by then is counted and reported once (see the module docs); the report
    is returned too (None when there was nothing to shut down).
    """
    try:
        with STATE.lock:
            runtime, STATE.current = STATE.current, None
            if runtime is None:
                return None
            _uninstrument(runtime)
            report = shutdown_pipeline(runtime, timeout_s)
        message = report.warning()
        if message is not None:
            from cde_otel.logging import tell_host

            tell_host(_log, message)
        return report
    except Exception:  # the host's exit must never fail because of telemetry
        _log.debug("cde-otel: shutdown failed", exc_info=True)
        return None


def _uninstrument(runtime: Runtime) -> None:
    from cde_otel.health.sources import unregister_telemetry

    ours = [instrumentor.uninstrument for instrumentor in reversed(runtime.instrumented)]  # MCP first
    runtime.instrumented.clear()
    attached, runtime.attached = runtime.attached, None
    source, runtime.health_source = runtime.health_source, None
    undo_steps = (
        *([functools.partial(unregister_telemetry, source)] if source is not None else []),
        *ours,  # only what configure() instrumented, before the providers it records into shut down
        *([attached.detach] if attached is not None else []),  # pending operation lines, before the providers
    )
    for undo in undo_steps:
        try:
            undo()
        except Exception:
            _log.debug("cde-otel: %s failed during shutdown", getattr(undo, "__qualname__", undo), exc_info=True)
