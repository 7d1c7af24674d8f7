"""Helpers for testing code that uses cde-otel (cde-otel's own tests use them too).

Deterministic time and ids, in-memory telemetry, one reader of metric points, and
storage faults — without sleeping, without a collector, without a full disk::

    from cde_otel.core import FileSystemProjectRepository
    from cde_otel.instrumentation import CDEInstrumentor
    from cde_otel.testing import ManualClock, capture_telemetry, simulate_disk_full

    def test_a_full_disk_makes_the_project_read_only(tmp_path):
        clock = ManualClock()
        repo = FileSystemProjectRepository(clock=clock, readonly_probe_s=5)
        with simulate_disk_full():
            project = repo.get_or_create(tmp_path)
        assert project.read_only
        clock.advance(5)                      # the next probe is due: no waiting
        assert repo.ensure_writable(project)

    def test_operations_are_traced(tmp_path):
        telemetry = capture_telemetry()        # in-memory providers, trace/span ids 1, 2, 3...
        instrumentor = CDEInstrumentor()
        instrumentor.instrument(tracer_provider=telemetry.tracer_provider,
                                meter_provider=telemetry.meter_provider)
        try:
            FileSystemProjectRepository().get_or_create(tmp_path).activate()
        finally:
            instrumentor.uninstrument()
        assert [s.name for s in telemetry.spans()][-1] == "Project.activate"
        assert telemetry.points("cde.operation.duration")

* :class:`ManualClock` — a monotonic clock that moves only when told (``clock=`` of the
  repository, the circuit breaker, the health monitor).
* :class:`SequentialIdGenerator` — trace and span ids 1, 2, 3... so assertions can name them.
* :func:`capture_telemetry` — tracer and meter providers recording in memory, with
  cde-otel's histogram views; :meth:`CapturedTelemetry.record_operation` feeds the duration
  histogram as the instrumentation would (for health and alert tests).
* :func:`capture_operation_lines` — :class:`~cde_otel.logging.OperationEvents` whose JSON lines
  are kept in memory: ``instrument(operation_events=captured.events)``, then ``captured.lines()``.
* :func:`metric_points` — every data point of one metric from a reader or ``MetricsData``.
* :func:`simulate_storage_error` / :func:`simulate_disk_full` — every state, backup and probe
  write fails with the chosen errno while the block runs.
* :class:`FakeHost` — disk, memory, read-only, breaker and export readings for a
  :class:`~cde_otel.health.HealthMonitor`, changed between status calls.

Not thread-safe against concurrent fault injection; meant for tests.
"""

from __future__ import annotations

import errno as errno_codes
import itertools
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

from cde_otel.core import storage
from cde_otel.health import MIB, DiskReading, MemoryReading, metric_points
from cde_otel.logging import OperationEvents
from cde_otel.semconv import (
    ATTR_ERROR_CODE,
    ATTR_ERROR_TYPE,
    ATTR_OPERATION,
    ATTR_OUTCOME,
    METRIC_OPERATION_DURATION,
    OUTCOME_ERROR,
    OUTCOME_OK,
    SCOPE_NAME,
)
from cde_otel.settings import HistogramKind, Settings
from cde_otel.telemetry._histograms import duration_views

__all__ = [
    "CapturedLines",
    "CapturedTelemetry",
    "FakeHost",
    "InjectedFault",
    "ManualClock",
    "SequentialIdGenerator",
    "capture_operation_lines",
    "capture_telemetry",
    "metric_points",
    "simulate_disk_full",
    "simulate_storage_error",
]


