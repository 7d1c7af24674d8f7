"""The test oracle for percentiles: the exact quantile of raw samples, independent of cde-otel's code."""

from __future__ import annotations

import math
from typing import Any


def exact_quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def nearest_rank_quantile(values: list[float], q: float) -> float:
    """The observation of rank ``ceil(q * n)`` (the inverse of the empirical CDF)."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def near_an_exact_quantile(estimate: float, values: list[float], q: float, tolerance: float) -> bool:
    """Whether ``estimate`` is within ``tolerance`` (relative) of the q-quantile of ``values`` under
    either textbook definition, or between them. At a sparse tail they differ by a share of the gap
    to the next observation: next to a slow outlier (a session's first call), by more than 2 %."""
    low, high = sorted((nearest_rank_quantile(values, q), exact_quantile(values, q)))
    return low * (1 - tolerance) <= estimate <= high * (1 + tolerance)


def bucket_of_rank(histogram: dict[str, Any], values: list[float], q: float) -> tuple[float, float] | None:
    """The bounds of the bucket of a Prometheus native histogram (an instant query's ``histogram``)
    that holds the observation of rank ``ceil(q * n)``: where ``histogram_quantile`` must place
    the q-quantile, at whatever resolution the (summed) histogram has there."""
    observation = nearest_rank_quantile(values, q)
    for _rule, lower, upper, _count in histogram.get("buckets", []):
        low, high = float(lower), float(upper)
        if low <= observation <= high:
            return low, high
    return None
