"""Child process for the pipeline benchmarks: real instrumented operations, telemetry on by env var alone.

Started with ``CDE_OTEL_ENABLED=true`` and ``OTEL_EXPORTER_OTLP_ENDPOINT`` (plus any ``OTEL_BSP_*``
tuning), like a user's process: the ``.pth`` bootstrap configures telemetry when
``cde_otel.core`` is imported. Every operation is ``Project.transition_status`` on an
in-memory project (ACTIVE <-> ARCHIVED): exactly one span and one histogram record (with
the default settings no operation line and no log record: the span is the record), no disk.
The project's status is set directly before the loop so that the number of spans is exactly
the number of operations.

With ``CDE_PIPELINE_FLOOR=1`` (and ``CDE_OTEL_ENABLED`` off) the worker is the **plain-SDK floor**
instead: no cde-otel code, a hand-written span + histogram record around the same operation, the
SDK's own ``BatchSpanProcessor`` (reading the same ``OTEL_BSP_*`` variables) and OTLP/HTTP
exporters, with cde-otel's metric interval and exponential histograms — what the same machine can
export with nothing of ours in the process.

Modes (one JSON line on stdout per answer):

* ``rate RATE SECONDS``: open-loop at RATE ops/s for SECONDS (operation ``i`` is due at
  ``start + i / RATE``; a late loop catches up instead of lowering the rate), then
  ``shutdown()`` (flushes), reporting ops, achieved rate, the flush time and the spans and
  log records the batch processors dropped (counted through their metrics hook).
* ``phases``: reads ``run RATE SECONDS`` lines on stdin; for each, runs open-loop and
  answers the latency of every operation (p50/p99/max, measured around the call) and the
  RSS sampled every 100 ms; ``quit`` ends.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any

import psutil

from cde_otel.core import Project, ProjectStatus

_STATUSES = (ProjectStatus.ARCHIVED, ProjectStatus.ACTIVE)


def _project() -> Project:
    project = Project(name="pipeline-bench", path="/nonexistent/pipeline-bench")
    project.status = ProjectStatus.ACTIVE  # set directly: no span, so spans == operations
    return project


def run_open_loop(
    project: Project, rate: float, seconds: float, *, latencies: list[int] | None = None
) -> dict[str, Any]:
    """Runs ``rate * seconds`` operations on an open-loop schedule; returns what happened."""
    total = int(rate * seconds)
    process = psutil.Process()
    rss = [process.memory_info().rss]
    next_rss = time.perf_counter() + 0.1
    max_lag = 0.0
    start = time.perf_counter()
    transition = project.transition_status
    perf_counter_ns = time.perf_counter_ns
    for index in range(total):
        due = start + index / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        else:
            max_lag = max(max_lag, now - due)
        if latencies is None:
            transition(_STATUSES[index & 1])
        else:
            began = perf_counter_ns()
            transition(_STATUSES[index & 1])
            latencies.append(perf_counter_ns() - began)
        if now >= next_rss:
            rss.append(process.memory_info().rss)
            next_rss = now + 0.1
    elapsed = time.perf_counter() - start
    rss.append(process.memory_info().rss)
    return {
        "ops": total,
        "elapsed_s": elapsed,
        "achieved_rate": total / elapsed if elapsed > 0 else math.inf,
        "max_lag_s": max_lag,
        "rss_mb": [round(value / 2**20, 2) for value in rss],
    }


class _DropCounter:
    """Wraps a batch processor's metrics hook: counts what it drops (queue full) and hands every call on.

    The SDK's own counters (``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``) would do too, but they add a
    counter update to every span start and every log record, which would tax the very rate being
    measured; its "Queue full" warning is deduplicated per 20 s across spans and logs, so it cannot count.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.dropped = 0

    def drop_items(self, count: int, error_type: str = "queue_full") -> None:
        self.dropped += count
        self.inner.drop_items(count, error_type)

    def finish_items(self, count: int) -> None:
        self.inner.finish_items(count)

    def register_queue_size(self, get_queue_size: Any) -> None:
        self.inner.register_queue_size(get_queue_size)


