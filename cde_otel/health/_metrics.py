"""Operation statistics from the OpenTelemetry metrics data: shared by the monitor and ``cde-otel demo``.

    from cde_otel.health import operation_stats

    stats = operation_stats(reader)          # {"Project.activate": OperationStats(count=..., p99=...)}

:func:`metric_points` is the one traversal of the SDK's ``MetricsData`` (resources, scopes,
metrics) in the package; :func:`operation_stats` groups the ``cde.operation.duration``
points by operation and merges them into count, errors, mean and P50/P95/P99
(:mod:`cde_otel.health._percentiles`). :class:`MetricsCollector` adds what the monitor needs
on top: totals and throughput between two collections.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.sdk.metrics.export import (
    DataPointT,
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    MetricReader,
    MetricsData,
)

from cde_otel.health._percentiles import OperationStats, summarize
from cde_otel.semconv import ATTR_OPERATION, ATTR_OUTCOME, METRIC_OPERATION_DURATION, OUTCOME_ERROR

MetricsSource = MetricReader | MetricsData | None
HistogramPoint = ExponentialHistogramDataPoint | HistogramDataPoint


def metric_points(source: MetricsSource, name: str) -> list[DataPointT]:
    """Every data point of the metric ``name``, across all resources and scopes.

    ``source``: a pull reader such as ``InMemoryMetricReader`` (collected now), already
    collected ``MetricsData``, or None. A push-only reader yields no points.
    """
    data = source if source is None or isinstance(source, MetricsData) else _pull(source)
    if data is None:
        return []
    return [
        point
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def _pull(reader: object) -> MetricsData | None:
    # Push readers (PeriodicExportingMetricReader) cannot be read on demand: no data rather than an error.
    get = getattr(reader, "get_metrics_data", None)
    return get() if callable(get) else None


def operation_stats(source: MetricsSource) -> dict[str, OperationStats]:
    """Count, errors, mean and P50/P95/P99 per ``cde.operation`` from the duration histogram."""
    points: dict[str, list[HistogramPoint]] = collections.defaultdict(list)
    errors: dict[str, int] = collections.defaultdict(int)
    for point in metric_points(source, METRIC_OPERATION_DURATION):
        if not isinstance(point, HistogramPoint):
            continue
        attributes = point.attributes or {}
        operation = str(attributes.get(ATTR_OPERATION, "unknown"))
        points[operation].append(point)
        if attributes.get(ATTR_OUTCOME) == OUTCOME_ERROR:
            errors[operation] += point.count
    return {operation: summarize(found, errors=errors[operation]) for operation, found in points.items()}


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """One collection: per-operation stats, totals, and throughput since the previous collection."""

    at: float
    total: int
    errors: int
    operations: dict[str, OperationStats]
    throughput: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.total if self.total else 0.0


class MetricsCollector:
    """Collects snapshots from a reader; throughput is the operation count delta between two collections.

    Error rate and percentiles are cumulative since the process started (the histograms are
    cumulative). The first collection's throughput is the total over the time since ``started``.
    """

    def __init__(self, reader: Callable[[], MetricReader | None], clock: Callable[[], float], started: float) -> None:
        self._reader = reader
        self._clock = clock
        self._started = started
        self._previous: MetricsSnapshot | None = None

    def collect(self) -> MetricsSnapshot:
        now = self._clock()
        operations = operation_stats(self._reader())
        total = sum(stats.count for stats in operations.values())
        previous = self._previous
        if previous is None or now <= previous.at:
            elapsed = now - self._started
            throughput = total / elapsed if elapsed > 0 else 0.0
        else:
            throughput = max(total - previous.total, 0) / (now - previous.at)
        errors = sum(stats.errors for stats in operations.values())
        snapshot = MetricsSnapshot(now, total, errors, operations, throughput)
        self._previous = snapshot
        return snapshot
