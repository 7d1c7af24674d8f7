"""Latency per tool and per operation over a window, from the local metric files.

The duration histograms (``mcp.server.operation.duration`` per MCP request, ``cde.operation.duration``
per domain operation; base-2 exponential by default, explicit buckets with ``CDE_OTEL_HISTOGRAM=classic``)
are cumulative: each exported point holds everything since its series' process started. So per series
(resource, attributes, start time) the window's histogram is its last point minus its baseline: the
last point at or before the window's start, or nothing when the process started inside the window (or
no window is asked for). With delta temporality the points inside the window are added up.
Quantiles are then computed by :mod:`cde_otel.health._percentiles`, the way Prometheus'
``histogram_quantile`` does, so the numbers agree with the stack's.

Memory: two points per series, whatever the size of the files.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics.export import Buckets, ExponentialHistogramDataPoint, HistogramDataPoint

from cde_otel.cli._spans import otlp_attributes
from cde_otel.health._percentiles import ExponentialCounts, Interpolation, OperationStats, summarize
from cde_otel.semconv import (
    ATTR_ERROR_TYPE,
    ATTR_GEN_AI_TOOL_NAME,
    ATTR_MCP_METHOD_NAME,
    ATTR_OPERATION,
    ATTR_OUTCOME,
    METRIC_MCP_SERVER_OPERATION_DURATION,
    METRIC_OPERATION_DURATION,
    OUTCOME_ERROR,
)

HistogramPoint = ExponentialHistogramDataPoint | HistogramDataPoint
METRICS = (METRIC_MCP_SERVER_OPERATION_DURATION, METRIC_OPERATION_DURATION)
_CUMULATIVE = (2, "AGGREGATION_TEMPORALITY_CUMULATIVE")


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the latency table: a tool, another MCP method, or a domain operation."""

    kind: str  # tool, method, operation
    name: str
    stats: OperationStats

    @property
    def error_rate(self) -> float | None:
        return self.stats.errors / self.stats.count if self.stats.count else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "count": self.stats.count,
            "errors": self.stats.errors,
            "error_rate": self.error_rate,
            "p50_s": self.stats.p50,
            "p95_s": self.stats.p95,
            "p99_s": self.stats.p99,
        }


def row_key(metric: str, attributes: Mapping[str, Any]) -> tuple[str, str]:
    if metric == METRIC_OPERATION_DURATION:
        return "operation", str(attributes.get(ATTR_OPERATION, "unknown"))
    if ATTR_GEN_AI_TOOL_NAME in attributes:
        return "tool", str(attributes[ATTR_GEN_AI_TOOL_NAME])
    return "method", str(attributes.get(ATTR_MCP_METHOD_NAME, "unknown"))


def is_error(metric: str, attributes: Mapping[str, Any]) -> bool:
    if metric == METRIC_OPERATION_DURATION:
        return attributes.get(ATTR_OUTCOME) == OUTCOME_ERROR
    return ATTR_ERROR_TYPE in attributes


@dataclass(slots=True)
class _Series:
    metric: str
    attributes: dict[str, Any]
    cumulative: bool
    baseline: HistogramPoint | None = None
    last: HistogramPoint | None = None
    deltas: list[HistogramPoint] = field(default_factory=list)


class WindowedHistograms:
    """Feed it export requests (oldest first); :meth:`rows` gives the window's latency table."""

    def __init__(self, since_ns: int | None = None) -> None:
        self.since_ns = since_ns
        self.series: dict[tuple[Any, ...], _Series] = {}
        self.points = 0

    def add_request(self, request: Mapping[str, Any]) -> None:
        for resource_metrics in request.get("resourceMetrics") or ():
            resource = otlp_attributes((resource_metrics.get("resource") or {}).get("attributes"))
            resource_key = tuple(sorted((k, repr(v)) for k, v in resource.items()))
            for scope_metrics in resource_metrics.get("scopeMetrics") or ():
                for metric in scope_metrics.get("metrics") or ():
                    if metric.get("name") in METRICS:
                        self._add_metric(metric, resource_key)

    def _add_metric(self, metric: Mapping[str, Any], resource_key: tuple[Any, ...]) -> None:
        name = str(metric["name"])
        data = metric.get("exponentialHistogram") or metric.get("histogram")
        if not data:
            return
        cumulative = data.get("aggregationTemporality") in _CUMULATIVE
        for raw in data.get("dataPoints") or ():
            point = to_point(raw)
            attributes = dict(point.attributes or {})
            # A cumulative series restarts with its process: the start time is part of its identity.
            started = point.start_time_unix_nano if cumulative else 0
            key: tuple[Any, ...] = (
                name,
                resource_key,
                tuple(sorted((k, repr(v)) for k, v in attributes.items())),
                started,
            )
            series = self.series.get(key)
            if series is None:
                series = self.series[key] = _Series(name, attributes, cumulative)
            self.points += 1
            self._place(series, point)

    def _place(self, series: _Series, point: HistogramPoint) -> None:
        since = self.since_ns
        if not series.cumulative:
            if since is None or point.start_time_unix_nano >= since:
                series.deltas.append(point)
            return
        before_window = since is not None and point.time_unix_nano <= since
        if before_window and (series.baseline is None or point.time_unix_nano >= series.baseline.time_unix_nano):
            series.baseline = point
        if series.last is None or point.time_unix_nano >= series.last.time_unix_nano:
            series.last = point

    def _window_points(self, series: _Series) -> list[HistogramPoint]:
        if not series.cumulative:
            return series.deltas
        if series.last is None:
            return []
        since = self.since_ns
        if since is None or series.last.start_time_unix_nano >= since:
            return [series.last]  # the whole life of the series is inside the window
        if series.baseline is None or series.baseline is series.last:
            return []  # nothing after the window's start (or no point before it was kept)
        return [subtract(series.last, series.baseline)]

    def rows(self, interpolation: Interpolation = "exponential") -> list[Row]:
        grouped: dict[tuple[str, str], list[HistogramPoint]] = defaultdict(list)
        errors: dict[tuple[str, str], int] = defaultdict(int)
        for series in self.series.values():
            key = row_key(series.metric, series.attributes)
            for point in self._window_points(series):
                if point.count:
                    grouped[key].append(point)
                    errors[key] += point.count if is_error(series.metric, series.attributes) else 0
        return [
            Row(kind, name, summarize(points, errors=errors[(kind, name)], interpolation=interpolation))
            for (kind, name), points in sorted(grouped.items())
        ]


