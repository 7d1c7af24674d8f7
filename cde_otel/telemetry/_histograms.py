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

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.view import (
    Aggregation,
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)

from cde_otel.semconv import (
    CLASSIC_BOUNDARIES_S,
    METRIC_MCP_SERVER_OPERATION_DURATION,
    METRIC_MCP_SERVER_SESSION_DURATION,
    METRIC_OPERATION_DURATION,
)

#: Every SDK instrument class a metric reader takes a temporality or an aggregation for.
SDK_INSTRUMENTS: tuple[type, ...] = (
    Counter,
    UpDownCounter,
    Histogram,
    ObservableCounter,
    ObservableUpDownCounter,
    ObservableGauge,
)


def duration_aggregation(kind: str, max_size: int) -> Aggregation:
    if kind == "classic":
        return ExplicitBucketHistogramAggregation(boundaries=CLASSIC_BOUNDARIES_S)
    return ExponentialBucketHistogramAggregation(max_size=max_size)


def duration_views(kind: str, max_size: int) -> list[View]:
    views = [
        View(instrument_name=name, aggregation=duration_aggregation(kind, max_size))
        for name in (METRIC_OPERATION_DURATION, METRIC_MCP_SERVER_OPERATION_DURATION)
    ]
    if kind != "classic":  # classic: the session histogram keeps the conventions' advisory boundaries
        views.append(
            View(instrument_name=METRIC_MCP_SERVER_SESSION_DURATION, aggregation=duration_aggregation(kind, max_size))
        )
    return views


#: Attribute sets per metric stream (instrument) our readers aggregate; further ones go to the one
#: ``otel.metric.overflow=true`` point. A backstop: the attributes we record are bounded already.
METRIC_CARDINALITY_LIMIT = 1000
