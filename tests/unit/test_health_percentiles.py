"""Quantile arithmetic against hand-computed Prometheus results."""

from __future__ import annotations

import math

import pytest
from opentelemetry.sdk.metrics.export import Buckets, ExponentialHistogramDataPoint, HistogramDataPoint

from cde_otel.health._percentiles import (
    ExponentialCounts,
    explicit_quantile,
    exponential_quantile,
    merge_exponential,
    summarize,
)


def test_explicit_quantile_matches_promtool() -> None:
    # Same buckets as the CDESlowOperation promtool test, where Prometheus returns 2.2.
    bounds = [0.1, 0.5, 1.0, 2.5]
    counts = [50, 40, 5, 5, 0]

    assert explicit_quantile(0.99, bounds, counts) == pytest.approx(2.2)
    assert explicit_quantile(0.5, bounds, counts) == pytest.approx(0.1)  # rank 50 closes the first bucket
    assert explicit_quantile(0.25, bounds, counts) == pytest.approx(0.05)  # first bucket starts at 0


def test_explicit_quantile_in_the_inf_bucket_returns_the_highest_bound() -> None:
    assert explicit_quantile(0.99, [0.1, 1.0], [0, 10, 90]) == 1.0
    assert math.isnan(explicit_quantile(0.5, [0.1], [0, 0]))


def test_exponential_quantile_interpolates_within_the_bucket() -> None:
    counts = ExponentialCounts(scale=0, positive={0: 1, 1: 3})  # (1, 2]: 1, (2, 4]: 3

    # rank 2 is 1/3 into (2, 4]
    assert exponential_quantile(0.5, counts) == pytest.approx(2 * 2 ** (1 / 3))
    assert exponential_quantile(0.5, counts, "linear") == pytest.approx(2 + 2 / 3)
    assert exponential_quantile(0.25, counts) == pytest.approx(2.0)
    assert exponential_quantile(0.1, ExponentialCounts(scale=0, zero_count=5, positive={0: 5})) == 0.0
    mirrored = ExponentialCounts(scale=0, positive={0: 2}, negative={0: 2})  # (-2, -1]: 2, (1, 2]: 2
    assert exponential_quantile(0.25, mirrored) == pytest.approx(-(2**0.5))
    assert exponential_quantile(0.75, mirrored) == pytest.approx(2**0.5)


def _expo_point(
    scale: int, offset: int, buckets: list[int], *, low: float, high: float
) -> ExponentialHistogramDataPoint:
    return ExponentialHistogramDataPoint(
        attributes={}, start_time_unix_nano=0, time_unix_nano=1, count=sum(buckets), sum=0.0, scale=scale,
        zero_count=0, positive=Buckets(offset, buckets), negative=Buckets(0, []), flags=0, min=low, max=high,
    )  # fmt: skip


def test_points_at_different_scales_merge_at_the_coarser_scale() -> None:
    fine = _expo_point(2, 4, [1, 2, 3, 4], low=2.0, high=4.0)  # scale 2 indexes 4..7 cover (2, 4]
    coarse = _expo_point(1, 2, [5], low=2.0, high=2.8)  # scale 1 index 2 covers (2, 2.83]

    merged = merge_exponential([fine, coarse])

    assert merged is not None and merged.scale == 1
    assert merged.positive == {2: 1 + 2 + 5, 3: 3 + 4}


def test_summarize_clamps_to_min_and_max_and_reports_the_mean() -> None:
    point = HistogramDataPoint(
        attributes={}, start_time_unix_nano=0, time_unix_nano=1, count=4, sum=1.0,
        bucket_counts=[0, 4, 0], explicit_bounds=[0.1, 10.0], min=0.2, max=0.3,
    )  # fmt: skip

    stats = summarize([point])

    assert stats.count == 4 and stats.mean == pytest.approx(0.25)
    assert stats.p50 == pytest.approx(0.3)  # interpolation says ~5.05 s; the recorded max caps it
    assert summarize([]).as_dict() == {"count": 0, "p50": None, "p95": None, "p99": None, "mean": None}