# -- time and ids ---------------------------------------------------------------------------
class ManualClock:
    """A clock that reads ``now`` (seconds) and moves only by :meth:`advance` or by setting ``now``."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float | timedelta) -> None:
        self.now += seconds.total_seconds() if isinstance(seconds, timedelta) else seconds


class SequentialIdGenerator(IdGenerator):
    """Trace ids 1, 2, 3... and span ids 1, 2, 3...: assertions can name them."""

    def __init__(self) -> None:
        self._trace = itertools.count(1)
        self._span = itertools.count(1)

    def generate_trace_id(self) -> int:
        return next(self._trace)

    def generate_span_id(self) -> int:
        return next(self._span)


# -- in-memory telemetry ----------------------------------------------------------------------
@dataclass
class CapturedTelemetry:
    """Providers that keep every finished span and every metric in memory."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    span_exporter: InMemorySpanExporter
    metric_reader: InMemoryMetricReader
    _histogram: Any = field(default=None, repr=False)

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans in end order (only those called ``name`` when given)."""
        finished = list(self.span_exporter.get_finished_spans())
        return finished if name is None else [s for s in finished if s.name == name]

    def points(self, metric: str) -> list[Any]:
        """The current data points of ``metric`` (collected now)."""
        return list(metric_points(self.metric_reader, metric))

    def record_operation(
        self,
        operation: str,
        seconds: float,
        *,
        error: str | None = None,
        error_type: str | None = None,
        error_code: str | None = None,
    ) -> None:
        """Records one ``cde.operation.duration`` value as the instrumentation would.

        A failed operation has ``error_type`` (``error.type``: the exception's class name, e.g.
        ``"StateError"``) and, when coded, ``error_code`` (``cde.error.code``, e.g. ``"E201"``).
        ``error`` is the older spelling of ``error_type``, kept working (the value goes in ``error.type``
        as given). Any of them marks the operation failed (``cde.outcome=error``).
        """
        if self._histogram is None:
            self._histogram = self.meter_provider.get_meter(SCOPE_NAME).create_histogram(
                METRIC_OPERATION_DURATION, unit="s"
            )
        kind = error_type or error
        failed = bool(kind or error_code)
        attributes = {ATTR_OPERATION: operation, ATTR_OUTCOME: OUTCOME_ERROR if failed else OUTCOME_OK}
        if failed:
            attributes[ATTR_ERROR_TYPE] = kind or "_OTHER"
        if error_code:
            attributes[ATTR_ERROR_CODE] = error_code
        self._histogram.record(seconds, attributes)

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def capture_telemetry(histogram: HistogramKind = "exponential", *, views: bool = True) -> CapturedTelemetry:
    """In-memory providers with deterministic ids; ``views=False`` leaves the SDK's default aggregations."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(id_generator=SequentialIdGenerator())
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    max_size = Settings().histogram_max_size
    meter_provider = MeterProvider(metric_readers=[reader], views=duration_views(histogram, max_size) if views else ())
    return CapturedTelemetry(tracer_provider, meter_provider, spans, reader)


@dataclass
class CapturedLines:
    """Operation events writing to memory: pass :attr:`events` to ``instrument(operation_events=...)``."""

    events: OperationEvents
    written: list[str]

    def lines(self) -> list[dict[str, Any]]:
        """Every line written so far (pending ones flushed first), parsed."""
        self.events.flush()
        return [json.loads(line) for batch in self.written for line in batch.splitlines()]


class _MemorySink:
    def __init__(self) -> None:
        self.written: list[str] = []

    def write_lines(self, data: str) -> None:
        self.written.append(data)


def capture_operation_lines(settings: Settings | None = None, *, logger_provider: Any = None) -> CapturedLines:
    """Operation lines kept in memory, at the level and slow threshold of ``settings`` (default: the defaults).

    ``logger_provider``: where failed and slow operations' log records go (none by default).
    """
    sink = _MemorySink()
    events = OperationEvents.from_settings(settings or Settings(), [sink], logger_provider)
    return CapturedLines(events, sink.written)


# -- storage faults -------------------------------------------------------------------------
@dataclass
class InjectedFault:
    errno: int
    times: int | None
    failures: int = 0


@contextmanager
def simulate_storage_error(error: int = errno_codes.ENOSPC, *, times: int | None = None) -> Iterator[InjectedFault]:
    """Every write (or the first ``times`` writes) raises ``OSError(error)`` while the block runs.

    Replaces :func:`cde_otel.core.storage.write_all`, the one function every state, backup and
    probe write goes through, so nothing else in the process is affected.
    """
    fault = InjectedFault(error, times)
    real_write_all = storage.write_all

    def failing_write_all(fd: int, data: bytes) -> None:
        if fault.times is None or fault.failures < fault.times:
            fault.failures += 1
            raise OSError(error, os.strerror(error))
        real_write_all(fd, data)

    storage.write_all = failing_write_all
    try:
        yield fault
    finally:
        storage.write_all = real_write_all


@contextmanager
def simulate_disk_full() -> Iterator[InjectedFault]:
    """Every write fails with ENOSPC while the block runs."""
    with simulate_storage_error(errno_codes.ENOSPC) as fault:
        yield fault


# -- health ---------------------------------------------------------------------------------
@dataclass
class FakeHost:
    """Readings a :class:`~cde_otel.health.HealthMonitor` sees: ``HealthMonitor(path, **host.probes())``."""

    free_mb: float = 10_000.0
    cde_bytes: int = 4096
    memory_percent: float = 40.0
    rss_bytes: int = 50 * MIB
    read_only: bool | str = False
    breakers: dict[str, str] = field(default_factory=dict)
    export: str | bool | None = None

    def disk(self, _path: Path) -> DiskReading:
        return DiskReading(free_bytes=int(self.free_mb * MIB), cde_bytes=self.cde_bytes)

    def memory(self) -> MemoryReading:
        return MemoryReading(rss_bytes=self.rss_bytes, system_percent=self.memory_percent)

    def probes(self) -> Mapping[str, Any]:
        """The monitor's probe arguments, each reading this object at call time."""
        return {
            "disk_probe": self.disk,
            "memory_probe": self.memory,
            "read_only": lambda: self.read_only,
            "breakers": lambda: self.breakers,
            "telemetry_export": lambda: self.export,
        }
