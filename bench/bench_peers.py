"""Benchmark: what one instrumented operation costs with cde-otel's defaults, next to honest peers.

    .venv/bin/python bench/bench_peers.py [--quick]

Goals: default ≤ 1.25 times the plain-SDK floor and ≤ 0.4 times the OTel + structlog peer.

One process, one operation (``Project.transition_status``, ACTIVE <-> ARCHIVED, pure and
disk-free), each variant on its own direct subclass of ``Project``, interleaved round by
round (``_timing``). The cost is **process CPU time per operation including the exporters'
work**: every timed run ends with a ``force_flush`` of that variant's span and log
processors, so encoding and writing its batches is billed to it, whatever thread did it; and
for cde-otel's variants, with the aggregation of the duration records configure()'s
MeterProvider defers to its next collection.
Periodic metric export is off for every variant (``OTEL_METRIC_EXPORT_INTERVAL`` of an hour):
a 5 s export is noise per operation, and would land on whichever variant runs at that moment.

* ``bare`` — the uninstrumented method.
* ``floor`` — plain SDK, hand-written: a span (``start_as_current_span``, the four attributes
  cde-otel records, see :func:`floor_method`) and one record on an explicit-bucket histogram,
  with ``BatchSpanProcessor`` + the OTLP-JSON file exporters
  (``opentelemetry-exporter-otlp-json-file``). No cde-otel code.
* ``peer`` — ``floor`` plus two structlog JSON lines per operation (start, end), bridged to
  OTel logs by ``opentelemetry-instrumentation-structlog`` (``BatchLogRecordProcessor`` + the
  OTLP-JSON log file exporter), with trace/span ids added to each line; the lines go to the
  same stderr file as ours. No cde-otel code.
* ``default`` — ``cde_otel.configure()`` with its defaults (what ``CDE_OTEL_ENABLED=true``
  does, no OTLP endpoint: the embedded OTLP-JSON files), instrumenting the method. No log file
  and no console by default: the span is the operation's record, no line is written.
* ``default_log_file`` — the same wrapper and instruments with the operation events
  ``CDE_OTEL_LOG_FILE`` gives: one JSON line per operation, buffered, into the rotating log file
  (its flush is in the timed region too).
* ``default_like_peer`` — the like-for-like comparison with ``peer`` (the headline beside
  ``default/peer``, which compares unequal work): ``default``'s wrapper and pipeline, and inside
  the span the same two log events per operation as the peer's (start, end with the duration),
  written the cde-otel way: ``cde_otel.logging.get_logger`` after ``setup_logging(fmt="json")``,
  i.e. a JSON line each to the same stderr file and an OTel LogRecord each (our bridge) into
  the embedded OTLP-JSON log file.
* ``logfire`` — when installed (the ``bench`` extra): ``logfire.configure(local=True,
  send_to_logfire=False, console=False)``, a ``logfire.span`` and a histogram record, with the
  same OTLP-JSON file exporters added; nothing leaves the machine.

stderr is pointed at a file for the measurement (our console lines and the peer's lines land
there, written and flushed line by line as on a real stderr).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _cli import print_measurement
from _timing import Interleaved, Loop, interleave

_ITERATIONS = {"full": 400, "quick": 100}
_ROUNDS = {"full": 41, "quick": 7}
OPERATION = "Project.transition_status"
GOALS = {"default/floor": 1.25, "default/peer": 0.4}
_RATIOS = (
    ("default", "floor"),
    ("default", "peer"),
    ("default_like_peer", "peer"),
    ("default_log_file", "floor"),
    ("default_log_file", "peer"),
    ("peer", "floor"),
    ("logfire", "floor"),
    ("default", "logfire"),
    ("floor", "bare"),
)


# -- the baselines: OpenTelemetry SDK and structlog only, no cde-otel code -----------------------------
class _Baseline:
    """Plain-SDK providers writing OTLP-JSON files under ``directory``; ``logs`` adds the log pipeline."""

    def __init__(self, directory: Path, service: str, *, logs: bool) -> None:
        from opentelemetry.exporter.otlp.json.file import FileMetricExporter, FileSpanExporter
        from opentelemetry.exporter.otlp.json.file._log_exporter import FileLogExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        directory.mkdir(parents=True, exist_ok=True)
        resource = Resource.create({"service.name": service})
        self.tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(FileSpanExporter(directory / "traces.jsonl")))
        self.meter_provider = MeterProvider(
            resource=resource,
            metric_readers=[
                PeriodicExportingMetricReader(
                    FileMetricExporter(directory / "metrics.jsonl"), export_interval_millis=3_600_000
                )
            ],
            shutdown_on_exit=False,
        )
        self.logger_provider: Any = None
        if logs:
            self.logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
            self.logger_provider.add_log_record_processor(
                BatchLogRecordProcessor(FileLogExporter(directory / "logs.jsonl"))
            )

    def flush(self) -> None:
        self.tracer_provider.force_flush()
        if self.logger_provider is not None:
            self.logger_provider.force_flush()

    def shutdown(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider, self.logger_provider):
            if provider is not None:
                provider.shutdown()


def floor_method(original: Callable[..., Any], tracer_provider: Any, meter_provider: Any) -> Callable[..., Any]:
    """The plain-SDK floor around ``original``: a span with the four attributes cde-otel records on
    this operation (the operation, its function, the project id and the correlation id, which for a
    top-level operation is its trace id) and one histogram record.

    Also the pipeline benchmark's floor worker (``_pipeline_worker.py``), so both measure the same floor.
    """
    from opentelemetry.trace import format_trace_id

    tracer = tracer_provider.get_tracer("bench.floor")
    duration = meter_provider.get_meter("bench.floor").create_histogram("operation.duration", unit="s")
    function = "cde_otel.core.model:Project.transition_status"
    ok = {"operation": OPERATION, "outcome": "ok"}
    perf_counter = time.perf_counter

    def transition_status(self: Any, target: Any) -> Any:
        attributes = {"operation": OPERATION, "code.function.name": function, "project.id": str(self.id)}
        with tracer.start_as_current_span(OPERATION, attributes=attributes) as span:
            span.set_attribute("correlation.id", format_trace_id(span.get_span_context().trace_id))
            start = perf_counter()
            result = original(self, target)
            duration.record(perf_counter() - start, ok)
            return result

    return transition_status


def _peer_logger(baseline: _Baseline) -> Any:
    """structlog JSON lines to stderr, each also an OTel LogRecord (the contrib structlog bridge)."""
    import structlog
    from opentelemetry import trace
    from opentelemetry.instrumentation.structlog import StructlogProcessor

    def add_trace_ids(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            event_dict["trace_id"] = format(ctx.trace_id, "032x")
            event_dict["span_id"] = format(ctx.span_id, "016x")
        return event_dict

    processors: list[Any] = [  # the contrib processor's signature is narrower than structlog's Processor
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        StructlogProcessor(logger_provider=baseline.logger_provider),  # type: ignore[no-untyped-call]
        structlog.processors.JSONRenderer(),
    ]
    return structlog.wrap_logger(
        structlog.WriteLogger(sys.stderr),
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )


def _peer_method(original: Callable[..., Any], baseline: _Baseline) -> Callable[..., Any]:
    tracer = baseline.tracer_provider.get_tracer("bench.peer")
    duration = baseline.meter_provider.get_meter("bench.peer").create_histogram("operation.duration", unit="s")
    log = _peer_logger(baseline)
    function = "cde_otel.core.model:Project.transition_status"
    ok = {"operation": OPERATION, "outcome": "ok"}
    perf_counter = time.perf_counter

    def transition_status(self: Any, target: Any) -> Any:
        project_id = str(self.id)
        attributes = {"operation": OPERATION, "code.function.name": function, "project.id": project_id}
        with tracer.start_as_current_span(OPERATION, attributes=attributes):
            log.info("operation started", operation=OPERATION, project_id=project_id)
            start = perf_counter()
            result = original(self, target)
            elapsed = perf_counter() - start
            duration.record(elapsed, ok)
            log.info(
                "operation succeeded",
                operation=OPERATION,
                project_id=project_id,
                duration_ms=round(elapsed * 1000.0, 3),
                outcome="ok",
            )
            return result

    return transition_status


def _logfire_method(original: Callable[..., Any], directory: Path) -> tuple[Callable[..., Any], Callable[[], object]]:
    """Logfire, fully local: its own providers, console off, the same OTLP-JSON file exporters added."""
    import logfire
    from opentelemetry.exporter.otlp.json.file import FileMetricExporter, FileSpanExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    directory.mkdir(parents=True, exist_ok=True)
    instance = logfire.configure(
        local=True,
        send_to_logfire=False,
        console=False,
        service_name="bench-logfire",
        data_dir=directory,
        inspect_arguments=False,
        additional_span_processors=[BatchSpanProcessor(FileSpanExporter(directory / "traces.jsonl"))],
        metrics=logfire.MetricsOptions(
            additional_readers=[
                PeriodicExportingMetricReader(
                    FileMetricExporter(directory / "metrics.jsonl"), export_interval_millis=3_600_000
                )
            ]
        ),
    )
    duration = instance.metric_histogram("operation.duration", unit="s")
    ok = {"operation": OPERATION, "outcome": "ok"}
    perf_counter = time.perf_counter

    def transition_status(self: Any, target: Any) -> Any:
        with instance.span(OPERATION, operation=OPERATION, project_id=str(self.id)):
            start = perf_counter()
            result = original(self, target)
            duration.record(perf_counter() - start, ok)
            return result

    tracer_provider = instance.config.get_tracer_provider()
    return transition_status, tracer_provider.force_flush


def _log_file_method(
    original: Callable[..., Any], path: Path, logger_provider: Any, flush_default: Callable[[], None]
) -> tuple[Callable[..., Any], Callable[[], None]]:
    """Our wrapper on the configured instruments, with the operation lines ``CDE_OTEL_LOG_FILE=path`` gives."""
    import wrapt

    from cde_otel.instrumentation import CDEInstrumentor
    from cde_otel.instrumentation._targets import CORE_TARGETS
    from cde_otel.instrumentation._wrapper import OperationTelemetry
    from cde_otel.logging import HandlerSink, OperationEvents
    from cde_otel.logging._handlers import file_handler
    from cde_otel.settings import load_settings

    configured = CDEInstrumentor().operation_telemetry
    if configured is None or configured.events is None:
        raise RuntimeError("configure() did not instrument with operation events")
    settings = load_settings({"CDE_OTEL_LOG_FILE": str(path)})
    handler = file_handler(path, settings.log_rotation, settings.log_max_bytes, settings.log_retention_days)
    events = OperationEvents.from_settings(settings, [HandlerSink(handler)], logger_provider)
    ops = OperationTelemetry(configured.tracer, configured.duration, configured.errors, events=events)
    target = next(t for t in CORE_TARGETS if t.qualname == OPERATION)

    def flush() -> None:
        events.flush()
        flush_default()

    return wrapt.FunctionWrapper(original, ops.wrapper_for(target, original)), flush


def _like_peer_method(original: Callable[..., Any], logger_provider: Any) -> Callable[..., Any]:
    """Our configured wrapper around a body that logs what the peer logs, through cde-otel's logging."""
    import wrapt

    from cde_otel.instrumentation import CDEInstrumentor
    from cde_otel.instrumentation._targets import CORE_TARGETS
    from cde_otel.logging import get_logger, setup_logging

    configured = CDEInstrumentor().operation_telemetry
    if configured is None:
        raise RuntimeError("configure() did not instrument")
    setup_logging("info", fmt="json", stream=sys.stderr, logger_provider=logger_provider)
    log = get_logger("bench.ours")
    perf_counter = time.perf_counter

    def logged(self: Any, target: Any) -> Any:
        project_id = str(self.id)
        log.info("operation started", operation=OPERATION, project_id=project_id)
        start = perf_counter()
        result = original(self, target)
        elapsed = perf_counter() - start
        log.info(
            "operation succeeded",
            operation=OPERATION,
            project_id=project_id,
            duration_ms=round(elapsed * 1000.0, 3),
            outcome="ok",
        )
        return result

    target = next(t for t in CORE_TARGETS if t.qualname == OPERATION)
    return wrapt.FunctionWrapper(logged, configured.wrapper_for(target, logged))


