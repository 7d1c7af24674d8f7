"""OTLP/JSON encoding of the SDK's ``MetricsData``: every point kind (sum, gauge, histogram,
exponential histogram) with its exemplars, in the mapping :mod:`._otlp_json` describes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from opentelemetry.sdk.metrics.export import ExponentialHistogram, Gauge, Histogram, MetricsData, Sum

from cde_otel.telemetry._otlp_json import JSON, Envelope, _double, _with_attributes


def _exemplars(target: JSON, exemplars: Sequence[Any]) -> None:
    if not exemplars:
        return
    encoded = []
    for exemplar in exemplars:
        item = _with_attributes({}, exemplar.filtered_attributes)
        if exemplar.time_unix_nano:
            item["timeUnixNano"] = str(exemplar.time_unix_nano)
        if isinstance(exemplar.value, float):
            item["asDouble"] = _double(exemplar.value)
        else:
            item["asInt"] = str(exemplar.value)
        if exemplar.span_id is not None and exemplar.trace_id is not None:
            item["spanId"] = f"{exemplar.span_id:016x}"
            item["traceId"] = f"{exemplar.trace_id:032x}"
        encoded.append(item)
    target["exemplars"] = encoded


def _point_base(point: Any) -> JSON:
    encoded = _with_attributes({}, point.attributes)
    start = getattr(point, "start_time_unix_nano", 0)
    if start:
        encoded["startTimeUnixNano"] = str(start)
    if point.time_unix_nano:
        encoded["timeUnixNano"] = str(point.time_unix_nano)
    _exemplars(encoded, point.exemplars)
    return encoded


def _number_point(point: Any) -> JSON:
    encoded = _point_base(point)
    if isinstance(point.value, int):
        encoded["asInt"] = str(point.value)
    else:
        encoded["asDouble"] = _double(point.value)
    return encoded


def _bounds(target: JSON, point: Any) -> None:
    target["sum"] = _double(point.sum)
    if point.min is not None:
        target["min"] = _double(point.min)
    if point.max is not None:
        target["max"] = _double(point.max)


def _histogram_point(point: Any) -> JSON:
    encoded = _point_base(point)
    if point.count:
        encoded["count"] = str(point.count)
    _bounds(encoded, point)
    if point.bucket_counts:
        encoded["bucketCounts"] = [str(count) for count in point.bucket_counts]
    if point.explicit_bounds:
        encoded["explicitBounds"] = [_double(bound) for bound in point.explicit_bounds]
    return encoded


def _buckets(buckets: Any) -> JSON | None:
    if not buckets.bucket_counts:
        return None
    encoded: JSON = {"bucketCounts": [str(count) for count in buckets.bucket_counts]}
    if buckets.offset:
        encoded["offset"] = buckets.offset
    return encoded


def _exponential_point(point: Any) -> JSON:
    encoded = _point_base(point)
    if point.count:
        encoded["count"] = str(point.count)
    _bounds(encoded, point)
    if point.scale:
        encoded["scale"] = point.scale
    if point.zero_count:
        encoded["zeroCount"] = str(point.zero_count)
    for side in ("positive", "negative"):
        buckets = _buckets(getattr(point, side))
        if buckets is not None:
            encoded[side] = buckets
    if point.flags:
        encoded["flags"] = point.flags
    return encoded


def _metric(metric: Any) -> JSON:
    encoded: JSON = {"name": metric.name} if metric.name else {}
    if metric.description:
        encoded["description"] = metric.description
    if metric.unit:
        encoded["unit"] = metric.unit
    data = metric.data
    if isinstance(data, Sum):
        block: JSON = {"dataPoints": [_number_point(p) for p in data.data_points]}
        block["aggregationTemporality"] = int(data.aggregation_temporality)
        if data.is_monotonic:
            block["isMonotonic"] = True
        encoded["sum"] = block
    elif isinstance(data, Gauge):
        encoded["gauge"] = {"dataPoints": [_number_point(p) for p in data.data_points]}
    elif isinstance(data, Histogram):
        encoded["histogram"] = {
            "dataPoints": [_histogram_point(p) for p in data.data_points],
            "aggregationTemporality": int(data.aggregation_temporality),
        }
    elif isinstance(data, ExponentialHistogram):
        encoded["exponentialHistogram"] = {
            "dataPoints": [_exponential_point(p) for p in data.data_points],
            "aggregationTemporality": int(data.aggregation_temporality),
        }
    return encoded


def encode_metrics(envelope: Envelope, data: MetricsData) -> JSON:
    """An ``ExportMetricsServiceRequest`` (the SDK has grouped the metrics by resource and scope already)."""
    resources = []
    for resource_metrics in data.resource_metrics:
        scoped = []
        for scope_metrics in resource_metrics.scope_metrics:
            block: JSON = {
                "scope": envelope.scope(scope_metrics.scope),
                # One metric's dicts at a time, serialised as they are built (see _otlp_json's Envelope.group).
                "metrics": [orjson.Fragment(orjson.dumps(_metric(metric))) for metric in scope_metrics.metrics],
            }
            if scope_metrics.scope.schema_url:
                block["schemaUrl"] = scope_metrics.scope.schema_url
            scoped.append(block)
        resource_block: JSON = {"resource": envelope.resource(resource_metrics.resource), "scopeMetrics": scoped}
        if resource_metrics.resource.schema_url:
            resource_block["schemaUrl"] = resource_metrics.resource.schema_url
        resources.append(resource_block)
    return {"resourceMetrics": resources}
