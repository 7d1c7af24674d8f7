"""Benchmark: cost of the instrumentation wrapper over a hand-written one on the same providers (context).

The end-to-end goals against baselines that share no cde-otel code are in ``bench_peers``; this
one isolates the wrapper: same providers, same instruments, no operation events on either side.

    .venv/bin/python bench/bench_overhead.py [--quick]

Run in its own process: it calls ``configure()``, which installs global providers.

Providers and logging are set up the way ``configure()`` does it (resource, the baggage
span processor, a ``BatchSpanProcessor``, one metric reader with the duration views, a
``BatchLogRecordProcessor``, ``attach_logging`` with its defaults) except that every exporter
is a no-op (metrics: not exported): what is measured is the cost on the calling thread, not a
network. Every variant below runs in this one process, on the same providers, processors,
instruments and logging setup, on its own ``Project`` (a subclass that differs only in its
``transition_status``), interleaved round by round (see ``_timing``):

* ``bare`` — the uninstrumented ``Project.transition_status`` (ACTIVE <-> ARCHIVED).
* ``instrumented`` — the method as ``configure()`` patched it (span, histogram, operation events
  with the defaults: no line sink, a log record only for a failed or slow operation).
* ``floor_no_logs`` — a minimal hand-written wrapper producing the same span (name, kind,
  attributes incl. the correlation id computed inline) and one record on the same histogram
  through the same providers, and no log events. Its cost is the SDK's, not ours.
* ``instrumented_no_logs`` — the wrapper built by ``OperationTelemetry.wrapper_for`` with
  ``events=None``, installed with ``wrapt.FunctionWrapper`` as the instrumentor does.
* ``upstream_json`` — the bare call plus three ``json.dumps`` lines through stdlib logging
  (to ``/dev/null``), the style of a hand-rolled logging wrapper, for context. It runs with none
  of our hooks: for each of its runs the stdlib's own log record factory and
  ``Logger.callHandlers`` are put back (``configure()`` replaces both process-wide), so the
  baseline is what that wrapper costs in a process without cde-otel.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from _cli import print_measurement
from _timing import Loop, interleave

from cde_otel.semconv import ATTR_CODE_FUNCTION_NAME, ATTR_CORRELATION_ID, ATTR_OPERATION, ATTR_OUTCOME, ATTR_PROJECT_ID

# Short runs, many rounds: the two sides of a ratio are timed a few milliseconds apart.
_ITERATIONS = {"full": 100, "quick": 50}
_ROUNDS = {"full": 301, "quick": 15}


class _NullSpanExporter:
    """Accepts every batch and does nothing: the export thread stays almost idle."""

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class _NullLogExporter:
    def export(self, batch: Sequence[Any]) -> Any:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def configure_like_default() -> Any:
    """``configure()`` with its default pipeline shape and logging, and no-op exporters."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from cde_otel.settings import load_settings
    from cde_otel.telemetry import configure
    from cde_otel.telemetry._correlation_spans import CorrelationIdSpanProcessor
    from cde_otel.telemetry._pipeline import build_resource

    settings = load_settings({})  # defaults, whatever the caller's environment says
    resource = build_resource({})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(CorrelationIdSpanProcessor())
    tracer_provider.add_span_processor(BatchSpanProcessor(_NullSpanExporter()))  # type: ignore[arg-type]
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(_NullLogExporter()))  # type: ignore[arg-type]
    # configure()'s own MeterProvider (its views, one reader): a MeterProvider given to configure()
    # would get health's pull reader added next to the app's own, one more aggregation per record
    # than configure()'s pipeline, where health reads the exporting reader. Metrics not exported,
    # its one reader is health's in-memory one.
    configure(
        settings,
        tracer_provider=tracer_provider,
        logger_provider=logger_provider,
        environ={"OTEL_METRICS_EXPORTER": "none"},
    )
    return settings