# -- the run ---------------------------------------------------------------------------------------------
def _loop(project: Any, flush: Callable[[], object]) -> Loop:
    """n operations (archive, activate, ...) then the flush that makes the exporters do their part."""
    from cde_otel.core import ProjectStatus

    archived, active = ProjectStatus.ARCHIVED, ProjectStatus.ACTIVE

    def loop(n: int) -> None:
        for _ in range(n // 2):
            project.transition_status(archived)
            project.transition_status(active)
        flush()

    return loop


class _StderrToFile:
    """Points file descriptor 2 (and ``sys.stderr``) at a file while the benchmark runs."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def __enter__(self) -> None:
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._file = open(self._path, "w")
        os.dup2(self._file.fileno(), 2)

    def __exit__(self, *exc: object) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.close()


def measure_peers(*, quick: bool = False, rounds: int | None = None, iterations: int | None = None) -> dict[str, Any]:
    """Builds every variant in this process and times them interleaved; call once per process."""
    mode = "quick" if quick else "full"
    rounds = rounds or _ROUNDS[mode]
    iterations = iterations or _ITERATIONS[mode]
    work = Path(tempfile.mkdtemp(prefix="cde-otel-bench-peers-"))
    for key in [k for k in os.environ if k.startswith(("CDE_OTEL_", "OTEL_"))]:
        del os.environ[key]
    os.environ["OTEL_METRIC_EXPORT_INTERVAL"] = "3600000"
    os.environ["CDE_OTEL_LOCAL_DIR"] = str(work / "cde-otel")
    os.environ["CDE_OTEL_LOCAL_MAX_MB"] = "4000"  # rotated, never pruned: every record is counted below
    os.chdir(work)
    with _StderrToFile(work / "stderr.log"):
        timings, variants = _run(work, rounds, iterations)
    lines = sum(1 for _ in (work / "stderr.log").open())
    ours, theirs = _event_lines(work / "stderr.log")
    ours_files = sorted((work / "cde-otel").glob("logs*.jsonl"))  # the live file and the rotated ones
    records = sum(_log_records(f, "bench.ours") for f in ours_files), _log_records(work / "peer" / "logs.jsonl")
    if ours != theirs or not ours or records != (ours, theirs):
        raise RuntimeError(f"unequal work: event lines (ours, peer's) {ours, theirs}, OTel log records {records}")
    return _result(timings, variants, rounds, iterations, lines)


def _log_records(path: Path, scope: str | None = None) -> int:
    """OTel log records in an OTLP-JSON lines file (of one instrumentation scope, or all)."""
    import json

    count = 0
    for line in path.open():
        for resource_logs in json.loads(line)["resourceLogs"]:
            for scope_logs in resource_logs["scopeLogs"]:
                if scope is None or scope_logs["scope"]["name"] == scope:
                    count += len(scope_logs["logRecords"])
    return count


def _event_lines(path: Path) -> tuple[int, int]:
    """The operation event lines on stderr: (ours, the peer's); like for like, they must be equal."""
    ours = theirs = 0
    for line in path.open():
        if '"event": "operation s' in line:  # "operation started" / "operation succeeded"
            if '"logger": "bench.ours"' in line:
                ours += 1
            else:
                theirs += 1
    return ours, theirs


def _run(work: Path, rounds: int, iterations: int) -> tuple[Interleaved, list[str]]:
    from cde_otel.core import Project, ProjectStatus

    original = Project.__dict__["transition_status"]  # before configure() patches the class
    floor = _Baseline(work / "floor", "bench-floor", logs=False)
    peer = _Baseline(work / "peer", "bench-peer", logs=True)
    methods: dict[str, tuple[Any, Callable[[], object]]] = {
        "bare": (original, lambda: None),
        "floor": (floor_method(original, floor.tracer_provider, floor.meter_provider), floor.flush),
        "peer": (_peer_method(original, peer), peer.flush),
    }
    with contextlib.suppress(ImportError):  # the bench extra is not installed: reported as absent
        methods["logfire"] = _logfire_method(original, work / "logfire")

    import cde_otel

    pipeline = cde_otel.configure()
    if pipeline is None:
        raise RuntimeError("configure() returned None (OTEL_SDK_DISABLED?)")

    measurements = pipeline.deferred_measurements
    if measurements is None:
        raise RuntimeError("configure()'s MeterProvider does not defer its duration records")

    def flush_default() -> None:
        measurements.drain()  # the duration records wait for a collection: aggregated in the timed run
        pipeline.tracer_provider.force_flush()
        pipeline.logger_provider.force_flush()

    methods["default"] = (None, flush_default)  # inherits the method configure() patched
    methods["default_log_file"] = _log_file_method(original, work / "cde.log", pipeline.logger_provider, flush_default)
    methods["default_like_peer"] = (_like_peer_method(original, pipeline.logger_provider), flush_default)
    loops: dict[str, Loop] = {}
    for name, (method, flush) in methods.items():
        cls = type(f"Project_{name}", (Project,), {} if method is None else {"transition_status": method})
        project = cls(name=f"bench-{name}", path=f"/nonexistent/{name}")
        project.status = ProjectStatus.ACTIVE
        loops[name] = _loop(project, flush)
    timings = interleave(loops, rounds=rounds, iterations=iterations, warmup=400, cpu_clock=time.process_time_ns)
    cde_otel.shutdown()
    floor.shutdown()
    peer.shutdown()
    return timings, list(loops)


def _result(timings: Interleaved, variants: list[str], rounds: int, iterations: int, lines: int) -> dict[str, Any]:
    cpu = {name: round(timings.median_ns(name, cpu=True)) for name in variants}
    wall = {name: round(timings.median_ns(name)) for name in variants}
    ratios = {f"{a}/{b}": round(timings.ratio(a, b, cpu=True), 3) for a, b in _RATIOS if a in cpu and b in cpu}
    return {
        "peers_default_vs_floor": ratios["default/floor"],
        "peers_default_vs_peer": ratios["default/peer"],
        "peers_like_for_like_vs_peer": ratios["default_like_peer/peer"],
        "peers_log_file_vs_floor": ratios["default_log_file/floor"],
        "peers_log_file_vs_peer": ratios["default_log_file/peer"],
        "peers": {
            "operation": f"{OPERATION} (ACTIVE <-> ARCHIVED)",
            "measure": "process CPU ns per operation, exporters' flush included (median over rounds)",
            "cpu_ns_per_op": cpu,
            "wall_ns_per_op": wall,
            "cpu_ratios": ratios,
            "goals": GOALS,
            "logfire": "logfire" in cpu,
            "stderr_lines": lines,
            "rounds": rounds,
            "iterations_per_round": iterations,
        },
    }


def main(argv: list[str] | None = None) -> int:
    print_measurement(measure_peers, __doc__, argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