def install_drop_counters() -> dict[str, list[_DropCounter]]:
    """Drop counters on the batch span and log processors that ``configure()`` installed."""
    from opentelemetry import _logs, trace

    counters: dict[str, list[_DropCounter]] = {"spans": [], "logs": []}
    span_processors = getattr(
        getattr(trace.get_tracer_provider(), "_active_span_processor", None), "_span_processors", ()
    )
    log_processors = getattr(
        getattr(_logs.get_logger_provider(), "_multi_log_record_processor", None), "_log_record_processors", ()
    )
    for kind, processors in (("spans", span_processors), ("logs", log_processors)):
        for processor in processors:
            batch = getattr(processor, "_batch_processor", None)
            if batch is not None:
                batch._metrics = _DropCounter(batch._metrics)
                counters[kind].append(batch._metrics)
    if not counters["spans"]:
        raise RuntimeError("no batch span processor found: is the OTLP exporter configured?")
    return counters


def _dropped(counters: dict[str, list[_DropCounter]]) -> dict[str, int]:
    return {kind: sum(counter.dropped for counter in found) for kind, found in counters.items()}


def _floor() -> Any:
    """The plain-SDK floor (no cde-otel code): global providers, the operation patched by hand; returns a shutdown."""
    from bench_peers import floor_method  # the same floor as the in-process benchmark's
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import Histogram, MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()  # OTEL_SERVICE_NAME, as the workers set it
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    # cde-otel's schedule and histogram, so the two workers differ in code only: its 5 s metric
    # interval (unless OTEL_METRIC_EXPORT_INTERVAL says otherwise) and exponential histograms.
    interval = None if os.environ.get("OTEL_METRIC_EXPORT_INTERVAL") else 5000
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=interval)
    exponential = View(instrument_type=Histogram, aggregation=ExponentialBucketHistogramAggregation(max_size=750))
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[reader], views=[exponential], shutdown_on_exit=False
    )
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    floor = floor_method(Project.transition_status, tracer_provider, meter_provider)
    Project.transition_status = floor  # type: ignore[method-assign]

    def shutdown() -> None:
        tracer_provider.shutdown()
        meter_provider.shutdown()

    return shutdown


def _start() -> Any:
    """Telemetry as the environment turned it on; returns what flushes and shuts it down."""
    if os.environ.get("CDE_PIPELINE_FLOOR") == "1":
        return _floor()
    from cde_otel import telemetry

    if not telemetry.is_configured():
        raise RuntimeError("telemetry was not configured by the CDE_OTEL_ENABLED bootstrap")
    return telemetry.shutdown


def _rate_mode(rate: float, seconds: float) -> dict[str, Any]:
    shutdown = _start()
    counters = install_drop_counters()
    result = run_open_loop(_project(), rate, seconds)
    flush_start = time.perf_counter()
    shutdown()
    result["flush_s"] = time.perf_counter() - flush_start
    result["sdk_dropped"] = _dropped(counters)
    times = os.times()
    result["cpu_s"] = times.user + times.system  # the whole process: start-up, operations, export threads
    result["pid"] = os.getpid()
    return result


def _percentile(ordered: list[int], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] / 1e3


def _phases_mode() -> None:
    shutdown = _start()
    counters = install_drop_counters()
    project = _project()
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        rate, seconds = float(words[1]), float(words[2])
        latencies: list[int] = []
        result = run_open_loop(project, rate, seconds, latencies=latencies)
        ordered = sorted(latencies)
        result.update(
            p50_us=_percentile(ordered, 0.50),
            p99_us=_percentile(ordered, 0.99),
            max_us=ordered[-1] / 1e3,
            sdk_dropped=_dropped(counters),
        )
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    shutdown()


def main(argv: list[str]) -> int:
    if argv[0] == "rate":
        sys.stdout.write(json.dumps(_rate_mode(float(argv[1]), float(argv[2]))) + "\n")
    elif argv[0] == "phases":
        _phases_mode()
    else:
        raise SystemExit(f"unknown mode {argv[0]!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