def _floor_method(original: Callable[..., Any], telemetry: Any) -> Callable[..., Any]:
    """The minimal hand-written wrapper: the same span and histogram record, nothing else (no logs)."""
    from opentelemetry import baggage, context, trace
    from opentelemetry.trace import SpanKind

    from cde_otel.semconv import CORRELATION_KEY as correlation_key

    tracer = telemetry.tracer
    histogram = telemetry.duration
    name = "Project.transition_status"
    function = "cde_otel.core.model:Project.transition_status"
    ok_attributes = {ATTR_OPERATION: name, ATTR_OUTCOME: "ok"}
    perf_counter = time.perf_counter

    def transition_status(self: Any, target: Any) -> Any:
        parent = context.get_current()
        span = tracer.start_span(
            name,
            parent,
            SpanKind.INTERNAL,
            {ATTR_OPERATION: name, ATTR_CODE_FUNCTION_NAME: function, ATTR_PROJECT_ID: str(self.id)},
        )
        ctx = trace.set_span_in_context(span, parent)
        cid = baggage.get_baggage(correlation_key, parent)
        if cid is None:
            cid = trace.format_trace_id(span.get_span_context().trace_id)
            ctx = baggage.set_baggage(correlation_key, cid, ctx)
        span.set_attribute(ATTR_CORRELATION_ID, cid)
        token = context.attach(ctx)
        try:
            start = perf_counter()
            result = original(self, target)
            histogram.record(perf_counter() - start, ok_attributes)
            return result
        finally:
            span.end()
            context.detach(token)

    return transition_status


def _upstream_json_method(original: Callable[..., Any], log_stream: Any) -> Callable[..., Any]:
    """Three ``json.dumps`` lines per call through stdlib logging: a typical hand-rolled wrapper."""
    logger = logging.getLogger("bench.upstream")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(log_stream)
    logger.addHandler(handler)
    name = "transition_status"

    def transition_status(self: Any, target: Any) -> Any:
        started = time.perf_counter()
        now = datetime.now(UTC).isoformat()
        logger.info(json.dumps({"timestamp": now, "level": "info", "event": "operation started",
                                "operation": name, "project_id": self.id}))  # fmt: skip
        result = original(self, target)
        duration_ms = (time.perf_counter() - started) * 1000.0
        now = datetime.now(UTC).isoformat()
        logger.info(json.dumps({"timestamp": now, "level": "info", "event": "operation succeeded",
                                "operation": name, "project_id": self.id, "duration_ms": duration_ms}))  # fmt: skip
        logger.info(json.dumps({"timestamp": now, "level": "info", "event": "metric", "name": "operation.duration",
                                "operation": name, "value_ms": duration_ms}))  # fmt: skip
        return result

    return transition_status


def _stdlib_logging() -> tuple[Callable[..., logging.LogRecord], Callable[..., None]]:
    """The stdlib's own record factory and ``Logger.callHandlers``, read before ``configure()`` replaces them."""
    factory = logging.getLogRecordFactory()
    call_handlers = logging.Logger.callHandlers
    if factory is not logging.LogRecord or call_handlers.__module__ != "logging":
        raise RuntimeError("logging is already hooked: run this benchmark without CDE_OTEL_ENABLED")
    return factory, call_handlers


def _without_our_hooks(loop: Loop, stdlib: tuple[Callable[..., logging.LogRecord], Callable[..., None]]) -> Loop:
    """``loop`` run with the stdlib's logging, ours put back afterwards (two swaps per run, not per call)."""
    factory, call_handlers = stdlib

    def run(n: int) -> None:
        ours_factory, ours_call_handlers = logging.getLogRecordFactory(), logging.Logger.callHandlers
        logging.setLogRecordFactory(factory)
        logging.Logger.callHandlers = call_handlers  # type: ignore[method-assign]
        try:
            loop(n)
        finally:
            logging.setLogRecordFactory(ours_factory)
            logging.Logger.callHandlers = ours_call_handlers  # type: ignore[method-assign]

    return run