def _counts(raw: Any) -> list[int]:
    return [int(count) for count in raw or ()]


def to_point(raw: Mapping[str, Any]) -> HistogramPoint:
    """An OTLP/JSON histogram data point (exponential or explicit) as the SDK's data point."""
    attributes = otlp_attributes(raw.get("attributes"))
    start, at = int(raw.get("startTimeUnixNano", 0)), int(raw.get("timeUnixNano", 0))
    count, total = int(raw.get("count", 0)), float(raw.get("sum", 0.0))
    low, high = float(raw.get("min", -math.inf)), float(raw.get("max", math.inf))
    if "scale" in raw or "positive" in raw or "zeroCount" in raw:
        positive, negative = raw.get("positive") or {}, raw.get("negative") or {}
        return ExponentialHistogramDataPoint(
            attributes, start, at, count, total,
            scale=int(raw.get("scale", 0)),
            zero_count=int(raw.get("zeroCount", 0)),
            positive=Buckets(int(positive.get("offset", 0)), _counts(positive.get("bucketCounts"))),
            negative=Buckets(int(negative.get("offset", 0)), _counts(negative.get("bucketCounts"))),
            flags=int(raw.get("flags", 0)),
            min=low,
            max=high,
        )  # fmt: skip
    bounds = [float(bound) for bound in raw.get("explicitBounds") or ()]
    return HistogramDataPoint(attributes, start, at, count, total, _counts(raw.get("bucketCounts")), bounds, low, high)


def _buckets(counts: Mapping[int, int]) -> Buckets:
    if not counts:
        return Buckets(0, [])
    low, high = min(counts), max(counts)
    return Buckets(low, [counts.get(index, 0) for index in range(low, high + 1)])


def subtract(last: HistogramPoint, baseline: HistogramPoint) -> HistogramPoint:
    """``last - baseline`` of one cumulative series: what happened between the two points.

    min and max of the difference are unknown (±inf: no clamping).
    """
    head = (last.attributes, baseline.time_unix_nano, last.time_unix_nano)
    count, total = max(last.count - baseline.count, 0), last.sum - baseline.sum
    if isinstance(last, ExponentialHistogramDataPoint) and isinstance(baseline, ExponentialHistogramDataPoint):
        scale = min(last.scale, baseline.scale)  # the SDK only ever lowers a series' scale
        now, before = (
            ExponentialCounts.from_point(last).downscaled(scale),
            ExponentialCounts.from_point(baseline).downscaled(scale),
        )
        positive = {i: c - before.positive.get(i, 0) for i, c in now.positive.items()}
        negative = {i: c - before.negative.get(i, 0) for i, c in now.negative.items()}
        return ExponentialHistogramDataPoint(
            *head, count, total,
            scale=scale,
            zero_count=max(now.zero_count - before.zero_count, 0),
            positive=_buckets({i: c for i, c in positive.items() if c > 0}),
            negative=_buckets({i: c for i, c in negative.items() if c > 0}),
            flags=0,
            min=-math.inf,
            max=math.inf,
        )  # fmt: skip
    if (
        isinstance(last, HistogramDataPoint)
        and isinstance(baseline, HistogramDataPoint)
        and list(last.explicit_bounds) == list(baseline.explicit_bounds)
    ):
        counts = [max(a - b, 0) for a, b in zip(last.bucket_counts, baseline.bucket_counts, strict=True)]
        return HistogramDataPoint(*head, count, total, counts, last.explicit_bounds, -math.inf, math.inf)
    return last  # the aggregation changed under the same series: the last point is all we can trust


def window_rows(
    requests: Iterable[Mapping[str, Any]], since_ns: int | None, interpolation: Interpolation = "exponential"
) -> tuple[list[Row], WindowedHistograms]:
    histograms = WindowedHistograms(since_ns)
    for request in requests:
        histograms.add_request(request)
    return histograms.rows(interpolation), histograms
