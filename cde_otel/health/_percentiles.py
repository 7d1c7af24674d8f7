"""Quantiles from OpenTelemetry histogram data points, computed the way Prometheus does.

Two aggregations reach us, depending on ``CDE_OTEL_HISTOGRAM``:

* **Base-2 exponential** points (Prometheus native histograms). Buckets of every
  attribute set of one operation are merged at the smallest scale among them
  (downscaling an index is ``index >> scale_difference``). The quantile's rank
  ``q * count`` is located by cumulative count, then interpolated inside that bucket
  **exponentially** — ``lower * (upper / lower) ** fraction`` — which is how current
  Prometheus (3.x) evaluates ``histogram_quantile`` on standard exponential schemas;
  Prometheus 2.x (e.g. Debian's 2.42) interpolates linearly, pass
  ``interpolation="linear"`` to reproduce it. At scale 5 a bucket is 2.2 % wide, so
  the two differ by well under one bucket. The zero bucket returns 0.
* **Explicit-bucket** points (classic histograms): Prometheus' ``histogram_quantile``
  rule — linear interpolation inside the bucket, the first bucket starts at 0, and a
  rank in the ``+Inf`` bucket returns the highest finite bound.

One deliberate refinement: an OTel point also carries the exact ``min``/``max``,
which Prometheus cannot see; results are clamped to ``[min, max]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from opentelemetry.sdk.metrics.export import ExponentialHistogramDataPoint, HistogramDataPoint

Interpolation = Literal["exponential", "linear"]
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


@dataclass(slots=True)
class ExponentialCounts:
    """Merged exponential buckets: OTel index ``i`` at scale ``s`` covers ``(2**(i/2**s), 2**((i+1)/2**s)]``."""

    scale: int
    zero_count: int = 0
    positive: dict[int, int] = field(default_factory=dict)
    negative: dict[int, int] = field(default_factory=dict)

    @classmethod
    def from_point(cls, point: ExponentialHistogramDataPoint) -> ExponentialCounts:
        """The non-zero buckets of one OTel data point, keyed by bucket index."""
        counts = cls(point.scale, point.zero_count)
        for buckets, target in ((point.positive, counts.positive), (point.negative, counts.negative)):
            for position, count in enumerate(buckets.bucket_counts):
                if count:
                    target[buckets.offset + position] = count
        return counts

    def downscaled(self, scale: int) -> ExponentialCounts:
        shift = self.scale - scale
        if shift <= 0:
            return self
        result = ExponentialCounts(scale, self.zero_count)
        for source, target in ((self.positive, result.positive), (self.negative, result.negative)):
            for index, count in source.items():
                target[index >> shift] = target.get(index >> shift, 0) + count
        return result

    def add(self, other: ExponentialCounts) -> None:
        """Adds ``other`` into this one; both must already be at the same scale."""
        self.zero_count += other.zero_count
        for source, target in ((other.positive, self.positive), (other.negative, self.negative)):
            for index, count in source.items():
                target[index] = target.get(index, 0) + count

    def bucket_bounds(self, index: int) -> tuple[float, float]:
        width = 2.0**-self.scale
        return 2.0 ** (index * width), 2.0 ** ((index + 1) * width)


def merge_exponential(points: Iterable[ExponentialHistogramDataPoint]) -> ExponentialCounts | None:
    parts = [ExponentialCounts.from_point(p) for p in points]
    if not parts:
        return None
    scale = min(part.scale for part in parts)
    merged = ExponentialCounts(scale)
    for part in parts:
        merged.add(part.downscaled(scale))
    return merged


def exponential_quantile(q: float, counts: ExponentialCounts, interpolation: Interpolation = "exponential") -> float:
    """The ``q``-quantile of merged exponential buckets (NaN when empty)."""
    # Ascending buckets as (lower, upper, count): negative ones (mirrored), the zero bucket, positive ones.
    ordered: list[tuple[float, float, int]] = []
    for index in sorted(counts.negative, reverse=True):
        lower, upper = counts.bucket_bounds(index)
        ordered.append((-upper, -lower, counts.negative[index]))
    if counts.zero_count:
        ordered.append((0.0, 0.0, counts.zero_count))
    for index in sorted(counts.positive):
        lower, upper = counts.bucket_bounds(index)
        ordered.append((lower, upper, counts.positive[index]))
    total = sum(count for _, _, count in ordered)
    if total == 0:
        return math.nan
    rank = q * total
    cumulative = 0
    for lower, upper, count in ordered:
        if count == 0:
            continue
        if cumulative + count >= rank:
            fraction = (rank - cumulative) / count
            if lower == upper:
                return lower
            if interpolation == "exponential" and lower > 0:
                return lower * math.pow(upper / lower, fraction)
            if interpolation == "exponential" and upper < 0:
                return upper * math.pow(lower / upper, 1 - fraction)  # mirrored: both bounds negative
            return lower + (upper - lower) * fraction
        cumulative += count
    return ordered[-1][1]


def explicit_quantile(q: float, bounds: Sequence[float], bucket_counts: Sequence[int]) -> float:
    """Prometheus ``histogram_quantile`` over classic buckets (``len(bucket_counts) == len(bounds) + 1``)."""
    total = sum(bucket_counts)
    if total == 0:
        return math.nan
    rank = q * total
    cumulative = 0
    for index, count in enumerate(bucket_counts):
        if count == 0 or cumulative + count < rank:
            cumulative += count
            continue
        if index == len(bounds):  # the +Inf bucket
            return bounds[-1] if bounds else math.nan
        upper = bounds[index]
        if index == 0 and upper <= 0:
            return upper
        lower = 0.0 if index == 0 else bounds[index - 1]
        return lower + (upper - lower) * (rank - cumulative) / count
    return bounds[-1] if bounds else math.nan


@dataclass(frozen=True, slots=True)
class OperationStats:
    """Duration statistics of one operation, in seconds (``None`` where undefined)."""

    count: int
    errors: int
    sum: float
    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"count": self.count, "p50": self.p50, "p95": self.p95, "p99": self.p99, "mean": self.mean}


def _clamped(value: float, low: float, high: float) -> float | None:
    if math.isnan(value):
        return None
    if math.isfinite(low) and math.isfinite(high) and low <= high:
        return min(max(value, low), high)
    return value


def summarize(
    points: Sequence[ExponentialHistogramDataPoint | HistogramDataPoint],
    *,
    errors: int = 0,
    interpolation: Interpolation = "exponential",
) -> OperationStats:
    """Merges the points of one operation (all outcomes) and computes count, mean, P50/P95/P99."""
    count = sum(p.count for p in points)
    total = float(sum(p.sum for p in points))
    low = min((p.min for p in points if p.count), default=math.inf)
    high = max((p.max for p in points if p.count), default=-math.inf)
    quantiles: dict[str, float | None] = {}
    exponential = [p for p in points if isinstance(p, ExponentialHistogramDataPoint)]
    explicit = [p for p in points if isinstance(p, HistogramDataPoint)]
    merged = merge_exponential(exponential)
    bounds, bucket_counts = _merge_explicit(explicit)
    for name, q in QUANTILES:
        if merged is not None:
            value = exponential_quantile(q, merged, interpolation)
        elif bounds is not None:
            value = explicit_quantile(q, bounds, bucket_counts)
        else:
            value = math.nan
        quantiles[name] = _clamped(value, low, high)
    return OperationStats(
        count=count,
        errors=errors,
        sum=total,
        p50=quantiles["p50"],
        p95=quantiles["p95"],
        p99=quantiles["p99"],
        mean=total / count if count else None,
    )


def _merge_explicit(points: Sequence[HistogramDataPoint]) -> tuple[tuple[float, ...] | None, list[int]]:
    """Sums bucket counts of points sharing the same bounds (the first point's bounds win)."""
    if not points:
        return None, []
    bounds = tuple(points[0].explicit_bounds)
    counts = [0] * (len(bounds) + 1)
    for point in points:
        if tuple(point.explicit_bounds) != bounds:
            continue  # a view change mid-flight; mixing bucket layouts would mislead
        for index, count in enumerate(point.bucket_counts):
            counts[index] += count
    return bounds, counts
