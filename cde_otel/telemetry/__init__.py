"""Turning telemetry on: providers, exporters, instrumentation and logging in one call.

The composition root of the package: it builds the SDK pipeline and wires the layers below
it together -- instruments with :class:`~cde_otel.instrumentation.CDEInstrumentor`, sets up
:mod:`cde_otel.logging` with its LoggerProvider, and registers its metric reader and export
status with :mod:`cde_otel.health.sources`. Nothing below imports this package.

    import cde_otel

    cde_otel.configure()   # what CDE_OTEL_ENABLED=true does at start-up
    ...
    cde_otel.shutdown()    # flushes traces, metrics and logs, within CDE_OTEL_SHUTDOWN_TIMEOUT_S

``configure()`` honours the standard ``OTEL_*`` variables (service name, resource attributes,
exporters, OTLP endpoint/protocol/headers/timeout, sampler) and every ``CDE_OTEL_*`` setting
(:mod:`cde_otel.settings`). ``OTEL_SDK_DISABLED=true`` turns it into a no-op.

``shutdown()`` — also run at exit — is bounded: it returns within ``CDE_OTEL_SHUTDOWN_TIMEOUT_S``
(default 2 s) whatever the collector does, never raises, and reports what could not be sent once,
as a warning on the ``cde_otel.telemetry`` logger when the host configured logging, else as one
line on stderr.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import weakref
from collections.abc import Mapping

from opentelemetry import context, propagate
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import TracerProvider

from cde_otel._correlation import CORRELATION_KEY, correlation, current_correlation_id, new_correlation_id
from cde_otel.settings import Settings, load_settings, sdk_disabled
from cde_otel.telemetry._pipeline import (
    Pipeline,
    ShutdownReport,
    build_pipeline,
    flush,
    local_telemetry_dir,
    shutdown_pipeline,
)

__all__ = [
    "CORRELATION_KEY",
    "Pipeline",
    "ShutdownReport",
    "configure",
    "correlation",
    "current_correlation_id",
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
_lock = threading.RLock()
_pipeline: Pipeline | None = None
# True while configure() runs: instrumenting imports the core, whose post-import hook
# (the .pth bootstrap) calls configure() again on this thread; that call must do nothing.
_configuring = False
_env_context_token: object | None = None
_atexit_registered = False


def configure(
    settings: Settings | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    logger_provider: LoggerProvider | None = None,
    set_global: bool = True,
    logging_setup: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Pipeline | None:
    """Sets up telemetry once; later calls return the same pipeline. None when the SDK is disabled.

    Pass providers to use your own (nothing is then built, exported or shut down by cde-otel).
    A call made while ``configure()`` is already running on this thread (from an import hook)
    returns None and changes nothing.
    """
    global _pipeline, _atexit_registered, _configuring
    env = os.environ if environ is None else environ
    if sdk_disabled(env):
        return None
    with _lock:
        if _pipeline is not None or _configuring:
            return _pipeline
        _configuring = True
        try:
            pipeline = _configure(settings or load_settings(env), env, tracer_provider, meter_provider,
                                  logger_provider, set_global=set_global, logging_setup=logging_setup)  # fmt: skip
        finally:
            _configuring = False
        _pipeline = pipeline
        if not _atexit_registered:
            _finalizers_run_after_shutdown()
            atexit.register(shutdown)
            _atexit_registered = True
        _log.debug("cde-otel telemetry configured: %s", pipeline.exporters)
        return pipeline


def _configure(
    settings: Settings,
    env: Mapping[str, str],
    tracer_provider: TracerProvider | None,
    meter_provider: MeterProvider | None,
    logger_provider: LoggerProvider | None,
    *,
    set_global: bool,
    logging_setup: bool,
) -> Pipeline:
    """Builds (or wraps the given providers in) a pipeline, sets the globals and instruments."""
    if tracer_provider or meter_provider or logger_provider:
        pipeline = Pipeline(
            tracer_provider or TracerProvider(),
            meter_provider or MeterProvider(),
            logger_provider or LoggerProvider(),
            health_reader=None,
            exporters={"all": "user-provided providers"},
            owned=False,
        )
    else:
        pipeline = build_pipeline(settings, env)
    if set_global:
        _set_globals(pipeline)
    _attach_context_from_environment(env)
    _instrument(pipeline, settings, logging_setup, env)
    from cde_otel.health.sources import register_telemetry

    status = pipeline.export_status
    register_telemetry(metric_reader=pipeline.health_reader, export_status=status.status if status else None)
    return pipeline


def _set_globals(pipeline: Pipeline) -> None:
    from opentelemetry import _logs, metrics, trace

    trace.set_tracer_provider(pipeline.tracer_provider)
    metrics.set_meter_provider(pipeline.meter_provider)
    _logs.set_logger_provider(pipeline.logger_provider)


def _instrument(pipeline: Pipeline, settings: Settings, logging_setup: bool, env: Mapping[str, str]) -> None:
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor

    from cde_otel.instrumentation import CDEInstrumentor
    from cde_otel.telemetry._system_metrics import register_system_metrics

    ThreadingInstrumentor().instrument()  # carries the context (and correlation id) into threads
    if logging_setup:
        from cde_otel.logging import setup_logging

        setup_logging(logger_provider=pipeline.logger_provider, settings=settings)
    CDEInstrumentor().instrument(
        tracer_provider=pipeline.tracer_provider,
        meter_provider=pipeline.meter_provider,
        settings=settings,
        log_operations=True if logging_setup else None,
    )
    _instrument_mcp(pipeline, settings, env)
    register_system_metrics(pipeline.meter_provider)


def _instrument_mcp(pipeline: Pipeline, settings: Settings, env: Mapping[str, str]) -> None:
    """MCP server requests as SERVER spans (issue 13); skipped when listed in the standard
    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS under its entry point name ``cde_mcp``."""
    disabled = env.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    if "cde_mcp" in (name.strip() for name in disabled.split(",")):
        return
    from cde_otel.instrumentation.mcp import MCPInstrumentor

    MCPInstrumentor().instrument(
        tracer_provider=pipeline.tracer_provider, meter_provider=pipeline.meter_provider, settings=settings
    )


def _attach_context_from_environment(environ: Mapping[str, str]) -> None:
    """Continues the trace and correlation id of a parent process (TRACEPARENT/BAGGAGE variables)."""
    global _env_context_token
    carrier = {k.lower(): environ[k] for k in ("TRACEPARENT", "TRACESTATE", "BAGGAGE") if environ.get(k)}
    if carrier and _env_context_token is None:
        _env_context_token = context.attach(propagate.extract(carrier))


def propagation_env() -> dict[str, str]:
    """Environment variables that hand the current trace and correlation id to a child process."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {k.upper(): v for k, v in carrier.items()}


