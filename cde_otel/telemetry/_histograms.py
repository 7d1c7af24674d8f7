"""Histogram aggregation for ``cde.operation.duration`` and ``mcp.server.operation.duration``:
precise enough for P50/P95/P99 in seconds.

* Default: base-2 exponential buckets (Prometheus native histograms). With 750 buckets
  the SDK keeps scale 5 (bucket ratio 2**(1/32) ~ 1.022, < 1.1 % quantile error) over
  10 µs .. 60 s in one series.
* ``CDE_OTEL_HISTOGRAM=classic``: 110 log-spaced boundaries from 10 µs to 60 s
  (ratio ~1.154, about 7 % worst case, one series per bucket) for Prometheus servers
  without native histograms.
* The same boundaries are declared as the instrument's advisory boundaries, so a user's
  own MeterProvider (explicit buckets by default) gets second-scale buckets instead of
  the SDK's millisecond defaults.
"""

from __future__ import annotations

import math

from opentelemetry.sdk.metrics.view import (
    Aggregation,
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)

DURATION_METRIC = "cde.operation.duration"
#: The MCP semantic conventions' server request duration (recorded by the MCP instrumentation).
MCP_DURATION_METRIC = "mcp.server.operation.duration"
_LOWEST_S = 1e-5
_HIGHEST_S = 60.0
_BOUNDARY_COUNT = 110


def _log_spaced(lowest: float, highest: float, count: int) -> tuple[float, ...]:
    step = math.log(highest / lowest) / (count - 1)
    # Four significant digits keep the boundaries readable in `le` labels.
    return tuple(float(f"{lowest * math.exp(i * step):.4g}") for i in range(count))


CLASSIC_BOUNDARIES_S: tuple[float, ...] = _log_spaced(_LOWEST_S, _HIGHEST_S, _BOUNDARY_COUNT)


def duration_aggregation(kind: str, max_size: int) -> Aggregation:
    if kind == "classic":
        return ExplicitBucketHistogramAggregation(boundaries=CLASSIC_BOUNDARIES_S)
    return ExponentialBucketHistogramAggregation(max_size=max_size)


def duration_views(kind: str, max_size: int) -> list[View]:
    return [
        View(instrument_name=name, aggregation=duration_aggregation(kind, max_size))
        for name in (DURATION_METRIC, MCP_DURATION_METRIC)
    ]
