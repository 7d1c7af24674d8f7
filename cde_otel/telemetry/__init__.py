"""Turning telemetry on: providers, exporters, instrumentation and logging in one call.

    import cde_otel

    cde_otel.configure()   # what CDE_OTEL_ENABLED=true does at start-up
    ...
    cde_otel.shutdown()    # flushes traces, metrics and logs

``configure()`` honours the standard ``OTEL_*`` variables (service name, resource attributes,
exporters, OTLP endpoint/protocol/headers/timeout, sampler) and every ``CDE_OTEL_*`` setting
(:mod:`cde_otel.settings`). ``OTEL_SDK_DISABLED=true`` turns it into a no-op.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Mapping

from opentelemetry import context, propagate
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import TracerProvider

from cde_otel.settings import Settings, load_settings, sdk_disabled
from cde_otel.telemetry._pipeline import Pipeline, build_pipeline, flush, shutdown_pipeline
from cde_otel.telemetry.correlation import CORRELATION_KEY, correlation, current_correlation_id, new_correlation_id

__all__ = [
    "CORRELATION_KEY",
    "Pipeline",
    "configure",
    "correlation",
    "current_correlation_id",
    "export_status",
    "force_flush",
    "health_metric_reader",
    "is_configured",
    "new_correlation_id",
    "propagation_env",
    "shutdown",
]

_log = logging.getLogger("cde_otel.telemetry")
_lock = threading.RLock()
_pipeline: Pipeline | None = None
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
    """
    global _pipeline, _atexit_registered
    env = os.environ if environ is None else environ
    if sdk_disabled(env):
        return None
    with _lock:
        if _pipeline is not None:
            return _pipeline
        settings = settings or load_settings(env)
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
        _instrument(pipeline, settings, logging_setup)
        _pipeline = pipeline
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
        _log.debug("cde-otel telemetry configured: %s", pipeline.exporters)
        return pipeline


def _set_globals(pipeline: Pipeline) -> None:
    from opentelemetry import _logs, metrics, trace

    trace.set_tracer_provider(pipeline.tracer_provider)
    metrics.set_meter_provider(pipeline.meter_provider)
    _logs.set_logger_provider(pipeline.logger_provider)


def _instrument(pipeline: Pipeline, settings: Settings, logging_setup: bool) -> None:
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
    _instrument_mcp(pipeline, settings)
    register_system_metrics(pipeline.meter_provider)


def _instrument_mcp(pipeline: Pipeline, settings: Settings) -> None:
    """MCP server requests as SERVER spans (issue 13); skipped when listed in the standard
    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS under its entry point name ``cde_mcp``."""
    disabled = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
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


def shutdown() -> None:
    """Uninstruments, flushes every signal and shuts the providers down. Safe to call twice."""
    global _pipeline
    with _lock:
        pipeline, _pipeline = _pipeline, None
        if pipeline is None:
            return
        from opentelemetry.instrumentation.threading import ThreadingInstrumentor

        from cde_otel.instrumentation import CDEInstrumentor
        from cde_otel.instrumentation.mcp import MCPInstrumentor

        MCPInstrumentor().uninstrument()  # issue 13: before the providers it records into shut down
        CDEInstrumentor().uninstrument()
        ThreadingInstrumentor().uninstrument()
        try:
            from cde_otel.logging import reset_logging

            reset_logging()
        except Exception:
            _log.debug("cde-otel: resetting logging failed", exc_info=True)
        flush(pipeline)
        shutdown_pipeline(pipeline)