def is_configured() -> bool:
    return _pipeline is not None


def health_metric_reader() -> MetricReader | None:
    """The pull reader on the configured MeterProvider (for health percentiles), if any."""
    return _pipeline.health_reader if _pipeline is not None else None


def export_status() -> str:
    """ "ok", "failing" (the last export of some signal failed) or "disabled" (nothing is exported)."""
    pipeline = _pipeline
    if pipeline is None or pipeline.export_status is None:
        return "disabled"
    return pipeline.export_status.status()


def force_flush(timeout_millis: int = 10_000) -> None:
    if _pipeline is not None:
        flush(_pipeline, timeout_millis)


def shutdown(timeout_s: float | None = None) -> ShutdownReport | None:
    """Uninstruments, flushes every signal and shuts the providers down. Safe to call twice; never raises.

    Returns within ``timeout_s`` (default ``CDE_OTEL_SHUTDOWN_TIMEOUT_S``) plus a few milliseconds.
    What could not be sent by then is counted and reported once (see the module docs); the report
    is returned too (None when there was nothing to shut down).
    """
    global _pipeline
    try:
        with _lock:
            pipeline, _pipeline = _pipeline, None
            if pipeline is None:
                return None
            _uninstrument()
            report = shutdown_pipeline(pipeline, timeout_s)
        message = report.warning()
        if message is not None:
            _warn_host(message)
        return report
    except Exception:  # the host's exit must never fail because of telemetry
        _log.debug("cde-otel: shutdown failed", exc_info=True)
        return None


class _ExitAnchor:
    """Lives as long as the module: its finalizer runs only at exit, and does nothing."""


_EXIT_ANCHOR = _ExitAnchor()


def _finalizers_run_after_shutdown() -> None:
    """Registers :class:`weakref.finalize`'s exit hook before our ``shutdown`` (exit hooks run last
    in, first out), so it runs after it.

    An export still in flight when the shutdown budget ends (a daemon thread) may create the
    process's first finalizer -- urllib3 makes one per connection pool. Registered that late, the
    exit hook would never run, and the pool's finalizer would fire during interpreter teardown,
    with modules half gone: an "Exception ignored ... TypeError" on the host's stderr.
    """
    weakref.finalize(_EXIT_ANCHOR, _nothing)


def _nothing() -> None:
    return None


def _uninstrument() -> None:
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor

    from cde_otel.health.sources import unregister_telemetry
    from cde_otel.instrumentation import CDEInstrumentor
    from cde_otel.instrumentation.mcp import MCPInstrumentor

    undo_steps = (
        unregister_telemetry,
        MCPInstrumentor().uninstrument,  # before the providers it records into shut down
        CDEInstrumentor().uninstrument,
        ThreadingInstrumentor().uninstrument,
        _reset_logging,
    )
    for undo in undo_steps:
        try:
            undo()
        except Exception:
            _log.debug("cde-otel: %s failed during shutdown", getattr(undo, "__qualname__", undo), exc_info=True)


def _reset_logging() -> None:
    from cde_otel.logging import reset_logging

    reset_logging()


def _warn_host(message: str) -> None:
    """One warning: to the host's logging when it has a handler for it, else one line on stderr."""
    if _has_handler(_log, logging.WARNING):
        _log.warning("cde-otel: %s", message)
        return
    try:
        sys.stderr.write(f"cde-otel: {message}\n")
        sys.stderr.flush()
    except Exception:  # stderr closed: nothing polite left to do
        return


def _has_handler(logger: logging.Logger, level: int) -> bool:
    """Whether a record at ``level`` would reach a real handler (our own NullHandler does not count)."""
    if not logger.isEnabledFor(level):
        return False
    current: logging.Logger | None = logger
    while current is not None:
        if any(not isinstance(h, logging.NullHandler) and level >= h.level for h in current.handlers):
            return True
        current = current.parent if current.propagate else None
    return False