def _alternating_loop(project: Any) -> Loop:
    """n calls: archive, activate, archive, ... (a pure, disk-free core operation)."""
    from cde_otel.core import ProjectStatus

    archived, active = ProjectStatus.ARCHIVED, ProjectStatus.ACTIVE

    def loop(n: int) -> None:
        for _ in range(n // 2):
            project.transition_status(archived)
            project.transition_status(active)

    return loop


def measure_overhead(
    *, quick: bool = False, rounds: int | None = None, iterations: int | None = None
) -> dict[str, Any]:
    """Configures telemetry in this process (once) and times every variant interleaved."""
    mode = "quick" if quick else "full"
    rounds = rounds or _ROUNDS[mode]
    iterations = iterations or _ITERATIONS[mode]
    # Captured before configure() patches the class.
    from cde_otel.core import Project, ProjectStatus

    original = Project.__dict__["transition_status"]
    log_stream = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process's logging setup
    stdlib = _stdlib_logging()
    configure_like_default()
    if logging.getLogRecordFactory() is stdlib[0] or logging.Logger.callHandlers is stdlib[1]:
        raise RuntimeError("configure() no longer hooks logging: _without_our_hooks is stale")

    import wrapt

    from cde_otel.instrumentation import CDEInstrumentor
    from cde_otel.instrumentation._targets import CORE_TARGETS
    from cde_otel.instrumentation._wrapper import OperationTelemetry

    telemetry = CDEInstrumentor().operation_telemetry
    if telemetry is None or not isinstance(Project.__dict__["transition_status"], wrapt.FunctionWrapper):
        raise RuntimeError("configure() did not instrument Project.transition_status")
    if telemetry.events is None:
        raise RuntimeError("configure() did not turn the operation events on")
    target = next(t for t in CORE_TARGETS if t.qualname == "Project.transition_status")
    no_logs = OperationTelemetry(telemetry.tracer, telemetry.duration, telemetry.errors, events=None)

    methods: dict[str, Any] = {
        "bare": original,
        "instrumented": None,  # inherits the method configure() patched
        "instrumented_no_logs": wrapt.FunctionWrapper(original, no_logs.wrapper_for(target, original)),
        "floor_no_logs": _floor_method(original, telemetry),
        "upstream_json": _upstream_json_method(original, log_stream),
    }
    loops: dict[str, Loop] = {}
    for name, method in methods.items():
        # Every variant is a direct subclass, so attribute lookups cost the same everywhere.
        cls = type(f"Project_{name}", (Project,), {} if method is None else {"transition_status": method})
        project = cls(name=f"bench-{name}", path=f"/nonexistent/{name}")
        project.status = ProjectStatus.ACTIVE
        loops[name] = _alternating_loop(project)
    loops["upstream_json"] = _without_our_hooks(loops["upstream_json"], stdlib)

    from opentelemetry import _logs, trace

    tracer_provider: Any = trace.get_tracer_provider()
    logger_provider: Any = _logs.get_logger_provider()

    def settle() -> None:  # hands each run an empty span and log queue
        tracer_provider.force_flush()
        logger_provider.force_flush()

    timings = interleave(loops, rounds=rounds, iterations=iterations, settle=settle)
    ns = {name: round(timings.median_ns(name), 1) for name in loops}
    cpu_ns = {name: round(timings.median_ns(name, cpu=True), 1) for name in loops}
    spans_metrics = timings.ratio("instrumented_no_logs", "floor_no_logs")
    q1, q3 = timings.ratio_spread("instrumented_no_logs", "floor_no_logs")
    return {
        "overhead_spans_metrics_ratio_vs_floor": round(spans_metrics, 4),
        "overhead": {
            "operation": "Project.transition_status (ACTIVE <-> ARCHIVED)",
            "ns_per_op": ns,
            "cpu_ns_per_op": cpu_ns,
            "ratio_iqr": [round(q1, 4), round(q3, 4)],
            "ratios": {
                "instrumented_no_logs/floor_no_logs": round(spans_metrics, 4),
                "instrumented/bare": round(timings.ratio("instrumented", "bare"), 2),
                "floor_no_logs/bare": round(timings.ratio("floor_no_logs", "bare"), 2),
                "upstream_json/bare": round(timings.ratio("upstream_json", "bare"), 2),
                "instrumented/upstream_json": round(timings.ratio("instrumented", "upstream_json"), 3),
            },
            "cpu_time_ratios": {
                "instrumented_no_logs/floor_no_logs": round(
                    timings.ratio("instrumented_no_logs", "floor_no_logs", cpu=True), 4
                ),
            },
            "ratio_of_minimums": {
                "instrumented_no_logs/floor_no_logs": round(
                    timings.ratio_of_minimums("instrumented_no_logs", "floor_no_logs"), 4
                ),
            },
            "our_cost_ns_per_op": {
                "spans_metrics_only": round(ns["instrumented_no_logs"] - ns["floor_no_logs"], 1),
            },
            "rounds": rounds,
            "iterations_per_round": iterations,
            "upstream_json_logging": "stdlib record factory and Logger.callHandlers (ours swapped out per run)",
        },
    }


def main(argv: list[str] | None = None) -> int:
    print_measurement(measure_overhead, __doc__, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
